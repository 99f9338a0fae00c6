//! IAM: every AWS request each Lambda function makes, or signs for a client
//! to make, must be one its role in `template.yaml` allows.
//!
//! Each function's handlers run through realistic scenarios against Garage
//! and DynamoDB Local (every route of the API functions, per `ROUTES`, with
//! per-owner quotas on, so uploads are charged and released; the sweep's
//! passes and its quota recount; settle on "Object Created"; notify on the
//! table's stream), with SDK clients carrying an interceptor that records
//! the IAM action and resource of each request sent: the operation from
//! the typed input, each action of a `TransactWriteItems` on its own (IAM
//! authorizes them one by one), the table or index queried, the bucket or
//! object. Presigned requests never leave the function: what they need is
//! read off the answers that hand them out (URLs carrying `X-Amz-Signature`,
//! POST forms' policies), since S3 runs them with the signer's rights.
//! Then each (action, resource) is checked against the function's `Policies`
//! statements in `template.yaml`, read at run time, with CloudFormation's
//! references resolved to the ARNs the stack would hold. A failure names the
//! function, the action, the resource and what needed it.
//!
//! Not recorded: Secrets Manager (the grant keys are given as
//! `PARTWISE_GRANT_KEYS`; its client is built inside the context), and the
//! stream reads Lambda's event source mapping makes with notify's role.

mod common;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef, Input,
};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use common::{Call, bytes, http, owner};
use partwise::Context;
use partwise::api::{Function, ROUTES};
use partwise::quota::counters;
use partwise_local::Stack;
use partwise_local::eventbridge::Receiver;
use serde_json::{Value, json};
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const KEYS: &str = "iam-test-grant-key-0123456789abcdef0123456789abcdef";
const MIB: usize = 1 << 20;

// The functions that are not API functions, by binary name.
const SWEEP: &str = "sweep";
const SETTLE: &str = "settle";
const NOTIFY: &str = "notify";

const API_FUNCTIONS: [Function; 5] = [
    Function::Initiate,
    Function::SignPart,
    Function::ListParts,
    Function::Complete,
    Function::Abort,
];

// ---------------------------------------------------------------------------
// What a request needs
// ---------------------------------------------------------------------------

/// What an IAM action is asked on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Resource {
    Table(String),
    Index {
        table: String,
        index: String,
    },
    Bucket(String),
    Object {
        bucket: String,
        key: String,
    },
    EventBus(String),
    /// A request this test cannot map to a resource: it fails, naming it.
    Unknown(String),
}

impl Resource {
    fn arn(&self) -> Option<String> {
        Some(match self {
            Resource::Table(t) => format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{t}"),
            Resource::Index { table, index } => {
                format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{table}/index/{index}")
            }
            Resource::Bucket(b) => format!("arn:aws:s3:::{b}"),
            Resource::Object { bucket, key } => format!("arn:aws:s3:::{bucket}/{key}"),
            Resource::EventBus(b) if b.starts_with("arn:") => b.clone(),
            Resource::EventBus(b) => format!("arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{b}"),
            Resource::Unknown(_) => return None,
        })
    }

    /// The resource as the template would spell it.
    fn shape(&self, names: &Names) -> String {
        match self {
            Resource::Table(t) if *t == names.table => format!("!GetAtt {}.Arn", names.table_id),
            Resource::Index { table, index } if *table == names.table => {
                format!("${{{}.Arn}}/index/{index}", names.table_id)
            }
            Resource::Bucket(b) if *b == names.bucket => format!("!GetAtt {}.Arn", names.bucket_id),
            Resource::Object { bucket, key }
                if *bucket == names.bucket && key.starts_with(&names.prefix) =>
            {
                format!("${{{}.Arn}}/${{KeyPrefix}}…", names.bucket_id)
            }
            Resource::Unknown(why) => format!("an unknown resource ({why})"),
            other => other.arn().unwrap_or_default(),
        }
    }
}

type Need = (String, Resource);

/// The IAM actions and resources of one SDK request, from its typed input.
fn needs_of(operation: &str, input: &Input) -> Vec<Need> {
    if let Some(needs) = dynamodb_needs(input) {
        return needs;
    }
    if let Some(needs) = s3_needs(input) {
        return needs;
    }
    if let Some(i) =
        input.downcast_ref::<aws_sdk_eventbridge::operation::put_events::PutEventsInput>()
    {
        return i
            .entries()
            .iter()
            .map(|e| {
                let bus = e.event_bus_name().unwrap_or("default").to_string();
                ("events:PutEvents".to_string(), Resource::EventBus(bus))
            })
            .collect();
    }
    vec![(
        format!("?:{operation}"),
        Resource::Unknown(format!(
            "{operation}: the IAM test does not know its action and resource; add it to needs_of"
        )),
    )]
}

fn dynamodb_needs(input: &Input) -> Option<Vec<Need>> {
    use aws_sdk_dynamodb::operation as op;
    let table = |t: Option<&str>| Resource::Table(t.unwrap_or_default().to_string());
    let on = |t: Option<&str>, index: Option<&str>| match index {
        Some(index) => Resource::Index {
            table: t.unwrap_or_default().to_string(),
            index: index.to_string(),
        },
        None => table(t),
    };
    // One macro per resource shape: a table, a table or its index, the tables of a batch.
    macro_rules! one_table {
        ($ty:ty, $action:literal) => {
            if let Some(i) = input.downcast_ref::<$ty>() {
                return Some(vec![(
                    format!("dynamodb:{}", $action),
                    table(i.table_name()),
                )]);
            }
        };
    }
    macro_rules! table_or_index {
        ($ty:ty, $action:literal) => {
            if let Some(i) = input.downcast_ref::<$ty>() {
                let r = on(i.table_name(), i.index_name());
                return Some(vec![(format!("dynamodb:{}", $action), r)]);
            }
        };
    }
    macro_rules! tables {
        ($ty:ty, $action:literal) => {
            if let Some(i) = input.downcast_ref::<$ty>() {
                return Some(
                    i.request_items()
                        .into_iter()
                        .flat_map(|m| m.keys())
                        .map(|t| (format!("dynamodb:{}", $action), Resource::Table(t.clone())))
                        .collect(),
                );
            }
        };
    }
    one_table!(op::get_item::GetItemInput, "GetItem");
    one_table!(op::put_item::PutItemInput, "PutItem");
    one_table!(op::update_item::UpdateItemInput, "UpdateItem");
    one_table!(op::delete_item::DeleteItemInput, "DeleteItem");
    table_or_index!(op::query::QueryInput, "Query");
    table_or_index!(op::scan::ScanInput, "Scan");
    tables!(op::batch_get_item::BatchGetItemInput, "BatchGetItem");
    tables!(op::batch_write_item::BatchWriteItemInput, "BatchWriteItem");
    // IAM authorizes a transaction action by action, as the operation each stands for.
    if let Some(i) = input.downcast_ref::<op::transact_write_items::TransactWriteItemsInput>() {
        let mut needs = vec![];
        for item in i.transact_items() {
            if let Some(p) = item.put() {
                needs.push(("dynamodb:PutItem".into(), table(Some(p.table_name()))));
            }
            if let Some(u) = item.update() {
                needs.push(("dynamodb:UpdateItem".into(), table(Some(u.table_name()))));
            }
            if let Some(d) = item.delete() {
                needs.push(("dynamodb:DeleteItem".into(), table(Some(d.table_name()))));
            }
            if let Some(c) = item.condition_check() {
                needs.push((
                    "dynamodb:ConditionCheckItem".into(),
                    table(Some(c.table_name())),
                ));
            }
        }
        return Some(needs);
    }
    if let Some(i) = input.downcast_ref::<op::transact_get_items::TransactGetItemsInput>() {
        return Some(
            i.transact_items()
                .iter()
                .filter_map(|t| t.get())
                .map(|g| ("dynamodb:GetItem".to_string(), table(Some(g.table_name()))))
                .collect(),
        );
    }
    None
}

