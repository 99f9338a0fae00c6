//! `openapi.yaml` describes the API exactly as implemented, so it can never rot:
//!
//! - its routes are exactly `routes.rs`'s, and exactly `template.yaml`'s (the
//!   functions' HttpApi events and the HttpApi's DefinitionBody), each served
//!   by the function `routes.rs` names and dispatched in `api/mod.rs` to the
//!   handler this file names;
//! - every error response is the shared `Error` schema (API Gateway's own 401,
//!   and its throttling 429, aside), whose codes and statuses are `error.rs`'s,
//!   and each operation documents exactly the statuses its handler's source
//!   can answer;
//! - every example validates against its schema; the success schemas hold
//!   exactly the JSON keys the handlers emit (read from their source), or
//!   accept the real serialized response types; the request schemas accept
//!   the sample events in `events/`.
//!
//! Pure: no network, no stack. `scripts/checks.sh` validates the document
//! itself with openapi-spec-validator.

use partwise::api::{Function, Operation, ROUTES, UploadSummary};
use partwise::error::Error;
use partwise::model::{ChecksumAlgorithm, Completion, ObjectChecksum, Status, Upload};
use partwise::plan::PartPlan;
use partwise::presign::{PolicyInput, PostForm, SignedUrl, sign_post_policy};
use partwise::storage::{Part, PartChecksum};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

const SPEC: &str = include_str!("../../openapi.yaml");
const TEMPLATE: &str = include_str!("../../template.yaml");
const MOD_RS: &str = include_str!("../src/api/mod.rs");
const INITIATE_RS: &str = include_str!("../src/api/initiate.rs");
const SIGN_RS: &str = include_str!("../src/api/sign.rs");
const PARTS_RS: &str = include_str!("../src/api/parts.rs");
const COMPLETE_RS: &str = include_str!("../src/api/complete.rs");
const ABORT_RS: &str = include_str!("../src/api/abort.rs");
const UPLOADS_RS: &str = include_str!("../src/api/uploads.rs");
const GRANT_RS: &str = include_str!("../src/api/grant.rs");
const DOWNLOAD_RS: &str = include_str!("../src/api/download.rs");
const QUOTA_RS: &str = include_str!("../src/api/quota.rs");
const PUTS_RS: &str = include_str!("../src/api/puts.rs");

const HTTP_METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// How a handler builds its success body.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Body {
    /// A `json!` literal in the handler's source: its keys are the schema's.
    Json,
    /// A serialized response type, checked by `typed_responses_fit_their_schemas`.
    Typed,
}

/// What `openapi.yaml` calls each operation, where its handler lives, and
/// whether Companion has the route (tag `Uppy Companion`) or Partwise adds it.
struct Handler {
    operation_id: &'static str,
    tag: &'static str,
    /// The module under `api/` and its source.
    module: &'static str,
    source: &'static str,
    function: &'static str,
    body: Body,
}

const COMPANION: &str = "Uppy Companion";
const PARTWISE: &str = "Partwise";

/// Exhaustive, so a new operation cannot go undocumented.
fn handler(op: Operation) -> Handler {
    let h = |operation_id, tag, module, source, function, body| Handler {
        operation_id,
        tag,
        module,
        source,
        function,
        body,
    };
    match op {
        Operation::Create => h(
            "createMultipartUpload",
            COMPANION,
            "initiate",
            INITIATE_RS,
            "create",
            Body::Json,
        ),
        Operation::PostForm => h(
            "getUploadParameters",
            COMPANION,
            "initiate",
            INITIATE_RS,
            "post_form",
            Body::Typed,
        ),
        Operation::SignPart => h("signPart", COMPANION, "sign", SIGN_RS, "one", Body::Typed),
        Operation::SignBatch => h(
            "signPartsBatch",
            PARTWISE,
            "sign",
            SIGN_RS,
            "batch",
            // Written as it signs (`sign::batch_answer`); `events.rs` holds
            // its keys to `presignedUrls` and `expires`, as documented.
            Body::Typed,
        ),
        Operation::ListParts => h(
            "listParts",
            COMPANION,
            "parts",
            PARTS_RS,
            "list",
            Body::Typed,
        ),
        Operation::Status => h(
            "getUploadStatus",
            PARTWISE,
            "parts",
            PARTS_RS,
            "status",
            Body::Json,
        ),
        Operation::Complete => h(
            "completeMultipartUpload",
            COMPANION,
            "complete",
            COMPLETE_RS,
            "complete",
            Body::Json,
        ),
        Operation::Abort => h(
            "abortMultipartUpload",
            COMPANION,
            "abort",
            ABORT_RS,
            "abort",
            Body::Json,
        ),
        Operation::ListUploads => h(
            "listUploads",
            PARTWISE,
            "uploads",
            UPLOADS_RS,
            "list",
            Body::Json,
        ),
        Operation::SignBatchChecked => h(
            "signPartsWithChecksums",
            PARTWISE,
            "sign",
            SIGN_RS,
            "batch_checked",
            Body::Json,
        ),
        Operation::IssueGrant => h(
            "issueGrant",
            PARTWISE,
            "grant",
            GRANT_RS,
            "issue",
            Body::Json,
        ),
        Operation::Download => h(
            "downloadUpload",
            PARTWISE,
            "download",
            DOWNLOAD_RS,
            "download",
            Body::Json,
        ),
        Operation::Quota => h(
            "getQuota",
            PARTWISE,
            "quota",
            QUOTA_RS,
            "usage",
            Body::Typed,
        ),
        Operation::StartPuts => h("startPuts", PARTWISE, "puts", PUTS_RS, "start", Body::Typed),
    }
}

// ---------------------------------------------------------------------------
// Reading the documents.
// ---------------------------------------------------------------------------

fn spec() -> Value {
    serde_yaml::from_str(SPEC).unwrap_or_else(|e| panic!("openapi.yaml is not YAML: {e}"))
}

type RouteSet = BTreeSet<(String, String)>;

/// `(METHOD, path)` → the operation object, for every operation in the spec.
fn operations(spec: &Value) -> BTreeMap<(String, String), &Value> {
    let paths = spec["paths"].as_object().expect("paths");
    let mut out = BTreeMap::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            if HTTP_METHODS.contains(&method.as_str()) {
                out.insert((method.to_ascii_uppercase(), path.clone()), op);
            } else {
                assert!(
                    method == "parameters" || method == "summary" || method == "description",
                    "{path}: unexpected key {method}"
                );
            }
        }
    }
    out
}

fn routes_rs() -> RouteSet {
    ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect()
}

