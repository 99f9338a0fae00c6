//! The tracking table's stream on DynamoDB Local, read as Lambda's event
//! source mapping reads it (DescribeStream, GetShardIterator, GetRecords) and
//! shaped into the DynamoDB event Lambda hands `notify`; and [`watch`], which
//! runs `notify` on it against a loopback [`Receiver`] and logs each event.

use crate::stack::Stack;
use crate::stand_ins::eventbridge::Receiver;
use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;
use tokio::task::JoinHandle;

/// What went wrong reading the stream.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StreamError(String);

fn err(op: &str, e: impl std::fmt::Display) -> StreamError {
    StreamError(format!("{op}: {e}"))
}

/// A reader of one table's stream, keeping an iterator per shard.
pub struct StreamReader {
    client: Client,
    arn: String,
    region: String,
    start: ShardIteratorType,
    /// Next iterator of every shard seen; `None` once a closed shard is drained.
    shards: BTreeMap<String, Option<String>>,
}

impl StreamReader {
    /// The stream of `table` on `stack`, from its oldest record (`TRIM_HORIZON`, as the
    /// template's mapping starts) or only what comes after now (`LATEST`).
    pub async fn open(stack: &Stack, table: &str, from_start: bool) -> Result<Self, StreamError> {
        let desc = stack
            .dynamodb()
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| {
                err(
                    "DescribeTable",
                    aws_sdk_dynamodb::error::DisplayErrorContext(e),
                )
            })?;
        let arn = desc
            .table()
            .and_then(|t| t.latest_stream_arn())
            .ok_or_else(|| StreamError(format!("table {table} has no stream")))?
            .to_string();
        let sdk = stack.sdk_config();
        let endpoint = stack
            .var(crate::stack::vars::DYNAMODB_ENDPOINT)
            .ok_or_else(|| StreamError("the stack has no DynamoDB endpoint".into()))?;
        let client = Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(&sdk)
                .endpoint_url(endpoint)
                .build(),
        );
        let mut reader = StreamReader {
            client,
            arn,
            region: crate::stack::REGION.into(),
            start: if from_start {
                ShardIteratorType::TrimHorizon
            } else {
                ShardIteratorType::Latest
            },
            shards: BTreeMap::new(),
        };
        reader.discover().await?;
        Ok(reader)
    }

    /// Finds shards not seen yet and positions an iterator on each.
    async fn discover(&mut self) -> Result<(), StreamError> {
        let mut start: Option<String> = None;
        for _ in 0..100 {
            let out = self
                .client
                .describe_stream()
                .stream_arn(&self.arn)
                .set_exclusive_start_shard_id(start.take())
                .send()
                .await
                .map_err(|e| {
                    err(
                        "DescribeStream",
                        aws_sdk_dynamodbstreams::error::DisplayErrorContext(e),
                    )
                })?;
            let Some(desc) = out.stream_description else {
                break;
            };
            for shard in desc.shards() {
                let Some(id) = shard.shard_id() else { continue };
                if self.shards.contains_key(id) {
                    continue;
                }
                let it = self
                    .client
                    .get_shard_iterator()
                    .stream_arn(&self.arn)
                    .shard_id(id)
                    .shard_iterator_type(self.start.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        err(
                            "GetShardIterator",
                            aws_sdk_dynamodbstreams::error::DisplayErrorContext(e),
                        )
                    })?;
                self.shards.insert(id.to_string(), it.shard_iterator);
            }
            start = desc.last_evaluated_shard_id;
            if start.is_none() {
                break;
            }
        }
        // Shards found later are new: they hold only records after this point.
        self.start = ShardIteratorType::TrimHorizon;
        Ok(())
    }

    /// One GetRecords round over every open shard: the records since the last round, in order per shard.
    pub async fn poll(&mut self) -> Result<Vec<EventRecord>, StreamError> {
        self.discover().await?;
        let mut records = vec![];
        for (shard, iterator) in self.shards.iter_mut() {
            let Some(it) = iterator.take() else { continue };
            let out = match self
                .client
                .get_records()
                .shard_iterator(it)
                .limit(1000)
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    // DynamoDB Local sometimes refuses a fresh LATEST iterator
                    // (TrimmedDataAccessException): forget the shard, so the
                    // next round finds it again and reads it from its start.
                    let shard = shard.clone();
                    self.shards.remove(&shard);
                    return Err(err(
                        "GetRecords",
                        aws_sdk_dynamodbstreams::error::DisplayErrorContext(e),
                    ));
                }
            };
            for r in out.records() {
                records.push(lambda_record(r, &self.arn, &self.region)?);
            }
            *iterator = out.next_shard_iterator;
        }
        Ok(records)
    }

    /// Polls until `done` says the records so far are enough, at most `rounds`
    /// rounds `pause` apart (DynamoDB Local publishes a write's record at once,
    /// but a shard rollover can take a round).
    pub async fn read_until(
        &mut self,
        rounds: u32,
        pause: Duration,
        done: impl Fn(&[EventRecord]) -> bool,
    ) -> Result<Vec<EventRecord>, StreamError> {
        let mut records = vec![];
        for round in 0..rounds {
            match self.poll().await {
                Ok(more) => records.extend(more),
                // A refused iterator is found again next round (see `poll`).
                Err(e) if round + 1 < rounds => {
                    tracing::debug!(error = %e, "stream poll failed; retrying");
                }
                Err(e) => return Err(e),
            }
            if done(&records) {
                break;
            }
            if round + 1 < rounds {
                tokio::time::sleep(pause).await;
            }
        }
        Ok(records)
    }
}

