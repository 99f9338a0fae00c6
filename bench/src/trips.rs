//! Every route's sequential round trips to DynamoDB and S3: one scenario per
//! route, run through the handlers on the local stack, with what each route's
//! minimum is and why. The round-trip test asserts these counts; the `trips`
//! command prints them beside each route's latency through a delay proxy.

use crate::counting::{self, Call, Log};
use partwise::Context;
use partwise_local::calls::{
    ABORT, ApiCall, BATCH, COMPLETE, CREATE, LIST, PARAMS, PUTS, SIGN, STATUS, UPLOADS,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// One route, called as a client calls it (Uppy's parameters: `key` given).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Create,
    SignOne,
    SignBatch,
    ListParts,
    Status,
    Complete,
    CompleteWithHeldParts,
    CompleteAgain,
    Abort,
    AbortAgain,
    PostForm,
    StartPuts,
    ListUploads,
}

impl Scenario {
    pub const ALL: [Scenario; 13] = [
        Scenario::Create,
        Scenario::SignOne,
        Scenario::SignBatch,
        Scenario::ListParts,
        Scenario::Status,
        Scenario::Complete,
        Scenario::CompleteWithHeldParts,
        Scenario::CompleteAgain,
        Scenario::Abort,
        Scenario::AbortAgain,
        Scenario::PostForm,
        Scenario::StartPuts,
        Scenario::ListUploads,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Scenario::Create => "create (`POST /s3/multipart`)",
            Scenario::SignOne => "sign one part",
            Scenario::SignBatch => "sign a batch (`/batch?partNumbers=1-3`)",
            Scenario::ListParts => "list parts (`GET /s3/multipart/{id}`)",
            Scenario::Status => "status (`GET /s3/multipart/{id}/status`)",
            Scenario::Complete => "complete, with the client's part list",
            Scenario::CompleteWithHeldParts => "complete, with every part S3 holds",
            Scenario::CompleteAgain => "complete, repeated (already completed)",
            Scenario::Abort => "abort (`DELETE /s3/multipart/{id}`)",
            Scenario::AbortAgain => "abort, repeated (already aborted)",
            Scenario::PostForm => "POST form (`GET /s3/params`)",
            Scenario::StartPuts => "64 small files' PUTs (`POST /s3/puts`)",
            Scenario::ListUploads => "uploads list (`GET /s3/multipart`)",
        }
    }

    /// The fewest sequential waves the route's guarantees allow, which it makes.
    pub fn minimum(self) -> usize {
        match self {
            Scenario::Create => 2,
            Scenario::SignOne | Scenario::SignBatch => 1,
            Scenario::ListParts | Scenario::Status => 1,
            Scenario::Complete | Scenario::CompleteWithHeldParts => 5,
            Scenario::CompleteAgain => 1,
            Scenario::Abort => 5,
            Scenario::AbortAgain => 1,
            Scenario::PostForm | Scenario::StartPuts => 1,
            Scenario::ListUploads => 1,
        }
    }

    /// Why no fewer will do.
    pub fn why(self) -> &'static str {
        match self {
            Scenario::Create => {
                "CreateMultipartUpload → TransactWriteItems (the item, with its owner's quota counters): the item is keyed by S3's UploadId, which only the first call gives; the quota is charged in the same transaction, so it costs no call of its own"
            }
            Scenario::SignOne | Scenario::SignBatch => {
                "GetItem ‖ ListParts: owner, state, plan and checksum algorithm live only on the item; for an upload that declared no size (as Uppy starts them), the parts S3 holds bound what may be signed, and S3 is asked while DynamoDB is; signing itself is local"
            }
            Scenario::ListParts | Scenario::Status => {
                "GetItem ‖ ListParts: both need only the id and the `key` the client sends, so S3 is asked while DynamoDB is; S3's answer is dropped unless the item is the caller's and ACTIVE (status also reads the upload's metadata in the same wave)"
            }
            Scenario::Complete | Scenario::CompleteWithHeldParts => {
                "GetItem ‖ ListParts → UpdateItem (claim COMPLETING) → CompleteMultipartUpload → UpdateItem (COMPLETED). ListParts stays even with the client's list (only S3 knows part sizes, which the 5 MiB, declared-size and size-limit checks and the recorded size need) but rides in the read's wave; the claim follows the checks so a refused list changes nothing, and precedes S3's complete so an abort cannot race it; then UpdateItem (the owner's quota released), which only the write that made the upload terminal may send, so it follows that write"
            }
            Scenario::CompleteAgain => {
                "GetItem: the first result is on the item (the concurrent ListParts' NoSuchUpload is dropped)"
            }
            Scenario::Abort => {
                "UpdateItem (claim ABORTING, conditioned on the caller owning the item: no read before it) → AbortMultipartUpload → ListParts (confirm no part landed after the abort, as S3 documents) → UpdateItem (ABORTED) → UpdateItem (the owner's quota released, by the write that made it terminal only); each needs the one before"
            }
            Scenario::AbortAgain => {
                "UpdateItem: the claim fails and answers the item as it was (ABORTED), so no read follows"
            }
            Scenario::PostForm => {
                "TransactWriteItems: the form's upload is tracked (with its owner's quota charge in the same transaction) so S3's notification can settle it; the form itself is signed locally"
            }
            Scenario::StartPuts => {
                "TransactWriteItems: every file's upload tracked, and the batch charged to its owner's quotas, in one transaction; the 64 URLs are signed locally"
            }
            Scenario::ListUploads => {
                "one Query of the owner index (more only when a state filter leaves the page short)"
            }
        }
    }
}

