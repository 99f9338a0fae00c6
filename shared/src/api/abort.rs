//! `DELETE /s3/multipart/{uploadId}`: abort, confirm no part remains, record it.

use super::{Request, owned_upload, response};
use crate::error::Result;
use crate::{Context, lifecycle};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde_json::json;

/// Idempotent: aborting an aborted upload answers 200 again. A completed
/// upload answers 409 and its object is kept.
pub async fn abort(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let upload = owned_upload(ctx, req).await?;
    let outcome = lifecycle::abort(ctx, &upload).await?;
    tracing::info!(upload_id = %upload.upload_id, ?outcome, "upload aborted");
    Ok(response::json(200, &json!({ "status": "ABORTED" })))
}
