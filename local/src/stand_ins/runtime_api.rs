//! A Lambda Runtime API stand-in on loopback: hands events to a function's real binary, as Lambda does, and collects its answers.
//!
//! The binary is started with `AWS_LAMBDA_RUNTIME_API` pointing here (see
//! [`RuntimeApi::command`]); it long-polls `GET …/invocation/next`, gets each
//! queued event with the headers Lambda sends (request id, deadline, ARN),
//! and posts its response or error back. Nothing of `lambda_runtime` is
//! bypassed, so the deadline handling is exercised as on AWS.

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

const PREFIX: &str = "/2018-06-01/runtime";

/// The `Lambda-Runtime-Deadline-Ms` an invocation carries.
#[derive(Debug, Clone, Copy)]
pub enum Deadline {
    /// This long after the function picks the event up, as Lambda computes it.
    After(Duration),
    /// Exactly this header value, epoch milliseconds or not (broken invokers send durations).
    Header(u64),
}

/// What the function answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Response(Value),
    Error(Value),
}

struct Invocation {
    id: String,
    deadline: Deadline,
    payload: Value,
}

struct Shared {
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
    init_error: Mutex<Option<Value>>,
    /// When the first `GET …/invocation/next` arrived: the end of init.
    first_next: watch::Sender<Option<Instant>>,
}

/// A running Runtime API. Dropping it stops serving.
pub struct RuntimeApi {
    addr: SocketAddr,
    queue: mpsc::UnboundedSender<Invocation>,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl RuntimeApi {
    /// Listens on a free loopback port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (queue, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let shared = Arc::new(Shared {
            waiting: Mutex::default(),
            init_error: Mutex::default(),
            first_next: watch::Sender::new(None),
        });
        let state = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (rx, state) = (rx.clone(), state.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| serve(req, rx.clone(), state.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Ok(RuntimeApi {
            addr,
            queue,
            shared,
            task,
        })
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// A command that runs `binary` as Lambda would: the runtime variables
    /// set, the caller's environment (the stack's endpoints, `PARTWISE_*`) kept.
    pub fn command(&self, binary: &Path, function_name: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(binary);
        cmd.env("AWS_LAMBDA_RUNTIME_API", self.endpoint())
            .env("AWS_LAMBDA_FUNCTION_NAME", function_name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{function_name}"),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .kill_on_drop(true);
        cmd
    }

    /// Queues `payload` and waits for the function's answer, at most `wait`.
    pub async fn invoke(
        &self,
        payload: Value,
        deadline: Deadline,
        wait: Duration,
    ) -> Option<Answer> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.waiting).insert(id.clone(), tx);
        self.queue
            .send(Invocation {
                id: id.clone(),
                deadline,
                payload,
            })
            .ok()?;
        let answer = tokio::time::timeout(wait, rx).await.ok()?.ok();
        lock(&self.shared.waiting).remove(&id);
        answer
    }

    /// When the function first asked for an event (its init ended), waiting
    /// for it at most `wait`. The instant is taken as the request arrives,
    /// before the long poll blocks, so it measures the function, not the queue.
    pub async fn ready(&self, wait: Duration) -> Option<Instant> {
        let mut rx = self.shared.first_next.subscribe();
        let at = tokio::time::timeout(wait, rx.wait_for(Option::is_some))
            .await
            .ok()?
            .ok()?;
        *at
    }

    /// What the function posted to `/init/error`, if it failed to start.
    pub fn init_error(&self) -> Option<Value> {
        lock(&self.shared.init_error).clone()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

async fn serve(
    req: Request<Incoming>,
    queue: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>>,
    shared: Arc<Shared>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(StatusCode::NOT_FOUND, ""));
    };
    if method == Method::GET && rest == "/invocation/next" {
        let now = Instant::now();
        shared
            .first_next
            .send_if_modified(|at| at.is_none() && at.replace(now).is_none());
        // Long poll, as Lambda's: one invocation at a time per caller.
        let Some(inv) = queue.lock().await.recv().await else {
            return Ok(reply(StatusCode::GONE, ""));
        };
        let deadline = match inv.deadline {
            Deadline::After(d) => now_ms() + d.as_millis() as u64,
            Deadline::Header(v) => v,
        };
        let body = serde_json::to_vec(&inv.payload).unwrap_or_default();
        let resp = Response::builder()
            .header("Lambda-Runtime-Aws-Request-Id", &inv.id)
            .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
            .header(
                "Lambda-Runtime-Invoked-Function-Arn",
                "arn:aws:lambda:us-east-1:000000000000:function:local",
            )
            .header(
                "Lambda-Runtime-Trace-Id",
                "Root=1-00000000-000000000000000000000000",
            )
            .body(Full::new(Bytes::from(body)));
        return Ok(resp.unwrap_or_else(|_| reply(StatusCode::INTERNAL_SERVER_ERROR, "")));
    }
    if method != Method::POST {
        return Ok(reply(StatusCode::METHOD_NOT_ALLOWED, ""));
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    if rest == "/init/error" {
        *lock(&shared.init_error) = Some(value);
        return Ok(reply(StatusCode::ACCEPTED, "{}"));
    }
    let answer = rest
        .strip_prefix("/invocation/")
        .and_then(|r| r.rsplit_once('/'))
        .and_then(|(id, kind)| match kind {
            "response" => Some((id, Answer::Response(value.clone()))),
            "error" => Some((id, Answer::Error(value.clone()))),
            _ => None,
        });
    match answer {
        Some((id, answer)) => {
            if let Some(tx) = lock(&shared.waiting).remove(id) {
                let _ = tx.send(answer);
            }
            Ok(reply(StatusCode::ACCEPTED, "{}"))
        }
        None => Ok(reply(StatusCode::NOT_FOUND, "")),
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}
