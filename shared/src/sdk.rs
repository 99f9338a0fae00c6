//! The SDK configuration every function loads once per cold start, built for a fast start.
//!
//! `aws_config::load_from_env` is correct but slow to start in a Lambda: its
//! HTTPS client reads the system's CA bundle and then every file in
//! `/etc/ssl/certs`, and builds a throwaway TLS connector for each client as it
//! is constructed; the default credential and region chains are built even
//! though Lambda hands both over in the environment. Here:
//! - trust roots are Mozilla's, compiled in (`webpki-root-certs`; they cover
//!   every AWS endpoint), and the TLS connector is built on the first request,
//!   once for all clients, so init reads no file and parses no certificate;
//! - without a home directory (Lambda sets no HOME) the profile files are not
//!   looked for;
//! - credentials come straight from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`
//!   (and `AWS_SESSION_TOKEN`) when they are set, as Lambda sets them; the
//!   region from `AWS_REGION`. Otherwise the SDK's default chains run, so the
//!   same binaries still work anywhere else (SSO on a laptop, ECS, ...).
//!
//! Everything else (per-service endpoints such as `AWS_ENDPOINT_URL_S3`,
//! retries, timeouts, behaviour version) is the SDK's standard loader.
//!
//! No connection is opened during init (no warm-up DescribeTable, HEAD bucket
//! or DNS pre-resolution). On an on-demand cold start Lambda runs init and the
//! first invoke back to back while the caller waits, so a connection opened
//! in init is paid there instead of in the first invoke: the caller's wait is
//! the same, every init pays it even when no event follows soon, and a probe
//! call needs IAM rights the functions do not otherwise have. `coldstart`
//! measures the most it could move: the first invoke minus a warm one on the
//! same instance (see docs/performance.md). It would pay off only where init runs
//! before the request exists (provisioned concurrency, proactive init).

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_runtime::env_config::file::{EnvConfigFileKind, EnvConfigFiles};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::shared::IntoShared;
use base64::Engine;
use std::sync::OnceLock;

/// What a function adds to the SDK's defaults: timeouts and retry settings
/// (none: the SDK's own).
#[derive(Debug, Clone, Default)]
pub struct Tuning {
    pub timeouts: Option<aws_config::timeout::TimeoutConfig>,
    pub retries: Option<aws_config::retry::RetryConfig>,
}

impl Tuning {
    /// A Lambda's: the deliberate values of [`crate::timeouts`].
    pub fn lambda() -> Self {
        Tuning {
            timeouts: Some(crate::timeouts::sdk_timeouts()),
            retries: Some(crate::timeouts::sdk_retries()),
        }
    }
}

/// The SDK configuration for this process, from its environment; see the module doc.
pub async fn load(tuning: &Tuning) -> SdkConfig {
    load_with(tuning, |k| std::env::var(k).ok()).await
}

/// [`load`], reading variables through `get` (tests need not touch the process environment).
pub async fn load_with(tuning: &Tuning, get: impl Fn(&str) -> Option<String>) -> SdkConfig {
    loader(tuning, get).load().await
}

