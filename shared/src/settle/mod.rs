//! Settling uploads from S3's own word. S3 says when an object lands ("Object
//! Created"): the `settle` function finds the upload the key belongs to and
//! records it COMPLETED, with the size, ETag and checksum S3 holds, in one
//! conditional write, so the table's stream (→ `notify`) yields exactly one
//! "Upload Completed". That is how POST forms and single PUTs end, and how a
//! multipart upload S3 completed but the table did not record (a crash after
//! S3's complete, or a completion made directly in S3) is settled within
//! seconds. A form or URL never used is settled by the sweep once it has
//! expired ([`expired`]): ABORTED with reason `expired`.
//!
//! Duplicates and out-of-order deliveries change nothing: every write is
//! conditioned on the state it read, and a settled item is left alone. Keys
//! outside the prefix, other buckets and unknown keys change nothing and are logged.

mod notification;

pub use notification::{ObjectCreated, Reason, parse};

use crate::error::Result;
use crate::lifecycle::{self, AbortOutcome};
use crate::model::{AbortReason, Actor, Completion, Status, Upload, UploadKind};
use crate::store::{Caller, Claim, Stamp, Transition};
use crate::{Context, keys};
use serde::Serialize;

/// Rounds of read-then-write before giving up on an item others keep moving.
const ROUNDS: usize = 4;

/// What one notified object came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// This call recorded the upload COMPLETED.
    Completed { upload_id: String, kind: UploadKind },
    /// The upload was settled before (a duplicate, or the API recorded it first).
    AlreadySettled { upload_id: String, status: Status },
    /// S3 no longer has the object (deleted since): nothing to record.
    ObjectGone { upload_id: String },
    /// A key outside the service's prefix: not ours.
    OutsidePrefix { key: String },
    /// Another bucket than the service's.
    OtherBucket { bucket: String },
    /// Under the prefix, but no item tracks it.
    UnknownKey { key: String },
}

