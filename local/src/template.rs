//! `template.yaml`, read as the one source of truth for the local table, the
//! bucket's CORS rules and the HTTP API's CORS, so local and cloud cannot drift.
//!
//! Properties are mapped field by field from CloudFormation's names to the AWS
//! APIs'. A `!Ref` to a template parameter in them takes the parameter's value:
//! its environment variable's ([`PARAMETER_ENV`]) when set, else its default,
//! as `sam deploy --parameter-overrides` would. A property with no local meaning (tags, encryption, backups...) is
//! skipped quietly when listed in the `NOT_LOCAL` lists, and with a warning
//! otherwise, so that a new template property is noticed but never blocks a run.

use aws_sdk_dynamodb::types as ddb;
use aws_sdk_s3::types as s3;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_yaml::Value;
use std::collections::BTreeMap;

/// The template the crate was built with (cargo rebuilds when it changes).
pub const TEMPLATE: &str = include_str!("../../template.yaml");
/// Logical id of the tracking table in `template.yaml`.
pub const TABLE_RESOURCE: &str = "UploadsTable";
/// Logical id of the uploads bucket in `template.yaml`.
pub const BUCKET_RESOURCE: &str = "UploadsBucket";
/// Template parameters the local stack reads from the environment, as a
/// deploy takes them from its parameter overrides.
pub const PARAMETER_ENV: &[(&str, &str)] = &[("AllowedOrigins", "PARTWISE_ALLOWED_ORIGINS")];

/// Table properties applied locally (fields of `TableProperties`).
const TABLE_MAPPED: &[&str] = &[
    "AttributeDefinitions",
    "KeySchema",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "BillingMode",
    "ProvisionedThroughput",
    "StreamSpecification",
    "SSESpecification",
    "TableClass",
    "DeletionProtectionEnabled",
    "TimeToLiveSpecification",
    "PointInTimeRecoverySpecification",
];
/// Bucket properties applied locally (fields of `BucketProperties`).
const BUCKET_MAPPED: &[&str] = &["CorsConfiguration"];
/// Table properties that only mean something on AWS (or are set by the stack).
const TABLE_NOT_LOCAL: &[&str] = &[
    "TableName",
    "Tags",
    "ContributorInsightsSpecification",
    "KinesisStreamSpecification",
    "ImportSourceSpecification",
    "ResourcePolicy",
    "OnDemandThroughput",
    "WarmThroughput",
];
/// Bucket properties that only mean something on AWS (or are set by the stack).
const BUCKET_NOT_LOCAL: &[&str] = &[
    "BucketName",
    "Tags",
    "BucketEncryption",
    "PublicAccessBlockConfiguration",
    "OwnershipControls",
    "LoggingConfiguration",
    "VersioningConfiguration",
    "NotificationConfiguration",
    "MetricsConfigurations",
    "AnalyticsConfigurations",
    "InventoryConfigurations",
    "IntelligentTieringConfigurations",
    "ObjectLockConfiguration",
    "ObjectLockEnabled",
    "ReplicationConfiguration",
    "AccelerateConfiguration",
    "AccessControl",
];

/// A template that does not say what the local stack needs.
#[derive(Debug, thiserror::Error)]
#[error("template.yaml: {0}")]
pub struct TemplateError(String);

impl TemplateError {
    fn new(msg: impl Into<String>) -> Self {
        TemplateError(msg.into())
    }
}

/// A parsed CloudFormation/SAM template. Intrinsic-function tags (`!Ref`,
/// `!Sub`, ...) are kept as tagged values; only properties we map must be plain.
#[derive(Debug, Clone)]
pub struct Template {
    doc: Value,
    /// Parameter values given, by name; the others take their `Default`.
    parameters: BTreeMap<String, String>,
}

