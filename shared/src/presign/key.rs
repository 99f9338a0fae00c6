//! A SigV4 signing key: derived once for one day, region, service and set of credentials.

use super::encode::query_value;
use super::sha::HmacKey;
use aws_credential_types::Credentials;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::time::SystemTime;

/// The derived key, ready to sign any string under its scope. Holds the
/// credentials it came from, so a cache can tell when they change.
#[derive(Clone)]
pub struct SigningKey {
    /// The derived key with its pads already hashed: a signature costs only
    /// the string to sign's blocks and one more.
    hmac: HmacKey,
    credentials: Credentials,
    /// `YYYYMMDD`, the day the key signs for (UTC).
    date: String,
    /// `YYYYMMDD/region/service/aws4_request`.
    pub(super) scope: String,
    /// `X-Amz-Credential`'s value as it appears in a URL (percent-encoded).
    pub(super) credential_param: String,
    /// `X-Amz-Security-Token`'s value as it appears in a URL, if any.
    pub(super) token_param: Option<String>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key or the secret: only what names the scope.
        f.debug_struct("SigningKey")
            .field("scope", &self.scope)
            .field("access_key_id", &self.credentials.access_key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Derives the key for `date` (`YYYYMMDD`) as SigV4 defines it (four
    /// chained HMACs, done here once instead of for every URL).
    pub fn derive(credentials: &Credentials, date: &str, region: &str, service: &str) -> Self {
        let mut k = hmac(
            format!("AWS4{}", credentials.secret_access_key()).as_bytes(),
            date.as_bytes(),
        );
        for part in [region, service, "aws4_request"] {
            k = hmac(&k, part.as_bytes());
        }
        let scope = format!("{date}/{region}/{service}/aws4_request");
        let mut credential_param = String::new();
        query_value(
            &mut credential_param,
            &format!("{}/{scope}", credentials.access_key_id()),
        );
        let token_param = credentials.session_token().map(|t| {
            let mut s = String::with_capacity(t.len() * 5 / 4);
            query_value(&mut s, t);
            s
        });
        SigningKey {
            hmac: HmacKey::new(&k),
            credentials: credentials.clone(),
            date: date.to_string(),
            scope,
            credential_param,
            token_param,
        }
    }

    /// True if this key was derived from exactly these credentials (the same
    /// access key, secret and session token) for `date`.
    pub fn is_for(&self, credentials: &Credentials, date: &str) -> bool {
        self.date == date && same_identity(&self.credentials, credentials)
    }

    /// The credentials the key was derived from.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// When the credentials behind this key stop working, if they say.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.credentials.expiry()
    }

    /// The derived key, to sign strings with.
    pub(super) fn hmac(&self) -> &HmacKey {
        &self.hmac
    }
}

/// The same access key, secret and session token: what a signature depends on.
pub fn same_identity(a: &Credentials, b: &Credentials) -> bool {
    a.access_key_id() == b.access_key_id()
        && a.secret_access_key() == b.secret_access_key()
        && a.session_token() == b.session_token()
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_the_same_key_as_aws_sigv4() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "test",
        );
        // 2015-08-30T12:36:00Z
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        let key = SigningKey::derive(&creds, "20150830", "us-east-1", "s3");
        let theirs = aws_sigv4::sign::v4::generate_signing_key(
            creds.secret_access_key(),
            now,
            "us-east-1",
            "s3",
        );
        let expected = aws_sigv4::sign::v4::calculate_signature(theirs, b"some string");
        let mac = key.hmac().mac(b"some string", &mut Default::default());
        assert_eq!(hex::encode(mac), expected);
        assert_eq!(key.scope, "20150830/us-east-1/s3/aws4_request");
        assert_eq!(
            key.credential_param,
            "AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fs3%2Faws4_request"
        );
        assert!(key.is_for(&creds, "20150830"));
        assert!(!key.is_for(&creds, "20150831"));
        let rotated = Credentials::new("AKIDEXAMPLE", "another secret", None, None, "test");
        assert!(!key.is_for(&rotated, "20150830"));
        let with_token = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("token".into()),
            None,
            "test",
        );
        assert!(!key.is_for(&with_token, "20150830"));
    }
}
