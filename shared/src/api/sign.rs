//! `GET /s3/multipart/{uploadId}/{partNumber}` and the batch form
//! `GET /s3/multipart/{uploadId}/batch?partNumbers=1,2,5-9`.

use super::{Request, owned_upload, response};
use crate::error::{Error, Result};
use crate::model::{Status, Upload};
use crate::{Context, validate};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::{Map, json};

/// Signing is only for live uploads still taking parts.
async fn active_upload(ctx: &Context, req: &Request<'_>) -> Result<Upload> {
    let upload = owned_upload(ctx, req).await?;
    if upload.status != Status::Active {
        return Err(Error::Conflict(format!(
            "the upload is {}; parts can no longer be uploaded",
            upload.status.as_str()
        )));
    }
    Ok(upload)
}

/// One part URL: `{url, expires}` as Companion answers.
pub async fn one(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let upload = active_upload(ctx, req).await?;
    let n = validate::part_number(req.path("partNumber")?, upload.plan.map(|p| p.part_count))?;
    let signed = ctx
        .presigner
        .part(&upload.key, &upload.upload_id, n, ctx.config.url_expiry)
        .await?;
    Ok(response::json(200, &signed))
}

/// Many part URLs in one call: `{presignedUrls: {"1": url, ...}, expires}`.
pub async fn batch(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let upload = active_upload(ctx, req).await?;
    let raw = req
        .query("partNumbers")
        .ok_or_else(|| Error::bad_request("partNumbers is required, e.g. partNumbers=1,2,5-9"))?;
    let numbers = validate::part_numbers(
        &raw,
        upload.plan.map(|p| p.part_count),
        ctx.config.max_batch_sign,
    )?;
    let mut urls = Map::with_capacity(numbers.len());
    for n in numbers {
        let signed = ctx
            .presigner
            .part(&upload.key, &upload.upload_id, n, ctx.config.url_expiry)
            .await?;
        urls.insert(n.to_string(), json!(signed.url));
    }
    Ok(response::json(
        200,
        &json!({ "presignedUrls": urls, "expires": ctx.config.url_expiry.as_secs() }),
    ))
}
