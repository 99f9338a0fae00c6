//! A real local AWS stack on loopback: Garage for S3, DynamoDB Local for the
//! table, both on free ports in a fresh temp dir, shaped by `template.yaml`.
//!
//! Tests either start their own [`Stack`] or attach to one that
//! `scripts/test.sh` started (`partwise-local stack`), through the same
//! environment variables a Partwise process reads: see [`Stack::from_env_or_start`].

mod dynamodb;
mod garage;

use crate::process::{Daemon, ScratchDir, free_ports};
use crate::template::{Template, TemplateError};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::{Credentials, SharedCredentialsProvider};
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The fixed test key imported into Garage: local only, never a real credential.
pub const ACCESS_KEY_ID: &str = "GK0a11ce0f5eed0000deadbeef";
/// Secret of [`ACCESS_KEY_ID`].
pub const SECRET_ACCESS_KEY: &str =
    "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7";
/// The region Garage is configured for, and every client signs for.
pub const REGION: &str = "us-east-1";
/// Bucket a fresh stack creates (`PARTWISE_BUCKET`).
pub const BUCKET: &str = "partwise-uploads";
/// Table a fresh stack creates (`PARTWISE_TABLE`).
pub const TABLE: &str = "partwise-uploads";

/// Env var names of [`Stack::env`].
pub mod vars {
    /// Garage's S3 API, read by the SDK for S3 only.
    pub const S3_ENDPOINT: &str = "AWS_ENDPOINT_URL_S3";
    /// DynamoDB Local, read by the SDK for DynamoDB only.
    pub const DYNAMODB_ENDPOINT: &str = "AWS_ENDPOINT_URL_DYNAMODB";
    /// Always `us-east-1`: Garage's `s3_region`, which signatures must name.
    pub const REGION: &str = "AWS_REGION";
    /// The fixed test key ([`super::ACCESS_KEY_ID`]).
    pub const ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
    /// The fixed test secret ([`super::SECRET_ACCESS_KEY`]).
    pub const SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
    /// Partwise's bucket setting.
    pub const BUCKET: &str = "PARTWISE_BUCKET";
    /// Partwise's table setting.
    pub const TABLE: &str = "PARTWISE_TABLE";
    /// `true`: Garage serves buckets by path, not by virtual host.
    pub const FORCE_PATH_STYLE: &str = "PARTWISE_S3_FORCE_PATH_STYLE";
    /// Every variable a stack defines, in the order `partwise-local stack` prints them.
    pub const ALL: &[&str] = &[
        S3_ENDPOINT,
        DYNAMODB_ENDPOINT,
        REGION,
        ACCESS_KEY_ID,
        SECRET_ACCESS_KEY,
        BUCKET,
        TABLE,
        FORCE_PATH_STYLE,
    ];
}

/// Why the stack could not start or be reached.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// Temp dir, ports or process spawning.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// `template.yaml` does not describe the table or bucket usably.
    #[error(transparent)]
    Template(#[from] TemplateError),
    /// Garage or DynamoDB Local is not installed in the cache.
    #[error("{0} (install it with scripts/install-deps.sh garage dynamodb)")]
    NotInstalled(String),
    /// A setup step or a readiness check failed.
    #[error("{0}")]
    Setup(String),
}

fn setup(e: impl std::fmt::Display) -> StackError {
    StackError::Setup(e.to_string())
}

/// Where `scripts/install-deps.sh` puts Garage and DynamoDB Local.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("PARTWISE_CACHE").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| ".".into()))
            .join(".cache/partwise"),
    }
}

/// A stack chosen but not yet started: ports, directory and names are fixed,
/// so its [`env`](StackPlan::env) is known before anything runs. `serve` uses
/// this to set its process environment while it is still single-threaded.
pub struct StackPlan {
    dir: ScratchDir,
    cache: PathBuf,
    s3_port: u16,
    rpc_port: u16,
    admin_port: u16,
    dynamodb_port: u16,
}

