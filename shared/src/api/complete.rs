//! `POST /s3/multipart/{uploadId}/complete`: check the part list, then complete.

use super::{Request, owned_upload_and_parts, response};
use crate::config::limits;
use crate::error::{Error, Result};
use crate::model::{Actor, ChecksumAlgorithm, Completion, Status, Upload};
use crate::storage::{Part, PartChecksum};
use crate::{Context, lifecycle};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Deserialize)]
struct CompleteBody {
    #[serde(default)]
    parts: Option<Vec<RequestedPart>>,
}

/// Uppy sends S3's own names; camelCase is accepted too. A part's checksum,
/// when given, goes in S3's field for the upload's algorithm.
#[derive(Deserialize)]
struct RequestedPart {
    #[serde(rename = "PartNumber", alias = "partNumber")]
    part_number: u32,
    #[serde(rename = "ETag", alias = "etag", alias = "ETAG")]
    etag: String,
    #[serde(rename = "ChecksumCRC32C", default)]
    checksum_crc32c: Option<String>,
    #[serde(rename = "ChecksumCRC32", default)]
    checksum_crc32: Option<String>,
    #[serde(rename = "ChecksumSHA256", default)]
    checksum_sha256: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME", default)]
    checksum_crc64nvme: Option<String>,
}

impl RequestedPart {
    /// The checksum given for this part, checked against the upload's algorithm.
    fn checksum(&self, upload: &Upload) -> Result<Option<PartChecksum>> {
        let given: Vec<(ChecksumAlgorithm, &String)> = [
            (ChecksumAlgorithm::Crc32c, &self.checksum_crc32c),
            (ChecksumAlgorithm::Crc32, &self.checksum_crc32),
            (ChecksumAlgorithm::Sha256, &self.checksum_sha256),
            (ChecksumAlgorithm::Crc64Nvme, &self.checksum_crc64nvme),
        ]
        .into_iter()
        .filter_map(|(a, v)| v.as_ref().map(|v| (a, v)))
        .collect();
        match (given.as_slice(), upload.checksum) {
            ([], _) => Ok(None),
            ([(a, v)], Some(algorithm)) if *a == algorithm => Ok(Some(PartChecksum {
                algorithm,
                value: algorithm.check_value(v)?,
            })),
            _ => Err(Error::bad_request(format!(
                "part {}: a checksum other than the upload's own ({})",
                self.part_number,
                upload.checksum.map_or("none", |a| a.as_str())
            ))),
        }
    }
}

/// Completes with the parts given, or with every part S3 holds when none are.
/// A repeated call returns the first result, whatever the body; a call after
/// an abort is refused.
///
/// Round trips, sequential: the item ‖ ListParts (one wave with `key`), the
/// COMPLETING claim, CompleteMultipartUpload, the COMPLETED record. ListParts
/// stays even when the client lists its parts: only S3 knows each part's size,
/// which the 5 MiB, declared-size and size-limit checks and the recorded size
/// need; it rides in the item read's wave, so it costs no wait of its own.
/// The claim follows the checks, so a refused list changes nothing; it
/// precedes S3's complete, so an abort cannot race it; the record follows it.
/// A refused list reads the item once more, in case an abort raced the reads.
pub async fn complete(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let (mut upload, mut held) = owned_upload_and_parts(ctx, req).await?;
    super::multipart_only(&upload)?;
    if upload.status == Status::Completing {
        // A completion that S3 finished but nobody recorded (the call crashed
        // or its answer was lost) is settled from the object itself; one older
        // than any completer died before S3 made anything, and is taken back.
        if let Some(c) = lifecycle::settle_completing(ctx, &upload, Actor::Api).await? {
            return Ok(completed(&upload, &c));
        }
        if lifecycle::retake_stale_completion(ctx, &upload, COMPLETING_LEASE).await? {
            upload.status = Status::Active;
            held = Some(
                ctx.storage
                    .list_parts(&upload.key, &upload.upload_id)
                    .await?,
            );
        }
    }
    let completion = match upload.status {
        Status::Completed => upload
            .completion
            .clone()
            .ok_or_else(|| Error::internal("completed item without result"))?,
        Status::Aborting | Status::Aborted => {
            return Err(Error::aborted());
        }
        Status::Completing => {
            return Err(Error::Unavailable(
                "a completion of this upload is in progress; retry shortly".into(),
            ));
        }
        Status::Active => {
            let body: CompleteBody = req.json()?;
            let Some(held) = held.flatten() else {
                // S3 lost the upload under us: settle the item from S3's truth.
                return match lifecycle::resolve_vanished(ctx, &upload, Status::Active, Actor::Api)
                    .await?
                {
                    Status::Completed => answer(ctx.store.get(&upload.upload_id).await?),
                    _ => Err(Error::Conflict(
                        "the upload no longer exists in S3; it was aborted".into(),
                    )),
                };
            };
            let parts = match choose_parts(&ctx.config, &upload, body.parts, held) {
                Ok(parts) => parts,
                Err(Refused::OverLimit(why)) => {
                    return Err(Box::pin(lifecycle::abort_over_limit(ctx, &upload, why.0)).await);
                }
                Err(Refused::Other(e)) => return Err(unless_aborted(ctx, &upload, e).await),
            };
            lifecycle::complete(ctx, &upload, &parts).await?
        }
    };
    Ok(completed(&upload, &completion))
}

