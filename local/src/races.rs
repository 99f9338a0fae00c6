//! Race trials on the local stack, shared by the tests (200 trials in CI) and
//! the load bench (1,000): complete racing abort, and complete racing the
//! sweep, on one upload each. Every trial must end in one terminal state that
//! S3 agrees with; any other ending is reported as an inconsistent state.

use crate::calls::{ABORT, ApiCall, COMPLETE, CREATE};
use aws_sdk_s3::error::ProvideErrorMetadata;
use futures::StreamExt;
use partwise::Context;
use partwise::model::{Status, now_millis};
use partwise::sweep::{self, SweepRequest};
use serde_json::json;
use std::time::Duration;

/// What the trials of one race came to.
#[derive(Debug, Default)]
pub struct RaceReport {
    pub trials: usize,
    pub completed: usize,
    pub aborted: usize,
    /// One line per trial that ended anywhere else (or could not be set up).
    pub inconsistent: Vec<String>,
}

impl RaceReport {
    fn add(&mut self, outcome: Result<Status, String>) {
        self.trials += 1;
        match outcome {
            Ok(Status::Completed) => self.completed += 1,
            Ok(Status::Aborted) => self.aborted += 1,
            Ok(other) => self.inconsistent.push(format!("left {other:?}")),
            Err(e) => self.inconsistent.push(e),
        }
    }
}

/// `trials` uploads, `concurrency` at a time, each completed and aborted at
/// once through the API: exactly one call wins (200, the other 409), the item
/// ends COMPLETED with the object or ABORTED without it, and no multipart
/// upload is left in S3.
pub async fn complete_vs_abort(ctx: &Context, trials: usize, concurrency: usize) -> RaceReport {
    let owner = format!("racer-{}", uuid::Uuid::new_v4().simple());
    let mut report = RaceReport::default();
    let mut outcomes = futures::stream::iter(0..trials)
        .map(|i| abort_trial(ctx, &owner, i))
        .buffer_unordered(concurrency.max(1));
    while let Some(o) = outcomes.next().await {
        report.add(o);
    }
    report
}

async fn abort_trial(ctx: &Context, owner: &str, i: usize) -> Result<Status, String> {
    let (upload_id, key, etag, _) = started(ctx, owner, i).await?;
    let complete = ApiCall::new(COMPLETE, owner)
        .path("uploadId", &upload_id)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}));
    let abort = ApiCall::new(ABORT, owner).path("uploadId", &upload_id);
    let ((c, cb), (a, ab)) = tokio::join!(complete.send(ctx), abort.send(ctx));
    if !matches!((c, a), (200, 409) | (409, 200)) {
        return Err(format!("trial {i}: complete {c} {cb}, abort {a} {ab}"));
    }
    let status = settled(ctx, &upload_id, &key, i).await?;
    let object = object(ctx, &key).await?;
    match status {
        Status::Completed if c == 200 && object.is_some() => Ok(status),
        Status::Aborted if a == 200 && object.is_none() => Ok(status),
        other => Err(format!(
            "trial {i}: {other:?}, complete {c}, abort {a}, object {}",
            if object.is_some() {
                "present"
            } else {
                "absent"
            }
        )),
    }
}

/// `trials` uploads, `concurrency` at a time, each completed through the API
/// while a sweep whose cutoff makes it stale runs: the sweep fails nothing,
/// the item ends COMPLETED with the object's exact bytes (complete answered
/// 200) or ABORTED without an object (complete answered 409), never
/// COMPLETING, and no multipart upload is left in S3. `ctx` should have a key
/// prefix of its own; each trial sweeps only its own key.
pub async fn complete_vs_sweep(ctx: &Context, trials: usize, concurrency: usize) -> RaceReport {
    let owner = format!("racer-{}", uuid::Uuid::new_v4().simple());
    let mut report = RaceReport::default();
    let mut outcomes = futures::stream::iter(0..trials)
        .map(|i| sweep_trial(ctx, &owner, i))
        .buffer_unordered(concurrency.max(1));
    while let Some(o) = outcomes.next().await {
        report.add(o);
    }
    report
}

