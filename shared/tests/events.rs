//! The sample events in `events/` are real invocations, so they can never rot:
//! every file is known here (an unknown one fails), parses as what Lambda
//! hands the function, is shaped like what API Gateway or EventBridge sends,
//! and runs through its handler against the local stack with the documented
//! success answer. Samples that name an upload (sign, list, status, complete,
//! abort) run on a real upload made by `initiate.json` for the sample's owner,
//! with real parts, the real upload id, key and ETags substituted in.
//!
//! Also here: `template.yaml` routes every path of `routes.rs` to the function
//! `routes.rs` names, puts the JWT authorizer on each, and sets only
//! environment variables that `config.rs` reads.

mod common;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use common::*;
use partwise::api::routes::match_route;
use partwise::api::{self, Operation, ROUTES, Route};
use partwise::model::Status;
use partwise::plan::PartPlan;
use partwise::{Context, keys, sweep};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

/// What a sample is.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// An HTTP API (payload 2.0) event for this route key.
    Api {
        route: &'static str,
        anonymous: bool,
    },
    /// EventBridge's scheduled event, as the sweep's schedule sends it.
    SweepScheduled,
    /// A manual sweep payload.
    SweepManual,
    /// A DynamoDB stream batch for `notify`: run through it by `tests/notify.rs`.
    Notify,
    /// S3's "Object Created" for `settle`: run through it by `tests/settle.rs`.
    Settle,
}

/// Every file in `events/`, and what it is.
const SAMPLES: &[(&str, Kind)] = &[
    ("initiate.json", api(CREATE)),
    (
        "initiate-anonymous.json",
        Kind::Api {
            route: CREATE,
            anonymous: true,
        },
    ),
    ("initiate-params.json", api(PARAMS)),
    ("sign-part.json", api(SIGN)),
    ("sign-part-batch.json", api(BATCH)),
    ("list-parts.json", api(LIST)),
    ("status.json", api(STATUS)),
    ("complete.json", api(COMPLETE)),
    ("abort.json", api(ABORT)),
    ("list-uploads.json", api(LIST_UPLOADS)),
    ("sign-part-batch-checked.json", api(BATCH_CHECKED)),
    ("issue-grant.json", api(ISSUE_GRANT)),
    ("download.json", api(DOWNLOAD)),
    ("quota.json", api("GET /quota")),
    ("start-puts.json", api("POST /s3/puts")),
    ("sweep-scheduled.json", Kind::SweepScheduled),
    ("sweep-manual.json", Kind::SweepManual),
    ("notify.json", Kind::Notify),
    ("settle-object-created.json", Kind::Settle),
    ("settle-s3-records.json", Kind::Settle),
];

const fn api(route: &'static str) -> Kind {
    Kind::Api {
        route,
        anonymous: false,
    }
}

const LIST_UPLOADS: &str = "GET /s3/multipart";
const BATCH_CHECKED: &str = "POST /s3/multipart/{uploadId}/batch";
const ISSUE_GRANT: &str = "POST /grants";
const DOWNLOAD: &str = "GET /s3/multipart/{uploadId}/download";

/// CRC32C of `bytes`, base64, as the `x-amz-checksum-crc32c` header carries it.
fn crc32c_b64(bytes: &[u8]) -> String {
    use base64::Engine;
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32;
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

/// The sample that starts the uploads the other samples act on.
const CREATE_SAMPLE: &str = "initiate.json";

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events")
}

fn read_json(name: &str) -> Value {
    let path = events_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"))
}

fn to_event(name: &str, v: &Value) -> ApiGatewayV2httpRequest {
    serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{name}: not an API Gateway payload 2.0 event: {e}"))
}

fn route(key: &str) -> &'static Route {
    ROUTES
        .iter()
        .find(|r| r.is(key))
        .unwrap_or_else(|| panic!("no route {key:?} in routes.rs"))
}

/// `encodeURIComponent`, as browsers (and so API Gateway's raw strings) encode.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).expect("percent escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8 query")
}

// ---------------------------------------------------------------------------
// Shape: no stack needed.
// ---------------------------------------------------------------------------

#[test]
fn every_event_file_is_known_and_every_route_has_a_sample() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(events_dir())
        .expect("events/ exists")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let known: BTreeSet<String> = SAMPLES.iter().map(|(n, _)| n.to_string()).collect();
    let unknown: Vec<_> = on_disk.difference(&known).collect();
    assert!(
        unknown.is_empty(),
        "events/ has files no test knows: {unknown:?}; add them to SAMPLES in shared/tests/events.rs"
    );
    let missing: Vec<_> = known.difference(&on_disk).collect();
    assert!(
        missing.is_empty(),
        "samples missing from events/: {missing:?}"
    );
    // A grant route runs its plain route's handler; a grant expires within
    // hours, so no sample file can hold one (tests/grants.rs signs them).
    for r in ROUTES.iter().filter(|r| !r.is_granted()) {
        assert!(
            SAMPLES
                .iter()
                .any(|(_, k)| matches!(k, Kind::Api { route, .. } if r.is(route))),
            "route {} has no sample in events/",
            r.key()
        );
    }
}

