//! S3 calls: create, list parts, complete, abort-and-confirm, head.

use crate::error::{Error, Result, from_sdk};
use crate::metadata::Metadata;
use crate::model::{ChecksumAlgorithm, ObjectChecksum};
use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use serde::ser::SerializeMap;
use std::time::Duration;

/// A part S3 holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Part {
    pub part_number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
    pub size: u64,
    /// The part's checksum, when S3 has one: serialized as S3's own field
    /// beside the others (`"ChecksumCRC32C": "..."`).
    #[serde(flatten)]
    pub checksum: Option<PartChecksum>,
}

/// One part's checksum, base64 as S3 and the `x-amz-checksum-*` headers carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartChecksum {
    pub algorithm: ChecksumAlgorithm,
    pub value: String,
}

impl serde::Serialize for PartChecksum {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.algorithm.part_field(), &self.value)?;
        map.end()
    }
}

/// The checksum S3 reports for a part, if any (one algorithm per upload).
fn part_checksum(p: &aws_sdk_s3::types::Part) -> Option<PartChecksum> {
    [
        (ChecksumAlgorithm::Crc32c, p.checksum_crc32_c()),
        (ChecksumAlgorithm::Crc32, p.checksum_crc32()),
        (ChecksumAlgorithm::Sha256, p.checksum_sha256()),
        (ChecksumAlgorithm::Crc64Nvme, p.checksum_crc64_nvme()),
    ]
    .into_iter()
    .find_map(|(algorithm, v)| {
        v.filter(|v| !v.is_empty()).map(|v| PartChecksum {
            algorithm,
            value: v.to_string(),
        })
    })
}

/// How a CompleteMultipartUpload call ended.
#[derive(Debug)]
pub enum Completed {
    /// The object exists now; with its checksum when the upload has one.
    Done {
        etag: String,
        location: String,
        checksum: Option<ObjectChecksum>,
    },
    /// S3 refused the part list for a reason the client can fix (`InvalidPart`, ...).
    Refused { code: String, message: String },
    /// The upload is gone (completed or aborted before).
    NoSuchUpload,
}

/// An object S3 holds, as HeadObject reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// Quoted, as S3 sends it.
    pub etag: String,
    pub size: u64,
    pub checksum: Option<ObjectChecksum>,
}

/// How an abort ended; either way no part remains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aborted {
    /// This call aborted it.
    Aborted,
    /// It was gone before we came (NoSuchUpload).
    AlreadyGone,
}

/// An in-progress multipart upload as ListMultipartUploads reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedUpload {
    pub key: String,
    pub upload_id: String,
    /// Milliseconds since the Unix epoch.
    pub initiated_at: i64,
}

/// One page of ListMultipartUploads, and where the next one starts.
#[derive(Debug, Default)]
pub struct UploadsPage {
    pub uploads: Vec<ListedUpload>,
    /// `(key marker, upload-id marker)`, both needed: one key can have many uploads.
    pub next: Option<(String, String)>,
}

/// S3 codes for a part list the client can fix by sending a better one.
const CLIENT_FIXABLE: &[&str] = &[
    "InvalidPart",
    "InvalidPartOrder",
    "EntityTooSmall",
    "InvalidRequest",
    // A part's checksum in the list is not the part's own.
    "BadDigest",
    "InvalidDigest",
];

/// The upload bucket.
#[derive(Clone, Debug)]
pub struct Storage {
    client: Client,
    bucket: String,
}

impl Storage {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Storage {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Starts a multipart upload; returns S3's UploadId.
    pub async fn create(&self, key: &str, content_type: &str) -> Result<String> {
        self.create_with_checksum(key, content_type, None).await
    }

    /// Starts a multipart upload whose parts S3 checks with `checksum`
    /// (composite, or full-object for CRC64NVME); returns S3's UploadId.
    pub async fn create_with_checksum(
        &self,
        key: &str,
        content_type: &str,
        checksum: Option<ChecksumAlgorithm>,
    ) -> Result<String> {
        self.create_upload(key, content_type, checksum, &Metadata::new())
            .await
    }