/// `template.yaml`'s HTTP routes: the functions' HttpApi events as
/// `(METHOD, path, binary)`, and the HttpApi DefinitionBody's `(METHOD, path)`.
fn template_routes() -> (BTreeSet<(String, String, String)>, RouteSet) {
    let t: serde_yaml::Value =
        serde_yaml::from_str(TEMPLATE).unwrap_or_else(|e| panic!("template.yaml: {e}"));
    let text = |v: &serde_yaml::Value| v.as_str().map(str::to_string);
    let mut events = BTreeSet::new();
    let mut body = BTreeSet::new();
    for (name, res) in t["Resources"].as_mapping().expect("Resources") {
        let name = text(name).unwrap();
        match res["Type"].as_str() {
            Some("AWS::Serverless::Function") => {
                let Some(evs) = res["Properties"]["Events"].as_mapping() else {
                    continue;
                };
                for ev in evs.values().filter(|e| e["Type"] == "HttpApi") {
                    let binary = text(&res["Metadata"]["BuildProperties"]["Binary"])
                        .unwrap_or_else(|| panic!("{name}: no Metadata.BuildProperties.Binary"));
                    let p = &ev["Properties"];
                    events.insert((
                        text(&p["Method"]).expect("Method").to_ascii_uppercase(),
                        text(&p["Path"]).expect("Path"),
                        binary,
                    ));
                }
            }
            Some("AWS::Serverless::HttpApi") => {
                let paths = res["Properties"]["DefinitionBody"]["paths"]
                    .as_mapping()
                    .expect("HttpApi DefinitionBody.paths");
                for (path, item) in paths {
                    for method in item.as_mapping().expect("path item").keys() {
                        body.insert((
                            text(method).unwrap().to_ascii_uppercase(),
                            text(path).unwrap(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    (events, body)
}

// ---------------------------------------------------------------------------
// A small JSON Schema (2020-12 subset, as OpenAPI 3.1 uses it) validator.
// Unknown keywords fail loudly, so it can never pass by ignoring a rule.
// ---------------------------------------------------------------------------

struct Schemas<'a> {
    root: &'a Value,
}

/// Keywords that say nothing about validity.
const ANNOTATIONS: &[&str] = &[
    "description",
    "format",
    "title",
    "examples",
    "deprecated",
    "default",
];

impl<'a> Schemas<'a> {
    fn new(root: &'a Value) -> Self {
        Schemas { root }
    }

    /// Follows `$ref` (local `#/...` pointers) until a non-reference.
    fn resolve(&self, mut v: &'a Value) -> &'a Value {
        for _ in 0..16 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return v;
            };
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $refs: {r}"));
            v = self
                .root
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        panic!("$ref chain too long");
    }

    fn errors(&self, schema: &Value, v: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        self.check(schema, v, "$", &mut errs);
        errs
    }

    fn assert_valid(&self, schema: &Value, v: &Value, what: &str) {
        let errs = self.errors(schema, v);
        assert!(errs.is_empty(), "{what}: {errs:#?}\nvalue: {v:#}");
    }

    fn check(&self, schema: &Value, v: &Value, at: &str, errs: &mut Vec<String>) {
        let s = schema
            .as_object()
            .unwrap_or_else(|| panic!("{at}: schema is not an object: {schema}"));
        for (k, rule) in s {
            match k.as_str() {
                "$ref" => self.check(self.resolve(schema), v, at, errs),
                "type" => {
                    let types: Vec<&str> = match rule {
                        Value::String(t) => vec![t.as_str()],
                        Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                        _ => panic!("{at}: bad type {rule}"),
                    };
                    if !types.iter().any(|t| is_type(t, v)) {
                        errs.push(format!("{at}: {v} is not {types:?}"));
                    }
                }
                "enum" => {
                    if !rule.as_array().unwrap().contains(v) {
                        errs.push(format!("{at}: {v} is not one of {rule}"));
                    }
                }
                "const" => {
                    if rule != v {
                        errs.push(format!("{at}: {v} is not {rule}"));
                    }
                }
                "properties" | "additionalProperties" | "patternProperties" => {
                    // Checked together below, for objects only.
                }
                "required" => {
                    if let Some(o) = v.as_object() {
                        for name in rule.as_array().unwrap() {
                            let name = name.as_str().unwrap();
                            if !o.contains_key(name) {
                                errs.push(format!("{at}: missing required {name}"));
                            }
                        }
                    }
                }
                "items" => {
                    if let Some(a) = v.as_array() {
                        for (i, item) in a.iter().enumerate() {
                            self.check(rule, item, &format!("{at}[{i}]"), errs);
                        }
                    }
                }
                "minItems" | "maxItems" => {
                    if let Some(a) = v.as_array() {
                        let n = rule.as_u64().unwrap() as usize;
                        let ok = if k == "minItems" {
                            a.len() >= n
                        } else {
                            a.len() <= n
                        };
                        if !ok {
                            errs.push(format!("{at}: {} items breaks {k} {n}", a.len()));
                        }
                    }
                }
                "pattern" => {
                    // ECMA 262 regular expressions: jsonschema's, for this one keyword.
                    if v.is_string() && !jsonschema::is_valid(&json!({ "pattern": rule }), v) {
                        errs.push(format!("{at}: {v} does not match {rule}"));
                    }
                }
                "minLength" | "maxLength" => {
                    if let Some(t) = v.as_str() {
                        let n = rule.as_u64().unwrap() as usize;
                        let len = t.chars().count();
                        let ok = if k == "minLength" { len >= n } else { len <= n };
                        if !ok {
                            errs.push(format!("{at}: length {len} breaks {k} {n}"));
                        }
                    }
                }
                "minimum" | "maximum" => {
                    if let Some(n) = v.as_f64() {
                        let bound = rule.as_f64().unwrap();
                        let ok = if k == "minimum" {
                            n >= bound
                        } else {
                            n <= bound
                        };
                        if !ok {
                            errs.push(format!("{at}: {v} breaks {k} {rule}"));
                        }
                    }
                }
                "allOf" => {
                    for sub in rule.as_array().unwrap() {
                        self.check(sub, v, at, errs);
                    }
                }
                "anyOf" | "oneOf" => {
                    let passing = rule
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|sub| self.errors(sub, v).is_empty())
                        .count();
                    let ok = if k == "anyOf" {
                        passing >= 1
                    } else {
                        passing == 1
                    };
                    if !ok {
                        errs.push(format!("{at}: {passing} alternatives of {k} match {v}"));
                    }
                }
                other if ANNOTATIONS.contains(&other) => {}
                other => panic!("{at}: the test's validator does not know keyword {other:?}"),
            }
        }
        if let Some(o) = v.as_object() {
            let props = s.get("properties").and_then(Value::as_object);
            for (name, value) in o {
                // A name no property lists may match a pattern (ECMA 262, jsonschema's).
                let patterned = s
                    .get("patternProperties")
                    .and_then(Value::as_object)
                    .and_then(|pp| {
                        pp.iter().find(|(re, _)| {
                            jsonschema::is_valid(&json!({ "pattern": re }), &json!(name))
                        })
                    })
                    .map(|(_, sub)| sub);
                match props.and_then(|p| p.get(name)).or(patterned) {
                    Some(sub) => self.check(sub, value, &format!("{at}.{name}"), errs),
                    None => match s.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            errs.push(format!("{at}: unexpected property {name}"))
                        }
                        Some(Value::Bool(true)) | None => {}
                        Some(sub) => self.check(sub, value, &format!("{at}.{name}"), errs),
                    },
                }
            }
        }
    }
}

fn is_type(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        other => panic!("unknown type {other}"),
    }
}

// ---------------------------------------------------------------------------
// Helpers over operations.
// ---------------------------------------------------------------------------

/// The `application/json` media object of a response or request body.
fn json_media<'a>(s: &Schemas<'a>, holder: &'a Value, what: &str) -> &'a Value {
    let holder = s.resolve(holder);
    let content = holder["content"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: no content"));
    assert_eq!(
        content.keys().collect::<Vec<_>>(),
        ["application/json"],
        "{what}: every body is JSON"
    );
    &content["application/json"]
}

/// Every example of a media object: `example`, and each `examples.*.value`.
fn examples<'a>(s: &Schemas<'a>, media: &'a Value) -> Vec<(String, &'a Value)> {
    let mut out = Vec::new();
    if let Some(e) = media.get("example") {
        out.push(("example".to_string(), e));
    }
    if let Some(map) = media.get("examples").and_then(Value::as_object) {
        for (name, ex) in map {
            let value = s
                .resolve(ex)
                .get("value")
                .unwrap_or_else(|| panic!("example {name}: no value"));
            out.push((name.clone(), value));
        }
    }
    out
}

/// An operation's parameters, resolved: name → parameter object.
fn parameters<'a>(s: &Schemas<'a>, op: &'a Value) -> BTreeMap<String, &'a Value> {
    op.get("parameters")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let p = s.resolve(p);
                    (p["name"].as_str().unwrap().to_string(), p)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn status_codes(op: &Value) -> BTreeSet<u16> {
    op["responses"]
        .as_object()
        .expect("responses")
        .keys()
        .map(|k| k.parse().unwrap_or_else(|_| panic!("status {k:?}")))
        .collect()
}

// ---------------------------------------------------------------------------
// Reading the handlers' source.
// ---------------------------------------------------------------------------

/// Top-level functions of a source file: name → text (signature to closing brace).
fn functions(src: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = src.lines();
    while let Some(line) = lines.next() {
        let head = ["pub(crate) ", "pub ", "async "]
            .iter()
            .fold(line, |l, p| l.strip_prefix(p).unwrap_or(l));
        let Some(rest) = head.strip_prefix("fn ") else {
            continue;
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let mut text = vec![line];
        for l in lines.by_ref() {
            text.push(l);
            if l == "}" {
                break;
            }
        }
        out.push((name, text.join("\n")));
    }
    out
}

/// Whether `text` calls `name(` (not as a method or path segment of something else).
fn calls(text: &str, name: &str) -> bool {
    let needle = format!("{name}(");
    text.match_indices(&needle).any(|(i, _)| {
        !text[..i]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '.'))
    })
}

/// The handler's text, with every function of its file it calls, transitively
/// (the handler first, then in file order).
fn handler_text(h: &Handler) -> String {
    let fns = functions(h.source);
    let (_, first) = fns
        .iter()
        .find(|(n, t)| n == h.function && t.contains("pub async fn"))
        .unwrap_or_else(|| panic!("no pub async fn {} in api/{}.rs", h.function, h.module));
    let mut taken: BTreeSet<&str> = BTreeSet::from([h.function]);
    let mut text = first.clone();
    loop {
        let more: Vec<&(String, String)> = fns
            .iter()
            .filter(|(n, _)| !taken.contains(n.as_str()) && calls(&text, n))
            .collect();
        if more.is_empty() {
            return text;
        }
        for (n, t) in more {
            taken.insert(n);
            text.push('\n');
            text.push_str(t);
        }
    }
}

fn is_ident(s: &str) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every string literal of `text` that is an identifier: `(name, offset of
/// its opening quote, offset just past its closing quote)`.
fn ident_literals(text: &str) -> Vec<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut offset = 0;
    // Pieces between quotes alternate outside and inside literals (escaped
    // quotes do not occur around the identifiers looked for).
    for (i, piece) in text.split('"').enumerate() {
        if i % 2 == 1 && is_ident(piece) {
            out.push((piece.to_string(), offset - 1, offset + piece.len() + 1));
        }
        offset += piece.len() + 1;
    }
    out
}

/// The JSON keys a handler's source emits: `"key": value` inside `json!`
/// literals, and `body["key"] = ...` assignments.
fn emitted_keys(text: &str) -> BTreeSet<String> {
    ident_literals(text)
        .into_iter()
        .filter(|(_, start, end)| {
            let after = text[*end..].trim_start();
            let object_key = after.starts_with(':') && !after.starts_with("::");
            let index = text[..*start].ends_with('[') && after.starts_with("] =");
            object_key || index
        })
        .map(|(k, _, _)| k)
        .collect()
}

/// The keys of the first `json!({ ... })` object literal (its top level only):
/// the ones every success body carries.
fn first_literal_keys(text: &str) -> BTreeSet<String> {
    let start = text.find("json!({").expect("a json!({...}) literal") + "json!(".len();
    let mut depth = 0;
    let mut end = start;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' | '(' | '[' => depth += 1,
            '}' | ')' | ']' => {
                depth -= 1;
                if depth == 0 {
                    end = start + i + 1;
                    break;
                }
            }
            _ => {}
        }
    }
    let literal = &text[start..end];
    // Keys at depth 1 only.
    let mut keys = BTreeSet::new();
    for (k, _, e) in ident_literals(literal) {
        let before = &literal[..e];
        let d = before.matches(['{', '(', '[']).count() - before.matches(['}', ')', ']']).count();
        if d == 1 && literal[e..].trim_start().starts_with(':') {
            keys.insert(k);
        }
    }
    keys
}

/// Property names an inline schema defines, through nested inline objects,
/// arrays and combinators, stopping at `$ref`s (named schemas are checked
/// against their Rust types instead).
fn inline_properties(schema: &Value, out: &mut BTreeSet<String>) {
    if schema.get("$ref").is_some() {
        return;
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            out.insert(name.clone());
            inline_properties(sub, out);
        }
    }
    if let Some(items) = schema.get("items") {
        inline_properties(items, out);
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        for sub in schema
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            inline_properties(sub, out);
        }
    }
}

