//! DynamoDB tracking: one item per upload, changed only by conditional writes.

use crate::error::{Error, Result, from_sdk};
use crate::metadata::Metadata;
use crate::model::{
    AbortReason, Actor, ChecksumAlgorithm, Completion, ObjectChecksum, Status, Upload, UploadKind,
    now_millis,
};
use crate::plan::PartPlan;
use crate::quota::{Quotas, counters};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use std::collections::HashMap;
use std::time::Duration;

/// The live-uploads index: sparse (only live items carry `live_shard`), keyed
/// by shard and `initiated_at`.
pub const LIVE_INDEX: &str = "live-uploads";

/// The owner index: every item of one owner, keyed by `initiated_at`, so a
/// caller's uploads are one query, never a scan.
pub const OWNER_INDEX: &str = "owner-uploads";

/// The key index: object key → upload id (keys only), so S3's notification
/// for a multipart object finds its item (S3 names the key, never the UploadId).
pub const KEY_INDEX: &str = "key-uploads";

type Item = HashMap<String, AttributeValue>;

/// The tracking table.
#[derive(Clone, Debug)]
pub struct Store {
    client: Client,
    table: String,
    shards: u32,
    retention: Duration,
    /// Per-owner quotas, charged with each new item ([`crate::quota`]).
    quotas: Quotas,
}

/// Who made a transition (and why, for an abort), written on the item with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    /// With COMPLETED: `completed_by`.
    Completed(Actor),
    /// With an ABORTING claim: `aborted_by` and `abort_reason` (ABORTED keeps them).
    Aborting(Actor, AbortReason),
}

/// Who asks for a [`Store::claim`]: the transition is taken only on their
/// own item (and at their key, when they name it).
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// None for a caller who knows the key alone (S3's notification).
    pub owner: Option<&'a str>,
    /// The upload's key, when the caller named it (`?key=`).
    pub key: Option<&'a str>,
}

/// The result of a [`Store::claim`].
#[derive(Debug)]
pub enum Claim {
    /// Taken; the item as it now is.
    Won(Box<Upload>),
    /// Not taken; the item as it was (None if there is none), whoever owns it.
    Lost(Option<Box<Upload>>),
}

/// The result of a conditional transition.
#[derive(Debug)]
pub enum Transition {
    /// This call took the arrow. The item is not read back: no caller needs it,
    /// and returning it costs the table a read and a serialization per write.
    Won,
    /// Someone else moved the item first; the item as it now is (None if gone).
    Lost(Option<Box<Upload>>),
}

impl Store {
    pub fn new(client: Client, table: impl Into<String>, shards: u32, retention: Duration) -> Self {
        Store {
            client,
            table: table.into(),
            shards: shards.max(1),
            retention,
            quotas: Quotas::default(),
        }
    }

    /// The store, charging every new item to its owner's `quotas`.
    pub fn with_quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The shard of the live-uploads index an upload lives in: FNV-1a, stable across builds.
    pub fn shard_of(&self, upload_id: &str) -> String {
        let h = upload_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
        (h % self.shards as u64).to_string()
    }

    /// Writes a new item; fails if one with this upload id exists already.
    pub async fn insert(&self, upload: &Upload) -> Result<()> {
        self.insert_with_metadata(upload, &Metadata::new()).await
    }