/// One Lambda event (EventBridge "Object Created", or S3 records): settles
/// each object it reports, in order. An error (DynamoDB or S3 unreachable)
/// fails the invocation, so Lambda retries it and at last hands it to the
/// on-failure destination; every step is safe to repeat.
pub async fn handle(ctx: &Context, event: serde_json::Value) -> Result<Vec<Outcome>> {
    let objects = parse(&event)?;
    let mut outcomes = Vec::with_capacity(objects.len());
    for o in &objects {
        let outcome = settle_object(ctx, o).await?;
        tracing::info!(key = %o.key, reason = ?o.reason, outcome = ?outcome, "object created");
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

/// Settles the upload `o` belongs to, if any.
pub async fn settle_object(ctx: &Context, o: &ObjectCreated) -> Result<Outcome> {
    if o.bucket != ctx.config.bucket {
        tracing::warn!(bucket = %o.bucket, key = %o.key, "object in another bucket; nothing changed");
        return Ok(Outcome::OtherBucket {
            bucket: o.bucket.clone(),
        });
    }
    if !o.key.starts_with(&ctx.config.key_prefix) {
        tracing::warn!(key = %o.key, prefix = %ctx.config.key_prefix, "object outside the prefix; nothing changed");
        return Ok(Outcome::OutsidePrefix { key: o.key.clone() });
    }
    if let Some(outcome) = settle_blind(ctx, o).await? {
        return Ok(outcome);
    }
    let Some(upload) = find(ctx, o).await? else {
        tracing::warn!(key = %o.key, reason = ?o.reason, "no upload tracks this object; nothing changed");
        return Ok(Outcome::UnknownKey { key: o.key.clone() });
    };
    record_object(ctx, upload, Actor::S3).await
}

/// The usual case of a POST form's or single PUT's object, in one write and
/// no read: its upload's id is read off the key, and it is recorded
/// COMPLETED if it is still ACTIVE at that key (the quota release rides on
/// the write's answer). None when it was not: then [`find`] reads the item
/// and [`record_object`] decides from the state it is in.
async fn settle_blind(ctx: &Context, o: &ObjectCreated) -> Result<Option<Outcome>> {
    let kind = match o.reason {
        Reason::Put => UploadKind::Put,
        Reason::Post => UploadKind::Post,
        Reason::CompleteMultipartUpload | Reason::Other => return Ok(None),
    };
    let Some(upload_id) =
        keys::id_segment(&o.key, &ctx.config.key_prefix).and_then(|id| kind.single_id(id))
    else {
        return Ok(None);
    };
    let Some(object) = ctx.storage.head_with_checksum(&o.key).await? else {
        return Ok(None);
    };
    let completion = Completion {
        etag: object.etag,
        size: object.size,
        location: ctx.presigner.object_url(&o.key).await?,
        checksum: object.checksum,
    };
    let caller = Caller {
        owner: None,
        key: Some(&o.key),
    };
    let claim = ctx
        .store
        .claim(
            &upload_id,
            caller,
            Status::Active,
            Status::Completed,
            Stamp::Completed(Actor::S3),
            Some(&completion),
        )
        .await?;
    Ok(match claim {
        Claim::Won(_) => Some(Outcome::Completed { upload_id, kind }),
        Claim::Lost(_) => None,
    })
}

/// The item tracking `o`'s key: a single-request upload's id is read off the
/// key (one consistent read, the notification's reason saying which kind
/// first); a multipart upload's comes from the key index.
async fn find(ctx: &Context, o: &ObjectCreated) -> Result<Option<Upload>> {
    let singles: &[UploadKind] = match o.reason {
        Reason::Put => &[UploadKind::Put, UploadKind::Post],
        Reason::Post => &[UploadKind::Post, UploadKind::Put],
        Reason::CompleteMultipartUpload => &[],
        Reason::Other => &[UploadKind::Post, UploadKind::Put],
    };
    if let Some(id) = keys::id_segment(&o.key, &ctx.config.key_prefix) {
        for kind in singles {
            let Some(upload_id) = kind.single_id(id) else {
                continue;
            };
            if let Some(u) = ctx.store.get(&upload_id).await?
                && u.key == o.key
            {
                return Ok(Some(u));
            }
        }
    }
    let mut found = vec![];
    for upload_id in ctx.store.ids_by_key(&o.key).await? {
        if let Some(u) = ctx.store.get(&upload_id).await?
            && u.key == o.key
        {
            found.push(u);
        }
    }
    // A live item first: it is the one S3's object settles.
    found.sort_by_key(|u| u.status.is_terminal());
    Ok(found.into_iter().next())
}

/// Records `upload` COMPLETED from the object S3 holds at its key, by one
/// conditional write from the state it was read in (ACTIVE, COMPLETING or
/// ABORTING); if another writer moved it first, reads again and retries.
pub async fn record_object(ctx: &Context, upload: Upload, by: Actor) -> Result<Outcome> {
    let mut current = upload;
    for _ in 0..ROUNDS {
        if current.status.is_terminal() {
            if current.status == Status::Aborted {
                // Its form expired (plus the grace) or it was aborted, and yet an object landed.
                tracing::error!(upload_id = %current.upload_id, key = %current.key,
                    "an object exists for an ABORTED upload; the item stays as it is");
            }
            return Ok(Outcome::AlreadySettled {
                upload_id: current.upload_id,
                status: current.status,
            });
        }
        let Some(object) = ctx.storage.head_with_checksum(&current.key).await? else {
            tracing::warn!(upload_id = %current.upload_id, key = %current.key,
                "S3 reported the object, which is gone now; nothing changed");
            return Ok(Outcome::ObjectGone {
                upload_id: current.upload_id,
            });
        };
        let completion = Completion {
            etag: object.etag,
            size: object.size,
            location: ctx.presigner.object_url(&current.key).await?,
            checksum: object.checksum,
        };
        match ctx
            .store
            .transition_by(
                &current.upload_id,
                current.status,
                Status::Completed,
                Some(&completion),
                Stamp::Completed(by),
            )
            .await?
        {
            Transition::Won => {
                return Ok(Outcome::Completed {
                    upload_id: current.upload_id,
                    kind: current.kind,
                });
            }
            Transition::Lost(Some(now)) => current = *now,
            Transition::Lost(None) => {
                return Ok(Outcome::UnknownKey { key: current.key });
            }
        }
    }
    Err(crate::Error::Unavailable(format!(
        "upload {} kept changing while being settled; retry",
        current.upload_id
    )))
}

/// Settles a single-request upload whose form or URL has expired (plus the
/// grace): COMPLETED if its object landed after all (a missed notification),
/// else ACTIVE → ABORTING (`expired`) → ABORTED, the arrows every abort takes.
pub async fn expired(ctx: &Context, upload: Upload, by: Actor) -> Result<Status> {
    if upload.kind == UploadKind::Multipart {
        return Err(crate::Error::internal(format!(
            "multipart upload {} has no URL expiry",
            upload.upload_id
        )));
    }
    if upload.status == Status::Active && ctx.storage.head(&upload.key).await?.is_some() {
        return Ok(match record_object(ctx, upload, by).await? {
            Outcome::AlreadySettled { status, .. } => status,
            _ => Status::Completed,
        });
    }
    let claimed = match upload.status {
        Status::Active => {
            ctx.store
                .transition_by(
                    &upload.upload_id,
                    Status::Active,
                    Status::Aborting,
                    None,
                    Stamp::Aborting(by, AbortReason::Expired),
                )
                .await?
        }
        Status::Aborting => Transition::Won,
        other => return Ok(other),
    };
    match claimed {
        // Checks the key once more: an object that landed meanwhile makes it COMPLETED.
        Transition::Won => Ok(match lifecycle::finish_abort(ctx, &upload, by).await? {
            AbortOutcome::FoundCompleted => Status::Completed,
            _ => Status::Aborted,
        }),
        Transition::Lost(now) => Ok(now.map_or(Status::Aborted, |u| u.status)),
    }
}
