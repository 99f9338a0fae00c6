//! hyper's own answers to requests it cannot parse, given the JSON error shape.
//!
//! hyper answers a malformed request line (400), a URI over 65,534 bytes (414)
//! and a head over its read buffer or with over 100 headers (431) by itself,
//! with an empty body, and then closes the connection; no service sees the
//! request and hyper has no hook for that answer (hyperium/hyper#3911 is
//! open). This stream wrapper is that hook: it recognizes such an answer as it
//! is written (a complete 4xx head with no body and without the
//! `apigw-requestid` header that every answer of ours carries) and writes the
//! same status with a JSON `Error` body instead.

use hyper::StatusCode;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection whose hyper-made error answers carry JSON bodies.
pub(crate) struct JsonParseErrors<T> {
    inner: T,
    /// A rewritten answer not yet written to `inner`.
    pending: Vec<u8>,
    written: usize,
}

impl<T> JsonParseErrors<T> {
    pub(crate) fn new(inner: T) -> Self {
        JsonParseErrors {
            inner,
            pending: Vec::new(),
            written: 0,
        }
    }
}

impl<T: AsyncWrite + Unpin> JsonParseErrors<T> {
    /// Writes what is pending; ready once nothing is.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParseErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        if let Some(answer) = rewrite(buf) {
            // Taken whole now, written by this and the next polls (flush or shutdown).
            self.pending = answer;
            if let Poll::Ready(Err(e)) = self.drain(cx) {
                return Poll::Ready(Err(e));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each answer's head and body as one
    // buffer, so an answer of its own is always seen whole.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// The JSON answer to write instead of `buf`, when `buf` is exactly one of
/// hyper's own error answers.
fn rewrite(buf: &[u8]) -> Option<Vec<u8>> {
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut head = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = head.parse(buf).ok()? else {
        return None;
    };
    let status = StatusCode::from_u16(head.code?).ok()?;
    let ours = head
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("apigw-requestid"));
    let empty = head
        .headers
        .iter()
        .all(|h| !h.name.eq_ignore_ascii_case("content-length") || h.value.trim_ascii() == b"0");
    if ours || !empty || len != buf.len() || !status.is_client_error() {
        return None;
    }
    let err = match status {
        StatusCode::URI_TOO_LONG => partwise::Error::UriTooLong(format!(
            "the request line is longer than {} bytes",
            super::MAX_HEAD_BYTES
        )),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => partwise::Error::HeadersTooLarge(format!(
            "the request's headers are too many or too large (at most {} bytes of request line and header values)",
            super::MAX_HEAD_BYTES
        )),
        StatusCode::BAD_REQUEST => partwise::Error::bad_request("malformed HTTP request"),
        _ => return None,
    };
    // The status from the error, so code and status always agree.
    let status = StatusCode::from_u16(err.status()).ok()?;
    let body = err.body().to_string();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\napigw-requestid: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len(),
        uuid::Uuid::new_v4(),
    );
    for h in head.headers.iter() {
        let skip = ["content-length", "content-type", "connection"];
        if !skip.iter().any(|s| h.name.eq_ignore_ascii_case(s)) {
            out.push_str(&format!(
                "{}: {}\r\n",
                h.name,
                String::from_utf8_lossy(h.value)
            ));
        }
    }
    out.push_str("\r\n");
    out.push_str(&body);
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn split(answer: &[u8]) -> (String, Value) {
        let text = String::from_utf8(answer.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.to_string(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn hypers_empty_error_answers_become_json() {
        for (status, code) in [
            (400, "BadRequest"),
            (414, "UriTooLong"),
            (431, "HeadersTooLarge"),
        ] {
            let hyper = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: 0\r\ndate: Thu, 26 Nov 2026 00:00:00 GMT\r\n\r\n"
            );
            let (head, body) = split(&rewrite(hyper.as_bytes()).unwrap());
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            assert!(head.contains("date: Thu, 26 Nov 2026"), "{head}");
            assert_eq!(body["error"]["code"], code);
            assert_eq!(body["message"], body["error"]["message"]);
            let len = serde_json::to_string(&body).unwrap().len();
            assert!(head.contains(&format!("content-length: {len}")), "{head}");
        }
    }

    #[test]
    fn our_own_and_other_answers_pass_unchanged() {
        for answer in [
            // Ours: a request id.
            "HTTP/1.1 414 URI Too Long\r\napigw-requestid: x\r\ncontent-length: 0\r\n\r\n",
            // A body.
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}",
            // Not an error, or a head cut short.
            "HTTP/1.1 100 Continue\r\n\r\n",
            "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\ncontent-len",
            "{\"a\": 1}",
        ] {
            assert_eq!(rewrite(answer.as_bytes()), None, "{answer}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever is written, the wrapper never panics, and what it writes
        /// instead is one whole JSON error answer with the same status.
        #[test]
        fn any_write_passes_or_becomes_one_json_answer(
            status in 100u16..600,
            headers in proptest::collection::vec(("[a-z-]{1,12}", "[ -~]{0,20}"), 0..6),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..16),
        ) {
            let mut answer = format!("HTTP/1.1 {status} X\r\n");
            for (k, v) in &headers {
                answer.push_str(&format!("{k}: {v}\r\n"));
            }
            answer.push_str("\r\n");
            let mut bytes = answer.into_bytes();
            bytes.extend_from_slice(&tail);
            if let Some(out) = rewrite(&bytes) {
                proptest::prop_assert!([400, 414, 431].contains(&status));
                proptest::prop_assert!(tail.is_empty());
                let (head, body) = split(&out);
                proptest::prop_assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{}", head);
                proptest::prop_assert!(body["error"]["code"].is_string());
            }
        }
    }
}