    /// Starts a multipart upload with `metadata` as the object's user
    /// metadata (`x-amz-meta-*`, set once here and kept at complete).
    pub async fn create_upload(
        &self,
        key: &str,
        content_type: &str,
        checksum: Option<ChecksumAlgorithm>,
        metadata: &Metadata,
    ) -> Result<String> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_checksum_algorithm(checksum.map(|a| a.as_str().into()))
            .set_checksum_type(checksum.map(|a| a.checksum_type().into()))
            .set_metadata((!metadata.is_empty()).then(|| metadata.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| from_sdk("CreateMultipartUpload", e))?;
        out.upload_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| Error::internal("CreateMultipartUpload returned no UploadId"))
    }

    /// Every part S3 holds, all pages; `None` when the upload does not exist.
    pub async fn list_parts(&self, key: &str, upload_id: &str) -> Result<Option<Vec<Part>>> {
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = match self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) if e.code() == Some("NoSuchUpload") => return Ok(None),
                Err(e) => return Err(from_sdk("ListParts", e)),
            };
            for p in out.parts() {
                parts.push(Part {
                    part_number: p.part_number().unwrap_or(0).max(0) as u32,
                    etag: p.e_tag().unwrap_or_default().to_string(),
                    size: p.size().unwrap_or(0).max(0) as u64,
                    checksum: part_checksum(p),
                });
            }
            match (out.is_truncated(), out.next_part_number_marker()) {
                (Some(true), Some(next)) if !next.is_empty() => marker = Some(next.to_string()),
                _ => return Ok(Some(parts)),
            }
        }
    }

    /// Completes the upload with exactly these parts, in order, each with its
    /// checksum when it has one (S3 requires them for a checksummed upload).
    pub async fn complete(&self, key: &str, upload_id: &str, parts: &[Part]) -> Result<Completed> {
        let completed = CompletedMultipartUpload::builder()
            .set_parts(Some(
                parts
                    .iter()
                    .map(|p| {
                        let b = CompletedPart::builder()
                            .part_number(p.part_number as i32)
                            .e_tag(&p.etag);
                        let value = |a| {
                            p.checksum
                                .as_ref()
                                .filter(|c| c.algorithm == a)
                                .map(|c| c.value.clone())
                        };
                        b.set_checksum_crc32_c(value(ChecksumAlgorithm::Crc32c))
                            .set_checksum_crc32(value(ChecksumAlgorithm::Crc32))
                            .set_checksum_sha256(value(ChecksumAlgorithm::Sha256))
                            .set_checksum_crc64_nvme(value(ChecksumAlgorithm::Crc64Nvme))
                            .build()
                    })
                    .collect(),
            ))
            .build();
        match self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(completed)
            .customize()
            .config_override(
                aws_sdk_s3::Config::builder().timeout_config(crate::timeouts::complete_timeouts()),
            )
            .send()
            .await
        {
            Ok(out) => {
                let checksum = [
                    (ChecksumAlgorithm::Crc32c, out.checksum_crc32_c()),
                    (ChecksumAlgorithm::Crc32, out.checksum_crc32()),
                    (ChecksumAlgorithm::Sha256, out.checksum_sha256()),
                    (ChecksumAlgorithm::Crc64Nvme, out.checksum_crc64_nvme()),
                ];
                let checksum = reported_checksum(checksum, out.checksum_type());
                Ok(Completed::Done {
                    etag: out.e_tag().unwrap_or_default().to_string(),
                    location: out.location().unwrap_or_default().to_string(),
                    checksum,
                })
            }
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(Completed::NoSuchUpload),
            Err(e) if e.code().is_some_and(|c| CLIENT_FIXABLE.contains(&c)) => {
                Ok(Completed::Refused {
                    code: e.code().unwrap_or_default().to_string(),
                    message: e
                        .message()
                        .unwrap_or("S3 refused the part list")
                        .to_string(),
                })
            }
            Err(e) => Err(from_sdk("CompleteMultipartUpload", e)),
        }
    }

    /// Aborts, then confirms with ListParts that nothing remains, aborting again
    /// (at most `attempts` times) while parts still appear: a part upload in
    /// flight during the abort can land after it.
    pub async fn abort_and_confirm(
        &self,
        key: &str,
        upload_id: &str,
        attempts: u32,
    ) -> Result<Aborted> {
        let mut outcome = Aborted::Aborted;
        for attempt in 0..attempts.max(1) {
            match self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if e.code() == Some("NoSuchUpload") => {
                    if attempt == 0 {
                        outcome = Aborted::AlreadyGone;
                    }
                }
                Err(e) => return Err(from_sdk("AbortMultipartUpload", e)),
            }
            match self.list_parts(key, upload_id).await? {
                None => return Ok(outcome),
                Some(parts) => {
                    tracing::warn!(
                        upload_id,
                        attempt,
                        parts = parts.len(),
                        "upload still listed after abort; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
                }
            }
        }
        Err(Error::internal(format!(
            "upload {upload_id} still holds parts after {attempts} aborts"
        )))
    }

    /// One page of the multipart uploads in progress under `prefix`, after `from`.
    pub async fn list_uploads_page(
        &self,
        prefix: &str,
        from: Option<&(String, String)>,
    ) -> Result<UploadsPage> {
        let out = self
            .client
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_key_marker(from.map(|m| m.0.clone()))
            .set_upload_id_marker(from.map(|m| m.1.clone()).filter(|m| !m.is_empty()))
            .send()
            .await
            .map_err(|e| from_sdk("ListMultipartUploads", e))?;
        let uploads = out
            .uploads()
            .iter()
            .filter_map(|u| {
                Some(ListedUpload {
                    key: u.key()?.to_string(),
                    upload_id: u.upload_id()?.to_string(),
                    initiated_at: u.initiated().map_or(0, |t| t.to_millis().unwrap_or(0)),
                })
            })
            .collect();
        let next = match (out.is_truncated(), out.next_key_marker()) {
            (Some(true), Some(key)) => Some((
                key.to_string(),
                out.next_upload_id_marker().unwrap_or_default().to_string(),
            )),
            _ => None,
        };
        Ok(UploadsPage { uploads, next })
    }

    /// The object as S3 holds it (ETag, size and, asked for with
    /// `ChecksumMode`, its checksum), if it exists.
    pub async fn head_with_checksum(&self, key: &str) -> Result<Option<Created>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => {
                let checksum = [
                    (ChecksumAlgorithm::Crc32c, out.checksum_crc32_c()),
                    (ChecksumAlgorithm::Crc32, out.checksum_crc32()),
                    (ChecksumAlgorithm::Sha256, out.checksum_sha256()),
                    (ChecksumAlgorithm::Crc64Nvme, out.checksum_crc64_nvme()),
                ];
                let checksum = reported_checksum(checksum, out.checksum_type());
                Ok(Some(Created {
                    etag: out.e_tag().unwrap_or_default().to_string(),
                    size: out.content_length().unwrap_or(0).max(0) as u64,
                    checksum,
                }))
            }
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(from_sdk("HeadObject", e)),
        }
    }

    /// The object's ETag and size, if it exists.
    pub async fn head(&self, key: &str) -> Result<Option<(String, u64)>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => Ok(Some((
                out.e_tag().unwrap_or_default().to_string(),
                out.content_length().unwrap_or(0).max(0) as u64,
            ))),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(from_sdk("HeadObject", e)),
        }
    }
}

/// The object's checksum from S3's answer: the first of its checksum fields
/// that holds a value. S3 names the type; a store that does not is read by
/// the value's shape (`…-N` is a checksum of the parts' checksums).
fn reported_checksum(
    fields: [(ChecksumAlgorithm, Option<&str>); 4],
    checksum_type: Option<&aws_sdk_s3::types::ChecksumType>,
) -> Option<ObjectChecksum> {
    fields.into_iter().find_map(|(algorithm, v)| {
        let value = v.filter(|v| !v.is_empty())?.to_string();
        let checksum_type = checksum_type.map_or_else(
            || {
                if value.contains('-') {
                    "COMPOSITE".to_string()
                } else {
                    "FULL_OBJECT".to_string()
                }
            },
            |t| t.as_str().to_string(),
        );
        Some(ObjectChecksum {
            algorithm,
            checksum_type,
            value,
        })
    })
}
