//! Handler calls in process: an API Gateway payload-2.0 event for one route,
//! as API Gateway sends it after its JWT authorizer, run through
//! [`partwise::api::handle`]. For benches and race trials that drive the
//! handlers without HTTP in between.

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use partwise::Context;
use partwise::api::{self, ROUTES};
use serde_json::{Map, Value, json};

pub const CREATE: &str = "POST /s3/multipart";
pub const SIGN: &str = "GET /s3/multipart/{uploadId}/{partNumber}";
pub const BATCH: &str = "GET /s3/multipart/{uploadId}/batch";
pub const LIST: &str = "GET /s3/multipart/{uploadId}";
pub const STATUS: &str = "GET /s3/multipart/{uploadId}/status";
pub const COMPLETE: &str = "POST /s3/multipart/{uploadId}/complete";
pub const ABORT: &str = "DELETE /s3/multipart/{uploadId}";
pub const PARAMS: &str = "GET /s3/params";
/// `POST /s3/puts`: many small files started at once.
pub const PUTS: &str = "POST /s3/puts";
pub const UPLOADS: &str = "GET /s3/multipart";

/// One call of a route: path and query parameters, a JSON body, the caller.
#[derive(Debug, Clone)]
pub struct ApiCall {
    pub route_key: &'static str,
    pub path: Vec<(&'static str, String)>,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<String>,
    pub owner: String,
}

impl ApiCall {
    /// A call of `route_key` (e.g. [`COMPLETE`]) by `owner` (the JWT's `sub`).
    pub fn new(route_key: &'static str, owner: &str) -> Self {
        ApiCall {
            route_key,
            path: vec![],
            query: vec![],
            body: None,
            owner: owner.to_string(),
        }
    }

    pub fn path(mut self, k: &'static str, v: impl ToString) -> Self {
        self.path.push((k, v.to_string()));
        self
    }

    pub fn query(mut self, k: &'static str, v: impl ToString) -> Self {
        self.query.push((k, v.to_string()));
        self
    }

    pub fn json(mut self, v: Value) -> Self {
        self.body = Some(v.to_string());
        self
    }

    /// The event API Gateway would send (parameter values are used as given,
    /// so they must not need escaping in a URL).
    pub fn event(&self) -> ApiGatewayV2httpRequest {
        let (method, template) = self.route_key.split_once(' ').unwrap_or(("GET", "/"));
        let mut path = template.to_string();
        for (k, v) in &self.path {
            path = path.replace(&format!("{{{k}}}"), v);
        }
        let raw_query: Vec<String> = self.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let params = |pairs: &[(&str, String)]| -> Map<String, Value> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect()
        };
        let mut e = json!({
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": path,
            "rawQueryString": raw_query.join("&"),
            "headers": {"content-type": "application/json"},
            "queryStringParameters": params(&self.query),
            "pathParameters": params(&self.path),
            "requestContext": {
                "accountId": "123456789012", "apiId": "local", "domainName": "local", "requestId": "r",
                "routeKey": self.route_key, "stage": "$default", "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "partwise-local"},
                "authorizer": {"jwt": {"claims": {"sub": self.owner}, "scopes": null}}
            },
            "isBase64Encoded": false
        });
        if let Some(b) = &self.body {
            e["body"] = json!(b);
        }
        serde_json::from_value(e).expect("a well-formed payload-2.0 event")
    }

    /// Runs the call through the function that serves its route: (status, JSON body).
    pub async fn send(&self, ctx: &Context) -> (u16, Value) {
        let Some(route) = ROUTES.iter().find(|r| r.is(self.route_key)) else {
            return (
                404,
                json!({"error": format!("no route {}", self.route_key)}),
            );
        };
        let resp = api::handle(ctx, route.function, self.event()).await;
        let body = match resp.body {
            Some(aws_lambda_events::encodings::Body::Text(t)) => {
                serde_json::from_str(&t).unwrap_or(Value::String(t))
            }
            _ => Value::Null,
        };
        (resp.status_code as u16, body)
    }
}