/// Statuses a handler's source shows it can answer, by what it calls.
const MARKERS: &[(&str, &[u16])] = &[
    ("req.owner(", &[401]),
    ("owned_upload(", &[400, 401, 404, 409]),
    ("owned(req", &[404]),
    ("multipart_only(", &[409]),
    ("owned_upload_and_parts(", &[400, 401, 404]),
    ("checked_upload_id(", &[400]),
    ("req.path(", &[400]),
    ("req.json", &[400, 413]),
    ("keys::sanitize_filename(", &[400]),
    ("validate::content_type(", &[400, 422]),
    ("validate::size(", &[413]),
    ("validate::part_number(", &[400]),
    ("validate::part_numbers(", &[400]),
    ("PartPlan::for_size(", &[413]),
    ("ctx.store.insert(", &[409]),
    ("insert_with_metadata(", &[403, 409, 413, 429]),
    ("insert_batch(", &[403, 409, 413, 429]),
    ("lifecycle::abort_over_limit(", &[409, 413]),
    ("lifecycle::abort(", &[404, 409]),
    ("lifecycle::complete(", &[404, 409, 422]),
    ("bad_request(", &[400]),
    ("Error::BadRequest", &[400]),
    ("Error::Unauthorized", &[401]),
    ("Error::Forbidden", &[403]),
    ("Error::NotFound", &[404]),
    ("Error::Conflict", &[409]),
    ("Error::TooLarge", &[413]),
    ("Error::Unprocessable", &[422]),
    ("Error::Throttled", &[429]),
    ("Error::Unavailable", &[503]),
];

