//! What a sweep run is asked to do: from the EventBridge schedule, or by hand.

use crate::config::Config;
use crate::error::{Error, Result};
use serde::Deserialize;
use serde_json::Value;

/// A sweep run's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRequest {
    /// Uploads initiated before this instant (ms since the epoch) are stale.
    pub cutoff_ms: i64,
    /// Report what would be aborted; change nothing.
    pub dry_run: bool,
    /// Only keys under this prefix (always inside the service's key prefix).
    pub prefix: String,
    /// Act on at most this many uploads; the next run carries on.
    pub limit: Option<u64>,
}

/// The manual payload: `{"older_than" | "max_age_secs", "dry_run", "prefix", "limit"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manual {
    #[serde(default)]
    older_than: Option<Value>,
    #[serde(default, alias = "max_age")]
    max_age_secs: Option<u64>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
}

/// Reads the event: a scheduled EventBridge event sweeps with the configured
/// max age; anything else must be a valid manual payload.
pub fn parse(event: &Value, config: &Config, now_ms: i64) -> Result<SweepRequest> {
    let scheduled = event.get("source").and_then(Value::as_str) == Some("aws.events")
        || event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
    let default_cutoff = now_ms - config.sweep_max_age.as_millis() as i64;
    if scheduled || event.is_null() {
        return Ok(SweepRequest {
            cutoff_ms: default_cutoff,
            dry_run: false,
            prefix: config.key_prefix.clone(),
            limit: None,
        });
    }
    let m: Manual = serde_json::from_value(event.clone())
        .map_err(|e| Error::bad_request(format!("invalid sweep payload: {e}")))?;
    let cutoff_ms = match (&m.older_than, m.max_age_secs) {
        (Some(_), Some(_)) => {
            return Err(Error::bad_request(
                "give older_than or max_age_secs, not both",
            ));
        }
        (Some(t), None) => parse_instant(t)?,
        (None, Some(age)) => now_ms.saturating_sub(age.saturating_mul(1000) as i64),
        (None, None) => default_cutoff,
    };
    if cutoff_ms > now_ms {
        return Err(Error::bad_request(
            "older_than is in the future; that would abort uploads in progress",
        ));
    }
    let prefix = m.prefix.unwrap_or_else(|| config.key_prefix.clone());
    if !prefix.starts_with(&config.key_prefix) {
        return Err(Error::bad_request(format!(
            "prefix {prefix:?} is outside the service's prefix {:?}",
            config.key_prefix
        )));
    }
    if m.limit == Some(0) {
        return Err(Error::bad_request("limit must be at least 1"));
    }
    Ok(SweepRequest {
        cutoff_ms,
        dry_run: m.dry_run,
        prefix,
        limit: m.limit,
    })
}

/// RFC 3339 text or milliseconds since the epoch.
fn parse_instant(v: &Value) -> Result<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| Error::bad_request("older_than must be whole milliseconds")),
        Value::String(s) => {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|e| {
                    Error::bad_request(format!("older_than {s:?} is not an RFC 3339 time: {e}"))
                })
        }
        _ => Err(Error::bad_request(
            "older_than must be an RFC 3339 string or epoch milliseconds",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        Config::from_lookup(|k| match k {
            "PARTWISE_BUCKET" | "PARTWISE_TABLE" => Some("x".into()),
            "PARTWISE_SWEEP_MAX_AGE_SECS" => Some("3600".into()),
            _ => None,
        })
        .unwrap()
    }

    const NOW: i64 = 1_790_000_000_000; // 2026-09-21T14:13:20Z

    #[test]
    fn scheduled_events_use_the_configured_age() {
        let e = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
        let r = parse(&e, &config(), NOW).unwrap();
        assert_eq!(r.cutoff_ms, NOW - 3_600_000);
        assert!(!r.dry_run);
        assert_eq!(r.prefix, "uploads/");
    }

    #[test]
    fn manual_payloads_are_read_and_checked() {
        let r = parse(
            &json!({"max_age_secs": 60, "dry_run": true, "prefix": "uploads/alice/", "limit": 5}),
            &config(),
            NOW,
        )
        .unwrap();
        assert_eq!(
            r,
            SweepRequest {
                cutoff_ms: NOW - 60_000,
                dry_run: true,
                prefix: "uploads/alice/".into(),
                limit: Some(5)
            }
        );
        let r = parse(
            &json!({"older_than": "2026-09-21T00:00:00Z"}),
            &config(),
            NOW,
        )
        .unwrap();
        assert_eq!(r.cutoff_ms, 1_789_948_800_000);
        for bad in [
            json!({"older_than": "yesterday"}),
            json!({"older_than": NOW + 1}),
            json!({"older_than": NOW, "max_age_secs": 1}),
            json!({"prefix": "elsewhere/"}),
            json!({"limit": 0}),
            json!({"dry_run": "yes"}),
            json!({"olderThan": 5}),
        ] {
            assert_eq!(
                parse(&bad, &config(), NOW).unwrap_err().status(),
                400,
                "{bad}"
            );
        }
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// JSON values of every kind, nested a little.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            "\\PC{0,30}".prop_map(Value::from),
            Just(json!("2026-09-21T00:00:00Z")),
            Just(json!("uploads/x/")),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("max_age_secs".to_string()),
                        Just("older_than".to_string()),
                        Just("dry_run".to_string()),
                        Just("prefix".to_string()),
                        Just("limit".to_string()),
                        Just("source".to_string()),
                        "[a-z_]{1,12}",
                    ],
                    inner,
                    0..5,
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any sweep payload is read or refused with a 400, and what is read
        /// sweeps only under the configured prefix, in the past, with a limit.
        #[test]
        fn any_payload_is_read_within_bounds_or_a_400(event in any_json()) {
            let config = Config::from_lookup(|k| match k {
                "PARTWISE_BUCKET" | "PARTWISE_TABLE" => Some("x".into()),
                _ => None,
            })
            .unwrap();
            let now = 1_790_000_000_000;
            match parse(&event, &config, now) {
                Ok(r) => {
                    prop_assert!(r.prefix.starts_with(&config.key_prefix), "{event}: {r:?}");
                    prop_assert!(r.cutoff_ms <= now, "{event}: {r:?}");
                    prop_assert!(r.limit.is_none_or(|l| l > 0), "{event}: {r:?}");
                }
                Err(e) => prop_assert_eq!(e.status(), 400, "{}: {}", event, e),
            }
        }
    }
}