#[test]
fn api_samples_are_shaped_like_api_gateway_payload_2() {
    for (name, kind) in SAMPLES {
        let Kind::Api {
            route: key,
            anonymous,
        } = *kind
        else {
            continue;
        };
        let raw = read_json(name);
        let event = to_event(name, &raw);
        let route = route(key);
        let ctx = &event.request_context;
        assert_eq!(event.version.as_deref(), Some("2.0"), "{name}: version");
        assert_eq!(event.route_key.as_deref(), Some(key), "{name}: routeKey");
        assert_eq!(
            ctx.route_key.as_deref(),
            Some(key),
            "{name}: requestContext.routeKey"
        );
        assert_eq!(ctx.stage.as_deref(), Some("$default"), "{name}: stage");
        assert_eq!(
            ctx.http.method.as_str(),
            route.method,
            "{name}: http.method"
        );
        let raw_path = event.raw_path.as_deref().expect("rawPath");
        assert_eq!(
            ctx.http.path.as_deref(),
            Some(raw_path),
            "{name}: http.path"
        );

        // API Gateway would select this very route for this path, with these parameters.
        let (selected, params) = match_route(route.method, raw_path)
            .unwrap_or_else(|| panic!("{name}: no route matches {raw_path}"));
        assert_eq!(
            selected.key(),
            route.key(),
            "{name}: rawPath selects another route"
        );
        let params: BTreeMap<String, String> = params
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let given: BTreeMap<String, String> = event
            .path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(
            given, params,
            "{name}: pathParameters disagree with rawPath"
        );

        // queryStringParameters are rawQueryString decoded.
        let decoded: BTreeMap<String, String> = event
            .raw_query_string
            .as_deref()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect();
        let given: BTreeMap<String, String> = raw["queryStringParameters"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(
            given, decoded,
            "{name}: queryStringParameters disagree with rawQueryString"
        );

        // The caller, as the JWT authorizer (or its absence) leaves it.
        let jwt = ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref());
        if anonymous {
            assert!(jwt.is_none(), "{name}: an anonymous sample carries no JWT");
        } else {
            let claims = &jwt
                .unwrap_or_else(|| panic!("{name}: no JWT claims"))
                .claims;
            for claim in ["sub", "iss", "exp", "iat"] {
                assert!(
                    claims.get(claim).is_some_and(|v| !v.is_empty()),
                    "{name}: claim {claim} missing"
                );
            }
            assert!(claims["iss"].starts_with("https://"), "{name}: iss");
            let auth = event
                .headers
                .get("authorization")
                .expect("authorization header");
            assert!(
                auth.to_str().unwrap().starts_with("Bearer "),
                "{name}: bearer token"
            );
        }

        // Bodies are JSON, and content-length says how long.
        if let Some(body) = event.body.as_deref() {
            assert!(
                !event.is_base64_encoded,
                "{name}: JSON bodies arrive as text"
            );
            serde_json::from_str::<Value>(body)
                .unwrap_or_else(|e| panic!("{name}: body is not JSON: {e}"));
            let length = event.headers.get("content-length").expect("content-length");
            assert_eq!(
                length.to_str().unwrap(),
                body.len().to_string(),
                "{name}: content-length"
            );
        }
    }
}

#[test]
fn sweep_samples_have_the_documented_fields() {
    for (name, kind) in SAMPLES {
        let raw = read_json(name);
        match kind {
            Kind::SweepScheduled => {
                let e: EventBridgeEvent = serde_json::from_value(raw.clone())
                    .unwrap_or_else(|e| panic!("{name}: not an EventBridge event: {e}"));
                assert_eq!(e.detail_type, "Scheduled Event");
                assert_eq!(e.source, "aws.events");
                assert_eq!(e.version.as_deref(), Some("0"));
                assert!(
                    e.id.is_some() && e.account.is_some() && e.region.is_some() && e.time.is_some()
                );
                let resources = e.resources.expect("resources");
                assert_eq!(resources.len(), 1, "{name}: the schedule's rule");
                assert!(
                    resources[0].starts_with("arn:aws:events:") && resources[0].contains(":rule/")
                );
                assert_eq!(e.detail, json!({}));
            }
            Kind::SweepManual => {
                let fields = raw.as_object().expect("an object");
                let documented = ["older_than", "max_age_secs", "dry_run", "prefix", "limit"];
                for k in fields.keys() {
                    assert!(
                        documented.contains(&k.as_str()),
                        "{name}: undocumented field {k}"
                    );
                }
                assert!(
                    fields.contains_key("older_than") != fields.contains_key("max_age_secs"),
                    "{name}: exactly one of older_than and max_age_secs"
                );
                assert!(
                    raw["dry_run"].is_boolean()
                        && raw["prefix"].is_string()
                        && raw["limit"].is_u64()
                );
            }
            Kind::Api { .. } | Kind::Notify | Kind::Settle => {}
        }
    }
}