/// Records as Lambda's event for `notify`.
pub fn lambda_event(records: Vec<EventRecord>) -> Event {
    let mut event = Event::default();
    event.records = records;
    event
}

/// One SDK stream record as Lambda's DynamoDB event record, through the JSON
/// Lambda sends, so the shape is exactly the one the handler parses on AWS.
fn lambda_record(
    r: &aws_sdk_dynamodbstreams::types::Record,
    arn: &str,
    region: &str,
) -> Result<EventRecord, StreamError> {
    let image = |m: Option<&HashMap<String, AttributeValue>>| -> Value {
        m.map(|m| {
            let item: serde_dynamo::Item = m.clone().into();
            serde_json::to_value(item).unwrap_or_default()
        })
        .unwrap_or(Value::Null)
    };
    let d = r
        .dynamodb()
        .ok_or_else(|| StreamError("a stream record without its change".into()))?;
    let mut change = json!({
        "ApproximateCreationDateTime": d.approximate_creation_date_time().map(|t| t.secs() as f64),
        "Keys": image(d.keys.as_ref()),
        "SequenceNumber": d.sequence_number(),
        "SizeBytes": d.size_bytes().unwrap_or(0),
        "StreamViewType": d.stream_view_type().map(|v| v.as_str()),
    });
    for (name, value) in [
        ("NewImage", image(d.new_image.as_ref())),
        ("OldImage", image(d.old_image.as_ref())),
    ] {
        if !value.is_null() {
            change[name] = value;
        }
    }
    let mut record = json!({
        "eventID": r.event_id(),
        "eventName": r.event_name().map(|n| n.as_str()),
        "eventVersion": r.event_version().unwrap_or("1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": r.aws_region().unwrap_or(region),
        "eventSourceARN": arn,
        "dynamodb": change,
    });
    if let Some(who) = r.user_identity() {
        record["userIdentity"] = json!({
            "type": who.r#type(),
            "principalId": who.principal_id(),
        });
    }
    serde_json::from_value(record).map_err(|e| err("stream record", e))
}

/// Logs, as one JSON line each on stderr, every event the local stack would
/// publish: polls the table's stream (from now on) twice a second, runs the
/// `notify` handler on what it finds against a loopback PutEvents receiver,
/// and prints what the receiver accepted. For `partwise-local serve`.
pub async fn watch(stack: &Stack, ctx: &partwise::Context) -> Result<JoinHandle<()>, StreamError> {
    watch_with(stack, ctx, |line| eprintln!("{line}")).await
}

/// [`watch`], handing each line (`{"event": ...}`, `{"unpublished_record": ...}`
/// or `{"stream_error": ...}`) to `sink`.
pub async fn watch_with(
    stack: &Stack,
    ctx: &partwise::Context,
    sink: impl Fn(Value) + Send + 'static,
) -> Result<JoinHandle<()>, StreamError> {
    let receiver = Receiver::for_stack()
        .await
        .map_err(|e| err("PutEvents receiver", e))?;
    let mut notifier = partwise::notify::Notifier::new(&ctx.config, &stack.sdk_config());
    notifier.publisher.client = receiver.client(&stack.sdk_config());
    let mut reader = StreamReader::open(stack, &ctx.config.table, false).await?;
    let mut feed = receiver.subscribe();
    Ok(tokio::spawn(async move {
        let _receiver = receiver;
        loop {
            match reader.poll().await {
                Ok(records) if !records.is_empty() => {
                    let answer = partwise::notify::handle(&notifier, lambda_event(records)).await;
                    while let Ok(event) = feed.try_recv() {
                        sink(json!({"event": event.to_json()}));
                    }
                    for f in answer.batch_item_failures {
                        sink(json!({"unpublished_record": f.item_identifier}));
                    }
                }
                Ok(_) => {}
                Err(e) => sink(json!({"stream_error": e.to_string()})),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }))
}
