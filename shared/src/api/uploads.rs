//! `GET /s3/multipart`: the caller's uploads, newest first, a page at a time,
//! from the owner index (never a scan).

use super::{Request, response};
use crate::error::{Error, Result};
use crate::model::{ChecksumAlgorithm, Status, Upload, UploadKind};
use crate::{Context, store::OWNER_INDEX};
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;

/// Page size when the caller names none, and the most one page holds.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

/// ListParts calls in flight at once for `bytes=true`.
const HELD_CONCURRENCY: usize = 8;

/// Longest cursor accepted: a real one is under 300 characters.
const MAX_CURSOR_LEN: usize = 2048;

/// One upload in the list.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadSummary {
    pub upload_id: String,
    pub key: String,
    pub filename: String,
    pub content_type: String,
    /// The object's size once completed, else the declared size, or null
    /// (Uppy declares none).
    pub size: Option<u64>,
    pub state: Status,
    /// How the bytes arrive: `multipart`, `post` (a POST form) or `put` (one presigned PUT).
    pub kind: UploadKind,
    /// RFC 3339.
    pub initiated: String,
    /// RFC 3339, the last state change.
    pub updated: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_algorithm: Option<ChecksumAlgorithm>,
    /// With `bytes=true`, for live uploads: bytes S3 holds in their parts now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_held: Option<u64>,
}

impl UploadSummary {
    pub fn new(u: &Upload, bytes_held: Option<u64>) -> Self {
        UploadSummary {
            upload_id: u.upload_id.clone(),
            key: u.key.clone(),
            filename: u.filename.clone(),
            content_type: u.content_type.clone(),
            size: u.completion.as_ref().map(|c| c.size).or(u.size),
            state: u.status,
            kind: u.kind,
            initiated: rfc3339(u.initiated_at),
            updated: rfc3339(u.updated_at),
            part_size: u.plan.map(|p| p.part_size),
            part_count: u.plan.map(|p| p.part_count),
            checksum_algorithm: u.checksum,
            bytes_held,
        }
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Where the next page starts: the owner index's LastEvaluatedKey, as opaque
/// base64url JSON. Decoding checks that it names the caller, so a cursor can
/// only ever page through the caller's own partition of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    #[serde(rename = "o")]
    pub owner: String,
    #[serde(rename = "u")]
    pub upload_id: String,
    #[serde(rename = "t")]
    pub initiated_at: i64,
}

impl Cursor {
    /// The cursor for a LastEvaluatedKey of the owner index.
    pub fn from_key(key: &HashMap<String, AttributeValue>) -> Result<Cursor> {
        let text = |name: &str| key.get(name).and_then(|v| v.as_s().ok()).cloned();
        let number = key
            .get("initiated_at")
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse().ok());
        match (text("owner"), text("upload_id"), number) {
            (Some(owner), Some(upload_id), Some(initiated_at)) => Ok(Cursor {
                owner,
                upload_id,
                initiated_at,
            }),
            _ => Err(Error::internal(format!(
                "unexpected LastEvaluatedKey from {OWNER_INDEX}"
            ))),
        }
    }

    pub fn to_key(&self) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("owner".to_string(), AttributeValue::S(self.owner.clone())),
            (
                "upload_id".to_string(),
                AttributeValue::S(self.upload_id.clone()),
            ),
            (
                "initiated_at".to_string(),
                AttributeValue::N(self.initiated_at.to_string()),
            ),
        ])
    }

    pub fn encode(&self) -> String {
        let text = serde_json::to_vec(self).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// A cursor a previous answer gave `owner`; anything else is a 400.
    pub fn decode(raw: &str, owner: &str) -> Result<Cursor> {
        let bad = || Error::bad_request("cursor is not one this API gave you; start without it");
        if raw.len() > MAX_CURSOR_LEN {
            return Err(bad());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| bad())?;
        let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.owner != owner || cursor.upload_id.is_empty() {
            return Err(bad());
        }
        Ok(cursor)
    }
}

/// The `state` filter: one state, or `live` (not terminal).
fn states(raw: Option<String>) -> Result<Option<Vec<Status>>> {
    let Some(raw) = raw else { return Ok(None) };
    if raw == "live" {
        return Ok(Some(
            Status::ALL
                .into_iter()
                .filter(|s| !s.is_terminal())
                .collect(),
        ));
    }
    Status::parse(&raw).map(|s| Some(vec![s])).ok_or_else(|| {
        Error::bad_request(format!(
            "state {raw:?} is not one of ACTIVE, COMPLETING, COMPLETED, ABORTING, ABORTED, live"
        ))
    })
}

