//! Per-owner quotas: the limits, what an owner uses, and the refusal when a new upload would pass one.
//!
//! Each owner has one counter item in the tracking table (live uploads and
//! the bytes they declared) and one item per minute (uploads started in it).
//! A new upload is charged in the same DynamoDB transaction that writes its
//! item, each counter conditioned on staying within its limit, so however
//! many calls race, no owner ever holds more than the limits allow
//! ([`counters`]). The charge is released when the upload reaches a terminal
//! state; the sweep recounts a counter that has drifted from the owner's
//! live items.

pub mod counters;

use crate::error::Error;
use serde::Serialize;

/// The quotas an owner is held to; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Quotas {
    /// Uploads not yet completed or aborted.
    pub live_uploads: u64,
    /// Bytes those uploads declared (their size; a POST form's most).
    pub bytes_in_flight: u64,
    /// Uploads started in one calendar minute.
    pub uploads_per_minute: u64,
}

impl Quotas {
    /// Whether any quota is set, so uploads must be charged.
    pub fn any(&self) -> bool {
        self.live_uploads > 0 || self.bytes_in_flight > 0 || self.uploads_per_minute > 0
    }
}

/// Which quota a refusal or a usage figure is about, in the API's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    LiveUploads,
    BytesInFlight,
    UploadsPerMinute,
}

impl Quota {
    pub fn as_str(self) -> &'static str {
        match self {
            Quota::LiveUploads => "liveUploads",
            Quota::BytesInFlight => "bytesInFlight",
            Quota::UploadsPerMinute => "uploadsPerMinute",
        }
    }

    /// The refusal of a new upload that would take `usage` past `limit`.
    /// `retry_after`: seconds until the rate's minute turns.
    pub fn refusal(self, usage: u64, limit: u64, retry_after: u32) -> Error {
        let message = match self {
            Quota::LiveUploads => format!(
                "you have {usage} unfinished uploads, the most this service allows at once ({limit}); complete or abort one first"
            ),
            Quota::BytesInFlight => format!(
                "your unfinished uploads hold {usage} bytes of the {limit} this service allows at once, too few for this file; complete or abort one first"
            ),
            Quota::UploadsPerMinute => format!(
                "you started {usage} uploads this minute, the most this service allows ({limit}); retry in {retry_after} s"
            ),
        };
        Error::QuotaExceeded {
            quota: self.as_str(),
            usage,
            limit,
            retry_after: (self == Quota::UploadsPerMinute).then_some(retry_after.max(1)),
            message,
        }
    }
}

/// One quota's figures as `GET /quota` answers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Figure {
    pub usage: u64,
    /// `null` when no limit is set.
    pub limit: Option<u64>,
}

/// What an owner uses of each quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub live_uploads: u64,
    pub bytes_in_flight: u64,
    pub uploads_this_minute: u64,
}

impl Usage {
    /// `{"liveUploads": {usage, limit}, …}`, limits as set (`null` for none).
    pub fn figures(&self, quotas: &Quotas) -> serde_json::Value {
        let figure = |usage, limit| Figure {
            usage,
            limit: (limit > 0).then_some(limit),
        };
        serde_json::json!({
            Quota::LiveUploads.as_str(): figure(self.live_uploads, quotas.live_uploads),
            Quota::BytesInFlight.as_str(): figure(self.bytes_in_flight, quotas.bytes_in_flight),
            Quota::UploadsPerMinute.as_str(): figure(self.uploads_this_minute, quotas.uploads_per_minute),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_the_quota_with_the_status_a_client_acts_on() {
        let e = Quota::LiveUploads.refusal(10, 10, 0);
        assert_eq!((e.status(), e.retry_after()), (403, None));
        assert_eq!(e.body()["error"]["quota"], "liveUploads");
        assert_eq!(e.body()["error"]["usage"], 10);
        assert_eq!(e.body()["error"]["limit"], 10);
        let e = Quota::BytesInFlight.refusal(5, 8, 0);
        assert_eq!(e.status(), 413);
        let e = Quota::UploadsPerMinute.refusal(60, 60, 17);
        assert_eq!((e.status(), e.retry_after()), (429, Some(17)));
        assert_eq!(e.code(), "QuotaExceeded");
    }

    #[test]
    fn figures_show_no_limit_as_null() {
        let usage = Usage {
            live_uploads: 2,
            bytes_in_flight: 7,
            uploads_this_minute: 1,
        };
        let q = Quotas {
            live_uploads: 5,
            ..Quotas::default()
        };
        let f = usage.figures(&q);
        assert_eq!(
            f["liveUploads"],
            serde_json::json!({"usage": 2, "limit": 5})
        );
        assert_eq!(
            f["bytesInFlight"],
            serde_json::json!({"usage": 7, "limit": null})
        );
    }
}
