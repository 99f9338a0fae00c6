//! The HTTP API: one handler per operation, all answering API Gateway payload 2.0.
//! Uppy Companion's S3 routes, so `@uppy/aws-s3` works unchanged, plus ours.

mod abort;
pub mod anonymous;
mod complete;
mod download;
mod grant;
mod initiate;
mod parts;
pub mod puts;
mod quota;
pub mod request;
pub mod response;
pub mod routes;
mod sign;
mod uploads;
pub mod wire;

use crate::Context;
use crate::error::{Error, Result};
use crate::model::{Status, Upload};
use crate::storage::Part;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
pub use request::Request;
pub use routes::{Function, Operation, ROUTES, Route};
pub use uploads::{Cursor, UploadSummary};

/// Runs `function` on one API Gateway event. Never fails: errors become JSON answers.
pub async fn handle(
    ctx: &Context,
    function: Function,
    event: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let route_key = event.route_key.as_deref().unwrap_or_default();
    let Some(route) = ROUTES
        .iter()
        .find(|r| r.function == function && r.is(route_key))
    else {
        // As API Gateway would have answered the request: 405 with `Allow` for
        // a known path (a TRACE, say), else 404.
        let method = event.request_context.http.method.as_str();
        let path = event.raw_path.as_deref().unwrap_or_default();
        let err = match routes::resolve(method, path) {
            Err(e) => e,
            Ok(_) => Error::UnknownRoute(format!("no route {route_key:?} in {}", function.name())),
        };
        return response::error(&err);
    };
    // A grant route: the grant is the caller, resolved here once for every handler.
    let granted;
    let (ctx, event) = if route.is_granted() {
        match grant::resolve(ctx, &event).await {
            Ok(resolved) => {
                granted = resolved;
                (&granted.0, &granted.1)
            }
            Err(e) => return response::error(&e),
        }
    } else {
        (ctx, &event)
    };
    // Anonymous mode: a caller without identity acts as an owner of their
    // own, or is refused here, before any handler runs.
    let identified;
    let event = if ctx.config.anonymous && !route.is_granted() {
        match anonymous::identify(ctx, route.operation, event) {
            Ok(Some(e)) => {
                identified = e;
                &identified
            }
            Ok(None) => event,
            Err(e) => return response::error(&e),
        }
    } else {
        event
    };
    let req = Request::new(event);
    // The caller first, as API Gateway's authorizer runs before any function.
    if let Err(e) = req
        .owner(ctx.config.anonymous)
        .and_then(|_| req.check_raw())
    {
        return response::error(&e);
    }
    // Each boxed: the handlers' futures differ widely in size, and inline
    // the largest would be every request's (debug builds overflow a test
    // thread's stack); one allocation a request is nothing beside its calls.
    let result = match route.operation {
        Operation::Create => Box::pin(initiate::create(ctx, &req)).await,
        Operation::PostForm => Box::pin(initiate::post_form(ctx, &req)).await,
        Operation::SignPart => Box::pin(sign::one(ctx, &req)).await,
        Operation::SignBatch => Box::pin(sign::batch(ctx, &req)).await,
        Operation::ListParts => Box::pin(parts::list(ctx, &req)).await,
        Operation::Status => Box::pin(parts::status(ctx, &req)).await,
        Operation::Complete => Box::pin(complete::complete(ctx, &req)).await,
        Operation::Abort => Box::pin(abort::abort(ctx, &req)).await,
        Operation::ListUploads => Box::pin(uploads::list(ctx, &req)).await,
        Operation::SignBatchChecked => Box::pin(sign::batch_checked(ctx, &req)).await,
        Operation::IssueGrant => Box::pin(grant::issue(ctx, &req)).await,
        Operation::Download => Box::pin(download::download(ctx, &req)).await,
        Operation::Quota => Box::pin(quota::usage(ctx, &req)).await,
        Operation::StartPuts => Box::pin(puts::start(ctx, &req)).await,
    };
    result.unwrap_or_else(|e| response::error(&e))
}

/// The caller's upload named by the `uploadId` path parameter (and the `key`
/// query parameter, when given). Another owner's upload is answered like a
/// missing one, so upload ids cannot be probed.
async fn owned_upload(ctx: &Context, req: &Request<'_>) -> Result<Upload> {
    let owner = req.owner(ctx.config.anonymous)?;
    let upload_id = checked_upload_id(req)?;
    let upload = owned(req, &owner, ctx.store.get(upload_id).await)?;
    multipart_only(&upload)?;
    Ok(upload)
}

/// Parts, their URLs and a completion exist only for multipart uploads: a
/// POST form or single PUT is settled by S3's own notification.
fn multipart_only(upload: &Upload) -> Result<()> {
    if upload.kind != crate::model::UploadKind::Multipart {
        return Err(Error::Conflict(format!(
            "upload {} is a single-request ({}) upload: it has no parts, and is settled when S3 reports its object",
            upload.upload_id,
            upload.kind.as_str()
        )));
    }
    Ok(())
}

/// [`owned_upload`] and S3's part list (ListParts, every page) for a live
/// upload, in one round-trip wave when the caller names the `key` (Uppy
/// always does): both calls need only the id and the key, so S3 is asked
/// while DynamoDB is, and its answer is dropped unless the item is the
/// caller's and ACTIVE (nothing of another's upload is ever answered).
/// Without `key`, the item comes first and S3 is asked only for a live upload.
/// `None` means the upload is not ACTIVE; `Some(None)` that S3 has no such upload.
async fn owned_upload_and_parts(
    ctx: &Context,
    req: &Request<'_>,
) -> Result<(Upload, Option<Option<Vec<Part>>>)> {
    let owner = req.owner(ctx.config.anonymous)?;
    let upload_id = checked_upload_id(req)?;
    let Some(key) = req.query("key") else {
        let upload = owned(req, &owner, ctx.store.get(upload_id).await)?;
        let parts = match upload.status {
            Status::Active if upload.kind == crate::model::UploadKind::Multipart => {
                Some(ctx.storage.list_parts(&upload.key, upload_id).await?)
            }
            _ => None,
        };
        return Ok((upload, parts));
    };
    // Boxed: two SDK calls' futures side by side are too big for a thread's stack in debug builds.
    let (item, parts) = futures::join!(
        Box::pin(ctx.store.get(upload_id)),
        Box::pin(ctx.storage.list_parts(&key, upload_id))
    );
    let upload = owned(req, &owner, item)?;
    let parts = match upload.status {
        Status::Active if upload.kind == crate::model::UploadKind::Multipart => Some(parts?),
        _ => None,
    };
    Ok((upload, parts))
}

fn checked_upload_id<'a>(req: &Request<'a>) -> Result<&'a str> {
    let upload_id = req.path("uploadId")?;
    if upload_id.len() > 1024 {
        return Err(Error::bad_request("uploadId is too long"));
    }
    Ok(upload_id)
}

/// The item read for the `uploadId` path parameter, if it is the caller's.
fn owned(req: &Request<'_>, owner: &str, item: Result<Option<Upload>>) -> Result<Upload> {
    let upload_id = req.path("uploadId")?;
    let not_found = || Error::NotFound(format!("no upload {upload_id:?}"));
    let upload = item?.ok_or_else(not_found)?;
    if upload.owner != owner || req.query("key").is_some_and(|k| k != upload.key) {
        return Err(not_found());
    }
    Ok(upload)
}
