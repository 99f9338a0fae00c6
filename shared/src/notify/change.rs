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
    let facts = UploadFacts::new(&upload, bucket, detail_type);
    let stamp = |name: &str| new.get(name).and_then(|v| v.as_s().ok()).cloned();
    let detail = match detail_type {
        DetailType::Started => serde_json::to_value(Started {
            upload: facts,
            declared_size: upload.size,
            part_size: upload.plan.map(|p| p.part_size),
            part_count: upload.plan.map(|p| p.part_count),
            checksum_algorithm: upload.checksum.map(|a| a.as_str().to_string()),
            source: Actor::Api,
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

fn image(item: &serde_dynamo::Item) -> Item {
    item.iter()
        .map(|(k, v)| (k.clone(), AttributeValue::from(v.clone())))
        .collect()
}
