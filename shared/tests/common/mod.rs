//! Test harness: contexts on the real local stack (Garage + DynamoDB Local,
//! started by `scripts/test.sh`), API Gateway events, and raw S3 checks.
#![allow(dead_code)]

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use partwise::api::{self, Function};
use partwise::{Config, Context};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The stack's variables; tests cannot run without them.
fn stack_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through scripts/test.sh, which starts Garage and DynamoDB Local")
    })
}

/// A context on the local stack, with setting overrides (`PARTWISE_*`).
pub async fn context(overrides: &[(&str, &str)]) -> Context {
    for v in [
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "PARTWISE_BUCKET",
        "PARTWISE_TABLE",
    ] {
        stack_env(v);
    }
    let overrides: HashMap<String, String> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config =
        Config::from_lookup(|k| overrides.get(k).cloned().or_else(|| std::env::var(k).ok()))
            .expect("test config");
    let sdk = aws_config::load_from_env().await;
    Context::new(config, &sdk)
}

/// A unique owner, so tests never see each other's uploads.
pub fn owner(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

/// An event as API Gateway sends it for `route_key` (`"GET /s3/multipart/{uploadId}"`).
pub struct Call {
    pub route_key: &'static str,
    pub path: Vec<(&'static str, String)>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<String>,
    pub owner: Option<String>,
}

impl Call {
    pub fn new(route_key: &'static str) -> Self {
        Call {
            route_key,
            path: vec![],
            query: vec![],
            body: None,
            owner: None,
        }
    }
    pub fn path(mut self, k: &'static str, v: impl ToString) -> Self {
        self.path.push((k, v.to_string()));
        self
    }
    pub fn query(mut self, k: &'static str, v: impl ToString) -> Self {
        self.query.push((k, v.to_string()));
        self
    }
    pub fn json(mut self, v: Value) -> Self {
        self.body = Some(v.to_string());
        self
    }
    pub fn raw_body(mut self, v: &str) -> Self {
        self.body = Some(v.to_string());
        self
    }
    pub fn owner(mut self, o: &str) -> Self {
        self.owner = Some(o.to_string());
        self
    }

    pub fn event(&self) -> ApiGatewayV2httpRequest {
        let (method, template) = self.route_key.split_once(' ').unwrap();
        let mut path = template.to_string();
        for (k, v) in &self.path {
            path = path.replace(&format!("{{{k}}}"), v);
        }
        let raw_query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut e = json!({
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": path,
            "rawQueryString": raw_query.join("&"),
            "headers": {"content-type": "application/json"},
            "queryStringParameters": self.query.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "pathParameters": self.path.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "requestContext": {
                "accountId": "123456789012", "apiId": "test", "domainName": "test.local", "requestId": "r",
                "routeKey": self.route_key, "stage": "$default", "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}
            },
            "isBase64Encoded": false
        });
        if let Some(b) = &self.body {
            e["body"] = json!(b);
        }
        if let Some(o) = &self.owner {
            e["requestContext"]["authorizer"] =
                json!({"jwt": {"claims": {"sub": o}, "scopes": null}});
        }
        serde_json::from_value(e).unwrap()
    }

    /// Runs the call through the function that serves its route.
    pub async fn send(self, ctx: &Context) -> (u16, Value) {
        let function = api::ROUTES
            .iter()
            .find(|r| r.is(self.route_key))
            .expect("known route")
            .function;
        self.send_to(ctx, function).await
    }

    pub async fn send_to(self, ctx: &Context, function: Function) -> (u16, Value) {
        let resp = api::handle(ctx, function, self.event()).await;
        let body = match resp.body {
            Some(aws_lambda_events::encodings::Body::Text(t)) => {
                serde_json::from_str(&t).unwrap_or(Value::String(t))
            }
            _ => Value::Null,
        };
        (resp.status_code as u16, body)
    }
}

pub const CREATE: &str = "POST /s3/multipart";
pub const SIGN: &str = "GET /s3/multipart/{uploadId}/{partNumber}";
pub const BATCH: &str = "GET /s3/multipart/{uploadId}/batch";
pub const LIST: &str = "GET /s3/multipart/{uploadId}";
pub const STATUS: &str = "GET /s3/multipart/{uploadId}/status";
pub const COMPLETE: &str = "POST /s3/multipart/{uploadId}/complete";
pub const ABORT: &str = "DELETE /s3/multipart/{uploadId}";
pub const PARAMS: &str = "GET /s3/params";

/// An upload started through the API.
pub struct Started {
    pub upload_id: String,
    pub key: String,
    pub body: Value,
}

pub async fn create(ctx: &Context, owner: &str, body: Value) -> Started {
    let (status, body) = Call::new(CREATE).owner(owner).json(body).send(ctx).await;
    assert_eq!(status, 200, "{body}");
    Started {
        upload_id: body["uploadId"].as_str().unwrap().to_string(),
        key: body["key"].as_str().unwrap().to_string(),
        body,
    }
}

pub async fn sign(ctx: &Context, owner: &str, up: &Started, n: u32) -> String {
    let (status, body) = Call::new(SIGN)
        .owner(owner)
        .path("uploadId", &up.upload_id)
        .path("partNumber", n)
        .query("key", &up.key)
        .send(ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    body["url"].as_str().unwrap().to_string()
}

/// PUTs bytes to a presigned URL over HTTP; returns (status, ETag). A 503
/// (S3's SlowDown; Garage's too, while its block writes catch up after a
/// heavy test) is tried again a few times, as S3 asks of every client.
pub async fn put(url: &str, bytes: Vec<u8>) -> (u16, Option<String>) {
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        let resp = http().put(url).body(bytes.clone()).send().await.unwrap();
        if resp.status().as_u16() == 503 && attempt < 5 {
            tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            continue;
        }
        let etag = resp
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_string());
        return (resp.status().as_u16(), etag);
    }
}

/// One client per process, without a connection pool: every `#[tokio::test]`
/// has its own runtime, and a pooled connection's task dies with the runtime
/// that opened it, so reusing it from the next test fails with `DispatchGone`.
pub fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .expect("reqwest client")
        })
        .clone()
}

