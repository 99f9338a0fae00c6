//! Upload events: the tracking table is the outbox. `notify` reads its stream
//! and publishes one EventBridge event per state change that matters
//! (`Upload Started`, `Upload Completed`, `Upload Aborted`), derived from the
//! committed item images only, so an event can neither be lost to a crash
//! after the write nor invented for a write that did not happen.
//!
//! Delivery is at least once and in order per upload: an upload's later event
//! is put only after its earlier one was accepted; a record that still fails
//! after the retries is reported as a batch item failure (with every later
//! record of its upload), so Lambda retries from it and, at last, sends it to
//! the on-failure destination.

mod change;
mod detail;
mod publish;

pub use change::{Notice, notice};
pub use detail::{Aborted, Completed, DetailType, Started, UploadFacts};
pub use publish::{MAX_ENTRIES, Publisher};

use crate::Config;
use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use std::collections::HashSet;

/// PutEvents calls in flight at once.
const CALLS_IN_FLIGHT: usize = 4;

/// What the handler needs, built once per Lambda instance.
#[derive(Clone, Debug)]
pub struct Notifier {
    pub publisher: Publisher,
    /// The bucket the uploads land in, named in every event.
    pub bucket: String,
}

impl Notifier {
    /// From the settings (`PARTWISE_EVENT_BUS`, `PARTWISE_EVENT_SOURCE`,
    /// `PARTWISE_BUCKET`) and the SDK's (`AWS_ENDPOINT_URL_EVENTBRIDGE`, ...).
    pub fn new(config: &Config, sdk: &aws_config::SdkConfig) -> Self {
        Notifier {
            publisher: Publisher {
                client: aws_sdk_eventbridge::Client::new(sdk),
                bus: config.event_bus.clone(),
                source: config.event_source.clone(),
                attempts: 3,
            },
            bucket: config.bucket.clone(),
        }
    }

    pub async fn from_env() -> crate::Result<Self> {
        let config = Config::from_env()?;
        let sdk = crate::sdk::load(&crate::sdk::Tuning::lambda()).await;
        Ok(Self::new(&config, &sdk))
    }
}

/// One stream batch: publishes its events and answers which records failed
/// (by sequence number), so Lambda retries from the first of them.
pub async fn handle(n: &Notifier, event: Event) -> DynamoDbEventResponse {
    let records = &event.records;
    let mut failed = vec![false; records.len()];
    // Each record's event, if any; a record that cannot be read fails.
    let mut notices: Vec<Option<Notice>> = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        match notice(r, &n.bucket) {
            Ok(x) => notices.push(x),
            Err(e) => {
                tracing::error!(event_id = %r.event_id, error = %e, "unreadable stream record");
                failed[i] = true;
                notices.push(None);
            }
        }
    }
    let uploads: Vec<String> = records.iter().map(upload_of).collect();
    // Waves: the k-th event of every upload goes out in wave k, so an upload's
    // events are put in order, and none after one that failed.
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut done = vec![false; records.len()];
    loop {
        let mut in_wave: HashSet<&str> = HashSet::new();
        let mut wave = vec![];
        for i in 0..records.len() {
            let up = uploads[i].as_str();
            // An earlier record of this upload is still out in this wave: wait.
            if done[i] || in_wave.contains(up) {
                continue;
            }
            // Every earlier record of this upload is settled by now.
            if failed[i] || blocked.contains(up) {
                failed[i] = true;
                done[i] = true;
                blocked.insert(up);
            } else if notices[i].is_some() {
                in_wave.insert(up);
                wave.push(i);
            } else {
                done[i] = true;
            }
        }
        // Nothing out: every record was settled in this pass. Otherwise each
        // pass settles at least its wave, so the loop ends.
        if wave.is_empty() {
            break;
        }
        let mut results = Vec::with_capacity(wave.len());
        for group in wave.chunks(MAX_ENTRIES * CALLS_IN_FLIGHT) {
            let calls: Vec<_> = group
                .chunks(MAX_ENTRIES)
                .map(|chunk| put_chunk(n, &notices, chunk))
                .collect();
            results.extend(futures::future::join_all(calls).await.into_iter().flatten());
        }
        for (i, ok) in results {
            done[i] = true;
            if !ok {
                failed[i] = true;
                blocked.insert(uploads[i].as_str());
            }
        }
    }
    let batch_item_failures: Vec<DynamoDbBatchItemFailure> = records
        .iter()
        .zip(&failed)
        .filter(|(_, f)| **f)
        .map(|(r, _)| {
            let mut f = DynamoDbBatchItemFailure::default();
            f.item_identifier = r.change.sequence_number.clone();
            f
        })
        .collect();
    tracing::info!(
        records = records.len(),
        events = notices.iter().flatten().count(),
        failed = batch_item_failures.len(),
        "stream batch"
    );
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = batch_item_failures;
    response
}

/// Puts the events of records `chunk` (at most ten); each record with whether it went out.
async fn put_chunk(
    n: &Notifier,
    notices: &[Option<Notice>],
    chunk: &[usize],
) -> Vec<(usize, bool)> {
    let batch: Vec<&Notice> = chunk.iter().filter_map(|&i| notices[i].as_ref()).collect();
    let ok = n.publisher.put(&batch).await;
    chunk.iter().copied().zip(ok).collect()
}

/// The record's upload id, from its key (present on every record, whatever its images).
fn upload_of(r: &aws_lambda_events::dynamodb::EventRecord) -> String {
    match r.change.keys.get("upload_id") {
        Some(serde_dynamo::AttributeValue::S(s)) => s.clone(),
        _ => r.event_id.clone(),
    }
}
