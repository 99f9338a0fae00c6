//! `GET /s3/multipart/{uploadId}/{partNumber}`, the batch form
//! `GET /s3/multipart/{uploadId}/batch?partNumbers=1,2,5-9`, and
//! `POST /s3/multipart/{uploadId}/batch` with each part's checksum.

use super::{Request, owned_upload, owned_upload_and_parts, response};
use crate::config::limits;
use crate::error::{Error, Result};
use crate::model::{Status, Upload};
use crate::presign::{PartRequest, PartSigner};
use crate::storage::{Part, PartChecksum};
use crate::{Context, lifecycle, validate};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde::Deserialize;
use serde_json::{Map, json};

/// Signing is only for live uploads still taking parts. For an upload that
/// declared no size, also the parts S3 holds, which bound what it may sign
/// ([`Unsized`]): asked in the item read's wave when `in_wave` (the one-part
/// route, which is how Uppy signs, and Uppy declares no size), else only
/// once the item shows no size (the batch routes, whose clients declare it).
async fn active_upload(
    ctx: &Context,
    req: &Request<'_>,
    in_wave: bool,
) -> Result<(Upload, Option<Unsized>)> {
    let (upload, held) = if in_wave && req.query("key").is_some() {
        let (upload, held) = owned_upload_and_parts(ctx, req).await?;
        (upload, held.flatten())
    } else {
        let upload = owned_upload(ctx, req).await?;
        let held = match (upload.status, upload.size) {
            (Status::Active, None) => {
                ctx.storage
                    .list_parts(&upload.key, &upload.upload_id)
                    .await?
            }
            _ => None,
        };
        (upload, held)
    };
    if upload.status != Status::Active {
        return Err(Error::Conflict(format!(
            "the upload is {}; parts can no longer be uploaded",
            upload.status.as_str()
        )));
    }
    let bound = match upload.size {
        Some(_) => None,
        None => Some(Unsized::new(ctx, &upload, held.unwrap_or_default()).await?),
    };
    Ok((upload, bound))
}

/// What an upload without a declared size may still sign. No part URL of
/// it can have its size signed in, so each could carry up to S3's 5 GiB;
/// what bounds it is signing: a part number whose earlier parts alone
/// (5 MiB at least each) would pass the limit is refused, and so is one more
/// than `PARTWISE_UNSIZED_PART_WINDOW` past the highest part S3 holds. An
/// upload found holding more than the limit is aborted at once.
struct Unsized {
    /// The highest part number any part URL may have under the limit.
    fits: u32,
    /// The highest part S3 holds now.
    highest: u32,
    window: u32,
    limit: u64,
}

impl Unsized {
    async fn new(ctx: &Context, upload: &Upload, held: Vec<Part>) -> Result<Unsized> {
        let limit = ctx.config.max_upload_size;
        let total: u64 = held.iter().map(|p| p.size).sum();
        if total > limit {
            return Err(lifecycle::abort_over_limit(
                ctx,
                upload,
                format!("its parts already add up to {total} bytes, more than the {limit} allowed"),
            )
            .await);
        }
        Ok(Unsized {
            fits: limit
                .div_ceil(limits::MIN_PART_SIZE)
                .clamp(1, limits::MAX_PARTS as u64) as u32,
            highest: held.iter().map(|p| p.part_number).max().unwrap_or(0),
            window: ctx.config.unsized_part_window,
            limit,
        })
    }

    /// Refuses part `n` if it cannot fit under the limit, or is too far ahead.
    fn check(&self, n: u32) -> Result<()> {
        if n > self.fits {
            return Err(Error::TooLarge(format!(
                "part {n} cannot fit: the {} parts before it take at least {} bytes, and this upload may hold {} (declare the file's size to sign its parts exactly)",
                n - 1,
                u64::from(n - 1) * limits::MIN_PART_SIZE,
                self.limit
            )));
        }
        if n > self.highest + self.window {
            return Err(Error::Conflict(format!(
                "part {n} is more than {} parts past the highest part S3 holds ({}); send the earlier parts first, or declare the file's size",
                self.window, self.highest
            )));
        }
        Ok(())
    }
}

