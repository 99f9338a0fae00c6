//! `POST /s3/multipart` (start an upload) and `GET /s3/params` (a presigned POST form).

use super::{Request, response};
use crate::error::Result;
use crate::model::{Status, Upload, now_millis};
use crate::plan::PartPlan;
use crate::{Context, keys, validate};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde::Deserialize;
use serde_json::json;

/// Uppy sends `filename`, `type` and `metadata`; `size` is our addition.
#[derive(Deserialize)]
struct CreateBody {
    filename: String,
    #[serde(rename = "type", default)]
    content_type: Option<String>,
    #[serde(default)]
    size: Option<u64>,
}

/// Starts a multipart upload and tracks it. If tracking fails, the S3 upload
/// is aborted before answering: no orphan is left behind.
pub async fn create(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let body: CreateBody = req.json()?;
    let filename = keys::sanitize_filename(&body.filename)?;
    let content_type = validate::content_type(&ctx.config, body.content_type.as_deref())?;
    let size = validate::size(&ctx.config, body.size)?;
    let plan = size
        .map(|s| PartPlan::for_size(s, ctx.config.part_size))
        .transpose()?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let key = keys::build_key(&ctx.config.key_prefix, &owner, &id, &filename)?;

    let upload_id = ctx.storage.create(&key, &content_type).await?;
    let now = now_millis();
    let upload = Upload {
        upload_id,
        key,
        owner,
        status: Status::Active,
        initiated_at: now,
        updated_at: now,
        filename,
        content_type,
        size,
        plan,
        completion: None,
        expires_at: None,
    };
    if let Err(e) = ctx.store.insert(&upload).await {
        if let Err(abort_err) = ctx
            .storage
            .abort_and_confirm(&upload.key, &upload.upload_id, ctx.config.abort_attempts)
            .await
        {
            // The sweep's orphan pass finds it; say so loudly.
            tracing::error!(upload_id = %upload.upload_id, error = %abort_err, "untracked upload could not be aborted");
        }
        return Err(e);
    }
    tracing::info!(upload_id = %upload.upload_id, key = %upload.key, size = ?size, "upload started");
    let mut body = json!({ "key": upload.key, "uploadId": upload.upload_id });
    if let Some(p) = plan {
        body["partSize"] = json!(p.part_size);
        body["partCount"] = json!(p.part_count);
    }
    Ok(response::json(200, &body))
}

/// A presigned POST form for a single-request upload of a small file.
pub async fn post_form(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let filename = keys::sanitize_filename(&req.query("filename").unwrap_or_default())?;
    let content_type = validate::content_type(&ctx.config, req.query("type").as_deref())?;
    let max = ctx.config.max_post_size;
    if let Some(raw) = req.query("size") {
        let size: u64 = raw.parse().map_err(|_| {
            crate::Error::bad_request(format!("size {raw:?} is not a whole number"))
        })?;
        if size > max {
            return Err(crate::Error::TooLarge(format!(
                "{size} bytes is more than {max}, the most one POST upload takes; use multipart"
            )));
        }
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let key = keys::build_key(&ctx.config.key_prefix, &owner, &id, &filename)?;
    let form = ctx
        .presigner
        .post_form(&key, &content_type, max, ctx.config.url_expiry)
        .await?;
    Ok(response::json(200, &form))
}