/// One measured call: its answer, how long it took, and (through a counting
/// proxy) the DynamoDB and S3 calls it made.
pub struct Measured {
    pub status: u16,
    pub body: Value,
    pub elapsed: Duration,
    pub calls: Vec<Call>,
}

impl Measured {
    pub fn waves(&self) -> Vec<Vec<&Call>> {
        counting::waves(&self.calls)
    }

    pub fn describe(&self) -> String {
        counting::describe(&self.waves())
    }
}

/// Runs `scenario` once as `owner`: sets up what it needs (an upload, a part),
/// then times the route's call alone; `log` (from the context's counting
/// proxies, if any) is emptied first, so only that call's requests are kept.
pub async fn measure(
    ctx: &Context,
    owner: &str,
    scenario: Scenario,
    log: Option<&Log>,
) -> Result<Measured, String> {
    let call = prepare(ctx, owner, scenario).await?;
    if let Some(log) = log {
        log.take();
    }
    let started = Instant::now();
    let (status, body) = call.send(ctx).await;
    let elapsed = started.elapsed();
    let calls = log.map(Log::take).unwrap_or_default();
    if status != 200 {
        return Err(format!("{}: answered {status} {body}", scenario.label()));
    }
    Ok(Measured {
        status,
        body,
        elapsed,
        calls,
    })
}

/// The call of `scenario`, after setting up what it needs.
async fn prepare(ctx: &Context, owner: &str, scenario: Scenario) -> Result<ApiCall, String> {
    let on = |route, up: &(String, String)| {
        ApiCall::new(route, owner)
            .path("uploadId", &up.0)
            .query("key", &up.1)
    };
    Ok(match scenario {
        Scenario::Create => {
            ApiCall::new(CREATE, owner).json(json!({"filename": "trip.bin", "size": 1000}))
        }
        Scenario::PostForm => ApiCall::new(PARAMS, owner)
            .query("filename", "trip.bin")
            .query("type", "application/octet-stream"),
        Scenario::StartPuts => ApiCall::new(PUTS, owner).json(json!({
            "files": (0..64)
                .map(|i| json!({"filename": format!("trip-{i}.bin"), "size": 1000}))
                .collect::<Vec<_>>()
        })),
        Scenario::ListUploads => ApiCall::new(UPLOADS, owner).query("limit", 10),
        Scenario::SignOne => on(SIGN, &started(ctx, owner).await?).path("partNumber", 1),
        Scenario::SignBatch => on(BATCH, &started(ctx, owner).await?).query("partNumbers", "1-3"),
        Scenario::ListParts => on(LIST, &with_part(ctx, owner).await?.0),
        Scenario::Status => on(STATUS, &with_part(ctx, owner).await?.0),
        Scenario::Abort => on(ABORT, &with_part(ctx, owner).await?.0),
        Scenario::AbortAgain => {
            let call = on(ABORT, &with_part(ctx, owner).await?.0);
            let (status, body) = call.send(ctx).await;
            if status != 200 {
                return Err(format!("first abort: {status} {body}"));
            }
            call
        }
        Scenario::CompleteWithHeldParts => {
            on(COMPLETE, &with_part(ctx, owner).await?.0).json(json!({}))
        }
        Scenario::Complete | Scenario::CompleteAgain => {
            let (up, etag) = with_part(ctx, owner).await?;
            let call = on(COMPLETE, &up).json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}));
            if scenario == Scenario::CompleteAgain {
                let (status, body) = call.send(ctx).await;
                if status != 200 {
                    return Err(format!("first complete: {status} {body}"));
                }
            }
            call
        }
    })
}

/// A new upload of undeclared size (as Uppy starts them): (upload id, key).
async fn started(ctx: &Context, owner: &str) -> Result<(String, String), String> {
    let (status, body) = ApiCall::new(CREATE, owner)
        .json(json!({"filename": "trip.bin"}))
        .send(ctx)
        .await;
    match (body["uploadId"].as_str(), body["key"].as_str()) {
        (Some(id), Some(key)) => Ok((id.to_string(), key.to_string())),
        _ => Err(format!("create answered {status} {body}")),
    }
}

/// A new upload holding one small part: ((upload id, key), the part's ETag).
async fn with_part(ctx: &Context, owner: &str) -> Result<((String, String), String), String> {
    let up = started(ctx, owner).await?;
    let part = ctx
        .storage
        .client()
        .upload_part()
        .bucket(ctx.storage.bucket())
        .key(&up.1)
        .upload_id(&up.0)
        .part_number(1)
        .body(vec![7u8; 1000].into())
        .send()
        .await
        .map_err(|e| format!("UploadPart: {e}"))?;
    let etag = part.e_tag().unwrap_or_default().to_string();
    Ok((up, etag))
}