/// Part `n`'s URL, with the checksum the client gave for it (checked against
/// the upload's algorithm) and, when the upload declared its size, the
/// part's size from the plan signed in: S3 refuses a part of any other size,
/// so no part can carry more than the declared file.
async fn sign_part(
    ctx: &Context,
    upload: &Upload,
    n: u32,
    given: Option<&str>,
) -> Result<crate::presign::SignedUrl> {
    let checksum = part_checksum(upload, given)?;
    ctx.presigner
        .upload_part(
            &part_request(upload, n, checksum.as_ref()),
            ctx.config.url_expiry,
        )
        .await
}

/// Part `n` of `upload` to sign, its size from the plan when the upload declared one.
fn part_request<'a>(
    upload: &'a Upload,
    n: u32,
    checksum: Option<&'a PartChecksum>,
) -> PartRequest<'a> {
    PartRequest {
        key: &upload.key,
        upload_id: &upload.upload_id,
        part_number: n,
        checksum,
        content_length: part_len(upload, n),
    }
}

/// Part `n`'s size under the upload's plan, if it declared its size.
fn part_len(upload: &Upload, n: u32) -> Option<u64> {
    let (size, plan) = (upload.size?, upload.plan?);
    (n >= 1 && n <= plan.part_count).then(|| plan.part_len(size, n))
}

/// A part's checksum as the client gave it, checked against the upload's
/// algorithm. An upload started with an algorithm needs one for every part:
/// S3 refuses a part of it that comes without one, so its URL would be a trap.
fn part_checksum(upload: &Upload, given: Option<&str>) -> Result<Option<PartChecksum>> {
    match (upload.checksum, given) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Error::bad_request(
            "this upload was started without checksumAlgorithm; parts cannot carry a checksum",
        )),
        (Some(algorithm), None) => Err(Error::bad_request(format!(
            "this upload checks every part with {}: give each part's checksum",
            algorithm.as_str()
        ))),
        (Some(algorithm), Some(value)) => Ok(Some(PartChecksum {
            algorithm,
            value: algorithm.check_value(value)?,
        })),
    }
}

/// One part URL: `{url, expires}` as Companion answers; with `checksum`, also
/// the `headers` signed into it, which the PUT must carry.
pub async fn one(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let (upload, bound) = active_upload(ctx, req, true).await?;
    let n = validate::part_number(req.path("partNumber")?, upload.plan.map(|p| p.part_count))?;
    if let Some(b) = &bound {
        b.check(n)?;
    }
    let signed = sign_part(ctx, &upload, n, req.query("checksum").as_deref()).await?;
    Ok(response::json(200, &signed))
}

/// Many part URLs in one call: `{presignedUrls: {"1": url, ...}, expires}`.
pub async fn batch(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let (upload, bound) = active_upload(ctx, req, false).await?;
    if let Some(a) = upload.checksum {
        return Err(Error::bad_request(format!(
            "this upload checks every part with {}: sign with POST and each part's checksum",
            a.as_str()
        )));
    }
    let raw = req
        .query("partNumbers")
        .ok_or_else(|| Error::bad_request("partNumbers is required, e.g. partNumbers=1,2,5-9"))?;
    let numbers = validate::part_numbers(
        &raw,
        upload.plan.map(|p| p.part_count),
        ctx.config.max_batch_sign,
    )?;
    if let (Some(b), Some(last)) = (&bound, numbers.last()) {
        b.check(*last)?;
    }
    let signer = ctx.presigner.part_signer(ctx.config.url_expiry).await?;
    Ok(response::json_text(
        200,
        batch_answer(&signer, &upload, &numbers, ctx.config.url_expiry.as_secs()),
    ))
}