    /// [`Store::insert`], keeping the upload's user metadata on the item too
    /// (`metadata`, a map of strings, only when there is some). With quotas
    /// set, a live upload is charged to its owner in the same transaction
    /// (its declared size, or 0), refused with the quota it would pass.
    pub async fn insert_with_metadata(&self, upload: &Upload, metadata: &Metadata) -> Result<()> {
        let item = self.new_item(upload, metadata);
        let put = if self.quotas.any() && !upload.status.is_terminal() {
            self.insert_together(vec![(upload, item)]).await
        } else {
            self.client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(upload_id)")
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    if e.code() == Some("ConditionalCheckFailedException") {
                        tracked_already()
                    } else {
                        from_sdk("PutItem", e)
                    }
                })
        };
        match put {
            // The upload id is S3's, new: an item with it can only be this very
            // write, landed on an attempt whose answer was lost and retried by the SDK.
            Err(Error::Conflict(_))
                if self
                    .get(&upload.upload_id)
                    .await?
                    .is_some_and(|now| now.key == upload.key && now.owner == upload.owner) =>
            {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Writes the items of many new live uploads of one owner in one
    /// transaction, charged to the owner's quotas together (with quotas set):
    /// all are tracked and counted, or none. At most [`Store::MAX_BATCH`].
    pub async fn insert_batch(&self, uploads: &[(Upload, Metadata)]) -> Result<()> {
        let Some((first, _)) = uploads.first() else {
            return Ok(());
        };
        if uploads.len() > Self::MAX_BATCH
            || uploads
                .iter()
                .any(|(u, _)| u.owner != first.owner || u.status.is_terminal())
        {
            return Err(Error::internal(
                "a batch is at most MAX_BATCH live uploads of one owner",
            ));
        }
        let items = uploads
            .iter()
            .map(|(u, m)| (u, self.new_item(u, m)))
            .collect();
        self.insert_together(items).await
    }

    /// The most uploads [`Store::insert_batch`] writes at once: a transaction
    /// holds 100 actions, and the quota counters take two.
    pub const MAX_BATCH: usize = 98;

    /// An upload's item as first written: its metadata (when there is some),
    /// and the live index's shard while it is live.
    fn new_item(&self, upload: &Upload, metadata: &Metadata) -> Item {
        let mut item = Item::from(upload);
        if !metadata.is_empty() {
            let map = metadata.iter().map(|(k, v)| (k.clone(), s(v))).collect();
            item.insert("metadata".into(), AttributeValue::M(map));
        }
        if !upload.status.is_terminal() {
            item.insert("live_shard".into(), s(self.shard_of(&upload.upload_id)));
        }
        item
    }

    /// Writes live items of one owner and, with quotas set, charges the
    /// owner's counters, in one transaction: either the items exist and are
    /// counted, or none is.
    async fn insert_together(&self, uploads: Vec<(&Upload, Item)>) -> Result<()> {
        let Some((first, _)) = uploads.first() else {
            return Ok(());
        };
        let owner = first.owner.clone();
        let charge = counters::Charge {
            table: &self.table,
            owner: &owner,
            shard: self.shard_of(&owner),
            uploads: uploads.len() as u64,
            bytes: uploads.iter().map(|(u, _)| u.size.unwrap_or(0)).sum(),
            quotas: &self.quotas,
            now_ms: now_millis(),
        };
        let charged = self.quotas.any();
        if charged {
            charge.check_size(&self.client).await?;
        }
        let count = uploads.len();
        let mut items = Vec::with_capacity(count + 2);
        for (upload, mut item) in uploads {
            if charged {
                item.insert(counters::CHARGED.into(), n(upload.size.unwrap_or(0)));
            }
            let put = aws_sdk_dynamodb::types::Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(upload_id)")
                .build()
                .map_err(Error::internal)?;
            items.push(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(put)
                    .build(),
            );
        }
        if charged {
            items.extend(charge.items()?);
        }
        // The token makes the SDK's own retry of a transaction whose answer
        // was lost succeed instead of finding its own items and failing.
        let token = uuid::Uuid::new_v4().simple().to_string();
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .client_request_token(token)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let reasons = match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
                        c.cancellation_reasons().to_vec()
                    }
                    _ => return Err(from_sdk("TransactWriteItems", e)),
                };
                if reasons[..count.min(reasons.len())]
                    .iter()
                    .any(|r| r.code() == Some("ConditionalCheckFailed"))
                {
                    return Err(tracked_already());
                }
                if charged && let Some(refusal) = charge.refusal(&reasons, count) {
                    tracing::info!(owner = %owner, uploads = count, error = %refusal, "quota refused new uploads");
                    return Err(refusal);
                }
                // Cancelled for contention (another transaction on the same
                // counter at once): the caller may retry.
                Err(Error::Throttled(
                    "too many uploads started at once; retry".into(),
                ))
            }
        }
    }

    /// Reads an item with a strongly consistent read.
    pub async fn get(&self, upload_id: &str) -> Result<Option<Upload>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("upload_id", s(upload_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", e))?;
        out.item.map(|i| Upload::try_from(&i)).transpose()
    }

    /// The user metadata kept on an item (empty when it has none or is gone).
    pub async fn metadata(&self, upload_id: &str) -> Result<Metadata> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("upload_id", s(upload_id))
            .projection_expression("metadata")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| from_sdk("GetItem", e))?;
        let map = out
            .item
            .and_then(|mut i| i.remove("metadata"))
            .and_then(|m| m.as_m().ok().cloned())
            .unwrap_or_default();
        Ok(map
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.as_s().ok()?.clone())))
            .collect())
    }

    /// Moves an item from `from` to `to` if, and only if, it is still in `from`.
    /// Terminal states leave the live index and get their TTL; `completion` is
    /// recorded with COMPLETED.
    pub async fn transition(
        &self,
        upload_id: &str,
        from: Status,
        to: Status,
        completion: Option<&Completion>,
    ) -> Result<Transition> {
        self.stamped(upload_id, from, to, completion, None).await
    }

    /// [`Store::transition`], stamping who made it, so the stream's images say
    /// it with no other record to keep in step.
    pub async fn transition_by(
        &self,
        upload_id: &str,
        from: Status,
        to: Status,
        completion: Option<&Completion>,
        stamp: Stamp,
    ) -> Result<Transition> {
        self.stamped(upload_id, from, to, completion, Some(stamp))
            .await
    }

    /// [`Store::transition_by`] for a caller who has not read the item: taken
    /// only if the item is also `caller`'s (and has its key, when named), so
    /// the ownership check rides on the write instead of costing a read
    /// before it. Won, it answers the item as it now is; lost, the item as it
    /// was (another owner's included: the caller must not be told about it).
    pub async fn claim(
        &self,
        upload_id: &str,
        caller: Caller<'_>,
        from: Status,
        to: Status,
        stamp: Stamp,
        completion: Option<&Completion>,
    ) -> Result<Claim> {
        let (transition, item) = self
            .update(upload_id, from, to, completion, Some(stamp), Some(caller))
            .await?;
        Ok(match (transition, item) {
            (Transition::Won, Some(item)) => Claim::Won(Box::new(Upload::try_from(&item)?)),
            (Transition::Won, None) => {
                return Err(Error::internal("UpdateItem answered no attributes"));
            }
            (Transition::Lost(now), _) => Claim::Lost(now),
        })
    }

    async fn stamped(
        &self,
        upload_id: &str,
        from: Status,
        to: Status,
        completion: Option<&Completion>,
        stamp: Option<Stamp>,
    ) -> Result<Transition> {
        let (transition, _) = self
            .update(upload_id, from, to, completion, stamp, None)
            .await?;
        Ok(transition)
    }

    /// The conditional write behind every transition; with `caller`, also
    /// conditioned on the owner (and key) and answering the new item.
    async fn update(
        &self,
        upload_id: &str,
        from: Status,
        to: Status,
        completion: Option<&Completion>,
        stamp: Option<Stamp>,
        caller: Option<Caller<'_>>,
    ) -> Result<(Transition, Option<Item>)> {
        if !from.can_become(to) {
            return Err(Error::internal(format!("no transition {from:?} -> {to:?}")));
        }
        let now = now_millis();
        // Marks this write as ours: when its answer is lost and the SDK retries,
        // the retry's failed condition returns the item, and the mark says the
        // first attempt took the arrow (otherwise a complete would answer
        // "in progress" to itself and leave the item COMPLETING).
        let mark = uuid::Uuid::new_v4().simple().to_string();
        let mut set = vec![
            "#status = :to",
            "updated_at = :now",
            "transition_id = :mark",
        ];
        let mut values: Item = [
            (":from".to_string(), s(from.as_str())),
            (":to".to_string(), s(to.as_str())),
            (":now".to_string(), n(now)),
            (":mark".to_string(), s(&mark)),
        ]
        .into();
        let mut remove = "";
        if to.is_terminal() {
            set.push("expires_at = :exp");
            values.insert(
                ":exp".into(),
                n(now / 1000 + self.retention.as_secs() as i64),
            );
            remove = " REMOVE live_shard";
        }
        if (from, to) == (Status::Aborting, Status::Completed) {
            // An abort that found the object made: nothing says aborted any more.
            remove = " REMOVE live_shard, aborted_by, abort_reason";
        }
        match (stamp, to) {
            (None, _) => {}
            (Some(Stamp::Completed(by)), Status::Completed) => {
                set.push("completed_by = :by");
                values.insert(":by".into(), s(by.as_str()));
            }
            (Some(Stamp::Aborting(by, reason)), Status::Aborting) => {
                set.extend(["aborted_by = :by", "abort_reason = :reason"]);
                values.insert(":by".into(), s(by.as_str()));
                values.insert(":reason".into(), s(reason.as_str()));
            }
            (Some(stamp), _) => {
                return Err(Error::internal(format!("{stamp:?} stamped on {to:?}")));
            }
        }
        if let Some(c) = completion {
            set.extend([
                "etag = :etag",
                "completed_size = :csize",
                "#location = :loc",
            ]);
            values.insert(":etag".into(), s(&c.etag));
            values.insert(":csize".into(), n(c.size));
            values.insert(":loc".into(), s(&c.location));
            if let Some(ck) = &c.checksum {
                // The algorithm too: a single-request upload chose none
                // beforehand, S3 reports the one it computed.
                set.extend([
                    "checksum_value = :ckval",
                    "checksum_type = :cktype",
                    "checksum_algorithm = :ckalg",
                ]);
                values.insert(":ckval".into(), s(&ck.value));
                values.insert(":cktype".into(), s(&ck.checksum_type));
                values.insert(":ckalg".into(), s(ck.algorithm.as_str()));
            }
        }
        let mut condition = String::from("#status = :from");
        if let Some(c) = &caller {
            if let Some(owner) = c.owner {
                condition.push_str(" AND #owner = :owner");
                values.insert(":owner".into(), s(owner));
            }
            if let Some(key) = c.key {
                condition.push_str(" AND #key = :key");
                values.insert(":key".into(), s(key));
            }
        }
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("upload_id", s(upload_id))
            .update_expression(format!("SET {}{remove}", set.join(", ")))
            .condition_expression(condition)
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if completion.is_some() {
            req = req.expression_attribute_names("#location", "location");
        }
        if let Some(c) = &caller {
            if c.owner.is_some() {
                req = req.expression_attribute_names("#owner", "owner");
            }
            if c.key.is_some() {
                req = req.expression_attribute_names("#key", "key");
            }
        }
        // The new item, for the caller's claim and for a terminal write's
        // quota release (its owner and charge): in the same answer, no read.
        let release = to.is_terminal() && !from.is_terminal();
        if caller.is_some() || release {
            req = req.return_values(ReturnValue::AllNew);
        }
        match req.send().await {
            Ok(out) => {
                if release {
                    self.release(out.attributes.as_ref()).await;
                }
                Ok((Transition::Won, out.attributes))
            }
            Err(e) if e.code() == Some("ConditionalCheckFailedException") => {
                let old = e
                    .as_service_error()
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
                            c.item.clone()
                        }
                        _ => None,
                    });
                // Our own earlier attempt won and its answer was lost (the SDK
                // retried): the item holds our mark, and is the item we wrote.
                if old
                    .as_ref()
                    .and_then(|i| i.get("transition_id"))
                    .is_some_and(|m| m.as_s().is_ok_and(|m| *m == mark))
                {
                    if release {
                        self.release(old.as_ref()).await;
                    }
                    return Ok((Transition::Won, old));
                }
                let old = old.as_ref().map(Upload::try_from).transpose()?;
                // Asked for the item as it was, DynamoDB answers it whenever
                // it exists: none means there is no item, and reading it
                // again would only say so a round trip later.
                Ok((Transition::Lost(old.map(Box::new)), None))
            }
            Err(e) => Err(from_sdk("UpdateItem", e)),
        }
    }
}