/// A list refused against the parts S3 listed may be an abort racing this
/// call: the item was read as ACTIVE, then the abort claimed it and S3 dropped
/// the parts before they were listed. The item, read again, tells; the caller
/// is told what happened (409), not that its parts were never uploaded.
async fn unless_aborted(ctx: &Context, upload: &Upload, refused: Error) -> Error {
    match ctx.store.get(&upload.upload_id).await {
        Ok(Some(now)) if matches!(now.status, Status::Aborting | Status::Aborted) => {
            Error::aborted()
        }
        _ => refused,
    }
}

/// No completer outlives this: the `complete` function times out at 29 s.
/// Taking a claim back after it is safe even if S3 is still completing the
/// upload: every later step settles from S3's truth (NoSuchUpload, then
/// HeadObject), so the worst case is a second, harmless CompleteMultipartUpload.
/// The sweep, which cannot know who claimed, waits [`lifecycle::COMPLETING_LEASE`].
const COMPLETING_LEASE: Duration = Duration::from_secs(30);

fn answer(now: Option<Upload>) -> Result<ApiGatewayV2httpResponse> {
    match now.and_then(|u| u.completion.clone().map(|c| (u, c))) {
        Some((u, c)) => Ok(completed(&u, &c)),
        None => Err(Error::Conflict(
            "the upload changed meanwhile; retry".into(),
        )),
    }
}

fn completed(upload: &Upload, c: &Completion) -> ApiGatewayV2httpResponse {
    let mut body =
        json!({ "location": c.location, "key": upload.key, "etag": c.etag, "size": c.size });
    if let Some(ck) = &c.checksum {
        body["checksum"] = json!({
            "algorithm": ck.algorithm.as_str(),
            "type": ck.checksum_type,
            "value": ck.value,
        });
    }
    response::json(200, &body)
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// Parts adding up to more than the limit: not a list to fix, so the upload
/// is aborted at once rather than left holding the bytes.
struct OverLimit(String);

/// Why [`choose_parts`] refused a list.
enum Refused {
    OverLimit(OverLimit),
    Other(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Self {
        Refused::Other(e)
    }
}

impl From<OverLimit> for Refused {
    fn from(o: OverLimit) -> Self {
        Refused::OverLimit(o)
    }
}

/// The parts to complete with, checked as S3 would check them (and more: S3's
/// 5 MiB minimum, which local S3s skip, and our size limits), so a bad list is
/// a 4xx before any state changes.
fn choose_parts(
    config: &crate::Config,
    upload: &Upload,
    requested: Option<Vec<RequestedPart>>,
    held: Vec<Part>,
) -> std::result::Result<Vec<Part>, Refused> {
    let parts = match requested {
        None => {
            let mut held = held;
            held.sort_by_key(|p| p.part_number);
            held
        }
        Some(requested) if requested.is_empty() => {
            return Err(Error::bad_request(
                "parts is empty: list the parts to complete, or omit parts to complete with every part S3 holds",
            ).into());
        }
        Some(requested) => {
            if requested.len() > limits::MAX_PARTS as usize {
                return Err(Error::bad_request("at most 10000 parts").into());
            }
            let by_number: HashMap<u32, &Part> = held.iter().map(|p| (p.part_number, p)).collect();
            let mut previous = 0;
            let mut parts = Vec::with_capacity(requested.len());
            for r in requested {
                if r.part_number == 0 || r.part_number > limits::MAX_PARTS {
                    return Err(Error::bad_request(format!(
                        "part number {} is outside 1..=10000",
                        r.part_number
                    ))
                    .into());
                }
                if r.part_number <= previous {
                    return Err(Error::bad_request(format!(
                        "parts must be in ascending order without repeats (part {} after {previous})",
                        r.part_number
                    )).into());
                }
                previous = r.part_number;
                let held = by_number
                    .get(&r.part_number)
                    .filter(|p| unquote(&p.etag) == unquote(&r.etag))
                    .ok_or_else(|| {
                        Error::bad_request(format!(
                            "part {} with ETag {} was not uploaded (InvalidPart)",
                            r.part_number, r.etag
                        ))
                    })?;
                let mut part = (*held).clone();
                if let Some(given) = r.checksum(upload)? {
                    // Checked here like the ETag, before any state changes.
                    if let Some(own) = part.checksum.as_ref().filter(|own| **own != given) {
                        return Err(Error::bad_request(format!(
                            "part {}: checksum {} is not the part's ({}) (InvalidPart)",
                            r.part_number, given.value, own.value
                        ))
                        .into());
                    }
                    part.checksum = Some(given);
                }
                parts.push(part);
            }
            parts
        }
    };
    if parts.is_empty() {
        return Err(Error::bad_request("no parts have been uploaded").into());
    }
    if let Some(small) = parts[..parts.len() - 1]
        .iter()
        .find(|p| p.size < limits::MIN_PART_SIZE)
    {
        return Err(Error::Unprocessable(format!(
            "part {} is {} bytes; every part but the last must be at least 5 MiB (EntityTooSmall)",
            small.part_number, small.size
        ))
        .into());
    }
    let total: u64 = parts.iter().map(|p| p.size).sum();
    if total > config.max_upload_size {
        return Err(OverLimit(format!(
            "the parts add up to {total} bytes, more than the {} allowed",
            config.max_upload_size
        ))
        .into());
    }
    if let Some(declared) = upload.size.filter(|d| *d != total) {
        return Err(Error::Unprocessable(format!(
            "the parts add up to {total} bytes but the upload declared {declared}"
        ))
        .into());
    }
    Ok(parts)
}
