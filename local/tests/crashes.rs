//! Crash injection: a `partwise-local` child (the HTTP API, or one sweep run)
//! is SIGKILLed at each crash point between an S3 call and the DynamoDB write
//! that records it. The call is then retried, or the sweep run, on a fresh
//! child, and S3 and the table are checked against each other.
//!
//! Uses the stack named by the environment (`scripts/test.sh` starts one), or
//! starts a private one; each test has a table and a key prefix of its own.

use aws_sdk_dynamodb::types::AttributeValue;
use partwise::Context;
use partwise::crashpoint;
use partwise::model::{Status, Upload};
use partwise::sweep::COMPLETING_LEASE;
use partwise_local::Stack;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Longest a child may take to start, or to reach its crash point.
const WAIT: Duration = Duration::from_secs(30);

/// One test's world: the stack, a table and a key prefix of its own.
struct Scene {
    stack: Stack,
    env: BTreeMap<String, String>,
    ctx: Context,
    prefix: String,
}

async fn scene() -> Scene {
    let stack = Stack::from_env_or_start()
        .await
        .unwrap_or_else(|e| panic!("local stack: {e}"));
    let table = Stack::unique_name("crash");
    stack.create_table(&table).await.unwrap();
    let prefix = format!("{}/", Stack::unique_name("crash"));
    let settings = [
        ("PARTWISE_TABLE", table.as_str()),
        ("PARTWISE_KEY_PREFIX", prefix.as_str()),
        ("PARTWISE_PART_SIZE", "5MiB"),
        ("PARTWISE_GSI_SHARDS", "4"),
        // Several uploads in flight when the sweep is killed.
        ("PARTWISE_SWEEP_CONCURRENCY", "4"),
    ];
    let mut env = stack.env().clone();
    env.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let ctx = stack.context_with(&settings).unwrap();
    Scene {
        stack,
        env,
        ctx,
        prefix,
    }
}

/// A `partwise-local` child on the scene's stack, its stderr read line by line.
struct Proc {
    child: Child,
    stderr: tokio::sync::mpsc::UnboundedReceiver<String>,
}

