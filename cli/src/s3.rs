//! Requests straight to S3 through presigned URLs: one part PUT (streamed, with
//! progress) or one POST form, and what S3's answer means for the caller.

use crate::error::describe;
use crate::events::Why;
use bytes::Bytes;
use futures::StreamExt;
use reqwest::header::{CONTENT_LENGTH, ETAG, HeaderMap, HeaderName, HeaderValue};
use std::collections::HashMap;
use std::time::Duration;

/// Why one attempt failed, sorted by what to do next.
#[derive(Debug)]
pub enum PutError {
    /// 403, or an expired date (Garage answers 400 "Date is too old"): sign again.
    Forbidden(String),
    /// S3 says the bytes do not match the signed checksum.
    Digest(String),
    /// Network trouble, 5xx, 429: try again after a pause.
    Transient(Why, String),
    /// Anything else: give up.
    Fatal(String),
}

/// A client for S3 traffic: no overall timeout (parts are big), but a connect one.
pub fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .tcp_keepalive(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()
}

/// PUTs one part of `len` bytes from `body` (read as the connection takes
/// it); `sent(n)` is told of bytes as they go (and `-n` to undo a failed try).
/// Returns the part's ETag.
pub async fn put_part<S>(
    http: &reqwest::Client,
    url: &str,
    headers: &HashMap<String, String>,
    len: u64,
    body: S,
    sent: std::sync::Arc<dyn Fn(i64) + Send + Sync>,
) -> Result<String, PutError>
where
    S: futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    let mut hm = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            hm.insert(k, v);
        }
    }
    hm.insert(CONTENT_LENGTH, HeaderValue::from(len));
    let counted = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let stream = {
        let counted = counted.clone();
        let sent = sent.clone();
        body.map(move |c| {
            if let Ok(c) = &c {
                sent(c.len() as i64);
                counted.fetch_add(c.len() as i64, std::sync::atomic::Ordering::Relaxed);
            }
            c
        })
    };
    let undo = || {
        let n = counted.load(std::sync::atomic::Ordering::Relaxed);
        if n > 0 {
            sent(-n);
        }
    };
    let resp = match http
        .put(url)
        .headers(hm)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => {
            undo();
            return Err(PutError::Transient(Why::Unreachable, describe(&e)));
        }
    };
    let status = resp.status();
    if status.is_success() {
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let _ = resp.bytes().await;
        return etag.ok_or_else(|| {
            undo();
            PutError::Fatal("S3 answered without an ETag (is ETag exposed by the bucket?)".into())
        });
    }
    let body = resp.text().await.unwrap_or_default();
    undo();
    Err(classify(status.as_u16(), &body))
}

/// What a non-2xx S3 answer means.
pub fn classify(status: u16, body: &str) -> PutError {
    let code = xml_field(body, "Code").unwrap_or_default();
    let message = xml_field(body, "Message").unwrap_or_default();
    let detail = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {code}: {message}")
    };
    let digest_codes = [
        "BadDigest",
        "InvalidDigest",
        "XAmzContentChecksumMismatch",
        "XAmzContentSHA256Mismatch",
    ];
    if digest_codes.contains(&code.as_str())
        || (status == 400 && message.to_ascii_lowercase().contains("checksum"))
    {
        PutError::Digest(detail)
    } else if status == 403 || expired(&message) {
        PutError::Forbidden(detail)
    } else if status == 429 || code == "SlowDown" {
        PutError::Transient(Why::Busy, detail)
    } else if status >= 500 || status == 408 || code == "RequestTimeout" {
        PutError::Transient(Why::Failing, detail)
    } else {
        PutError::Fatal(detail)
    }
}

/// Whether S3's message says the request's signing date is past (S3 says
/// "Request has expired" with a 403; Garage 400 with "Date is too old").
fn expired(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("expired") || m.contains("too old")
}

/// The text of `<name>…</name>` in an S3 XML error (enough for `Code` and `Message`).
fn xml_field(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{name}>"))? + start;
    Some(body[start..end].trim().to_string())
}

/// Uploads a small file with a presigned POST form; returns the ETag if S3 gives one.
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    fields: &HashMap<String, String>,
    filename: &str,
    content_type: &str,
    data: Bytes,
) -> Result<Option<String>, PutError> {
    let mut form = reqwest::multipart::Form::new();
    for (k, v) in fields {
        form = form.text(k.clone(), v.clone());
    }
    let part = reqwest::multipart::Part::stream_with_length(data.clone(), data.len() as u64)
        .file_name(filename.to_string())
        .mime_str(content_type)
        .map_err(|e| PutError::Fatal(e.to_string()))?;
    form = form.part("file", part);
    let resp = http
        .post(url)
        .multipart(form)
        .send()
        .await
        .map_err(|e| PutError::Transient(Why::Unreachable, describe(&e)))?;
    let status = resp.status();
    let etag = resp
        .headers()
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(etag)
    } else {
        Err(classify(status.as_u16(), &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_errors_are_sorted() {
        let xml =
            |c: &str, m: &str| format!("<Error><Code>{c}</Code><Message>{m}</Message></Error>");
        assert!(matches!(
            classify(403, &xml("AccessDenied", "Request has expired")),
            PutError::Forbidden(_)
        ));
        assert!(matches!(
            classify(400, &xml("InvalidDigest", "x")),
            PutError::Digest(_)
        ));
        assert!(matches!(
            classify(400, &xml("BadDigest", "x")),
            PutError::Digest(_)
        ));
        assert!(matches!(
            classify(503, &xml("SlowDown", "x")),
            PutError::Transient(..)
        ));
        assert!(matches!(
            classify(500, ""),
            PutError::Transient(Why::Failing, _)
        ));
        assert!(matches!(
            classify(503, "<Code>SlowDown</Code>"),
            PutError::Transient(Why::Busy, _)
        ));
        assert!(matches!(
            classify(400, &xml("InvalidPart", "x")),
            PutError::Fatal(_)
        ));
    }
}