/// Documented on every route: 401 (API Gateway's authorizer in JWT mode, or
/// the function without a caller identity), 429 (the
/// handlers' AWS calls, or the route throttling), 500 and 503 (the handlers'
/// AWS calls failing after retries), 414 and 431 (API Gateway's request-line
/// and header quotas).
const ALWAYS: &[u16] = &[401, 414, 429, 431, 500, 503];

/// One of each error, through an exhaustive match so a new variant must be
/// added here (and so to the spec).
fn every_error() -> Vec<Error> {
    let all = vec![
        Error::BadRequest("invalid JSON body".into()),
        Error::Unauthorized("this API needs an authenticated caller".into()),
        Error::Forbidden("not allowed".into()),
        Error::NotFound("no upload \"x\"".into()),
        Error::Conflict("the upload was aborted".into()),
        Error::TooLarge("too large".into()),
        Error::Unprocessable("not acceptable".into()),
        Error::Throttled("PutItem was throttled; retry later".into()),
        partwise::quota::Quota::LiveUploads.refusal(1000, 1000, 0),
        Error::Unavailable("PutItem is unavailable for the moment; retry later".into()),
        Error::UnknownRoute("no route".into()),
        Error::MethodNotAllowed {
            message: "/s3/multipart does not take TRACE; it takes GET, POST".into(),
            allow: "GET, POST".into(),
        },
        Error::UriTooLong("the request line is longer than 10240 bytes".into()),
        Error::HeadersTooLarge("the request line and headers are longer than 10240 bytes".into()),
        Error::Config("PARTWISE_BUCKET is required".into()),
        Error::Internal("secret detail".into()),
    ];
    for e in &all {
        match e {
            Error::BadRequest(_)
            | Error::Unauthorized(_)
            | Error::Forbidden(_)
            | Error::NotFound(_)
            | Error::Conflict(_)
            | Error::TooLarge(_)
            | Error::Unprocessable(_)
            | Error::Throttled(_)
            | Error::QuotaExceeded { .. }
            | Error::Unavailable(_)
            | Error::UnknownRoute(_)
            | Error::MethodNotAllowed { .. }
            | Error::UriTooLong(_)
            | Error::HeadersTooLarge(_)
            | Error::Config(_)
            | Error::Internal(_) => {}
        }
    }
    all
}

// ---------------------------------------------------------------------------
// Routes.
// ---------------------------------------------------------------------------

#[test]
fn routes_are_exactly_routes_rs_and_template_yaml() {
    let spec = spec();
    let documented: RouteSet = operations(&spec).into_keys().collect();
    assert_eq!(documented, routes_rs(), "openapi.yaml vs routes.rs");

    let (events, body) = template_routes();
    let event_routes: RouteSet = events
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    assert_eq!(
        documented, event_routes,
        "openapi.yaml vs template.yaml's HttpApi function events"
    );
    assert_eq!(
        documented, body,
        "openapi.yaml vs template.yaml's HttpApi DefinitionBody"
    );

    // The function behind each route: the same in all three.
    for ((method, path), op) in operations(&spec) {
        let route = ROUTES
            .iter()
            .find(|r| r.method == method && r.path == path)
            .unwrap();
        let function = op["x-partwise-function"].as_str().unwrap_or_else(|| {
            panic!("{method} {path}: x-partwise-function names the Lambda function")
        });
        assert_eq!(function, route.function.name(), "{method} {path}");
        assert!(
            events.contains(&(method.clone(), path.clone(), function.to_string())),
            "{method} {path}: template.yaml routes it to another function"
        );
    }
    let documented_functions: BTreeSet<&str> = operations(&spec)
        .values()
        .map(|op| op["x-partwise-function"].as_str().unwrap())
        .collect();
    for f in [
        Function::Initiate,
        Function::SignPart,
        Function::ListParts,
        Function::Complete,
        Function::Abort,
    ] {
        assert!(
            documented_functions.contains(f.name()),
            "{f:?} serves no documented route"
        );
    }
}

