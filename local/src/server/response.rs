//! Turning a Lambda's payload-2.0 answer into the HTTP response API Gateway
//! would send, and the answers API Gateway makes up itself.

use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use base64::Engine;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue, SET_COOKIE};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: &Value) -> HttpResponse {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The answer for an error the gateway itself refuses a request with, in the
/// handlers' JSON shape (a 405 with its `Allow` header).
pub(crate) fn error_response(err: &partwise::Error) -> HttpResponse {
    let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = json_response(status, &err.body());
    if let Some(v) = err.allow().and_then(|a| HeaderValue::from_str(a).ok()) {
        r.headers_mut().insert(hyper::header::ALLOW, v);
    }
    r
}

/// What API Gateway answers when the Lambda fails or answers nonsense.
pub(crate) fn internal_server_error() -> HttpResponse {
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({ "message": "Internal Server Error" }),
    )
}

/// A Lambda answer as it reaches API Gateway: JSON, as `lambda_runtime` serializes it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    status_code: i64,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    multi_value_headers: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    cookies: Vec<String>,
    body: Option<String>,
    #[serde(default)]
    is_base64_encoded: bool,
}

/// The HTTP form of a Lambda answer: status, headers, multi-value headers,
/// cookies as `set-cookie`, and the body (decoded when `isBase64Encoded`).
///
/// The answer goes through JSON first, as it does on AWS, so the same handler
/// bugs show locally: `headers` carries one value per name, a `Body::Binary`
/// arrives as base64 text unless `is_base64_encoded` is set, and a header that
/// is not UTF-8 fails the whole answer (500).
pub(crate) fn from_lambda(r: ApiGatewayV2httpResponse) -> HttpResponse {
    let wire = match serde_json::to_value(&r).and_then(serde_json::from_value::<Wire>) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(
                "handler answer does not serialize as the Lambda runtime would send it: {e}"
            );
            return internal_server_error();
        }
    };
    let Some(status) = u16::try_from(wire.status_code)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
    else {
        tracing::error!("handler answered with invalid status {}", wire.status_code);
        return internal_server_error();
    };
    let body = match (wire.body, wire.is_base64_encoded) {
        (None, _) => Bytes::new(),
        (Some(b), false) => Bytes::from(b),
        (Some(b), true) => match base64::engine::general_purpose::STANDARD.decode(b.as_bytes()) {
            Ok(b) => Bytes::from(b),
            Err(_) => {
                tracing::error!("handler answered isBase64Encoded with a body that is not base64");
                return internal_server_error();
            }
        },
    };
    if !wire.multi_value_headers.is_empty() {
        tracing::warn!(
            "handler set multiValueHeaders: applied locally, but API Gateway payload 2.0 ignores them"
        );
    }
    let mut out = Response::new(Full::new(body));
    *out.status_mut() = status;
    let headers = out.headers_mut();
    let single = wire.headers.into_iter().map(|(k, v)| (k, vec![v]));
    for (name, values) in single.chain(wire.multi_value_headers) {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            tracing::warn!("dropping invalid header name {name:?}");
            continue;
        };
        for value in values {
            match HeaderValue::from_str(&value) {
                Ok(v) if !headers.get_all(&name).iter().any(|old| *old == v) => {
                    headers.append(&name, v);
                }
                Ok(_) => {}
                Err(_) => tracing::warn!("dropping invalid value of header {name}"),
            }
        }
    }
    for cookie in &wire.cookies {
        match HeaderValue::from_str(cookie) {
            Ok(v) => {
                headers.append(SET_COOKIE, v);
            }
            Err(_) => tracing::warn!("dropping a cookie that is not a valid header value"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::encodings::Body;
    use http_body_util::BodyExt;

    async fn body_of(r: HttpResponse) -> Vec<u8> {
        r.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn lambda_answers_map_to_http() {
        let mut r = ApiGatewayV2httpResponse::default();
        r.status_code = 201;
        r.headers
            .insert("content-type", HeaderValue::from_static("application/json"));
        r.multi_value_headers
            .append("x-multi", HeaderValue::from_static("a"));
        r.multi_value_headers
            .append("x-multi", HeaderValue::from_static("b"));
        r.cookies = vec!["a=1; Path=/".into(), "b=2".into()];
        r.body = Some(Body::Text("{}".into()));
        let http = from_lambda(r);
        assert_eq!(http.status(), 201);
        assert_eq!(http.headers()["content-type"], "application/json");
        assert_eq!(http.headers().get_all("x-multi").iter().count(), 2);
        assert_eq!(http.headers().get_all("set-cookie").iter().count(), 2);
        assert_eq!(body_of(http).await, b"{}");
    }

    #[tokio::test]
    async fn base64_bodies_are_decoded_and_bad_answers_are_500() {
        let mut r = ApiGatewayV2httpResponse::default();
        r.status_code = 200;
        r.is_base64_encoded = true;
        r.body = Some(Body::Text("aGk=".into()));
        assert_eq!(body_of(from_lambda(r.clone())).await, b"hi");
        r.body = Some(Body::Text("%%".into()));
        assert_eq!(from_lambda(r.clone()).status(), 500);
        r.status_code = 0;
        assert_eq!(from_lambda(r).status(), 500);
    }

    #[tokio::test]
    async fn answers_pass_through_json_as_on_aws() {
        // A binary body without isBase64Encoded reaches the client as base64 text.
        let mut r = ApiGatewayV2httpResponse::default();
        r.status_code = 200;
        r.body = Some(Body::Binary(b"hi".to_vec()));
        assert_eq!(body_of(from_lambda(r.clone())).await, b"aGk=");
        r.is_base64_encoded = true;
        assert_eq!(body_of(from_lambda(r.clone())).await, b"hi");
        // `headers` carries one value per name.
        r.headers.append("x-two", HeaderValue::from_static("1"));
        r.headers.append("x-two", HeaderValue::from_static("2"));
        assert_eq!(
            from_lambda(r.clone())
                .headers()
                .get_all("x-two")
                .iter()
                .count(),
            1
        );
        // A header that is not UTF-8 cannot be serialized at all.
        r.headers
            .insert("x-bad", HeaderValue::from_bytes(b"\xff").unwrap());
        assert_eq!(from_lambda(r).status(), 500);
    }
}
