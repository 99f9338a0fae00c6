//! `GET /quota`: what the caller uses of each per-owner quota, and the limits.

use super::{Request, response};
use crate::Context;
use crate::error::Result;
use crate::model::now_millis;
use crate::quota::counters;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde::Serialize;

/// `{owner, quotas: {liveUploads: {usage, limit}, bytesInFlight: …, uploadsPerMinute: …}}`,
/// read from the counters the quotas are enforced with (a limit of `null` is none).
pub async fn usage(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let usage =
        counters::usage(ctx.store.client(), ctx.store.table(), &owner, now_millis()).await?;
    Ok(response::json(
        200,
        &QuotaUsage {
            owner: &owner,
            quotas: usage.figures(ctx.store.quotas()),
        },
    ))
}

/// The answer: the caller and its figures.
#[derive(Serialize)]
struct QuotaUsage<'a> {
    owner: &'a str,
    quotas: serde_json::Value,
}
