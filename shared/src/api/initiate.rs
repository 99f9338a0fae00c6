//! `POST /s3/multipart` (start an upload) and `GET /s3/params` (a presigned POST form).

use super::{Request, response};
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::model::{ChecksumAlgorithm, Status, Upload, UploadKind, now_millis};
use crate::plan::PartPlan;
use crate::{Context, keys, metadata, validate};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde::Deserialize;
use serde_json::json;

/// Uppy sends `filename`, `type` and `metadata`; `size` and
/// `checksumAlgorithm` are our additions.
#[derive(Deserialize)]
struct CreateBody {
    filename: String,
    #[serde(rename = "type", default)]
    content_type: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "checksumAlgorithm", default)]
    checksum_algorithm: Option<String>,
    /// The client's preferred part size (5 MiB – 5 GiB); grown like the
    /// configured one to stay within 10,000 parts.
    #[serde(rename = "partSize", default)]
    part_size: Option<u64>,
    /// Uppy's file metadata: the object's user metadata, and on the item.
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// Starts a multipart upload and tracks it. If tracking fails, the S3 upload
/// is aborted before answering: no orphan is left behind. An empty file
/// (`size: 0`) cannot be a multipart upload (it needs a part, and a part
/// cannot be empty), so it gets one presigned PUT instead, tracked as a
/// `put` upload that S3's notification settles.
pub async fn create(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let body: CreateBody = req.json()?;
    let filename = keys::sanitize_filename(&body.filename)?;
    let content_type = validate::content_type(&ctx.config, body.content_type.as_deref())?;
    let size = validate::size(&ctx.config, body.size)?;
    let checksum = checksum_algorithm(body.checksum_algorithm.as_deref())?;
    let user_metadata = metadata::from_uppy(body.metadata.as_ref())?;
    let preferred = validate::part_size(body.part_size)?.unwrap_or(ctx.config.part_size);
    let plan = size.map(|s| PartPlan::for_size(s, preferred)).transpose()?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let key = keys::build_key(&ctx.config.key_prefix, &owner, &id, &filename)?;
    if size == Some(0) {
        let single = Single {
            kind: UploadKind::Put,
            id: &id,
            key: &key,
            owner: &owner,
            filename: &filename,
            content_type: &content_type,
            size,
            metadata: &user_metadata,
        };
        return empty_file(ctx, &single).await;
    }
    if size.is_none() && ctx.config.require_declared_size {
        return Err(Error::bad_request(
            "this service needs the file's size: give size (in bytes), so every part URL is signed for its exact size",
        ));
    }

    let upload_id = ctx
        .storage
        .create_upload(&key, &content_type, checksum, &user_metadata)
        .await?;
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
        checksum,
        kind: UploadKind::Multipart,
        url_expires_at: None,
    };
    if let Err(e) = ctx
        .store
        .insert_with_metadata(&upload, &user_metadata)
        .await
    {
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
    if let Some(a) = checksum {
        body["checksumAlgorithm"] = json!(a.as_str());
        body["checksumType"] = json!(a.checksum_type());
    }
    Ok(response::json(200, &body))
}

/// The optional `checksumAlgorithm`: one S3 knows, in S3's spelling.
fn checksum_algorithm(raw: Option<&str>) -> Result<Option<ChecksumAlgorithm>> {
    raw.map(|a| {
        ChecksumAlgorithm::parse(a).ok_or_else(|| {
            Error::bad_request(format!(
                "checksumAlgorithm {a:?} is not one of CRC32C, CRC32, SHA256, CRC64NVME"
            ))
        })
    })
    .transpose()
}

/// A single-request upload about to be handed out (a POST form or a PUT URL).
pub(super) struct Single<'a> {
    pub(super) kind: UploadKind,
    /// The key's unique id segment.
    pub(super) id: &'a str,
    pub(super) key: &'a str,
    pub(super) owner: &'a str,
    pub(super) filename: &'a str,
    pub(super) content_type: &'a str,
    /// The planned size, when the client declared one.
    pub(super) size: Option<u64>,
    pub(super) metadata: &'a Metadata,
}

