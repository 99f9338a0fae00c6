//! S3's "Object Created" notifications on the local stack. Garage sends none,
//! so this loopback proxy stands in front of it, on the S3 endpoint the API
//! hands to clients (presigned URLs and POST forms point here), forwards
//! every request untouched, and after each successful PutObject, POST form
//! upload or CompleteMultipartUpload emits the EventBridge event S3 would
//! (`source: aws.s3`, `detail-type: Object Created`), with the object's size
//! and ETag as Garage then holds them. It only transports: which upload the
//! object settles, and how, is decided by [`partwise::settle`], the code the
//! `settle` Lambda runs ([`deliver`] hands it each event).

use crate::faults::proxy::forward_buffered;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The account id local events carry (no account exists).
const ACCOUNT: &str = "000000000000";

/// A running transport; stops when dropped.
pub struct S3Events {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for S3Events {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

struct Shared {
    upstream: SocketAddr,
    /// Reads what Garage holds, straight from Garage (not through this proxy).
    s3: aws_sdk_s3::Client,
    region: String,
    events: mpsc::UnboundedSender<Value>,
    sequencer: AtomicU64,
}

impl S3Events {
    /// Listens on a free loopback port, forwarding to Garage at `upstream`;
    /// `s3` is a client on Garage itself; events go to `events`.
    pub async fn start(
        upstream: SocketAddr,
        s3: aws_sdk_s3::Client,
        events: mpsc::UnboundedSender<Value>,
    ) -> io::Result<S3Events> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        Self::on(listener, upstream, s3, events)
    }

    /// [`S3Events::start`] on a listener bound already (`serve` binds it
    /// before its runtime starts, to name it in the process environment).
    pub fn on(
        listener: std::net::TcpListener,
        upstream: SocketAddr,
        s3: aws_sdk_s3::Client,
        events: mpsc::UnboundedSender<Value>,
    ) -> io::Result<S3Events> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            s3,
            region: crate::stack::REGION.into(),
            events,
            sequencer: AtomicU64::new(1),
        });
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let service = service_fn(move |req| serve(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(S3Events { addr, accept })
    }

    /// `http://127.0.0.1:PORT`: the S3 endpoint (`AWS_ENDPOINT_URL_S3`) to hand the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// What created an object, as S3's event names it (`detail.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Created {
    Put,
    Copy,
    Post,
    Complete,
}

impl Created {
    fn reason(self) -> &'static str {
        match self {
            Created::Put => "PutObject",
            Created::Copy => "CopyObject",
            Created::Post => "POSTObject",
            Created::Complete => "CompleteMultipartUpload",
        }
    }
}

/// Which object-creating request this is, if any, from its method and query.
fn classify(method: &Method, path: &str, query: &str, copy: bool) -> Option<Created> {
    let has = |k: &str| query.split('&').any(|p| p.split('=').next() == Some(k));
    let in_bucket = path.trim_matches('/').contains('/');
    // A subresource (`?tagging`, `?acl`, `?partNumber`...) is any parameter
    // but a presigned URL's own `X-Amz-*` ones and the SDK's `x-id`: a PUT to
    // one creates no object.
    let subresource = query.split('&').filter(|p| !p.is_empty()).any(|p| {
        let p = p.to_ascii_lowercase();
        !p.starts_with("x-amz-") && !p.starts_with("x-id=")
    });
    match *method {
        Method::PUT if in_bucket && !subresource => {
            Some(if copy { Created::Copy } else { Created::Put })
        }
        Method::POST if in_bucket && has("uploadId") => Some(Created::Complete),
        Method::POST if !in_bucket && query.is_empty() => Some(Created::Post),
        _ => None,
    }
}

async fn serve(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let created = classify(
        &parts.method,
        &path,
        &query,
        parts.headers.contains_key("x-amz-copy-source"),
    );
    let form_key = (created == Some(Created::Post))
        .then(|| {
            let ct = parts.headers.get(hyper::header::CONTENT_TYPE)?;
            form_field(ct, &body, "key")
        })
        .flatten();
    let answer = match forward_buffered(shared.upstream, parts, body).await {
        Ok(a) => a,
        Err(e) => {
            let mut r = Response::new(Full::new(Bytes::from(format!("upstream: {e}"))));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            return Ok(r);
        }
    };
    let (answer_parts, answer_body) = answer.into_parts();
    let answer_body = answer_body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if let Some(created) = created
        && answer_parts.status.is_success()
    {
        // CompleteMultipartUpload can fail with a 200 whose body is an error.
        let failed =
            created == Created::Complete && answer_body.windows(7).any(|w| w == b"<Error>");
        let object = match created {
            Created::Post => form_key.and_then(|key| {
                let bucket = path.trim_matches('/').to_string();
                Some((bucket, key)).filter(|(b, _)| !b.is_empty())
            }),
            _ => bucket_and_key(&path),
        };
        if let (false, Some((bucket, key))) = (failed, object) {
            // After the answer, as S3's notifications are: the client never waits on them.
            tokio::spawn(notify(shared.clone(), bucket, key, created));
        }
    }
    Ok(Response::from_parts(answer_parts, Full::new(answer_body)))
}