// ---------------------------------------------------------------------------
// template.yaml agrees with routes.rs and config.rs.
// ---------------------------------------------------------------------------

const TEMPLATE: &str = include_str!("../../template.yaml");
const CONFIG_RS: &str = include_str!("../src/config.rs");

/// `(METHOD, path, function binary)` of every function event.
type FunctionRoutes = BTreeSet<(String, String, String)>;
/// `(METHOD, path)` of the OpenAPI body, and whether it carries the JWT security.
type BodyRoutes = BTreeMap<(String, String), bool>;

/// `template.yaml`'s routes, read line by line (the layout is ours):
/// function events `(METHOD, path, Binary)`, and the OpenAPI body's
/// `(METHOD, path, has JWT security)`.
fn template_routes() -> (FunctionRoutes, BodyRoutes) {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let value = |l: &str| {
        l.split_once(':')
            .map(|(_, v)| v.trim().to_string())
            .unwrap()
    };
    let mut events = BTreeSet::new();
    let mut body = BTreeMap::new();
    let mut in_resources = false;
    let mut binary = String::new();
    let mut pending: Vec<(String, String)> = vec![];
    let mut method = None;
    let mut path = None;
    let mut in_paths = false;
    let mut body_path = String::new();
    let mut body_method = None::<String>;
    let flush = |pending: &mut Vec<(String, String)>, binary: &str, events: &mut BTreeSet<_>| {
        for (m, p) in pending.drain(..) {
            events.insert((m, p, binary.to_string()));
        }
    };
    for line in TEMPLATE.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if indent(line) == 0 {
            in_resources = t == "Resources:";
            continue;
        }
        if !in_resources {
            continue;
        }
        if indent(line) == 2 {
            // A new resource.
            flush(&mut pending, &binary, &mut events);
            binary.clear();
            in_paths = false;
            continue;
        }
        if indent(line) <= 8 {
            // A new event (under Events:), or a new key of DefinitionBody.
            in_paths = indent(line) == 8 && t == "paths:";
        }
        match t.split_once(':').map(|(k, _)| k) {
            Some("Binary") => binary = value(t),
            Some("Method") => method = Some(value(t).to_ascii_uppercase()),
            Some("Path") => path = Some(value(t)),
            _ => {}
        }
        if let (Some(m), Some(p)) = (&method, &path) {
            pending.push((m.clone(), p.clone()));
            method = None;
            path = None;
        }
        if in_paths {
            if indent(line) == 10 {
                body_path = t.trim_end_matches(':').to_string();
            } else if indent(line) == 12 {
                let m = t.trim_end_matches(':').to_ascii_uppercase();
                body.insert((m.clone(), body_path.clone()), false);
                body_method = Some(m);
            } else if indent(line) == 14 && t.starts_with("security:") {
                let m = body_method.clone().expect("a method before its security");
                let secured = t.contains("UseJwt") && t.contains("JwtAuthorizer");
                body.insert((m, body_path.clone()), secured);
            }
        }
    }
    flush(&mut pending, &binary, &mut events);
    (events, body)
}

#[test]
fn template_routes_each_path_to_its_function_behind_the_authorizer() {
    let (events, body) = template_routes();
    let expected: FunctionRoutes = ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_string(),
                r.function.name().to_string(),
            )
        })
        .collect();
    assert_eq!(
        events, expected,
        "template.yaml function Events vs routes.rs"
    );
    let expected: BodyRoutes = ROUTES
        .iter()
        .map(|r| ((r.method.to_string(), r.path.to_string()), !r.is_granted()))
        .collect();
    assert_eq!(
        body, expected,
        "every route must be in HttpApi's DefinitionBody with the JWT security (else it is public), but grant routes"
    );
}

#[test]
fn template_sets_only_variables_config_reads() {
    let in_template: BTreeSet<&str> = TEMPLATE
        .lines()
        .filter_map(|l| l.trim().split_once(':').map(|(k, _)| k))
        .filter(|k| k.starts_with("PARTWISE_"))
        .collect();
    assert!(in_template.contains("PARTWISE_BUCKET") && in_template.contains("PARTWISE_TABLE"));
    for name in &in_template {
        assert!(
            CONFIG_RS.contains(&format!("\"{name}\"")),
            "template.yaml sets {name}, which config.rs does not read"
        );
    }
}

// ---------------------------------------------------------------------------
// Running the samples against the local stack.
// ---------------------------------------------------------------------------

