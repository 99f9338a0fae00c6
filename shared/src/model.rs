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

use crate::plan::PartPlan;
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
        )
    }
}

/// What S3 reported when the upload completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Completion {
    pub etag: String,
    pub size: u64,
    pub location: String,
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
            assert_eq!(
                from.can_become(Status::Completed),
                from == Status::Completing
            );
            assert_eq!(from.can_become(Status::Aborted), from == Status::Aborting);
        }
        assert!(!Status::Aborting.can_become(Status::Completing));
        assert!(!Status::Aborting.can_become(Status::Active));
    }
}
