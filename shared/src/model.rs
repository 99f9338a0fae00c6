//! The tracked upload and its state machine.
//!
//! ```text
//! ACTIVE ──► COMPLETING ──► COMPLETED
//!   │  ▲          │
//!   │  └──────────┤ (S3 refused the part list for a reason the client can fix)
//!   ▼             ▼ (sweep: the upload outlived its completion attempt)
//! ABORTING ──────► ABORTED
//! ```
//! Every arrow is one conditional write in [`crate::store`], so two racing
//! calls can never both take the same arrow.

use crate::error::{Error, Result};
use crate::plan::PartPlan;
use base64::Engine;
use serde::Serialize;

/// Where an upload is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Active,
    Completing,
    Completed,
    Aborting,
    Aborted,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Active,
        Status::Completing,
        Status::Completed,
        Status::Aborting,
        Status::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "ACTIVE",
            Status::Completing => "COMPLETING",
            Status::Completed => "COMPLETED",
            Status::Aborting => "ABORTING",
            Status::Aborted => "ABORTED",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Terminal items leave the live-uploads index and get a TTL.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Aborted)
    }

    /// The arrows of the state machine; nothing else is ever written.
    /// ABORTING → COMPLETED: the abort found S3's upload gone and its object
    /// there, so it was completed outside the service, and the item says so.
    pub fn can_become(self, next: Status) -> bool {
        use Status::*;
        matches!(
            (self, next),
            (Active, Completing)
                | (Completing, Completed)
                | (Completing, Active)
                | (Completing, Aborting)
                | (Active, Aborting)
                | (Aborting, Aborted)
                | (Aborting, Completed)
        )
    }
}

/// A checksum algorithm an upload can be created with. Each part carries its
/// checksum, which S3 verifies as the part arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ChecksumAlgorithm {
    #[serde(rename = "CRC32C")]
    Crc32c,
    #[serde(rename = "CRC32")]
    Crc32,
    #[serde(rename = "SHA256")]
    Sha256,
    #[serde(rename = "CRC64NVME")]
    Crc64Nvme,
}

impl ChecksumAlgorithm {
    pub const ALL: [ChecksumAlgorithm; 4] = [
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ];

    /// S3's name, e.g. `CRC32C`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Sha256 => "SHA256",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
        }
    }

    pub fn parse(s: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// S3's checksum type for a multipart object: the CRCs and SHA-256 of the
    /// parts are combined into a checksum of checksums (`COMPOSITE`), except
    /// CRC64NVME, which S3 supports only over the whole object (`FULL_OBJECT`).
    pub fn checksum_type(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc64Nvme => "FULL_OBJECT",
            _ => "COMPOSITE",
        }
    }

    /// The request header that carries a part's checksum.
    pub fn header(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
        }
    }

    /// S3's field for it in part lists, e.g. `ChecksumCRC32C`.
    pub fn part_field(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32c => "ChecksumCRC32C",
            ChecksumAlgorithm::Crc32 => "ChecksumCRC32",
            ChecksumAlgorithm::Sha256 => "ChecksumSHA256",
            ChecksumAlgorithm::Crc64Nvme => "ChecksumCRC64NVME",
        }
    }

    /// Bytes of a digest.
    pub fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32c | ChecksumAlgorithm::Crc32 => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }

    /// A part checksum as a client sends it: standard base64 of exactly one
    /// digest. Returned as given, so the signed header is byte for byte the
    /// one the client sends.
    pub fn check_value(self, value: &str) -> Result<String> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|_| {
                Error::bad_request(format!(
                    "checksum {value:?} is not standard base64 (of a {} digest)",
                    self.as_str()
                ))
            })?;
        if decoded.len() != self.digest_len() {
            return Err(Error::bad_request(format!(
                "checksum {value:?} is {} bytes; a {} digest is {}",
                decoded.len(),
                self.as_str(),
                self.digest_len()
            )));
        }
        Ok(value.to_string())
    }
}

/// The object's checksum as S3 reported it at completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjectChecksum {
    pub algorithm: ChecksumAlgorithm,
    /// `COMPOSITE` (a checksum of the parts' checksums, `...-N`) or `FULL_OBJECT`.
    #[serde(rename = "type")]
    pub checksum_type: String,
    /// Base64, as S3 reports it.
    pub value: String,
}

