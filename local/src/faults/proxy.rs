//! The proxy server: one per upstream (Garage or DynamoDB Local), bound to a
//! free loopback port, stopped when dropped, counting what it did.

use super::rules::{Fault, Rule, Service};
use super::{bodies, decide, operation};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What a proxy saw and did so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests received.
    pub requests: u64,
    /// Requests that reached the upstream (including those reset after).
    pub forwarded: u64,
    /// Faults injected, by [`Fault::kind`].
    pub injected: BTreeMap<&'static str, u64>,
}

impl Counts {
    /// Faults injected, all kinds.
    pub fn injected_total(&self) -> u64 {
        self.injected.values().sum()
    }
}

struct Shared {
    service: Service,
    upstream: SocketAddr,
    seed: u64,
    rules: Vec<Rule>,
    enabled: AtomicBool,
    next: AtomicU64,
    counts: Mutex<Counts>,
}

/// A running fault proxy.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

/// The service future gives up on the connection: hyper closes it, and the
/// zero linger set just before turns the close into a reset.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`service`),
    /// injecting by `rules` with `seed`.
    pub async fn start(
        service: Service,
        upstream: SocketAddr,
        rules: Vec<Rule>,
        seed: u64,
    ) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            service,
            upstream,
            seed,
            rules,
            enabled: AtomicBool::new(true),
            next: AtomicU64::new(0),
            counts: Mutex::new(Counts::default()),
        });
        let accepting = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = accepting.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let fd = stream.as_raw_fd();
                    let service = service_fn(move |req| serve(shared.clone(), fd, req));
                    // Errors here are the resets we inject, or clients giving up.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    /// `http://127.0.0.1:PORT`, to use as an SDK endpoint.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches injection on or off; requests are forwarded untouched while off.
    pub fn set_enabled(&self, on: bool) {
        self.shared.enabled.store(on, Ordering::SeqCst);
    }

    /// What the proxy did so far.
    pub fn counts(&self) -> Counts {
        lock(&self.shared.counts).clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

fn lock(m: &Mutex<Counts>) -> std::sync::MutexGuard<'_, Counts> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn serve(
    shared: Arc<Shared>,
    fd: RawFd,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let index = shared.next.fetch_add(1, Ordering::SeqCst);
    let fault = if shared.enabled.load(Ordering::SeqCst) {
        let op = operation::name(shared.service, &req);
        decide(shared.seed, index, &shared.rules, shared.service, &op)
    } else {
        None
    };
    {
        let mut c = lock(&shared.counts);
        c.requests += 1;
        if let Some(f) = fault {
            *c.injected.entry(f.kind()).or_default() += 1;
        }
    }
    if let Some(answer) = fault.and_then(|f| bodies::answer(f, index)) {
        return Ok(answer.map(Full::new));
    }
    match fault {
        Some(Fault::ResetBefore) => return Err(reset(fd)),
        Some(Fault::Stall(d)) => {
            tokio::time::sleep(d).await;
            return Err(reset(fd));
        }
        Some(Fault::Latency(d)) => tokio::time::sleep(d).await,
        _ => {}
    }
    let answer = forward(shared.upstream, req).await;
    lock(&shared.counts).forwarded += 1;
    match (fault, answer) {
        (Some(Fault::ResetAfter), _) | (_, Err(_)) => Err(reset(fd)),
        (_, Ok(answer)) => Ok(answer),
    }
}

/// Sets a zero linger on the connection, so closing it sends a reset (RST),
/// not an orderly end: what a crashed peer or a middlebox does.
fn reset(fd: RawFd) -> Dropped {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: `fd` is the connection this service future belongs to; hyper
    // keeps it open while the future runs. The option value is a valid `linger`.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    Dropped
}

/// Forwards one request on a fresh upstream connection and reads the whole answer.
/// Headers pass unchanged (the Host the client signed included); bodies are
/// buffered, so the framing is re-declared with a length.
async fn forward(
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> io::Result<Response<Full<Bytes>>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    forward_buffered(upstream, parts, body).await
}

/// [`forward`] for a request already read whole (the S3 notification
/// transport reads a POST form's body before forwarding it).
pub(crate) async fn forward_buffered(
    upstream: SocketAddr,
    mut parts: hyper::http::request::Parts,
    body: Bytes,
) -> io::Result<Response<Full<Bytes>>> {
    if parts.headers.remove(TRANSFER_ENCODING).is_some() {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }

    parts.headers.remove(CONNECTION);
    if let Some(pq) = parts.uri.path_and_query().cloned() {
        parts.uri = pq.as_str().parse().map_err(io::Error::other)?;
    }
    let stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(conn);
    let answer = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(io::Error::other)?;
    let (mut parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    if parts.headers.remove(TRANSFER_ENCODING).is_some() {
        parts
            .headers
            .insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    }
    parts.headers.remove(CONNECTION);
    Ok(Response::from_parts(parts, Full::new(body)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An empty body's `Content-Length: 0` reaches the upstream: S3 may have
    /// it signed (an empty file's PUT URL).
    #[tokio::test]
    async fn an_empty_bodys_content_length_is_forwarded() {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        let seen = tokio::spawn(async move {
            let (mut s, _) = upstream.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase()
        });
        let (parts, _) = Request::put("http://x/b/k")
            .header(CONTENT_LENGTH, "0")
            .body(())
            .unwrap()
            .into_parts();
        let answer = forward_buffered(addr, parts, Bytes::new()).await.unwrap();
        assert_eq!(answer.status(), 200);
        let head = seen.await.unwrap();
        assert!(head.contains("content-length: 0"), "{head}");
    }
}