impl Store {
    /// Gives back the quota a terminal item was charged, if it was charged.
    async fn release(&self, item: Option<&Item>) {
        let Some(item) = item else { return };
        let charged = item
            .get(counters::CHARGED)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let owner = item.get("owner").and_then(|v| v.as_s().ok());
        if let (Some(bytes), Some(owner)) = (charged, owner) {
            counters::release(&self.client, &self.table, owner, bytes, now_millis()).await;
        }
    }
}

/// One page of uploads from an index, and where the next starts.
pub struct Page {
    pub uploads: Vec<Upload>,
    /// DynamoDB's LastEvaluatedKey; None on the last page.
    pub next: Option<Item>,
}

impl Store {
    /// Up to `limit` of `owner`'s uploads, newest first, from `start` on; with
    /// `states`, only those. The filter applies after DynamoDB's `Limit`, so
    /// this queries again (at most `MAX_ROUNDS` times) until the page is full
    /// or the owner's items end, and never answers more than `limit`.
    pub async fn owner_page(
        &self,
        owner: &str,
        states: Option<&[Status]>,
        start: Option<Item>,
        limit: usize,
    ) -> Result<Page> {
        const MAX_ROUNDS: usize = 8;
        let mut uploads = Vec::with_capacity(limit);
        let mut next = start;
        for round in 0..MAX_ROUNDS {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(OWNER_INDEX)
                .key_condition_expression("#owner = :owner")
                .expression_attribute_names("#owner", "owner")
                .expression_attribute_values(":owner", s(owner))
                .scan_index_forward(false)
                .set_exclusive_start_key(next.take())
                .limit((limit - uploads.len()) as i32);
            if let Some(states) = states {
                let names: Vec<String> = (0..states.len()).map(|i| format!(":st{i}")).collect();
                q = q
                    .filter_expression(format!("#status IN ({})", names.join(", ")))
                    .expression_attribute_names("#status", "status");
                for (name, st) in names.into_iter().zip(states) {
                    q = q.expression_attribute_values(name, s(st.as_str()));
                }
            }
            let out = q.send().await.map_err(|e| from_sdk("Query", e))?;
            for item in out.items() {
                uploads.push(Upload::try_from(item)?);
            }
            next = out.last_evaluated_key.filter(|k| !k.is_empty());
            if next.is_none() || uploads.len() >= limit {
                break;
            }
            tracing::debug!(
                round,
                found = uploads.len(),
                "owner page short after filtering"
            );
        }
        Ok(Page { uploads, next })
    }
}

