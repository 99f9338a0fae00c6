//! Serving a loopback AWS stand-in: a free 127.0.0.1 port, HTTP/1, one handler, stopped when
//! dropped; and what every JSON 1.1 stand-in does first: read the body, check the signature and
//! the operation named in `X-Amz-Target`.

use super::sigv4::Signer;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::body::{Bytes, Incoming};
use hyper::http::request::Parts;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A stand-in's listener; the accept loop stops when this is dropped.
pub(crate) struct Listening {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Listening {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Listens on a free loopback port and answers every request on every
/// connection with `respond(state, request)`.
pub(crate) async fn serve<S, F, Fut>(state: Arc<S>, respond: F) -> std::io::Result<Listening>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Copy + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of file descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let answer = respond(state.clone(), req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Listening { addr, task })
}

/// A stand-in's answer.
pub(crate) type Answer = Response<Full<Bytes>>;

/// A JSON 1.1 protocol answer.
pub(crate) fn answer(status: StatusCode, body: Value) -> Answer {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

/// A JSON 1.1 protocol error, as the services write them.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    answer(status, json!({"__type": code, "message": message}))
}

/// Why a request was refused before its operation ran.
pub(crate) enum Refused {
    /// Not answered: the body could not be read.
    Unreadable(Answer),
    /// The signature does not match; the reason, for the service's own error.
    Signature(String),
    /// Another operation than the one served.
    Operation(Answer),
}

/// The request's head and body, if `signer`'s credentials signed it and it
/// asks for `target` (`X-Amz-Target`, e.g. `AWSEvents.PutEvents`).
pub(crate) async fn read_signed(
    req: Request<Incoming>,
    signer: &Signer<'_>,
    target: &str,
) -> Result<(Parts, Bytes), Refused> {
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Err(Refused::Unreadable(error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "unreadable body",
        )));
    };
    signer.verify(&parts, &body).map_err(Refused::Signature)?;
    let asked = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    if asked != Some(target) {
        let op = target.rsplit('.').next().unwrap_or(target);
        return Err(Refused::Operation(error(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            &format!("only {op} is served here"),
        )));
    }
    Ok((parts, body))
}