fn limit(raw: Option<String>) -> Result<usize> {
    let Some(raw) = raw else {
        return Ok(DEFAULT_LIMIT);
    };
    raw.parse::<usize>()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| {
            Error::bad_request(format!("limit {raw:?} is not a whole number in 1..=100"))
        })
}

fn flag(name: &str, raw: Option<String>) -> Result<bool> {
    match raw.as_deref() {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(Error::bad_request(format!(
            "{name} {other:?} is neither true nor false"
        ))),
    }
}

/// The caller's uploads: `{uploads: [...], next: cursor | null}`.
pub async fn list(ctx: &Context, req: &Request<'_>) -> Result<ApiGatewayV2httpResponse> {
    let owner = req.owner(ctx.config.anonymous)?;
    let limit = limit(req.query("limit"))?;
    let states = states(req.query("state"))?;
    let with_bytes = flag("bytes", req.query("bytes"))?;
    let start = req
        .query("cursor")
        .map(|c| Cursor::decode(&c, &owner))
        .transpose()?;
    let page = ctx
        .store
        .owner_page(&owner, states.as_deref(), start.map(|c| c.to_key()), limit)
        .await?;
    // Owned (key, id) pairs: a stream of futures borrowing each item is not
    // `Send` enough for the runtime to spawn.
    let live: Vec<Option<(String, String)>> = page
        .uploads
        .iter()
        .map(|u| {
            (with_bytes && !u.status.is_terminal() && u.kind == UploadKind::Multipart)
                .then(|| (u.key.clone(), u.upload_id.clone()))
        })
        .collect();
    let held: Vec<Option<u64>> = futures::stream::iter(live)
        .map(|target| bytes_held(ctx, target))
        .buffered(HELD_CONCURRENCY)
        .try_collect()
        .await?;
    let uploads: Vec<UploadSummary> = page
        .uploads
        .iter()
        .zip(held)
        .map(|(u, h)| UploadSummary::new(u, h))
        .collect();
    let next = page
        .next
        .map(|k| Cursor::from_key(&k).map(|c| c.encode()))
        .transpose()?;
    Ok(response::json(
        200,
        &json!({ "uploads": uploads, "next": next }),
    ))
}

/// Bytes S3 holds for a live upload (`(key, upload id)`), when asked; 0 once
/// S3 has no such upload.
async fn bytes_held(ctx: &Context, target: Option<(String, String)>) -> Result<Option<u64>> {
    let Some((key, upload_id)) = target else {
        return Ok(None);
    };
    let parts = ctx.storage.list_parts(&key, &upload_id).await?;
    Ok(Some(parts.unwrap_or_default().iter().map(|p| p.size).sum()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_other_owners_and_junk() {
        let c = Cursor {
            owner: "alice".into(),
            upload_id: "u1".into(),
            initiated_at: 1_795_598_149_117,
        };
        let raw = c.encode();
        assert_eq!(Cursor::decode(&raw, "alice").unwrap(), c);
        assert_eq!(Cursor::from_key(&c.to_key()).unwrap(), c);
        assert_eq!(Cursor::decode(&raw, "bob").unwrap_err().status(), 400);
        for junk in ["", "!!!", "e30", &"A".repeat(5000)] {
            assert_eq!(Cursor::decode(junk, "alice").unwrap_err().status(), 400);
        }
        let extra = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"o":"alice","u":"u1","t":1,"x":2}"#);
        assert_eq!(Cursor::decode(&extra, "alice").unwrap_err().status(), 400);
    }

    #[test]
    fn query_values_are_checked() {
        assert_eq!(limit(None).unwrap(), DEFAULT_LIMIT);
        assert_eq!(limit(Some("100".into())).unwrap(), 100);
        for bad in ["0", "101", "-1", "x", "1.5"] {
            assert_eq!(limit(Some(bad.into())).unwrap_err().status(), 400, "{bad}");
        }
        assert_eq!(states(None).unwrap(), None);
        assert_eq!(
            states(Some("ACTIVE".into())).unwrap(),
            Some(vec![Status::Active])
        );
        assert_eq!(
            states(Some("live".into())).unwrap(),
            Some(vec![Status::Active, Status::Completing, Status::Aborting])
        );
        assert_eq!(states(Some("active".into())).unwrap_err().status(), 400);
        assert!(flag("bytes", Some("true".into())).unwrap());
        assert!(!flag("bytes", None).unwrap());
        assert_eq!(flag("bytes", Some("1".into())).unwrap_err().status(), 400);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(1_795_598_149_117), "2026-11-25T09:15:49.117Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
