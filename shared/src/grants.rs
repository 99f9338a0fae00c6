//! Upload grants: short sealed tokens that carry a caller's identity in a URL.
//!
//! Uppy's `companionEndpoint` sends no credentials, so a signed-in page asks
//! `POST /grants` for an endpoint with a grant in its path (`/g/{grant}`); the
//! grant then stands in for the caller's token on the Companion routes.
//!
//! A grant is `base64url(nonce) "." base64url(XChaCha20-Poly1305(claims JSON))`:
//! encrypted and authenticated, so whoever holds the URL (a proxy log, a
//! browser history) learns nothing of the owner or limits inside, and cannot
//! change a byte of it. The AEAD key is derived from the configured key with
//! HKDF-SHA256, so the secret keeps its `current[,previous]` format. A grant is
//! opened in the function with no table read. Two keys are accepted (current,
//! then previous) so a key can be rotated without breaking uploads in flight;
//! new grants are always sealed with the current one. The 24-byte nonce is
//! random: XChaCha's nonces are long enough that random ones never repeat.

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// How long a grant lives when the caller does not say.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// The longest a grant may live, so a leaked one expires the same day.
pub const MAX_TTL: Duration = Duration::from_secs(12 * 3600);
/// Shortest configured key accepted: 256 bits.
pub const MIN_KEY_BYTES: usize = 32;
/// Longest grant read or issued; real ones are about 150 characters.
pub const MAX_GRANT_CHARS: usize = 4096;
/// Most content types a grant may list.
pub const MAX_GRANT_TYPES: usize = 32;
/// XChaCha20-Poly1305's nonce.
const NONCE_BYTES: usize = 24;
/// HKDF's `info`: names what the derived key is for, and the grant format's
/// version, so a future format derives a key of its own.
const HKDF_INFO: &[u8] = b"partwise upload grant v2 xchacha20poly1305";
/// Bound into every grant as associated data: a grant opens as nothing else.
const AAD: &[u8] = b"partwise-grant-v2";

/// What a grant says: who, until when, and limits narrower than the server's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Claims {
    /// The owner uploads are made for (the caller's `sub`).
    #[serde(rename = "sub")]
    pub owner: String,
    /// Expiry, in seconds since the Unix epoch.
    #[serde(rename = "exp")]
    pub expires: u64,
    /// Largest file accepted through this grant, in bytes.
    #[serde(rename = "max", default, skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<u64>,
    /// Content types accepted through this grant (`type/*` wildcards allowed).
    #[serde(rename = "types", default, skip_serializing_if = "Option::is_none")]
    pub content_types: Option<Vec<String>>,
}

/// The AEAD keys derived from the configured ones: the current one first,
/// then the previous one, if any. `Debug` never shows them.
#[derive(Clone)]
pub struct GrantKeys {
    ciphers: Vec<XChaCha20Poly1305>,
}

impl std::fmt::Debug for GrantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GrantKeys({} keys, redacted)", self.ciphers.len())
    }
}

impl GrantKeys {
    /// Parses `current[,previous]`, as `PARTWISE_GRANT_KEYS` or the secret
    /// holds them. Each key is at least [`MIN_KEY_BYTES`] bytes; the error
    /// never quotes a key.
    pub fn parse(raw: &str) -> Result<Self> {
        let keys: Vec<&[u8]> = raw.split(',').map(|k| k.trim().as_bytes()).collect();
        if keys.len() > 2 {
            return Err(Error::Config(
                "grant keys: at most two (current,previous)".into(),
            ));
        }
        if keys.iter().any(|k| k.len() < MIN_KEY_BYTES) {
            return Err(Error::Config(format!(
                "grant keys: each key needs at least {MIN_KEY_BYTES} bytes"
            )));
        }
        let ciphers = keys
            .into_iter()
            .map(|ikm| {
                let mut okm = [0u8; 32];
                Hkdf::<Sha256>::new(None, ikm)
                    .expand(HKDF_INFO, &mut okm)
                    .map_err(|_| Error::Config("grant keys: key derivation failed".into()))?;
                XChaCha20Poly1305::new_from_slice(&okm)
                    .map_err(|_| Error::Config("grant keys: key derivation failed".into()))
            })
            .collect::<Result<_>>()?;
        Ok(GrantKeys { ciphers })
    }

