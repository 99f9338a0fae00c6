//! The environment Lambda gives each function: its variables from
//! `template.yaml` (parameter defaults, resources mapped to the local stack)
//! and Lambda's own, and nothing else (Lambda starts from an empty environment).

use partwise_local::Stack;
use partwise_local::template::TEMPLATE;
use serde_yaml::Value;
use std::collections::BTreeMap;

/// One function of `template.yaml`: its binary and the variables it is given.
#[derive(Debug, Clone)]
pub struct Function {
    /// `Metadata.BuildProperties.Binary` (also the binary's file name).
    pub binary: String,
    pub memory_mb: u64,
    /// The template's variables, resolved for the local stack.
    pub vars: BTreeMap<String, String>,
}

/// Every function the template deploys, in template order. `resources` maps
/// a resource's logical id (`UploadsBucket`...) to its local value; a
/// variable naming an unknown resource is an error, so a new one is noticed.
pub fn functions(resources: &BTreeMap<&str, String>) -> Result<Vec<Function>, String> {
    let doc: Value = serde_yaml::from_str(TEMPLATE).map_err(|e| e.to_string())?;
    let global = &doc["Globals"]["Function"];
    let resolve = |v: &Value| -> Result<String, String> {
        match v {
            Value::Tagged(t) if t.tag == "!Ref" => {
                let name = t.value.as_str().ok_or("!Ref of a non-string")?;
                if let Some(local) = resources.get(name) {
                    return Ok(local.clone());
                }
                let default = &doc["Parameters"][name]["Default"];
                scalar(default).ok_or(format!("!Ref {name}: no default and no local value"))
            }
            other => scalar(other).ok_or(format!("unsupported value {other:?}")),
        }
    };
    let mut out = vec![];
    let Some(resources_map) = doc["Resources"].as_mapping() else {
        return Err("template.yaml has no Resources".into());
    };
    for (_, r) in resources_map {
        if r["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(binary) = r["Metadata"]["BuildProperties"]["Binary"].as_str() else {
            continue;
        };
        let mut vars = BTreeMap::new();
        for source in [
            &global["Environment"]["Variables"],
            &r["Properties"]["Environment"]["Variables"],
        ] {
            for (k, v) in source.as_mapping().into_iter().flatten() {
                let k = k.as_str().ok_or("non-string variable name")?;
                vars.insert(k.to_string(), resolve(v)?);
            }
        }
        // Lambda's logging settings, from the template's LoggingConfig.
        let logging = &global["LoggingConfig"];
        if let Some(format) = logging["LogFormat"].as_str() {
            vars.insert("AWS_LAMBDA_LOG_FORMAT".into(), format.into());
        }
        if !logging["ApplicationLogLevel"].is_null() {
            vars.insert(
                "AWS_LAMBDA_LOG_LEVEL".into(),
                resolve(&logging["ApplicationLogLevel"])?,
            );
        }
        let memory = &r["Properties"]["MemorySize"];
        let memory = if memory.is_null() {
            &global["MemorySize"]
        } else {
            memory
        };
        out.push(Function {
            binary: binary.to_string(),
            memory_mb: memory.as_u64().unwrap_or(128),
            vars,
        });
    }
    Ok(out)
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The full environment of one start: Lambda's own variables, the
/// function's, and the local stack's endpoints and credentials (which stand
/// for the role's credentials Lambda puts in the environment).
pub fn environment(
    name: &str,
    memory_mb: u64,
    runtime_api: &str,
    vars: &BTreeMap<String, String>,
    stack: &Stack,
    extra: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
        ("LANG", "en_US.UTF-8"),
        ("TZ", ":UTC"),
        ("LAMBDA_TASK_ROOT", "/var/task"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("_HANDLER", "bootstrap"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local"),
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.insert("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.into());
    env.insert("AWS_LAMBDA_FUNCTION_NAME".into(), name.into());
    env.insert(
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(),
        memory_mb.to_string(),
    );
    env.insert(
        "AWS_LAMBDA_LOG_GROUP_NAME".into(),
        format!("/aws/lambda/{name}"),
    );
    env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
    env.extend(stack.env().iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(region) = stack.var("AWS_REGION") {
        env.insert("AWS_DEFAULT_REGION".into(), region.into());
    }
    env.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}
