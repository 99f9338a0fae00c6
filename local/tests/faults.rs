//! The API under injected faults: S3's and DynamoDB's error answers, reset
//! connections (before and after the request took effect), latency and stalls
//! past the SDK's timeouts, at 10 % and 30 % of requests, with uploads driven
//! concurrently through the real handlers and a client that retries 429/503.
//! Then a sweep under faults, one clean sweep, and S3 checked against the table.
//!
//! Uses the stack named by the environment (`scripts/test.sh` starts one), or
//! starts a private one. `PARTWISE_FAULT_UPLOADS` (200) sets the uploads per
//! scenario, `PARTWISE_FAULT_SEED` the seed (each scenario adds its own offset).

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_sdk_dynamodb::types::AttributeValue;
use futures::StreamExt;
use partwise::model::{Status, now_millis};
use partwise::sweep::{self, COMPLETING_LEASE, SweepRequest};
use partwise::{Config, Context, api, presign, storage, store, timeouts};
use partwise_local::Stack;
use partwise_local::faults::{Counts, Fault, FaultProxy, Rule, Service, rules};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

const CONCURRENCY: usize = 16;
/// A client's tries per call before the run is declared not converging.
/// Enough for a few interrupted completions' 30 s leases in a row at 1 s a
/// try: at 30 % resets, a retried claim's undo can itself be lost (seen once).
const MAX_TRIES: u32 = 150;

async fn stack() -> Stack {
    Stack::from_env_or_start()
        .await
        .unwrap_or_else(|e| panic!("local stack: {e}"))
}

fn upstream(stack: &Stack, var: &str) -> SocketAddr {
    let url = stack.var(var).unwrap_or_else(|| panic!("{var} unset"));
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("{var}={url}: {e}"))
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The handlers' context, its S3 and DynamoDB clients through the proxies
/// with the functions' own timeouts and retries; presigned URLs point at
/// Garage itself, as a browser's PUTs do not pass through our functions.
fn context(stack: &Stack, prefix: &str, s3: &FaultProxy, dynamodb: &FaultProxy) -> Context {
    let vars = stack.env().clone();
    let config = Config::from_lookup(|k| match k {
        "PARTWISE_KEY_PREFIX" => Some(prefix.to_string()),
        _ => vars.get(k).cloned(),
    })
    .expect("config");
    let sdk = stack.sdk_config();
    let s3_client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .endpoint_url(s3.url())
            .force_path_style(true)
            .timeout_config(timeouts::sdk_timeouts())
            .retry_config(timeouts::sdk_retries())
            .build(),
    );
    let dynamodb_client = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(dynamodb.url())
            .timeout_config(timeouts::sdk_timeouts())
            .retry_config(timeouts::sdk_retries())
            .build(),
    );
    Context {
        store: store::Store::new(
            dynamodb_client,
            &config.table,
            config.gsi_shards,
            config.retention,
        ),
        storage: storage::Storage::new(s3_client, &config.bucket),
        presigner: presign::Presigner::new(stack.s3().clone(), &config.bucket, &sdk),
        grant_keys: partwise::grants::KeySource::new(None, None, &sdk),
        config,
    }
}

/// An API Gateway event for `route_key`, as the local server builds them.
fn event(
    route_key: &str,
    path: &[(&str, &str)],
    owner: &str,
    body: Option<Value>,
) -> ApiGatewayV2httpRequest {
    let (method, template) = route_key.split_once(' ').unwrap();
    let mut raw = template.to_string();
    for (k, v) in path {
        raw = raw.replace(&format!("{{{k}}}"), v);
    }
    let mut e = json!({
        "version": "2.0", "routeKey": route_key, "rawPath": raw, "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "pathParameters": path.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "requestContext": {
            "accountId": "123456789012", "apiId": "faults", "domainName": "faults.local", "requestId": "r",
            "routeKey": route_key, "stage": "$default", "time": "26/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": raw, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "faults"},
            "authorizer": {"jwt": {"claims": {"sub": owner}, "scopes": null}}
        },
        "isBase64Encoded": false
    });
    if let Some(b) = body {
        e["body"] = json!(b.to_string());
    }
    serde_json::from_value(e).unwrap()
}

/// Everything the clients saw.
#[derive(Default)]
struct Seen {
    /// Answers by route and status, retries included.
    answers: BTreeMap<(String, u16), u64>,
    /// Retries (answers 429/503 followed by another try).
    retries: u64,
    /// The most tries one call needed.
    most_tries: u32,
    /// Answers that break the rule: neither a success nor a proper retryable error.
    violations: Vec<String>,
}