/// What S3 reported when the upload completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    pub etag: String,
    pub size: u64,
    pub location: String,
    /// Only for uploads created with a checksum algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ObjectChecksum>,
}

/// One tracked multipart upload: the DynamoDB item, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// S3's UploadId; the table's partition key.
    pub upload_id: String,
    pub key: String,
    pub owner: String,
    pub status: Status,
    /// Milliseconds since the Unix epoch, as S3 would report `Initiated`.
    pub initiated_at: i64,
    /// Milliseconds since the Unix epoch of the last transition.
    pub updated_at: i64,
    pub filename: String,
    pub content_type: String,
    /// Declared file size, when the client gave one.
    pub size: Option<u64>,
    pub plan: Option<PartPlan>,
    pub completion: Option<Completion>,
    /// TTL (seconds since the epoch), set on terminal items only.
    pub expires_at: Option<i64>,
    /// The checksum algorithm S3 checks every part with, if the client chose one.
    pub checksum: Option<ChecksumAlgorithm>,
}

/// Who made a change: the HTTP API on a caller's request, or the sweep.
/// Stamped on the item with the change, so the table's stream says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    Api,
    Sweep,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Api => "api",
            Actor::Sweep => "sweep",
        }
    }

    pub fn parse(s: &str) -> Option<Actor> {
        [Actor::Api, Actor::Sweep]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// Why an upload is aborted, stamped with its ABORTING claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AbortReason {
    /// Its owner asked the API to abort it.
    Owner,
    /// The sweep found it older than the cutoff.
    Stale,
    /// S3 no longer had the multipart upload (aborted outside the service, or
    /// by a lifecycle rule) and no object was made of it.
    Vanished,
    /// Its parts add up to more than the limit that applies (the service's or
    /// its grant's): aborted at once, so the bytes are not kept.
    TooLarge,
    /// A single-request upload (POST form or PUT URL) whose URL expired unused.
    Expired,
}

impl AbortReason {
    pub fn as_str(self) -> &'static str {
        match self {
            AbortReason::Owner => "owner",
            AbortReason::Stale => "stale",
            AbortReason::Vanished => "vanished",
            AbortReason::TooLarge => "too_large",
            AbortReason::Expired => "expired",
        }
    }

    pub fn parse(s: &str) -> Option<AbortReason> {
        [
            AbortReason::Owner,
            AbortReason::Stale,
            AbortReason::Vanished,
            AbortReason::TooLarge,
            AbortReason::Expired,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_its_name() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("active"), None);
    }

    #[test]
    fn checksum_algorithms_round_trip_and_check_their_digests() {
        for a in ChecksumAlgorithm::ALL {
            assert_eq!(ChecksumAlgorithm::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
            let digest =
                base64::engine::general_purpose::STANDARD.encode(vec![7u8; a.digest_len()]);
            assert_eq!(a.check_value(&digest).unwrap(), digest);
            let short =
                base64::engine::general_purpose::STANDARD.encode(vec![7u8; a.digest_len() - 1]);
            assert_eq!(a.check_value(&short).unwrap_err().status(), 400);
            assert_eq!(a.check_value("not base64!").unwrap_err().status(), 400);
        }
        assert_eq!(ChecksumAlgorithm::parse("crc32c"), None);
        assert_eq!(ChecksumAlgorithm::Crc64Nvme.checksum_type(), "FULL_OBJECT");
        assert_eq!(ChecksumAlgorithm::Sha256.checksum_type(), "COMPOSITE");
    }

    #[test]
    fn terminal_states_have_no_way_out() {
        for from in [Status::Completed, Status::Aborted] {
            assert!(from.is_terminal());
            for to in Status::ALL {
                assert!(!from.can_become(to), "{from:?} -> {to:?}");
            }
        }
    }

    #[test]
    fn completed_and_aborted_are_only_reached_through_their_claims() {
        for from in Status::ALL {
            // From ABORTING only when S3 shows the object was made elsewhere.
            assert_eq!(
                from.can_become(Status::Completed),
                matches!(from, Status::Completing | Status::Aborting)
            );
            assert_eq!(from.can_become(Status::Aborted), from == Status::Aborting);
        }
        assert!(!Status::Aborting.can_become(Status::Completing));
        assert!(!Status::Aborting.can_become(Status::Active));
    }
}
