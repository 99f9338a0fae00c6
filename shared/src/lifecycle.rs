//! The upload lifecycle: S3 calls choreographed with the state machine, so that
//! the tracking item and S3 always end in agreement. The API and the sweep
//! both go through here.

use crate::error::{Error, Result};
use crate::model::{AbortReason, Actor, Completion, Status, Upload, UploadKind, now_millis};
use crate::storage::{Aborted, Completed, Part};
use crate::store::{Stamp, Transition};
use crate::{Context, crashpoint};
use std::time::Duration;

/// A completion older than this is not in progress any more: no Lambda runs
/// longer than 15 minutes.
pub const COMPLETING_LEASE: Duration = Duration::from_secs(15 * 60);

/// Whether a COMPLETING item's claim is older than [`COMPLETING_LEASE`] at
/// `now_ms`: whoever claimed it is dead, and its S3 call ended one way or the other.
pub fn lease_over(upload: &Upload, now_ms: i64) -> bool {
    now_ms - upload.updated_at > COMPLETING_LEASE.as_millis() as i64
}

/// Completes `upload` with `parts` (already checked against S3).
/// A repeated call on a completed upload returns the first result.
pub async fn complete(ctx: &Context, upload: &Upload, parts: &[Part]) -> Result<Completion> {
    // Before the claim: nothing may fail between S3 completing and the record.
    let location = ctx.presigner.object_url(&upload.key).await?;
    match ctx
        .store
        .transition(&upload.upload_id, Status::Active, Status::Completing, None)
        .await?
    {
        Transition::Won => {}
        Transition::Lost(now) => return settled_completion(now.map(|u| *u)),
    }
    crashpoint::reached(crashpoint::COMPLETE_BEFORE_S3);
    let result = ctx
        .storage
        .complete(&upload.key, &upload.upload_id, parts)
        .await;
    match result {
        Ok(Completed::Done { etag, checksum, .. }) => {
            crashpoint::reached(crashpoint::COMPLETE_AFTER_S3);
            let completion = Completion {
                etag,
                size: parts.iter().map(|p| p.size).sum(),
                location,
                checksum,
            };
            record_completed(ctx, upload, completion, Actor::Api).await
        }
        Ok(Completed::Refused { code, message }) => {
            back_to_active(ctx, upload).await?;
            Err(Error::Unprocessable(format!(
                "S3 refused the part list ({code}): {message}"
            )))
        }
        Ok(Completed::NoSuchUpload) => {
            match resolve_vanished(ctx, upload, Status::Completing, Actor::Api).await? {
                Status::Completed => settled_completion(ctx.store.get(&upload.upload_id).await?),
                _ => Err(Error::Conflict(
                    "the upload no longer exists in S3; it was aborted".into(),
                )),
            }
        }
        Err(e) => {
            // S3 may or may not have completed; a retry finds out (NoSuchUpload + object → COMPLETED).
            back_to_active(ctx, upload).await?;
            Err(e)
        }
    }
}

async fn record_completed(
    ctx: &Context,
    upload: &Upload,
    completion: Completion,
    by: Actor,
) -> Result<Completion> {
    match ctx
        .store
        .transition_by(
            &upload.upload_id,
            Status::Completing,
            Status::Completed,
            Some(&completion),
            Stamp::Completed(by),
        )
        .await?
    {
        Transition::Won => Ok(completion),
        Transition::Lost(now) => settled_completion(now.map(|u| *u)),
    }
}

async fn back_to_active(ctx: &Context, upload: &Upload) -> Result<()> {
    ctx.store
        .transition(&upload.upload_id, Status::Completing, Status::Active, None)
        .await
        .map(|_| ())
}

/// The answer to a complete that found the item already moved by someone else.
fn settled_completion(now: Option<Upload>) -> Result<Completion> {
    match now {
        None => Err(Error::NotFound("no such upload".into())),
        Some(u) => match (u.status, u.completion) {
            (Status::Completed, Some(c)) => Ok(c),
            (Status::Completing, _) => Err(Error::Conflict(
                "a completion of this upload is in progress".into(),
            )),
            (Status::Aborting | Status::Aborted, _) => Err(Error::aborted()),
            (Status::Active, _) => Err(Error::Conflict(
                "the upload changed meanwhile; retry".into(),
            )),
            (Status::Completed, None) => Err(Error::internal("completed item without completion")),
        },
    }
}

