//! `DELETE /s3/multipart/{uploadId}`: abort, confirm no part remains, record it.

use super::{Request, checked_upload_id, response};
use crate::error::{Error, Result};
use crate::model::{AbortReason, Actor, Status};
use crate::store::{Caller, Claim, Stamp};
use crate::{Context, lifecycle};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::json;

/// Idempotent: aborting an aborted upload answers 200 again. A completed
/// upload answers 409 and its object is kept.
///
/// A live upload's ABORTING claim is the first call, conditioned on the
/// caller owning the item, so no read comes before it: the claim, then
/// AbortMultipartUpload, ListParts (to confirm no part landed after the
/// abort, as S3 documents) and the ABORTED record, four in sequence. A claim
/// that loses answers the item as it was, and the lifecycle goes on from
/// that state exactly as from a read.
pub async fn abort(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let upload_id = checked_upload_id(req)?;
    let key = req.query("key");
    let caller = Caller {
        owner: Some(&owner),
        key: key.as_deref(),
    };
    let claim = ctx
        .store
        .claim(
            upload_id,
            caller,
            Status::Active,
            Status::Aborting,
            Stamp::Aborting(Actor::Api, AbortReason::Owner),
            None,
        )
        .await?;
    // Won, the item is ABORTING now and the lifecycle finishes the abort
    // from there; lost, it goes on from the state the claim found.
    let upload = match claim {
        Claim::Won(upload) => upload,
        Claim::Lost(Some(upload))
            if upload.owner == owner && key.as_ref().is_none_or(|k| *k == upload.key) =>
        {
            upload
        }
        Claim::Lost(_) => return Err(Error::NotFound(format!("no upload {upload_id:?}"))),
    };
    let outcome = lifecycle::abort(ctx, &upload, AbortReason::Owner).await?;
    tracing::info!(upload_id = %upload.upload_id, ?outcome, "upload aborted");
    Ok(response::json(200, &json!({ "status": "ABORTED" })))
}
