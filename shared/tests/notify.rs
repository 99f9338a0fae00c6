//! Upload events, end to end: real changes through the API, the store and the
//! sweep on the local stack; the table's real stream read from DynamoDB Local
//! and fed to the `notify` handler; its PutEvents calls sent over the wire,
//! SigV4-signed, to a loopback receiver that checks each signature, records
//! what it accepts and refuses chosen entries on purpose. Every event is
//! checked against its JSON schema in `schemas/`.

mod common;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use common::*;
use partwise::Context;
use partwise::model::{Actor, Completion, Status};
use partwise::notify::{self, DetailType, Notifier};
use partwise::storage::{Completed as S3Completed, Part};
use partwise::store::Stamp;
use partwise_local::Stack;
use partwise_local::eventbridge::{Fault, Received, Receiver};
use partwise_local::events::{StreamReader, lambda_event};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path)
}

/// Every detail type's schema, compiled.
fn validator(dt: DetailType) -> jsonschema::Validator {
    let path = repo("schemas").join(dt.schema_file());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Checks an accepted entry against its detail type's schema and the envelope we set.
fn assert_valid(e: &Received, source: &str) {
    let dt = DetailType::parse(&e.detail_type)
        .unwrap_or_else(|| panic!("unknown detail type {}", e.detail_type));
    let errors: Vec<String> = validator(dt)
        .iter_errors(&e.detail)
        .map(|err| format!("{} at {}", err, err.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{}: {errors:?}\n{}",
        e.detail_type,
        e.detail
    );
    assert_eq!(e.source, source);
    assert_eq!(e.bus, "default");
    assert!(e.time.is_some(), "every entry carries the change's time");
}

async fn stack() -> Stack {
    Stack::from_env_or_start()
        .await
        .unwrap_or_else(|e| panic!("local stack: {e}"))
}

/// The harness of one test: a context on the stack, the stream from now on,
/// a receiver, and a notifier publishing to it.
struct Harness {
    stack: Stack,
    ctx: Context,
    reader: StreamReader,
    receiver: Receiver,
    notifier: Notifier,
}

impl Harness {
    async fn new(overrides: &[(&str, &str)]) -> Self {
        let stack = stack().await;
        let ctx = stack.context_with(overrides).unwrap();
        let reader = StreamReader::open(&stack, &ctx.config.table, false)
            .await
            .unwrap();
        let receiver = Receiver::for_stack().await.unwrap();
        let mut notifier = Notifier::new(&ctx.config, &stack.sdk_config());
        notifier.publisher.client = receiver.client(&stack.sdk_config());
        Harness {
            stack,
            ctx,
            reader,
            receiver,
            notifier,
        }
    }

    /// The stream's records of these uploads (other tests share the table),
    /// read until `want` of them have arrived (bounded: 40 rounds).
    async fn records(&mut self, ids: &[&str], want: usize) -> Vec<EventRecord> {
        let ids: HashSet<String> = ids.iter().map(|s| s.to_string()).collect();
        let mine = |r: &EventRecord| ids.contains(&upload_of(r));
        let records = self
            .reader
            .read_until(40, Duration::from_millis(100), |rs| {
                rs.iter().filter(|r| mine(r)).count() >= want
            })
            .await
            .unwrap();
        let records: Vec<EventRecord> = records.into_iter().filter(|r| mine(r)).collect();
        assert_eq!(records.len(), want, "stream records of {ids:?}");
        records
    }

    async fn notify(&self, records: Vec<EventRecord>) -> Vec<String> {
        notify::handle(&self.notifier, lambda_event(records))
            .await
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier.unwrap_or_default())
            .collect()
    }

    /// Accepted events of one upload, in order, each checked against its schema.
    fn events_of(&self, upload_id: &str) -> Vec<Received> {
        let events: Vec<Received> = self
            .receiver
            .accepted()
            .into_iter()
            .filter(|e| e.detail["uploadId"] == upload_id)
            .collect();
        for e in &events {
            assert_valid(e, "partwise");
        }
        events
    }
}

fn upload_of(r: &EventRecord) -> String {
    match r.change.keys.get("upload_id") {
        Some(serde_dynamo::AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    }
}

fn types(events: &[Received]) -> Vec<&str> {
    events.iter().map(|e| e.detail_type.as_str()).collect()
}

fn status_of(r: &EventRecord) -> Option<String> {
    match r.change.new_image.get("status") {
        Some(serde_dynamo::AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Starts an upload through the API and puts one part; returns it and the part's ETag.
async fn started_with_part(ctx: &Context, who: &str, name: &str, len: usize) -> (Started, String) {
    let up = create(
        ctx,
        who,
        json!({"filename": name, "type": "video/mp4", "size": len}),
    )
    .await;
    let etag = upload_part(ctx, who, &up, 1, bytes(len, 3)).await;
    (up, etag)
}

async fn complete_call(ctx: &Context, who: &str, up: &Started, etag: &str) -> (u16, Value) {
    Call::new(COMPLETE)
        .owner(who)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}))
        .send(ctx)
        .await
}

async fn abort_call(ctx: &Context, who: &str, up: &Started) -> (u16, Value) {
    Call::new(ABORT)
        .owner(who)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .send(ctx)
        .await
}

// ---------------------------------------------------------------------------
// No stack needed.
// ---------------------------------------------------------------------------

#[test]
fn every_detail_type_has_a_valid_schema_and_no_schema_is_orphaned() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(repo("schemas"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = DetailType::ALL
        .iter()
        .map(|d| d.schema_file().to_string())
        .collect();
    assert_eq!(on_disk, known);
    for dt in DetailType::ALL {
        let v = validator(dt);
        // A schema that accepts anything would make every check here vacuous.
        assert!(!v.is_valid(&json!({})), "{}", dt.as_str());
        assert!(!v.is_valid(&json!("text")), "{}", dt.as_str());
    }
}

#[test]
fn the_sample_parses_as_lambda_hands_it_over() {
    let raw: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("events/notify.json")).unwrap())
            .unwrap();
    let event: Event = serde_json::from_value(raw).unwrap();
    assert_eq!(event.records.len(), 5);
    for r in &event.records {
        assert_eq!(r.event_source.as_deref(), Some("aws:dynamodb"));
        assert!(r.change.sequence_number.is_some());
        assert_eq!(
            r.change.stream_view_type,
            Some(aws_lambda_events::dynamodb::StreamViewType::NewAndOldImages)
        );
    }
}

// ---------------------------------------------------------------------------
// Over the wire.
// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_sample_stream_event_publishes_its_three_events() {
    let stack = stack().await;
    let ctx = stack.context().unwrap();
    let receiver = Receiver::for_stack().await.unwrap();
    let mut notifier = Notifier::new(&ctx.config, &stack.sdk_config());
    notifier.publisher.client = receiver.client(&stack.sdk_config());
    let event: Event =
        serde_json::from_str(&std::fs::read_to_string(repo("events/notify.json")).unwrap())
            .unwrap();
    let answer = notify::handle(&notifier, event).await;
    assert!(answer.batch_item_failures.is_empty());
    let mut events = receiver.accepted();
    for e in &events {
        assert_valid(e, "partwise");
    }
    // In order per upload; uploads interleave (each upload's first event goes out first).
    let completed_upload: Vec<_> = events
        .iter()
        .filter(|e| e.detail["uploadId"] == "sample-upload-completed")
        .collect();
    assert_eq!(
        completed_upload
            .iter()
            .map(|e| e.detail_type.as_str())
            .collect::<Vec<_>>(),
        ["Upload Started", "Upload Completed"]
    );
    events.sort_by_key(|e| match DetailType::parse(&e.detail_type) {
        Some(DetailType::Started) => 0,
        Some(DetailType::Completed) => 1,
        _ => 2,
    });
    assert_eq!(
        types(&events),
        ["Upload Started", "Upload Completed", "Upload Aborted"],
        "one event each; none for the claim or the TTL deletion"
    );
    let completed = &events[1].detail;
    assert_eq!(completed["eventId"], "sample-upload-completed:COMPLETED");
    assert_eq!(completed["bucket"], json!(ctx.config.bucket));
    assert_eq!(completed["size"], 20971520);
    assert_eq!(completed["etag"], "\"3858f62230ac3c915f300c664312c11f-2\"");
    assert_eq!(
        completed["checksum"],
        json!({"algorithm": "CRC32C", "type": "COMPOSITE", "value": "c2FtcA==-2"})
    );
    assert_eq!(completed["completedAt"], "2026-11-30T00:01:01.250Z");
    assert_eq!(completed["source"], "api");
    assert_eq!(events[1].time, Some(1795996861.25));
    let aborted = &events[2].detail;
    assert_eq!(
        (&aborted["source"], &aborted["reason"]),
        (&json!("sweep"), &json!("stale"))
    );
    assert_eq!(events[0].detail["checksumAlgorithm"], "CRC32C");
    assert_eq!(events[0].detail["partCount"], 2);
}