/// What an abort found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortOutcome {
    /// This call aborted the upload in S3.
    Aborted,
    /// S3 had no such upload any more (aborted before, or by S3's lifecycle rule).
    AlreadyGone,
    /// The item was ABORTED already; nothing was done.
    WasAborted,
    /// S3 had no such upload any more but its object exists: it was completed
    /// outside the service (directly in S3). The item is now COMPLETED.
    FoundCompleted,
}

/// Aborts `upload` in S3 and records it, for `reason` (stamped with the
/// ABORTING claim when this call makes it). Idempotent; refuses completed and
/// completing uploads, so a completed object is never touched. An upload
/// found completed directly in S3 is recorded COMPLETED and refused the same
/// way (409, as for any completed upload): answering 200 "aborted" would
/// tell the client its file is gone while the object is there.
pub async fn abort(ctx: &Context, upload: &Upload, reason: AbortReason) -> Result<AbortOutcome> {
    let completed = || Error::Conflict("the upload is completed; its object is kept".to_string());
    let mut current = upload.status;
    loop {
        match current {
            Status::Aborted => return Ok(AbortOutcome::WasAborted),
            Status::Completed => return Err(completed()),
            Status::Completing => {
                if settle_completing(ctx, upload, Actor::Api).await?.is_some() {
                    return Err(completed());
                }
                if !lease_over(upload, now_millis()) {
                    return Err(Error::Conflict(
                        "a completion of this upload is in progress".into(),
                    ));
                }
                // A claim past its lease with no object: its completion died
                // before S3 made anything, so the owner may abort it.
                match ctx
                    .store
                    .transition_by(
                        &upload.upload_id,
                        Status::Completing,
                        Status::Aborting,
                        None,
                        Stamp::Aborting(Actor::Api, reason),
                    )
                    .await?
                {
                    Transition::Won => current = Status::Aborting,
                    Transition::Lost(Some(now)) => current = now.status,
                    Transition::Lost(None) => return Err(Error::NotFound("no such upload".into())),
                }
            }
            Status::Aborting => {
                return match finish_abort(ctx, upload, Actor::Api).await? {
                    AbortOutcome::FoundCompleted => Err(completed()),
                    outcome => Ok(outcome),
                };
            }
            Status::Active => match ctx
                .store
                .transition_by(
                    &upload.upload_id,
                    Status::Active,
                    Status::Aborting,
                    None,
                    Stamp::Aborting(Actor::Api, reason),
                )
                .await?
            {
                Transition::Won => current = Status::Aborting,
                Transition::Lost(Some(now)) => current = now.status,
                Transition::Lost(None) => return Err(Error::NotFound("no such upload".into())),
            },
        }
    }
}

/// Aborts at once an upload found over its size limit (reason `too_large`),
/// so it holds no bytes, and answers the 413 that says so. An abort that
/// fails is logged and the 413 still answered: the refusal stands, and the
/// sweep aborts what is left.
pub async fn abort_over_limit(ctx: &Context, upload: &Upload, why: String) -> Error {
    let outcome = abort(ctx, upload, AbortReason::TooLarge).await;
    tracing::info!(upload_id = %upload.upload_id, ?outcome, why, "upload over its size limit aborted");
    match outcome {
        Ok(_) => Error::TooLarge(format!(
            "this upload is too large: {why}; it was aborted and its parts deleted"
        )),
        Err(e) if e.status() == 409 => e,
        Err(e) => {
            tracing::warn!(upload_id = %upload.upload_id, error = %e, "over-limit abort failed");
            Error::TooLarge(format!("this upload is too large: {why}"))
        }
    }
}

/// Aborts in S3 an upload already claimed (ABORTING), confirms, records
/// ABORTED; or, when S3 shows it was completed outside the service, records
/// COMPLETED. `by` is who settles it, stamped on a COMPLETED item.
pub async fn finish_abort(ctx: &Context, upload: &Upload, by: Actor) -> Result<AbortOutcome> {
    crashpoint::reached(crashpoint::ABORT_BEFORE_S3);
    // A single-request upload has no multipart upload in S3 to abort: only
    // its object, if it landed after all, can say how it ended.
    let outcome = if upload.kind != UploadKind::Multipart {
        AbortOutcome::AlreadyGone
    } else {
        match ctx
            .storage
            .abort_and_confirm(&upload.key, &upload.upload_id, ctx.config.abort_attempts)
            .await?
        {
            Aborted::Aborted => AbortOutcome::Aborted,
            Aborted::AlreadyGone => AbortOutcome::AlreadyGone,
        }
    };
    if outcome == AbortOutcome::AlreadyGone
        && let Some(completion) = made_object(ctx, upload).await?
    {
        // No abort of ours can have removed the upload while leaving its
        // object: S3 completed it. The item follows S3's truth.
        return match ctx
            .store
            .transition_by(
                &upload.upload_id,
                Status::Aborting,
                Status::Completed,
                Some(&completion),
                Stamp::Completed(by),
            )
            .await?
        {
            Transition::Won => Ok(AbortOutcome::FoundCompleted),
            Transition::Lost(Some(u)) if u.status == Status::Completed => {
                Ok(AbortOutcome::FoundCompleted)
            }
            Transition::Lost(u) => Err(Error::internal(format!(
                "upload {} left ABORTING for {:?} while being settled",
                upload.upload_id,
                u.map(|u| u.status)
            ))),
        };
    }
    crashpoint::reached(crashpoint::ABORT_AFTER_S3);
    match ctx
        .store
        .transition(&upload.upload_id, Status::Aborting, Status::Aborted, None)
        .await?
    {
        Transition::Won => Ok(outcome),
        Transition::Lost(Some(u)) if u.status == Status::Aborted => Ok(outcome),
        Transition::Lost(u) => Err(Error::internal(format!(
            "upload {} left ABORTING for {:?} while being aborted",
            upload.upload_id,
            u.map(|u| u.status)
        ))),
    }
}