impl StackPlan {
    /// Picks free ports and creates the temp dir.
    pub fn new() -> Result<StackPlan, StackError> {
        let dir = ScratchDir::new("partwise-stack")?;
        let ports = free_ports(4)?;
        Ok(StackPlan {
            dir,
            cache: cache_dir(),
            s3_port: ports[0],
            rpc_port: ports[1],
            admin_port: ports[2],
            dynamodb_port: ports[3],
        })
    }

    /// The variables the started stack's [`Stack::env`] will return.
    pub fn env(&self) -> BTreeMap<String, String> {
        Self::env_of(self.s3_port, self.dynamodb_port)
    }

    /// Starts both servers, waits until they answer, then creates the bucket
    /// (with its CORS) and the table from `template.yaml`.
    ///
    /// Call it from the thread that will own the stack: on Linux the servers
    /// are killed if that thread dies (a safety net against leaks).
    pub async fn start(self) -> Result<Stack, StackError> {
        let template = Template::bundled()?;
        // Fail on a broken template before starting anything.
        let table = template.table()?;
        let cors = template.bucket_cors()?;

        let garage_bin = self.cache.join("garage-2.5.0/bin/garage");
        let dynamodb_dir = self.cache.join("dynamodb-local-2.9.30");
        if !garage_bin.is_file() {
            return Err(StackError::NotInstalled(format!(
                "no Garage at {}",
                garage_bin.display()
            )));
        }
        if !dynamodb_dir.join("DynamoDBLocal.jar").is_file() {
            return Err(StackError::NotInstalled(format!(
                "no DynamoDB Local in {}",
                dynamodb_dir.display()
            )));
        }

        let garage_config = garage::write_config(
            self.dir.path(),
            self.rpc_port,
            self.s3_port,
            self.admin_port,
        )?;
        let mut processes = Processes {
            garage: garage::spawn(&garage_bin, &garage_config, self.dir.path())?,
            dynamodb: dynamodb::spawn(&dynamodb_dir, self.dynamodb_port, self.dir.path())?,
            dir: self.dir,
        };
        let env = StackEnv::from_map(&Self::env_of(self.s3_port, self.dynamodb_port))?;
        let stack_clients = Clients::new(&env);

        let started = std::time::Instant::now();
        let garage = async {
            garage::bootstrap(
                &garage_bin,
                &garage_config,
                &mut processes.garage,
                &stack_clients.s3,
                &env.bucket,
            )
            .await?;
            tracing::debug!("Garage ready in {} ms", started.elapsed().as_millis());
            Ok::<_, StackError>(())
        };
        let dynamo = async {
            dynamodb::wait_ready(&mut processes.dynamodb, &stack_clients.dynamodb).await?;
            tracing::debug!(
                "DynamoDB Local ready in {} ms",
                started.elapsed().as_millis()
            );
            Ok::<_, StackError>(())
        };
        tokio::try_join!(garage, dynamo)?;

        let stack = Stack {
            env,
            clients: stack_clients,
            template,
            processes: Some(processes),
        };
        stack.put_cors(stack.bucket(), cors).await?;
        dynamodb::create_table(stack.dynamodb(), &table, stack.table()).await?;
        tracing::info!("local stack ready in {} ms", started.elapsed().as_millis());
        Ok(stack)
    }