/// S3 operations and the action IAM checks for each (the S3 API reference's
/// "Permissions" of each operation).
fn s3_needs(input: &Input) -> Option<Vec<Need>> {
    use aws_sdk_s3::operation as op;
    macro_rules! object {
        ($ty:ty, $action:literal) => {
            if let Some(i) = input.downcast_ref::<$ty>() {
                return Some(vec![(
                    $action.to_string(),
                    Resource::Object {
                        bucket: i.bucket().unwrap_or_default().to_string(),
                        key: i.key().unwrap_or_default().to_string(),
                    },
                )]);
            }
        };
    }
    macro_rules! bucket {
        ($ty:ty, $action:literal) => {
            if let Some(i) = input.downcast_ref::<$ty>() {
                return Some(vec![(
                    $action.to_string(),
                    Resource::Bucket(i.bucket().unwrap_or_default().to_string()),
                )]);
            }
        };
    }
    object!(
        op::create_multipart_upload::CreateMultipartUploadInput,
        "s3:PutObject"
    );
    object!(op::upload_part::UploadPartInput, "s3:PutObject");
    object!(
        op::complete_multipart_upload::CompleteMultipartUploadInput,
        "s3:PutObject"
    );
    object!(op::put_object::PutObjectInput, "s3:PutObject");
    object!(
        op::abort_multipart_upload::AbortMultipartUploadInput,
        "s3:AbortMultipartUpload"
    );
    object!(
        op::list_parts::ListPartsInput,
        "s3:ListMultipartUploadParts"
    );
    object!(op::head_object::HeadObjectInput, "s3:GetObject");
    object!(op::get_object::GetObjectInput, "s3:GetObject");
    object!(op::delete_object::DeleteObjectInput, "s3:DeleteObject");
    bucket!(
        op::list_multipart_uploads::ListMultipartUploadsInput,
        "s3:ListBucketMultipartUploads"
    );
    bucket!(op::list_objects_v2::ListObjectsV2Input, "s3:ListBucket");
    bucket!(op::list_objects::ListObjectsInput, "s3:ListBucket");
    bucket!(op::head_bucket::HeadBucketInput, "s3:ListBucket");
    None
}

// ---------------------------------------------------------------------------
// The recorder: an interceptor on each function's clients
// ---------------------------------------------------------------------------

/// What one function asked for, and why.
#[derive(Clone, Debug, Default)]
struct Recorder(Arc<Mutex<Seen>>);

#[derive(Debug, Default)]
struct Seen {
    /// What the function is doing now (a route, a sweep run...), for messages.
    doing: String,
    needs: BTreeMap<Need, BTreeSet<String>>,
}

impl Recorder {
    fn doing(&self, what: &str) {
        self.0.lock().unwrap().doing = what.to_string();
    }

    fn need(&self, action: &str, resource: Resource, via: &str) {
        let mut seen = self.0.lock().unwrap();
        let why = format!("{via} ({})", seen.doing);
        seen.needs
            .entry((action.to_string(), resource))
            .or_default()
            .insert(why);
    }

    fn needs(&self) -> BTreeMap<Need, BTreeSet<String>> {
        self.0.lock().unwrap().needs.clone()
    }

    /// The presigned requests an answer hands out: URLs carrying a
    /// signature, and POST forms (their policy is the signature).
    fn handed_out(&self, answer: &Value, bucket: &str) {
        match answer {
            Value::String(s) if s.contains("X-Amz-Signature=") => self.signed_url(s, bucket),
            Value::Array(items) => items.iter().for_each(|v| self.handed_out(v, bucket)),
            Value::Object(m) => {
                if let Some(fields) = m.get("fields").and_then(Value::as_object)
                    && fields.contains_key("policy")
                {
                    let key = fields
                        .get("key")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    self.need(
                        "s3:PutObject",
                        Resource::Object {
                            bucket: bucket.to_string(),
                            key: key.to_string(),
                        },
                        "a presigned POST form",
                    );
                }
                m.values().for_each(|v| self.handed_out(v, bucket));
            }
            _ => {}
        }
    }

    fn signed_url(&self, url: &str, bucket: &str) {
        let parsed = reqwest::Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let op = parsed
            .query_pairs()
            .find(|(k, _)| k == "x-id")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let path = percent_encoding::percent_decode_str(parsed.path())
            .decode_utf8_lossy()
            .into_owned();
        let host_style = parsed
            .host_str()
            .is_some_and(|h| h.starts_with(&format!("{bucket}.")));
        let key = match path.strip_prefix(&format!("/{bucket}/")) {
            Some(key) => Some(key.to_string()),
            None if host_style => Some(path.trim_start_matches('/').to_string()),
            None => None,
        };
        let action = match op.as_str() {
            "UploadPart" | "PutObject" => Some("s3:PutObject"),
            "GetObject" => Some("s3:GetObject"),
            _ => None,
        };
        let via = format!("a presigned {op} URL");
        match (action, key) {
            (Some(action), Some(key)) => self.need(
                action,
                Resource::Object {
                    bucket: bucket.to_string(),
                    key,
                },
                &via,
            ),
            _ => self.need(
                &format!("s3:?{op}"),
                Resource::Unknown(format!("a presigned URL the IAM test cannot read: {url}")),
                &via,
            ),
        }
    }
}

