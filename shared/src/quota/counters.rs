//! The quota counters in DynamoDB: charged in the transaction that writes an upload's item, released at its end, recounted when they drift.
//!
//! Items, in the tracking table beside the uploads (their ids cannot clash:
//! S3's upload ids have no `#`):
//! - `quota#{owner}`: `live` and `bytes`, the owner's live uploads and the
//!   bytes they were charged; `quota_shard` and `quota_owner` put it in the
//!   sparse `quota-counters` index (with the counts), which is how the sweep
//!   finds the counters in use;
//! - `rate#{owner}#{minute}`: `n`, the uploads started in that minute; its
//!   TTL removes it soon after.
//!
//! Every change is one conditional write (or one item of a transaction), so
//! no check is ever a read followed by a write.

use super::{Quota, Quotas, Usage};
use crate::error::{Error, Result, from_sdk};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, CancellationReason, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update,
};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// The index of counter items: sparse, keyed by `quota_shard` and `quota_owner`.
pub const COUNTER_INDEX: &str = "quota-counters";
/// The item attribute holding what an upload was charged, in bytes; only
/// charged uploads have it, so only they are released.
pub const CHARGED: &str = "charged_bytes";
/// A counter changed this recently is not recounted: the owner index it is
/// recounted from may not show the newest items yet.
pub const SETTLE_MS: i64 = 60_000;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn num(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .map_or(0, |v| v.max(0) as u64)
}

/// The counter item's id for `owner`.
pub fn counter_id(owner: &str) -> String {
    format!("quota#{owner}")
}

fn rate_id(owner: &str, minute: i64) -> String {
    format!("rate#{owner}#{minute}")
}

/// A charge for new uploads (one, or a batch written in one transaction):
/// the counter items of the transaction that writes their items, after them.
pub struct Charge<'a> {
    pub table: &'a str,
    pub owner: &'a str,
    /// The counter's index shard (the same hash as the live index's).
    pub shard: String,
    /// How many uploads, and their declared bytes in all.
    pub uploads: u64,
    pub bytes: u64,
    pub quotas: &'a Quotas,
    pub now_ms: i64,
}