/// Tracks a single-request upload as an ACTIVE item through the same insert
/// as a multipart one; S3's notification settles it ([`crate::settle`]),
/// or its expiry does. Called once the form or URL is signed and before it
/// is answered: a failure here hands nothing out, so nothing goes untracked.
async fn track(ctx: &Context, single: &Single<'_>, url_expires_ms: i64) -> Result<String> {
    let upload = single.upload(url_expires_ms)?;
    ctx.store
        .insert_with_metadata(&upload, single.metadata)
        .await?;
    tracing::info!(upload_id = %upload.upload_id, key = %upload.key, kind = single.kind.as_str(), "single-request upload tracked");
    Ok(upload.upload_id)
}

impl Single<'_> {
    /// The ACTIVE item tracking it, its URL good until `url_expires_ms`.
    pub(super) fn upload(&self, url_expires_ms: i64) -> Result<Upload> {
        let single = self;
        let upload_id = single
            .kind
            .single_id(single.id)
            .ok_or_else(|| Error::internal("a multipart upload is not a single request"))?;
        let now = now_millis();
        Ok(Upload {
            upload_id,
            key: single.key.to_string(),
            owner: single.owner.to_string(),
            status: Status::Active,
            initiated_at: now,
            updated_at: now,
            filename: single.filename.to_string(),
            content_type: single.content_type.to_string(),
            size: single.size,
            plan: None,
            completion: None,
            expires_at: None,
            checksum: None,
            kind: single.kind,
            url_expires_at: Some(url_expires_ms),
        })
    }
}

/// When a URL signed now with the configured expiry stops working, in epoch ms.
pub(super) fn url_expiry_ms(ctx: &Context) -> i64 {
    now_millis() + ctx.config.url_expiry.as_millis() as i64
}

/// An empty file: one presigned PUT of the whole (empty) object, which works
/// on S3 and on local S3s alike, tracked as a `put` upload.
async fn empty_file(ctx: &Context, single: &Single<'_>) -> Result<ApiGatewayV2httpResponse> {
    let expires_ms = url_expiry_ms(ctx);
    let signed = ctx
        .presigner
        .put_object(single.key, single.content_type, 0, ctx.config.url_expiry)
        .await?;
    let upload_id = track(ctx, single, expires_ms).await?;
    Ok(response::json(
        200,
        &json!({
            "key": single.key,
            "uploadId": upload_id,
            "method": "PUT",
            "url": signed.url,
            "headers": signed.headers,
            "expires": signed.expires,
        }),
    ))
}

/// The POST form's answer: the form, and the id its upload is tracked by.
#[derive(serde::Serialize)]
struct FormAnswer {
    #[serde(rename = "uploadId")]
    upload_id: String,
    #[serde(flatten)]
    form: crate::presign::PostForm,
}

/// A presigned POST form for a single-request upload of a small file.
pub async fn post_form(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let filename = keys::sanitize_filename(&req.query("filename").unwrap_or_default())?;
    let content_type = validate::content_type(&ctx.config, req.query("type").as_deref())?;
    // One value per name: the event splits values at commas, `req.query` joins them back.
    let names: std::collections::BTreeSet<&str> = req
        .event
        .query_string_parameters
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("metadata["))
        .collect();
    let values: Vec<(&str, String)> = names
        .into_iter()
        .filter_map(|k| Some((k, req.query(k)?)))
        .collect();
    let user_metadata = metadata::from_query(values.iter().map(|(k, v)| (*k, v.as_str())))?;
    let max = ctx.config.max_post_size;
    let mut size = None;
    if let Some(raw) = req.query("size") {
        let declared: u64 = raw.parse().map_err(|_| {
            crate::Error::bad_request(format!("size {raw:?} is not a whole number"))
        })?;
        if declared > max {
            return Err(crate::Error::TooLarge(format!(
                "{declared} bytes is more than {max}, the most one POST upload takes; use multipart"
            )));
        }
        size = Some(declared);
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let key = keys::build_key(&ctx.config.key_prefix, &owner, &id, &filename)?;
    let expires_ms = url_expiry_ms(ctx);
    let form = ctx
        .presigner
        .post_form(
            &key,
            &content_type,
            max,
            ctx.config.url_expiry,
            &user_metadata,
        )
        .await?;
    let single = Single {
        kind: UploadKind::Post,
        id: &id,
        key: &key,
        owner: &owner,
        filename: &filename,
        content_type: &content_type,
        size,
        metadata: &user_metadata,
    };
    let upload_id = track(ctx, &single, expires_ms).await?;
    Ok(response::json(200, &FormAnswer { upload_id, form }))
}