#[tokio::test]
async fn a_complete_an_abort_and_a_sweep_each_publish_exactly_their_events() {
    let prefix = format!("notify-{}/", uuid::Uuid::new_v4().simple());
    let mut h = Harness::new(&[
        ("PARTWISE_KEY_PREFIX", prefix.as_str()),
        ("PARTWISE_SWEEP_MAX_AGE_SECS", "1"),
    ])
    .await;
    let who = owner("notify");

    // Completed through the API.
    let (done, etag) = started_with_part(&h.ctx, &who, "clip.mp4", 2048).await;
    let (status, body) = complete_call(&h.ctx, &who, &done, &etag).await;
    assert_eq!(status, 200, "{body}");
    // Aborted by its owner.
    let (dropped, _) = started_with_part(&h.ctx, &who, "dropped.mp4", 1024).await;
    let (status, body) = abort_call(&h.ctx, &who, &dropped).await;
    assert_eq!(status, 200, "{body}");
    // Left behind, aborted by the sweep.
    let (stale, _) = started_with_part(&h.ctx, &who, "stale.mp4", 1024).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let summary = partwise::sweep::handle(&h.ctx, json!({"max_age_secs": 1}), None)
        .await
        .unwrap();
    assert_eq!(summary.aborted, 1, "{summary:?}");

    // INSERT, claim, COMPLETED / INSERT, claim, ABORTED (twice).
    let ids = [&*done.upload_id, &*dropped.upload_id, &*stale.upload_id];
    let records = h.records(&ids, 9).await;
    let failures = h.notify(records).await;
    assert!(failures.is_empty(), "{failures:?}");

    let head = h
        .ctx
        .storage
        .head(&done.key)
        .await
        .unwrap()
        .expect("the object");
    let e = h.events_of(&done.upload_id);
    assert_eq!(types(&e), ["Upload Started", "Upload Completed"]);
    let d = &e[1].detail;
    assert_eq!(d["eventId"], format!("{}:COMPLETED", done.upload_id));
    assert_eq!(
        (&d["key"], &d["owner"], &d["bucket"]),
        (&json!(done.key), &json!(who), &json!(h.ctx.config.bucket))
    );
    assert_eq!(
        (d["size"].as_u64(), d["etag"].as_str()),
        (Some(2048), Some(head.0.as_str()))
    );
    assert_eq!(head.1, 2048);
    assert_eq!(
        (&d["filename"], &d["contentType"], &d["source"]),
        (&json!("clip.mp4"), &json!("video/mp4"), &json!("api"))
    );
    assert_eq!(e[0].detail["declaredSize"], 2048);
    assert_eq!(
        e[0].detail["eventId"],
        format!("{}:STARTED", done.upload_id)
    );

    let e = h.events_of(&dropped.upload_id);
    assert_eq!(types(&e), ["Upload Started", "Upload Aborted"]);
    assert_eq!(
        (&e[1].detail["source"], &e[1].detail["reason"]),
        (&json!("api"), &json!("owner"))
    );
    let e = h.events_of(&stale.upload_id);
    assert_eq!(types(&e), ["Upload Started", "Upload Aborted"]);
    assert_eq!(
        (&e[1].detail["source"], &e[1].detail["reason"]),
        (&json!("sweep"), &json!("stale"))
    );
    assert_eq!(h.receiver.accepted().len(), 6, "nothing else was published");
    drop(h.stack);
}

