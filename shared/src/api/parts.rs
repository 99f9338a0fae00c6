//! `GET /s3/multipart/{uploadId}` (parts S3 holds, for resuming) and
//! `GET /s3/multipart/{uploadId}/status` (the tracked state).

use super::{Request, owned_upload, response};
use crate::Context;
use crate::error::{Error, Result};
use crate::model::Status;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::json;

/// Every part S3 holds, all pages, as Companion answers: `[{PartNumber, ETag, Size}]`.
pub async fn list(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let upload = owned_upload(ctx, req).await?;
    if upload.status.is_terminal() {
        return Err(Error::NotFound(format!(
            "the upload is {}; it has no parts any more",
            upload.status.as_str()
        )));
    }
    let parts = ctx
        .storage
        .list_parts(&upload.key, &upload.upload_id)
        .await?
        .ok_or_else(|| Error::NotFound("S3 holds no such upload any more".into()))?;
    Ok(response::json(200, &parts))
}

/// The tracked item, plus what S3 holds while the upload is live.
pub async fn status(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let u = owned_upload(ctx, req).await?;
    let mut body = json!({
        "uploadId": u.upload_id,
        "key": u.key,
        "status": u.status,
        "filename": u.filename,
        "contentType": u.content_type,
        "initiatedAt": u.initiated_at,
        "updatedAt": u.updated_at,
        "size": u.size,
        "plan": u.plan,
        "completion": u.completion,
    });
    if u.status == Status::Active
        && let Some(parts) = ctx.storage.list_parts(&u.key, &u.upload_id).await?
    {
        body["uploaded"] = json!({
            "parts": parts.len(),
            "bytes": parts.iter().map(|p| p.size).sum::<u64>(),
        });
    }
    Ok(response::json(200, &body))
}
