//! Reading an API Gateway payload-2.0 event: path, query, JSON body, caller.

use crate::error::{Error, Result};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine;
use serde::de::DeserializeOwned;

/// Largest request body we parse; the biggest real one (10,000 parts) is ~700 KB.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Owner of uploads made in anonymous mode.
pub const ANONYMOUS_OWNER: &str = "anonymous";

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

    /// The raw body bytes, decoded from base64 when API Gateway encoded them.
    pub fn body_bytes(&self) -> Result<Vec<u8>> {
        let Some(body) = self.event.body.as_deref() else {
            return Ok(Vec::new());
        };
        let bytes = if self.event.is_base64_encoded {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|_| Error::bad_request("body is not valid base64"))?
        } else {
            body.as_bytes().to_vec()
        };
        if bytes.len() > MAX_BODY_BYTES {
            return Err(Error::TooLarge(format!(
                "request body is larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        Ok(bytes)
    }

    /// The body as JSON of type `T`; an empty body reads as `{}`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let bytes = self.body_bytes()?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map_err(|e| Error::bad_request(format!("invalid JSON body: {e}")))
    }

    /// Who is calling: the JWT `sub`, else the IAM caller, else (in anonymous
    /// mode only) the shared anonymous owner.
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
            None if anonymous => Ok(ANONYMOUS_OWNER.to_string()),
            None => Err(Error::Forbidden(
                "this API needs an authenticated caller".into(),
            )),
        }
    }
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
    fn owner_comes_from_jwt_then_iam_then_anonymous() {
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
        assert_eq!(Request::new(&e).owner(false).unwrap_err().status(), 403);
        assert_eq!(Request::new(&e).owner(true).unwrap(), ANONYMOUS_OWNER);
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
}