#[tokio::test]
async fn no_event_for_a_change_that_did_not_happen() {
    let mut h = Harness::new(&[]).await;
    let who = owner("notify-none");

    // A refused complete (a wrong ETag) is refused before any write.
    let (refused, etag) = started_with_part(&h.ctx, &who, "refused.mp4", 1024).await;
    let (status, body) = complete_call(
        &h.ctx,
        &who,
        &refused,
        "\"0123456789abcdef0123456789abcdef\"",
    )
    .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    // One S3 refuses after the claim is handed back: COMPLETING, then ACTIVE again.
    let store = &h.ctx.store;
    store
        .transition(&refused.upload_id, Status::Active, Status::Completing, None)
        .await
        .unwrap();
    store
        .transition(&refused.upload_id, Status::Completing, Status::Active, None)
        .await
        .unwrap();
    // Two completes racing: one wins, one event.
    let (a, b) = tokio::join!(
        complete_call(&h.ctx, &who, &refused, &etag),
        complete_call(&h.ctx, &who, &refused, &etag)
    );
    assert!(a.0 == 200 || b.0 == 200, "{a:?} {b:?}");
    // An abort of the completed upload is refused, and a second abort of an aborted one does nothing.
    let (status, _) = abort_call(&h.ctx, &who, &refused).await;
    assert_eq!(status, 409);
    let (gone, _) = started_with_part(&h.ctx, &who, "gone.mp4", 1024).await;
    assert_eq!(abort_call(&h.ctx, &who, &gone).await.0, 200);
    assert_eq!(abort_call(&h.ctx, &who, &gone).await.0, 200);

    // refused: INSERT, ACTIVE→COMPLETING, →ACTIVE, →COMPLETING, →COMPLETED
    // (the losing complete wrote nothing); gone: INSERT, claim, ABORTED.
    let records = h.records(&[&refused.upload_id, &gone.upload_id], 8).await;
    let statuses: Vec<_> = records
        .iter()
        .filter(|r| upload_of(r) == refused.upload_id)
        .map(|r| status_of(r).unwrap_or_default())
        .collect();
    assert_eq!(
        statuses,
        ["ACTIVE", "COMPLETING", "ACTIVE", "COMPLETING", "COMPLETED"]
    );
    assert!(h.notify(records).await.is_empty());
    assert_eq!(
        types(&h.events_of(&refused.upload_id)),
        ["Upload Started", "Upload Completed"]
    );
    assert_eq!(
        types(&h.events_of(&gone.upload_id)),
        ["Upload Started", "Upload Aborted"]
    );
    assert_eq!(h.receiver.accepted().len(), 4);
}