    fn env_of(s3_port: u16, dynamodb_port: u16) -> BTreeMap<String, String> {
        let pairs = [
            (vars::S3_ENDPOINT, format!("http://127.0.0.1:{s3_port}")),
            (
                vars::DYNAMODB_ENDPOINT,
                format!("http://127.0.0.1:{dynamodb_port}"),
            ),
            (vars::REGION, REGION.into()),
            (vars::ACCESS_KEY_ID, ACCESS_KEY_ID.into()),
            (vars::SECRET_ACCESS_KEY, SECRET_ACCESS_KEY.into()),
            (vars::BUCKET, BUCKET.into()),
            (vars::TABLE, TABLE.into()),
            (vars::FORCE_PATH_STYLE, "true".into()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// The servers a stack owns. Field order is drop order: servers stop before
/// their directory is removed.
struct Processes {
    garage: Daemon,
    dynamodb: Daemon,
    dir: ScratchDir,
}

/// The stack's variables, checked.
#[derive(Debug, Clone)]
struct StackEnv {
    map: BTreeMap<String, String>,
    bucket: String,
    table: String,
}

impl StackEnv {
    /// Requires every variable, and loopback endpoints: whatever a test does
    /// to "the stack" (create tables, buckets) must never reach a real account.
    fn from_map(map: &BTreeMap<String, String>) -> Result<StackEnv, StackError> {
        let get = |k: &str| {
            map.get(k)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| setup(format!("{k} is not set")))
        };
        for k in vars::ALL {
            get(k)?;
        }
        for k in [vars::S3_ENDPOINT, vars::DYNAMODB_ENDPOINT] {
            let url = get(k)?;
            if !is_loopback_url(&url) {
                return Err(setup(format!(
                    "{k}={url} is not a loopback URL; refusing to treat it as the local stack"
                )));
            }
        }
        Ok(StackEnv {
            bucket: get(vars::BUCKET)?,
            table: get(vars::TABLE)?,
            map: map.clone(),
        })
    }

    fn get(&self, k: &str) -> &str {
        self.map.get(k).map_or("", String::as_str)
    }
}

/// Whether `url` is `http(s)://` to 127.0.0.0/8, localhost or [::1].
fn is_loopback_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Per-service endpoints for an [`SdkConfig`], read from the stack's variables
/// the way the SDK reads `AWS_ENDPOINT_URL_<SERVICE>` from the environment.
#[derive(Debug)]
struct StackServiceConfig(BTreeMap<String, String>);

impl LoadServiceConfig for StackServiceConfig {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        let service = key
            .service_id()
            .to_ascii_uppercase()
            .replace([' ', '-'], "_");
        let specific = format!("{}_{service}", key.env());
        self.0
            .get(&specific)
            .or_else(|| self.0.get(key.env()))
            .cloned()
    }
}

#[derive(Clone)]
struct Clients {
    sdk: SdkConfig,
    s3: aws_sdk_s3::Client,
    dynamodb: aws_sdk_dynamodb::Client,
}

impl Clients {
    fn new(env: &StackEnv) -> Clients {
        let credentials = Credentials::new(
            env.get(vars::ACCESS_KEY_ID),
            env.get(vars::SECRET_ACCESS_KEY),
            None,
            None,
            "partwise-local",
        );
        let sdk = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(env.get(vars::REGION).to_string()))
            .credentials_provider(SharedCredentialsProvider::new(credentials))
            .service_config(StackServiceConfig(env.map.clone()))
            .build();
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(true)
                .build(),
        );
        let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
        Clients { sdk, s3, dynamodb }
    }
}

/// A running local stack, or a handle on one another process runs.
///
/// Dropping a stack this process started stops both servers (and their process
/// groups) and removes its temp dir; dropping an attached one does nothing.
///
/// Do not keep a started stack in a `static`: it would never be dropped, and on
/// Linux its servers die with the thread that started it anyway. To share one
/// stack across tests, start it outside (`scripts/test.sh`) and attach.
pub struct Stack {
    env: StackEnv,
    clients: Clients,
    template: Template,
    processes: Option<Processes>,
}

impl Stack {
    /// Starts a fresh stack; see [`StackPlan::start`].
    pub async fn start() -> Result<Stack, StackError> {
        StackPlan::new()?.start().await
    }

    /// Attaches to the stack described by the process environment ([`vars`]),
    /// e.g. the one `scripts/test.sh` started. `Ok(None)` when
    /// `AWS_ENDPOINT_URL_S3` is unset; an error if it is set but incomplete or
    /// not on loopback.
    pub fn from_env() -> Result<Option<Stack>, StackError> {
        if std::env::var_os(vars::S3_ENDPOINT).is_none_or(|v| v.is_empty()) {
            return Ok(None);
        }
        let map = vars::ALL
            .iter()
            .filter_map(|k| Some((k.to_string(), std::env::var(k).ok()?)))
            .collect();
        Self::attach(&map).map(Some)
    }