/// Runs an event through the function routes.rs names for its route key.
async fn invoke(ctx: &Context, name: &str, event: ApiGatewayV2httpRequest) -> (u16, Value) {
    let key = event.route_key.clone().unwrap_or_default();
    let resp = api::handle(ctx, route(&key).function, event).await;
    let header = |h: &str| {
        resp.headers
            .get(h)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/json", "{name}");
    assert_eq!(header("cache-control"), "no-store", "{name}");
    let body = match resp.body {
        Some(Body::Text(t)) => serde_json::from_str(&t).unwrap_or(Value::String(t)),
        other => panic!("{name}: unexpected body {other:?}"),
    };
    (resp.status_code as u16, body)
}

/// Replaces, in every string of `v`, each `from` with its `to`.
fn substitute(v: &mut Value, pairs: &[(String, String)]) {
    match v {
        Value::String(s) => {
            for (from, to) in pairs {
                if s.contains(from.as_str()) {
                    *s = s.replace(from.as_str(), to);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, pairs)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, pairs)),
        _ => {}
    }
}

fn owner_of(raw: &Value) -> Option<String> {
    raw["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
        .as_str()
        .map(str::to_string)
}

/// An upload started by `initiate.json`, as `owner`; with its declared size and plan.
async fn start(ctx: &Context, owner: &str) -> (Started, u64, PartPlan) {
    let mut raw = read_json(CREATE_SAMPLE);
    raw["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!(owner);
    let declared: Value = serde_json::from_str(raw["body"].as_str().unwrap()).unwrap();
    let size = declared["size"]
        .as_u64()
        .expect("initiate.json declares a size");
    let (status, body) = invoke(ctx, CREATE_SAMPLE, to_event(CREATE_SAMPLE, &raw)).await;
    assert_eq!(status, 200, "{CREATE_SAMPLE}: {body}");
    let plan = PartPlan {
        part_size: body["partSize"].as_u64().unwrap(),
        part_count: body["partCount"].as_u64().unwrap() as u32,
    };
    let started = Started {
        upload_id: body["uploadId"].as_str().unwrap().to_string(),
        key: body["key"].as_str().unwrap().to_string(),
        body,
    };
    (started, size, plan)
}

/// The sample with the real upload's id and key in place of its own.
fn retarget(name: &str, raw: &Value, up: &Started) -> Value {
    let sample_id = raw["pathParameters"]["uploadId"]
        .as_str()
        .expect("uploadId");
    let sample_key = raw["queryStringParameters"]["key"].as_str().expect("key");
    let mut v = raw.clone();
    substitute(
        &mut v,
        &[
            (encode(sample_key), encode(&up.key)),
            (sample_key.to_string(), up.key.clone()),
            (encode(sample_id), encode(&up.upload_id)),
            (sample_id.to_string(), up.upload_id.clone()),
        ],
    );
    let text = v.to_string();
    assert!(
        !text.contains(sample_id) && !text.contains(sample_key),
        "{name}: sample id or key left behind"
    );
    v
}

/// Aborts through the API, so no test upload outlives its test.
async fn clean_up(ctx: &Context, owner: Option<&str>, up: &Started) {
    let mut call = Call::new(ABORT)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key);
    if let Some(o) = owner {
        call = call.owner(o);
    }
    let (status, body) = call.send(ctx).await;
    assert_eq!(status, 200, "clean-up abort: {body}");
}

async fn tracked_status(ctx: &Context, up: &Started) -> Status {
    ctx.store
        .get(&up.upload_id)
        .await
        .unwrap()
        .expect("tracked")
        .status
}

#[tokio::test]
async fn api_samples_succeed_against_the_local_stack() {
    let ctx = context(&[]).await;
    let anonymous_ctx = context(&[("PARTWISE_ANONYMOUS", "true")]).await;
    let expiry = ctx.config.url_expiry.as_secs();
    for (name, kind) in SAMPLES {
        let Kind::Api {
            route: key,
            anonymous,
        } = *kind
        else {
            continue;
        };
        let raw = read_json(name);
        // Parses as the Lambda runtime would hand it over, before anything is changed.
        let sample = to_event(name, &raw);
        let owner = owner_of(&raw);
        let ctx = if anonymous { &anonymous_ctx } else { &ctx };
        let sample_body: Value = sample
            .body
            .as_deref()
            .map(|b| serde_json::from_str(b).unwrap())
            .unwrap_or(Value::Null);
        match route(key).operation {
            Operation::Create => {
                let (status, body) = invoke(ctx, name, sample).await;
                assert_eq!(status, 200, "{name}: {body}");
                let k = body["key"].as_str().unwrap();
                // An anonymous caller is an owner of their own, minted for this upload.
                let owner_seg = match owner.as_deref() {
                    Some(o) => keys::owner_segment(o),
                    None => partwise::api::anonymous::owner_in_key(&ctx.config.key_prefix, k)
                        .unwrap_or_else(|| panic!("{name}: no anonymous owner in {k}"))
                        .to_string(),
                };
                assert!(
                    k.starts_with(&format!("{}{owner_seg}/", ctx.config.key_prefix))
                        && k.ends_with(&format!("/{}", sample_body["filename"].as_str().unwrap())),
                    "{name}: key {k}"
                );
                let size = sample_body["size"].as_u64().unwrap();
                let plan = PartPlan::for_size(size, ctx.config.part_size).unwrap();
                assert_eq!(body["partSize"], json!(plan.part_size), "{name}");
                assert_eq!(body["partCount"], json!(plan.part_count), "{name}");
                let up = Started {
                    upload_id: body["uploadId"].as_str().unwrap().to_string(),
                    key: k.to_string(),
                    body: body.clone(),
                };
                assert!(
                    s3_upload_exists(ctx, &up).await,
                    "{name}: S3 has the upload"
                );
                assert_eq!(tracked_status(ctx, &up).await, Status::Active, "{name}");
                clean_up(ctx, owner.as_deref(), &up).await;
            }
            Operation::PostForm => {
                let (status, body) = invoke(ctx, name, sample).await;
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["method"], "POST", "{name}");
                assert_eq!(body["expires"], json!(expiry), "{name}");
                let fields = body["fields"].as_object().expect("fields");
                for f in [
                    "key",
                    "Content-Type",
                    "policy",
                    "x-amz-algorithm",
                    "x-amz-credential",
                    "x-amz-date",
                    "x-amz-signature",
                ] {
                    assert!(fields.contains_key(f), "{name}: form field {f}");
                }
                let query = &raw["queryStringParameters"];
                assert_eq!(fields["Content-Type"], query["type"], "{name}");
                let k = fields["key"].as_str().unwrap().to_string();
                assert!(
                    k.ends_with(&format!("/{}", query["filename"].as_str().unwrap())),
                    "{name}: {k}"
                );
                // The form works: a browser's POST of the file lands it.
                let size: usize = query["size"].as_str().unwrap().parse().unwrap();
                let mut form = reqwest::multipart::Form::new();
                for (f, v) in fields {
                    form = form.text(f.clone(), v.as_str().unwrap().to_string());
                }
                let file = reqwest::multipart::Part::bytes(bytes(size, 7))
                    .file_name(query["filename"].as_str().unwrap().to_string());
                let resp = http()
                    .post(body["url"].as_str().unwrap())
                    .multipart(form.part("file", file))
                    .send()
                    .await
                    .unwrap();
                assert!(
                    resp.status().is_success(),
                    "{name}: POST upload: {}",
                    resp.status()
                );
                assert_eq!(
                    s3_object(ctx, &k).await.map(|b| b.len()),
                    Some(size),
                    "{name}"
                );
            }
            Operation::SignPart => {
                let who = owner.clone().expect("owner");
                let (up, size, plan) = start(ctx, &who).await;
                let event = to_event(name, &retarget(name, &raw, &up));
                let (status, body) = invoke(ctx, name, event).await;
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["expires"], json!(expiry), "{name}");
                // The upload declared its size, so the URL signs the part's planned length.
                let n: u32 = raw["pathParameters"]["partNumber"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let len = plan.part_len(size, n) as usize;
                let (put_status, etag) = put(body["url"].as_str().unwrap(), bytes(len, 1)).await;
                assert_eq!(put_status, 200, "{name}: PUT to the signed URL");
                let held = ctx
                    .storage
                    .list_parts(&up.key, &up.upload_id)
                    .await
                    .unwrap()
                    .unwrap();
                let n: u32 = raw["pathParameters"]["partNumber"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert_eq!(held.len(), 1, "{name}");
                assert_eq!(
                    (held[0].part_number, Some(held[0].etag.clone())),
                    (n, etag),
                    "{name}"
                );
                clean_up(ctx, Some(&who), &up).await;
            }
            Operation::SignBatch => {
                let who = owner.clone().expect("owner");
                let (up, size, plan) = start(ctx, &who).await;
                let event = to_event(name, &retarget(name, &raw, &up));
                let (status, body) = invoke(ctx, name, event).await;
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["expires"], json!(expiry), "{name}");
                assert_eq!(
                    body.as_object().unwrap().keys().collect::<Vec<_>>(),
                    ["expires", "presignedUrls"],
                    "{name}: signPartsBatch's documented keys, no others"
                );
                let urls = body["presignedUrls"].as_object().expect("presignedUrls");
                let asked = raw["queryStringParameters"]["partNumbers"]
                    .as_str()
                    .unwrap();
                let expected: BTreeSet<String> = match asked.split_once('-') {
                    Some((a, b)) => (a.parse::<u32>().unwrap()..=b.parse().unwrap())
                        .map(|n| n.to_string())
                        .collect(),
                    None => asked.split(',').map(str::to_string).collect(),
                };
                assert_eq!(
                    urls.keys().cloned().collect::<BTreeSet<_>>(),
                    expected,
                    "{name}"
                );
                // Each URL signs its part's planned length (the upload declared its size).
                for (n, url) in urls {
                    let len = plan.part_len(size, n.parse().unwrap()) as usize;
                    assert_eq!(
                        put(url.as_str().unwrap(), bytes(len, 2)).await.0,
                        200,
                        "{name}"
                    );
                }
                let held = ctx
                    .storage
                    .list_parts(&up.key, &up.upload_id)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(held.len(), expected.len(), "{name}");
                clean_up(ctx, Some(&who), &up).await;
            }
            Operation::ListParts => {
                let who = owner.clone().expect("owner");
                let (up, size, plan) = start(ctx, &who).await;
                let len = plan.part_len(size, 1) as usize;
                let etag = upload_part(ctx, &who, &up, 1, bytes(len, 3)).await;
                let event = to_event(name, &retarget(name, &raw, &up));
                let (status, body) = invoke(ctx, name, event).await;
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(
                    body,
                    json!([{"PartNumber": 1, "ETag": etag, "Size": len}]),
                    "{name}"
                );
                clean_up(ctx, Some(&who), &up).await;
            }
            Operation::Status => {
                let who = owner.clone().expect("owner");
                let (up, size, plan) = start(ctx, &who).await;
                let len = plan.part_len(size, 1) as usize;
                upload_part(ctx, &who, &up, 1, bytes(len, 4)).await;
                let event = to_event(name, &retarget(name, &raw, &up));
                let (status, body) = invoke(ctx, name, event).await;
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["uploadId"], json!(up.upload_id), "{name}");
                assert_eq!(body["key"], json!(up.key), "{name}");
                assert_eq!(body["status"], "ACTIVE", "{name}");
                assert_eq!(body["size"], json!(size), "{name}");
                assert_eq!(
                    body["plan"],
                    json!({"partSize": plan.part_size, "partCount": plan.part_count}),
                    "{name}"
                );
                assert_eq!(
                    body["uploaded"],
                    json!({"parts": 1, "bytes": len}),
                    "{name}"
                );
                assert!(
                    body["initiatedAt"].is_i64() && body["completion"].is_null(),
                    "{name}"
                );
                clean_up(ctx, Some(&who), &up).await;
            }
            Operation::Complete => {
                let who = owner.clone().expect("owner");
                let (up, size, plan) = start(ctx, &who).await;
                let mut etags = BTreeMap::new();
                for n in 1..=plan.part_count {
                    let len = plan.part_len(size, n) as usize;
                    etags.insert(n, upload_part(ctx, &who, &up, n, bytes(len, n as u8)).await);
                }
                let mut v = retarget(name, &raw, &up);
                // The sample's part list, with the real ETags.
                let mut parts: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
                let listed: Vec<u32> = parts["parts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["PartNumber"].as_u64().unwrap() as u32)
                    .collect();
                assert_eq!(
                    listed,
                    (1..=plan.part_count).collect::<Vec<_>>(),
                    "{name}: parts vs the plan of {CREATE_SAMPLE}"
                );
                for p in parts["parts"].as_array_mut().unwrap() {
                    let n = p["PartNumber"].as_u64().unwrap() as u32;
                    p["ETag"] = json!(etags[&n]);
                }
                let text = parts.to_string();
                v["headers"]["content-length"] = json!(text.len().to_string());
                v["body"] = json!(text);
                let (status, body) = invoke(ctx, name, to_event(name, &v)).await;
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["key"], json!(up.key), "{name}");
                assert_eq!(body["size"], json!(size), "{name}");
                assert!(!body["etag"].as_str().unwrap().is_empty(), "{name}: etag");
                assert!(
                    !body["location"].as_str().unwrap().is_empty(),
                    "{name}: location"
                );
                let (_, stored) = ctx.storage.head(&up.key).await.unwrap().expect("object");
                assert_eq!(stored, size, "{name}: the object is whole");
                assert_eq!(tracked_status(ctx, &up).await, Status::Completed, "{name}");
            }
            Operation::ListUploads => {
                let who = owner.clone().expect("owner");
                let (older, size, plan) = start(ctx, &who).await;
                let len = plan.part_len(size, 1);
                upload_part(ctx, &who, &older, 1, bytes(len as usize, 8)).await;
                let (newer, _, _) = start(ctx, &who).await;
                let (status, body) = invoke(ctx, name, sample).await;
                assert_eq!(status, 200, "{name}: {body}");
                let listed = body["uploads"].as_array().expect("uploads");
                let limit: usize = raw["queryStringParameters"]["limit"]
                    .as_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(listed.len() <= limit, "{name}: at most limit");
                let position = |id: &str| {
                    listed
                        .iter()
                        .position(|u| u["uploadId"] == id)
                        .unwrap_or_else(|| panic!("{name}: {id} not listed: {body}"))
                };
                assert!(
                    position(&newer.upload_id) < position(&older.upload_id),
                    "{name}: newest first"
                );
                let owner_seg = keys::owner_segment(&who);
                for u in listed {
                    assert!(
                        u["key"]
                            .as_str()
                            .unwrap()
                            .contains(&format!("/{owner_seg}/")),
                        "{name}: only the caller's uploads: {u}"
                    );
                    assert_eq!(u["state"], "ACTIVE", "{name}: state=live");
                }
                assert_eq!(listed[position(&older.upload_id)]["bytesHeld"], len);
                assert_eq!(listed[position(&newer.upload_id)]["bytesHeld"], 0);
                clean_up(ctx, Some(&who), &older).await;
                clean_up(ctx, Some(&who), &newer).await;
            }
            Operation::IssueGrant => {
                let keys = "sample-grant-key-0123456789abcdef0123456789";
                let granting = context(&[("PARTWISE_GRANT_KEYS", keys)]).await;
                let (status, body) = invoke(&granting, name, sample).await;
                assert_eq!(status, 200, "{name}: {body}");
                let endpoint = body["endpoint"].as_str().unwrap();
                let grant = endpoint
                    .strip_prefix("https://k7x2m9q4pd.execute-api.eu-west-1.amazonaws.com/g/")
                    .unwrap_or_else(|| panic!("{name}: endpoint {endpoint}"));
                let claims = partwise::grants::GrantKeys::parse(keys)
                    .unwrap()
                    .open(grant, 0)
                    .unwrap();
                assert_eq!(Some(claims.owner), owner, "{name}");
                assert_eq!(claims.content_types, Some(vec!["image/*".to_string()]));
            }
            Operation::StartPuts => {
                let (status, body) = invoke(ctx, name, sample).await;
                assert_eq!(status, 200, "{name}: {body}");
                let files = sample_body["files"].as_array().unwrap();
                let ups = body["uploads"].as_array().expect("uploads");
                assert_eq!(ups.len(), files.len(), "{name}: one PUT per file");
                for (f, up) in files.iter().zip(ups) {
                    let k = up["key"].as_str().unwrap();
                    assert!(
                        k.ends_with(&format!("/{}", f["filename"].as_str().unwrap())),
                        "{name}: {k}"
                    );
                    assert_eq!(
                        up["headers"]["x-amz-checksum-crc32c"], f["checksumCRC32C"],
                        "{name}"
                    );
                    let item = ctx
                        .store
                        .get(up["uploadId"].as_str().unwrap())
                        .await
                        .unwrap()
                        .expect("tracked");
                    assert_eq!(
                        (item.status, item.size),
                        (Status::Active, f["size"].as_u64()),
                        "{name}"
                    );
                }
            }
            Operation::Quota => {
                // The owner's live uploads (the samples before left their
                // POST forms tracked and ACTIVE), the configured limits.
                let (status, body) = invoke(ctx, name, sample).await;
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["owner"], json!(owner), "{name}");
                let q = ctx.store.quotas();
                let live_states = [Status::Active, Status::Completing, Status::Aborting];
                let live = ctx
                    .store
                    .owner_page(
                        owner.as_deref().unwrap_or("anonymous"),
                        Some(&live_states),
                        None,
                        100,
                    )
                    .await
                    .unwrap()
                    .uploads
                    .len();
                assert_eq!(
                    body["quotas"]["liveUploads"],
                    json!({"usage": live, "limit": q.live_uploads}),
                    "{name}"
                );
                assert_eq!(
                    body["quotas"]["uploadsPerMinute"]["limit"],
                    json!(q.uploads_per_minute),
                    "{name}"
                );
            }
            Operation::SignBatchChecked => {
                let who = owner.clone().expect("owner");
                let up = create(
                    ctx,
                    &who,
                    json!({"filename": "checked.bin", "size": 1024, "checksumAlgorithm": "CRC32C"}),
                )
                .await;
                let part = bytes(1024, 9);
                let crc = crc32c_b64(&part);
                let mut v = retarget(name, &raw, &up);
                let mut asked: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
                asked["parts"] = json!([{"partNumber": 1, "checksum": crc}]);
                let text = asked.to_string();
                v["headers"]["content-length"] = json!(text.len().to_string());
                v["body"] = json!(text);
                let (status, body) = invoke(ctx, name, to_event(name, &v)).await;
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["expires"], json!(expiry), "{name}");
                assert_eq!(
                    body["headers"],
                    json!({"1": {"x-amz-checksum-crc32c": crc}}),
                    "{name}"
                );
                let resp = http()
                    .put(body["presignedUrls"]["1"].as_str().unwrap())
                    .header("x-amz-checksum-crc32c", &crc)
                    .body(part)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200, "{name}: PUT with its signed checksum");
                let held = ctx
                    .storage
                    .list_parts(&up.key, &up.upload_id)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    held[0].checksum.as_ref().map(|c| c.value.clone()),
                    Some(crc),
                    "{name}"
                );
                clean_up(ctx, Some(&who), &up).await;
            }
            // Boxed: the test's one future is near a debug thread's stack size.
            Operation::Download => {
                Box::pin(download_sample(
                    ctx,
                    name,
                    &raw,
                    owner.clone().expect("owner"),
                    expiry,
                ))
                .await
            }
            Operation::Abort => {
                let who = owner.clone().expect("owner");
                let (up, size, plan) = start(ctx, &who).await;
                let len = plan.part_len(size, 1) as usize;
                upload_part(ctx, &who, &up, 1, bytes(len, 5)).await;
                let event = to_event(name, &retarget(name, &raw, &up));
                let (status, body) = invoke(ctx, name, event).await;
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body, json!({"status": "ABORTED"}), "{name}");
                assert!(!s3_upload_exists(ctx, &up).await, "{name}: no part remains");
                assert_eq!(tracked_status(ctx, &up).await, Status::Aborted, "{name}");
            }
        }
    }
}