impl Store {
    /// The live-uploads query for one shard: items initiated before
    /// `cutoff_ms`, oldest first, optionally only keys under `prefix`.
    fn live_query(
        &self,
        shard: u32,
        cutoff_ms: i64,
        prefix: Option<&str>,
        start: Option<Item>,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(LIVE_INDEX)
            .key_condition_expression("live_shard = :shard AND initiated_at < :cutoff")
            .expression_attribute_values(":shard", s(shard.to_string()))
            .expression_attribute_values(":cutoff", n(cutoff_ms))
            .set_exclusive_start_key(start);
        match prefix {
            Some(p) => q
                .filter_expression("begins_with(#key, :prefix)")
                .expression_attribute_names("#key", "key")
                .expression_attribute_values(":prefix", s(p)),
            None => q,
        }
    }

    /// Live uploads of one shard initiated before `cutoff_ms`, oldest first,
    /// optionally only keys under `prefix`.
    pub async fn live_page(
        &self,
        shard: u32,
        cutoff_ms: i64,
        prefix: Option<&str>,
        start: Option<Item>,
        page_size: i32,
    ) -> Result<Page> {
        let out = self
            .live_query(shard, cutoff_ms, prefix, start)
            .limit(page_size)
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        page_of(out)
    }

    /// How many live items of one shard were initiated before `cutoff_ms`
    /// (optionally under `prefix`): one page of a `Select=COUNT` query, and
    /// where the next starts. No item crosses the wire.
    pub async fn count_live_page(
        &self,
        shard: u32,
        cutoff_ms: i64,
        prefix: Option<&str>,
        start: Option<Item>,
    ) -> Result<(u64, Option<Item>)> {
        let out = self
            .live_query(shard, cutoff_ms, prefix, start)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        Ok((
            out.count.max(0) as u64,
            out.last_evaluated_key.filter(|k| !k.is_empty()),
        ))
    }

