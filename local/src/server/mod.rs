//! An API Gateway HTTP API stand-in on loopback: each request is matched
//! against [`partwise::api::ROUTES`], shaped into the exact payload-2.0 event
//! API Gateway would send, and handed to [`partwise::api::handle`], the same
//! function the Lambdas run. CORS and the 10 MB body limit behave as on AWS.
//!
//! ```no_run
//! # async fn demo(stack: &partwise_local::Stack) -> Result<(), Box<dyn std::error::Error>> {
//! use partwise_local::{ServerOptions, spawn};
//! let ctx = std::sync::Arc::new(stack.context()?);
//! let (addr, server) = spawn(ctx, ServerOptions::dev()).await?;
//! // ... requests to http://{addr} ...
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod auth;
mod cors;
mod event;
mod page;
mod parse_errors;
mod response;

pub use cors::Cors;
pub use page::Page;

use crate::template::Template;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use partwise::api::routes::resolve;
use response::{HttpResponse, error_response, internal_server_error, json_response};
use serde_json::json;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// API Gateway HTTP APIs refuse request bodies over 10 MB.
pub const API_GATEWAY_MAX_BODY: usize = 10 * 1024 * 1024;

/// API Gateway HTTP APIs refuse a request whose request line and header
/// values add up to more than this ("Total combined size of request line and
/// header values", a quota that cannot be raised).
pub const MAX_HEAD_BYTES: usize = 10240;

/// How the stand-in behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// DEV MODE: trust `Authorization: Bearer` tokens WITHOUT verification and
    /// pass them on as JWT authorizer claims (see `server/auth.rs`). Off by default.
    pub dev_auth: bool,
    /// CORS configuration; by default `template.yaml`'s HttpApi one, else permissive.
    pub cors: Cors,
    /// Largest request body accepted; larger ones get 413 before any handler runs.
    pub max_body_bytes: usize,
    /// The upload page, served for GET and HEAD requests no API route claims.
    pub page: Option<Page>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        let cors = Template::bundled()
            .map(|t| Cors::from_template(&t))
            .unwrap_or_default();
        ServerOptions {
            port: 0,
            dev_auth: false,
            cors,
            max_body_bytes: API_GATEWAY_MAX_BODY,
            page: None,
        }
    }
}

impl ServerOptions {
    /// The defaults with DEV MODE auth on: what tests that need callers want.
    pub fn dev() -> Self {
        ServerOptions {
            dev_auth: true,
            ..Self::default()
        }
    }
}

/// A running server. Dropping it stops accepting and aborts open connections.
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// Where the server listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits until it has.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// What every connection shares.
struct Shared {
    ctx: Arc<partwise::Context>,
    opts: ServerOptions,
    port: u16,
}

/// Starts serving on 127.0.0.1 (`opts.port`, or a free port) in a background task.
pub async fn spawn(
    ctx: Arc<partwise::Context>,
    opts: ServerOptions,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let listener = TcpListener::bind(("127.0.0.1", opts.port)).await?;
    let addr = listener.local_addr()?;
    if opts.dev_auth {
        tracing::warn!(
            "DEV MODE AUTH on {addr}: bearer tokens are NOT verified; any `Authorization: Bearer <jwt or name>` \
             is trusted as that caller. Never expose this server beyond your machine."
        );
    }
    let shared = Arc::new(Shared {
        ctx,
        opts,
        port: addr.port(),
    });
    let (stop_tx, stop_rx) = oneshot::channel();
    let task = tokio::spawn(accept_loop(listener, shared, stop_rx));
    Ok((
        addr,
        ServerHandle {
            addr,
            stop: Some(stop_tx),
            task: Some(task),
        },
    ))
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    // Dropping the set when the loop ends aborts the open connections.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| {
                            let shared = shared.clone();
                            async move { Ok::<_, Infallible>(respond(&shared, peer, req).await) }
                        });
                        if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(parse_errors::JsonParseErrors::new(stream)), service).await {
                            tracing::debug!("connection from {peer}: {e}");
                        }
                    });
                }
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// One request, end to end, with CORS and the request id on every answer.
async fn respond(shared: &Shared, peer: SocketAddr, req: Request<Incoming>) -> HttpResponse {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let request_headers = req.headers().clone();
    let mut answer = if let Err(err) = head_within_limit(&req) {
        error_response(&err)
    } else if method == Method::OPTIONS {
        let mut r = HttpResponse::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        shared
            .opts
            .cors
            .preflight_headers(&request_headers, r.headers_mut());
        r
    } else {
        let mut r = route(shared, peer, &request_id, req).await;
        shared
            .opts
            .cors
            .response_headers(&request_headers, r.headers_mut());
        r
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        answer
            .headers_mut()
            .insert(HeaderName::from_static("apigw-requestid"), v);
    }
    // Never a grant in full: it is the caller's credential (and was, before
    // grants were sealed, their identity in clear).
    tracing::info!(
        "{method} {} -> {} ({} ms)",
        partwise::api::routes::redacted(&path),
        answer.status().as_u16(),
        started.elapsed().as_millis()
    );
    answer
}