    /// Attaches to a running stack described by `env` (as [`Stack::env`] returns it).
    pub fn attach(env: &BTreeMap<String, String>) -> Result<Stack, StackError> {
        let env = StackEnv::from_map(env)?;
        Ok(Stack {
            clients: Clients::new(&env),
            env,
            template: Template::bundled()?,
            processes: None,
        })
    }

    /// What tests should call: the shared stack if the environment names one
    /// (cheap), else a private one started for this test (a few seconds).
    pub async fn from_env_or_start() -> Result<Stack, StackError> {
        match Self::from_env()? {
            Some(stack) => Ok(stack),
            None => Self::start().await,
        }
    }

    /// The variables a Partwise process needs to use this stack:
    /// `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL_DYNAMODB`, `AWS_REGION`,
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `PARTWISE_BUCKET`,
    /// `PARTWISE_TABLE`, `PARTWISE_S3_FORCE_PATH_STYLE`. Pass it to
    /// `Command::envs` for a child process.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env.map
    }

    /// One variable of [`Stack::env`].
    pub fn var(&self, key: &str) -> Option<&str> {
        self.env.map.get(key).map(String::as_str)
    }

    /// The stack's bucket (`PARTWISE_BUCKET`).
    pub fn bucket(&self) -> &str {
        &self.env.bucket
    }

    /// The stack's table (`PARTWISE_TABLE`).
    pub fn table(&self) -> &str {
        &self.env.table
    }

    /// An SDK configuration pointing at this stack (per-service endpoints,
    /// credentials, region) without touching the process environment, which
    /// tests running in parallel must not change.
    pub fn sdk_config(&self) -> SdkConfig {
        self.clients.sdk.clone()
    }

    /// [`Stack::sdk_config`] with S3 reached at `s3_endpoint` instead of
    /// Garage itself: the S3 notification transport in front of it
    /// ([`crate::stand_ins::s3_events`]), so what a client uploads is notified.
    pub fn sdk_config_via(&self, s3_endpoint: &str) -> SdkConfig {
        let mut env = self.env.clone();
        env.map
            .insert(vars::S3_ENDPOINT.to_string(), s3_endpoint.to_string());
        Clients::new(&env).sdk
    }

    /// Garage's own address (`AWS_ENDPOINT_URL_S3`), for a proxy in front of it.
    pub fn s3_addr(&self) -> Result<std::net::SocketAddr, StackError> {
        let url = self.env.get(vars::S3_ENDPOINT);
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| setup(format!("{}={url}: {e}", vars::S3_ENDPOINT)))
    }

    /// An S3 client for this stack (path-style).
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.clients.s3
    }

    /// A DynamoDB client for this stack.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.clients.dynamodb
    }

    /// Partwise settings for this stack: `overrides` first (e.g. a private
    /// `PARTWISE_TABLE`), then [`Stack::env`]; the process environment is not read.
    pub fn partwise_config(
        &self,
        overrides: &[(&str, &str)],
    ) -> partwise::Result<partwise::Config> {
        partwise::Config::from_lookup(|k| {
            overrides
                .iter()
                .find(|(o, _)| *o == k)
                .map(|(_, v)| v.to_string())
                .or_else(|| self.var(k).map(str::to_string))
        })
    }

    /// A handler context on this stack, as a Lambda would build it.
    pub fn context(&self) -> partwise::Result<partwise::Context> {
        self.context_with(&[])
    }

    /// A handler context on this stack with some settings overridden.
    pub fn context_with(&self, overrides: &[(&str, &str)]) -> partwise::Result<partwise::Context> {
        Ok(partwise::Context::new(
            self.partwise_config(overrides)?,
            &self.sdk_config(),
        ))
    }

    /// A name no other test uses, e.g. `unique_name("t")` → `t-1a2b3c4d5e6f`.
    pub fn unique_name(prefix: &str) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        format!("{prefix}-{}", &id[..12])
    }

    /// Creates another table exactly as `template.yaml` defines the tracking
    /// table (indexes, TTL...), so a test can have one of its own.
    pub async fn create_table(&self, name: &str) -> Result<(), StackError> {
        dynamodb::create_table(&self.clients.dynamodb, &self.template.table()?, name).await
    }

    /// Creates another bucket with `template.yaml`'s CORS rules, owned by the stack's key.
    pub async fn create_bucket(&self, name: &str) -> Result<(), StackError> {
        self.clients
            .s3
            .create_bucket()
            .bucket(name)
            .send()
            .await
            .map_err(|e| {
                setup(format!(
                    "CreateBucket {name}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })?;
        self.put_cors(name, self.template.bucket_cors()?).await
    }

    async fn put_cors(
        &self,
        bucket: &str,
        rules: Vec<aws_sdk_s3::types::CorsRule>,
    ) -> Result<(), StackError> {
        if rules.is_empty() {
            return Ok(());
        }
        let cors = aws_sdk_s3::types::CorsConfiguration::builder()
            .set_cors_rules(Some(rules))
            .build()
            .map_err(setup)?;
        self.clients
            .s3
            .put_bucket_cors()
            .bucket(bucket)
            .cors_configuration(cors)
            .send()
            .await
            .map_err(|e| {
                setup(format!(
                    "PutBucketCors {bucket}: {}",
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }

    /// Whether this process started the servers (and will stop them on drop).
    pub fn owns_servers(&self) -> bool {
        self.processes.is_some()
    }

    /// The temp dir holding the servers' data, configuration and logs
    /// (`garage.log`, `dynamodb.log`), if this process started them.
    pub fn dir(&self) -> Option<&Path> {
        self.processes.as_ref().map(|p| p.dir.path())
    }

    /// Stops the servers now (same as dropping the stack).
    pub fn stop(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_env() -> BTreeMap<String, String> {
        StackPlan::env_of(9000, 8000)
    }

    #[test]
    fn plan_env_names_every_variable() {
        let plan = StackPlan::new().unwrap();
        let env = plan.env();
        assert_eq!(env.len(), vars::ALL.len());
        assert!(vars::ALL.iter().all(|k| env.contains_key(*k)));
        assert_eq!(env[vars::FORCE_PATH_STYLE], "true");
        assert_eq!(env, StackPlan::env_of(plan.s3_port, plan.dynamodb_port));
    }

    #[test]
    fn only_loopback_stacks_are_attached() {
        assert!(Stack::attach(&plan_env()).is_ok());
        let mut env = plan_env();
        env.insert(
            vars::S3_ENDPOINT.into(),
            "https://s3.us-east-1.amazonaws.com".into(),
        );
        assert!(Stack::attach(&env).is_err());
        let mut env = plan_env();
        env.remove(vars::TABLE);
        assert!(Stack::attach(&env).is_err());
        for ok in [
            "http://localhost:1",
            "http://127.0.0.2:9/x",
            "http://[::1]:80",
        ] {
            assert!(is_loopback_url(ok), "{ok}");
        }
        for bad in [
            "http://10.0.0.1:9",
            "127.0.0.1:9",
            "http://localhost.evil.com",
            "http://[::2]:1",
        ] {
            assert!(!is_loopback_url(bad), "{bad}");
        }
    }

    #[test]
    fn sdk_config_carries_per_service_endpoints() {
        let stack = Stack::attach(&plan_env()).unwrap();
        let sdk = stack.sdk_config();
        let endpoint = |id, env| {
            let key = ServiceConfigKey::builder()
                .service_id(id)
                .env(env)
                .profile("endpoint_url")
                .build()
                .unwrap();
            sdk.service_config().and_then(|c| c.load_config(key))
        };
        assert_eq!(
            endpoint("S3", "AWS_ENDPOINT_URL").as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(
            endpoint("DynamoDB", "AWS_ENDPOINT_URL").as_deref(),
            Some("http://127.0.0.1:8000")
        );
        assert_eq!(endpoint("SQS", "AWS_ENDPOINT_URL"), None);
        let config = stack.partwise_config(&[(vars::TABLE, "mine")]).unwrap();
        assert_eq!(config.table, "mine");
        assert_eq!(config.bucket, BUCKET);
        assert!(config.s3_force_path_style);
    }
}
