//! `POST /grants` (issue an upload grant) and the `/g/{grant}/...` routes,
//! where the grant in the path is the caller's identity and limits.

use super::request::set_owner;
use super::{Request, response};
use crate::Context;
use crate::error::{Error, Result};
use crate::grants::{Claims, GrantRequest, intersect_types};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use serde_json::json;

/// Issues a grant for the caller: `{endpoint, expires}`, where `endpoint` is
/// this API's base URL followed by `/g/{grant}`, for Uppy's `companionEndpoint`.
/// In anonymous mode a caller without identity has been given a fresh owner
/// (`api::anonymous`), so each such grant is one visitor's alone.
pub async fn issue(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let keys = ctx
        .grant_keys
        .keys()
        .await?
        .ok_or_else(|| Error::Forbidden("upload grants are not enabled on this API".into()))?;
    let body: GrantRequest = req.json()?;
    let claims = body.claims(&owner, now_secs(), ctx.config.max_upload_size, |t| {
        ctx.config.content_type_allowed(t)
    })?;
    let grant = keys.seal(&claims)?;
    let expires = time::OffsetDateTime::from_unix_timestamp(claims.expires as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .ok_or_else(|| Error::internal("grant expiry out of range"))?;
    // The owner and expiry, never the grant: it is a credential.
    tracing::info!(owner = %claims.owner, expires = %expires, grant = %crate::grants::fingerprint(&grant), "upload grant issued");
    Ok(response::json(
        200,
        &json!({
            "endpoint": format!("{}/g/{grant}", base_url(req.event)),
            "expires": expires,
        }),
    ))
}

/// For a `/g/{grant}/...` route: verifies the grant and answers the context
/// and event the handler runs with. The grant's owner becomes the caller
/// exactly as a JWT `sub` would (any other identity on the request is
/// dropped), and its limits narrow the configuration. A bad grant is a 401
/// before any handler, S3 or DynamoDB call.
pub(super) async fn resolve(
    ctx: &Context,
    event: &ApiGatewayV2httpRequest,
) -> Result<(Context, ApiGatewayV2httpRequest)> {
    let keys =
        ctx.grant_keys.keys().await?.ok_or_else(|| {
            Error::Unauthorized("upload grants are not enabled on this API".into())
        })?;
    let grant = event
        .path_parameters
        .get("grant")
        .ok_or_else(|| Error::Unauthorized("the upload grant is missing".into()))?;
    let claims = keys.open(grant, now_secs())?;
    let mut event = event.clone();
    event.path_parameters.remove("grant");
    set_owner(&mut event, claims.owner.clone());
    Ok((narrowed(ctx, &claims), event))
}

/// `ctx` held to the grant's limits: the smaller file size, the content types
/// both accept, and never anonymous (the grant names its owner).
fn narrowed(ctx: &Context, claims: &Claims) -> Context {
    let mut config = ctx.config.clone();
    if let Some(max) = claims.max_file_size {
        config.max_upload_size = config.max_upload_size.min(max);
        config.max_post_size = config.max_post_size.min(max);
    }
    if let Some(types) = &claims.content_types {
        config.allowed_content_types = intersect_types(&config.allowed_content_types, types);
    }
    config.anonymous = false;
    Context {
        config,
        store: ctx.store.clone(),
        storage: ctx.storage.clone(),
        presigner: ctx.presigner.clone(),
        grant_keys: ctx.grant_keys.clone(),
    }
}

/// The API's base URL as the caller reached it: scheme, host, and the stage
/// unless it is `$default`.
fn base_url(event: &ApiGatewayV2httpRequest) -> String {
    let host = event
        .request_context
        .domain_name
        .as_deref()
        .or_else(|| event.headers.get("host").and_then(|h| h.to_str().ok()))
        .unwrap_or("localhost");
    let scheme = event
        .headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "http" || *p == "https")
        .unwrap_or("https");
    match event.request_context.stage.as_deref() {
        Some(stage) if stage != "$default" && !stage.is_empty() => {
            format!("{scheme}://{host}/{stage}")
        }
        _ => format!("{scheme}://{host}"),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