impl Template {
    /// Parses template text.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let doc: Value =
            serde_yaml::from_str(text).map_err(|e| TemplateError::new(format!("not YAML: {e}")))?;
        if !doc.get("Resources").is_some_and(Value::is_mapping) {
            return Err(TemplateError::new("no Resources mapping"));
        }
        Ok(Template {
            doc,
            parameters: BTreeMap::new(),
        })
    }

    /// The template the crate was built with, its parameters taken from the
    /// process environment ([`PARAMETER_ENV`]).
    pub fn bundled() -> Result<Self, TemplateError> {
        Ok(Self::parse(TEMPLATE)?.with_env(|k| std::env::var(k).ok()))
    }

    /// Gives parameter `name` the value `value` (a `CommaDelimitedList` as
    /// its comma-separated text).
    pub fn with_parameter(mut self, name: &str, value: &str) -> Self {
        self.parameters.insert(name.to_string(), value.to_string());
        self
    }

    /// The parameters of [`PARAMETER_ENV`] whose variable `get` finds set
    /// and not blank.
    pub fn with_env(self, get: impl Fn(&str) -> Option<String>) -> Self {
        PARAMETER_ENV.iter().fold(self, |t, (name, var)| {
            match get(var).filter(|v| !v.trim().is_empty()) {
                Some(v) => t.with_parameter(name, &v),
                None => t,
            }
        })
    }

    /// Parameter `name`'s value, given or default, as YAML: a list of
    /// trimmed strings for a `CommaDelimitedList`, else a string.
    pub fn parameter(&self, name: &str) -> Option<Value> {
        let declared = self.doc.get("Parameters")?.get(name)?;
        let text = match self.parameters.get(name) {
            Some(v) => v.clone(),
            None => match declared.get("Default")? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            },
        };
        Some(match declared.get("Type").and_then(Value::as_str) {
            Some("CommaDelimitedList") => Value::Sequence(
                text.split(',')
                    .map(|v| Value::String(v.trim().to_string()))
                    .collect(),
            ),
            _ => Value::String(text),
        })
    }

    /// `v` with every `!Ref` to a parameter replaced by its value; other
    /// tags are left for the typed parsing to refuse.
    fn resolve(&self, v: &Value) -> Value {
        match v {
            Value::Tagged(t) if t.tag == "Ref" => t
                .value
                .as_str()
                .and_then(|name| self.parameter(name))
                .unwrap_or_else(|| v.clone()),
            Value::Sequence(items) => {
                Value::Sequence(items.iter().map(|i| self.resolve(i)).collect())
            }
            Value::Mapping(m) => Value::Mapping(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.resolve(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The tracking table's definition, from [`TABLE_RESOURCE`].
    pub fn table(&self) -> Result<TableDefinition, TemplateError> {
        let props = self.properties(TABLE_RESOURCE, "AWS::DynamoDB::Table")?;
        let props = mapped_only(TABLE_RESOURCE, props, TABLE_MAPPED, TABLE_NOT_LOCAL)?;
        from_yaml::<TableProperties>(TABLE_RESOURCE, &props)?.into_definition()
    }

    /// The bucket's CORS rules, from [`BUCKET_RESOURCE`] (none if it declares none).
    pub fn bucket_cors(&self) -> Result<Vec<s3::CorsRule>, TemplateError> {
        let props = self.properties(BUCKET_RESOURCE, "AWS::S3::Bucket")?;
        let props = mapped_only(BUCKET_RESOURCE, props, BUCKET_MAPPED, BUCKET_NOT_LOCAL)?;
        from_yaml::<BucketProperties>(BUCKET_RESOURCE, &self.resolve(&props))?
            .cors_configuration
            .map(|c| c.cors_rules)
            .unwrap_or_default()
            .into_iter()
            .map(CorsRuleSpec::into_sdk)
            .collect()
    }

    /// The HTTP API's CORS configuration: from the first `AWS::Serverless::HttpApi`
    /// resource that has one, else from `Globals.HttpApi`. `None` if the template
    /// has none, or only one built from intrinsic functions other than a
    /// parameter's `!Ref` (unknowable locally).
    pub fn http_api_cors(&self) -> Option<HttpApiCors> {
        let from_resources = self
            .resources()
            .filter(|(_, r)| {
                r.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::HttpApi")
            })
            .find_map(|(_, r)| r.get("Properties").and_then(|p| p.get("CorsConfiguration")));
        let from_globals = || {
            self.doc
                .get("Globals")
                .and_then(|g| g.get("HttpApi"))
                .and_then(|h| h.get("CorsConfiguration"))
        };
        let value = self.resolve(from_resources.or_else(from_globals)?);
        match value {
            // SAM: `CorsConfiguration: true` allows every origin.
            Value::Bool(true) => Some(HttpApiCors::default()),
            Value::Mapping(_) => match serde_yaml::from_value(value.clone()) {
                Ok(cors) => Some(cors),
                Err(e) => {
                    tracing::warn!(
                        "template.yaml: HttpApi CorsConfiguration not usable locally ({e}); using defaults"
                    );
                    None
                }
            },
            _ => None,
        }
    }

    fn resources(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.doc
            .get("Resources")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.as_str()?, v)))
    }

    fn properties(&self, logical_id: &str, ty: &str) -> Result<&Value, TemplateError> {
        let (_, resource) = self
            .resources()
            .find(|(id, _)| *id == logical_id)
            .ok_or_else(|| TemplateError::new(format!("no resource {logical_id}")))?;
        let actual = resource
            .get("Type")
            .and_then(Value::as_str)
            .unwrap_or("(none)");
        if actual != ty {
            return Err(TemplateError::new(format!(
                "{logical_id} is a {actual}, expected {ty}"
            )));
        }
        resource
            .get("Properties")
            .ok_or_else(|| TemplateError::new(format!("{logical_id} has no Properties")))
    }
}

