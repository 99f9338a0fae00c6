//! A loopback HTTP forward proxy between the CLI (through `HTTP_PROXY`) and
//! the API and S3: it logs every part or object PUT from the outside (part
//! number and S3's status) and can hold or corrupt chosen ones on their way.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// One PUT that reached S3 through the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutSeen {
    /// The part number; 0 for a whole object's PUT (a small file's).
    pub part: u32,
    pub status: u16,
}

/// What the proxy does to part PUTs.
#[derive(Debug, Default, Clone)]
pub struct Behavior {
    /// Hold every part PUT this long before forwarding it.
    pub delay_each: Option<Duration>,
    /// Hold only the first PUT of this part this long (its URL may expire meanwhile).
    pub delay_first_of: Option<(u32, Duration)>,
    /// Hold the first PUT of this part this long, then close it unanswered
    /// (a 502 to the client, seen with status 0), as S3 may do to a request
    /// whose URL expired meanwhile.
    pub cut_first_of: Option<(u32, Duration)>,
    /// Flip a byte in every PUT of this part.
    pub corrupt: Option<u32>,
    /// Requests to this `host:port` (the API) get their connection closed
    /// unanswered until this moment, as from a server that is down.
    pub down: Option<(String, std::time::Instant)>,
}

#[derive(Default)]
struct State {
    behavior: Mutex<Behavior>,
    puts: Mutex<Vec<PutSeen>>,
    /// Every request: method and URL.
    requests: Mutex<Vec<(String, String)>>,
    in_flight: AtomicI64,
}

/// A running proxy; it stops with the test's runtime.
#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    http: reqwest::Client,
}

impl Proxy {
    pub async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Proxy {
            addr,
            state: Arc::new(State::default()),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        };
        let p = proxy.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let p = p.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let p = p.clone();
                        async move {
                            if p.is_down(&req) {
                                // An error from the service closes the connection unanswered.
                                return Err("down");
                            }
                            Ok::<_, &'static str>(p.forward(req).await)
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, b: Behavior) {
        *self.state.behavior.lock().unwrap() = b;
    }

    /// Every request so far, `(method, url)`, in the order received.
    pub fn requests(&self) -> Vec<(String, String)> {
        self.state.requests.lock().unwrap().clone()
    }

    fn is_down(&self, req: &Request<Incoming>) -> bool {
        self.state
            .requests
            .lock()
            .unwrap()
            .push((req.method().to_string(), req.uri().to_string()));
        let b = self.state.behavior.lock().unwrap().clone();
        match (b.down, req.uri().authority()) {
            (Some((host, until)), Some(a)) => {
                a.as_str() == host && std::time::Instant::now() < until
            }
            _ => false,
        }
    }

    /// Part PUTs seen so far (each with S3's answer), in the order answered.
    pub fn puts(&self) -> Vec<PutSeen> {
        self.state.puts.lock().unwrap().clone()
    }

    pub fn clear(&self) {
        self.state.puts.lock().unwrap().clear();
    }

    /// Waits (bounded) until no request is being forwarded.
    pub async fn settle(&self) {
        for _ in 0..200 {
            if self.state.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("proxy still forwarding after 10 s");
    }

    async fn forward(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        // Counted down on drop too: a killed client cancels the forward midway.
        let _busy = Busy::new(&self.state.in_flight);
        let answer = self.forward_inner(req).await;
        answer.unwrap_or_else(|e| {
            eprintln!("proxy: {e}");
            let mut r = Response::new(Full::new(Bytes::from(e)));
            *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
            r
        })
    }

    async fn forward_inner(&self, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, String> {
        let (parts, body) = req.into_parts();
        let url = parts.uri.to_string();
        let part = part_number(&parts.uri)
            .or_else(|| (parts.method == hyper::Method::PUT && is_object(&parts.uri)).then_some(0));
        let mut body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let is_put = parts.method == hyper::Method::PUT && part.is_some();
        if let (true, Some(n)) = (is_put, part) {
            let b = self.state.behavior.lock().unwrap().clone();
            let first = !self.puts().iter().any(|p| p.part == n);
            let mut delay = b.delay_each;
            if let Some((dn, d)) = b.delay_first_of
                && dn == n
                && first
            {
                delay = Some(d);
            }
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            if let Some((cn, d)) = b.cut_first_of
                && cn == n
                && first
            {
                tokio::time::sleep(d).await;
                self.state
                    .puts
                    .lock()
                    .unwrap()
                    .push(PutSeen { part: n, status: 0 });
                return Err("cut off unanswered (as told)".into());
            }
            if b.corrupt == Some(n) && !body.is_empty() {
                let mut v = body.to_vec();
                v[0] ^= 0xff;
                body = Bytes::from(v);
            }
        }
        let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
        let mut rb = self.http.request(method, &url).body(body);
        for (k, v) in &parts.headers {
            if HOP_BY_HOP.contains(&k.as_str()) {
                continue;
            }
            rb = rb.header(k.as_str(), v.as_bytes());
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => {
                // The server closed the connection without an answer (Garage
                // refuses an expired URL that signs Content-Length before it
                // reads the body): seen, with status 0.
                if let (true, Some(n)) = (is_put, part) {
                    self.state
                        .puts
                        .lock()
                        .unwrap()
                        .push(PutSeen { part: n, status: 0 });
                }
                return Err(e.to_string());
            }
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
        if let (true, Some(n)) = (is_put, part) {
            self.state
                .puts
                .lock()
                .unwrap()
                .push(PutSeen { part: n, status });
        }
        let mut r = Response::new(Full::new(bytes));
        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        for (k, v) in &headers {
            if HOP_BY_HOP.contains(&k.as_str()) {
                continue;
            }
            if let (Ok(k), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(k.as_str().as_bytes()),
                hyper::header::HeaderValue::from_bytes(v.as_bytes()),
            ) {
                r.headers_mut().append(k, v);
            }
        }
        Ok(r)
    }
}

struct Busy<'a>(&'a AtomicI64);

impl<'a> Busy<'a> {
    fn new(n: &'a AtomicI64) -> Self {
        n.fetch_add(1, Ordering::SeqCst);
        Busy(n)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: &[&str] = &[
    "proxy-connection",
    "connection",
    "keep-alive",
    "transfer-encoding",
];

/// A PUT of a whole object: a presigned URL with no subresource.
fn is_object(uri: &hyper::Uri) -> bool {
    uri.query().is_some_and(|q| q.contains("x-id=PutObject"))
}

fn part_number(uri: &hyper::Uri) -> Option<u32> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("partNumber="))?
        .parse()
        .ok()
}
