//! `POST /s3/puts`: many small files started at once, a presigned PUT each.
//!
//! A small file as a multipart upload costs three calls (start, sign,
//! complete) around its one PUT; here a batch of files costs one call, and
//! each file its PUT. Each URL has the file's exact length (and CRC32C, when
//! given) signed in, so S3 takes no other bytes; each upload is tracked as a
//! `put` item, charged to the owner's quotas with the others in one
//! transaction, and settled by S3's notification like any single PUT.

use super::initiate::{Single, url_expiry_ms};
use super::{Request, response};
use crate::error::{Error, Result};
use crate::model::{ChecksumAlgorithm, UploadKind};
use crate::presign::ObjectPut;
use crate::store::Store;
use crate::{Context, keys, metadata, validate};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde::{Deserialize, Serialize};

/// The most files one call starts: within one DynamoDB transaction with the
/// quota counters, and a quick answer.
pub const MAX_PUTS: usize = 64;
const _: () = assert!(MAX_PUTS <= Store::MAX_BATCH);

#[derive(Deserialize)]
struct PutsBody {
    files: Vec<PutFile>,
}

#[derive(Deserialize)]
struct PutFile {
    filename: String,
    #[serde(rename = "type", default)]
    content_type: Option<String>,
    /// Required: it is signed into the URL.
    size: Option<u64>,
    /// The file's CRC32C, base64: signed in, so S3 checks the bytes.
    #[serde(rename = "checksumCRC32C", default)]
    crc32c: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

/// One file, checked, with its key.
struct Checked {
    id: String,
    key: String,
    filename: String,
    content_type: String,
    size: u64,
    crc32c: Option<String>,
    metadata: metadata::Metadata,
}

/// Starts every file of the body, or none: a bad file refuses the call
/// (naming it), and the quotas count the batch as a whole.
pub async fn start(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let body: PutsBody = req.json()?;
    if body.files.is_empty() || body.files.len() > MAX_PUTS {
        return Err(Error::bad_request(format!(
            "files holds {} files: give 1 to {MAX_PUTS} in one call",
            body.files.len()
        )));
    }
    let files = body
        .files
        .iter()
        .enumerate()
        .map(|(i, f)| check(ctx, &owner, f).map_err(|e| e.about(&format!("files[{i}]"))))
        .collect::<Result<Vec<_>>>()?;
    let expires_ms = url_expiry_ms(ctx);
    let mut signed = Vec::with_capacity(files.len());
    let mut uploads = Vec::with_capacity(files.len());
    for f in &files {
        let put = ObjectPut {
            key: &f.key,
            content_type: &f.content_type,
            content_length: f.size,
            crc32c: f.crc32c.as_deref(),
            metadata: &f.metadata,
        };
        signed.push(
            ctx.presigner
                .put_object_with(&put, ctx.config.url_expiry)
                .await?,
        );
        let single = Single {
            kind: UploadKind::Put,
            id: &f.id,
            key: &f.key,
            owner: &owner,
            filename: &f.filename,
            content_type: &f.content_type,
            size: Some(f.size),
            metadata: &f.metadata,
        };
        uploads.push((single.upload(expires_ms)?, f.metadata.clone()));
    }
    // Tracked (and charged) before any URL is answered: nothing goes untracked.
    ctx.store.insert_batch(&uploads).await?;
    tracing::info!(owner = %owner, files = uploads.len(), "small uploads started");
    let answer = PutsAnswer {
        uploads: uploads
            .into_iter()
            .zip(signed)
            .map(|((upload, _), url)| StartedPut {
                key: upload.key,
                upload_id: upload.upload_id,
                method: "PUT",
                url: url.url,
                headers: url.headers,
                expires: url.expires,
            })
            .collect(),
    };
    Ok(response::json(200, &answer))
}

/// The answer: one PUT per file, in the order given.
#[derive(Debug, Serialize)]
pub struct PutsAnswer {
    pub uploads: Vec<StartedPut>,
}

/// One file's PUT: send exactly `headers` with it.
#[derive(Debug, Serialize)]
pub struct StartedPut {
    pub key: String,
    #[serde(rename = "uploadId")]
    pub upload_id: String,
    pub method: &'static str,
    pub url: String,
    pub headers: std::collections::BTreeMap<String, String>,
    pub expires: u64,
}

fn check(ctx: &Context, owner: &str, f: &PutFile) -> Result<Checked> {
    let filename = keys::sanitize_filename(&f.filename)?;
    let content_type = validate::content_type(&ctx.config, f.content_type.as_deref())?;
    let size = validate::size(&ctx.config, f.size)?
        .ok_or_else(|| Error::bad_request("size is required: it is signed into the URL"))?;
    let max = ctx.config.max_post_size;
    if size > max {
        return Err(Error::TooLarge(format!(
            "{size} bytes is more than {max}, the most one single-request upload takes; use multipart (POST /s3/multipart)"
        )));
    }
    let crc32c = f
        .crc32c
        .as_deref()
        .map(|v| ChecksumAlgorithm::Crc32c.check_value(v))
        .transpose()?;
    let metadata = metadata::from_uppy(f.metadata.as_ref())?;
    let id = uuid::Uuid::now_v7().simple().to_string();
    let key = keys::build_key(&ctx.config.key_prefix, owner, &id, &filename)?;
    Ok(Checked {
        id,
        key,
        filename,
        content_type,
        size,
        crc32c,
        metadata,
    })
}