/// `download.json`: 409 before the upload completes, then a URL that GETs
/// the object byte for byte, and 404 for another owner.
async fn download_sample(ctx: &Context, name: &str, raw: &Value, who: String, expiry: u64) {
    let (up, size, plan) = start(ctx, &who).await;
    let mut whole = Vec::new();
    for n in 1..=plan.part_count {
        let part = bytes(plan.part_len(size, n) as usize, 10 + n as u8);
        upload_part(ctx, &who, &up, n, part.clone()).await;
        whole.extend(part);
    }
    let event = retarget(name, raw, &up);
    // Not completed yet: 409, and no URL.
    let (status, body) = invoke(ctx, name, to_event(name, &event)).await;
    assert_eq!(status, 409, "{name}: {body}");
    let (status, body) = Call::new(COMPLETE)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .owner(&who)
        .send(ctx)
        .await;
    assert_eq!(status, 200, "{name}: complete: {body}");
    let (status, body) = invoke(ctx, name, to_event(name, &event)).await;
    assert_eq!(status, 200, "{name}: {body}");
    assert_eq!(body["key"], json!(up.key), "{name}");
    assert_eq!(body["size"], json!(size), "{name}");
    assert_eq!(body["expires"], json!(expiry), "{name}");
    let got = http()
        .get(body["url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200, "{name}: GET the signed URL");
    assert_eq!(
        got.bytes().await.unwrap().to_vec(),
        whole,
        "{name}: byte-exact"
    );
    // Another owner's upload is answered like a missing one.
    let mut other = event.clone();
    other["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] = json!("someone-else");
    let (status, body) = invoke(ctx, name, to_event(name, &other)).await;
    assert_eq!(status, 404, "{name}: another owner's: {body}");
}

#[tokio::test]
async fn sweep_samples_run_against_the_local_stack() {
    // Scheduled: the configured max age, under a prefix of its own so only this
    // test's upload is stale.
    let prefix = format!("events-{}/", uuid::Uuid::new_v4().simple());
    let ctx = context(&[
        ("PARTWISE_KEY_PREFIX", prefix.as_str()),
        ("PARTWISE_SWEEP_MAX_AGE_SECS", "1"),
    ])
    .await;
    let who = owner("sweep-sample");
    let stale = create(&ctx, &who, json!({"filename": "left-behind.bin"})).await;
    upload_part(&ctx, &who, &stale, 1, bytes(1024, 6)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let summary = sweep::handle(&ctx, read_json("sweep-scheduled.json"), None)
        .await
        .expect("sweep-scheduled.json runs");
    assert!(!summary.dry_run);
    assert_eq!((summary.aborted, summary.failed), (1, 0), "{summary:?}");
    assert!(!s3_upload_exists(&ctx, &stale).await);
    assert_eq!(tracked_status(&ctx, &stale).await, Status::Aborted);

    // Manual: a dry run under the service prefix, which changes nothing.
    let ctx = context(&[]).await;
    let sample = read_json("sweep-manual.json");
    assert_eq!(sample["prefix"], json!(ctx.config.key_prefix));
    let summary = sweep::handle(&ctx, sample.clone(), None)
        .await
        .expect("sweep-manual.json runs");
    assert!(summary.dry_run, "{summary:?}");
    assert_eq!(
        summary.aborted + summary.orphans_aborted + summary.failed,
        0,
        "{summary:?}"
    );
    assert!(
        summary.would_abort <= sample["limit"].as_u64().unwrap(),
        "{summary:?}"
    );
}