/// `/bucket/key...` (path style), the key percent-decoded.
fn bucket_and_key(path: &str) -> Option<(String, String)> {
    let (bucket, key) = path.trim_start_matches('/').split_once('/')?;
    let key = percent_encoding::percent_decode_str(key)
        .decode_utf8()
        .ok()?
        .into_owned();
    (!bucket.is_empty() && !key.is_empty()).then(|| (bucket.to_string(), key))
}

/// A text field of a `multipart/form-data` body.
fn form_field(content_type: &HeaderValue, body: &[u8], name: &str) -> Option<String> {
    let ct = content_type.to_str().ok()?;
    let boundary = ct
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("boundary="))?
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let text = String::from_utf8_lossy(body);
    let wanted = format!("name=\"{name}\"");
    for part in text.split(delimiter.as_str()) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let disposition = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("content-disposition"))?;
        if disposition.contains(&wanted) && !disposition.contains("filename=") {
            return Some(value.strip_suffix("\r\n").unwrap_or(value).to_string());
        }
    }
    None
}

/// Emits the "Object Created" event for `key`, with the size and ETag Garage holds.
async fn notify(shared: Arc<Shared>, bucket: String, key: String, created: Created) {
    let head = shared
        .s3
        .head_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await;
    let Ok(head) = head else {
        tracing::warn!(%bucket, %key, "object created, yet HeadObject failed; no notification");
        return;
    };
    let sequencer = shared.sequencer.fetch_add(1, Ordering::Relaxed);
    let event = json!({
        "version": "0",
        "id": uuid::Uuid::new_v4().to_string(),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": ACCOUNT,
        "time": now_rfc3339(),
        "region": shared.region,
        "resources": [format!("arn:aws:s3:::{bucket}")],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": head.content_length().unwrap_or(0).max(0),
                "etag": head.e_tag().unwrap_or_default().trim_matches('"'),
                "sequencer": format!("{sequencer:018X}"),
            },
            "request-id": uuid::Uuid::new_v4().simple().to_string(),
            "requester": ACCOUNT,
            "source-ip-address": "127.0.0.1",
            "reason": created.reason(),
        }
    });
    let _ = shared.events.send(event);
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Hands each event to the production handler, [`partwise::settle::handle`],
/// as the template's EventBridge rule invokes the `settle` function: an
/// error is retried twice (Lambda's asynchronous retries), then dropped and
/// logged (the template's on-failure destination). `log` gets one JSON line
/// per event (`{"s3_notification": …}`) and per failure.
pub fn deliver(
    ctx: Arc<partwise::Context>,
    mut events: mpsc::UnboundedReceiver<Value>,
    log: impl Fn(Value) + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            log(json!({"s3_notification": event}));
            let mut last = None;
            for attempt in 0..3u32 {
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(200 << attempt)).await;
                }
                match partwise::settle::handle(&ctx, event.clone()).await {
                    Ok(_) => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e.to_string()),
                }
            }
            if let Some(error) = last {
                log(json!({"s3_notification_failed": error, "event": event}));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_creating_requests_are_told_apart() {
        let c = |m: Method, p: &str, q: &str| classify(&m, p, q, false);
        assert_eq!(c(Method::PUT, "/b/k/x", ""), Some(Created::Put));
        assert_eq!(
            c(
                Method::PUT,
                "/b/k",
                "x-id=PutObject&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=ab"
            ),
            Some(Created::Put)
        );
        assert_eq!(
            classify(&Method::PUT, "/b/k", "", true),
            Some(Created::Copy)
        );
        assert_eq!(c(Method::PUT, "/b/k", "partNumber=1&uploadId=u"), None);
        assert_eq!(c(Method::PUT, "/b/k", "tagging"), None);
        assert_eq!(c(Method::PUT, "/b", ""), None);
        assert_eq!(
            c(Method::POST, "/b/k", "uploadId=u"),
            Some(Created::Complete)
        );
        assert_eq!(c(Method::POST, "/b/k", "uploads"), None);
        assert_eq!(c(Method::POST, "/b", ""), Some(Created::Post));
        assert_eq!(c(Method::POST, "/b/", ""), Some(Created::Post));
        assert_eq!(c(Method::POST, "/b", "delete"), None);
        assert_eq!(c(Method::GET, "/b/k", ""), None);
    }

    #[test]
    fn keys_are_read_from_paths_and_forms() {
        assert_eq!(
            bucket_and_key("/b/uploads/a%20b/caf%C3%A9.txt"),
            Some(("b".into(), "uploads/a b/café.txt".into()))
        );
        assert_eq!(bucket_and_key("/b"), None);
        let body = "--XY\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/a/1/f.txt\r\n\
                    --XY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"key\"\r\n\r\nbytes\r\n--XY--\r\n";
        let ct = HeaderValue::from_static("multipart/form-data; boundary=XY");
        assert_eq!(
            form_field(&ct, body.as_bytes(), "key").as_deref(),
            Some("uploads/a/1/f.txt")
        );
        assert_eq!(form_field(&ct, body.as_bytes(), "policy"), None);
    }
}