/// API Gateway's limit on the request line and header values together: 414
/// when the request line alone is over it, else 431.
fn head_within_limit(req: &Request<Incoming>) -> Result<(), partwise::Error> {
    // `METHOD SP request-target SP HTTP/1.1`
    let line = req.method().as_str().len() + req.uri().to_string().len() + 10;
    if line > MAX_HEAD_BYTES {
        return Err(partwise::Error::UriTooLong(format!(
            "the request line is {line} bytes, more than {MAX_HEAD_BYTES}"
        )));
    }
    let values: usize = req.headers().values().map(HeaderValue::len).sum();
    if line + values > MAX_HEAD_BYTES {
        return Err(partwise::Error::HeadersTooLarge(format!(
            "the request line and header values are {} bytes, more than {MAX_HEAD_BYTES}",
            line + values
        )));
    }
    Ok(())
}

/// What API Gateway does between the client and the Lambda.
async fn route(
    shared: &Shared,
    peer: SocketAddr,
    request_id: &str,
    req: Request<Incoming>,
) -> HttpResponse {
    let method = req.method().as_str().to_string();
    let (route, path_parameters) = match resolve(&method, req.uri().path()) {
        Ok(found) => found,
        Err(err) => {
            // Paths no API route knows may be the upload page's files.
            let read = matches!(*req.method(), Method::GET | Method::HEAD);
            let page = shared.opts.page.as_ref();
            if let (true, Some(page), partwise::Error::UnknownRoute(_)) = (read, page, &err) {
                let head = *req.method() == Method::HEAD;
                if let Some(answer) = page.serve(req.uri().path(), head).await {
                    return answer;
                }
            }
            return error_response(&err);
        }
    };
    let claims = if shared.opts.dev_auth {
        match auth::claims(req.headers()) {
            Ok(c) => c,
            Err(auth::Unauthorized) => {
                return json_response(
                    StatusCode::UNAUTHORIZED,
                    &json!({"message": "Unauthorized"}),
                );
            }
        }
    } else {
        None
    };
    let (parts, body) = req.into_parts();
    let body = match read_body(&parts.headers, body, shared.opts.max_body_bytes).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let incoming = event::Incoming {
        method: &method,
        raw_path: parts.uri.path(),
        raw_query: parts.uri.query().unwrap_or_default(),
        headers: &parts.headers,
        body: &body,
        protocol: version_name(parts.version),
        source_ip: peer.ip(),
        local_port: shared.port,
        request_id,
        now: time::OffsetDateTime::now_utc(),
    };
    let event = event::build(&incoming, route, &path_parameters, claims);
    let event = match serde_json::from_value(event) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!("event does not deserialize as ApiGatewayV2httpRequest: {e}");
            return internal_server_error();
        }
    };
    // In its own task, so a panicking handler is a 500 (as a crashed Lambda is on AWS).
    let ctx = shared.ctx.clone();
    let function = route.function;
    match tokio::spawn(async move { partwise::api::handle(&ctx, function, event).await }).await {
        Ok(answer) => response::from_lambda(answer),
        Err(e) => {
            tracing::error!("handler for {} failed: {e}", route.key());
            internal_server_error()
        }
    }
}

/// Beyond this much, an oversized body is not drained: the connection is closed.
const DRAIN_CAP: u64 = 64 * 1024 * 1024;

/// The whole body, or the answer to send instead (413 over `limit`).
///
/// An oversized body is still read (and discarded) up to [`DRAIN_CAP`]: closing
/// on a client that is still sending makes it see a reset instead of our 413.
async fn read_body(
    headers: &hyper::HeaderMap,
    mut body: Incoming,
    limit: usize,
) -> Result<Bytes, HttpResponse> {
    let too_large = |close: bool| {
        let err = partwise::Error::TooLarge(format!("request body is larger than {limit} bytes"));
        let mut r = json_response(StatusCode::PAYLOAD_TOO_LARGE, &err.body());
        if close {
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        r
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_CAP) {
        return Err(too_large(true));
    }
    let mut kept = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            tracing::debug!("reading request body: {e}");
            json_response(StatusCode::BAD_REQUEST, &json!({"message": "Bad Request"}))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen += data.len() as u64;
        if seen > DRAIN_CAP {
            return Err(too_large(true));
        }
        if seen <= limit as u64 {
            kept.extend_from_slice(&data);
        }
    }
    if seen > limit as u64 {
        return Err(too_large(false));
    }
    Ok(Bytes::from(kept))
}

fn version_name(v: hyper::Version) -> &'static str {
    match v {
        hyper::Version::HTTP_10 => "HTTP/1.0",
        hyper::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}
