//! Shaping answers: JSON bodies, and errors in their one JSON form.

use crate::error::Error;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::{HeaderMap, HeaderValue, header};
use serde::Serialize;

/// A JSON answer. Nothing we return may be cached: URLs expire, states change.
pub fn json(status: u16, body: &impl Serialize) -> ApiGatewayV2httpResponse {
    json_text(
        status,
        serde_json::to_string(body).unwrap_or_else(|_| "{}".into()),
    )
}

/// A JSON answer already written out.
pub fn json_text(status: u16, text: String) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = status as i64;
    r.headers = headers;
    r.body = Some(Body::Text(text));
    r
}

/// The answer for an error; the retryable ones (429, 503) carry `Retry-After`, 405 `Allow`.
pub fn error(e: &Error) -> ApiGatewayV2httpResponse {
    if e.status() >= 500 {
        tracing::error!(error = %e, "request failed");
    } else {
        tracing::info!(status = e.status(), error = %e, "request refused");
    }
    let mut r = json(e.status(), &e.body());
    if let Some(secs) = e.retry_after() {
        r.headers
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(v) = e.allow().and_then(|a| HeaderValue::from_str(a).ok()) {
        r.headers.insert(header::ALLOW, v);
    }
    r
}
