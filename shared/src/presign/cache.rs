//! The signing-key cache: one derived key for the current day and credentials, never outliving them.

use super::canonical::amz_date;
use super::key::SigningKey;
use crate::error::{Error, Result};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

/// Credentials are asked for again this long before they expire, so a URL
/// is never signed with credentials about to stop working.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Credentials that do not say when they expire (environment variables,
/// which Lambda rotates by starting new instances) are asked for again this
/// often, as the SDK's own identity cache does.
const RECHECK_EVERY: Duration = Duration::from_secs(15 * 60);

/// Hands out the signing key for "now", deriving it only when the day or
/// the credentials change. The credentials provider is asked again when its
/// credentials near their expiry or have been held for [`RECHECK_EVERY`].
#[derive(Debug)]
pub struct KeyCache {
    provider: Option<SharedCredentialsProvider>,
    region: String,
    service: &'static str,
    current: RwLock<Option<Current>>,
}

#[derive(Debug)]
struct Current {
    key: Arc<SigningKey>,
    /// The UTC day the key is for, in days since the Unix epoch.
    day: u64,
    /// When to ask the provider again.
    recheck_at: SystemTime,
}

impl KeyCache {
    pub fn new(
        provider: Option<SharedCredentialsProvider>,
        region: &str,
        service: &'static str,
    ) -> Self {
        KeyCache {
            provider,
            region: region.to_string(),
            service,
            current: RwLock::new(None),
        }
    }

    /// The key to sign with at `now`: for `now`'s UTC day, from credentials
    /// that are live. Errors if the provider has none, or only expired ones.
    pub async fn key_at(&self, now: SystemTime) -> Result<Arc<SigningKey>> {
        let day = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() / 86_400);
        // Held credentials still good for `now`'s day, or for signing again.
        let held = match self.current.read().expect("key cache lock").as_ref() {
            Some(c) if now < c.recheck_at && c.day == day => return Ok(c.key.clone()),
            Some(c) => Some((c.key.clone(), c.recheck_at)),
            None => None,
        };
        let (creds, recheck_at) = match &held {
            // A new day under the same credentials: only the key changes.
            Some((key, recheck_at)) if now < *recheck_at => {
                (key.credentials().clone(), *recheck_at)
            }
            _ => {
                let creds = self.fetch().await?;
                let recheck_at = recheck_time(creds.expiry(), now);
                (creds, recheck_at)
            }
        };
        if creds.expiry().is_some_and(|e| e <= now) {
            return Err(Error::internal(
                "the credentials provider gave credentials that have expired",
            ));
        }
        let date = &amz_date(now)[..8];
        let key = match held {
            Some((key, _)) if key.is_for(&creds, date) => key,
            _ => Arc::new(SigningKey::derive(&creds, date, &self.region, self.service)),
        };
        *self.current.write().expect("key cache lock") = Some(Current {
            key: key.clone(),
            day,
            recheck_at,
        });
        Ok(key)
    }

    async fn fetch(&self) -> Result<aws_credential_types::Credentials> {
        let provider = self
            .provider
            .as_ref()
            .ok_or_else(|| Error::internal("no AWS credentials to sign with"))?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| Error::internal(format!("loading credentials: {e}")))
    }
}

/// When credentials fetched at `now` must be asked for again.
fn recheck_time(expiry: Option<SystemTime>, now: SystemTime) -> SystemTime {
    let by_age = now + RECHECK_EVERY;
    match expiry.and_then(|e| e.checked_sub(REFRESH_BEFORE_EXPIRY)) {
        Some(e) => e.min(by_age),
        None => by_age,
    }
}
