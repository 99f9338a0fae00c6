//! `GET /s3/multipart/{uploadId}/download`: a presigned GET for the caller's
//! COMPLETED upload, with what the client needs to check the bytes it gets.

use super::{Request, owned_upload, response};
use crate::Context;
use crate::error::{Error, Result};
use crate::model::Status;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::json;

/// `{url, expires, key, filename, contentType, size, etag, checksum?}` for a
/// completed upload; 409 while it is not completed (or was aborted), 404 for
/// an unknown upload or another owner's (answered alike, see `owned_upload`).
pub async fn download(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let upload = Box::pin(owned_upload(ctx, req)).await?;
    let completion = match (upload.status, upload.completion.as_ref()) {
        (Status::Completed, Some(c)) => c,
        (status, _) => {
            return Err(Error::Conflict(format!(
                "the upload is {}; only a completed upload can be downloaded",
                status.as_str()
            )));
        }
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