fn from_yaml<T: DeserializeOwned>(logical_id: &str, v: &Value) -> Result<T, TemplateError> {
    serde_yaml::from_value(v.clone())
        .map_err(|e| TemplateError::new(format!("{logical_id}.Properties: {e}")))
}

/// The properties we apply, alone: the others may hold intrinsic-function tags
/// that typed parsing cannot take. Unknown ones are reported, not fatal.
fn mapped_only(
    logical_id: &str,
    props: &Value,
    mapped: &[&str],
    not_local: &[&str],
) -> Result<Value, TemplateError> {
    let all = props
        .as_mapping()
        .ok_or_else(|| TemplateError::new(format!("{logical_id}.Properties is not a mapping")))?;
    let mut kept = serde_yaml::Mapping::new();
    for (k, v) in all {
        let name = k.as_str().unwrap_or_default();
        if mapped.contains(&name) {
            kept.insert(k.clone(), v.clone());
        } else if !not_local.contains(&name) {
            tracing::warn!(
                "template.yaml: {logical_id}.{name} is not applied by the local stack (local/src/template.rs)"
            );
        }
    }
    Ok(Value::Mapping(kept))
}

/// Everything needed to create the table locally, in the DynamoDB API's types;
/// fields are named after CreateTable's parameters. TTL and point-in-time
/// recovery are separate API calls after CreateTable (DynamoDB Local has no
/// point-in-time recovery: the stack skips it).
#[derive(Debug, Clone, Default)]
pub struct TableDefinition {
    pub attribute_definitions: Vec<ddb::AttributeDefinition>,
    pub key_schema: Vec<ddb::KeySchemaElement>,
    pub global_secondary_indexes: Option<Vec<ddb::GlobalSecondaryIndex>>,
    pub local_secondary_indexes: Option<Vec<ddb::LocalSecondaryIndex>>,
    pub billing_mode: Option<ddb::BillingMode>,
    pub provisioned_throughput: Option<ddb::ProvisionedThroughput>,
    pub stream_specification: Option<ddb::StreamSpecification>,
    pub sse_specification: Option<ddb::SseSpecification>,
    pub table_class: Option<ddb::TableClass>,
    pub deletion_protection_enabled: Option<bool>,
    pub time_to_live: Option<ddb::TimeToLiveSpecification>,
    pub point_in_time_recovery: Option<ddb::PointInTimeRecoverySpecification>,
}

