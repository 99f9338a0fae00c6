//! Reading an API Gateway payload-2.0 event: path, query, JSON body, caller.

use crate::error::{Error, Result};
use aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription, ApiGatewayV2httpRequest,
};
use base64::Engine;
use serde::de::DeserializeOwned;

/// Largest request body we parse; the biggest real one (10,000 parts) is ~700 KB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Deepest nesting of arrays and objects a JSON body may have. Real bodies
/// need 3 (`{"parts": [{...}]}`); the bound keeps parsing cheap and refuses
/// pathological input before serde sees it.
pub const MAX_JSON_DEPTH: usize = 32;

/// Query parameters that may be left out but not sent empty: `limit=` or
/// `state=` is a mistake, not a choice. (`type=` is fine: Uppy sends it for a
/// file whose type the browser does not know; `filename=` gets its own 400.)
const NOT_EMPTY: &[&str] = &[
    "bytes",
    "checksum",
    "cursor",
    "key",
    "limit",
    "partNumbers",
    "size",
    "state",
];

/// A borrowed view of the event with typed accessors that fail as 4xx.
pub struct Request<'a> {
    pub event: &'a ApiGatewayV2httpRequest,
}

impl<'a> Request<'a> {
    pub fn new(event: &'a ApiGatewayV2httpRequest) -> Self {
        Request { event }
    }

    /// A path parameter that the route guarantees.
    pub fn path(&self, name: &str) -> Result<&'a str> {
        self.event
            .path_parameters
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::bad_request(format!("missing path parameter {name}")))
    }

    /// A query parameter, if present and not empty. API Gateway joins repeated
    /// parameters with commas and the event type splits them again, so the
    /// values are joined back: a filename or key may contain commas.
    pub fn query(&self, name: &str) -> Option<String> {
        let values = self.event.query_string_parameters.all(name)?;
        Some(values.join(",")).filter(|v| !v.is_empty())
    }

    /// Refuses what the typed accessors would read wrongly: a path or query
    /// string whose `%XX` escapes are not UTF-8 (they would read as U+FFFD),
    /// and a query string that names a parameter twice (`key=a&key=b`: API
    /// Gateway joins the values with a comma, which no handler could tell from
    /// one value holding a comma).
    pub fn check_raw(&self) -> Result<()> {
        let raw = self.event.raw_query_string.as_deref().unwrap_or_default();
        let path = self.event.raw_path.as_deref().unwrap_or_default();
        for (what, text) in [("path", path), ("query string", raw)] {
            if percent_encoding::percent_decode_str(text)
                .decode_utf8()
                .is_err()
            {
                return Err(Error::bad_request(format!(
                    "the {what} is not UTF-8 once percent-decoded"
                )));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            if value.is_empty() && NOT_EMPTY.contains(&name.as_ref()) {
                return Err(Error::bad_request(format!(
                    "query parameter {name:?} is empty; leave it out instead"
                )));
            }
            if !seen.insert(name.clone()) {
                return Err(Error::bad_request(format!(
                    "query parameter {name:?} is given more than once"
                )));
            }
        }
        Ok(())
    }

    /// The raw body bytes, decoded from base64 when API Gateway encoded them.
    pub fn body_bytes(&self) -> Result<Vec<u8>> {
        let Some(body) = self.event.body.as_deref() else {
            return Ok(Vec::new());
        };
        // Refused before any copy: base64 holds 3 bytes in every 4 characters.
        let decoded_len = if self.event.is_base64_encoded {
            body.len() / 4 * 3
        } else {
            body.len()
        };
        if decoded_len > MAX_BODY_BYTES + 3 {
            return Err(too_large());
        }
        let bytes = if self.event.is_base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|_| Error::bad_request("body is not valid base64"))?
        } else {
            body.as_bytes().to_vec()
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        Ok(bytes)
    }

    /// The body as JSON of type `T`; an empty body reads as `{}`. Every body
    /// is a JSON object (serde would read a struct from an array too) nested at
    /// most [`MAX_JSON_DEPTH`] deep.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let bytes = self.body_bytes()?;
        let bytes: &[u8] = match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            None => b"{}",
            Some(b'{') => &bytes,
            Some(_) => return Err(Error::bad_request("the JSON body must be an object")),
        };
        if nesting_exceeds(bytes, MAX_JSON_DEPTH) {
            return Err(Error::bad_request(format!(
                "the JSON body is nested more than {MAX_JSON_DEPTH} levels deep"
            )));
        }
        serde_json::from_slice(bytes)
            .map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
    }

    /// Who is calling: the JWT `sub`, else the IAM caller. An anonymous
    /// caller has been given an owner of their own before any handler runs
    /// (`api::anonymous`); `anonymous` only shapes the refusal when not.
    pub fn owner(&self, anonymous: bool) -> Result<String> {
        let auth = self.event.request_context.authorizer.as_ref();
        let jwt_sub = auth
            .and_then(|a| a.jwt.as_ref())
            .and_then(|j| j.claims.get("sub"))
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string());
        let iam = auth
            .and_then(|a| a.iam.as_ref())
            .and_then(|i| i.user_arn.clone().or_else(|| i.caller_id.clone()))
            .filter(|s| !s.is_empty());
        match jwt_sub.or(iam) {
            Some(owner) => Ok(owner),
            None if anonymous => Err(Error::Unauthorized(
                "anonymous callers name the upload's key, or use a grant (POST /grants)".into(),
            )),
            None => Err(Error::Unauthorized(
                "this API needs an authenticated caller".into(),
            )),
        }
    }
}