#[test]
fn each_route_is_the_operation_its_handler_implements() {
    let spec = spec();
    let s = Schemas::new(&spec);
    let ops = operations(&spec);
    let mut ids = BTreeSet::new();
    for route in ROUTES {
        let h = handler(route.operation);
        let op = ops[&(route.method.to_string(), route.path.to_string())];
        // Under a grant, the same operation by another id.
        let id = if route.is_granted() {
            format!("{}WithGrant", h.operation_id)
        } else {
            h.operation_id.to_string()
        };
        assert_eq!(op["operationId"], id, "{}: operationId", route.key());
        assert!(ids.insert(id.clone()), "{id} twice");
        assert_eq!(op["tags"], json!([h.tag]), "{}: tags", route.key());
        // mod.rs dispatches this operation to the handler named here.
        let dispatch = format!(
            "Operation::{:?} => Box::pin({}::{}(",
            route.operation, h.module, h.function
        );
        assert!(MOD_RS.contains(&dispatch), "api/mod.rs has no {dispatch:?}");

        // Path parameters: exactly the template's `{name}` segments.
        let params = parameters(&s, op);
        let in_path: BTreeSet<String> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(str::to_string)
            .collect();
        let declared: BTreeSet<String> = params
            .iter()
            .filter(|(_, p)| p["in"] == "path")
            .map(|(n, _)| n.clone())
            .collect();
        assert_eq!(declared, in_path, "{}: path parameters", route.key());
        // Every route naming an upload takes the optional `key`, as Uppy sends it.
        if in_path.contains("uploadId") {
            let key = params
                .get("key")
                .unwrap_or_else(|| panic!("{}: no key parameter", route.key()));
            assert_eq!(key["in"], "query");
            assert_eq!(key["required"], false, "{}: key is optional", route.key());
        }
        // Only the bodies the handler reads.
        let reads_body = handler_text(&h).contains("req.json");
        assert_eq!(
            op.get("requestBody").is_some(),
            reads_body,
            "{}: requestBody vs the handler reading one",
            route.key()
        );
    }
}

#[test]
fn every_route_requires_the_jwt_scheme_the_template_configures() {
    let spec = spec();
    assert_eq!(spec["security"], json!([{"JwtAuthorizer": []}]));
    let scheme = &spec["components"]["securitySchemes"]["JwtAuthorizer"];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"], &scheme["bearerFormat"]),
        (&json!("http"), &json!("bearer"), &json!("JWT"))
    );
    assert!(
        scheme["description"]
            .as_str()
            .unwrap()
            .contains("AnonymousUploads"),
        "the scheme says anonymous mode drops it"
    );
    for ((m, p), op) in operations(&spec) {
        if p.starts_with(partwise::api::routes::GRANT_PREFIX) {
            // The grant in the path is the credential.
            assert_eq!(op.get("security"), Some(&json!([])), "{m} {p}: no token");
        } else {
            assert!(
                op.get("security").is_none(),
                "{m} {p}: every route has the same security"
            );
        }
    }
    // The template's authorizer has this very name.
    assert!(
        TEMPLATE.contains("[{JwtAuthorizer: []}]") && TEMPLATE.contains("      JwtAuthorizer:")
    );
}

