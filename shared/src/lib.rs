//! Partwise: serverless S3 multipart uploads that never leak storage.
//!
//! Every Lambda in `functions/` is a thin shell around this crate:
//! - [`api`]: the HTTP API's handlers and route table (API Gateway payload 2.0),
//!   and its answers as the Lambda Runtime API takes them;
//! - [`lifecycle`]: complete and abort, choreographed with the state machine;
//! - [`notify`]: upload events, from the tracking table's stream to EventBridge;
//! - [`metadata`]: Uppy's metadata as S3 user metadata;
//! - [`model`]: the tracked upload and its state machine; [`plan`]: part plans;
//! - [`store`]: DynamoDB tracking; [`storage`]: S3 calls; [`presign`]: URLs and POST forms;
//! - [`quota`]: per-owner quotas, charged atomically with each new upload;
//! - [`grants`]: signed upload grants; [`keys`]: safe object keys; [`config`]: settings, validated once;
//! - [`error`]: the one error type and its HTTP mapping; [`runtime`]: Lambda wiring;
//! - [`crashpoint`]: where crash tests kill the process (feature `crash-points`);
//! - [`sdk`]: the SDK configuration, loaded once per cold start; [`timeouts`]: its timeouts and retries.

pub mod api;
pub mod config;
pub mod crashpoint;
pub mod error;
pub mod grants;
pub mod keys;
pub mod lifecycle;
pub mod metadata;
pub mod model;
pub mod notify;
pub mod plan;
pub mod presign;
pub mod quota;
pub mod runtime;
pub mod sdk;
pub mod storage;
pub mod store;
pub mod sweep;
pub mod timeouts;
pub mod validate;

pub use config::Config;
pub use error::{Error, Result};

/// What every handler needs, built once per Lambda instance in `main`.
pub struct Context {
    pub config: Config,
    pub store: store::Store,
    pub storage: storage::Storage,
    pub presigner: presign::Presigner,
    /// The grant signing keys, read when a grant route first needs them.
    pub grant_keys: grants::KeySource,
}

impl Context {
    /// Reads the configuration and the SDKs' standard settings from the
    /// environment. No network call: the grant keys' secret is read at the
    /// first grant call (see [`grants::KeySource`]).
    pub async fn from_env() -> Result<Self> {
        let config = Config::from_env()?;
        let sdk = sdk::load(&sdk::Tuning::lambda()).await;
        Ok(Self::new(config, &sdk))
    }

    /// Builds the clients from an SDK configuration (tests point it at the local stack).
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Self {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                .force_path_style(config.s3_force_path_style)
                .build(),
        );
        let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
        Context {
            grant_keys: grants::KeySource::new(
                config.grant_keys.clone(),
                config.grant_secret_arn.as_deref(),
                sdk,
            ),
            store: store::Store::new(dynamodb, &config.table, config.gsi_shards, config.retention)
                .with_quotas(config.quotas),
            storage: storage::Storage::new(s3.clone(), &config.bucket),
            presigner: presign::Presigner::new(s3, &config.bucket, sdk),
            config,
        }
    }
}