    /// A sealed grant for `claims`, with the current key. Refused (400) if it
    /// would be longer than [`MAX_GRANT_CHARS`] (too many long type patterns).
    pub fn seal(&self, claims: &Claims) -> Result<String> {
        let json = serde_json::to_vec(claims).map_err(Error::internal)?;
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(Error::internal)?;
        let cipher = self
            .ciphers
            .first()
            .ok_or_else(|| Error::internal("no grant key"))?;
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &json,
                    aad: AAD,
                },
            )
            .map_err(|_| Error::internal("sealing a grant failed"))?;
        let grant = format!("{}.{}", B64.encode(nonce), B64.encode(sealed));
        if grant.len() > MAX_GRANT_CHARS {
            return Err(Error::bad_request(
                "the grant would be too long for a URL: list fewer or shorter allowedTypes",
            ));
        }
        Ok(grant)
    }

    /// The claims of `grant` if one of the keys sealed it and it has not
    /// expired at `now` (seconds since the epoch). Anything else is a 401
    /// that says only what a caller can act on.
    pub fn open(&self, grant: &str, now: u64) -> Result<Claims> {
        let invalid = || Error::Unauthorized("the upload grant is not valid".into());
        if grant.len() > MAX_GRANT_CHARS {
            return Err(invalid());
        }
        let (nonce, sealed) = grant.split_once('.').ok_or_else(invalid)?;
        let nonce: [u8; NONCE_BYTES] = B64
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(invalid)?;
        let sealed = B64.decode(sealed).map_err(|_| invalid())?;
        let json = self
            .ciphers
            .iter()
            .find_map(|c| {
                c.decrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &sealed,
                        aad: AAD,
                    },
                )
                .ok()
            })
            .ok_or_else(invalid)?;
        let claims: Claims = serde_json::from_slice(&json).map_err(|_| invalid())?;
        if claims.owner.is_empty() {
            return Err(invalid());
        }
        if claims.expires <= now {
            return Err(Error::Unauthorized(
                "the upload grant has expired; sign in again".into(),
            ));
        }
        Ok(claims)
    }
}

/// The grant's first characters, for a log line that must not carry the
/// grant itself: they are the random nonce's, so they say nothing of the
/// claims and cannot be replayed, but tell one grant's requests apart.
pub fn fingerprint(grant: &str) -> &str {
    let end = grant.char_indices().nth(8).map_or(grant.len(), |(i, _)| i);
    &grant[..end]
}

/// The keys held in the Secrets Manager secret `arn` (`current[,previous]`).
/// Errors name the secret, never its value.
pub async fn read_secret(sdk: &aws_config::SdkConfig, arn: &str) -> Result<GrantKeys> {
    let out = aws_sdk_secretsmanager::Client::new(sdk)
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| crate::error::from_sdk("GetSecretValue", e))?;
    let value = out
        .secret_string()
        .ok_or_else(|| Error::Config(format!("grant key secret {arn} holds no string")))?;
    GrantKeys::parse(value)
}

/// Where an instance's grant keys come from: given in the environment, or
/// read from their secret at the instance's first grant call and kept.
///
/// Not at cold start: the read was the largest part of an API function's
/// init (about 7 ms on loopback, a network round trip on AWS), and most
/// calls carry a JWT and never need the keys. A failed read is not kept, so
/// the next grant call tries again. Clones share the keys once read.
#[derive(Clone, Debug)]
pub struct KeySource(Arc<Source>);

#[derive(Debug)]
enum Source {
    Off,
    Given(GrantKeys),
    Secret {
        /// The client is built with the first read too: constructing one
        /// costs about 0.2 ms of init that most instances never use.
        sdk: Box<aws_config::SdkConfig>,
        arn: String,
        keys: OnceCell<GrantKeys>,
    },
}

impl KeySource {
    /// The secret `secret_arn`, when set, wins over keys `given` in the environment.
    pub fn new(
        given: Option<GrantKeys>,
        secret_arn: Option<&str>,
        sdk: &aws_config::SdkConfig,
    ) -> Self {
        KeySource(Arc::new(match (secret_arn, given) {
            (Some(arn), _) => Source::Secret {
                sdk: Box::new(sdk.clone()),
                arn: arn.to_string(),
                keys: OnceCell::new(),
            },
            (None, Some(keys)) => Source::Given(keys),
            (None, None) => Source::Off,
        }))
    }

