//! CORS as API Gateway's HTTP API applies it when a CORS configuration is set:
//! it answers preflights itself (the Lambdas never see OPTIONS) and adds the
//! CORS headers to every other response.

use crate::template::{HttpApiCors, Template};
use hyper::HeaderMap;
use hyper::header::{self, HeaderName, HeaderValue};
use partwise::api::ROUTES;

/// An HTTP API CORS configuration (SAM's `CorsConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// `*`, or origins echoed back when they match (case-insensitive).
    pub allow_origins: Vec<String>,
    /// `*` echoes the requested method.
    pub allow_methods: Vec<String>,
    /// `*` echoes the requested headers.
    pub allow_headers: Vec<String>,
    /// Response headers browser code may read.
    pub expose_headers: Vec<String>,
    /// Seconds a browser may cache a preflight answer.
    pub max_age: Option<u32>,
    /// Cookies and HTTP auth allowed cross-origin (never with a literal `*` origin).
    pub allow_credentials: bool,
}

impl Default for Cors {
    /// Permissive, for development: any origin, the API's methods, any header.
    fn default() -> Self {
        let mut methods: Vec<String> = ROUTES.iter().map(|r| r.method.to_string()).collect();
        methods.push("OPTIONS".into());
        methods.sort();
        methods.dedup();
        Cors {
            allow_origins: vec!["*".into()],
            allow_methods: methods,
            allow_headers: vec!["*".into()],
            expose_headers: vec!["*".into()],
            max_age: Some(600),
            allow_credentials: false,
        }
    }
}

impl Cors {
    /// The template's HttpApi CORS configuration where it has one, the defaults elsewhere.
    pub fn from_template(template: &Template) -> Cors {
        let Some(HttpApiCors {
            allow_origins,
            allow_methods,
            allow_headers,
            expose_headers,
            max_age,
            allow_credentials,
        }) = template.http_api_cors()
        else {
            return Cors::default();
        };
        let d = Cors::default();
        Cors {
            allow_origins: allow_origins.unwrap_or(d.allow_origins),
            allow_methods: allow_methods.unwrap_or(d.allow_methods),
            allow_headers: allow_headers.unwrap_or(d.allow_headers),
            expose_headers: expose_headers.unwrap_or(d.expose_headers),
            max_age: max_age.or(d.max_age),
            allow_credentials: allow_credentials.unwrap_or(d.allow_credentials),
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request, if its origin is allowed.
    fn allow_origin(&self, request: &HeaderMap) -> Option<String> {
        let origin = request.get(header::ORIGIN).and_then(|o| o.to_str().ok());
        if self.allow_origins.iter().any(|o| o == "*") {
            // Credentials forbid `*`: echo the origin instead.
            return Some(match origin {
                Some(o) if self.allow_credentials => o.to_string(),
                _ => "*".to_string(),
            });
        }
        let origin = origin?;
        self.allow_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
            .then(|| origin.to_string())
    }

    fn origin_headers(&self, request: &HeaderMap, out: &mut HeaderMap) {
        let Some(origin) = self.allow_origin(request) else {
            return;
        };
        if origin != "*" {
            out.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        put(out, header::ACCESS_CONTROL_ALLOW_ORIGIN, &origin);
        if self.allow_credentials {
            put(out, header::ACCESS_CONTROL_ALLOW_CREDENTIALS, "true");
        }
    }

    /// Headers for a normal (non-preflight) response.
    pub(crate) fn response_headers(&self, request: &HeaderMap, out: &mut HeaderMap) {
        self.origin_headers(request, out);
        if out.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) && !self.expose_headers.is_empty()
        {
            put(
                out,
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                &self.expose_headers.join(","),
            );
        }
    }

    /// Headers for the 204 answer to a preflight.
    pub(crate) fn preflight_headers(&self, request: &HeaderMap, out: &mut HeaderMap) {
        self.origin_headers(request, out);
        if !out.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
            return;
        }
        let requested = |h: HeaderName| {
            request
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let echo_or = |list: &[String], asked: Option<String>| {
            if list.iter().any(|m| m == "*") {
                asked.or_else(|| Some("*".to_string()))
            } else {
                Some(list.join(","))
            }
        };
        if let Some(methods) = echo_or(
            &self.allow_methods,
            requested(header::ACCESS_CONTROL_REQUEST_METHOD),
        ) {
            put(out, header::ACCESS_CONTROL_ALLOW_METHODS, &methods);
        }
        if let Some(headers) = echo_or(
            &self.allow_headers,
            requested(header::ACCESS_CONTROL_REQUEST_HEADERS),
        ) {
            put(out, header::ACCESS_CONTROL_ALLOW_HEADERS, &headers);
        }
        if let Some(age) = self.max_age {
            put(out, header::ACCESS_CONTROL_MAX_AGE, &age.to_string());
        }
    }
}

fn put(out: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        out.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn preflight_echoes_what_was_asked() {
        let mut out = HeaderMap::new();
        let r = req(&[
            ("origin", "http://localhost:5173"),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization,content-type",
            ),
        ]);
        Cors::default().preflight_headers(&r, &mut out);
        assert_eq!(out["access-control-allow-origin"], "*");
        assert_eq!(
            out["access-control-allow-methods"],
            "DELETE,GET,OPTIONS,POST"
        );
        assert_eq!(
            out["access-control-allow-headers"],
            "authorization,content-type"
        );
        assert_eq!(out["access-control-max-age"], "600");
    }

    #[test]
    fn listed_origins_are_echoed_and_others_get_nothing() {
        let cors = Cors {
            allow_origins: vec!["https://app.example".into()],
            ..Cors::default()
        };
        let mut out = HeaderMap::new();
        cors.response_headers(&req(&[("origin", "https://app.example")]), &mut out);
        assert_eq!(out["access-control-allow-origin"], "https://app.example");
        assert_eq!(out["vary"], "Origin");
        assert_eq!(out["access-control-expose-headers"], "*");
        let mut out = HeaderMap::new();
        cors.response_headers(&req(&[("origin", "https://evil.example")]), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn template_configuration_overrides_defaults() {
        let t = Template::parse(
            "Resources:\n  Api:\n    Type: AWS::Serverless::HttpApi\n    Properties:\n      CorsConfiguration:\n        ExposeHeaders: [ETag]\n        MaxAge: 5\n",
        )
        .unwrap();
        let cors = Cors::from_template(&t);
        assert_eq!(cors.expose_headers, ["ETag"]);
        assert_eq!(cors.max_age, Some(5));
        assert_eq!(cors.allow_origins, ["*"]);
    }
}
