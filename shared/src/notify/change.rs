//! Which stream records are events: a state change read from the committed
//! item images alone, never from any handler's memory.

use super::detail::{Aborted, Completed, DetailType, Started, UploadFacts, rfc3339};
use crate::error::{Error, Result};
use crate::model::{AbortReason, Actor, Status, Upload};
use aws_lambda_events::dynamodb::EventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// One event to publish, derived from one stream record.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub detail_type: DetailType,
    pub upload_id: String,
    /// Epoch milliseconds of the change (the item's `updated_at`).
    pub time_ms: i64,
    pub detail: Value,
}

/// The event a record carries, if any: an INSERT of an ACTIVE item is
/// `Upload Started`; a MODIFY into COMPLETED or ABORTED (from any other
/// state) is `Upload Completed` or `Upload Aborted`. Every other record
/// (claims, a completion handed back to ACTIVE, TTL deletions) is none.
pub fn notice(record: &EventRecord, bucket: &str) -> Result<Option<Notice>> {
    let new = image(&record.change.new_image);
    let old = image(&record.change.old_image);
    let status = |item: &Item| {
        item.get("status")
            .and_then(|v| v.as_s().ok())
            .and_then(|s| Status::parse(s))
    };
    let (before, after) = (status(&old), status(&new));
    let detail_type = match (record.event_name.as_str(), before, after) {
        ("INSERT", None, Some(Status::Active)) => DetailType::Started,
        ("MODIFY", Some(b), Some(Status::Completed)) if b != Status::Completed => {
            DetailType::Completed
        }
        ("MODIFY", Some(b), Some(Status::Aborted)) if b != Status::Aborted => DetailType::Aborted,
        _ => return Ok(None),
    };
    let upload = Upload::try_from(&new)?;
    let facts = UploadFacts::new(&upload, metadata(&new), bucket, detail_type);
    let stamp = |name: &str| new.get(name).and_then(|v| v.as_s().ok()).cloned();
    let detail = match detail_type {
        DetailType::Started => serde_json::to_value(Started {
            upload: facts,
            declared_size: upload.size,
            part_size: upload.plan.map(|p| p.part_size),
            part_count: upload.plan.map(|p| p.part_count),
            checksum_algorithm: upload.checksum.map(|a| a.as_str().to_string()),
            source: Actor::Api,
            url_expires_at: upload.url_expires_at.map(rfc3339),
        }),
        DetailType::Completed => {
            let c = upload.completion.clone().ok_or_else(|| {
                Error::internal(format!(
                    "COMPLETED item {} has no completion",
                    upload.upload_id
                ))
            })?;
            serde_json::to_value(Completed {
                upload: facts,
                size: c.size,
                etag: c.etag,
                location: c.location,
                checksum: c.checksum,
                completed_at: rfc3339(upload.updated_at),
                source: stamp("completed_by").and_then(|s| Actor::parse(&s)),
            })
        }
        DetailType::Aborted => serde_json::to_value(Aborted {
            upload: facts,
            aborted_at: rfc3339(upload.updated_at),
            source: stamp("aborted_by").and_then(|s| Actor::parse(&s)),
            reason: stamp("abort_reason").and_then(|s| AbortReason::parse(&s)),
            declared_size: upload.size,
        }),
    }
    .map_err(Error::internal)?;
    Ok(Some(Notice {
        detail_type,
        upload_id: upload.upload_id,
        time_ms: upload.updated_at,
        detail,
    }))
}

/// The item's user metadata (`metadata`, a map of strings); empty when none.
fn metadata(item: &Item) -> crate::metadata::Metadata {
    item.get("metadata")
        .and_then(|v| v.as_m().ok())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone())))
                .collect()
        })
        .unwrap_or_default()
}