/// CORS and the content-type settings are deploy parameters, applied where
/// they act: `AllowedOrigins` on the HttpApi's CORS and every bucket CORS
/// rule alike, `RefuseSvg` in every function's environment.
#[test]
fn the_template_applies_allowed_origins_and_refuse_svg() {
    let t: serde_yaml::Value = serde_yaml::from_str(TEMPLATE).unwrap();
    let origins = &t["Parameters"]["AllowedOrigins"];
    assert_eq!(origins["Type"].as_str(), Some("CommaDelimitedList"));
    assert_eq!(origins["Default"].as_str(), Some("*"));
    let is_ref = |v: &serde_yaml::Value, name: &str| matches!(v, serde_yaml::Value::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some(name));
    let (mut apis, mut rules) = (0, 0);
    for (name, res) in t["Resources"].as_mapping().unwrap() {
        match res["Type"].as_str() {
            Some("AWS::Serverless::HttpApi") => {
                let cors = &res["Properties"]["CorsConfiguration"];
                assert!(
                    is_ref(&cors["AllowOrigins"], "AllowedOrigins"),
                    "{name:?}: {cors:?}"
                );
                apis += 1;
            }
            Some("AWS::S3::Bucket") => {
                for rule in res["Properties"]["CorsConfiguration"]["CorsRules"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                {
                    assert!(
                        is_ref(&rule["AllowedOrigins"], "AllowedOrigins"),
                        "{name:?}: {rule:?}"
                    );
                    rules += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        (apis, rules),
        (1, 1),
        "one API and one bucket rule, both narrowed"
    );
    // Nothing else in the template opens an origin by hand.
    assert!(
        !TEMPLATE.contains("AllowedOrigins: [\"*\"]")
            && !TEMPLATE.contains("AllowOrigins: [\"*\"]")
    );

    let svg = &t["Parameters"]["RefuseSvg"];
    assert_eq!(svg["Default"].as_str(), Some("false"));
    let env = &t["Globals"]["Function"]["Environment"]["Variables"];
    assert!(is_ref(&env["PARTWISE_REFUSE_SVG"], "RefuseSvg"), "{env:?}");
    assert!(
        is_ref(&env["PARTWISE_ANONYMOUS"], "AnonymousUploads"),
        "{env:?}"
    );
    for p in ["AllowedOrigins", "RefuseSvg"] {
        let grouped = t["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|g| {
                g["Parameters"]
                    .as_sequence()
                    .unwrap()
                    .iter()
                    .any(|n| n.as_str() == Some(p))
            });
        assert!(grouped, "{p} is in a parameter group");
    }
}

// ---------------------------------------------------------------------------
// Errors.
// ---------------------------------------------------------------------------

#[test]
fn the_error_schema_is_error_rs() {
    let spec = spec();
    let s = Schemas::new(&spec);
    let schema = &spec["components"]["schemas"]["Error"];
    let codes: BTreeSet<String> = every_error().iter().map(|e| e.code().to_string()).collect();
    let documented: BTreeSet<String> = schema["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(documented, codes, "Error.error.code enum vs error.rs");
    for e in every_error() {
        s.assert_valid(schema, &e.body(), &format!("{e:?}.body()"));
    }
    // And the validator is not lenient about it.
    assert!(!s.errors(schema, &json!({"message": "x"})).is_empty());
    assert!(
        !s.errors(
            schema,
            &json!({"error": {"code": "Nope", "message": "x"}, "message": "x"})
        )
        .is_empty()
    );
}

#[test]
fn error_responses_use_the_shared_error_schema() {
    let spec = spec();
    let s = Schemas::new(&spec);
    let error_ref = json!({"$ref": "#/components/schemas/Error"});
    let gateway_ref = json!({"$ref": "#/components/schemas/GatewayMessage"});
    let by_code: BTreeMap<String, u16> = every_error()
        .iter()
        .map(|e| (e.code().to_string(), e.status()))
        .collect();
    let handler_statuses: BTreeSet<u16> = by_code.values().copied().collect();
    for ((m, p), op) in operations(&spec) {
        for (status, response) in op["responses"].as_object().unwrap() {
            let code: u16 = status.parse().unwrap();
            if code < 400 {
                continue;
            }
            let what = format!("{m} {p} {status}");
            let r = response["$ref"].as_str().unwrap_or_else(|| {
                panic!("{what}: error responses are shared components/responses")
            });
            assert!(r.starts_with("#/components/responses/"), "{what}");
            let media = json_media(&s, response, &what);
            let schema = &media["schema"];
            match code {
                401 => assert_eq!(
                    schema,
                    &json!({"oneOf": [error_ref, gateway_ref]}),
                    "{what}: the handler's or API Gateway's authorizer"
                ),
                429 => assert_eq!(
                    schema,
                    &json!({"oneOf": [error_ref, gateway_ref]}),
                    "{what}: the handler's or API Gateway's throttling"
                ),
                _ => {
                    assert_eq!(schema, &error_ref, "{what}: the shared Error schema");
                    assert!(
                        handler_statuses.contains(&code),
                        "{what}: no error in error.rs has this status"
                    );
                }
            }
            let exs = examples(&s, media);
            assert!(!exs.is_empty(), "{what}: no example");
            for (name, ex) in exs {
                s.assert_valid(schema, ex, &format!("{what} example {name}"));
                // An Error example is what error.rs answers with for this status.
                if let Some(c) = ex["error"]["code"].as_str() {
                    assert_eq!(by_code.get(c), Some(&code), "{what}: {c} is not a {code}");
                    assert_eq!(ex["message"], ex["error"]["message"], "{what}");
                }
            }
        }
    }
}

#[test]
fn each_operation_documents_the_statuses_its_handler_can_answer() {
    let spec = spec();
    let ops = operations(&spec);
    for route in ROUTES {
        let h = handler(route.operation);
        let text = handler_text(&h);
        let mut expected: BTreeSet<u16> = ALWAYS.iter().copied().collect();
        expected.insert(200);
        for (marker, statuses) in MARKERS {
            if text.contains(marker) {
                expected.extend(statuses.iter());
            }
        }
        let documented = status_codes(ops[&(route.method.to_string(), route.path.to_string())]);
        assert_eq!(
            documented,
            expected,
            "{} ({}::{}): documented statuses vs what its source can answer",
            route.key(),
            h.module,
            h.function
        );
    }
}

// ---------------------------------------------------------------------------
// Success bodies and examples.
// ---------------------------------------------------------------------------

fn success_schema<'a>(s: &Schemas<'a>, op: &'a Value, what: &str) -> &'a Value {
    let ok = &op["responses"]["200"];
    assert!(ok.is_object(), "{what}: no 200 response");
    &json_media(s, ok, what)["schema"]
}

#[test]
fn every_example_fits_its_schema() {
    let spec = spec();
    let s = Schemas::new(&spec);
    let mut checked = 0;
    for ((m, p), op) in operations(&spec) {
        let mut media = Vec::new();
        for (status, response) in op["responses"].as_object().unwrap() {
            media.push((format!("{m} {p} {status}"), json_media(&s, response, &p)));
        }
        if let Some(body) = op.get("requestBody") {
            media.push((format!("{m} {p} request"), json_media(&s, body, &p)));
        }
        for (what, media) in media {
            let exs = examples(&s, media);
            assert!(!exs.is_empty(), "{what}: no example");
            for (name, ex) in exs {
                s.assert_valid(&media["schema"], ex, &format!("{what} example {name}"));
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} examples");
}

#[test]
fn success_schemas_hold_exactly_the_keys_the_handlers_emit() {
    let spec = spec();
    let s = Schemas::new(&spec);
    let ops = operations(&spec);
    for route in ROUTES {
        let h = handler(route.operation);
        let what = format!("{} ({}::{})", route.key(), h.module, h.function);
        let text = handler_text(&h);
        let emitted = emitted_keys(&text);
        let schema = s.resolve(success_schema(
            &s,
            ops[&(route.method.to_string(), route.path.to_string())],
            &what,
        ));
        match h.body {
            Body::Typed => assert!(
                emitted.is_empty(),
                "{what}: builds JSON by hand ({emitted:?}); make it Body::Json here"
            ),
            Body::Json => {
                let mut documented = BTreeSet::new();
                inline_properties(schema, &mut documented);
                assert_eq!(
                    documented, emitted,
                    "{what}: schema properties vs handler keys"
                );
                assert_eq!(
                    schema["additionalProperties"], false,
                    "{what}: no undocumented keys"
                );
                let required: BTreeSet<String> = schema["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect();
                assert_eq!(
                    required,
                    first_literal_keys(&text),
                    "{what}: required = the keys every answer carries"
                );
            }
        }
    }
}

#[test]
fn typed_responses_fit_their_schemas() {
    let spec = spec();
    let s = Schemas::new(&spec);
    let named = |n: &str| &spec["components"]["schemas"][n];

    // GET /s3/multipart/{uploadId}/{partNumber}: presign::SignedUrl.
    let url = "https://b.s3.eu-west-1.amazonaws.com/k?partNumber=1&uploadId=u&X-Amz-Signature=0";
    let signed = SignedUrl {
        url: url.into(),
        expires: 3600,
        headers: BTreeMap::new(),
    };
    s.assert_valid(named("SignedUrl"), &value(&signed), "SignedUrl");
    assert!(
        value(&signed).get("headers").is_none(),
        "no headers without a checksum, as Companion answers"
    );
    let checked = SignedUrl {
        headers: BTreeMap::from([("x-amz-checksum-crc32c".into(), "yZRlqg==".into())]),
        ..signed.clone()
    };
    s.assert_valid(
        named("SignedUrl"),
        &value(&checked),
        "SignedUrl with headers",
    );

    // GET /s3/params: presign::PostForm with real signed fields, with and
    // without a session token.
    for token in [Some("IQoJb3JpZ2luX2Vj"), None] {
        let fields = sign_post_policy(&PolicyInput {
            bucket: "b",
            key: "uploads/alice/0193/floor-plan.pdf",
            content_type: "application/pdf",
            max_size: 100 << 20,
            expiry: Duration::from_secs(3600),
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_598_163),
            region: "eu-west-1",
            access_key: "ASIAEXAMPLE",
            secret_key: "secret",
            session_token: token,
            metadata: &[("project".to_string(), "apollo".to_string())].into(),
        })
        .unwrap();
        assert_eq!(fields["x-amz-meta-project"], "apollo");
        let form = PostForm {
            method: "POST",
            url: "https://b.s3.eu-west-1.amazonaws.com".into(),
            fields,
            expires: 3600,
        };
        s.assert_valid(named("PostForm"), &value(&form), "PostForm");
    }

    // POST /s3/puts: api::puts::PutsAnswer.
    let puts = partwise::api::puts::PutsAnswer {
        uploads: vec![partwise::api::puts::StartedPut {
            key: "uploads/alice/0193/notes.txt".into(),
            upload_id: "put:0193c4a2e9a13c5d7e9f1b3d5f7a9c1e".into(),
            method: "PUT",
            url: url.into(),
            headers: BTreeMap::from([("x-amz-checksum-crc32c".into(), "yZRlqg==".into())]),
            expires: 3600,
        }],
    };
    s.assert_valid(named("StartPutsResult"), &value(&puts), "PutsAnswer");

    // GET /s3/multipart/{uploadId}: Vec<storage::Part>, the documented array.
    let ops = operations(&spec);
    let list = success_schema(
        &s,
        ops[&("GET".to_string(), "/s3/multipart/{uploadId}".to_string())],
        "listParts",
    );
    let parts = vec![
        Part {
            part_number: 1,
            etag: "\"9b2cf535f27731c974343645a3985328\"".into(),
            size: 16 << 20,
            checksum: None,
        },
        Part {
            part_number: 2,
            etag: "\"6f1ed002ab5595859014ebf0951522d9\"".into(),
            size: 4 << 20,
            checksum: None,
        },
    ];
    s.assert_valid(list, &value(&parts), "Vec<Part>");
    // With checksums: S3's own field for each algorithm, beside the others.
    for a in ChecksumAlgorithm::ALL {
        let p = Part {
            checksum: Some(PartChecksum {
                algorithm: a,
                value: "yZRlqg==".into(),
            }),
            ..parts[0].clone()
        };
        let v = value(&p);
        assert_eq!(v[a.part_field()], "yZRlqg==", "{v}");
        s.assert_valid(list, &json!([v]), "Part with a checksum");
    }

    // The named parts of the hand-built bodies: plan, completion, states.
    for size in [0, 20 << 20, 5 << 40] {
        let plan = PartPlan::for_size(size, 16 << 20).unwrap();
        s.assert_valid(named("PartPlan"), &value(&plan), "PartPlan");
        s.assert_valid(
            named("CreateUploadResult"),
            &json!({"key": "k", "uploadId": "u", "partSize": plan.part_size, "partCount": plan.part_count}),
            "a plan in CreateUploadResult",
        );
    }
    let completion = Completion {
        etag: "\"3858f62230ac3c915f300c664312c11f-2\"".into(),
        size: 20 << 20,
        location: "uploads/alice/0193/x.mp4".into(),
        checksum: None,
    };
    s.assert_valid(named("Completion"), &value(&completion), "Completion");
    let checksummed = Completion {
        checksum: Some(ObjectChecksum {
            algorithm: ChecksumAlgorithm::Crc32c,
            checksum_type: ChecksumAlgorithm::Crc32c.checksum_type().into(),
            value: "Qm9Jdw==-2".into(),
        }),
        ..completion.clone()
    };
    s.assert_valid(
        named("Completion"),
        &value(&checksummed),
        "Completion with a checksum",
    );
    // The algorithms and checksum types the spec names are model.rs's.
    let algorithms: Vec<Value> = ChecksumAlgorithm::ALL.iter().map(value).collect();
    assert_eq!(
        named("ObjectChecksum")["properties"]["algorithm"]["enum"],
        Value::Array(algorithms.clone())
    );
    let mut with_null = algorithms.clone();
    with_null.push(Value::Null);
    assert_eq!(
        named("CreateUploadRequest")["properties"]["checksumAlgorithm"]["enum"],
        Value::Array(with_null)
    );
    for a in ChecksumAlgorithm::ALL {
        s.assert_valid(
            &named("ObjectChecksum")["properties"]["type"],
            &json!(a.checksum_type()),
            "checksum type",
        );
    }

    // GET /s3/multipart: api::UploadSummary, bare and with every option.
    let upload = Upload {
        upload_id: "u".into(),
        key: "uploads/alice/0193/x.mp4".into(),
        owner: "alice".into(),
        status: Status::Active,
        initiated_at: 1_795_598_149_117,
        updated_at: 1_795_598_149_117,
        filename: "x.mp4".into(),
        content_type: "video/mp4".into(),
        size: None,
        plan: None,
        completion: None,
        expires_at: None,
        checksum: None,
        kind: partwise::model::UploadKind::Multipart,
        url_expires_at: None,
    };
    let bare = value(&UploadSummary::new(&upload, None));
    s.assert_valid(named("UploadSummary"), &bare, "UploadSummary");
    assert!(bare["size"].is_null() && bare.get("bytesHeld").is_none());
    let full = Upload {
        size: Some(20 << 20),
        plan: Some(PartPlan::for_size(20 << 20, 16 << 20).unwrap()),
        checksum: Some(ChecksumAlgorithm::Sha256),
        status: Status::Completed,
        ..upload.clone()
    };
    let full = value(&UploadSummary::new(&full, Some(16 << 20)));
    s.assert_valid(named("UploadSummary"), &full, "UploadSummary, every field");
    s.assert_valid(
        named("UploadList"),
        &json!({"uploads": [bare, full], "next": "eyJvIjoiYSJ9"}),
        "UploadList",
    );
    let states: Vec<Value> = Status::ALL.iter().map(value).collect();
    assert_eq!(
        named("UploadState")["enum"],
        Value::Array(states.clone()),
        "UploadState vs model::Status"
    );
    for st in &states {
        s.assert_valid(named("UploadState"), st, "Status");
    }

    // The validator is strict: a response type does not fit another's schema.
    assert!(!s.errors(named("PostForm"), &value(&signed)).is_empty());
    assert!(!s.errors(named("UploadSummary"), &value(&signed)).is_empty());
    assert!(!s.errors(named("SignedUrl"), &value(&completion)).is_empty());
    assert!(!s.errors(list, &value(&signed)).is_empty());
}

fn value<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("serializes")
}

#[test]
fn the_create_example_carries_the_plan_the_code_makes() {
    let spec = spec();
    let op = &spec["paths"]["/s3/multipart"]["post"];
    let request = &op["requestBody"]["content"]["application/json"]["examples"]["uppy"]["value"];
    let answer =
        &op["responses"]["200"]["content"]["application/json"]["examples"]["uppy"]["value"];
    let config = partwise::Config::from_lookup(|k| match k {
        "PARTWISE_BUCKET" | "PARTWISE_TABLE" => Some("x".into()),
        _ => None,
    })
    .unwrap();
    let plan = PartPlan::for_size(request["size"].as_u64().unwrap(), config.part_size).unwrap();
    assert_eq!(
        (answer["partSize"].as_u64(), answer["partCount"].as_u64()),
        (Some(plan.part_size), Some(plan.part_count as u64)),
        "the example's plan at the default part size"
    );
}

// ---------------------------------------------------------------------------
// The sample events are requests the spec accepts.
// ---------------------------------------------------------------------------

#[test]
fn sample_events_are_requests_the_spec_accepts() {
    let spec = spec();
    let s = Schemas::new(&spec);
    let ops = operations(&spec);
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("events/") {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let Some(route_key) = raw["routeKey"].as_str() else {
            continue; // the sweep's samples
        };
        let route = ROUTES
            .iter()
            .find(|r| r.is(route_key))
            .unwrap_or_else(|| panic!("{name}: no route {route_key}"));
        seen.insert(route.key());
        let op = ops[&(route.method.to_string(), route.path.to_string())];
        let params = parameters(&s, op);

        // Query parameters: each documented (deepObject `name[...]` included),
        // each value fitting its schema, none required missing.
        let query = raw["queryStringParameters"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (k, v) in &query {
            let base = k.split_once('[').map_or(k.as_str(), |(b, _)| b);
            let p = params
                .get(base)
                .filter(|p| p["in"] == "query")
                .unwrap_or_else(|| panic!("{name}: query parameter {k} is not documented"));
            if base != k {
                assert_eq!(p["style"], "deepObject", "{name}: {k}");
                continue;
            }
            let text = v.as_str().unwrap();
            let schema = s.resolve(&p["schema"]);
            let value = match schema["type"].as_str() {
                Some("integer") => json!(
                    text.parse::<u64>()
                        .unwrap_or_else(|_| panic!("{name}: {k}={text} is not an integer"))
                ),
                _ => json!(text),
            };
            s.assert_valid(schema, &value, &format!("{name}: query {k}"));
        }
        for (n, p) in &params {
            if p["in"] == "query" && p["required"] == true {
                assert!(query.contains_key(n), "{name}: required {n} missing");
            }
        }
        for (k, v) in raw["pathParameters"].as_object().into_iter().flatten() {
            let p = params
                .get(k)
                .filter(|p| p["in"] == "path")
                .unwrap_or_else(|| panic!("{name}: path parameter {k} is not documented"));
            let text = v.as_str().unwrap();
            let value = match p["schema"]["type"].as_str() {
                Some("integer") => json!(text.parse::<u64>().unwrap()),
                _ => json!(text),
            };
            s.assert_valid(&p["schema"], &value, &format!("{name}: path {k}"));
        }

        // The body fits the documented request body.
        match (raw["body"].as_str(), op.get("requestBody")) {
            (Some(body), Some(rb)) => {
                let body: Value = serde_json::from_str(body).unwrap();
                let media = json_media(&s, rb, &name);
                s.assert_valid(&media["schema"], &body, &format!("{name}: body"));
            }
            (None, Some(rb)) => assert_eq!(rb["required"], false, "{name}: body missing"),
            (Some(_), None) => panic!("{name}: a body for a route that reads none"),
            (None, None) => {}
        }
    }
    assert_eq!(
        seen,
        // Grant routes aside: a grant expires within hours (tests/grants.rs).
        ROUTES
            .iter()
            .filter(|r| !r.is_granted())
            .map(|r| r.key())
            .collect(),
        "a sample per route"
    );
}

// ---------------------------------------------------------------------------
// The test's own machinery fails when it should.
// ---------------------------------------------------------------------------

#[test]
fn the_checks_themselves_can_fail() {
    let root = json!({"components": {"schemas": {
        "P": {"type": "object", "required": ["a"], "additionalProperties": false,
              "properties": {"a": {"type": "integer", "minimum": 1}, "b": {"type": ["string", "null"]}}},
        "One": {"oneOf": [{"required": ["x"]}, {"required": ["y"]}]}
    }}});
    let s = Schemas::new(&root);
    let p = json!({"$ref": "#/components/schemas/P"});
    assert!(s.errors(&p, &json!({"a": 1, "b": null})).is_empty());
    assert!(
        !s.errors(&p, &json!({"b": "x"})).is_empty(),
        "missing required"
    );
    assert!(!s.errors(&p, &json!({"a": "1"})).is_empty(), "wrong type");
    assert!(!s.errors(&p, &json!({"a": 0})).is_empty(), "below minimum");
    assert!(
        !s.errors(&p, &json!({"a": 1, "c": 2})).is_empty(),
        "extra property"
    );
    let one = json!({"$ref": "#/components/schemas/One"});
    assert!(s.errors(&one, &json!({"x": 1})).is_empty());
    assert!(
        !s.errors(&one, &json!({"x": 1, "y": 2})).is_empty(),
        "both of oneOf"
    );

    // Source reading: keys, first-literal keys, calls, markers.
    let src = "pub async fn h() -> R {\n    let mut body = json!({ \"key\": a, \"nested\": json!({\"inner\": 1}) });\n    if x {\n        body[\"extra\"] = json!(1);\n    }\n    helper(x)\n}\n\nfn helper(x: u8) -> R {\n    Err(Error::Conflict(\"no: way\".into()))\n}\n\nfn unused() {\n    Error::Throttled(\"t\".into())\n}\n";
    let h = Handler {
        operation_id: "h",
        tag: PARTWISE,
        module: "m",
        source: src,
        function: "h",
        body: Body::Json,
    };
    let text = handler_text(&h);
    assert!(text.contains("Error::Conflict") && !text.contains("Error::Throttled"));
    let keys: Vec<String> = emitted_keys(&text).into_iter().collect();
    assert_eq!(keys, ["extra", "inner", "key", "nested"]);
    let first: Vec<String> = first_literal_keys(&text).into_iter().collect();
    assert_eq!(first, ["key", "nested"]);
    assert!(calls("x = helper(1)", "helper") && !calls("lifecycle::helper(1)", "helper"));
}
