//! `GET /s3/multipart/{uploadId}/download`: a presigned GET for the caller's
//! COMPLETED upload, with what the client needs to check the bytes it gets.

use super::{Request, checked_upload_id, owned, response};
use crate::Context;
use crate::error::{Error, Result};
use crate::model::{Status, UploadKind};
use crate::storage::Created;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::json;

/// `{url, expires, key, filename, contentType, size, etag, checksum?}` for a
/// completed upload; 409 while it is not completed (or was aborted), 404 for
/// an unknown upload or another owner's (answered alike, see `owned`).
///
/// A POST form's or single PUT's object is downloadable as soon as S3 holds
/// it, though S3's notification may not have settled its item yet: S3's
/// answer is read then (this route never writes; `settle` records it).
pub async fn download(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let upload = owned(req, &owner, ctx.store.get(checked_upload_id(req)?).await)?;
    let not_yet = |status: Status| {
        Error::Conflict(format!(
            "the upload is {}; only a completed upload can be downloaded",
            status.as_str()
        ))
    };
    let completion = match (upload.status, upload.completion.as_ref()) {
        (Status::Completed, Some(c)) => Created {
            etag: c.etag.clone(),
            size: c.size,
            checksum: c.checksum.clone(),
        },
        (Status::Active, _) if upload.kind != UploadKind::Multipart => {
            Box::pin(ctx.storage.head_with_checksum(&upload.key))
                .await?
                .ok_or_else(|| not_yet(upload.status))?
        }
        (status, _) => return Err(not_yet(status)),
    };
    let filename = (!upload.filename.is_empty()).then_some(upload.filename.as_str());
    // Boxed: the SDK's presigning future is big, and every handler's future
    // is part of `api::handle`'s.
    let signed = Box::pin(
        ctx.presigner
            .get_object(&upload.key, filename, ctx.config.url_expiry),
    )
    .await?;
    let mut body = json!({
        "url": signed.url,
        "expires": signed.expires,
        "key": upload.key,
        "filename": upload.filename,
        "contentType": upload.content_type,
        "size": completion.size,
        "etag": completion.etag,
    });
    if let Some(c) = &completion.checksum {
        body["checksum"] = json!(c);
    }
    if let Some(plan) = upload.plan {
        // A COMPOSITE checksum is over the parts: the client needs their size to check it.
        body["partSize"] = json!(plan.part_size);
    }
    Ok(response::json(200, &body))
}