/// A request's needs, between its serialization and its sending.
#[derive(Debug)]
struct Pending {
    operation: String,
    needs: Vec<Need>,
}

impl Storable for Pending {
    type Storer = StoreReplace<Self>;
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "IamRecorder"
    }

    // The typed input and the operation's metadata are both at hand here
    // (client interceptors' `read_before_execution` runs before the
    // operation's metadata is in the bag).
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map_or_else(|| "?".to_string(), |m| m.name().to_string());
        let needs = needs_of(&operation, context.input());
        cfg.interceptor_state()
            .store_put(Pending { operation, needs });
        Ok(())
    }

    // Only requests actually sent are recorded: a presigned one stops
    // before this point's sending, its signature in its URL.
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.request().uri().contains("X-Amz-Signature=") {
            return Ok(());
        }
        if let Some(p) = cfg.load::<Pending>() {
            for (action, resource) in &p.needs {
                self.need(action, resource.clone(), &p.operation);
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The template's policies
// ---------------------------------------------------------------------------

/// What the template's references resolve to on this stack.
struct Names {
    table: String,
    bucket: String,
    prefix: String,
    event_bus: String,
    /// Logical ids of the table and bucket the functions' environment names.
    table_id: String,
    bucket_id: String,
}

struct Statement {
    sid: String,
    allow: bool,
    conditional: bool,
    actions: Vec<String>,
    /// Resolved to ARNs (IAM wildcards kept).
    resources: Vec<String>,
}

struct Role {
    logical_id: String,
    statements: Vec<Statement>,
}

fn template_text() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The logical id a `PARTWISE_*` variable of `Globals.Function` refers to (`!Ref X`).
fn referenced_by(doc: &Yaml, var: &str) -> String {
    let v = &doc["Globals"]["Function"]["Environment"]["Variables"][var];
    match v {
        Yaml::Tagged(t) if t.tag == "Ref" => t.value.as_str().unwrap().to_string(),
        other => panic!("Globals.Function.Environment.Variables.{var} is {other:?}, not a !Ref"),
    }
}

/// Every function of the template with its build binary's name, and its role.
fn roles(doc: &Yaml, names: &Names) -> BTreeMap<String, Role> {
    let parameters = partwise_local::template::Template::parse(&template_text()).unwrap();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    if let Some(params) = doc["Parameters"].as_mapping() {
        for name in params.keys().filter_map(Yaml::as_str) {
            if let Some(Yaml::String(v)) = parameters.parameter(name) {
                vars.insert(name.to_string(), v);
            }
        }
    }
    let table_arn = Resource::Table(names.table.clone()).arn().unwrap();
    let bucket_arn = Resource::Bucket(names.bucket.clone()).arn().unwrap();
    vars.extend([
        ("KeyPrefix".to_string(), names.prefix.clone()),
        ("EventBusName".to_string(), names.event_bus.clone()),
        ("AWS::Partition".to_string(), "aws".to_string()),
        ("AWS::Region".to_string(), REGION.to_string()),
        ("AWS::AccountId".to_string(), ACCOUNT.to_string()),
        ("AWS::URLSuffix".to_string(), "amazonaws.com".to_string()),
        (names.table_id.clone(), names.table.clone()),
        (format!("{}.Arn", names.table_id), table_arn),
        (names.bucket_id.clone(), names.bucket.clone()),
        (format!("{}.Arn", names.bucket_id), bucket_arn),
    ]);
    let mut out = BTreeMap::new();
    for (id, resource) in doc["Resources"].as_mapping().unwrap() {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().unwrap().to_string();
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: no Metadata.BuildProperties.Binary"))
            .to_string();
        let props = &resource["Properties"];
        assert!(
            props.get("Role").is_none(),
            "{id}: a Role of its own; the IAM test reads Policies only"
        );
        let mut statements = vec![];
        let policies = match &props["Policies"] {
            Yaml::Sequence(items) => items.clone(),
            Yaml::Null => vec![],
            one => vec![one.clone()],
        };
        for policy in &policies {
            let what = format!("{id}.Properties.Policies");
            let Some(list) = policy.get("Statement") else {
                panic!(
                    "{what}: {policy:?} is not an inline policy document; the IAM test cannot read it"
                )
            };
            let list = match list {
                Yaml::Sequence(s) => s.clone(),
                one => vec![one.clone()],
            };
            for s in &list {
                statements.push(statement(s, &what, &vars));
            }
        }
        out.insert(
            binary,
            Role {
                logical_id: id,
                statements,
            },
        );
    }
    out
}

fn statement(s: &Yaml, what: &str, vars: &BTreeMap<String, String>) -> Statement {
    let sid = s["Sid"].as_str().unwrap_or("(no Sid)").to_string();
    let what = format!("{what}, statement {sid}");
    for unsupported in ["NotAction", "NotResource", "Principal", "NotPrincipal"] {
        assert!(
            s.get(unsupported).is_none(),
            "{what}: {unsupported} is not understood by the IAM test"
        );
    }
    let strings = |v: &Yaml| -> Vec<String> {
        match v {
            Yaml::String(a) => vec![a.clone()],
            Yaml::Sequence(items) => items
                .iter()
                .map(|i| {
                    i.as_str()
                        .unwrap_or_else(|| panic!("{what}: {i:?}"))
                        .to_string()
                })
                .collect(),
            other => panic!("{what}: {other:?}"),
        }
    };
    Statement {
        allow: match s["Effect"].as_str() {
            Some("Allow") => true,
            Some("Deny") => false,
            other => panic!("{what}: Effect {other:?}"),
        },
        conditional: s.get("Condition").is_some(),
        actions: strings(&s["Action"]),
        resources: texts(&s["Resource"], &what)
            .iter()
            .map(|t| substitute(t, vars))
            .collect(),
        sid,
    }
}

/// A `Resource` value as `!Sub` text (`${Name}` for each reference).
fn texts(v: &Yaml, what: &str) -> Vec<String> {
    let reference = |v: &Yaml| match v {
        Yaml::String(s) => s.clone(),
        Yaml::Sequence(parts) => parts
            .iter()
            .map(|p| p.as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("."),
        other => panic!("{what}: {other:?}"),
    };
    let sub = |v: &Yaml| match v {
        Yaml::String(s) => s.clone(),
        Yaml::Sequence(parts) if parts.len() == 2 => {
            let mut text = parts[0].as_str().unwrap().to_string();
            for (k, val) in parts[1].as_mapping().unwrap() {
                let name = k.as_str().unwrap();
                let value = texts(val, what).concat();
                text = text.replace(&format!("${{{name}}}"), &value);
            }
            text
        }
        other => panic!("{what}: !Sub {other:?}"),
    };
    match v {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Sequence(items) => items.iter().flat_map(|i| texts(i, what)).collect(),
        Yaml::Tagged(t) if t.tag == "GetAtt" => vec![format!("${{{}}}", reference(&t.value))],
        Yaml::Tagged(t) if t.tag == "Ref" => vec![format!("${{{}}}", reference(&t.value))],
        Yaml::Tagged(t) if t.tag == "Sub" => vec![sub(&t.value)],
        Yaml::Mapping(m) if m.len() == 1 => {
            let (k, v) = m.iter().next().unwrap();
            match k.as_str() {
                Some("Fn::GetAtt" | "Ref") => vec![format!("${{{}}}", reference(v))],
                Some("Fn::Sub") => vec![sub(v)],
                _ => panic!("{what}: Resource {m:?} is not understood by the IAM test"),
            }
        }
        other => panic!("{what}: Resource {other:?} is not understood by the IAM test"),
    }
}

/// `${Name}` replaced by its value; unknown names stay, and match nothing.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + end];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[start..start + end + 1]),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

/// IAM's wildcards: `*` any run of characters, `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Why `role` does not allow `action` on `arn`, if it does not.
fn refusal(role: &Role, action: &str, arn: Option<&str>) -> Option<String> {
    let Some(arn) = arn else {
        return Some("the IAM test cannot tell the resource".into());
    };
    let applies = |s: &Statement| {
        s.actions
            .iter()
            .any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && s.resources.iter().any(|r| glob(r, arn))
    };
    if let Some(deny) = role.statements.iter().find(|s| !s.allow && applies(s)) {
        return Some(format!("statement {} denies it", deny.sid));
    }
    let allows: Vec<&Statement> = role
        .statements
        .iter()
        .filter(|s| s.allow && applies(s))
        .collect();
    if allows.iter().any(|s| !s.conditional) {
        return None;
    }
    if let Some(s) = allows.first() {
        return Some(format!(
            "only statement {} allows it, under a Condition the IAM test does not evaluate",
            s.sid
        ));
    }
    let same_action: Vec<&str> = role
        .statements
        .iter()
        .filter(|s| {
            s.allow
                && s.actions
                    .iter()
                    .any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
        })
        .map(|s| s.sid.as_str())
        .collect();
    Some(if same_action.is_empty() {
        "no statement allows the action".into()
    } else {
        format!(
            "statements {} allow the action, but not on this resource",
            same_action.join(", ")
        )
    })
}

// ---------------------------------------------------------------------------
// The world: one stack, one table and prefix, a recorded context per function
// ---------------------------------------------------------------------------

struct World {
    stack: Stack,
    names: Names,
    recorders: BTreeMap<&'static str, Recorder>,
    /// API routes answered 2xx at least once: (binary, route key).
    covered: Mutex<BTreeSet<(&'static str, String)>>,
}

/// An upload started through the API.
#[derive(Debug, Clone)]
struct Up {
    id: String,
    key: String,
}

impl Up {
    /// `route` on this upload, called by `owner`.
    fn call(&self, route: &'static str, owner: &str) -> Call {
        self.on(Call::new(route).owner(owner))
    }

    /// `route` on this upload, called through `grant`.
    fn granted(&self, route: &'static str, grant: &str) -> Call {
        self.on(Call::new(route).path("grant", grant))
    }

    fn on(&self, call: Call) -> Call {
        call.path("uploadId", &self.id).query("key", &self.key)
    }
}

impl World {
    async fn new() -> World {
        let stack = Stack::from_env_or_start()
            .await
            .unwrap_or_else(|e| panic!("local stack: {e}"));
        let table = Stack::unique_name("iam");
        stack.create_table(&table).await.unwrap();
        let prefix = format!("{}/", Stack::unique_name("iam"));
        let doc: Yaml = serde_yaml::from_str(&template_text()).unwrap();
        let names = Names {
            bucket: stack.bucket().to_string(),
            table,
            prefix,
            event_bus: "default".into(),
            table_id: referenced_by(&doc, "PARTWISE_TABLE"),
            bucket_id: referenced_by(&doc, "PARTWISE_BUCKET"),
        };
        let recorders = API_FUNCTIONS
            .iter()
            .map(|f| f.name())
            .chain([SWEEP, SETTLE, NOTIFY])
            .map(|b| (b, Recorder::default()))
            .collect();
        World {
            stack,
            names,
            recorders,
            covered: Mutex::default(),
        }
    }

    fn rec(&self, binary: &str) -> &Recorder {
        &self.recorders[binary]
    }

    /// `binary`'s context: the stack's settings, this test's table and
    /// prefix, `extra` over them; every client records into its recorder.
    fn ctx(&self, binary: &str, extra: &[(&str, &str)]) -> Context {
        // The first of a name wins: `extra` goes first.
        let mut settings = extra.to_vec();
        settings.extend([
            ("PARTWISE_TABLE", self.names.table.as_str()),
            ("PARTWISE_KEY_PREFIX", self.names.prefix.as_str()),
            ("PARTWISE_GRANT_KEYS", KEYS),
            ("PARTWISE_GSI_SHARDS", "4"),
            ("PARTWISE_PART_SIZE", "5MiB"),
            ("PARTWISE_MAX_UPLOAD_SIZE", "64MiB"),
        ]);
        let config = self.stack.partwise_config(&settings).unwrap();
        let sdk = self.stack.sdk_config();
        let rec = self.rec(binary).clone();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(config.s3_force_path_style)
                .interceptor(rec.clone())
                .build(),
        );
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&sdk)
                .interceptor(rec)
                .build(),
        );
        // Field by field, as `Context::new` builds it: a client added to the
        // context must be added here too (or its calls go unrecorded).
        Context {
            grant_keys: partwise::grants::KeySource::new(
                config.grant_keys.clone(),
                config.grant_secret_arn.as_deref(),
                &sdk,
            ),
            store: partwise::store::Store::new(
                dynamodb,
                &config.table,
                config.gsi_shards,
                config.retention,
            )
            .with_quotas(config.quotas),
            storage: partwise::storage::Storage::new(s3.clone(), &config.bucket),
            presigner: partwise::presign::Presigner::new(s3, &config.bucket, &sdk),
            config,
        }
    }

    /// Runs `call` through `f`'s handler, as API Gateway would.
    async fn api(&self, ctx: &Context, f: Function, call: Call) -> (u16, Value) {
        let route = call.route_key;
        let rec = self.rec(f.name());
        rec.doing(route);
        let (status, body) = Box::pin(call.send_to(ctx, f)).await;
        rec.handed_out(&body, &self.names.bucket);
        if (200..300).contains(&status) {
            self.covered
                .lock()
                .unwrap()
                .insert((f.name(), route.to_string()));
        }
        (status, body)
    }

    /// [`World::api`], answered `want`.
    async fn expect(&self, ctx: &Context, f: Function, want: u16, call: Call) -> Value {
        let route = call.route_key;
        let (status, body) = self.api(ctx, f, call).await;
        assert_eq!(status, want, "{} {route}: {body}", f.name());
        body
    }

    async fn create(&self, ctx: &Context, owner: &str, body: Value) -> Up {
        let answer = self
            .expect(
                ctx,
                Function::Initiate,
                200,
                Call::new(CREATE).owner(owner).json(body),
            )
            .await;
        up(&answer)
    }

    /// Part `n`'s URL (SignPart, `GET` with the key, as Uppy asks).
    async fn sign(&self, ctx: &Context, owner: &str, u: &Up, n: u32) -> String {
        let answer = self
            .expect(
                ctx,
                Function::SignPart,
                200,
                Call::new(SIGN)
                    .owner(owner)
                    .path("uploadId", &u.id)
                    .path("partNumber", n)
                    .query("key", &u.key),
            )
            .await;
        answer["url"].as_str().unwrap().to_string()
    }

    /// Signs part `n` through SignPart and PUTs `len` bytes to it.
    async fn upload_part(&self, ctx: &Context, owner: &str, u: &Up, n: u32, len: usize) -> String {
        let url = self.sign(ctx, owner, u, n).await;
        put_ok(&url, bytes(len, n as u8), &BTreeMap::new()).await
    }

    /// Completes `u` straight in S3, as a client with its own S3 rights
    /// would: no function is told (the stack's own client, not recorded).
    async fn complete_in_s3(&self, u: &Up, etag: &str) {
        let s3 = self.stack.s3();
        common::complete_with(s3, &self.names.bucket, &u.key, &u.id, etag).await;
    }

    /// S3's "Object Created" for `key`, as EventBridge hands it to settle.
    fn object_created(&self, key: &str, reason: &str) -> Value {
        json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "source": "aws.s3",
            "detail-type": "Object Created",
            "account": ACCOUNT,
            "region": REGION,
            "time": "2026-01-01T00:00:00Z",
            "resources": [format!("arn:aws:s3:::{}", self.names.bucket)],
            "detail": {
                "version": "0",
                "bucket": {"name": self.names.bucket},
                "object": {"key": key, "size": 0},
                "reason": reason,
            }
        })
    }
}