async fn sweep_trial(ctx: &Context, owner: &str, i: usize) -> Result<Status, String> {
    let (upload_id, key, etag, bytes) = started(ctx, owner, i).await?;
    let req = SweepRequest {
        cutoff_ms: now_millis() + 1,
        dry_run: false,
        prefix: key.clone(),
        limit: None,
    };
    tokio::time::sleep(Duration::from_millis(2)).await;
    let complete = ApiCall::new(COMPLETE, owner)
        .path("uploadId", &upload_id)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}));
    let ((c, body), s) = tokio::join!(complete.send(ctx), sweep::run(ctx, &req, None));
    if s.failed != 0 {
        return Err(format!("trial {i}: the sweep failed {} uploads", s.failed));
    }
    let status = settled(ctx, &upload_id, &key, i).await?;
    let object = object(ctx, &key).await?;
    match (c, status) {
        (200, Status::Completed) if object.as_deref() == Some(&bytes[..]) => Ok(status),
        (409, Status::Aborted) if object.is_none() => Ok(status),
        _ => Err(format!(
            "trial {i}: complete {c} {body}, item {status:?}, object {}",
            if object.is_some() {
                "present"
            } else {
                "absent"
            }
        )),
    }
}

/// Creates upload `i` through the API and puts one small part straight into
/// S3: (upload id, key, the part's ETag, its bytes).
async fn started(
    ctx: &Context,
    owner: &str,
    i: usize,
) -> Result<(String, String, String, Vec<u8>), String> {
    let (status, body) = ApiCall::new(CREATE, owner)
        .json(json!({"filename": format!("race-{i}.bin")}))
        .send(ctx)
        .await;
    let (Some(id), Some(key)) = (body["uploadId"].as_str(), body["key"].as_str()) else {
        return Err(format!("trial {i}: create answered {status} {body}"));
    };
    let bytes: Vec<u8> = (0..64u8)
        .map(|b| b.wrapping_mul(31).wrapping_add(i as u8))
        .collect();
    let part = ctx
        .storage
        .client()
        .upload_part()
        .bucket(ctx.storage.bucket())
        .key(key)
        .upload_id(id)
        .part_number(1)
        .body(bytes.clone().into())
        .send()
        .await
        .map_err(|e| format!("trial {i}: UploadPart: {e}"))?;
    let etag = part.e_tag().unwrap_or_default().to_string();
    Ok((id.to_string(), key.to_string(), etag, bytes))
}

/// The item's final state, checked to be terminal, with S3 holding no
/// multipart upload for it any more.
async fn settled(ctx: &Context, upload_id: &str, key: &str, i: usize) -> Result<Status, String> {
    let item = ctx
        .store
        .get(upload_id)
        .await
        .map_err(|e| format!("trial {i}: GetItem: {e}"))?
        .ok_or_else(|| format!("trial {i}: item gone"))?;
    if !item.status.is_terminal() {
        return Err(format!("trial {i}: item left {:?}", item.status));
    }
    match ctx
        .storage
        .client()
        .list_parts()
        .bucket(ctx.storage.bucket())
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
    {
        Ok(_) => Err(format!("trial {i}: upload still in S3 ({:?})", item.status)),
        Err(e) if e.code() == Some("NoSuchUpload") => Ok(item.status),
        Err(e) => Err(format!("trial {i}: ListParts: {e}")),
    }
}

/// The object's bytes, if it exists.
async fn object(ctx: &Context, key: &str) -> Result<Option<Vec<u8>>, String> {
    match ctx
        .storage
        .client()
        .get_object()
        .bucket(ctx.storage.bucket())
        .key(key)
        .send()
        .await
    {
        Ok(o) => Ok(Some(
            o.body
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .into_bytes()
                .to_vec(),
        )),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
        Err(e) => Err(format!("GetObject: {e}")),
    }
}
