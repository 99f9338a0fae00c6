//! Configuration from environment variables, read and validated once at start.
//!
//! AWS endpoints, region and credentials are not here: they come through the
//! SDKs' standard variables (`AWS_ENDPOINT_URL_S3`, `AWS_REGION`, ...), so the
//! same binaries run on AWS and against the local stack.

use crate::error::{Error, Result};
use crate::grants::GrantKeys;
use std::time::Duration;

pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * KIB;
pub const GIB: u64 = 1024 * MIB;
pub const TIB: u64 = 1024 * GIB;

/// S3's own limits, which no setting may exceed.
pub mod limits {
    use super::*;
    pub const MAX_OBJECT_SIZE: u64 = 5 * TIB;
    pub const MIN_PART_SIZE: u64 = 5 * MIB;
    pub const MAX_PART_SIZE: u64 = 5 * GIB;
    pub const MAX_PARTS: u32 = 10_000;
    pub const MAX_KEY_BYTES: usize = 1024;
    pub const MAX_POST_SIZE: u64 = 5 * GIB;
    pub const MAX_URL_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);
}

/// Every setting, with its environment variable and default.
#[derive(Debug, Clone)]
pub struct Config {
    /// `PARTWISE_BUCKET` (required): the bucket uploads land in.
    pub bucket: String,
    /// `PARTWISE_TABLE` (required): the tracking table.
    pub table: String,
    /// `PARTWISE_KEY_PREFIX` (`uploads/`): every key starts with it.
    pub key_prefix: String,
    /// `PARTWISE_ALLOWED_CONTENT_TYPES` (`*/*`): comma list; `image/*` wildcards allowed.
    pub allowed_content_types: Vec<String>,
    /// `PARTWISE_MAX_UPLOAD_SIZE` (`5TiB`): largest file accepted.
    pub max_upload_size: u64,
    /// `PARTWISE_MAX_POST_SIZE` (`100MiB`, at most 5 GiB): largest single presigned-POST upload.
    pub max_post_size: u64,
    /// `PARTWISE_PART_SIZE` (`16MiB`, at least 5 MiB): preferred part size of a plan.
    pub part_size: u64,
    /// `PARTWISE_URL_EXPIRY_SECS` (`3600`, at most 7 days): lifetime of presigned URLs.
    pub url_expiry: Duration,
    /// `PARTWISE_MAX_BATCH_SIGN` (`1000`): most part URLs signed in one call.
    pub max_batch_sign: usize,
    /// `PARTWISE_RETENTION_DAYS` (`30`): how long finished items stay before their TTL.
    pub retention: Duration,
    /// `PARTWISE_GSI_SHARDS` (`16`, 1-1000): write shards of the live-uploads index.
    pub gsi_shards: u32,
    /// `PARTWISE_ANONYMOUS` (`false`): accept callers without identity (public drop box).
    pub anonymous: bool,
    /// `PARTWISE_ABORT_ATTEMPTS` (`3`, 1-10): aborts tried before parts are confirmed gone.
    pub abort_attempts: u32,
    /// `PARTWISE_S3_FORCE_PATH_STYLE` (`false`): path-style S3 URLs (needed by most local S3s).
    pub s3_force_path_style: bool,
    /// `PARTWISE_SWEEP_MAX_AGE_SECS` (`86400`): uploads older than this are stale.
    pub sweep_max_age: Duration,
    /// `PARTWISE_SWEEP_CONCURRENCY` (`64`, 1-512): uploads in flight at once. Each
    /// tracked upload is four round trips in a row (claim, abort, confirm,
    /// record), 10-30 ms each from a Lambda, so 64 keep about 2,000 requests a
    /// second going: far below S3's 3,500 deletes a second per prefix.
    pub sweep_concurrency: usize,
    /// `PARTWISE_SWEEP_SAFETY_MARGIN_MS` (`10000`): stop claiming work this long before the deadline.
    pub sweep_safety_margin: Duration,
    /// `PARTWISE_SWEEP_TIMEOUT_SECS` (`900`, 1-900): the sweep function's timeout. The
    /// budget when an invoker's deadline cannot be trusted (one already past on arrival).
    pub sweep_timeout: Duration,
    /// `PARTWISE_EVENT_BUS` (`default`): the EventBridge bus `notify` publishes upload events to.
    pub event_bus: String,
    /// `PARTWISE_EVENT_SOURCE` (`partwise`): the `source` of those events.
    pub event_source: String,
    /// `PARTWISE_GRANT_KEYS` (none): `current[,previous]` upload-grant signing
    /// keys. On AWS they come from the secret `PARTWISE_GRANT_SECRET_ARN`
    /// names instead (read at the first grant call, [`crate::grants::KeySource`]).
    /// None: no grants.
    pub grant_keys: Option<GrantKeys>,
    /// Per-owner quotas, each 0 for none:
    /// `PARTWISE_MAX_LIVE_UPLOADS_PER_OWNER` (`1000`): unfinished uploads at once;
    /// `PARTWISE_MAX_BYTES_IN_FLIGHT_PER_OWNER` (`5TiB`): bytes they declare;
    /// `PARTWISE_MAX_UPLOADS_PER_MINUTE_PER_OWNER` (`600`): uploads started a minute.
    pub quotas: crate::quota::Quotas,
    /// `PARTWISE_REQUIRE_DECLARED_SIZE` (`false`): a multipart upload without
    /// `size` is a 400, for deployments whose clients all declare it. Then
    /// every part URL has its size signed in.
    pub require_declared_size: bool,
    /// `PARTWISE_UNSIZED_PART_WINDOW` (`16`, 1-10000): how far past the
    /// highest part S3 holds an upload without a declared size may sign
    /// parts, which bounds what it can hold between two signings.
    pub unsized_part_window: u32,
    /// `PARTWISE_GRANT_SECRET_ARN` (none): the Secrets Manager secret holding
    /// the grant keys, as `PARTWISE_GRANT_KEYS` would; it wins over that.
    pub grant_secret_arn: Option<String>,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let required = |k: &str| get(k).ok_or_else(|| Error::Config(format!("{k} is required")));
        let size = |k: &str, default: u64| get(k).map_or(Ok(default), |v| parse_size(k, &v));
        let num = |k: &str, default: u64, lo: u64, hi: u64| -> Result<u64> {
            let n = match get(k) {
                None => default,
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| Error::Config(format!("{k}: {v:?} is not a whole number")))?,
            };
            if !(lo..=hi).contains(&n) {
                return Err(Error::Config(format!("{k}: {n} is outside {lo}..={hi}")));
            }
            Ok(n)
        };
        let flag = |k: &str| match get(k).as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("false" | "0" | "no") => Ok(false),
            Some("true" | "1" | "yes") => Ok(true),
            Some(v) => Err(Error::Config(format!("{k}: {v:?} is not true or false"))),
        };

        let key_prefix = get("PARTWISE_KEY_PREFIX").unwrap_or_else(|| "uploads/".into());
        if key_prefix.starts_with('/')
            || key_prefix.chars().any(char::is_control)
            || key_prefix.len() > 256
        {
            return Err(Error::Config(format!(
                "PARTWISE_KEY_PREFIX: {key_prefix:?} is not a valid key prefix"
            )));
        }
        let allowed_content_types: Vec<String> = get("PARTWISE_ALLOWED_CONTENT_TYPES")
            .unwrap_or_else(|| "*/*".into())
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect();
        if allowed_content_types.is_empty()
            || allowed_content_types.iter().any(|t| !t.contains('/'))
        {
            return Err(Error::Config(
                "PARTWISE_ALLOWED_CONTENT_TYPES: expected type/subtype entries".into(),
            ));
        }
        let max_upload_size = size("PARTWISE_MAX_UPLOAD_SIZE", limits::MAX_OBJECT_SIZE)?;
        if max_upload_size == 0 || max_upload_size > limits::MAX_OBJECT_SIZE {
            return Err(Error::Config(
                "PARTWISE_MAX_UPLOAD_SIZE: must be 1 byte to 5 TiB".into(),
            ));
        }
        let max_post_size = size("PARTWISE_MAX_POST_SIZE", 100 * MIB)?;
        if max_post_size > limits::MAX_POST_SIZE {
            return Err(Error::Config(
                "PARTWISE_MAX_POST_SIZE: at most 5 GiB".into(),
            ));
        }
        let part_size = size("PARTWISE_PART_SIZE", 16 * MIB)?;
        if !(limits::MIN_PART_SIZE..=limits::MAX_PART_SIZE).contains(&part_size) {
            return Err(Error::Config(
                "PARTWISE_PART_SIZE: must be 5 MiB to 5 GiB".into(),
            ));
        }

        // EventBridge reserves `aws.*` sources for AWS services.
        let event_source = get("PARTWISE_EVENT_SOURCE").unwrap_or_else(|| "partwise".into());
        if event_source.starts_with("aws.") || event_source.len() > 256 {
            return Err(Error::Config(format!(
                "PARTWISE_EVENT_SOURCE: {event_source:?} is reserved or too long"
            )));
        }

        Ok(Config {
            bucket: required("PARTWISE_BUCKET")?,
            table: required("PARTWISE_TABLE")?,
            key_prefix,
            allowed_content_types,
            max_upload_size,
            max_post_size: max_post_size.min(max_upload_size),
            part_size,
            url_expiry: Duration::from_secs(num(
                "PARTWISE_URL_EXPIRY_SECS",
                3600,
                1,
                limits::MAX_URL_EXPIRY.as_secs(),
            )?),
            max_batch_sign: num("PARTWISE_MAX_BATCH_SIGN", 1000, 1, limits::MAX_PARTS as u64)?
                as usize,
            retention: Duration::from_secs(num("PARTWISE_RETENTION_DAYS", 30, 1, 3650)? * 86_400),
            gsi_shards: num("PARTWISE_GSI_SHARDS", 16, 1, 1000)? as u32,
            anonymous: flag("PARTWISE_ANONYMOUS")?,
            abort_attempts: num("PARTWISE_ABORT_ATTEMPTS", 3, 1, 10)? as u32,
            s3_force_path_style: flag("PARTWISE_S3_FORCE_PATH_STYLE")?,
            sweep_max_age: Duration::from_secs(num(
                "PARTWISE_SWEEP_MAX_AGE_SECS",
                86_400,
                1,
                3650 * 86_400,
            )?),
            sweep_concurrency: num("PARTWISE_SWEEP_CONCURRENCY", 64, 1, 512)? as usize,
            sweep_safety_margin: Duration::from_millis(num(
                "PARTWISE_SWEEP_SAFETY_MARGIN_MS",
                10_000,
                0,
                600_000,
            )?),
            sweep_timeout: Duration::from_secs(num("PARTWISE_SWEEP_TIMEOUT_SECS", 900, 1, 900)?),
            event_bus: get("PARTWISE_EVENT_BUS").unwrap_or_else(|| "default".into()),
            event_source,
            grant_keys: get("PARTWISE_GRANT_KEYS")
                .map(|k| GrantKeys::parse(&k))
                .transpose()?,
            grant_secret_arn: get("PARTWISE_GRANT_SECRET_ARN"),
            quotas: crate::quota::Quotas {
                live_uploads: num("PARTWISE_MAX_LIVE_UPLOADS_PER_OWNER", 1000, 0, 1_000_000)?,
                bytes_in_flight: size(
                    "PARTWISE_MAX_BYTES_IN_FLIGHT_PER_OWNER",
                    limits::MAX_OBJECT_SIZE,
                )?,
                uploads_per_minute: num(
                    "PARTWISE_MAX_UPLOADS_PER_MINUTE_PER_OWNER",
                    600,
                    0,
                    1_000_000,
                )?,
            },
            require_declared_size: flag("PARTWISE_REQUIRE_DECLARED_SIZE")?,
            unsized_part_window: num(
                "PARTWISE_UNSIZED_PART_WINDOW",
                16,
                1,
                limits::MAX_PARTS as u64,
            )? as u32,
        })
    }

    /// Whether `content_type` is on the allow-list (`type/*` and `*/*` are wildcards).
    pub fn content_type_allowed(&self, content_type: &str) -> bool {
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let Some((ty, _)) = ct.split_once('/') else {
            return false;
        };
        self.allowed_content_types
            .iter()
            .any(|a| match a.split_once('/') {
                Some(("*", "*")) => true,
                Some((aty, "*")) => aty == ty,
                _ => *a == ct,
            })
    }
}

