//! DEV MODE ONLY: turning `Authorization: Bearer <token>` into the claims a
//! JWT authorizer would have passed, WITHOUT verifying anything.
//!
//! On AWS, API Gateway's JWT authorizer verifies the token against the issuer
//! and only then hands its claims to the Lambda. Locally there is no issuer, so
//! a JWT's payload is trusted as is, and any other token is taken as the caller's
//! name (`sub`), which makes `curl -H 'Authorization: Bearer alice'` work.
//!
//! Refusals are 401 in both of the shapes `openapi.yaml` documents: a token
//! API Gateway would refuse gets its `{"message": "Unauthorized"}`; a request
//! with no token reaches the handlers without claims, and they answer the
//! `Error` shape with code `Unauthorized` (anonymous mode aside).

use base64::Engine;
use hyper::HeaderMap;
use hyper::header::AUTHORIZATION;
use serde_json::Value;
use std::collections::BTreeMap;

/// A bearer token that looks like a JWT but whose payload is not a JSON
/// object: API Gateway would answer 401.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unauthorized;

/// The claims for the request's bearer token; `None` without one.
pub(crate) fn claims(
    headers: &HeaderMap,
) -> Result<Option<BTreeMap<String, String>>, Unauthorized> {
    let Some(token) = bearer_token(headers) else {
        return Ok(None);
    };
    if !looks_like_jwt(token) {
        return Ok(Some(BTreeMap::from([(
            "sub".to_string(),
            token.to_string(),
        )])));
    }
    let payload = token.split('.').nth(1).ok_or(Unauthorized)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| Unauthorized)?;
    let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(&bytes) else {
        return Err(Unauthorized);
    };
    Ok(Some(
        map.into_iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
    ))
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Three dot-separated base64url parts (the signature may be empty, as with `alg: none`).
fn looks_like_jwt(token: &str) -> bool {
    let parts: Vec<&str> = token.split('.').collect();
    let b64url = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'='))
    };
    parts.len() == 3
        && !parts[0].is_empty()
        && !parts[1].is_empty()
        && parts.iter().all(|p| b64url(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use serde_json::json;

    fn with_auth(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
        h
    }

    fn jwt(payload: &Value) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.sig",
            b64(br#"{"alg":"none"}"#),
            b64(payload.to_string().as_bytes())
        )
    }

    #[test]
    fn jwt_payload_claims_are_taken_unverified() {
        let token = jwt(
            &json!({"sub": "u-1", "email": "a@b.c", "exp": 1700000000, "groups": ["x", "y"], "ok": true}),
        );
        let c = claims(&with_auth(&format!("Bearer {token}")))
            .unwrap()
            .unwrap();
        assert_eq!(c["sub"], "u-1");
        assert_eq!(c["email"], "a@b.c");
        assert_eq!(c["exp"], "1700000000");
        assert_eq!(c["groups"], r#"["x","y"]"#);
        assert_eq!(c["ok"], "true");
    }

    #[test]
    fn opaque_tokens_become_the_subject() {
        let c = claims(&with_auth("bearer alice")).unwrap().unwrap();
        assert_eq!(
            c,
            BTreeMap::from([("sub".to_string(), "alice".to_string())])
        );
        // Dots alone do not make a JWT.
        let c = claims(&with_auth("Bearer a.b")).unwrap().unwrap();
        assert_eq!(c["sub"], "a.b");
    }

    #[test]
    fn no_bearer_token_means_no_authorizer() {
        assert_eq!(claims(&HeaderMap::new()), Ok(None));
        assert_eq!(claims(&with_auth("Basic dXNlcjpwdw==")), Ok(None));
        assert_eq!(claims(&with_auth("Bearer   ")), Ok(None));
    }

    #[test]
    fn jwt_shaped_tokens_without_a_json_object_are_refused() {
        assert_eq!(claims(&with_auth("Bearer abc.def.ghi")), Err(Unauthorized));
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b"[1]");
        assert_eq!(
            claims(&with_auth(&format!("Bearer e30.{b64}.x"))),
            Err(Unauthorized)
        );
    }
}
