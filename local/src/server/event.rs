//! Shaping an HTTP request into the payload-format-2.0 event API Gateway sends
//! a Lambda, field by field, as JSON (the `aws_lambda_events` structs are
//! `#[non_exhaustive]`, and JSON is what the Lambda runtime parses anyway).

use base64::Engine;
use hyper::HeaderMap;
use hyper::header::{CONTENT_TYPE, COOKIE, HOST, USER_AGENT};
use partwise::api::Route;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::net::IpAddr;
use time::OffsetDateTime;
use time::macros::format_description;

/// The parts of one HTTP request that the event is made of.
pub(crate) struct Incoming<'a> {
    pub method: &'a str,
    /// The path as received, still percent-encoded.
    pub raw_path: &'a str,
    /// The query string as received, without `?`.
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// `HTTP/1.1` and the like.
    pub protocol: &'a str,
    pub source_ip: IpAddr,
    /// Port the client connected to (`x-forwarded-port`).
    pub local_port: u16,
    pub request_id: &'a str,
    pub now: OffsetDateTime,
}

/// Stand-ins for the parts of `requestContext` that name an AWS deployment.
const ACCOUNT_ID: &str = "000000000000";
const API_ID: &str = "local";

/// The event for `req` on `route`; `claims` become a JWT authorizer's claims.
pub(crate) fn build(
    req: &Incoming<'_>,
    route: &Route,
    path_parameters: &[(&str, String)],
    claims: Option<BTreeMap<String, String>>,
) -> Value {
    let domain_name = req
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map_or_else(|| format!("127.0.0.1:{}", req.local_port), str::to_string);
    let domain_prefix = domain_name
        .split(['.', ':'])
        .next()
        .unwrap_or_default()
        .to_string();
    let user_agent = req
        .headers
        .get(USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let route_key = route.key();

    let mut request_context = json!({
        "accountId": ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain_name,
        "domainPrefix": domain_prefix,
        "http": {
            "method": req.method,
            "path": req.raw_path,
            "protocol": req.protocol,
            "sourceIp": req.source_ip.to_string(),
            "userAgent": user_agent.unwrap_or_default(),
        },
        "requestId": req.request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": api_gateway_time(req.now),
        "timeEpoch": (req.now.unix_timestamp_nanos() / 1_000_000) as i64,
    });
    if let Some(claims) = claims {
        request_context["authorizer"] = json!({ "jwt": { "claims": claims, "scopes": null } });
    }

    let mut event = Map::new();
    event.insert("version".into(), json!("2.0"));
    event.insert("routeKey".into(), json!(route_key));
    event.insert("rawPath".into(), json!(req.raw_path));
    event.insert("rawQueryString".into(), json!(req.raw_query));
    let cookies = cookies(req.headers);
    if !cookies.is_empty() {
        event.insert("cookies".into(), json!(cookies));
    }
    event.insert("headers".into(), json!(headers(req)));
    let query = query_parameters(req.raw_query);
    if !query.is_empty() {
        event.insert("queryStringParameters".into(), json!(query));
    }
    if !path_parameters.is_empty() {
        let params: BTreeMap<&str, &str> = path_parameters
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        event.insert("pathParameters".into(), json!(params));
    }
    event.insert("requestContext".into(), request_context);
    let (body, is_base64) = body(req.headers, req.body);
    if let Some(body) = body {
        event.insert("body".into(), json!(body));
    }
    event.insert("isBase64Encoded".into(), json!(is_base64));
    Value::Object(event)
}

/// `25/Nov/2025:06:13:00 +0000`, API Gateway's `requestContext.time`.
fn api_gateway_time(now: OffsetDateTime) -> String {
    let format =
        format_description!("[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000");
    now.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// Header names lower-cased, repeated headers comma-joined; `cookie` moves to
/// `cookies`; the `x-forwarded-*` headers API Gateway adds are added.
fn headers(req: &Incoming<'_>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in req.headers {
        if name == COOKIE {
            continue;
        }
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_string())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    let ip = req.source_ip.to_string();
    out.entry("x-forwarded-for".into())
        .and_modify(|v| {
            v.push_str(", ");
            v.push_str(&ip);
        })
        .or_insert(ip);
    out.insert("x-forwarded-port".into(), req.local_port.to_string());
    out.insert("x-forwarded-proto".into(), "http".into());
    out
}

/// Every `name=value` of every `Cookie` header, in order.
fn cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|v| {
            String::from_utf8_lossy(v.as_bytes())
                .split(';')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Decoded query parameters; a repeated key's values are comma-joined, as API
/// Gateway does. (`aws_lambda_events` splits them on commas again, so a
/// handler sees a value containing a comma as several values, as on AWS.)
pub(crate) fn query_parameters(raw: &str) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (form_decode(k), form_decode(v));
        out.entry(k)
            .and_modify(|old| {
                old.push(',');
                old.push_str(&v);
            })
            .or_insert(v);
    }
    out
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let Some(b) = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(b);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The body as API Gateway passes it: text as is, anything else base64.
/// No body at all for an empty request body.
fn body(headers: &HeaderMap, body: &[u8]) -> (Option<String>, bool) {
    if body.is_empty() {
        return (None, false);
    }
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    match std::str::from_utf8(body) {
        Ok(text) if content_type.is_none_or(is_text) => (Some(text.to_string()), false),
        _ => (
            Some(base64::engine::general_purpose::STANDARD.encode(body)),
            true,
        ),
    }
}

/// Media types API Gateway treats as text.
fn is_text(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || ["json", "xml", "javascript"]
            .iter()
            .any(|t| media.ends_with(&format!("/{t}")) || media.ends_with(&format!("+{t}")))
        || matches!(
            media.as_str(),
            "application/x-www-form-urlencoded"
                | "application/graphql"
                | "application/yaml"
                | "application/x-yaml"
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
    use hyper::header::HeaderValue;
    use partwise::api::routes::match_route;

    fn incoming<'a>(
        method: &'a str,
        target: &'a str,
        headers: &'a HeaderMap,
        body: &'a [u8],
    ) -> Incoming<'a> {
        let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
        Incoming {
            method,
            raw_path,
            raw_query,
            headers,
            body,
            protocol: "HTTP/1.1",
            source_ip: "127.0.0.1".parse().unwrap(),
            local_port: 3000,
            request_id: "req-1",
            now: OffsetDateTime::from_unix_timestamp(1_764_051_180).unwrap(),
        }
    }

    fn event_for(
        method: &str,
        target: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> (Value, ApiGatewayV2httpRequest) {
        let req = incoming(method, target, headers, body);
        let (route, params) = match_route(method, req.raw_path).unwrap();
        let v = build(&req, route, &params, None);
        let typed = serde_json::from_value(v.clone()).unwrap();
        (v, typed)
    }

    #[test]
    fn route_key_and_path_parameters_follow_the_route_table() {
        let (v, e) = event_for("GET", "/s3/multipart/a%2Fb%20c/7", &HeaderMap::new(), b"");
        assert_eq!(v["routeKey"], "GET /s3/multipart/{uploadId}/{partNumber}");
        assert_eq!(v["requestContext"]["routeKey"], v["routeKey"]);
        assert_eq!(v["rawPath"], "/s3/multipart/a%2Fb%20c/7");
        assert_eq!(e.path_parameters["uploadId"], "a/b c");
        assert_eq!(e.path_parameters["partNumber"], "7");
        assert_eq!(e.request_context.http.method, hyper::Method::GET);
        assert_eq!(e.request_context.stage.as_deref(), Some("$default"));
        assert_eq!(
            e.request_context.time.as_deref(),
            Some("25/Nov/2025:06:13:00 +0000")
        );
        assert_eq!(e.request_context.time_epoch, 1_764_051_180_000);
        assert!(v.get("body").is_none() && v.get("queryStringParameters").is_none());
        assert!(e.request_context.authorizer.is_none());
    }

    #[test]
    fn query_values_are_decoded_and_repeated_keys_joined() {
        let (v, e) = event_for(
            "GET",
            "/s3/params?filename=my+cat%21.jpg&type=image%2Fjpeg&a=1&a=2&flag",
            &HeaderMap::new(),
            b"",
        );
        assert_eq!(
            v["rawQueryString"],
            "filename=my+cat%21.jpg&type=image%2Fjpeg&a=1&a=2&flag"
        );
        assert_eq!(v["queryStringParameters"]["filename"], "my cat!.jpg");
        assert_eq!(v["queryStringParameters"]["a"], "1,2");
        assert_eq!(v["queryStringParameters"]["flag"], "");
        assert_eq!(e.query_string_parameters.first("type"), Some("image/jpeg"));
        assert_eq!(e.query_string_parameters.all("a").unwrap(), ["1", "2"]);
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz%4"), "%zz%4");
    }

    #[test]
    fn headers_are_lower_cased_and_joined_and_cookies_split_out() {
        let mut h = HeaderMap::new();
        h.append("X-Thing", HeaderValue::from_static("a"));
        h.append("x-thing", HeaderValue::from_static("b"));
        h.append("cookie", HeaderValue::from_static("s=1; t=2"));
        h.append("cookie", HeaderValue::from_static("u=3"));
        h.append("host", HeaderValue::from_static("127.0.0.1:3000"));
        h.append("user-agent", HeaderValue::from_static("curl/8"));
        let (v, e) = event_for("POST", "/s3/multipart", &h, b"");
        assert_eq!(v["headers"]["x-thing"], "a,b");
        assert!(v["headers"].get("cookie").is_none());
        assert_eq!(v["cookies"], json!(["s=1", "t=2", "u=3"]));
        assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.1");
        assert_eq!(v["headers"]["x-forwarded-proto"], "http");
        assert_eq!(
            e.request_context.domain_name.as_deref(),
            Some("127.0.0.1:3000")
        );
        assert_eq!(e.request_context.domain_prefix.as_deref(), Some("127"));
        assert_eq!(e.request_context.http.user_agent.as_deref(), Some("curl/8"));
    }

    #[test]
    fn text_bodies_pass_as_text_and_others_as_base64() {
        let mut json_ct = HeaderMap::new();
        json_ct.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        let (v, e) = event_for("POST", "/s3/multipart", &json_ct, br#"{"a":1}"#);
        assert_eq!(v["body"], r#"{"a":1}"#);
        assert!(!e.is_base64_encoded);

        let mut binary = HeaderMap::new();
        binary.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let (v, e) = event_for("POST", "/s3/multipart", &binary, b"hello");
        assert_eq!(v["body"], "aGVsbG8=");
        assert!(e.is_base64_encoded);

        let (v, _) = event_for("POST", "/s3/multipart", &HeaderMap::new(), &[0xff, 0x00]);
        assert_eq!(v["body"], "/wA=");
        assert_eq!(v["isBase64Encoded"], true);
        assert!(
            is_text("application/vnd.api+json") && is_text("text/plain") && !is_text("image/png")
        );
    }

    #[test]
    fn claims_become_a_jwt_authorizer() {
        let h = HeaderMap::new();
        let req = incoming("POST", "/s3/multipart", &h, b"");
        let (route, params) = match_route("POST", "/s3/multipart").unwrap();
        let claims = BTreeMap::from([("sub".to_string(), "alice".to_string())]);
        let v = build(&req, route, &params, Some(claims));
        assert_eq!(
            v["requestContext"]["authorizer"],
            json!({"jwt": {"claims": {"sub": "alice"}, "scopes": null}})
        );
        let e: ApiGatewayV2httpRequest = serde_json::from_value(v).unwrap();
        let jwt = e.request_context.authorizer.unwrap().jwt.unwrap();
        assert_eq!(jwt.claims["sub"], "alice");
        assert_eq!(jwt.scopes, None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any raw query string decodes without a panic, and a form-encoded
        /// pair decodes back to what was encoded.
        #[test]
        fn query_strings_decode_and_round_trip(
            raw in "[a-zA-Z0-9%+&=,\\[\\]\\x00-\\x1f\u{ff}-\u{10ffff}]{0,60}",
            name in "[a-z]{1,8}",
            value in proptest::prelude::any::<String>(),
        ) {
            let _ = query_parameters(&raw);
            let encoded: String = value
                .bytes()
                .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
                .collect();
            let decoded = query_parameters(&format!("{name}={encoded}"));
            proptest::prop_assert_eq!(decoded.get(&name), Some(&value));
        }
    }
}