/// A client: calls until the answer is not 429/503, backing off up to
/// `Retry-After`; checks every retryable answer's shape on the way.
async fn call(
    ctx: &Context,
    seen: &Mutex<Seen>,
    route_key: &'static str,
    path: &[(&str, &str)],
    owner: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let route = api::ROUTES.iter().find(|r| r.is(route_key)).expect("route");
    for attempt in 1..=MAX_TRIES {
        let resp: ApiGatewayV2httpResponse = api::handle(
            ctx,
            route.function,
            event(route_key, path, owner, body.clone()),
        )
        .await;
        let status = resp.status_code as u16;
        let value = match &resp.body {
            Some(Body::Text(t)) => serde_json::from_str(t).unwrap_or(Value::String(t.clone())),
            _ => Value::Null,
        };
        let retry_after = resp
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        {
            let mut s = seen.lock().unwrap();
            *s.answers
                .entry((route_key.to_string(), status))
                .or_default() += 1;
            s.most_tries = s.most_tries.max(attempt);
            if status != 429 && status != 503 {
                return (status, value);
            }
            if retry_after.is_none()
                || !value["error"]["code"].is_string()
                || !value["message"].is_string()
            {
                s.violations.push(format!(
                    "{route_key}: {status} without Retry-After or JSON error: {value}"
                ));
            }
            s.retries += 1;
        }
        let cap = retry_after.unwrap_or(1).max(1) * 1000;
        tokio::time::sleep(Duration::from_millis((25u64 << attempt.min(6)).min(cap))).await;
    }
    seen.lock()
        .unwrap()
        .violations
        .push(format!("{route_key}: no success after {MAX_TRIES} tries"));
    (0, Value::Null)
}

/// What the client was told about one upload.
#[derive(Debug, Clone)]
struct Told {
    upload_id: String,
    key: String,
    size: u64,
    /// "completed" (with the ETag answered), "aborted", or "abandoned".
    fate: &'static str,
    etag: Option<String>,
}

/// One upload: create, sign, PUT to Garage, then complete, abort or walk away.
async fn upload(ctx: &Context, seen: &Mutex<Seen>, i: u64) -> Option<Told> {
    let owner = format!("owner{}", i % 8);
    let size = 1024 + (i * 7919) % 8192;
    let (status, created) = call(
        ctx,
        seen,
        "POST /s3/multipart",
        &[],
        &owner,
        Some(json!({"filename": format!("file {i}.bin"), "type": "application/octet-stream", "size": size})),
    )
    .await;
    if status != 200 {
        seen.lock()
            .unwrap()
            .violations
            .push(format!("create {i}: {status} {created}"));
        return None;
    }
    let upload_id = created["uploadId"].as_str().unwrap().to_string();
    let key = created["key"].as_str().unwrap().to_string();
    let (status, signed) = call(
        ctx,
        seen,
        "GET /s3/multipart/{uploadId}/{partNumber}",
        &[("uploadId", &upload_id), ("partNumber", "1")],
        &owner,
        None,
    )
    .await;
    if status != 200 {
        seen.lock()
            .unwrap()
            .violations
            .push(format!("sign {i}: {status} {signed}"));
        return None;
    }
    let bytes: Vec<u8> = (0..size)
        .map(|b| (b as u8).wrapping_mul(31).wrapping_add(i as u8))
        .collect();
    // Straight to Garage, not behind the proxy; retried on a 5xx as Uppy does
    // (Garage on two busy cores has answered one, once).
    let mut put = None;
    for _ in 0..3 {
        let r = http()
            .put(signed["url"].as_str().unwrap())
            .body(bytes.clone())
            .send()
            .await
            .expect("PUT to Garage");
        if !r.status().is_server_error() {
            put = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let put = put.expect("PUT to Garage: a 5xx three times");
    let status = put.status();
    assert_eq!(
        status,
        200,
        "PUT to Garage: {}",
        put.text().await.unwrap_or_default()
    );
    let fate = match i % 10 {
        0..=6 => "completed",
        7 | 8 => "aborted",
        _ => "abandoned",
    };
    let mut told = Told {
        upload_id,
        key,
        size,
        fate,
        etag: None,
    };
    let path = [("uploadId", told.upload_id.as_str())];
    match fate {
        "completed" => {
            let (status, done) = call(
                ctx,
                seen,
                "POST /s3/multipart/{uploadId}/complete",
                &path,
                &owner,
                Some(json!({})),
            )
            .await;
            if status != 200 || done["size"] != json!(size) {
                seen.lock()
                    .unwrap()
                    .violations
                    .push(format!("complete {i}: {status} {done}"));
                return None;
            }
            told.etag = done["etag"].as_str().map(str::to_string);
        }
        "aborted" => {
            let (status, done) = call(
                ctx,
                seen,
                "DELETE /s3/multipart/{uploadId}",
                &path,
                &owner,
                None,
            )
            .await;
            if status != 200 {
                seen.lock()
                    .unwrap()
                    .violations
                    .push(format!("abort {i}: {status} {done}"));
                return None;
            }
        }
        _ => {}
    }
    Some(told)
}

fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap()
        })
        .clone()
}

