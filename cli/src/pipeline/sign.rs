//! Stage "sign": part URLs on demand, batched: senders ask for one URL each, and every ask
//! waiting at that moment goes to the API in one batch call.

use crate::api::{Api, Lifetime};
use crate::error::{CliError, Result};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

/// Most parts signed in one call (the API's default `PARTWISE_MAX_BATCH_SIGN`).
const MAX_BATCH: usize = 1000;

/// A presigned PUT and the headers signed into it.
#[derive(Debug, Clone)]
pub struct Url {
    pub url: String,
    pub headers: HashMap<String, String>,
    pub lifetime: Lifetime,
}

struct Ask {
    part: u32,
    checksum: Option<String>,
    reply: oneshot::Sender<Result<Url>>,
}

/// A handle to the signing task.
#[derive(Clone)]
pub struct Signer {
    tx: mpsc::Sender<Ask>,
}

impl Signer {
    /// Starts the task for one upload; with `checksums`, parts are signed with theirs.
    pub fn start(api: Api, upload_id: String, key: String, checksums: bool) -> Signer {
        let (tx, rx) = mpsc::channel(MAX_BATCH);
        tokio::spawn(run(api, upload_id, key, checksums, rx));
        Signer { tx }
    }

    /// A URL for `part` (with its base64 `checksum` when the upload uses them).
    pub async fn url(&self, part: u32, checksum: Option<String>) -> Result<Url> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Ask {
                part,
                checksum,
                reply,
            })
            .await
            .map_err(|_| CliError::Other("the signing task stopped".into()))?;
        answer
            .await
            .map_err(|_| CliError::Other("the signing task stopped".into()))?
    }
}

async fn run(
    api: Api,
    upload_id: String,
    key: String,
    checksums: bool,
    mut rx: mpsc::Receiver<Ask>,
) {
    while let Some(first) = rx.recv().await {
        let mut asks = vec![first];
        while asks.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(a) => asks.push(a),
                Err(_) => break,
            }
        }
        // A part asked for twice in one batch (a retry racing): sign it once per call.
        let mut batch: Vec<Ask> = Vec::with_capacity(asks.len());
        let mut later: Vec<Ask> = Vec::new();
        for a in asks {
            if batch.iter().any(|b| b.part == a.part) {
                later.push(a);
            } else {
                batch.push(a);
            }
        }
        for round in [batch, later] {
            if round.is_empty() {
                continue;
            }
            let answer = if checksums {
                let parts: Vec<(u32, String)> = round
                    .iter()
                    .map(|a| (a.part, a.checksum.clone().unwrap_or_default()))
                    .collect();
                api.sign_checksums(&upload_id, &key, &parts).await
            } else {
                let parts: Vec<u32> = round.iter().map(|a| a.part).collect();
                api.sign(&upload_id, &key, &parts).await
            };
            for a in round {
                let result = match &answer {
                    Err(e) => Err(e.clone()),
                    Ok(s) => s
                        .presigned_urls
                        .get(&a.part.to_string())
                        .map(|url| Url {
                            url: url.clone(),
                            headers: s
                                .headers
                                .get(&a.part.to_string())
                                .cloned()
                                .unwrap_or_default(),
                            lifetime: Lifetime::from_now(s.expires),
                        })
                        .ok_or_else(|| {
                            CliError::Other(format!("the API signed no URL for part {}", a.part))
                        }),
                };
                let _ = a.reply.send(result);
            }
        }
    }
}