    /// Items for up to 100 upload ids, retrying what DynamoDB leaves unprocessed.
    pub async fn batch_get(&self, upload_ids: &[String]) -> Result<HashMap<String, Upload>> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut found = HashMap::new();
        if upload_ids.is_empty() {
            return Ok(found);
        }
        let keys = upload_ids
            .iter()
            .map(|id| [("upload_id".to_string(), s(id))].into())
            .collect::<Vec<Item>>();
        let mut pending = Some(
            KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(Error::internal)?,
        );
        let mut round = 0u32;
        while let Some(request) = pending.take() {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| from_sdk("BatchGetItem", e))?;
            for item in out
                .responses
                .and_then(|mut r| r.remove(&self.table))
                .unwrap_or_default()
            {
                let u = Upload::try_from(&item)?;
                found.insert(u.upload_id.clone(), u);
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(&self.table))
                .filter(|k| !k.keys.is_empty());
            if pending.is_some() {
                round += 1;
                if round > 8 {
                    return Err(Error::Throttled(
                        "BatchGetItem kept leaving keys unprocessed".into(),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(25 << round.min(6))).await;
            }
        }
        Ok(found)
    }
}

impl Store {
    /// The upload ids of the items whose object key is `key`, from the key
    /// index (eventually consistent: read each item after).
    pub async fn ids_by_key(&self, key: &str) -> Result<Vec<String>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(KEY_INDEX)
            .key_condition_expression("#key = :key")
            .expression_attribute_names("#key", "key")
            .expression_attribute_values(":key", s(key))
            .limit(10)
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        Ok(out
            .items()
            .iter()
            .filter_map(|i| i.get("upload_id")?.as_s().ok().cloned())
            .collect())
    }

    /// Live single-request uploads of one shard whose form or URL expired
    /// before `before_ms`, optionally only keys under `prefix`. Their
    /// `initiated_at` is earlier still, which bounds the query.
    pub async fn expired_page(
        &self,
        shard: u32,
        before_ms: i64,
        prefix: Option<&str>,
        start: Option<Item>,
        page_size: i32,
    ) -> Result<Page> {
        let mut filter = String::from("url_expires_at < :before");
        let mut q = self
            .live_query(shard, before_ms, None, start)
            .expression_attribute_values(":before", n(before_ms));
        if let Some(p) = prefix {
            filter.push_str(" AND begins_with(#key, :prefix)");
            q = q
                .expression_attribute_names("#key", "key")
                .expression_attribute_values(":prefix", s(p));
        }
        let out = q
            .filter_expression(filter)
            .limit(page_size)
            .send()
            .await
            .map_err(|e| from_sdk("Query", e))?;
        page_of(out)
    }
}