/// `{"presignedUrls":{"1":"https://...",...},"expires":N}`, each URL written
/// into the answer as it is signed. Written by hand: serde_json checks every
/// byte of every string for characters to escape, which for 1,000 URLs
/// (about 1 MB with a Lambda's session token) took as long as signing them,
/// and building a map of URLs first took longer still. Part URLs are
/// printable ASCII with no `"` or `\` (`UploadParts::urls_are_plain`), so
/// they are copied as they are; a URL not known to be is escaped by serde_json.
fn batch_answer(signer: &PartSigner<'_>, upload: &Upload, numbers: &[u32], expires: u64) -> String {
    let part = |n| part_request(upload, n, None);
    let parts = signer.parts_like(&part(numbers.first().copied().unwrap_or(1)));
    // A part of another shape is signed from scratch by `write_url`, and its
    // URL is as plain: plainness depends only on the bucket's base URL.
    let plain = parts.urls_are_plain();
    let mut out = String::with_capacity((parts.url_len() + 16) * numbers.len() + 64);
    out.push_str(r#"{"presignedUrls":{"#);
    let mut first = true;
    let mut key = |out: &mut String, n: u32| {
        if !std::mem::take(&mut first) {
            out.push(',');
        }
        out.push('"');
        out.push_str(itoa::Buffer::new().format(n));
        out.push_str(r#"":"#);
    };
    if plain {
        let open = |out: &mut String, part: &PartRequest<'_>| {
            key(out, part.part_number);
            out.push('"');
        };
        parts.write_urls(numbers.iter().map(|&n| part(n)), &mut out, open, "\"");
    } else {
        for &n in numbers {
            key(&mut out, n);
            let url = parts.sign(&part(n)).url;
            out.push_str(&serde_json::to_string(&url).unwrap_or_else(|_| "null".into()));
        }
    }
    out.push_str(r#"},"expires":"#);
    out.push_str(itoa::Buffer::new().format(expires));
    out.push('}');
    out
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    /// The upload's key, as the `key` query parameter elsewhere.
    #[serde(default)]
    key: Option<String>,
    parts: Vec<BatchPart>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BatchPart {
    part_number: u32,
    #[serde(default)]
    checksum: Option<String>,
}

/// Many part URLs in one call, each with its part's checksum signed in:
/// `{presignedUrls: {"1": url, ...}, headers: {"1": {...}, ...}, expires}`.
/// `headers` names only the parts that have signed headers (every part, for
/// an upload started with a checksum algorithm; none without).
pub async fn batch_checked(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let (upload, bound) = active_upload(ctx, req, false).await?;
    let body: BatchBody = req.json()?;
    if body.key.as_deref().is_some_and(|k| k != upload.key) {
        return Err(Error::NotFound(format!(
            "no upload {:?} with that key",
            upload.upload_id
        )));
    }
    if body.parts.is_empty() || body.parts.len() > ctx.config.max_batch_sign {
        return Err(Error::bad_request(format!(
            "parts must list 1 to {} parts",
            ctx.config.max_batch_sign
        )));
    }
    let part_count = upload.plan.map(|p| p.part_count);
    let signer = ctx.presigner.part_signer(ctx.config.url_expiry).await?;
    let mut prepared = None;
    let mut urls = Map::with_capacity(body.parts.len());
    let mut headers = Map::new();
    for p in &body.parts {
        let n = validate::part_number(&p.part_number.to_string(), part_count)?;
        if let Some(b) = &bound {
            b.check(n)?;
        }
        if urls.contains_key(&n.to_string()) {
            return Err(Error::bad_request(format!("part {n} is listed twice")));
        }
        let checksum = part_checksum(&upload, p.checksum.as_deref())?;
        let part = part_request(&upload, n, checksum.as_ref());
        let signed = prepared
            .get_or_insert_with(|| signer.parts_like(&part))
            .sign(&part);
        if !signed.headers.is_empty() {
            headers.insert(n.to_string(), json!(signed.headers));
        }
        urls.insert(n.to_string(), json!(signed.url));
    }
    Ok(response::json(
        200,
        &json!({ "presignedUrls": urls, "headers": headers, "expires": ctx.config.url_expiry.as_secs() }),
    ))
}