/// Makes `owner` the caller of `event`, exactly as a JWT `sub` would be:
/// any other identity on the request is dropped.
pub(super) fn set_owner(event: &mut ApiGatewayV2httpRequest, owner: String) {
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims.insert("sub".into(), owner);
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    event.request_context.authorizer = Some(authorizer);
}

fn too_large() -> Error {
    Error::TooLarge(format!(
        "request body is larger than {MAX_BODY_BYTES} bytes"
    ))
}

/// Whether arrays and objects in `json` nest deeper than `max`, brackets in
/// strings aside. One pass, no allocation; serde_json skips ignored fields
/// (such as Uppy's `metadata`) without any depth limit of its own.
fn nesting_exceeds(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(v: serde_json::Value) -> ApiGatewayV2httpRequest {
        let mut base = json!({
            "version": "2.0", "routeKey": "POST /s3/multipart", "rawPath": "/s3/multipart",
            "requestContext": {"http": {"method": "POST", "path": "/s3/multipart", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}, "timeEpoch": 0}
        });
        for (k, val) in v.as_object().unwrap() {
            if k == "authorizer" {
                base["requestContext"]["authorizer"] = val.clone();
            } else {
                base[k] = val.clone();
            }
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn owner_comes_from_jwt_then_iam() {
        let e = event(json!({"authorizer": {"jwt": {"claims": {"sub": "alice"}, "scopes": null}}}));
        assert_eq!(Request::new(&e).owner(false).unwrap(), "alice");
        let e = event(
            json!({"authorizer": {"iam": {"userArn": "arn:aws:iam::1:user/bob", "callerId": "X"}}}),
        );
        assert_eq!(
            Request::new(&e).owner(false).unwrap(),
            "arn:aws:iam::1:user/bob"
        );
        let e = event(json!({}));
        let err = Request::new(&e).owner(false).unwrap_err();
        assert_eq!((err.status(), err.code()), (401, "Unauthorized"));
        // A token without `sub` is no identity either.
        let e =
            event(json!({"authorizer": {"jwt": {"claims": {"email": "a@b.c"}, "scopes": null}}}));
        assert_eq!(Request::new(&e).owner(false).unwrap_err().status(), 401);
        // Anonymous callers are given an owner before any handler: none here.
        let err = Request::new(&e).owner(true).unwrap_err();
        assert_eq!(err.status(), 401);
        assert!(err.to_string().contains("grant"), "{err}");
    }

    #[test]
    fn bodies_decode_and_fail_as_4xx() {
        let e = event(json!({"body": "eyJhIjoxfQ==", "isBase64Encoded": true}));
        assert_eq!(
            Request::new(&e).json::<serde_json::Value>().unwrap(),
            json!({"a": 1})
        );
        let e = event(json!({"body": "{not json"}));
        assert_eq!(
            Request::new(&e)
                .json::<serde_json::Value>()
                .unwrap_err()
                .status(),
            400
        );
        let e = event(json!({"body": "%%%", "isBase64Encoded": true}));
        assert_eq!(
            Request::new(&e)
                .json::<serde_json::Value>()
                .unwrap_err()
                .status(),
            400
        );
        let e = event(json!({"body": " ".repeat(MAX_BODY_BYTES + 1)}));
        assert_eq!(
            Request::new(&e)
                .json::<serde_json::Value>()
                .unwrap_err()
                .status(),
            413
        );
        let e = event(json!({}));
        assert_eq!(
            Request::new(&e).json::<serde_json::Value>().unwrap(),
            json!({})
        );
    }

    #[test]
    fn repeated_query_parameters_and_escapes_that_are_not_utf8_are_400() {
        for raw in [
            "key=a&key=b",
            "key=a&k%65y=b",
            "partNumbers=1&partNumbers=2",
            "metadata%5Ba%5D=1&metadata[a]=2",
        ] {
            let e = event(json!({ "rawQueryString": raw }));
            let err = Request::new(&e).check_raw().unwrap_err();
            assert_eq!(err.status(), 400, "{raw}");
            assert!(err.to_string().contains("more than once"), "{err}");
        }
        for raw in [
            "",
            "key=a&uploadId=b",
            "key=a,b",
            "metadata[a]=1&metadata[b]=2",
            "filename=%C3%A9",
        ] {
            let e = event(json!({ "rawQueryString": raw }));
            assert!(Request::new(&e).check_raw().is_ok(), "{raw}");
        }
        for (path, raw) in [
            ("/s3/multipart/%FF", ""),
            ("/s3/params", "filename=%FF"),
            ("/s3/params", "filename=%C3"),
        ] {
            let e = event(json!({ "rawPath": path, "rawQueryString": raw }));
            let err = Request::new(&e).check_raw().unwrap_err();
            assert!(err.to_string().contains("not UTF-8"), "{path}?{raw}: {err}");
        }
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Create {
        filename: String,
    }

    fn create(body: &str) -> Result<Create> {
        let e = event(json!({ "body": body }));
        Request::new(&e).json::<Create>()
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert_eq!(create(r#"{"filename":"a"}"#).unwrap().filename, "a");
        for body in [
            r#"["a"]"#,
            r#" ["a", "image/png"]"#,
            "\"a\"",
            "1",
            "null",
            "true",
        ] {
            let err = create(body).unwrap_err();
            assert_eq!(err.status(), 400, "{body}");
            assert_eq!(err.to_string(), "the JSON body must be an object");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let nested = |depth: usize| {
            let inner = "[".repeat(depth - 1) + &"]".repeat(depth - 1);
            format!(r#"{{"filename":"a","metadata":{inner}}}"#)
        };
        assert!(create(&nested(MAX_JSON_DEPTH)).is_ok());
        let err = create(&nested(MAX_JSON_DEPTH + 1)).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.to_string().contains("nested more than 32"), "{err}");
        assert_eq!(create(&nested(5000)).unwrap_err().status(), 400);
        // Brackets inside strings, escaped quotes included, are text.
        let text = format!(r#"{{"filename":"a\"{}"}}"#, "[{".repeat(100));
        assert!(create(&text).is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any body, JSON-ish or not, is parsed or refused with a 4xx.
            #[test]
            fn any_body_is_parsed_or_a_4xx(
                body in prop_oneof![
                    "[\\[\\]{}\"a-z:,0-9 \\\\]{0,200}",
                    any::<String>(),
                ],
                base64 in any::<bool>(),
            ) {
                let body_field = if base64 {
                    base64::engine::general_purpose::STANDARD.encode(&body)
                } else {
                    body.clone()
                };
                let e = event(json!({ "body": body_field, "isBase64Encoded": base64 }));
                match Request::new(&e).json::<serde_json::Value>() {
                    Ok(v) => prop_assert!(v.is_object(), "{body:?} -> {v}"),
                    Err(err) => prop_assert!((400..500).contains(&err.status()), "{body:?}"),
                }
            }
        }
    }
}
