//! `GET /s3/multipart/{uploadId}` (parts S3 holds, for resuming) and
//! `GET /s3/multipart/{uploadId}/status` (the tracked state).

use super::{Request, owned_upload_and_parts, response};
use crate::Context;
use crate::error::{Error, Result};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::json;

/// Every part S3 holds, all pages, as Companion answers: `[{PartNumber, ETag, Size}]`.
/// One wave with `key` (the item and ListParts at once), else two.
pub async fn list(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let (upload, parts) = owned_upload_and_parts(ctx, req).await?;
    super::multipart_only(&upload)?;
    let Some(parts) = parts else {
        return Err(Error::NotFound(format!(
            "the upload is {}; it has no parts any more",
            upload.status.as_str()
        )));
    };
    let parts = parts.ok_or_else(|| Error::NotFound("S3 holds no such upload any more".into()))?;
    Ok(response::json(200, &parts))
}

/// The tracked item, plus what S3 holds while the upload is live: one wave
/// with `key`, as for the part list.
pub async fn status(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    // The user metadata is read beside the item and the parts (it is dropped
    // unless the item turns out to be the caller's), so it costs no wait.
    let (owned, metadata) = futures::join!(
        Box::pin(owned_upload_and_parts(ctx, req)),
        Box::pin(ctx.store.metadata(req.path("uploadId")?))
    );
    let (u, parts) = owned?;
    let metadata = metadata?;
    let mut body = json!({
        "uploadId": u.upload_id,
        "key": u.key,
        "status": u.status,
        "kind": u.kind,
        "filename": u.filename,
        "contentType": u.content_type,
        "initiatedAt": u.initiated_at,
        "updatedAt": u.updated_at,
        "size": u.size,
        "plan": u.plan,
        "completion": u.completion,
    });
    // What the client stored with the upload (the CLI's file fingerprint, say).
    if !metadata.is_empty() {
        body["metadata"] = json!(metadata);
    }
    if let Some(Some(parts)) = parts {
        body["uploaded"] = json!({
            "parts": parts.len(),
            "bytes": parts.iter().map(|p| p.size).sum::<u64>(),
        });
    }
    Ok(response::json(200, &body))
}