/// Every item under `prefix`: (upload id → (status, key, completed size, ETag, updated_at)).
async fn items(
    stack: &Stack,
    prefix: &str,
) -> HashMap<String, (Status, String, Option<u64>, Option<String>, i64)> {
    let mut out = HashMap::new();
    let mut start = None;
    loop {
        let page = stack
            .dynamodb()
            .scan()
            .table_name(stack.table())
            .filter_expression("begins_with(#k, :p)")
            .expression_attribute_names("#k", "key")
            .expression_attribute_values(":p", AttributeValue::S(prefix.into()))
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for i in page.items() {
            let s = |k: &str| i.get(k).and_then(|v| v.as_s().ok()).cloned();
            let n = |k: &str| {
                i.get(k)
                    .and_then(|v| v.as_n().ok())
                    .and_then(|v| v.parse::<i64>().ok())
            };
            let status = Status::parse(&s("status").unwrap()).unwrap();
            out.insert(
                s("upload_id").unwrap(),
                (
                    status,
                    s("key").unwrap(),
                    n("completed_size").map(|v| v as u64),
                    s("etag"),
                    n("updated_at").unwrap_or(0),
                ),
            );
        }
        match page.last_evaluated_key {
            Some(k) => start = Some(k),
            None => return out,
        }
    }
}

/// The figures of one scenario, printed (through `Debug`) for docs/failure-model.md.
#[derive(Debug)]
#[allow(dead_code)]
struct Figures {
    s3: Counts,
    dynamodb: Counts,
    seen_answers: BTreeMap<(String, u16), u64>,
    retries: u64,
    most_tries: u32,
    faulty_sweep: sweep::Summary,
    clean_sweep: sweep::Summary,
    checks: BTreeMap<&'static str, u64>,
}