/// Signs and uploads part `n`; returns its ETag.
pub async fn upload_part(
    ctx: &Context,
    owner: &str,
    up: &Started,
    n: u32,
    bytes: Vec<u8>,
) -> String {
    let url = sign(ctx, owner, up, n).await;
    let (status, etag) = put(&url, bytes).await;
    assert_eq!(status, 200, "PUT part {n}");
    etag.expect("ETag header")
}

/// Deterministic test bytes.
pub fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// S3's own view: does the multipart upload still exist?
pub async fn s3_upload_exists(ctx: &Context, up: &Started) -> bool {
    match ctx
        .storage
        .client()
        .list_parts()
        .bucket(ctx.storage.bucket())
        .key(&up.key)
        .upload_id(&up.upload_id)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) => {
            use aws_sdk_s3::error::ProvideErrorMetadata;
            assert_eq!(e.code(), Some("NoSuchUpload"), "{e:?}");
            false
        }
    }
}

/// S3's own view: the object's bytes, if it exists.
pub async fn s3_object(ctx: &Context, key: &str) -> Option<Vec<u8>> {
    match ctx
        .storage
        .client()
        .get_object()
        .bucket(ctx.storage.bucket())
        .key(key)
        .send()
        .await
    {
        Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => {
            assert!(
                e.as_service_error().is_some_and(|s| s.is_no_such_key()),
                "{e:?}"
            );
            None
        }
    }
}

/// Multipart uploads S3 lists under a prefix, all pages: (key, upload id).
pub async fn s3_uploads_under(ctx: &Context, prefix: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    let mut from = None;
    loop {
        let page = ctx
            .storage
            .list_uploads_page(prefix, from.as_ref())
            .await
            .unwrap();
        out.extend(page.uploads.into_iter().map(|u| (u.key, u.upload_id)));
        match page.next {
            Some(next) => from = Some(next),
            None => return out,
        }
    }
}

/// Completes `up` straight in S3 with the SDK, as a client holding its own S3
/// rights would (Uppy's `signRequest` and `getCredentials` modes): the API never hears of it.
pub async fn complete_in_s3(ctx: &Context, up: &Started, etag: &str) {
    let s3 = ctx.storage.client();
    complete_with(s3, ctx.storage.bucket(), &up.key, &up.upload_id, etag).await;
}

/// Completes a one-part upload with `s3`, whichever client the caller holds.
pub async fn complete_with(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    etag: &str,
) {
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(CompletedPart::builder().part_number(1).e_tag(etag).build())
                .build(),
        )
        .send()
        .await
        .expect("CompleteMultipartUpload straight in S3");
}