fn image(item: &serde_dynamo::Item) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), AttributeValue::from(v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(status: &str, extra: Value) -> Value {
        let mut m = json!({
            "upload_id": {"S": "u1"}, "key": {"S": "uploads/a/x/f.bin"}, "owner": {"S": "a"},
            "status": {"S": status}, "initiated_at": {"N": "1000"}, "updated_at": {"N": "2000"},
            "filename": {"S": "f.bin"}, "content_type": {"S": "application/octet-stream"},
        });
        if let (Some(m), Some(x)) = (m.as_object_mut(), extra.as_object()) {
            m.extend(x.clone());
        }
        m
    }

    fn record(name: &str, old: Option<Value>, new: Option<Value>) -> EventRecord {
        let mut change =
            json!({"Keys": {"upload_id": {"S": "u1"}}, "SequenceNumber": "1", "SizeBytes": 1});
        if let Some(o) = old {
            change["OldImage"] = o;
        }
        if let Some(n) = new {
            change["NewImage"] = n;
        }
        serde_json::from_value(json!({"eventID": "e", "eventName": name, "awsRegion": "us-east-1", "dynamodb": change}))
            .unwrap()
    }

    fn completion() -> Value {
        json!({"etag": {"S": "\"e\""}, "completed_size": {"N": "5"}, "location": {"S": "http://x"}})
    }

    #[test]
    fn only_arrivals_in_a_terminal_state_and_inserts_are_events() {
        for from in Status::ALL {
            for to in Status::ALL {
                if !from.can_become(to) {
                    continue;
                }
                let extra = if to == Status::Completed {
                    completion()
                } else {
                    json!({})
                };
                let r = record(
                    "MODIFY",
                    Some(item(from.as_str(), json!({}))),
                    Some(item(to.as_str(), extra)),
                );
                let got = notice(&r, "b").unwrap().map(|n| n.detail_type);
                let want = match to {
                    Status::Completed => Some(DetailType::Completed),
                    Status::Aborted => Some(DetailType::Aborted),
                    _ => None,
                };
                assert_eq!(got, want, "{from:?} -> {to:?}");
            }
        }
        let insert = record("INSERT", None, Some(item("ACTIVE", json!({}))));
        let n = notice(&insert, "b").unwrap().unwrap();
        assert_eq!(n.detail_type, DetailType::Started);
        assert_eq!(n.detail["kind"], "multipart");
        assert_eq!(n.detail["metadata"], json!({}));
        assert_eq!(n.detail["eventId"], "u1:STARTED");
        assert_eq!(n.detail["initiatedAt"], "1970-01-01T00:00:01.000Z");
        // A TTL deletion, and a rewrite of a terminal item, are not events.
        let done = item("COMPLETED", completion());
        assert_eq!(
            notice(&record("REMOVE", Some(done.clone()), None), "b").unwrap(),
            None
        );
        assert_eq!(
            notice(&record("MODIFY", Some(done.clone()), Some(done)), "b").unwrap(),
            None
        );
    }

    #[test]
    fn an_unreadable_image_is_an_error_not_an_invented_event() {
        let no_completion = record(
            "MODIFY",
            Some(item("COMPLETING", json!({}))),
            Some(item("COMPLETED", json!({}))),
        );
        assert!(notice(&no_completion, "b").is_err());
        let mut broken = item("ABORTED", json!({}));
        broken["initiated_at"] = json!({"S": "yesterday"});
        let r = record("MODIFY", Some(item("ABORTING", json!({}))), Some(broken));
        assert!(notice(&r, "b").is_err());
    }

    #[test]
    fn events_carry_the_kind_and_the_metadata() {
        let extra = json!({
            "kind": {"S": "post"}, "url_expires_at": {"N": "3000"},
            "metadata": {"M": {"project": {"S": "42"}, "name": {"S": "f.bin"}}},
        });
        let mut done = completion();
        if let (Some(d), Some(x)) = (done.as_object_mut(), extra.as_object()) {
            d.extend(x.clone());
        }
        let r = record(
            "MODIFY",
            Some(item("ACTIVE", extra.clone())),
            Some(item("COMPLETED", done)),
        );
        let d = notice(&r, "b").unwrap().unwrap().detail;
        assert_eq!(d["kind"], "post");
        assert_eq!(d["metadata"], json!({"project": "42", "name": "f.bin"}));
        let started = notice(&record("INSERT", None, Some(item("ACTIVE", extra))), "b")
            .unwrap()
            .unwrap()
            .detail;
        assert_eq!(started["urlExpiresAt"], "1970-01-01T00:00:03.000Z");
    }

    #[test]
    fn the_stamps_say_who_and_why() {
        let stamps = json!({"aborted_by": {"S": "sweep"}, "abort_reason": {"S": "stale"}});
        let r = record(
            "MODIFY",
            Some(item("ABORTING", stamps.clone())),
            Some(item("ABORTED", stamps)),
        );
        let d = notice(&r, "b").unwrap().unwrap().detail;
        assert_eq!(
            (d["source"].as_str(), d["reason"].as_str()),
            (Some("sweep"), Some("stale"))
        );
        assert_eq!(d["abortedAt"], "1970-01-01T00:00:02.000Z");
    }
}
