//! A recording HTTP proxy on loopback, in front of Garage or DynamoDB Local:
//! it names each request's operation (S3's from method and query, DynamoDB's
//! from `X-Amz-Target`) and notes when it started and ended, so the
//! sequential round trips of a handler can be counted.
//!
//! HTTP-aware, unlike [`crate::proxy::DelayProxy`] (bytes only): an operation's
//! name and its end (the whole answer sent back) need the requests' framing.
//! Each request can be held a little before it is forwarded, so requests a
//! handler sends together overlap for certain even on loopback, where an
//! answer can come back before the next request of the same wave is written.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Which service a proxy fronts, and so how it names operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    S3,
    DynamoDb,
}

/// One request that went through a proxy.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: Service,
    /// `GetItem`, `ListParts`, ...
    pub operation: String,
    /// When its head reached the proxy.
    pub start: Instant,
    /// When its whole answer had come back from the server.
    pub end: Instant,
}

/// Calls recorded by one or more proxies, in the order they ended.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Call>>>);

impl Log {
    /// Everything recorded so far, leaving the log empty.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, call: Call) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(call);
    }
}

/// The sequential waves of `calls`: calls whose times overlap (directly or
/// through others) are one wave, sent together; a call that starts after
/// every earlier one ended waits on them, and opens the next wave.
pub fn waves(calls: &[Call]) -> Vec<Vec<&Call>> {
    let mut sorted: Vec<&Call> = calls.iter().collect();
    sorted.sort_by_key(|c| c.start);
    let mut waves: Vec<Vec<&Call>> = Vec::new();
    let mut wave_end: Option<Instant> = None;
    for c in sorted {
        match (wave_end, waves.last_mut()) {
            (Some(end), Some(wave)) if c.start < end => {
                wave.push(c);
                wave_end = Some(end.max(c.end));
            }
            _ => {
                waves.push(vec![c]);
                wave_end = Some(c.end);
            }
        }
    }
    waves
}

/// Waves written as `GetItem ‖ ListParts → UpdateItem → ...`.
pub fn describe(waves: &[Vec<&Call>]) -> String {
    waves
        .iter()
        .map(|w| {
            w.iter()
                .map(|c| c.operation.as_str())
                .collect::<Vec<_>>()
                .join(" ‖ ")
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// A running proxy; stops accepting when dropped.
pub struct CountingProxy {
    addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl CountingProxy {
    /// Listens on a free loopback port and forwards to `upstream`, recording
    /// into `log`; each request is held `hold` before it is forwarded.
    pub async fn start(
        upstream: SocketAddr,
        service: Service,
        log: Log,
        hold: Duration,
    ) -> io::Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    // One upstream connection per client connection: HTTP/1
                    // answers one request at a time on each anyway.
                    let upstream_conn = Arc::new(tokio::sync::Mutex::new(None));
                    let serve = service_fn(move |req| {
                        let (log, conn) = (log.clone(), upstream_conn.clone());
                        async move { forward(req, upstream, service, &log, hold, &conn).await }
                    });
                    if let Err(e) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(client), serve)
                        .await
                    {
                        eprintln!("counting proxy: connection ended: {e}");
                    }
                });
            }
        });
        Ok(CountingProxy { addr, accept })
    }

    /// `http://127.0.0.1:PORT`, to use as an SDK endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

type Upstream = tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>;

async fn forward(
    req: Request<Incoming>,
    upstream: SocketAddr,
    service: Service,
    log: &Log,
    hold: Duration,
    conn: &Upstream,
) -> Result<Response<Full<Bytes>>, io::Error> {
    let start = Instant::now();
    let operation = operation(service, &req);
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    if !hold.is_zero() {
        tokio::time::sleep(hold).await;
    }
    let mut guard = conn.lock().await;
    let sender = match guard.as_mut() {
        Some(s) if !s.is_closed() => s,
        _ => {
            let stream = TcpStream::connect(upstream).await?;
            stream.set_nodelay(true)?;
            let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(io::Error::other)?;
            tokio::spawn(connection);
            guard.insert(sender)
        }
    };
    sender.ready().await.map_err(io::Error::other)?;
    let answer = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(io::Error::other)?;
    drop(guard);
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    log.push(Call {
        service,
        operation,
        start,
        end: Instant::now(),
    });
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// The operation a request is: DynamoDB names it in `X-Amz-Target`; S3's
/// follows from the method and which query parameters are present.
fn operation<B>(service: Service, req: &Request<B>) -> String {
    match service {
        Service::DynamoDb => req
            .headers()
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("DynamoDB?")
            .to_string(),
        Service::S3 => {
            let names: Vec<&str> = req
                .uri()
                .query()
                .unwrap_or_default()
                .split('&')
                .map(|p| p.split('=').next().unwrap_or_default())
                .collect();
            let has = |n: &str| names.contains(&n);
            let method = req.method().as_str();
            match method {
                "POST" if has("uploads") => "CreateMultipartUpload",
                "POST" if has("uploadId") => "CompleteMultipartUpload",
                "GET" if has("uploadId") => "ListParts",
                "GET" if has("uploads") => "ListMultipartUploads",
                "DELETE" if has("uploadId") => "AbortMultipartUpload",
                "PUT" if has("partNumber") => "UploadPart",
                "PUT" => "PutObject",
                "HEAD" => "HeadObject",
                "GET" => "GetObject",
                "POST" => "PostObject",
                _ => return format!("S3 {method}"),
            }
            .to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(op: &str, start_ms: u64, end_ms: u64, t0: Instant) -> Call {
        Call {
            service: Service::S3,
            operation: op.into(),
            start: t0 + Duration::from_millis(start_ms),
            end: t0 + Duration::from_millis(end_ms),
        }
    }

    #[test]
    fn overlapping_calls_are_one_wave_and_later_ones_the_next() {
        let t0 = Instant::now();
        let calls = [
            call("C", 30, 40, t0),
            call("A", 0, 10, t0),
            call("B", 5, 20, t0),
            call("D", 41, 50, t0),
        ];
        let w = waves(&calls);
        assert_eq!(describe(&w), "A ‖ B → C → D");
        assert!(waves(&[]).is_empty());
    }

    #[test]
    fn s3_operations_are_named_from_method_and_query() {
        let named = |m: &str, uri: &str| {
            let req = Request::builder().method(m).uri(uri).body(()).unwrap();
            operation(Service::S3, &req)
        };
        assert_eq!(named("POST", "/b/k?uploads"), "CreateMultipartUpload");
        assert_eq!(named("POST", "/b/k?uploadId=x"), "CompleteMultipartUpload");
        assert_eq!(
            named("GET", "/b/k?uploadId=x&part-number-marker=2"),
            "ListParts"
        );
        assert_eq!(named("DELETE", "/b/k?uploadId=x"), "AbortMultipartUpload");
        assert_eq!(named("PUT", "/b/k?partNumber=1&uploadId=x"), "UploadPart");
        assert_eq!(named("HEAD", "/b/k"), "HeadObject");
        let req = Request::builder()
            .header("x-amz-target", "DynamoDB_20120810.UpdateItem")
            .body(())
            .unwrap();
        assert_eq!(operation(Service::DynamoDb, &req), "UpdateItem");
    }
}