#[tokio::test]
async fn failed_entries_are_retried_and_those_that_still_fail_are_reported() {
    let mut h = Harness::new(&[]).await;
    let who = owner("notify-fail");
    // Twelve uploads: more than one PutEvents call.
    let mut ups = vec![];
    for i in 0..12 {
        ups.push(
            create(
                &h.ctx,
                &who,
                json!({"filename": format!("f{i}.mp4"), "type": "video/mp4", "size": 10}),
            )
            .await,
        );
    }
    // The doomed upload also gets aborted: its later event must wait for the first.
    let (flaky, doomed) = (ups[3].upload_id.clone(), ups[7].upload_id.clone());
    assert_eq!(abort_call(&h.ctx, &who, &ups[7]).await.0, 200);
    let fault: Arc<Fault> = {
        let (flaky, doomed) = (flaky.clone(), doomed.clone());
        Arc::new(move |entry: &Value, attempt: u32| {
            let detail: Value =
                serde_json::from_str(entry["Detail"].as_str().unwrap_or("{}")).unwrap_or_default();
            let id = detail["uploadId"].as_str().unwrap_or_default();
            if id == doomed {
                Some("InternalFailure".into())
            } else if id == flaky && attempt == 1 {
                Some("ThrottlingException".into())
            } else {
                None
            }
        })
    };
    h.receiver.set_fault(Some(fault));
    let ids: Vec<&str> = ups.iter().map(|u| u.upload_id.as_str()).collect();
    let records = h.records(&ids, 14).await;
    let doomed_records: Vec<String> = records
        .iter()
        .filter(|r| upload_of(r) == doomed)
        .filter_map(|r| r.change.sequence_number.clone())
        .collect();
    assert_eq!(doomed_records.len(), 3);
    let failures = h.notify(records.clone()).await;
    // Every record of the doomed upload is reported (its first event failed; the
    // later ones wait), and nothing else.
    assert_eq!(failures, doomed_records);
    assert!(h.events_of(&doomed).is_empty());
    assert_eq!(
        types(&h.events_of(&flaky)),
        ["Upload Started"],
        "retried once, published once"
    );
    assert!(h.receiver.refused_entries() >= 2);
    assert_eq!(h.receiver.accepted().len(), 11);

    // Lambda retries from the first failed record; now EventBridge takes them, in order.
    h.receiver.set_fault(None);
    let first = records
        .iter()
        .position(|r| Some(&failures[0]) == r.change.sequence_number.as_ref())
        .unwrap();
    let failures = h.notify(records[first..].to_vec()).await;
    assert!(failures.is_empty());
    assert_eq!(
        types(&h.events_of(&doomed)),
        ["Upload Started", "Upload Aborted"]
    );
}