/// The completion an object at the upload's key shows, if one exists. The key
/// holds a unique id, so an object there can only come from this upload.
async fn made_object(ctx: &Context, upload: &Upload) -> Result<Option<Completion>> {
    let Some((etag, size)) = ctx.storage.head(&upload.key).await? else {
        return Ok(None);
    };
    // HeadObject reports no checksum without being asked, so none is
    // recorded; the object's own checksum stays in S3.
    Ok(Some(Completion {
        etag,
        size,
        location: ctx.presigner.object_url(&upload.key).await?,
        checksum: None,
    }))
}

/// A COMPLETING item met by a retried call (complete or abort): if its object
/// exists, S3 did complete it, and a crash (or a lost answer) kept that from
/// being recorded; record it now and return it, so the retry gets the result
/// at once rather than a 409 until the sweep's lease runs out. `None` while
/// no object exists: the completion may really still be in progress.
pub async fn settle_completing(
    ctx: &Context,
    upload: &Upload,
    by: Actor,
) -> Result<Option<Completion>> {
    let Some(completion) = made_object(ctx, upload).await? else {
        return Ok(None);
    };
    record_completed(ctx, upload, completion, by)
        .await
        .map(Some)
}

/// A COMPLETING item with no object, met by a retried complete: once its
/// claim is older than `lease` (the longest a completer lives), the call that
/// made it died before S3 completed anything, so the item goes back to ACTIVE
/// and the retry may complete it. Without this the upload is stuck until the
/// sweep aborts it. `false` while the lease runs, or if someone else moved the item.
pub async fn retake_stale_completion(
    ctx: &Context,
    upload: &Upload,
    lease: Duration,
) -> Result<bool> {
    if now_millis() - upload.updated_at <= lease.as_millis() as i64 {
        return Ok(false);
    }
    Ok(matches!(
        ctx.store
            .transition(&upload.upload_id, Status::Completing, Status::Active, None)
            .await?,
        Transition::Won
    ))
}

/// S3 has no multipart upload for an item in `from` (COMPLETING or ACTIVE):
/// settle the item from S3's truth: its object there means it completed
/// ([`made_object`]); otherwise it is gone: aborted.
/// `by` is who noticed, stamped on the item.
pub async fn resolve_vanished(
    ctx: &Context,
    upload: &Upload,
    from: Status,
    by: Actor,
) -> Result<Status> {
    if let Some(completion) = made_object(ctx, upload).await? {
        let mut state = from;
        if state == Status::Active {
            match ctx
                .store
                .transition(&upload.upload_id, Status::Active, Status::Completing, None)
                .await?
            {
                Transition::Won => state = Status::Completing,
                Transition::Lost(now) => return Ok(now.map_or(Status::Aborted, |u| u.status)),
            }
        }
        debug_assert_eq!(state, Status::Completing);
        record_completed(ctx, upload, completion, by).await?;
        return Ok(Status::Completed);
    }
    match ctx
        .store
        .transition_by(
            &upload.upload_id,
            from,
            Status::Aborting,
            None,
            Stamp::Aborting(by, AbortReason::Vanished),
        )
        .await?
    {
        Transition::Won => match finish_abort(ctx, upload, by).await? {
            AbortOutcome::FoundCompleted => Ok(Status::Completed),
            _ => Ok(Status::Aborted),
        },
        Transition::Lost(now) => Ok(now.map_or(Status::Aborted, |u| u.status)),
    }
}