impl Scene {
    fn spawn(&self, args: &[&str], crash_at: Option<&str>) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_partwise-local"));
        cmd.args(args)
            .envs(&self.env)
            .env("RUST_LOG", "warn")
            .env_remove("PARTWISE_CRASH_AT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(point) = crash_at {
            cmd.env("PARTWISE_CRASH_AT", point);
        }
        let mut child = cmd.spawn().expect("spawn partwise-local");
        let (tx, stderr) = tokio::sync::mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // Drained to the end, so the child never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send(line);
            }
        });
        Proc { child, stderr }
    }

    /// The HTTP API in a child; its base URL.
    async fn api(&self, crash_at: Option<&str>) -> (Proc, String) {
        let mut p = self.spawn(&["api"], crash_at);
        let mut out = BufReader::new(p.child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(WAIT, out.next_line())
            .await
            .expect("the API child starts")
            .unwrap()
            .expect("the API child prints its address");
        let url = line
            .strip_prefix("PARTWISE_API=")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        (p, url)
    }

    /// One sweep of everything initiated until now, to its end; its summary.
    async fn sweep(&self) -> Value {
        let p = self.spawn(&["sweep", "--payload", r#"{"max_age_secs": 0}"#], None);
        let out = tokio::time::timeout(WAIT, p.child.wait_with_output())
            .await
            .expect("the sweep finishes")
            .unwrap();
        assert!(out.status.success(), "sweep failed: {:?}", out.status);
        let stdout = String::from_utf8(out.stdout).unwrap();
        serde_json::from_str(stdout.lines().last().expect("a summary line")).unwrap()
    }

    /// Every item of the scene's table.
    async fn items(&self) -> Vec<Upload> {
        let mut items = vec![];
        let mut start = None;
        loop {
            let out = self
                .stack
                .dynamodb()
                .scan()
                .table_name(self.ctx.store.table())
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .unwrap();
            // Uploads only: the owners' quota counters share the table.
            items.extend(
                out.items()
                    .iter()
                    .filter(|i| i.contains_key("status"))
                    .map(|i| Upload::try_from(i).unwrap()),
            );
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return items,
            }
        }
    }

    async fn item(&self, upload_id: &str) -> Upload {
        self.ctx.store.get(upload_id).await.unwrap().unwrap()
    }

    /// Multipart uploads S3 holds under the prefix: upload id → key.
    async fn s3_uploads(&self) -> HashMap<String, String> {
        let mut found = HashMap::new();
        let mut from = None;
        loop {
            let page = self
                .ctx
                .storage
                .list_uploads_page(&self.prefix, from.as_ref())
                .await
                .unwrap();
            found.extend(page.uploads.into_iter().map(|u| (u.upload_id, u.key)));
            match page.next {
                Some(n) => from = Some(n),
                None => return found,
            }
        }
    }

    /// Objects under the prefix: key → (ETag, size).
    async fn objects(&self) -> HashMap<String, (String, u64)> {
        let mut found = HashMap::new();
        let mut token = None;
        loop {
            let out = self
                .stack
                .s3()
                .list_objects_v2()
                .bucket(self.ctx.storage.bucket())
                .prefix(&self.prefix)
                .set_continuation_token(token)
                .send()
                .await
                .unwrap();
            for o in out.contents() {
                let (etag, size) = self
                    .ctx
                    .storage
                    .head(o.key().unwrap())
                    .await
                    .unwrap()
                    .unwrap();
                found.insert(o.key().unwrap().to_string(), (etag, size));
            }
            match out.next_continuation_token {
                Some(t) => token = Some(t),
                None => return found,
            }
        }
    }

    /// The invariants, after the repair: every COMPLETED item has its object,
    /// with the right size and ETag; no S3 upload remains that is not tracked
    /// by a live item; no ABORTED item's upload remains; no item is ABORTING,
    /// or COMPLETING past its lease; no object exists the table doesn't know.
    async fn assert_converged(&self) {
        let items = self.items().await;
        let uploads = self.s3_uploads().await;
        let objects = self.objects().await;
        let now = partwise::model::now_millis();
        for u in &items {
            match u.status {
                Status::Completed => {
                    let c = u.completion.as_ref().expect("a COMPLETED item's result");
                    let (etag, size) = objects
                        .get(&u.key)
                        .unwrap_or_else(|| panic!("COMPLETED {} has no object", u.upload_id));
                    assert_eq!((etag, *size), (&c.etag, c.size), "{}", u.upload_id);
                    assert!(!uploads.contains_key(&u.upload_id));
                }
                Status::Aborted => assert!(
                    !uploads.contains_key(&u.upload_id),
                    "ABORTED {} still has its S3 upload",
                    u.upload_id
                ),
                Status::Aborting => panic!("{} left ABORTING", u.upload_id),
                Status::Completing => assert!(
                    now - u.updated_at < COMPLETING_LEASE.as_millis() as i64,
                    "{} left COMPLETING past its lease",
                    u.upload_id
                ),
                Status::Active => {}
            }
        }
        let by_id: HashMap<&str, &Upload> =
            items.iter().map(|u| (u.upload_id.as_str(), u)).collect();
        for (id, key) in &uploads {
            let live = by_id
                .get(id.as_str())
                .is_some_and(|u| !u.status.is_terminal());
            assert!(live, "S3 upload {id} ({key}) is not tracked by a live item");
        }
        for key in objects.keys() {
            assert!(
                items
                    .iter()
                    .any(|u| &u.key == key && u.status == Status::Completed),
                "object {key} is not a COMPLETED item's"
            );
        }
    }

    /// Makes an item look as if its last change were older than the
    /// COMPLETING lease: the passing of 15 minutes, which a test cannot wait.
    async fn age(&self, upload_id: &str) {
        self.stack
            .dynamodb()
            .update_item()
            .table_name(self.ctx.store.table())
            .key("upload_id", AttributeValue::S(upload_id.into()))
            .update_expression("SET updated_at = :old")
            .expression_attribute_values(":old", AttributeValue::N("0".into()))
            .send()
            .await
            .unwrap();
    }
}

impl Proc {
    /// Waits for the child to reach `point`, SIGKILLs it there, and checks it died of it.
    async fn kill_at(mut self, point: &str) {
        let marker = format!("CRASHPOINT {}", point.split('#').next().unwrap());
        let reached = tokio::time::timeout(WAIT, async {
            while let Some(line) = self.stderr.recv().await {
                if line == marker {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(reached, Ok(true), "the child never reached {point}");
        self.child.start_kill().unwrap();
        let status = self.child.wait().await.unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    }

    async fn stop(mut self) {
        self.child.start_kill().unwrap();
        let _ = self.child.wait().await;
    }
}

/// A client of the API in a child, as `alice`.
struct Client {
    base: String,
    owner: String,
    http: reqwest::Client,
}

/// An upload made through the API: id, key, and its one part's ETag.
struct Made {
    id: String,
    key: String,
    etag: String,
}

const BODY: &[u8] = b"hello crash";

impl Client {
    fn new(base: &str) -> Client {
        Client {
            base: base.to_string(),
            owner: "alice".into(),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    fn at(&self, base: &str) -> Client {
        Client {
            base: base.to_string(),
            owner: self.owner.clone(),
            http: self.http.clone(),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.owner);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Creates an upload of `BODY` and PUTs its one part.
    async fn upload(&self, name: &str) -> Made {
        let body = json!({"filename": name, "type": "text/plain", "size": BODY.len()});
        let (status, up) = self
            .call(reqwest::Method::POST, "/s3/multipart", Some(body))
            .await
            .unwrap();
        assert_eq!(status, 200, "{up}");
        let id = up["uploadId"].as_str().unwrap().to_string();
        let key = up["key"].as_str().unwrap().to_string();
        let (status, signed) = self
            .call(
                reqwest::Method::GET,
                &format!("/s3/multipart/{id}/1?key={}", urlencode(&key)),
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "{signed}");
        let put = self
            .http
            .put(signed["url"].as_str().unwrap())
            .body(BODY)
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 200);
        let etag = put.headers()["etag"].to_str().unwrap().to_string();
        Made { id, key, etag }
    }

    async fn complete(&self, m: &Made) -> reqwest::Result<(u16, Value)> {
        let body = json!({"parts": [{"PartNumber": 1, "ETag": m.etag}]});
        self.call(
            reqwest::Method::POST,
            &format!("/s3/multipart/{}/complete?key={}", m.id, urlencode(&m.key)),
            Some(body),
        )
        .await
    }

    async fn abort(&self, m: &Made) -> reqwest::Result<(u16, Value)> {
        self.call(
            reqwest::Method::DELETE,
            &format!("/s3/multipart/{}?key={}", m.id, urlencode(&m.key)),
            None,
        )
        .await
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends `call` to a child armed at `point`, kills the child there, and
/// checks the caller got no answer.
async fn crash<F, Fut>(scene: &Scene, point: &str, call: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = reqwest::Result<(u16, Value)>> + Send + 'static,
{
    let (proc, url) = scene.api(Some(point)).await;
    let pending = tokio::spawn(call(Client::new(&url)));
    proc.kill_at(point).await;
    let answer = pending.await.unwrap();
    assert!(
        answer.is_err(),
        "an answer from a killed process: {answer:?}"
    );
}

#[tokio::test]
async fn a_complete_killed_after_s3_completes_is_settled_by_its_retry_or_the_sweep() {
    let scene = scene().await;
    let point = crashpoint::COMPLETE_AFTER_S3;
    let (api, url) = scene.api(None).await;
    let client = Client::new(&url);
    let retried = client.upload("retried.txt").await;
    let swept = client.upload("swept.txt").await;
    api.stop().await;

    for m in [&retried, &swept] {
        let (id, key, etag) = (m.id.clone(), m.key.clone(), m.etag.clone());
        crash(&scene, point, move |c| async move {
            c.complete(&Made { id, key, etag }).await
        })
        .await;
        // Left behind: the object made, the item still COMPLETING.
        assert_eq!(scene.item(&m.id).await.status, Status::Completing);
        let object = scene.ctx.storage.head(&m.key).await.unwrap();
        assert_eq!(object.map(|o| o.1), Some(BODY.len() as u64));
    }

    // The client's retry gets the result at once.
    let (api, url) = scene.api(None).await;
    let (status, body) = client.at(&url).complete(&retried).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["size"], BODY.len());
    assert_eq!(scene.item(&retried.id).await.status, Status::Completed);

    // Nobody retries the other: the sweep settles it once its lease is over.
    assert_eq!(scene.sweep().await["completions_resolved"], 0);
    assert_eq!(scene.item(&swept.id).await.status, Status::Completing);
    scene.age(&swept.id).await;
    assert_eq!(scene.sweep().await["completions_resolved"], 1);
    let item = scene.item(&swept.id).await;
    assert_eq!(
        (item.status, item.completion.map(|c| c.size)),
        (Status::Completed, Some(BODY.len() as u64))
    );
    let (status, body) = client.at(&url).complete(&swept).await.unwrap();
    assert_eq!((status, &body["size"]), (200, &json!(BODY.len())));
    api.stop().await;
    scene.assert_converged().await;
}

#[tokio::test]
async fn a_complete_killed_after_s3_completes_is_settled_by_s3s_notification_within_seconds() {
    use partwise_local::stand_ins::s3_events::{self, S3Events};
    use std::sync::{Arc, Mutex};
    let mut scene = scene().await;
    // The API child reaches S3 through the notification transport; its
    // "Object Created" events go to the settle handler in this process.
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    let transport = S3Events::start(
        scene.stack.s3_addr().unwrap(),
        scene.stack.s3().clone(),
        sender,
    )
    .await
    .unwrap();
    scene
        .env
        .insert("AWS_ENDPOINT_URL_S3".into(), transport.url());
    let settings = [
        ("PARTWISE_TABLE", scene.ctx.store.table().to_string()),
        ("PARTWISE_KEY_PREFIX", scene.prefix.clone()),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let ctx = Arc::new(scene.stack.context_with(&settings).unwrap());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let watcher = partwise_local::events::watch_with(&scene.stack, &ctx, move |l| {
        sink.lock().unwrap().push(l)
    })
    .await
    .unwrap();
    let delivery = s3_events::deliver(ctx, receiver, |_| {});

    let (api, url) = scene.api(None).await;
    let client = Client::new(&url);
    let m = client.upload("notified.txt").await;
    api.stop().await;
    let (id, key, etag) = (m.id.clone(), m.key.clone(), m.etag.clone());
    crash(&scene, crashpoint::COMPLETE_AFTER_S3, move |c| async move {
        c.complete(&Made { id, key, etag }).await
    })
    .await;
    // Nobody retries and no sweep runs: S3's notification settles it.
    let start = std::time::Instant::now();
    while scene.item(&m.id).await.status != Status::Completed && start.elapsed() < WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let item = scene.item(&m.id).await;
    assert_eq!(
        (item.status, item.completion.map(|c| c.size)),
        (Status::Completed, Some(BODY.len() as u64)),
        "after {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // The item says who settled it, and one "Upload Completed" goes out.
    let raw = scene
        .stack
        .dynamodb()
        .get_item()
        .table_name(scene.ctx.store.table())
        .key("upload_id", AttributeValue::S(m.id.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.item.unwrap()["completed_by"].as_s().unwrap(), "s3");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let completed = events
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l["event"]["detail"]["uploadId"] == m.id.as_str())
        .filter(|l| l["event"]["detail-type"] == "Upload Completed")
        .count();
    assert_eq!(completed, 1);
    // The client's retry gets the recorded result.
    let (api, url) = scene.api(None).await;
    let (status, body) = client.at(&url).complete(&m).await.unwrap();
    assert_eq!((status, &body["size"]), (200, &json!(BODY.len())), "{body}");
    api.stop().await;
    watcher.abort();
    delivery.abort();
    scene.assert_converged().await;
}

#[tokio::test]
async fn a_complete_killed_after_its_claim_before_s3_can_be_retried_or_aborted_after_its_lease() {
    let scene = scene().await;
    let point = crashpoint::COMPLETE_BEFORE_S3;
    let (api, url) = scene.api(None).await;
    let client = Client::new(&url);
    let retried = client.upload("retried.txt").await;
    let abandoned = client.upload("abandoned.txt").await;
    api.stop().await;

    for m in [&retried, &abandoned] {
        let (id, key, etag) = (m.id.clone(), m.key.clone(), m.etag.clone());
        crash(&scene, point, move |c| async move {
            c.complete(&Made { id, key, etag }).await
        })
        .await;
        // Left behind: the item COMPLETING, S3's upload untouched, no object.
        assert_eq!(scene.item(&m.id).await.status, Status::Completing);
        assert!(scene.s3_uploads().await.contains_key(&m.id));
        assert_eq!(scene.ctx.storage.head(&m.key).await.unwrap(), None);
    }

    // Within the lease the claim may belong to a live call: a complete is told
    // to retry shortly (503), an abort is refused (409), and nothing changes.
    let (api, url) = scene.api(None).await;
    let client = client.at(&url);
    assert_eq!(client.complete(&retried).await.unwrap().0, 503);
    assert_eq!(client.abort(&abandoned).await.unwrap().0, 409);
    assert_eq!(scene.item(&retried.id).await.status, Status::Completing);

    // Past the lease the caller takes it back: the retry completes it...
    scene.age(&retried.id).await;
    let (status, body) = client.complete(&retried).await.unwrap();
    assert_eq!((status, &body["size"]), (200, &json!(BODY.len())), "{body}");
    // ...and an abort aborts it.
    scene.age(&abandoned.id).await;
    let (status, body) = client.abort(&abandoned).await.unwrap();
    assert_eq!((status, &body), (200, &json!({"status": "ABORTED"})));
    api.stop().await;
    scene.assert_converged().await;
    assert!(scene.s3_uploads().await.is_empty());
    assert_eq!(scene.item(&retried.id).await.status, Status::Completed);
}

/// Two aborts killed at `point`, each leaving an ABORTING item (with or
/// without its S3 upload); one is retried by its client, the other finished
/// by the sweep.
async fn abort_killed_at(point: &'static str, s3_upload_left: bool) {
    let scene = scene().await;
    let (api, url) = scene.api(None).await;
    let client = Client::new(&url);
    let retried = client.upload("retried.txt").await;
    let swept = client.upload("swept.txt").await;
    api.stop().await;

    for m in [&retried, &swept] {
        let (id, key, etag) = (m.id.clone(), m.key.clone(), m.etag.clone());
        crash(&scene, point, move |c| async move {
            c.abort(&Made { id, key, etag }).await
        })
        .await;
        assert_eq!(scene.item(&m.id).await.status, Status::Aborting);
        assert_eq!(
            scene.s3_uploads().await.contains_key(&m.id),
            s3_upload_left,
            "S3's upload after a kill at {point}"
        );
    }

    let (api, url) = scene.api(None).await;
    let (status, body) = client.at(&url).abort(&retried).await.unwrap();
    assert_eq!((status, &body), (200, &json!({"status": "ABORTED"})));
    assert_eq!(scene.item(&retried.id).await.status, Status::Aborted);

    let summary = scene.sweep().await;
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(scene.item(&swept.id).await.status, Status::Aborted);
    // And the client's late retry agrees.
    let (status, _) = client.at(&url).abort(&swept).await.unwrap();
    assert_eq!(status, 200);
    api.stop().await;
    scene.assert_converged().await;
    assert!(scene.s3_uploads().await.is_empty());
}

#[tokio::test]
async fn an_abort_killed_after_its_claim_before_s3_is_finished_by_its_retry_or_the_sweep() {
    abort_killed_at(crashpoint::ABORT_BEFORE_S3, true).await;
}

#[tokio::test]
async fn an_abort_killed_after_s3_before_its_record_is_finished_by_its_retry_or_the_sweep() {
    abort_killed_at(crashpoint::ABORT_AFTER_S3, false).await;
}

/// A sweep killed in the middle of a batch (several uploads in flight), at
/// `point`'s n-th hit; the next run finishes the work.
async fn sweep_killed_at(point: &str) {
    let scene = scene().await;
    const TRACKED: usize = 12;
    const ORPHANS: usize = 3;
    partwise_local::backlog::uploads(&scene.ctx, TRACKED + ORPHANS, TRACKED, 8)
        .await
        .unwrap();
    // One tracked upload its client completed straight in S3.
    let (api, url) = scene.api(None).await;
    let direct = Client::new(&url).upload("direct.txt").await;
    api.stop().await;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    scene
        .stack
        .s3()
        .complete_multipart_upload()
        .bucket(scene.ctx.storage.bucket())
        .key(&direct.key)
        .upload_id(&direct.id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(&direct.etag)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();

    let p = scene.spawn(
        &["sweep", "--payload", r#"{"max_age_secs": 0}"#],
        Some(point),
    );
    p.kill_at(point).await;
    let items = scene.items().await;
    let count = |s| items.iter().filter(|u| u.status == s).count();
    println!(
        "killed at {point}: {} ACTIVE, {} ABORTING, {} ABORTED, {} S3 uploads left",
        count(Status::Active),
        count(Status::Aborting),
        count(Status::Aborted),
        scene.s3_uploads().await.len()
    );
    assert!(
        count(Status::Aborting) >= 1,
        "the kill left an abort half done"
    );
    assert!(
        count(Status::Active) >= 1,
        "the kill came mid-batch, with work left"
    );

    let summary = scene.sweep().await;
    println!("the next run: {summary}");
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["more_work"], false, "{summary}");
    let items = scene.items().await;
    let count = |s| items.iter().filter(|u| u.status == s).count();
    assert_eq!(
        (count(Status::Aborted), count(Status::Completed)),
        (TRACKED, 1)
    );
    assert_eq!(scene.item(&direct.id).await.status, Status::Completed);
    scene.assert_converged().await;
    assert!(scene.s3_uploads().await.is_empty());
}

#[tokio::test]
async fn a_sweep_killed_mid_batch_before_an_s3_abort_is_finished_by_the_next_run() {
    sweep_killed_at(&format!("{}#3", crashpoint::ABORT_BEFORE_S3)).await;
}

#[tokio::test]
async fn a_sweep_killed_mid_batch_after_an_s3_abort_is_finished_by_the_next_run() {
    sweep_killed_at(&format!("{}#5", crashpoint::ABORT_AFTER_S3)).await;
}