/// `AWS::DynamoDB::Table` properties, in CloudFormation's names (exactly `TABLE_MAPPED`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct TableProperties {
    attribute_definitions: Vec<AttributeDefinitionSpec>,
    key_schema: Vec<KeyElementSpec>,
    global_secondary_indexes: Option<Vec<IndexSpec>>,
    local_secondary_indexes: Option<Vec<IndexSpec>>,
    billing_mode: Option<String>,
    provisioned_throughput: Option<ThroughputSpec>,
    stream_specification: Option<StreamSpec>,
    #[serde(rename = "SSESpecification")]
    sse_specification: Option<SseSpec>,
    table_class: Option<String>,
    deletion_protection_enabled: Option<bool>,
    time_to_live_specification: Option<TtlSpec>,
    point_in_time_recovery_specification: Option<PitrSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AttributeDefinitionSpec {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyElementSpec {
    attribute_name: String,
    key_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexSpec {
    index_name: String,
    key_schema: Vec<KeyElementSpec>,
    projection: ProjectionSpec,
    provisioned_throughput: Option<ThroughputSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProjectionSpec {
    projection_type: Option<String>,
    non_key_attributes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ThroughputSpec {
    read_capacity_units: i64,
    write_capacity_units: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamSpec {
    stream_view_type: String,
}

#[derive(Deserialize)]
struct SseSpec {
    #[serde(rename = "SSEEnabled")]
    enabled: bool,
    #[serde(rename = "SSEType")]
    sse_type: Option<String>,
    #[serde(rename = "KMSMasterKeyId")]
    kms_master_key_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TtlSpec {
    attribute_name: String,
    enabled: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PitrSpec {
    point_in_time_recovery_enabled: bool,
    recovery_period_in_days: Option<i32>,
}

/// Turns an SDK builder's missing-field error into ours.
fn built<T>(
    what: &str,
    r: Result<T, aws_sdk_dynamodb::error::BuildError>,
) -> Result<T, TemplateError> {
    r.map_err(|e| TemplateError::new(format!("{TABLE_RESOURCE}.{what}: {e}")))
}

impl KeyElementSpec {
    fn into_sdk(self, at: &str) -> Result<ddb::KeySchemaElement, TemplateError> {
        built(
            at,
            ddb::KeySchemaElement::builder()
                .attribute_name(self.attribute_name)
                .key_type(ddb::KeyType::from(self.key_type.as_str()))
                .build(),
        )
    }
}

fn key_schema(
    at: &str,
    keys: Vec<KeyElementSpec>,
) -> Result<Vec<ddb::KeySchemaElement>, TemplateError> {
    keys.into_iter().map(|k| k.into_sdk(at)).collect()
}

impl ThroughputSpec {
    fn into_sdk(self, at: &str) -> Result<ddb::ProvisionedThroughput, TemplateError> {
        built(
            at,
            ddb::ProvisionedThroughput::builder()
                .read_capacity_units(self.read_capacity_units)
                .write_capacity_units(self.write_capacity_units)
                .build(),
        )
    }
}

impl ProjectionSpec {
    fn into_sdk(self) -> ddb::Projection {
        ddb::Projection::builder()
            .set_projection_type(
                self.projection_type
                    .as_deref()
                    .map(ddb::ProjectionType::from),
            )
            .set_non_key_attributes(self.non_key_attributes)
            .build()
    }
}

impl IndexSpec {
    fn into_global(self) -> Result<ddb::GlobalSecondaryIndex, TemplateError> {
        let at = format!("GlobalSecondaryIndexes[{}]", self.index_name);
        let throughput = self
            .provisioned_throughput
            .map(|t| t.into_sdk(&at))
            .transpose()?;
        built(
            &at,
            ddb::GlobalSecondaryIndex::builder()
                .set_key_schema(Some(key_schema(&at, self.key_schema)?))
                .projection(self.projection.into_sdk())
                .set_provisioned_throughput(throughput)
                .index_name(self.index_name)
                .build(),
        )
    }

    fn into_local(self) -> Result<ddb::LocalSecondaryIndex, TemplateError> {
        let at = format!("LocalSecondaryIndexes[{}]", self.index_name);
        built(
            &at,
            ddb::LocalSecondaryIndex::builder()
                .set_key_schema(Some(key_schema(&at, self.key_schema)?))
                .projection(self.projection.into_sdk())
                .index_name(self.index_name)
                .build(),
        )
    }
}

impl TableProperties {
    fn into_definition(self) -> Result<TableDefinition, TemplateError> {
        let attribute_definitions = self
            .attribute_definitions
            .into_iter()
            .map(|a| {
                built(
                    "AttributeDefinitions",
                    ddb::AttributeDefinition::builder()
                        .attribute_name(a.attribute_name)
                        .attribute_type(ddb::ScalarAttributeType::from(a.attribute_type.as_str()))
                        .build(),
                )
            })
            .collect::<Result<_, _>>()?;
        let gsis = self
            .global_secondary_indexes
            .map(|v| {
                v.into_iter()
                    .map(IndexSpec::into_global)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let lsis = self
            .local_secondary_indexes
            .map(|v| {
                v.into_iter()
                    .map(IndexSpec::into_local)
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let stream = self
            .stream_specification
            .map(|s| {
                built(
                    "StreamSpecification",
                    ddb::StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(ddb::StreamViewType::from(s.stream_view_type.as_str()))
                        .build(),
                )
            })
            .transpose()?;
        let ttl = self
            .time_to_live_specification
            .map(|t| {
                built(
                    "TimeToLiveSpecification",
                    ddb::TimeToLiveSpecification::builder()
                        .attribute_name(t.attribute_name)
                        .enabled(t.enabled)
                        .build(),
                )
            })
            .transpose()?;
        let pitr = self
            .point_in_time_recovery_specification
            .map(|p| {
                built(
                    "PointInTimeRecoverySpecification",
                    ddb::PointInTimeRecoverySpecification::builder()
                        .point_in_time_recovery_enabled(p.point_in_time_recovery_enabled)
                        .set_recovery_period_in_days(p.recovery_period_in_days)
                        .build(),
                )
            })
            .transpose()?;
        Ok(TableDefinition {
            attribute_definitions,
            key_schema: key_schema("KeySchema", self.key_schema)?,
            global_secondary_indexes: gsis,
            local_secondary_indexes: lsis,
            billing_mode: self.billing_mode.as_deref().map(ddb::BillingMode::from),
            provisioned_throughput: self
                .provisioned_throughput
                .map(|t| t.into_sdk("ProvisionedThroughput"))
                .transpose()?,
            stream_specification: stream,
            sse_specification: self.sse_specification.map(|s| {
                ddb::SseSpecification::builder()
                    .enabled(s.enabled)
                    .set_sse_type(s.sse_type.as_deref().map(ddb::SseType::from))
                    .set_kms_master_key_id(s.kms_master_key_id)
                    .build()
            }),
            table_class: self.table_class.as_deref().map(ddb::TableClass::from),
            deletion_protection_enabled: self.deletion_protection_enabled,
            time_to_live: ttl,
            point_in_time_recovery: pitr,
        })
    }
}

/// `AWS::S3::Bucket` properties, in CloudFormation's names (exactly `BUCKET_MAPPED`).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct BucketProperties {
    cors_configuration: Option<CorsConfigurationSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CorsConfigurationSpec {
    cors_rules: Vec<CorsRuleSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CorsRuleSpec {
    id: Option<String>,
    allowed_methods: Vec<String>,
    allowed_origins: Vec<String>,
    allowed_headers: Option<Vec<String>>,
    exposed_headers: Option<Vec<String>>,
    max_age: Option<i32>,
}

impl CorsRuleSpec {
    fn into_sdk(self) -> Result<s3::CorsRule, TemplateError> {
        s3::CorsRule::builder()
            .set_id(self.id)
            .set_allowed_methods(Some(self.allowed_methods))
            .set_allowed_origins(Some(self.allowed_origins))
            .set_allowed_headers(self.allowed_headers)
            .set_expose_headers(self.exposed_headers)
            .set_max_age_seconds(self.max_age)
            .build()
            .map_err(|e| TemplateError::new(format!("{BUCKET_RESOURCE}.CorsConfiguration: {e}")))
    }
}

/// SAM's `HttpApi` `CorsConfiguration`, in its own names; absent fields fall
/// back to the local server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HttpApiCors {
    pub allow_origins: Option<Vec<String>>,
    pub allow_methods: Option<Vec<String>>,
    pub allow_headers: Option<Vec<String>>,
    pub expose_headers: Option<Vec<String>>,
    pub max_age: Option<u32>,
    pub allow_credentials: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGGED: &str = r#"
Parameters:
  Stage: {Type: String}
Globals:
  HttpApi:
    CorsConfiguration:
      AllowOrigins: ["https://app.example"]
      MaxAge: 60
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Environment:
        Variables:
          PARTWISE_TABLE: !Ref UploadsTable
          NAME: !Sub "${AWS::StackName}-x"
  UploadsTable:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-uploads"
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: sk, AttributeType: N}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
      GlobalSecondaryIndexes:
        - IndexName: by-sk
          KeySchema: [{AttributeName: sk, KeyType: HASH}]
          Projection: {ProjectionType: INCLUDE, NonKeyAttributes: [a, b]}
          ContributorInsightsSpecification: !If [Prod, {Enabled: true}, !Ref AWS::NoValue]
      BillingMode: PAY_PER_REQUEST
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
      SomethingNew: 1
  UploadsBucket:
    Type: AWS::S3::Bucket
    Properties:
      BucketName: !Ref AWS::NoValue
"#;

    #[test]
    fn bundled_template_maps_completely() {
        let t = Template::bundled().unwrap();
        let table = t.table().unwrap();
        assert!(!table.key_schema.is_empty());
        // Every key attribute, of the table and of its indexes, is declared.
        let declared: Vec<&str> = table
            .attribute_definitions
            .iter()
            .map(|a| a.attribute_name())
            .collect();
        let gsi_keys = table
            .global_secondary_indexes
            .iter()
            .flatten()
            .flat_map(|g| g.key_schema());
        for k in table.key_schema.iter().chain(gsi_keys) {
            assert!(
                declared.contains(&k.attribute_name()),
                "{} is not declared",
                k.attribute_name()
            );
        }
        assert!(!t.bucket_cors().unwrap().is_empty());
    }

    #[test]
    fn allowed_origins_reach_the_bucket_and_the_api_alike() {
        let origins = |t: &Template| {
            let bucket: Vec<Vec<String>> = t
                .bucket_cors()
                .unwrap()
                .iter()
                .map(|r| r.allowed_origins().to_vec())
                .collect();
            let api = t.http_api_cors().unwrap().allow_origins.unwrap();
            (bucket, api)
        };
        // The parameter, a CommaDelimitedList defaulting to `*`.
        let t = Template::parse(TEMPLATE).unwrap();
        let param = &t.doc["Parameters"]["AllowedOrigins"];
        assert_eq!(param["Type"].as_str(), Some("CommaDelimitedList"));
        assert_eq!(param["Default"].as_str(), Some("*"));
        // Both CORS configurations name it, and nothing else.
        let is_ref = |v: &Value| matches!(v, Value::Tagged(t) if t.tag == "Ref" && t.value.as_str() == Some("AllowedOrigins"));
        let api = t
            .resources()
            .find(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::HttpApi"))
            .unwrap()
            .1;
        assert!(is_ref(
            &api["Properties"]["CorsConfiguration"]["AllowOrigins"]
        ));
        let rules = t.properties(BUCKET_RESOURCE, "AWS::S3::Bucket").unwrap()["CorsConfiguration"]
            ["CorsRules"]
            .as_sequence()
            .unwrap();
        assert!(!rules.is_empty());
        for rule in rules {
            assert!(is_ref(&rule["AllowedOrigins"]), "{rule:?}");
        }

        assert_eq!(
            origins(&t),
            (vec![vec!["*".to_string()]], vec!["*".to_string()])
        );
        let env = |k: &str| {
            (k == "PARTWISE_ALLOWED_ORIGINS")
                .then(|| "https://app.example, https://admin.example".to_string())
        };
        let narrowed = Template::parse(TEMPLATE).unwrap().with_env(env);
        let want = vec![
            "https://app.example".to_string(),
            "https://admin.example".to_string(),
        ];
        assert_eq!(origins(&narrowed), (vec![want.clone()], want));
        // A blank variable is no setting.
        let blank = Template::parse(TEMPLATE)
            .unwrap()
            .with_env(|_| Some("  ".into()));
        assert_eq!(origins(&blank).1, ["*"]);
    }

    #[test]
    fn intrinsic_tags_elsewhere_are_tolerated() {
        let t = Template::parse(TAGGED).unwrap();
        let table = t.table().unwrap();
        assert_eq!(table.attribute_definitions.len(), 2);
        assert_eq!(
            table.attribute_definitions[1].attribute_type(),
            &ddb::ScalarAttributeType::N
        );
        let gsi = &table.global_secondary_indexes.unwrap()[0];
        assert_eq!(gsi.index_name(), "by-sk");
        let projection = gsi.projection().unwrap();
        assert_eq!(
            projection.projection_type(),
            Some(&ddb::ProjectionType::Include)
        );
        assert_eq!(projection.non_key_attributes(), ["a", "b"]);
        assert_eq!(table.billing_mode, Some(ddb::BillingMode::PayPerRequest));
        assert_eq!(table.time_to_live.unwrap().attribute_name(), "ttl");
        assert!(t.bucket_cors().unwrap().is_empty());
        let cors = t.http_api_cors().unwrap();
        assert_eq!(cors.allow_origins.unwrap(), ["https://app.example"]);
        assert_eq!(cors.max_age, Some(60));
    }

    #[test]
    fn mapped_property_lists_match_the_parsers() {
        // deny_unknown_fields: a listed name the parser does not know is an error.
        for (mapped, parse) in [
            (
                TABLE_MAPPED,
                (|v| from_yaml::<TableProperties>("T", v).map(|_| ())) as fn(&Value) -> _,
            ),
            (BUCKET_MAPPED, |v| {
                from_yaml::<BucketProperties>("B", v).map(|_| ())
            }),
        ] {
            for name in mapped {
                let mut m = serde_yaml::Mapping::new();
                m.insert(Value::from(*name), Value::Null);
                let err = parse(&Value::Mapping(m))
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                assert!(!err.contains("unknown field"), "{name}: {err}");
            }
        }
    }

    #[test]
    fn broken_templates_say_what_is_wrong() {
        let err = Template::parse("Resources: {}")
            .unwrap()
            .table()
            .unwrap_err();
        assert!(err.to_string().contains(TABLE_RESOURCE), "{err}");
        let err = Template::parse("a: [").unwrap_err();
        assert!(err.to_string().contains("YAML"), "{err}");
        let wrong_type =
            "Resources:\n  UploadsTable:\n    Type: AWS::S3::Bucket\n    Properties: {}\n";
        let err = Template::parse(wrong_type).unwrap().table().unwrap_err();
        assert!(
            err.to_string().contains("expected AWS::DynamoDB::Table"),
            "{err}"
        );
        let tagged_key = "Resources:\n  UploadsTable:\n    Type: AWS::DynamoDB::Table\n    Properties:\n      AttributeDefinitions: !Ref X\n      KeySchema: []\n";
        assert!(Template::parse(tagged_key).unwrap().table().is_err());
    }
}