const CREATE: &str = "POST /s3/multipart";
const PARAMS: &str = "GET /s3/params";
const PUTS: &str = "POST /s3/puts";
const GRANTS: &str = "POST /grants";
const SIGN: &str = "GET /s3/multipart/{uploadId}/{partNumber}";
const BATCH: &str = "GET /s3/multipart/{uploadId}/batch";
const BATCH_CHECKED: &str = "POST /s3/multipart/{uploadId}/batch";
const LIST: &str = "GET /s3/multipart/{uploadId}";
const STATUS: &str = "GET /s3/multipart/{uploadId}/status";
const UPLOADS: &str = "GET /s3/multipart";
const QUOTA: &str = "GET /quota";
const DOWNLOAD: &str = "GET /s3/multipart/{uploadId}/download";
const COMPLETE: &str = "POST /s3/multipart/{uploadId}/complete";
const ABORT: &str = "DELETE /s3/multipart/{uploadId}";
const G_CREATE: &str = "POST /g/{grant}/s3/multipart";
const G_PARAMS: &str = "GET /g/{grant}/s3/params";
const G_SIGN: &str = "GET /g/{grant}/s3/multipart/{uploadId}/{partNumber}";
const G_LIST: &str = "GET /g/{grant}/s3/multipart/{uploadId}";
const G_UPLOADS: &str = "GET /g/{grant}/s3/multipart";
const G_QUOTA: &str = "GET /g/{grant}/quota";
const G_DOWNLOAD: &str = "GET /g/{grant}/s3/multipart/{uploadId}/download";
const G_COMPLETE: &str = "POST /g/{grant}/s3/multipart/{uploadId}/complete";
const G_ABORT: &str = "DELETE /g/{grant}/s3/multipart/{uploadId}";