impl Charge<'_> {
    /// Refuses at once a charge larger than a whole quota, which no wait can
    /// make room for (the owner's usage read for the message).
    pub async fn check_size(&self, client: &Client) -> Result<()> {
        let q = self.quotas;
        let over = |max: u64, wanted: u64| max > 0 && wanted > max;
        if !(over(q.bytes_in_flight, self.bytes)
            || over(q.live_uploads, self.uploads)
            || over(q.uploads_per_minute, self.uploads))
        {
            return Ok(());
        }
        let usage = usage(client, self.table, self.owner, self.now_ms).await?;
        Err(if over(q.live_uploads, self.uploads) {
            Quota::LiveUploads.refusal(usage.live_uploads, q.live_uploads, 0)
        } else if over(q.uploads_per_minute, self.uploads) {
            Quota::UploadsPerMinute.refusal(usage.uploads_this_minute, q.uploads_per_minute, 0)
        } else {
            Quota::BytesInFlight.refusal(usage.bytes_in_flight, q.bytes_in_flight, 0)
        })
    }

    /// The transaction's counter updates, each conditioned on its limit.
    pub fn items(&self) -> Result<Vec<TransactWriteItem>> {
        let q = self.quotas;
        let mut conditions = vec![];
        let mut values: Item = [
            (":owner".to_string(), s(self.owner)),
            (":shard".to_string(), s(&self.shard)),
            (":now".to_string(), n(self.now_ms)),
            (":count".to_string(), n(self.uploads)),
            (":bytes".to_string(), n(self.bytes)),
        ]
        .into();
        if q.live_uploads > 0 {
            // `check_size` refused more uploads than the whole quota.
            conditions.push("(attribute_not_exists(live) OR live <= :maxlive)");
            values.insert(
                ":maxlive".into(),
                n(q.live_uploads.saturating_sub(self.uploads)),
            );
        }
        if q.bytes_in_flight > 0 {
            // `check_size` refused a charge above the whole quota.
            conditions.push("(attribute_not_exists(bytes) OR bytes <= :room)");
            values.insert(
                ":room".into(),
                n(q.bytes_in_flight.saturating_sub(self.bytes)),
            );
        }
        let mut counter = Update::builder()
            .table_name(self.table)
            .key("upload_id", s(counter_id(self.owner)))
            .update_expression(
                "SET quota_owner = :owner, quota_shard = :shard, quota_updated_at = :now ADD live :count, bytes :bytes",
            )
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if !conditions.is_empty() {
            counter = counter.condition_expression(conditions.join(" AND "));
        }
        let mut items = vec![
            TransactWriteItem::builder()
                .update(counter.build().map_err(Error::internal)?)
                .build(),
        ];
        if q.uploads_per_minute > 0 {
            let minute = self.now_ms.div_euclid(60_000);
            let rate = Update::builder()
                .table_name(self.table)
                .key("upload_id", s(rate_id(self.owner, minute)))
                .update_expression("SET expires_at = :exp ADD n :count")
                .condition_expression("attribute_not_exists(n) OR n <= :maxrate")
                .expression_attribute_values(":count", n(self.uploads))
                .expression_attribute_values(
                    ":maxrate",
                    n(q.uploads_per_minute.saturating_sub(self.uploads)),
                )
                // Gone a day later: nothing reads a past minute.
                .expression_attribute_values(":exp", n((minute + 1) * 60 + 86_400))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(Error::internal)?;
            items.push(TransactWriteItem::builder().update(rate).build());
        }
        Ok(items)
    }

    /// The refusal a cancelled transaction's reasons say, for the counter
    /// items at `reasons[at..]` (the rate first: waiting a minute fixes it).
    pub fn refusal(&self, reasons: &[CancellationReason], at: usize) -> Option<Error> {
        let failed = |i: usize| {
            reasons
                .get(at + i)
                .filter(|r| r.code() == Some("ConditionalCheckFailed"))
        };
        let q = self.quotas;
        if q.uploads_per_minute > 0
            && let Some(r) = failed(1)
        {
            let used = r.item().map_or(q.uploads_per_minute, |i| num(i, "n"));
            let into_minute = self.now_ms.rem_euclid(60_000);
            let retry = ((60_000 - into_minute) as u64).div_ceil(1000) as u32;
            return Some(Quota::UploadsPerMinute.refusal(used, q.uploads_per_minute, retry));
        }
        let r = failed(0)?;
        let old = r.item().cloned().unwrap_or_default();
        let (live, bytes) = (num(&old, "live"), num(&old, "bytes"));
        if q.live_uploads > 0 && live + self.uploads > q.live_uploads {
            return Some(Quota::LiveUploads.refusal(live, q.live_uploads, 0));
        }
        Some(Quota::BytesInFlight.refusal(bytes, q.bytes_in_flight, 0))
    }
}

/// Gives back what a finished upload was charged: one live upload and its
/// bytes. Called once per upload, by the write that made it terminal. A
/// release that finds the counter already lower (drift) changes nothing and
/// is logged; the sweep's recount mends it.
pub async fn release(client: &Client, table: &str, owner: &str, bytes: u64, now_ms: i64) {
    let result = client
        .update_item()
        .table_name(table)
        .key("upload_id", s(counter_id(owner)))
        .update_expression("SET quota_updated_at = :now ADD live :minus, bytes :less")
        .condition_expression("live >= :one AND bytes >= :bytes")
        .expression_attribute_values(":now", n(now_ms))
        .expression_attribute_values(":minus", n(-1))
        .expression_attribute_values(":less", n(-(bytes.min(i64::MAX as u64) as i64)))
        .expression_attribute_values(":one", n(1))
        .expression_attribute_values(":bytes", n(bytes))
        .send()
        .await;
    match result {
        Ok(_) => {}
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
            tracing::warn!(
                owner,
                bytes,
                "quota counter already below this upload's charge; the sweep recounts it"
            );
        }
        Err(e) => {
            // The counter stays high until the sweep recounts it: an owner
            // is held back too early, never let past a limit.
            tracing::warn!(owner, bytes, error = %aws_sdk_dynamodb::error::DisplayErrorContext(&e), "quota release failed; the sweep recounts it");
        }
    }
}

/// What `owner` uses now (strongly consistent reads of the two counters).
pub async fn usage(client: &Client, table: &str, owner: &str, now_ms: i64) -> Result<Usage> {
    let get = |id: String| {
        client
            .get_item()
            .table_name(table)
            .key("upload_id", s(id))
            .consistent_read(true)
            .send()
    };
    let (counter, rate) = futures::join!(
        Box::pin(get(counter_id(owner))),
        Box::pin(get(rate_id(owner, now_ms.div_euclid(60_000))))
    );
    let counter = counter.map_err(|e| from_sdk("GetItem", e))?.item;
    let rate = rate.map_err(|e| from_sdk("GetItem", e))?.item;
    let counter = counter.unwrap_or_default();
    Ok(Usage {
        live_uploads: num(&counter, "live"),
        bytes_in_flight: num(&counter, "bytes"),
        uploads_this_minute: rate.as_ref().map_or(0, |i| num(i, "n")),
    })
}