/// The SDK's loader with this module's choices made, not yet loaded.
fn loader(tuning: &Tuning, get: impl Fn(&str) -> Option<String>) -> ConfigLoader {
    let set = |k: &str| get(k).filter(|v| !v.is_empty());
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    // Lambda sets no HOME, so the default profile files would resolve to
    // the literal relative paths `~/.aws/config` and `~/.aws/credentials`,
    // opened (and missed) at every cold start. With no home and neither file
    // named by its variable there is no profile to read: the loader gets an
    // empty one, and every setting comes from the environment.
    if ["HOME", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"]
        .iter()
        .all(|k| set(k).is_none())
    {
        loader = loader.profile_files(
            EnvConfigFiles::builder()
                .with_contents(EnvConfigFileKind::Config, "")
                .build(),
        );
    }
    if let Some(region) = set("AWS_REGION").or_else(|| set("AWS_DEFAULT_REGION")) {
        loader = loader.region(Region::new(region));
    }
    // The provider reads the variables when credentials are first needed, so
    // nothing is resolved during init; the SDK caches what it returns.
    if set("AWS_ACCESS_KEY_ID").is_some() && set("AWS_SECRET_ACCESS_KEY").is_some() {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    if let Some(t) = &tuning.timeouts {
        loader = loader.timeout_config(t.clone());
    }
    if let Some(r) = &tuning.retries {
        loader = loader.retry_config(r.clone());
    }
    loader
}

/// The one HTTPS client every SDK client of the process shares.
pub fn https_client() -> SharedHttpClient {
    LazyHttps::default().into_shared()
}

/// The SDK's hyper/rustls client, built on first use with compiled-in roots.
///
/// Written by hand because the SDK's client pre-builds a TLS connector (and
/// loads its roots) in `validate_base_client_config` for every service client
/// constructed, whether or not it ever sends a request; this wrapper only
/// defers building the SDK's own client and delegates everything to it.
#[derive(Debug, Default)]
struct LazyHttps {
    inner: OnceLock<SharedHttpClient>,
}

impl LazyHttps {
    fn inner(&self) -> &SharedHttpClient {
        self.inner.get_or_init(|| {
            let trust = TrustStore::empty().with_pem_certificate(root_certificates_pem());
            let client = aws_smithy_http_client::Builder::new().tls_provider(
                tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc),
            );
            match TlsContext::builder().with_trust_store(trust).build() {
                Ok(context) => client.tls_context(context).build_https(),
                // Cannot happen with rustls (only s2n-tls refuses contexts);
                // the SDK's defaults, system roots included, still work.
                Err(_) => client.build_https(),
            }
        })
    }
}

impl HttpClient for LazyHttps {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.inner().http_connector(settings, components)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        Some(
            aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata::new(
                "hyper",
                Some(std::borrow::Cow::Borrowed("1.x")),
            ),
        )
    }
}

/// Mozilla's root certificates as one PEM bundle (what the SDK's trust store takes).
fn root_certificates_pem() -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut pem = String::with_capacity(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() * 2048);
    for cert in webpki_root_certs::TLS_SERVER_ROOT_CERTS {
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        let text = b64.encode(cert.as_ref());
        for line in text.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
    }
    pem.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_types::os_shim_internal::{Env, Fs};

    #[test]
    fn every_compiled_in_root_is_in_the_bundle() {
        let pem = String::from_utf8(root_certificates_pem()).unwrap();
        assert_eq!(
            pem.matches("-----BEGIN CERTIFICATE-----").count(),
            webpki_root_certs::TLS_SERVER_ROOT_CERTS.len()
        );
        assert!(webpki_root_certs::TLS_SERVER_ROOT_CERTS.len() > 100);
    }

    /// Without a home (Lambda) the profile files are not read, even where
    /// the SDK would look for them (the literal `~` path); with one they are.
    #[tokio::test]
    async fn without_a_home_no_profile_file_is_read() {
        let profile = "[default]\nendpoint_url = http://from-the-profile\n";
        let lambda = [("AWS_REGION", "eu-west-3")];
        let laptop = [("AWS_REGION", "eu-west-3"), ("HOME", "/home/me")];
        for (vars, read) in [(&lambda[..], false), (&laptop[..], true)] {
            let get = |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            };
            let sdk = loader(&Tuning::default(), get)
                .env(Env::from_slice(vars))
                .fs(Fs::from_slice(&[
                    ("/home/me/.aws/config", profile),
                    ("~/.aws/config", profile),
                ]))
                .load()
                .await;
            let expected = read.then_some("http://from-the-profile");
            assert_eq!(sdk.endpoint_url(), expected, "{vars:?}");
        }
    }

    #[tokio::test]
    async fn the_region_comes_from_the_environment() {
        let sdk = load_with(&Tuning::default(), |k| {
            match k {
                "AWS_REGION" => Some("eu-west-3"),
                "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE"),
                "AWS_SECRET_ACCESS_KEY" => Some("secret"),
                _ => None,
            }
            .map(str::to_string)
        })
        .await;
        assert_eq!(sdk.region().map(|r| r.as_ref()), Some("eu-west-3"));
    }
}