fn up(answer: &Value) -> Up {
    Up {
        id: answer["uploadId"].as_str().unwrap().to_string(),
        key: answer["key"].as_str().unwrap().to_string(),
    }
}

/// PUTs `body` to a presigned URL with the headers it was signed with; its ETag.
async fn put_ok(url: &str, body: Vec<u8>, headers: &BTreeMap<String, String>) -> String {
    let mut req = http()
        .put(url)
        .header("content-length", body.len())
        .body(body);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(
        status.is_success(),
        "PUT {url}: {status} {}",
        resp.text().await.unwrap_or_default()
    );
    etag.expect("ETag header")
}

fn signed_headers(answer: &Value) -> BTreeMap<String, String> {
    answer["headers"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------

/// Every route of every API function, with quotas charged, refused and
/// released, grants, presigned forms and URLs, and the roll-back, over-limit,
/// vanished and completed-in-S3 paths. Leaves live uploads for the sweep.
async fn api_scenarios(w: &World) -> Leftovers {
    use Function::*;
    let init = w.ctx(Initiate.name(), &[]);
    let sign = w.ctx(SignPart.name(), &[]);
    let list = w.ctx(ListParts.name(), &[]);
    let complete = w.ctx(Complete.name(), &[]);
    let abort = w.ctx(Abort.name(), &[]);
    let alice = owner("alice");

    // Initiate: a sized, an unsized and a checksummed multipart upload, an
    // empty file (a presigned PUT), a POST form, small files, a grant.
    let sized = w
        .create(
            &init,
            &alice,
            json!({"filename": "sized.bin", "type": "application/octet-stream", "size": 5 * MIB + 10}),
        )
        .await;
    let open_ended = w
        .create(&init, &alice, json!({"filename": "open_ended.bin"}))
        .await;
    let checked = w
        .create(
            &init,
            &alice,
            json!({"filename": "checked.bin", "size": 100, "checksumAlgorithm": "CRC32C"}),
        )
        .await;
    let empty = w
        .expect(
            &init,
            Initiate,
            200,
            Call::new(CREATE)
                .owner(&alice)
                .json(json!({"filename": "empty.txt", "type": "text/plain", "size": 0})),
        )
        .await;
    let form = w
        .expect(
            &init,
            Initiate,
            200,
            Call::new(PARAMS)
                .owner(&alice)
                .query("filename", "form.txt")
                .query("type", "text/plain"),
        )
        .await;
    let puts = w
        .expect(
            &init,
            Initiate,
            200,
            Call::new(PUTS).owner(&alice).json(json!({"files": [
                {"filename": "small-1.txt", "type": "text/plain", "size": 5},
                {"filename": "small-2.txt", "type": "text/plain", "size": 3},
            ]})),
        )
        .await;
    let grant_answer = w
        .expect(
            &init,
            Initiate,
            200,
            Call::new(GRANTS).owner(&alice).json(json!({})),
        )
        .await;
    let grant = grant_answer["endpoint"]
        .as_str()
        .unwrap()
        .rsplit_once("/g/")
        .unwrap()
        .1
        .to_string();
    let granted = up(&w
        .expect(
            &init,
            Initiate,
            200,
            Call::new(G_CREATE)
                .path("grant", &grant)
                .json(json!({"filename": "granted.bin", "size": 100})),
        )
        .await);
    let granted_to_abort = up(&w
        .expect(
            &init,
            Initiate,
            200,
            Call::new(G_CREATE)
                .path("grant", &grant)
                .json(json!({"filename": "granted-abort.bin", "size": 100})),
        )
        .await);
    w.expect(
        &init,
        Initiate,
        200,
        Call::new(G_PARAMS)
            .path("grant", &grant)
            .query("filename", "granted-form.txt")
            .query("type", "text/plain"),
    )
    .await;

    // Quotas refusing: over the live-uploads quota (the transaction
    // cancelled, the S3 upload rolled back), and a file larger than the
    // whole bytes quota (the owner's usage read for the message).
    let tight = w.ctx(
        Initiate.name(),
        &[
            ("PARTWISE_MAX_LIVE_UPLOADS_PER_OWNER", "1"),
            ("PARTWISE_MAX_BYTES_IN_FLIGHT_PER_OWNER", "8MiB"),
        ],
    );
    let bob = owner("bob");
    w.create(&tight, &bob, json!({"filename": "one.bin", "size": 100}))
        .await;
    let before = s3_uploads_under_prefix(w).await;
    w.expect(
        &tight,
        Initiate,
        403,
        Call::new(CREATE)
            .owner(&bob)
            .json(json!({"filename": "two.bin", "size": 100})),
    )
    .await;
    w.expect(
        &tight,
        Initiate,
        413,
        Call::new(CREATE)
            .owner(&owner("carol"))
            .json(json!({"filename": "big.bin", "size": 9 * MIB})),
    )
    .await;
    assert_eq!(
        s3_uploads_under_prefix(w).await,
        before,
        "refused uploads are rolled back in S3"
    );

    // SignPart: part URLs one at a time (sized, unsized), in batches, with
    // checksums, through a grant.
    let sized_1 = w.upload_part(&sign, &alice, &sized, 1, 5 * MIB).await;
    let sized_2 = w.upload_part(&sign, &alice, &sized, 2, 10).await;
    assert!(!sized_1.is_empty() && !sized_2.is_empty());
    w.upload_part(&sign, &alice, &open_ended, 1, 5 * MIB).await;
    w.expect(
        &sign,
        SignPart,
        200,
        Call::new(BATCH)
            .owner(&alice)
            .path("uploadId", &open_ended.id)
            .query("partNumbers", "2,3")
            .query("key", &open_ended.key),
    )
    .await;
    w.expect(
        &sign,
        SignPart,
        200,
        Call::new(BATCH_CHECKED)
            .owner(&alice)
            .path("uploadId", &checked.id)
            .json(
                json!({"key": checked.key, "parts": [{"partNumber": 1, "checksum": "AAAAAA=="}]}),
            ),
    )
    .await;
    let granted_url = w
        .expect(
            &sign,
            SignPart,
            200,
            Call::new(G_SIGN)
                .path("grant", &grant)
                .path("uploadId", &granted.id)
                .path("partNumber", 1)
                .query("key", &granted.key),
        )
        .await;
    put_ok(
        granted_url["url"].as_str().unwrap(),
        bytes(100, 7),
        &BTreeMap::new(),
    )
    .await;

    // An unsized upload found over the size limit while signing: aborted there.
    let small = [("PARTWISE_MAX_UPLOAD_SIZE", "6MiB")];
    let over = w
        .create(&init, &alice, json!({"filename": "over.bin"}))
        .await;
    w.upload_part(&sign, &alice, &over, 1, 7 * MIB).await;
    w.expect(
        &w.ctx(SignPart.name(), &small),
        SignPart,
        413,
        Call::new(SIGN)
            .owner(&alice)
            .path("uploadId", &over.id)
            .path("partNumber", 2)
            .query("key", &over.key),
    )
    .await;

    // ListParts: parts with and without the key, status, the uploads list
    // with bytes held, quota usage, all through a grant too.
    for call in [
        sized.call(LIST, &alice),
        Call::new(LIST)
            .owner(&alice)
            .path("uploadId", &open_ended.id),
        Call::new(STATUS).owner(&alice).path("uploadId", &sized.id),
        Call::new(UPLOADS).owner(&alice).query("bytes", "true"),
        Call::new(QUOTA).owner(&alice),
        granted.granted(G_LIST, &grant),
        Call::new(G_UPLOADS).path("grant", &grant),
        Call::new(G_QUOTA).path("grant", &grant),
    ] {
        w.expect(&list, ListParts, 200, call).await;
    }

    // Complete: with the parts S3 holds, through a grant, one S3 lost
    // (completed behind the API's back), one over the size limit.
    w.expect(
        &complete,
        Complete,
        200,
        sized.call(COMPLETE, &alice).json(json!({})),
    )
    .await;
    w.expect(
        &complete,
        Complete,
        200,
        granted.granted(G_COMPLETE, &grant).json(json!({})),
    )
    .await;
    let vanished = w
        .create(
            &init,
            &alice,
            json!({"filename": "vanished.bin", "size": 100}),
        )
        .await;
    let etag = w.upload_part(&sign, &alice, &vanished, 1, 100).await;
    w.complete_in_s3(&vanished, &etag).await;
    w.expect(
        &complete,
        Complete,
        200,
        vanished.call(COMPLETE, &alice).json(json!({})),
    )
    .await;
    let too_big = w
        .create(&init, &alice, json!({"filename": "too-big.bin"}))
        .await;
    w.upload_part(&sign, &alice, &too_big, 1, 7 * MIB).await;
    w.expect(
        &w.ctx(Complete.name(), &small),
        Complete,
        413,
        too_big.call(COMPLETE, &alice).json(json!({})),
    )
    .await;

    // Downloads of completed uploads (a presigned GET each).
    w.expect(
        &list,
        ListParts,
        200,
        Call::new(DOWNLOAD)
            .owner(&alice)
            .path("uploadId", &sized.id),
    )
    .await;
    w.expect(
        &list,
        ListParts,
        200,
        Call::new(G_DOWNLOAD)
            .path("grant", &grant)
            .path("uploadId", &granted.id),
    )
    .await;

    // Abort: a live upload, through a grant, a POST form never used (its
    // object looked for), one completed straight in S3 (found, kept: 409).
    w.expect(&abort, Abort, 200, open_ended.call(ABORT, &alice))
        .await;
    w.expect(
        &abort,
        Abort,
        200,
        granted_to_abort.granted(G_ABORT, &grant),
    )
    .await;
    let form_key = form["fields"]["key"].as_str().unwrap();
    w.expect(
        &abort,
        Abort,
        200,
        Call::new(ABORT)
            .owner(&alice)
            .path("uploadId", form["uploadId"].as_str().unwrap())
            .query("key", form_key),
    )
    .await;
    let found = w
        .create(&init, &alice, json!({"filename": "found.bin", "size": 100}))
        .await;
    let etag = w.upload_part(&sign, &alice, &found, 1, 100).await;
    w.complete_in_s3(&found, &etag).await;
    w.expect(&abort, Abort, 409, found.call(ABORT, &alice))
        .await;

    Leftovers {
        alice,
        empty,
        small_file: puts["uploads"][0].clone(),
    }
}

/// What the API scenarios hand on to settle.
struct Leftovers {
    alice: String,
    /// The empty file's answer: a presigned PUT.
    empty: Value,
    /// One of the small files' answers (5 bytes).
    small_file: Value,
}

/// Multipart uploads S3 holds under the test's prefix.
async fn s3_uploads_under_prefix(w: &World) -> usize {
    w.stack
        .s3()
        .list_multipart_uploads()
        .bucket(&w.names.bucket)
        .prefix(&w.names.prefix)
        .send()
        .await
        .unwrap()
        .uploads()
        .len()
}

/// Settle on "Object Created": a single PUT landed (the empty file, a small
/// file), and a multipart upload completed straight in S3.
async fn settle_scenarios(w: &World, left: &Leftovers) {
    let ctx = w.ctx(SETTLE, &[]);
    let init = w.ctx(Function::Initiate.name(), &[]);
    let sign = w.ctx(Function::SignPart.name(), &[]);
    let rec = w.rec(SETTLE);
    let empty = &left.empty;
    put_ok(
        empty["url"].as_str().unwrap(),
        vec![],
        &signed_headers(empty),
    )
    .await;
    let small = &left.small_file;
    put_ok(
        small["url"].as_str().unwrap(),
        b"hello".to_vec(),
        &signed_headers(small),
    )
    .await;
    let multipart = w
        .create(
            &init,
            &left.alice,
            json!({"filename": "settled.bin", "size": 100}),
        )
        .await;
    let etag = w.upload_part(&sign, &left.alice, &multipart, 1, 100).await;
    w.complete_in_s3(&multipart, &etag).await;
    for (key, reason) in [
        (empty["key"].as_str().unwrap(), "PutObject"),
        (small["key"].as_str().unwrap(), "PutObject"),
        (multipart.key.as_str(), "CompleteMultipartUpload"),
    ] {
        rec.doing(&format!("settle: Object Created ({reason})"));
        let outcomes = Box::pin(partwise::settle::handle(
            &ctx,
            w.object_created(key, reason),
        ))
        .await
        .unwrap();
        assert!(
            matches!(
                outcomes.as_slice(),
                [partwise::settle::Outcome::Completed { .. }]
            ),
            "{key}: {outcomes:?}"
        );
    }
}

/// A scheduled sweep over stale uploads (live, completed straight in S3,
/// an orphan S3 alone holds), expired single-request uploads (one never
/// used, one whose object landed unannounced), and a drifted quota counter.
async fn sweep_scenario(w: &World, alice: &str) {
    use Function::*;
    let init = w.ctx(Initiate.name(), &[]);
    let sign = w.ctx(SignPart.name(), &[]);
    let short = w.ctx(Initiate.name(), &[("PARTWISE_URL_EXPIRY_SECS", "1")]);
    let stale = w
        .create(&init, alice, json!({"filename": "stale.bin", "size": 100}))
        .await;
    w.upload_part(&sign, alice, &stale, 1, 100).await;
    let done = w
        .create(&init, alice, json!({"filename": "done.bin", "size": 100}))
        .await;
    let etag = w.upload_part(&sign, alice, &done, 1, 100).await;
    w.complete_in_s3(&done, &etag).await;
    w.stack
        .s3()
        .create_multipart_upload()
        .bucket(&w.names.bucket)
        .key(format!("{}orphan/left.bin", w.names.prefix))
        .send()
        .await
        .unwrap();
    w.expect(
        &short,
        Initiate,
        200,
        Call::new(PARAMS)
            .owner(alice)
            .query("filename", "expired.txt")
            .query("type", "text/plain"),
    )
    .await;
    let landed = w
        .expect(
            &short,
            Initiate,
            200,
            Call::new(CREATE)
                .owner(alice)
                .json(json!({"filename": "landed.txt", "type": "text/plain", "size": 0})),
        )
        .await;
    w.stack
        .s3()
        .put_object()
        .bucket(&w.names.bucket)
        .key(landed["key"].as_str().unwrap())
        .body(Vec::new().into())
        .send()
        .await
        .unwrap();
    // A counter left high by a release that never happened (a crash), last
    // changed long enough ago to be recounted.
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    let dave = owner("dave");
    let sweep = w.ctx(
        SWEEP,
        &[
            ("PARTWISE_SWEEP_MAX_AGE_SECS", "1"),
            ("PARTWISE_SETTLE_GRACE_SECS", "0"),
        ],
    );
    w.stack
        .dynamodb()
        .put_item()
        .table_name(&w.names.table)
        .item("upload_id", S(counters::counter_id(&dave)))
        .item("quota_owner", S(dave.clone()))
        .item("quota_shard", S(sweep.store.shard_of(&dave)))
        .item("live", N("2".into()))
        .item("bytes", N("200".into()))
        .item(
            "quota_updated_at",
            N((partwise::model::now_millis() - 10 * counters::SETTLE_MS).to_string()),
        )
        .send()
        .await
        .unwrap();
    // Everything above older than the sweep's max age (S3 keeps whole seconds).
    tokio::time::sleep(Duration::from_millis(2200)).await;
    w.rec(SWEEP).doing("sweep: scheduled run");
    let scheduled = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let s = Box::pin(partwise::sweep::handle(&sweep, scheduled, None))
        .await
        .unwrap();
    assert!(s.aborted >= 1, "{s:?}");
    assert!(s.orphans_aborted >= 1, "{s:?}");
    assert!(s.completions_resolved >= 2, "{s:?}");
    assert!(s.expired >= 1, "{s:?}");
    assert!(s.quota_counters_fixed >= 1, "{s:?}");
    assert_eq!(s.listing_failures, 0, "{s:?}");
}

/// Notify on every change the table's stream holds (upload events to a
/// loopback EventBridge).
async fn notify_scenario(w: &World) {
    let receiver = Receiver::for_stack().await.unwrap();
    let sdk = w.stack.sdk_config();
    let config = w
        .stack
        .partwise_config(&[("PARTWISE_TABLE", w.names.table.as_str())])
        .unwrap();
    let mut notifier = partwise::notify::Notifier::new(&config, &sdk);
    notifier.publisher.client = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&sdk)
            .endpoint_url(receiver.url())
            .interceptor(w.rec(NOTIFY).clone())
            .build(),
    );
    let mut reader = partwise_local::events::StreamReader::open(&w.stack, &w.names.table, true)
        .await
        .unwrap();
    let mut records = vec![];
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let more = reader.poll().await.unwrap_or_default();
        if more.is_empty() && !records.is_empty() || Instant::now() > deadline {
            break;
        }
        records.extend(more);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!records.is_empty(), "the table's stream");
    w.rec(NOTIFY).doing("notify: stream batch");
    while !records.is_empty() {
        let batch: Vec<_> = records.drain(..records.len().min(100)).collect();
        Box::pin(partwise::notify::handle(
            &notifier,
            partwise_local::events::lambda_event(batch),
        ))
        .await;
    }
    assert!(!receiver.accepted().is_empty(), "events published");
}