/// Parses `1048576`, `5MiB`, `5 GiB`, `100MB` (decimal) and the like.
pub fn parse_size(name: &str, v: &str) -> Result<u64> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (digits, unit) = v.split_at(split);
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => KIB,
        "mib" => MIB,
        "gib" => GIB,
        "tib" => TIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(Error::Config(format!("{name}: unknown size unit in {v:?}"))),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| Error::Config(format!("{name}: {v:?} is not a size")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config> {
        let mut env: HashMap<String, String> = [("PARTWISE_BUCKET", "b"), ("PARTWISE_TABLE", "t")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_are_sane() {
        let c = config(&[]).unwrap();
        assert_eq!(c.key_prefix, "uploads/");
        assert_eq!(c.max_upload_size, 5 * TIB);
        assert_eq!(c.max_post_size, 100 * MIB);
        assert_eq!(c.gsi_shards, 16);
        assert!(!c.anonymous);
        assert!(c.content_type_allowed("video/mp4"));
    }

    #[test]
    fn required_and_invalid_settings_are_refused() {
        assert!(Config::from_lookup(|_| None).is_err());
        assert!(config(&[("PARTWISE_MAX_UPLOAD_SIZE", "6TiB")]).is_err());
        assert!(config(&[("PARTWISE_PART_SIZE", "4MiB")]).is_err());
        assert!(config(&[("PARTWISE_URL_EXPIRY_SECS", "604801")]).is_err());
        assert!(config(&[("PARTWISE_ANONYMOUS", "maybe")]).is_err());
        assert!(config(&[("PARTWISE_GSI_SHARDS", "0")]).is_err());
        assert!(config(&[("PARTWISE_KEY_PREFIX", "/abs")]).is_err());
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("x", "5MiB").unwrap(), 5 * MIB);
        assert_eq!(parse_size("x", "100 MB").unwrap(), 100_000_000);
        assert_eq!(parse_size("x", "42").unwrap(), 42);
        assert!(parse_size("x", "5XB").is_err());
        assert!(parse_size("x", "99999999999TiB").is_err());
    }

    #[test]
    fn content_type_allow_list_supports_wildcards() {
        let c = config(&[("PARTWISE_ALLOWED_CONTENT_TYPES", "image/*, application/pdf")]).unwrap();
        assert!(c.content_type_allowed("image/png"));
        assert!(c.content_type_allowed("application/pdf; charset=binary"));
        assert!(!c.content_type_allowed("application/zip"));
        assert!(!c.content_type_allowed("nonsense"));
    }
}
