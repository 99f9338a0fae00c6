//! A Secrets Manager stand-in on loopback: answers `GetSecretValue` for the
//! secrets it holds, as Secrets Manager does (JSON 1.1 protocol), after
//! checking the request's SigV4 signature against the known credentials (a
//! bad one gets 400 `InvalidSignatureException`, like the service). There is
//! no Secrets Manager in the local stack; this is the one call Partwise makes.

use super::sigv4::Signer;
use super::stand_in::{Answer, Listening, Refused, answer, error, read_signed, serve};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct State {
    access_key: String,
    secret_key: String,
    region: String,
    /// Secret ARN → its string.
    secrets: HashMap<String, String>,
    /// Added before each answer, to stand for a real network round trip.
    latency: Duration,
    served: AtomicU64,
    rejected: AtomicU64,
}

/// A running stand-in; stops when dropped.
pub struct SecretsManager {
    listening: Listening,
    state: Arc<State>,
}

impl SecretsManager {
    /// Listens on a free loopback port, holding `secrets` (ARN → value) and
    /// accepting requests signed with this key for `region`; each answer is
    /// held back `latency` first.
    pub async fn start(
        access_key: &str,
        secret_key: &str,
        region: &str,
        secrets: HashMap<String, String>,
        latency: Duration,
    ) -> std::io::Result<SecretsManager> {
        let state = Arc::new(State {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: region.into(),
            secrets,
            latency,
            served: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        let listening = serve(state.clone(), |state, req| async move {
            respond(&state, req).await
        })
        .await?;
        Ok(SecretsManager { listening, state })
    }

    /// For a stack: its test credentials and region.
    pub async fn for_stack(
        secrets: HashMap<String, String>,
        latency: Duration,
    ) -> std::io::Result<SecretsManager> {
        use crate::stack::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY};
        Self::start(ACCESS_KEY_ID, SECRET_ACCESS_KEY, REGION, secrets, latency).await
    }

    /// The endpoint (`AWS_ENDPOINT_URL_SECRETS_MANAGER`).
    pub fn url(&self) -> String {
        format!("http://{}", self.listening.addr)
    }

    /// `GetSecretValue` calls answered with a secret so far.
    pub fn served(&self) -> u64 {
        self.state.served.load(Ordering::Relaxed)
    }

    /// Requests refused for their signature so far.
    pub fn rejected(&self) -> u64 {
        self.state.rejected.load(Ordering::Relaxed)
    }
}

async fn respond(state: &State, req: Request<Incoming>) -> Answer {
    tokio::time::sleep(state.latency).await;
    let signer = Signer {
        access_key: &state.access_key,
        secret_key: &state.secret_key,
        region: &state.region,
        service: "secretsmanager",
    };
    let body = match read_signed(req, &signer, "secretsmanager.GetSecretValue").await {
        Ok((_, body)) => body,
        Err(Refused::Unreadable(a) | Refused::Operation(a)) => return a,
        Err(Refused::Signature(why)) => {
            state.rejected.fetch_add(1, Ordering::Relaxed);
            return error(StatusCode::BAD_REQUEST, "InvalidSignatureException", &why);
        }
    };
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["SecretId"].as_str().map(str::to_string));
    let Some(id) = id else {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterException",
            "SecretId is required",
        );
    };
    let Some(value) = state.secrets.get(&id) else {
        return error(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret.",
        );
    };
    state.served.fetch_add(1, Ordering::Relaxed);
    let name = id.rsplit(':').next().unwrap_or(&id);
    answer(
        StatusCode::OK,
        json!({
            "ARN": id,
            "Name": name,
            "SecretString": value,
            "VersionId": "00000000-0000-0000-0000-000000000001",
            "VersionStages": ["AWSCURRENT"],
            "CreatedDate": 1.7e9,
        }),
    )
}