#[tokio::test]
async fn a_bad_signature_is_rejected_and_nothing_is_published() {
    let mut h = Harness::new(&[]).await;
    let who = owner("notify-sig");
    let up = create(
        &h.ctx,
        &who,
        json!({"filename": "s.mp4", "type": "video/mp4", "size": 10}),
    )
    .await;
    let records = h.records(&[&up.upload_id], 1).await;

    // A client with the right key id but the wrong secret.
    let forged = aws_config::SdkConfig::builder()
        .region(aws_config::Region::new("us-east-1"))
        .behavior_version(aws_config::BehaviorVersion::latest())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    partwise_local::stack::ACCESS_KEY_ID,
                    "0".repeat(64),
                    None,
                    None,
                    "forged",
                ),
            ),
        )
        .build();
    let mut notifier = h.notifier.clone();
    notifier.publisher.client = h.receiver.client(&forged);
    let failures = notify::handle(&notifier, lambda_event(records.clone()))
        .await
        .batch_item_failures;
    assert_eq!(failures.len(), 1);
    assert!(h.receiver.accepted().is_empty());
    assert_eq!(
        h.receiver.rejected_requests(),
        3,
        "three attempts, each refused"
    );

    // An unsigned request, straight over HTTP.
    let resp = http()
        .post(h.receiver.url())
        .header("x-amz-target", "AWSEvents.PutEvents")
        .body(r#"{"Entries":[{"Source":"partwise","DetailType":"Upload Started","Detail":"{}"}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);

    // The right credentials go through.
    assert!(h.notify(records).await.is_empty());
    assert_eq!(types(&h.events_of(&up.upload_id)), ["Upload Started"]);
}

#[tokio::test]
async fn a_handler_killed_after_its_change_still_yields_the_event() {
    let mut h = Harness::new(&[]).await;
    let who = owner("notify-crash");
    let (up, etag) = started_with_part(&h.ctx, &who, "crash.mp4", 1024).await;
    // What a complete handler does, up to the write it would answer after;
    // then it "dies": no answer, nothing held in memory survives.
    let item = h.ctx.store.get(&up.upload_id).await.unwrap().unwrap();
    let store = &h.ctx.store;
    store
        .transition(&up.upload_id, Status::Active, Status::Completing, None)
        .await
        .unwrap();
    let parts = [Part {
        part_number: 1,
        etag: etag.clone(),
        size: 1024,
        checksum: None,
    }];
    let S3Completed::Done {
        etag: object_etag, ..
    } = h
        .ctx
        .storage
        .complete(&item.key, &item.upload_id, &parts)
        .await
        .unwrap()
    else {
        panic!("S3 completes");
    };
    let completion = Completion {
        etag: object_etag.clone(),
        size: 1024,
        location: h.ctx.presigner.object_url(&item.key).await.unwrap(),
        checksum: None,
    };
    store
        .transition_by(
            &up.upload_id,
            Status::Completing,
            Status::Completed,
            Some(&completion),
            Stamp::Completed(Actor::Api),
        )
        .await
        .unwrap();

    // The stream has it; notify, a separate process, publishes it.
    let records = h.records(&[&up.upload_id], 3).await;
    assert!(h.notify(records).await.is_empty());
    let e = h.events_of(&up.upload_id);
    assert_eq!(types(&e), ["Upload Started", "Upload Completed"]);
    assert_eq!(e[1].detail["etag"], json!(object_etag));
}