async fn scenario(name: &str, seed_offset: u64, s3_rules: Vec<Rule>, dynamodb_rules: Vec<Rule>) {
    let stack = stack().await;
    let uploads = env_u64("PARTWISE_FAULT_UPLOADS", 200);
    let seed = env_u64("PARTWISE_FAULT_SEED", 20261126) + seed_offset;
    let s3 = FaultProxy::start(
        Service::S3,
        upstream(&stack, "AWS_ENDPOINT_URL_S3"),
        s3_rules,
        seed,
    )
    .await
    .unwrap();
    let dynamodb = FaultProxy::start(
        Service::DynamoDb,
        upstream(&stack, "AWS_ENDPOINT_URL_DYNAMODB"),
        dynamodb_rules,
        seed.wrapping_add(1),
    )
    .await
    .unwrap();
    let prefix = format!("faults-{name}-{}/", uuid::Uuid::new_v4().simple());
    let ctx = context(&stack, &prefix, &s3, &dynamodb);
    let seen = Mutex::new(Seen::default());

    let told: Vec<Told> = futures::stream::iter(0..uploads)
        .map(|i| upload(&ctx, &seen, i))
        .buffer_unordered(CONCURRENCY)
        .filter_map(|t| async move { t })
        .collect()
        .await;

    // A sweep while the faults go on: failures are counted, the run finishes.
    let sweep_all = |_: ()| SweepRequest {
        cutoff_ms: now_millis(),
        dry_run: false,
        prefix: prefix.clone(),
        limit: None,
    };
    let faulty_sweep = sweep::run(&ctx, &sweep_all(()), None).await;
    s3.set_enabled(false);
    dynamodb.set_enabled(false);
    let s3_counts = s3.counts();
    let dynamodb_counts = dynamodb.counts();
    let clean_sweep = sweep::run(&ctx, &sweep_all(()), None).await;

    // S3's truth against the table's, with clients that bypass the proxies.
    let mut checks: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut broken: Vec<String> = std::mem::take(&mut seen.lock().unwrap().violations);
    let table = items(&stack, &prefix).await;
    let direct = storage::Storage::new(stack.s3().clone(), stack.bucket());
    let now = now_millis();
    for (id, (status, key, size, _, updated)) in &table {
        match status {
            Status::Completed => {
                *checks
                    .entry("COMPLETED item: object there, size right (HeadObject)")
                    .or_default() += 1;
                match direct.head(key).await.unwrap() {
                    Some((_, got)) if Some(got) == *size => {}
                    other => broken.push(format!(
                        "COMPLETED {id}: object {other:?}, recorded size {size:?}"
                    )),
                }
            }
            Status::Aborted => {
                *checks
                    .entry("ABORTED item: no upload left (ListParts)")
                    .or_default() += 1;
                if direct.list_parts(key, id).await.unwrap().is_some() {
                    broken.push(format!("ABORTED {id} still has its S3 upload"));
                }
            }
            Status::Aborting => broken.push(format!("{id} left ABORTING")),
            Status::Completing if now - updated > COMPLETING_LEASE.as_millis() as i64 => {
                broken.push(format!("{id} COMPLETING past its lease"))
            }
            Status::Completing => *checks.entry("COMPLETING within its lease").or_default() += 1,
            Status::Active => broken.push(format!("{id} ACTIVE after a sweep with cutoff now")),
        }
    }
    let mut from = None;
    loop {
        let page = direct
            .list_uploads_page(&prefix, from.as_ref())
            .await
            .unwrap();
        for u in &page.uploads {
            *checks
                .entry("S3 upload left after the clean sweep (ListMultipartUploads)")
                .or_default() += 1;
            broken.push(format!(
                "S3 upload {} ({}) left: item {:?}",
                u.upload_id,
                u.key,
                table.get(&u.upload_id).map(|t| t.0)
            ));
        }
        match page.next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    let objects = stack
        .s3()
        .list_objects_v2()
        .bucket(stack.bucket())
        .prefix(&prefix)
        .into_paginator()
        .send()
        .collect::<Vec<_>>()
        .await;
    for page in objects {
        for o in page.unwrap().contents() {
            *checks
                .entry("object: a COMPLETED item knows it (ListObjectsV2)")
                .or_default() += 1;
            let key = o.key().unwrap_or_default();
            if !table
                .values()
                .any(|t| t.0 == Status::Completed && t.1 == key)
            {
                broken.push(format!("object {key} unknown to the table"));
            }
        }
    }
    for t in &told {
        *checks.entry("answer honest: item as answered").or_default() += 1;
        let item = table.get(&t.upload_id);
        let ok = match (t.fate, item) {
            ("completed", Some((Status::Completed, key, Some(size), etag, _))) => {
                *key == t.key
                    && *size == t.size
                    && etag.as_deref().map(|e| e.trim_matches('"'))
                        == t.etag.as_deref().map(|e| e.trim_matches('"'))
            }
            ("aborted", Some((Status::Aborted, ..))) => true,
            ("abandoned", Some((Status::Aborted, ..))) => true,
            _ => false,
        };
        if !ok {
            broken.push(format!(
                "{} answered {} but the item is {item:?}",
                t.upload_id, t.fate
            ));
        }
    }
    let seen = seen.into_inner().unwrap();
    let figures = Figures {
        s3: s3_counts,
        dynamodb: dynamodb_counts,
        seen_answers: seen.answers,
        retries: seen.retries,
        most_tries: seen.most_tries,
        faulty_sweep,
        clean_sweep,
        checks,
    };
    println!(
        "FIGURES {name} seed={seed} uploads={uploads} told={}: {figures:#?}",
        told.len()
    );
    assert!(
        broken.is_empty(),
        "{name} (seed {seed}): {} problems:\n{}",
        broken.len(),
        broken.join("\n")
    );
    assert_eq!(told.len() as u64, uploads, "every upload converged");
    assert!(
        figures.s3.injected_total() + figures.dynamodb.injected_total() > 0,
        "faults were injected"
    );
    assert_eq!(
        figures.clean_sweep.failed, 0,
        "the clean sweep finishes the work"
    );
    assert!(!figures.clean_sweep.more_work, "{:?}", figures.clean_sweep);
}

const ERRORS: &[Fault] = &[
    Fault::S3SlowDown,
    Fault::S3InternalError,
    Fault::DynamoThroughputExceeded,
    Fault::DynamoThrottling,
    Fault::DynamoInternalError,
];
const RESETS: &[Fault] = &[Fault::ResetBefore, Fault::ResetAfter];

fn both(faults: &[Fault], rate: f64) -> (Vec<Rule>, Vec<Rule>) {
    (
        rules::spread(faults, rate, Service::S3),
        rules::spread(faults, rate, Service::DynamoDb),
    )
}

/// Mostly latency, a fifth stalls: a stall holds the request past the SDK's
/// attempt timeout, then drops it.
fn slow(rate: f64) -> (Vec<Rule>, Vec<Rule>) {
    let rules = vec![
        Rule::new(Fault::Latency(Duration::from_millis(300)), rate * 0.8),
        Rule::new(
            Fault::Stall(timeouts::ATTEMPT + Duration::from_secs(1)),
            rate * 0.2,
        ),
    ];
    (rules.clone(), rules)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_at_10_percent() {
    let (s3, ddb) = both(ERRORS, 0.10);
    scenario("errors10", 1, s3, ddb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_at_30_percent() {
    let (s3, ddb) = both(ERRORS, 0.30);
    scenario("errors30", 2, s3, ddb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_before_and_after_at_10_percent() {
    let (s3, ddb) = both(RESETS, 0.10);
    scenario("resets10", 3, s3, ddb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resets_before_and_after_at_30_percent() {
    let (s3, ddb) = both(RESETS, 0.30);
    scenario("resets30", 4, s3, ddb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_stalls_at_10_percent() {
    let (s3, ddb) = slow(0.10);
    scenario("slow10", 5, s3, ddb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_stalls_at_30_percent() {
    let (s3, ddb) = slow(0.30);
    scenario("slow30", 6, s3, ddb).await;
}

/// The proxy itself: a reset after forwarding loses the answer of a write
/// that took effect; a reset before forwarding loses the write; an error
/// answer is the service's own, parsed by the SDK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_after_forwarding_loses_only_the_answer() {
    let stack = stack().await;
    let target = upstream(&stack, "AWS_ENDPOINT_URL_DYNAMODB");
    let put = |proxy: &FaultProxy, id: String| {
        let client = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&stack.sdk_config())
                .endpoint_url(proxy.url())
                .retry_config(aws_config::retry::RetryConfig::disabled())
                .build(),
        );
        let table = stack.table().to_string();
        async move {
            client
                .put_item()
                .table_name(table)
                .item("upload_id", AttributeValue::S(id))
                .send()
                .await
        }
    };
    let direct = stack.dynamodb().clone();
    let table = stack.table().to_string();
    let exists = |id: String| {
        let (direct, table) = (direct.clone(), table.clone());
        async move {
            direct
                .get_item()
                .table_name(table)
                .key("upload_id", AttributeValue::S(id))
                .consistent_read(true)
                .send()
                .await
                .unwrap()
                .item
                .is_some()
        }
    };
    for (fault, took_effect) in [(Fault::ResetAfter, true), (Fault::ResetBefore, false)] {
        let proxy = FaultProxy::start(
            Service::DynamoDb,
            target,
            vec![Rule::new(fault, 1.0).on("PutItem")],
            1,
        )
        .await
        .unwrap();
        let id = format!("faults-probe-{}", uuid::Uuid::new_v4().simple());
        let err = put(&proxy, id.clone()).await.unwrap_err();
        assert!(
            matches!(
                err,
                aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)
                    | aws_sdk_dynamodb::error::SdkError::ResponseError(_)
            ),
            "{fault:?}: {err:?}"
        );
        assert_eq!(exists(id).await, took_effect, "{fault:?}");
        assert_eq!(proxy.counts().injected[fault.kind()], 1);
        assert_eq!(proxy.counts().forwarded, u64::from(took_effect));
    }
    let proxy = FaultProxy::start(
        Service::DynamoDb,
        target,
        vec![Rule::new(Fault::DynamoThrottling, 1.0)],
        1,
    )
    .await
    .unwrap();
    let err = put(&proxy, "faults-probe-throttled".into())
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&err),
        Some("ThrottlingException")
    );
    proxy.set_enabled(false);
    let id = format!("faults-probe-{}", uuid::Uuid::new_v4().simple());
    put(&proxy, id.clone())
        .await
        .expect("forwarded untouched when off");
    assert!(exists(id).await);
}
