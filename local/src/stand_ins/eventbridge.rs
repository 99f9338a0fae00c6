//! A PutEvents receiver on loopback: the one EventBridge call Partwise makes,
//! answered as EventBridge would, after checking each request's SigV4
//! signature against the known credentials (a bad one gets 403). Accepted
//! entries are recorded; a fault rule can refuse chosen entries on purpose
//! (`FailedEntryCount` and a per-entry `ErrorCode`), as EventBridge does
//! under throttling or an internal failure.

use super::sigv4::Signer;
use super::stand_in::{Answer, Listening, Refused, answer, error, read_signed, serve};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// One entry EventBridge would have accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub source: String,
    pub detail_type: String,
    pub bus: String,
    /// `Time`, as sent (epoch seconds), if any.
    pub time: Option<f64>,
    /// `Detail`, parsed.
    pub detail: Value,
}

impl Received {
    /// The event as a rule's target would see it (envelope and detail), minus
    /// the ids and account EventBridge adds.
    pub fn to_json(&self) -> Value {
        json!({
            "source": self.source,
            "detail-type": self.detail_type,
            "event-bus": self.bus,
            "time": self.time,
            "detail": self.detail,
        })
    }
}

/// Decides whether to refuse an entry: given the entry (as sent) and how many
/// times an entry with the same `Detail` has now been received (1 the first
/// time), an `ErrorCode` to refuse it with, or `None` to accept it.
pub type Fault = dyn Fn(&Value, u32) -> Option<String> + Send + Sync;

struct State {
    access_key: String,
    secret_key: String,
    region: String,
    accepted: Mutex<Vec<Received>>,
    seen: Mutex<HashMap<String, u32>>,
    refused_entries: Mutex<u64>,
    rejected_requests: Mutex<u64>,
    fault: Mutex<Option<Arc<Fault>>>,
    feed: broadcast::Sender<Received>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    listening: Listening,
    state: Arc<State>,
}

impl Receiver {
    /// Listens on a free loopback port, accepting requests signed with this key for `region`.
    pub async fn start(
        access_key: &str,
        secret_key: &str,
        region: &str,
    ) -> std::io::Result<Receiver> {
        let state = Arc::new(State {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: region.into(),
            accepted: Mutex::default(),
            seen: Mutex::default(),
            refused_entries: Mutex::default(),
            rejected_requests: Mutex::default(),
            fault: Mutex::default(),
            feed: broadcast::channel(1024).0,
        });
        let listening = serve(state.clone(), |state, req| async move {
            respond(&state, req).await
        })
        .await?;
        Ok(Receiver { listening, state })
    }

    /// For a stack: its test credentials and region.
    pub async fn for_stack() -> std::io::Result<Receiver> {
        use crate::stack::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};
        Self::start(ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION).await
    }

    /// The endpoint (`AWS_ENDPOINT_URL_EVENTBRIDGE`).
    pub fn url(&self) -> String {
        format!("http://{}", self.listening.addr)
    }

    /// An EventBridge client on `sdk`'s credentials and region, sending here.
    pub fn client(&self, sdk: &aws_config::SdkConfig) -> aws_sdk_eventbridge::Client {
        aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(sdk)
                .endpoint_url(self.url())
                .build(),
        )
    }

    /// Refuse entries by `fault` from now on (`None`: accept all).
    pub fn set_fault(&self, fault: Option<Arc<Fault>>) {
        *lock(&self.state.fault) = fault;
    }

    /// Every entry accepted so far, in order.
    pub fn accepted(&self) -> Vec<Received> {
        lock(&self.state.accepted).clone()
    }

    /// Entries refused by the fault rule so far.
    pub fn refused_entries(&self) -> u64 {
        *lock(&self.state.refused_entries)
    }

    /// Requests answered 403 (bad or missing signature) so far.
    pub fn rejected_requests(&self) -> u64 {
        *lock(&self.state.rejected_requests)
    }

    /// Accepted entries as they arrive.
    pub fn subscribe(&self) -> broadcast::Receiver<Received> {
        self.state.feed.subscribe()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn respond(state: &State, req: Request<Incoming>) -> Answer {
    let signer = Signer {
        access_key: &state.access_key,
        secret_key: &state.secret_key,
        region: &state.region,
        service: "events",
    };
    let body = match read_signed(req, &signer, "AWSEvents.PutEvents").await {
        Ok((_, body)) => body,
        Err(Refused::Unreadable(a) | Refused::Operation(a)) => return a,
        Err(Refused::Signature(why)) => {
            *lock(&state.rejected_requests) += 1;
            return error(StatusCode::FORBIDDEN, "InvalidSignatureException", &why);
        }
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "not JSON",
        );
    };
    let entries = request["Entries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() || entries.len() > 10 {
        return error(
            StatusCode::BAD_REQUEST,
            "ValidationException",
            "Entries must hold 1 to 10 entries",
        );
    }
    let fault = lock(&state.fault).clone();
    let mut failed = 0;
    let mut results = vec![];
    for entry in &entries {
        let detail_text = entry["Detail"].as_str().unwrap_or_default().to_string();
        let attempt = {
            let mut seen = lock(&state.seen);
            let n = seen.entry(detail_text.clone()).or_insert(0);
            *n += 1;
            *n
        };
        let detail = serde_json::from_str::<Value>(&detail_text);
        let refusal = match (
            &detail,
            entry["Source"].as_str(),
            entry["DetailType"].as_str(),
        ) {
            (Ok(Value::Object(_)), Some(_), Some(_)) => {
                fault.as_ref().and_then(|f| f(entry, attempt))
            }
            _ => Some("MalformedDetail".to_string()),
        };
        match refusal {
            Some(code) => {
                failed += 1;
                *lock(&state.refused_entries) += 1;
                results.push(json!({"ErrorCode": code, "ErrorMessage": "refused on purpose"}));
            }
            None => {
                let received = Received {
                    source: entry["Source"].as_str().unwrap_or_default().into(),
                    detail_type: entry["DetailType"].as_str().unwrap_or_default().into(),
                    bus: entry["EventBusName"].as_str().unwrap_or("default").into(),
                    time: entry["Time"].as_f64(),
                    detail: detail.unwrap_or_default(),
                };
                lock(&state.accepted).push(received.clone());
                let _ = state.feed.send(received);
                results.push(json!({"EventId": uuid::Uuid::new_v4().to_string()}));
            }
        }
    }
    answer(
        StatusCode::OK,
        json!({"FailedEntryCount": failed, "Entries": results}),
    )
}