/// Per action and resource shape: the first refusal (if any), an ARN, and what needed it.
type Verdict = (Option<String>, Option<String>, BTreeSet<String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_a_function_makes_or_signs_is_allowed_by_its_role() {
    let started = Instant::now();
    let w = World::new().await;
    let left = Box::pin(api_scenarios(&w)).await;
    Box::pin(settle_scenarios(&w, &left)).await;
    Box::pin(sweep_scenario(&w, &left.alice)).await;
    Box::pin(notify_scenario(&w)).await;
    eprintln!("scenarios ran in {:?}", started.elapsed());

    let doc: Yaml = serde_yaml::from_str(&template_text()).unwrap();
    let roles = roles(&doc, &w.names);
    let mut failures = vec![];

    // Every function of the template is driven here, and every route of the API's.
    for binary in roles.keys() {
        if !w.recorders.contains_key(binary.as_str()) {
            failures.push(format!(
                "{} ({binary}) has no scenario in the IAM test: add one",
                roles[binary].logical_id
            ));
        }
    }
    let covered = w.covered.lock().unwrap().clone();
    for r in ROUTES {
        if !covered.contains(&(r.function.name(), r.key())) {
            failures.push(format!(
                "route {} of {} was never answered 2xx by the IAM test: add a scenario, or its requests go unchecked",
                r.key(),
                r.function.name()
            ));
        }
    }

    for (binary, rec) in &w.recorders {
        let Some(role) = roles.get(*binary) else {
            failures.push(format!(
                "no function in template.yaml builds the binary {binary}"
            ));
            continue;
        };
        let needs = rec.needs();
        assert!(!needs.is_empty(), "{binary} was never driven");
        // One line per action and resource shape (each object key is its own ARN).
        let mut grouped: BTreeMap<(String, String), Verdict> = BTreeMap::new();
        for ((action, resource), why) in &needs {
            let arn = resource.arn();
            let verdict = refusal(role, action, arn.as_deref());
            let entry = grouped
                .entry((action.clone(), resource.shape(&w.names)))
                .or_default();
            if entry.0.is_none() {
                entry.0 = verdict;
                entry.1 = arn;
            }
            entry.2.extend(why.iter().cloned());
        }
        eprintln!("{} ({binary}):", role.logical_id);
        for ((action, shape), (verdict, arn, why)) in &grouped {
            let mark = if verdict.is_none() {
                "ok     "
            } else {
                "REFUSED"
            };
            eprintln!("  {mark} {action} on {shape}");
            if let Some(reason) = verdict {
                failures.push(format!(
                    "{} ({binary}) may not {action} on {shape} [e.g. {}]: {reason}; needed by {}",
                    role.logical_id,
                    arn.as_deref().unwrap_or("?"),
                    why.iter().cloned().collect::<Vec<_>>().join("; ")
                ));
            }
        }
    }
    eprintln!("IAM test took {:?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} IAM gap(s) in template.yaml:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[test]
fn iam_wildcards_and_substitutions() {
    assert!(glob(
        "arn:aws:s3:::b/uploads/*",
        "arn:aws:s3:::b/uploads/x/y.bin"
    ));
    assert!(!glob(
        "arn:aws:s3:::b/uploads/*",
        "arn:aws:s3:::b/other/y.bin"
    ));
    assert!(!glob("arn:aws:s3:::b/uploads/*", "arn:aws:s3:::b"));
    assert!(glob("dynamodb:*", "dynamodb:query"));
    assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
    let vars = BTreeMap::from([("T.Arn".to_string(), "arn:t".to_string())]);
    assert_eq!(substitute("${T.Arn}/index/x", &vars), "arn:t/index/x");
    assert_eq!(substitute("${Other}/x", &vars), "${Other}/x");
}