    /// The keys, reading the secret if this is the first call that needs
    /// them; `None` when grants are not enabled.
    pub async fn keys(&self) -> Result<Option<&GrantKeys>> {
        match &*self.0 {
            Source::Off => Ok(None),
            Source::Given(keys) => Ok(Some(keys)),
            // Boxed: the SDK call's future, nested into every handler's, is
            // deep enough to overflow the compiler's layout recursion limit.
            Source::Secret { sdk, arn, keys } => keys
                .get_or_try_init(|| Box::pin(read_secret(sdk, arn)))
                .await
                .map(Some),
        }
    }
}

/// What a caller may ask of `POST /grants`; every field narrows the default.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// Lifetime in seconds (default 1 h, at most 12 h).
    #[serde(rename = "expiresIn", default)]
    pub expires_in: Option<u64>,
    /// Largest file accepted, at most the server's own limit.
    #[serde(rename = "maxFileSize", default)]
    pub max_file_size: Option<u64>,
    /// Content types accepted, each one the server accepts too.
    #[serde(rename = "allowedTypes", default)]
    pub allowed_types: Option<Vec<String>>,
}

impl GrantRequest {
    /// The claims for `owner` at `now`, refusing (400) anything that would
    /// widen a limit: `server_max` is the server's largest file, and
    /// `server_allows` says whether the server accepts a content-type pattern.
    pub fn claims(
        &self,
        owner: &str,
        now: u64,
        server_max: u64,
        server_allows: impl Fn(&str) -> bool,
    ) -> Result<Claims> {
        let ttl = self.expires_in.unwrap_or(DEFAULT_TTL.as_secs());
        if ttl == 0 || ttl > MAX_TTL.as_secs() {
            return Err(Error::bad_request(format!(
                "expiresIn must be 1 to {} seconds",
                MAX_TTL.as_secs()
            )));
        }
        if let Some(m) = self.max_file_size
            && (m == 0 || m > server_max)
        {
            return Err(Error::bad_request(format!(
                "maxFileSize must be 1 to {server_max} bytes"
            )));
        }
        let content_types = self
            .allowed_types
            .as_ref()
            .map(|types| {
                if types.is_empty() || types.len() > MAX_GRANT_TYPES {
                    return Err(Error::bad_request(format!(
                        "allowedTypes lists 1 to {MAX_GRANT_TYPES} content types"
                    )));
                }
                types
                    .iter()
                    .map(|t| {
                        let t = t.trim().to_ascii_lowercase();
                        if !is_type_pattern(&t) || !server_allows(&t) {
                            return Err(Error::bad_request(format!(
                                "allowedTypes: {t:?} is not a content type this API accepts"
                            )));
                        }
                        Ok(t)
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(Claims {
            owner: owner.to_string(),
            expires: now + ttl,
            max_file_size: self.max_file_size,
            content_types,
        })
    }
}

/// `type/subtype`, `type/*` or `*/*`, in token characters.
fn is_type_pattern(t: &str) -> bool {
    let token = |s: &str| {
        !s.is_empty()
            && s.len() <= 127
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+*".contains(&b))
    };
    match t.split_once('/') {
        Some(("*", sub)) => sub == "*",
        Some((ty, sub)) => token(ty) && token(sub) && !ty.contains('*'),
        None => false,
    }
}

/// The patterns both lists accept: each pattern of one that the other covers.
/// (`image/*` ∩ `image/png` is `image/png`; `*/*` ∩ x is x.)
pub fn intersect_types(a: &[String], b: &[String]) -> Vec<String> {
    let covers = |pattern: &str, t: &str| match (pattern.split_once('/'), t.split_once('/')) {
        (Some(("*", "*")), _) => true,
        (Some((pty, "*")), Some((ty, _))) => pty == ty,
        _ => pattern == t,
    };
    let mut out: Vec<String> = Vec::new();
    for (from, other) in [(a, b), (b, a)] {
        for t in from {
            if other.iter().any(|o| covers(o, t)) && !out.contains(t) {
                out.push(t.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "0123456789abcdef0123456789abcdef-one";
    const K2: &str = "0123456789abcdef0123456789abcdef-two";
    const K3: &str = "0123456789abcdef0123456789abcdef-three";

    fn claims(expires: u64) -> Claims {
        Claims {
            owner: "alice".into(),
            expires,
            max_file_size: Some(10),
            content_types: Some(vec!["image/*".into()]),
        }
    }

    #[test]
    fn a_sealed_grant_opens_until_it_expires() {
        let keys = GrantKeys::parse(K1).unwrap();
        let g = keys.seal(&claims(1000)).unwrap();
        assert_eq!(keys.open(&g, 999).unwrap(), claims(1000));
        let err = keys.open(&g, 1000).unwrap_err();
        assert_eq!(err.status(), 401);
        assert!(err.to_string().contains("expired"), "{err}");
        assert!(
            g.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
            "URL-safe: {g}"
        );
        assert!(g.len() < 200, "short: {} chars", g.len());
        // Two grants of the same claims share nothing: the nonce is fresh.
        let again = keys.seal(&claims(1000)).unwrap();
        assert_ne!(g, again);
        assert_ne!(
            g.split_once('.').unwrap().0,
            again.split_once('.').unwrap().0
        );
    }

    #[test]
    fn a_grant_reveals_nothing_of_its_claims() {
        let keys = GrantKeys::parse(K1).unwrap();
        let mut c = claims(1000);
        c.owner = "alice@example.com".into();
        let g = keys.seal(&c).unwrap();
        let mut readable = g.clone();
        for part in g.split('.') {
            if let Ok(bytes) = B64.decode(part) {
                readable.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
        // Words long enough not to turn up in random base64 by chance.
        for secret in ["alice", "example", "image/", "\"sub\"", "\"exp\""] {
            assert!(!readable.contains(secret), "{secret} shows in {g}");
        }
    }

    #[test]
    fn tampering_anywhere_is_refused() {
        let keys = GrantKeys::parse(K1).unwrap();
        let g = keys.seal(&claims(1000)).unwrap();
        // Readable claims with a real grant's nonce: the old, signed-only shape.
        let (nonce, sealed) = g.split_once('.').unwrap();
        let mut forged = claims(1000);
        forged.owner = "mallory".into();
        let payload = B64.encode(serde_json::to_vec(&forged).unwrap());
        let err = keys.open(&format!("{nonce}.{payload}"), 1).unwrap_err();
        assert_eq!(
            (err.status(), err.to_string().as_str()),
            (401, "the upload grant is not valid")
        );
        // The ciphertext under another nonce, cut short, or grown.
        let other = keys.seal(&claims(1000)).unwrap();
        let other_nonce = other.split_once('.').unwrap().0;
        for t in [
            format!("{other_nonce}.{sealed}"),
            format!("{nonce}.{}", &sealed[..sealed.len() - 4]),
            format!("{nonce}.{sealed}AAAA"),
            format!("{nonce}{sealed}"),
        ] {
            assert_eq!(keys.open(&t, 1).unwrap_err().status(), 401, "{t}");
        }
        // Every single-character change.
        for i in 0..g.len() {
            let mut b = g.clone().into_bytes();
            b[i] = if b[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(b).unwrap();
            if t != g {
                assert!(keys.open(&t, 1).is_err(), "changed at {i}");
            }
        }
        assert!(keys.open("", 1).is_err());
        assert!(keys.open(".", 1).is_err());
        assert!(keys.open(&"a".repeat(MAX_GRANT_CHARS + 1), 1).is_err());
    }

    #[test]
    fn rotation_accepts_the_previous_key_and_seals_with_the_current() {
        let old = GrantKeys::parse(K1).unwrap();
        let rotated = GrantKeys::parse(&format!("{K2},{K1}")).unwrap();
        let from_old = old.seal(&claims(1000)).unwrap();
        assert_eq!(
            rotated.open(&from_old, 1).unwrap(),
            claims(1000),
            "in-flight grants survive"
        );
        let from_new = rotated.seal(&claims(1000)).unwrap();
        assert!(GrantKeys::parse(K2).unwrap().open(&from_new, 1).is_ok());
        assert!(old.open(&from_new, 1).is_err());
        // Once the old key is dropped, its grants are refused; so is any unknown key.
        assert!(GrantKeys::parse(K2).unwrap().open(&from_old, 1).is_err());
        let stranger = GrantKeys::parse(K3).unwrap().seal(&claims(1000)).unwrap();
        assert_eq!(rotated.open(&stranger, 1).unwrap_err().status(), 401);
    }

    #[test]
    fn a_grant_too_long_for_a_url_is_refused() {
        let keys = GrantKeys::parse(K1).unwrap();
        let mut c = claims(1000);
        c.content_types = Some(
            (0..MAX_GRANT_TYPES)
                .map(|i| format!("application/{i}{}", "x".repeat(120)))
                .collect(),
        );
        assert_eq!(keys.seal(&c).unwrap_err().status(), 400);
    }

    #[test]
    fn fingerprints_are_short() {
        assert_eq!(fingerprint("abcdefghijkl.mnop"), "abcdefgh");
        assert_eq!(fingerprint("abc"), "abc");
        assert_eq!(fingerprint("ééééééééé"), "éééééééé");
    }

    #[test]
    fn keys_are_checked_and_never_shown() {
        assert!(GrantKeys::parse("short").is_err());
        assert!(GrantKeys::parse(&format!("{K1},{K2},{K3}")).is_err());
        assert!(GrantKeys::parse(&format!("{K1},")).is_err());
        let keys = GrantKeys::parse(&format!("{K1},{K2}")).unwrap();
        assert_eq!(format!("{keys:?}"), "GrantKeys(2 keys, redacted)");
        let err = GrantKeys::parse(&format!("{K1},tiny")).unwrap_err();
        assert!(!err.to_string().contains("tiny") && !err.to_string().contains(K1));
    }

    #[test]
    fn requests_narrow_but_never_widen() {
        let images_and_pdf = |t: &str| ["image/*", "image/png", "application/pdf"].contains(&t);
        let req = GrantRequest::default();
        let c = req.claims("alice", 100, 50, images_and_pdf).unwrap();
        assert_eq!(c.expires, 100 + DEFAULT_TTL.as_secs());
        assert_eq!((c.max_file_size, c.content_types), (None, None));

        let req = GrantRequest {
            expires_in: Some(60),
            max_file_size: Some(50),
            allowed_types: Some(vec!["Image/PNG".into()]),
        };
        let c = req.claims("alice", 100, 50, images_and_pdf).unwrap();
        assert_eq!(c.expires, 160);
        assert_eq!(c.max_file_size, Some(50));
        assert_eq!(c.content_types, Some(vec!["image/png".to_string()]));

        for bad in [
            GrantRequest {
                expires_in: Some(MAX_TTL.as_secs() + 1),
                ..Default::default()
            },
            GrantRequest {
                expires_in: Some(0),
                ..Default::default()
            },
            GrantRequest {
                max_file_size: Some(51),
                ..Default::default()
            },
            GrantRequest {
                max_file_size: Some(0),
                ..Default::default()
            },
            GrantRequest {
                allowed_types: Some(vec!["video/mp4".into()]),
                ..Default::default()
            },
            GrantRequest {
                allowed_types: Some(vec!["*/*".into()]),
                ..Default::default()
            },
            GrantRequest {
                allowed_types: Some(vec![]),
                ..Default::default()
            },
            GrantRequest {
                allowed_types: Some(vec!["nonsense".into()]),
                ..Default::default()
            },
        ] {
            let err = bad.claims("alice", 100, 50, images_and_pdf).unwrap_err();
            assert_eq!(err.status(), 400, "{bad:?}");
        }
    }

    #[test]
    fn type_lists_intersect() {
        let v = |s: &[&str]| s.iter().map(|t| t.to_string()).collect::<Vec<_>>();
        assert_eq!(
            intersect_types(&v(&["*/*"]), &v(&["image/png"])),
            v(&["image/png"])
        );
        assert_eq!(
            intersect_types(
                &v(&["image/*", "text/plain"]),
                &v(&["image/png", "application/pdf"])
            ),
            v(&["image/png"])
        );
        assert_eq!(
            intersect_types(&v(&["image/*"]), &v(&["image/*"])),
            v(&["image/*"])
        );
        assert!(intersect_types(&v(&["video/*"]), &v(&["image/*"])).is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any string is a valid grant or a 401, never a panic.
            #[test]
            fn garbage_is_a_401(s in "[A-Za-z0-9_.=+/-]{0,300}|\\PC{0,300}") {
                let keys = GrantKeys::parse(K1).unwrap();
                prop_assert_eq!(keys.open(&s, 0).unwrap_err().status(), 401);
            }

            /// Sealed garbage claims are refused without a panic too.
            #[test]
            fn sealed_garbage_is_a_401(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                let keys = GrantKeys::parse(K1).unwrap();
                let nonce = [7u8; NONCE_BYTES];
                let sealed = keys.ciphers[0]
                    .encrypt(XNonce::from_slice(&nonce), Payload { msg: &bytes, aad: AAD })
                    .unwrap();
                let grant = format!("{}.{}", B64.encode(nonce), B64.encode(sealed));
                if let Err(e) = keys.open(&grant, 0) {
                    prop_assert_eq!(e.status(), 401);
                }
            }
        }
    }
}
