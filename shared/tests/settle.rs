//! Every upload tracked and announced, whichever way its bytes arrive: POST
//! forms and single PUTs (and multipart uploads S3 completed behind the
//! table's back) settled from S3's "Object Created" notifications. Over the
//! wire: the HTTP API stand-in serving the real handlers, the S3 notification
//! transport in front of Garage (presigned URLs point at it), the `settle`
//! handler on each notification, the table's stream through `notify` to a
//! loopback EventBridge, every event checked against its schema.

use partwise::Context;
use partwise::model::{Status, UploadKind};
use partwise::notify::DetailType;
use partwise::settle::{self, Outcome};
use partwise_local::stand_ins::s3_events::{self, S3Events};
use partwise_local::{ServerHandle, ServerOptions, Stack, spawn};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest anything here may take to settle.
const WAIT: Duration = Duration::from_secs(15);

fn validator(dt: DetailType) -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas")
        .join(dt.schema_file());
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

/// One test's world: its own table and prefix, the API, the transport, the
/// settle handler on its notifications, and the events published.
struct World {
    _stack: Stack,
    ctx: Arc<Context>,
    api: ServerHandle,
    _transport: S3Events,
    http: reqwest::Client,
    /// `{"event": …}` lines from the stream watcher.
    events: Arc<Mutex<Vec<Value>>>,
    /// `{"s3_notification": …}` lines from the transport's delivery.
    notifications: Arc<Mutex<Vec<Value>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for World {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn world(overrides: &[(&str, &str)]) -> World {
    let stack = Stack::from_env_or_start()
        .await
        .unwrap_or_else(|e| panic!("local stack: {e}"));
    let table = Stack::unique_name("settle");
    stack.create_table(&table).await.unwrap();
    let prefix = format!("{}/", Stack::unique_name("settle"));
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let transport = S3Events::start(stack.s3_addr().unwrap(), stack.s3().clone(), sender)
        .await
        .unwrap();
    let mut settings = vec![
        ("PARTWISE_TABLE", table.as_str()),
        ("PARTWISE_KEY_PREFIX", prefix.as_str()),
        ("PARTWISE_PART_SIZE", "5MiB"),
    ];
    settings.extend_from_slice(overrides);
    let config = stack.partwise_config(&settings).unwrap();
    let ctx = Arc::new(Context::new(
        config,
        &stack.sdk_config_via(&transport.url()),
    ));
    let events = Arc::new(Mutex::new(vec![]));
    let sink = events.clone();
    let watcher = partwise_local::events::watch_with(&stack, &ctx, move |line| {
        sink.lock().unwrap().push(line)
    })
    .await
    .unwrap();
    let notifications = Arc::new(Mutex::new(vec![]));
    let sink = notifications.clone();
    let delivery = s3_events::deliver(ctx.clone(), receiver, move |line| {
        sink.lock().unwrap().push(line)
    });
    let (_, api) = spawn(ctx.clone(), ServerOptions::dev()).await.unwrap();
    World {
        _stack: stack,
        ctx,
        api,
        _transport: transport,
        http: reqwest::Client::new(),
        events,
        notifications,
        tasks: vec![watcher, delivery],
    }
}

impl World {
    async fn call(
        &self,
        owner: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.api.url()))
            .bearer_auth(owner);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Waits until the item is in `want` (or [`WAIT`] passes); its state then.
    async fn settled(&self, upload_id: &str, want: Status) -> Status {
        let start = Instant::now();
        loop {
            let now = self.ctx.store.get(upload_id).await.unwrap().unwrap().status;
            if now == want {
                return now;
            }
            if start.elapsed() > WAIT {
                let lines = self.notifications.lock().unwrap().clone();
                eprintln!("{upload_id} is {now:?}; notifications: {lines:#?}");
                return now;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The published events of one upload, once `want` of them arrived (or
    /// [`WAIT`] passed, plus a moment for any extra), each schema-checked.
    async fn events_of(&self, upload_id: &str, want: usize) -> Vec<Value> {
        let start = Instant::now();
        let mine = || -> Vec<Value> {
            self.events
                .lock()
                .unwrap()
                .iter()
                .filter_map(|l| l.get("event"))
                .filter(|e| e["detail"]["uploadId"] == upload_id)
                .cloned()
                .collect()
        };
        while mine().len() < want && start.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The watcher polls twice a second: an extra event would show by now.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let events = mine();
        if events.len() != want {
            // What the watcher said instead (unpublished records, stream errors).
            let lines = self.events.lock().unwrap().clone();
            eprintln!("watcher lines for {upload_id}: {lines:#?}");
        }
        for e in &events {
            let dt = DetailType::parse(e["detail-type"].as_str().unwrap()).unwrap();
            let errors: Vec<String> = validator(dt)
                .iter_errors(&e["detail"])
                .map(|err| format!("{err} at {}", err.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{errors:?}\n{e}");
        }
        events
    }

    fn notifications_for(&self, key: &str) -> Vec<Value> {
        self.notifications
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.get("s3_notification"))
            .filter(|n| n["detail"]["object"]["key"] == key)
            .cloned()
            .collect()
    }

    /// Every item of the world's table.
    async fn item_count(&self) -> usize {
        let out = self
            ._stack
            .dynamodb()
            .scan()
            .table_name(self.ctx.store.table())
            .consistent_read(true)
            .send()
            .await
            .unwrap();
        out.items().len()
    }
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap_or_default())
        .collect()
}

/// Posts a file with a form `GET /s3/params` handed out, as a browser does.
async fn post_form(http: &reqwest::Client, form: &Value, bytes: Vec<u8>) -> u16 {
    let mut multipart = reqwest::multipart::Form::new();
    for (k, v) in form["fields"].as_object().unwrap() {
        multipart = multipart.text(k.clone(), v.as_str().unwrap().to_string());
    }
    multipart = multipart.part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("f"),
    );
    http.post(form["url"].as_str().unwrap())
        .multipart(multipart)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn post_forms_and_empty_files_are_tracked_settled_and_announced_once() {
    let w = world(&[]).await;
    let owner = format!("ann-{}", uuid::Uuid::new_v4().simple());
    let get = reqwest::Method::GET;
    let mut expected = vec![];
    for (name, len) in [("small.txt", 1024usize), ("five.bin", 5 << 20)] {
        let (status, form) = w
            .call(
                &owner,
                get.clone(),
                &format!("/s3/params?filename={name}&type=text/plain&metadata[project]=apollo&metadata[name]={name}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{form}");
        let upload_id = form["uploadId"].as_str().unwrap().to_string();
        assert!(upload_id.starts_with("post:"), "{upload_id}");
        assert_eq!(form["fields"]["x-amz-meta-project"], "apollo");
        let item = w.ctx.store.get(&upload_id).await.unwrap().unwrap();
        assert_eq!((item.status, item.kind), (Status::Active, UploadKind::Post));
        let status = post_form(&w.http, &form, vec![b'x'; len]).await;
        assert!((200..300).contains(&status), "POST answered {status}");
        expected.push((upload_id, len as u64, "post"));
    }
    let (status, empty) = w
        .call(
            &owner,
            reqwest::Method::POST,
            "/s3/multipart",
            Some(
                json!({"filename": "empty.txt", "type": "text/plain", "size": 0,
                        "metadata": {"project": "apollo"}}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{empty}");
    // As a browser sends an empty file: with its `Content-Length: 0`, which the URL signs.
    let mut put = w
        .http
        .put(empty["url"].as_str().unwrap())
        .header("content-length", "0")
        .body(Vec::<u8>::new());
    for (k, v) in empty["headers"].as_object().into_iter().flatten() {
        put = put.header(k, v.as_str().unwrap());
    }
    let answer = put.send().await.unwrap();
    let status = answer.status().as_u16();
    assert_eq!(
        status,
        200,
        "{empty}: {}",
        answer.text().await.unwrap_or_default()
    );
    expected.push((empty["uploadId"].as_str().unwrap().to_string(), 0, "put"));

    for (upload_id, size, kind) in &expected {
        assert_eq!(
            w.settled(upload_id, Status::Completed).await,
            Status::Completed,
            "{upload_id}"
        );
        let events = w.events_of(upload_id, 2).await;
        assert_eq!(
            types(&events),
            ["Upload Started", "Upload Completed"],
            "{upload_id}"
        );
        let done = &events[1]["detail"];
        assert_eq!(done["size"], *size);
        assert_eq!(done["kind"], *kind);
        assert_eq!(done["source"], "s3");
        assert_eq!(done["metadata"]["project"], "apollo");
        assert_eq!(done["contentType"], "text/plain");
    }
    // The caller's list shows each COMPLETED with its real size and kind.
    let (status, list) = w.call(&owner, get.clone(), "/s3/multipart", None).await;
    assert_eq!(status, 200);
    for (upload_id, size, kind) in &expected {
        let u = list["uploads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["uploadId"] == upload_id.as_str())
            .unwrap_or_else(|| panic!("{upload_id} listed"));
        assert_eq!(
            (u["state"].as_str(), &u["size"], u["kind"].as_str()),
            (Some("COMPLETED"), &json!(size), Some(*kind))
        );
    }

    // The same notification delivered again changes nothing, publishes nothing.
    let (upload_id, _, _) = &expected[0];
    let key = w.ctx.store.get(upload_id).await.unwrap().unwrap().key;
    let sent = w.notifications_for(&key);
    assert_eq!(sent.len(), 1, "one notification per object");
    let again = settle::handle(&w.ctx, sent[0].clone()).await.unwrap();
    assert_eq!(
        again,
        [Outcome::AlreadySettled {
            upload_id: upload_id.clone(),
            status: Status::Completed
        }]
    );
    assert_eq!(
        types(&w.events_of(upload_id, 2).await),
        ["Upload Started", "Upload Completed"]
    );
}

#[tokio::test]
async fn unused_forms_and_urls_are_settled_as_expired_once_each() {
    let w = world(&[
        ("PARTWISE_URL_EXPIRY_SECS", "2"),
        ("PARTWISE_SETTLE_GRACE_SECS", "0"),
    ])
    .await;
    let owner = format!("bo-{}", uuid::Uuid::new_v4().simple());
    let handed_out = Instant::now();
    let (_, form) = w
        .call(
            &owner,
            reqwest::Method::GET,
            "/s3/params?filename=never.txt&type=text/plain",
            None,
        )
        .await;
    let (_, empty) = w
        .call(
            &owner,
            reqwest::Method::POST,
            "/s3/multipart",
            Some(json!({"filename": "never.txt", "size": 0})),
        )
        .await;
    let ids = [
        form["uploadId"].as_str().unwrap().to_string(),
        empty["uploadId"].as_str().unwrap().to_string(),
    ];
    // Both are charged to their owner's quota while live, and given back
    // when they expire.
    let live = || async {
        partwise::quota::counters::usage(
            w.ctx.store.client(),
            w.ctx.store.table(),
            &owner,
            partwise::model::now_millis(),
        )
        .await
        .unwrap()
        .live_uploads
    };
    assert_eq!(live().await, 2);
    // Before their expiry (plus the grace, 0 here) the sweep leaves them be;
    // a run that ends past it (a slow machine) may settle them already.
    let early = partwise::sweep::handle(&w.ctx, json!({}), None)
        .await
        .unwrap();
    if handed_out.elapsed() < Duration::from_secs(2) {
        assert_eq!(early.expired, 0);
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let summary = partwise::sweep::handle(&w.ctx, json!({}), None)
        .await
        .unwrap();
    assert_eq!(early.expired + summary.expired, 2, "{early:?} {summary:?}");
    for id in &ids {
        assert_eq!(w.settled(id, Status::Aborted).await, Status::Aborted);
        let events = w.events_of(id, 2).await;
        assert_eq!(types(&events), ["Upload Started", "Upload Aborted"], "{id}");
        assert_eq!(events[1]["detail"]["reason"], "expired");
        assert_eq!(events[1]["detail"]["source"], "sweep");
    }
    assert_eq!(live().await, 0, "the quota given back at expiry");
    // A second run finds nothing more to do.
    let again = partwise::sweep::handle(&w.ctx, json!({}), None)
        .await
        .unwrap();
    assert_eq!(again.expired, 0);
}

fn object_created(bucket: &str, key: &str, reason: &str) -> Value {
    json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
           "detail": {"bucket": {"name": bucket}, "object": {"key": key, "size": 1, "etag": "e"},
                      "reason": reason}})
}

#[tokio::test]
async fn notifications_for_keys_outside_the_prefix_or_unknown_change_nothing() {
    let w = world(&[]).await;
    let owner = format!("cy-{}", uuid::Uuid::new_v4().simple());
    let (_, form) = w
        .call(
            &owner,
            reqwest::Method::GET,
            "/s3/params?filename=a.txt&type=text/plain",
            None,
        )
        .await;
    let before = w.item_count().await;
    let bucket = w.ctx.config.bucket.clone();
    let prefix = w.ctx.config.key_prefix.clone();
    let cases = [
        (
            object_created(&bucket, "elsewhere/a/0193/a.txt", "PutObject"),
            "outside",
        ),
        (
            object_created(
                &bucket,
                &format!("{prefix}cy/0193unknown/a.txt"),
                "POSTObject",
            ),
            "unknown",
        ),
        (
            object_created(
                &bucket,
                &format!("{prefix}cy/0193unknown/a.txt"),
                "CompleteMultipartUpload",
            ),
            "unknown",
        ),
        (
            object_created("another-bucket", &format!("{prefix}x/y/z"), "PutObject"),
            "bucket",
        ),
    ];
    for (event, what) in cases {
        let out = settle::handle(&w.ctx, event).await.unwrap();
        let ok = matches!(
            (what, &out[..]),
            ("outside", [Outcome::OutsidePrefix { .. }])
                | ("unknown", [Outcome::UnknownKey { .. }])
                | ("bucket", [Outcome::OtherBucket { .. }])
        );
        assert!(ok, "{what}: {out:?}");
    }
    // The form's own key, with no object behind it: nothing to record.
    let key = form["fields"]["key"].as_str().unwrap();
    let out = settle::handle(&w.ctx, object_created(&bucket, key, "POSTObject"))
        .await
        .unwrap();
    assert!(matches!(out[..], [Outcome::ObjectGone { .. }]), "{out:?}");
    assert_eq!(w.item_count().await, before);
    let item = w
        .ctx
        .store
        .get(form["uploadId"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.status, Status::Active);
    // A malformed event is refused, so Lambda retries it and at last keeps it.
    assert_eq!(
        settle::handle(&w.ctx, json!({"hello": 1}))
            .await
            .unwrap_err()
            .status(),
        400
    );
}

/// A multipart upload started through the API with one part uploaded to its
/// presigned URL (through the transport): (upload id, key, ETag).
async fn multipart_with_a_part(w: &World, owner: &str, name: &str) -> (String, String, String) {
    let (status, up) = w
        .call(owner, reqwest::Method::POST, "/s3/multipart",
              Some(json!({"filename": name, "type": "application/octet-stream", "metadata": {"project": "apollo"}})))
        .await;
    assert_eq!(status, 200, "{up}");
    let (id, key) = (
        up["uploadId"].as_str().unwrap().to_string(),
        up["key"].as_str().unwrap().to_string(),
    );
    let (_, signed) = w
        .call(
            owner,
            reqwest::Method::GET,
            &format!("/s3/multipart/{id}/1?key={}", urlencode(&key)),
            None,
        )
        .await;
    let resp = w
        .http
        .put(signed["url"].as_str().unwrap())
        .body(vec![7u8; 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap().to_string();
    (id, key, etag)
}

fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test]
async fn multipart_uploads_s3_completed_behind_the_table_are_settled_within_seconds() {
    let w = world(&[]).await;
    let owner = format!("di-{}", uuid::Uuid::new_v4().simple());
    // One completed directly in S3 (item ACTIVE); one as after a crash
    // between S3's complete and the record (item COMPLETING).
    let direct = multipart_with_a_part(&w, &owner, "direct.bin").await;
    let crashed = multipart_with_a_part(&w, &owner, "crashed.bin").await;
    w.ctx
        .store
        .transition(&crashed.0, Status::Active, Status::Completing, None)
        .await
        .unwrap();
    for (id, key, etag) in [&direct, &crashed] {
        let parts = [partwise::storage::Part {
            part_number: 1,
            etag: etag.clone(),
            size: 1024,
            checksum: None,
        }];
        let started = Instant::now();
        assert!(matches!(
            w.ctx.storage.complete(key, id, &parts).await.unwrap(),
            partwise::storage::Completed::Done { .. }
        ));
        assert_eq!(
            w.settled(id, Status::Completed).await,
            Status::Completed,
            "{id}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "settled in {:?}",
            started.elapsed()
        );
        let item = w.ctx.store.get(id).await.unwrap().unwrap();
        assert_eq!(item.completion.as_ref().map(|c| c.size), Some(1024));
        let events = w.events_of(id, 2).await;
        assert_eq!(
            types(&events),
            ["Upload Started", "Upload Completed"],
            "{id}"
        );
        assert_eq!(events[1]["detail"]["source"], "s3");
        assert_eq!(events[1]["detail"]["kind"], "multipart");
        assert_eq!(events[1]["detail"]["metadata"]["project"], "apollo");
        // The client's own complete, arriving late, gets the recorded result.
        let (status, body) = w
            .call(
                &owner,
                reqwest::Method::POST,
                &format!("/s3/multipart/{id}/complete?key={}", urlencode(key)),
                Some(json!({"parts": [{"PartNumber": 1, "ETag": etag}]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["size"], 1024);
        assert_eq!(
            types(&w.events_of(id, 2).await),
            ["Upload Started", "Upload Completed"]
        );
    }
}

#[tokio::test]
async fn the_apis_complete_and_s3s_notification_yield_one_outcome_and_one_event() {
    let w = world(&[]).await;
    let owner = format!("ed-{}", uuid::Uuid::new_v4().simple());
    for i in 0..3 {
        let (id, key, etag) = multipart_with_a_part(&w, &owner, &format!("race{i}.bin")).await;
        let (status, body) = w
            .call(
                &owner,
                reqwest::Method::POST,
                &format!("/s3/multipart/{id}/complete?key={}", urlencode(&key)),
                Some(json!({"parts": [{"PartNumber": 1, "ETag": etag}]})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        // The notification of that complete, handled now or already, and once more.
        let start = Instant::now();
        while w.notifications_for(&key).is_empty() && start.elapsed() < WAIT {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = w.notifications_for(&key);
        assert_eq!(sent.len(), 1);
        let again = settle::handle(&w.ctx, sent[0].clone()).await.unwrap();
        assert!(
            matches!(
                again[..],
                [Outcome::AlreadySettled {
                    status: Status::Completed,
                    ..
                }]
            ),
            "{again:?}"
        );
        let events = w.events_of(&id, 2).await;
        assert_eq!(
            types(&events),
            ["Upload Started", "Upload Completed"],
            "{id}"
        );
        assert_eq!(events[1]["detail"]["size"], 1024);
    }
}

fn sample(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_samples_parse_as_the_objects_they_report() {
    let bridge = settle::parse(&sample("settle-object-created.json")).unwrap();
    assert_eq!(bridge.len(), 1);
    assert_eq!(bridge[0].reason, settle::Reason::Post);
    assert!(bridge[0].key.ends_with("/holiday photo.jpg"));
    let records = settle::parse(&sample("settle-s3-records.json")).unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].reason, settle::Reason::Put);
    assert!(
        records[0].key.ends_with("/empty notes.txt"),
        "{}",
        records[0].key
    );
}

#[tokio::test]
async fn the_samples_settle_the_uploads_they_name() {
    let w = world(&[]).await;
    let owner = format!("fi-{}", uuid::Uuid::new_v4().simple());
    for (name, route) in [
        ("settle-object-created.json", "params"),
        ("settle-s3-records.json", "empty"),
    ] {
        // A real upload of that kind, its object put straight into Garage
        // (no notification), then the sample retargeted at its key.
        let (status, up) = match route {
            "params" => {
                w.call(
                    &owner,
                    reqwest::Method::GET,
                    "/s3/params?filename=s.txt&type=text/plain",
                    None,
                )
                .await
            }
            _ => {
                w.call(
                    &owner,
                    reqwest::Method::POST,
                    "/s3/multipart",
                    Some(json!({"filename": "s.txt", "size": 0})),
                )
                .await
            }
        };
        assert_eq!(status, 200, "{up}");
        let id = up["uploadId"].as_str().unwrap().to_string();
        let key = w.ctx.store.get(&id).await.unwrap().unwrap().key;
        w._stack
            .s3()
            .put_object()
            .bucket(&w.ctx.config.bucket)
            .key(&key)
            .body(b"sample".to_vec().into())
            .send()
            .await
            .unwrap();
        let mut event = sample(name);
        match event.get_mut("Records") {
            Some(records) => {
                records[0]["s3"]["bucket"]["name"] = json!(w.ctx.config.bucket);
                records[0]["s3"]["object"]["key"] = json!(urlencode(&key));
            }
            None => {
                event["detail"]["bucket"]["name"] = json!(w.ctx.config.bucket);
                event["detail"]["object"]["key"] = json!(key);
            }
        }
        let out = settle::handle(&w.ctx, event).await.unwrap();
        assert!(
            matches!(out[..], [Outcome::Completed { .. }]),
            "{name}: {out:?}"
        );
        let item = w.ctx.store.get(&id).await.unwrap().unwrap();
        assert_eq!(item.completion.map(|c| c.size), Some(6));
    }
}