/// What one recount found and did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recount {
    pub checked: u64,
    pub fixed: u64,
}

/// Recounts every counter not changed in the last [`SETTLE_MS`] from its
/// owner's live items (the owner index), and sets it to the count only if
/// it has not changed meanwhile. Stops, with what it did, when `more` says so.
pub async fn recount_all(
    client: &Client,
    table: &str,
    owner_index: &str,
    shards: u32,
    now_ms: i64,
    mut more: impl FnMut() -> bool,
) -> Result<Recount> {
    let mut done = Recount::default();
    for shard in 0..shards.max(1) {
        let mut start = None;
        loop {
            if !more() {
                return Ok(done);
            }
            let page = client
                .query()
                .table_name(table)
                .index_name(COUNTER_INDEX)
                .key_condition_expression("quota_shard = :sh")
                // Only counters in use and not changed lately: an owner with
                // nothing live has nothing to drift.
                .filter_expression(
                    "(live > :zero OR bytes > :zero) AND quota_updated_at <= :settled",
                )
                .expression_attribute_values(":sh", s(shard.to_string()))
                .expression_attribute_values(":zero", n(0))
                .expression_attribute_values(":settled", n(now_ms - SETTLE_MS))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| from_sdk("Query", e))?;
            for key in page.items() {
                let Some(owner) = key.get("quota_owner").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                done.checked += 1;
                if recount(client, table, owner_index, owner, now_ms).await? {
                    done.fixed += 1;
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
    }
    Ok(done)
}

/// Recounts one owner's counter; true if it had drifted and was mended.
pub async fn recount(
    client: &Client,
    table: &str,
    owner_index: &str,
    owner: &str,
    now_ms: i64,
) -> Result<bool> {
    let counter = client
        .get_item()
        .table_name(table)
        .key("upload_id", s(counter_id(owner)))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| from_sdk("GetItem", e))?
        .item
        .unwrap_or_default();
    let seen = counter
        .get("quota_updated_at")
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse::<i64>().ok());
    let Some(seen) = seen.filter(|t| now_ms - t >= SETTLE_MS) else {
        return Ok(false);
    };
    let (mut live, mut bytes) = (0u64, 0u64);
    let mut start = None;
    loop {
        let page = client
            .query()
            .table_name(table)
            .index_name(owner_index)
            .key_condition_expression("#owner = :owner")
            .filter_expression("#status IN (:a, :c, :b) AND attribute_exists(#charged)")
            .projection_expression("#charged")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#charged", CHARGED)
            .expression_attribute_values(":owner", s(owner))
            .expression_attribute_values(":a", s("ACTIVE"))
            .expression_attribute_values(":c", s("COMPLETING"))
            .expression_attribute_values(":b", s("ABORTING"))
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        for item in page.items() {
            live += 1;
            bytes += num(item, CHARGED);
        }
        match page.last_evaluated_key {
            Some(k) if !k.is_empty() => start = Some(k),
            _ => break,
        }
    }
    if (num(&counter, "live"), num(&counter, "bytes")) == (live, bytes) {
        return Ok(false);
    }
    let set = client
        .update_item()
        .table_name(table)
        .key("upload_id", s(counter_id(owner)))
        .update_expression("SET live = :live, bytes = :bytes, quota_updated_at = :now")
        .condition_expression("quota_updated_at = :seen")
        .expression_attribute_values(":live", n(live))
        .expression_attribute_values(":bytes", n(bytes))
        .expression_attribute_values(":now", n(now_ms))
        .expression_attribute_values(":seen", n(seen))
        .send()
        .await;
    match set {
        Ok(_) => {
            tracing::warn!(
                owner,
                live,
                bytes,
                was_live = num(&counter, "live"),
                was_bytes = num(&counter, "bytes"),
                "quota counter had drifted; recounted"
            );
            Ok(true)
        }
        // Charged or released meanwhile: the next sweep looks again.
        Err(e) if e.code() == Some("ConditionalCheckFailedException") => Ok(false),
        Err(e) => Err(from_sdk("UpdateItem", e)),
    }
}