/// A query's answer as a page of uploads, and where the next starts.
fn page_of(out: aws_sdk_dynamodb::operation::query::QueryOutput) -> Result<Page> {
    let uploads = out
        .items()
        .iter()
        .map(Upload::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        uploads,
        next: out.last_evaluated_key.filter(|k| !k.is_empty()),
    })
}

fn tracked_already() -> Error {
    Error::Conflict("upload is tracked already".into())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

impl From<&Upload> for Item {
    fn from(u: &Upload) -> Item {
        let mut item: Item = [
            ("upload_id", s(&u.upload_id)),
            ("key", s(&u.key)),
            ("owner", s(&u.owner)),
            ("status", s(u.status.as_str())),
            ("initiated_at", n(u.initiated_at)),
            ("updated_at", n(u.updated_at)),
            ("filename", s(&u.filename)),
            ("content_type", s(&u.content_type)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if let Some(size) = u.size {
            item.insert("size".into(), n(size));
        }
        if let Some(p) = u.plan {
            item.insert("part_size".into(), n(p.part_size));
            item.insert("part_count".into(), n(p.part_count));
        }
        if let Some(c) = &u.completion {
            item.insert("etag".into(), s(&c.etag));
            item.insert("completed_size".into(), n(c.size));
            item.insert("location".into(), s(&c.location));
            if let Some(ck) = &c.checksum {
                item.insert("checksum_value".into(), s(&ck.value));
                item.insert("checksum_type".into(), s(&ck.checksum_type));
            }
        }
        if let Some(a) = u.checksum {
            item.insert("checksum_algorithm".into(), s(a.as_str()));
        }
        if let Some(e) = u.expires_at {
            item.insert("expires_at".into(), n(e));
        }
        item.insert("kind".into(), s(u.kind.as_str()));
        if let Some(e) = u.url_expires_at {
            item.insert("url_expires_at".into(), n(e));
        }
        item
    }
}

impl TryFrom<&Item> for Upload {
    type Error = Error;

    fn try_from(item: &Item) -> Result<Upload> {
        let bad = |name: &str| {
            Error::internal(format!("tracking item has a missing or malformed {name}"))
        };
        let get_s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        let req_s = |name: &str| get_s(name).ok_or_else(|| bad(name));
        let get_n = |name: &str| -> Result<Option<i64>> {
            item.get(name)
                .map(|v| {
                    v.as_n()
                        .ok()
                        .and_then(|x| x.parse::<i64>().ok())
                        .ok_or_else(|| bad(name))
                })
                .transpose()
        };
        let get_u =
            |name: &str| -> Result<Option<u64>> { Ok(get_n(name)?.map(|v| v.max(0) as u64)) };
        let status = req_s("status")?;
        let plan = match (get_u("part_size")?, get_u("part_count")?) {
            (Some(part_size), Some(count)) => Some(PartPlan {
                part_size,
                part_count: count as u32,
            }),
            _ => None,
        };
        let algorithm = |name: &str| -> Result<Option<ChecksumAlgorithm>> {
            get_s(name)
                .map(|a| ChecksumAlgorithm::parse(&a).ok_or_else(|| bad(name)))
                .transpose()
        };
        let object_checksum = match (
            algorithm("checksum_algorithm")?,
            get_s("checksum_type"),
            get_s("checksum_value"),
        ) {
            (Some(algorithm), Some(checksum_type), Some(value)) => Some(ObjectChecksum {
                algorithm,
                checksum_type,
                value,
            }),
            _ => None,
        };
        let completion = match (get_s("etag"), get_u("completed_size")?, get_s("location")) {
            (Some(etag), Some(size), Some(location)) => Some(Completion {
                etag,
                size,
                location,
                checksum: object_checksum,
            }),
            _ => None,
        };
        Ok(Upload {
            upload_id: req_s("upload_id")?,
            key: req_s("key")?,
            owner: req_s("owner")?,
            status: Status::parse(&status).ok_or_else(|| bad("status"))?,
            initiated_at: get_n("initiated_at")?.ok_or_else(|| bad("initiated_at"))?,
            updated_at: get_n("updated_at")?.unwrap_or(0),
            filename: get_s("filename").unwrap_or_default(),
            content_type: get_s("content_type").unwrap_or_default(),
            size: get_u("size")?,
            plan,
            completion,
            expires_at: get_n("expires_at")?,
            checksum: algorithm("checksum_algorithm")?,
            kind: match get_s("kind") {
                None => UploadKind::Multipart,
                Some(k) => UploadKind::parse(&k).ok_or_else(|| bad("kind"))?,
            },
            url_expires_at: get_n("url_expires_at")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Upload {
        Upload {
            upload_id: "u1".into(),
            key: "uploads/alice/id/a.bin".into(),
            owner: "alice".into(),
            status: Status::Completed,
            initiated_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_500,
            filename: "a.bin".into(),
            content_type: "application/octet-stream".into(),
            size: Some(42),
            plan: Some(PartPlan {
                part_size: 5 << 20,
                part_count: 1,
            }),
            completion: Some(Completion {
                etag: "\"e-1\"".into(),
                size: 42,
                location: "http://x/a.bin".into(),
                checksum: Some(ObjectChecksum {
                    algorithm: ChecksumAlgorithm::Crc32c,
                    checksum_type: "COMPOSITE".into(),
                    value: "AAAAAA==-1".into(),
                }),
            }),
            expires_at: Some(1_800_000_000),
            checksum: Some(ChecksumAlgorithm::Crc32c),
            kind: UploadKind::Multipart,
            url_expires_at: None,
        }
    }

    #[test]
    fn items_round_trip() {
        let u = sample();
        assert_eq!(Upload::try_from(&Item::from(&u)).unwrap(), u);
    }

    #[test]
    fn items_without_checksums_round_trip() {
        let mut u = sample();
        u.checksum = None;
        if let Some(c) = u.completion.as_mut() {
            c.checksum = None;
        }
        assert_eq!(Upload::try_from(&Item::from(&u)).unwrap(), u);
    }

    #[test]
    fn single_request_items_round_trip_and_old_items_are_multipart() {
        let mut u = sample();
        u.kind = UploadKind::Post;
        u.upload_id = "post:0193".into();
        u.url_expires_at = Some(1_700_000_360_000);
        assert_eq!(Upload::try_from(&Item::from(&u)).unwrap(), u);
        let mut old = Item::from(&sample());
        old.remove("kind");
        assert_eq!(Upload::try_from(&old).unwrap().kind, UploadKind::Multipart);
        old.insert("kind".into(), s("carrier-pigeon"));
        assert!(Upload::try_from(&old).is_err());
    }

    #[test]
    fn malformed_items_are_errors_not_panics() {
        let mut item = Item::from(&sample());
        item.insert("status".into(), s("WHATEVER"));
        assert!(Upload::try_from(&item).is_err());
        let mut item = Item::from(&sample());
        item.insert("initiated_at".into(), s("yesterday"));
        assert!(Upload::try_from(&item).is_err());
    }

    #[test]
    fn shards_spread_and_stay_in_range() {
        let conf = aws_sdk_dynamodb::Config::builder()
            .behavior_version_latest()
            .build();
        let store = Store::new(Client::from_conf(conf), "t", 16, Duration::from_secs(1));
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let sh: u32 = store.shard_of(&format!("upload-{i}")).parse().unwrap();
            assert!(sh < 16);
            seen.insert(sh);
        }
        assert_eq!(seen.len(), 16);
    }
}