#[tokio::test]
async fn an_upload_aborted_outside_the_service_is_reported_as_vanished() {
    let mut h = Harness::new(&[]).await;
    let who = owner("notify-vanished");
    let (up, etag) = started_with_part(&h.ctx, &who, "lost.mp4", 1024).await;
    // S3 drops the upload (a lifecycle rule, or an abort by hand); the next
    // complete finds no upload and no object, and records the abort.
    h.ctx
        .storage
        .client()
        .abort_multipart_upload()
        .bucket(h.ctx.storage.bucket())
        .key(&up.key)
        .upload_id(&up.upload_id)
        .send()
        .await
        .unwrap();
    let (status, body) = complete_call(&h.ctx, &who, &up, &etag).await;
    assert!(status >= 400, "{status} {body}");
    let records = h.records(&[&up.upload_id], 3).await;
    assert!(h.notify(records).await.is_empty());
    let e = h.events_of(&up.upload_id);
    assert_eq!(types(&e), ["Upload Started", "Upload Aborted"]);
    assert_eq!(
        (&e[1].detail["source"], &e[1].detail["reason"]),
        (&json!("api"), &json!("vanished"))
    );
}

#[tokio::test]
async fn the_dev_watcher_logs_each_event_as_a_json_line() {
    let h = Harness::new(&[]).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let task = partwise_local::events::watch_with(&h.stack, &h.ctx, move |line| {
        let _ = tx.send(line);
    })
    .await
    .unwrap();
    let who = owner("notify-watch");
    let up = create(
        &h.ctx,
        &who,
        json!({"filename": "w.mp4", "type": "video/mp4", "size": 10}),
    )
    .await;
    let mut seen = None;
    for _ in 0..50 {
        match tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            Ok(Some(line)) if line["event"]["detail"]["uploadId"] == json!(up.upload_id) => {
                seen = Some(line);
                break;
            }
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => break,
        }
    }
    task.abort();
    let line = seen.expect("the watcher logged the upload's event");
    assert_eq!(line["event"]["detail-type"], "Upload Started");
    assert_eq!(line["event"]["source"], "partwise");
}

#[tokio::test]
async fn a_record_that_cannot_be_read_is_reported_not_skipped() {
    let stack = stack().await;
    let ctx = stack.context().unwrap();
    let receiver = Receiver::for_stack().await.unwrap();
    let mut notifier = Notifier::new(&ctx.config, &stack.sdk_config());
    notifier.publisher.client = receiver.client(&stack.sdk_config());
    let mut raw: Value =
        serde_json::from_str(&std::fs::read_to_string(repo("events/notify.json")).unwrap())
            .unwrap();
    // The COMPLETED image loses its ETag: no event can be made of it.
    raw["Records"][2]["dynamodb"]["NewImage"]
        .as_object_mut()
        .unwrap()
        .remove("etag");
    let event: Event = serde_json::from_value(raw).unwrap();
    let failures: Vec<_> = notify::handle(&notifier, event)
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier.unwrap_or_default())
        .collect();
    assert_eq!(failures, ["100000000000000000003"]);
    let published: Vec<_> = receiver
        .accepted()
        .iter()
        .map(|e| e.detail["eventId"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        published.len(),
        2,
        "the other uploads' events still go out: {published:?}"
    );
    assert!(published.contains(&"sample-upload-completed:STARTED".to_string()));
    assert!(published.contains(&"sample-upload-stale:ABORTED".to_string()));
}

#[tokio::test]
async fn a_stamp_that_does_not_fit_its_transition_is_refused() {
    let stack = stack().await;
    let ctx = stack.context().unwrap();
    let who = owner("notify-stamp");
    let up = create(
        &ctx,
        &who,
        json!({"filename": "t.mp4", "type": "video/mp4", "size": 10}),
    )
    .await;
    let wrong = ctx
        .store
        .transition_by(
            &up.upload_id,
            Status::Active,
            Status::Completing,
            None,
            Stamp::Completed(Actor::Api),
        )
        .await;
    assert!(wrong.is_err());
    let item = ctx.store.get(&up.upload_id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Active, "nothing was written");
}
