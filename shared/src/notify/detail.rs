//! The events' details: what a subscriber receives, one type per detail type.

use crate::metadata::Metadata;
use crate::model::{AbortReason, Actor, ObjectChecksum, Upload, UploadKind};
use serde::Serialize;

/// The detail types Partwise publishes, with their JSON schema files in `schemas/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DetailType {
    Started,
    Completed,
    Aborted,
}

impl DetailType {
    pub const ALL: [DetailType; 3] = [
        DetailType::Started,
        DetailType::Completed,
        DetailType::Aborted,
    ];

    /// EventBridge's `detail-type`.
    pub fn as_str(self) -> &'static str {
        match self {
            DetailType::Started => "Upload Started",
            DetailType::Completed => "Upload Completed",
            DetailType::Aborted => "Upload Aborted",
        }
    }

    /// The state the event reports, the second half of its stable id.
    pub fn state(self) -> &'static str {
        match self {
            DetailType::Started => "STARTED",
            DetailType::Completed => "COMPLETED",
            DetailType::Aborted => "ABORTED",
        }
    }

    /// Its JSON schema's file name in `schemas/`.
    pub fn schema_file(self) -> &'static str {
        match self {
            DetailType::Started => "upload-started.json",
            DetailType::Completed => "upload-completed.json",
            DetailType::Aborted => "upload-aborted.json",
        }
    }

    pub fn parse(s: &str) -> Option<DetailType> {
        Self::ALL.into_iter().find(|d| d.as_str() == s)
    }
}

/// What every event says about its upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadFacts {
    /// Stable across redeliveries (`<uploadId>:<STATE>`): deduplicate on it.
    /// EventBridge's own envelope `id` is new on every delivery attempt.
    pub event_id: String,
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub owner: String,
    /// The file's name as the client gave it.
    pub filename: String,
    pub content_type: String,
    /// How the bytes arrive: `multipart`, `post` (a POST form) or `put` (one presigned PUT).
    pub kind: UploadKind,
    /// The object's user metadata (`x-amz-meta-*`, names lower-cased, values
    /// as S3 stores them: non-ASCII ones RFC 2047 encoded), as the client gave it.
    pub metadata: Metadata,
    /// RFC 3339, when the upload started (S3's multipart `Initiated`, or when
    /// the form or URL was handed out).
    pub initiated_at: String,
}

/// `Upload Started`: an upload was created (a multipart upload, or a POST
/// form or PUT URL handed out) and is tracked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started {
    #[serde(flatten)]
    pub upload: UploadFacts,
    /// The size the client declared, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_count: Option<u32>,
    /// The algorithm S3 checks every part with, if the client chose one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<String>,
    /// Always `api`: only the API starts uploads.
    pub source: Actor,
    /// For a POST form or PUT URL: RFC 3339, when it stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_expires_at: Option<String>,
}

/// `Upload Completed`: the object exists in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Completed {
    #[serde(flatten)]
    pub upload: UploadFacts,
    /// The object's size in bytes.
    pub size: u64,
    /// The object's ETag, as S3 reported it (quoted).
    pub etag: String,
    /// The object's URL.
    pub location: String,
    /// The object's checksum, as S3 reported it (at completion, or in
    /// HeadObject when settled from S3's notification), when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
    /// RFC 3339, when the completion was recorded.
    pub completed_at: String,
    /// Who recorded it: `api` (the client's complete), `s3` (S3's "Object
    /// Created" notification: a POST form or PUT landed, or S3 completed a
    /// multipart upload the table had not recorded) or `sweep` (settled from
    /// S3's truth). Absent on items written before the stamp existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Actor>,
}

/// `Upload Aborted`: the multipart upload and its parts are gone from S3, or
/// a POST form or PUT URL expired unused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Aborted {
    #[serde(flatten)]
    pub upload: UploadFacts,
    /// RFC 3339, when the abort was recorded.
    pub aborted_at: String,
    /// Who aborted it: `api` (its owner) or `sweep`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Actor>,
    /// Why: `owner`, `stale`, `vanished` (S3 had dropped it), `too_large`
    /// or `expired` (a POST form or PUT URL never used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<AbortReason>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared_size: Option<u64>,
}

impl UploadFacts {
    pub fn new(upload: &Upload, metadata: Metadata, bucket: &str, detail_type: DetailType) -> Self {
        UploadFacts {
            event_id: format!("{}:{}", upload.upload_id, detail_type.state()),
            upload_id: upload.upload_id.clone(),
            bucket: bucket.to_string(),
            key: upload.key.clone(),
            owner: upload.owner.clone(),
            filename: upload.filename.clone(),
            content_type: upload.content_type.clone(),
            kind: upload.kind,
            metadata,
            initiated_at: rfc3339(upload.initiated_at),
        }
    }
}

/// Epoch milliseconds as RFC 3339 (UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .unwrap_or_default()
}
