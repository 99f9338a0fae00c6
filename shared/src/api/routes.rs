//! The HTTP API's route table: which Lambda function serves which route.
//!
//! `template.yaml`, `openapi.yaml` and the local server all follow this table;
//! tests check that they agree with it.

use crate::error::Error;
use std::borrow::Cow;

/// One Lambda function of the HTTP API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Initiate,
    SignPart,
    ListParts,
    Complete,
    Abort,
}

impl Function {
    /// The function's folder under `functions/` and its binary name.
    pub fn name(self) -> &'static str {
        match self {
            Function::Initiate => "initiate",
            Function::SignPart => "sign-part",
            Function::ListParts => "list-parts",
            Function::Complete => "complete",
            Function::Abort => "abort",
        }
    }
}

/// What a route does; each function serves one or more operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Uppy's `createMultipartUpload` (+ our part plan).
    Create,
    /// Uppy's `getUploadParameters`: a presigned POST form for small files.
    PostForm,
    /// Uppy's `signPart`.
    SignPart,
    /// Many part URLs in one call.
    SignBatch,
    /// Uppy's `listParts`.
    ListParts,
    /// The tracked item's state.
    Status,
    /// Uppy's `completeMultipartUpload`.
    Complete,
    /// Uppy's `abortMultipartUpload`.
    Abort,
    /// The caller's uploads, newest first, a page at a time.
    ListUploads,
    /// Many part URLs in one call, each part's checksum signed in.
    SignBatchChecked,
    /// An upload grant: a Companion endpoint that carries the caller's identity.
    IssueGrant,
    /// A presigned GET for a completed upload's object.
    Download,
    /// The caller's usage of each quota.
    Quota,
    /// Many small uploads started at once: a presigned PUT each.
    StartPuts,
}

/// A route as API Gateway names it (`routeKey`), and the function behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    /// Path template with `{param}` segments, as in API Gateway.
    pub path: &'static str,
    pub function: Function,
    pub operation: Operation,
}

impl Route {
    /// API Gateway's `routeKey`, e.g. `POST /s3/multipart`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// Whether the route sits under `/g/{grant}`: the grant in the path is
    /// the credential, so API Gateway runs no authorizer on it.
    pub fn is_granted(&self) -> bool {
        self.path.starts_with(GRANT_PREFIX)
    }

    /// Whether `route_key` names this route.
    pub fn is(&self, route_key: &str) -> bool {
        route_key
            .split_once(' ')
            .is_some_and(|(m, p)| m.eq_ignore_ascii_case(self.method) && p == self.path)
    }
}

const fn route(
    method: &'static str,
    path: &'static str,
    function: Function,
    operation: Operation,
) -> Route {
    Route {
        method,
        path,
        function,
        operation,
    }
}

/// The path prefix of the routes an upload grant authorizes.
pub const GRANT_PREFIX: &str = "/g/{grant}/";

/// Every route of the API. Uppy Companion's S3 routes come first, then ours,
/// then the Companion routes (and the uploads list) under a grant.
pub const ROUTES: &[Route] = &[
    route(
        "POST",
        "/s3/multipart",
        Function::Initiate,
        Operation::Create,
    ),
    route("GET", "/s3/params", Function::Initiate, Operation::PostForm),
    route("POST", "/s3/puts", Function::Initiate, Operation::StartPuts),
    route(
        "GET",
        "/s3/multipart/{uploadId}/batch",
        Function::SignPart,
        Operation::SignBatch,
    ),
    route(
        "GET",
        "/s3/multipart/{uploadId}/{partNumber}",
        Function::SignPart,
        Operation::SignPart,
    ),
    route(
        "GET",
        "/s3/multipart/{uploadId}",
        Function::ListParts,
        Operation::ListParts,
    ),
    route(
        "GET",
        "/s3/multipart/{uploadId}/status",
        Function::ListParts,
        Operation::Status,
    ),
    route(
        "POST",
        "/s3/multipart/{uploadId}/complete",
        Function::Complete,
        Operation::Complete,
    ),
    route(
        "DELETE",
        "/s3/multipart/{uploadId}",
        Function::Abort,
        Operation::Abort,
    ),
    route(
        "GET",
        "/s3/multipart",
        Function::ListParts,
        Operation::ListUploads,
    ),
    route(
        "POST",
        "/s3/multipart/{uploadId}/batch",
        Function::SignPart,
        Operation::SignBatchChecked,
    ),
    route("POST", "/grants", Function::Initiate, Operation::IssueGrant),
    route("GET", "/quota", Function::ListParts, Operation::Quota),
    route(
        "GET",
        "/s3/multipart/{uploadId}/download",
        Function::ListParts,
        Operation::Download,
    ),
    route(
        "POST",
        "/g/{grant}/s3/multipart",
        Function::Initiate,
        Operation::Create,
    ),
    route(
        "GET",
        "/g/{grant}/s3/params",
        Function::Initiate,
        Operation::PostForm,
    ),
    route(
        "GET",
        "/g/{grant}/s3/multipart/{uploadId}/{partNumber}",
        Function::SignPart,
        Operation::SignPart,
    ),
    route(
        "GET",
        "/g/{grant}/s3/multipart/{uploadId}",
        Function::ListParts,
        Operation::ListParts,
    ),
    route(
        "POST",
        "/g/{grant}/s3/multipart/{uploadId}/complete",
        Function::Complete,
        Operation::Complete,
    ),
    route(
        "DELETE",
        "/g/{grant}/s3/multipart/{uploadId}",
        Function::Abort,
        Operation::Abort,
    ),
    route(
        "GET",
        "/g/{grant}/s3/multipart",
        Function::ListParts,
        Operation::ListUploads,
    ),
    route(
        "GET",
        "/g/{grant}/s3/multipart/{uploadId}/download",
        Function::ListParts,
        Operation::Download,
    ),
    route(
        "GET",
        "/g/{grant}/quota",
        Function::ListParts,
        Operation::Quota,
    ),
];

/// Path parameters by name, decoded.
pub type PathParams = Vec<(&'static str, String)>;

/// The route API Gateway would select for `method` and `path`: literal segments
/// win over `{param}` segments, as in API Gateway. Returns the path parameters too.
pub fn match_route(method: &str, path: &str) -> Option<(&'static Route, PathParams)> {
    let segments = segments(path);
    let mut best: Option<(usize, &'static Route, PathParams)> = None;
    for r in ROUTES
        .iter()
        .filter(|r| r.method.eq_ignore_ascii_case(method))
    {
        if let Some((literals, params)) = match_path(r, &segments)
            && best.as_ref().is_none_or(|(l, _, _)| literals > *l)
        {
            best = Some((literals, r, params));
        }
    }
    best.map(|(_, r, p)| (r, p))
}

/// The methods some route serves `path` with, sorted; empty for an unknown path.
/// `OPTIONS` is not among them: CORS preflights are the gateway's, not a route's.
pub fn allowed_methods(path: &str) -> Vec<&'static str> {
    let segments = segments(path);
    let mut methods: Vec<&'static str> = ROUTES
        .iter()
        .filter(|r| match_path(r, &segments).is_some())
        .map(|r| r.method)
        .collect();
    methods.sort_unstable();
    methods.dedup();
    methods
}

/// [`match_route`], or the error for a request no route serves: 405 with the
/// allowed methods for a known path (TRACE, PUT, ...), else 404.
pub fn resolve(method: &str, path: &str) -> Result<(&'static Route, PathParams), Error> {
    if let Some(found) = match_route(method, path) {
        return Ok(found);
    }
    let allowed = allowed_methods(path);
    // The message is logged: it names the path without a grant in it.
    let shown = redacted(path);
    if allowed.is_empty() {
        return Err(Error::UnknownRoute(format!(
            "no route for {method} {shown}"
        )));
    }
    Err(Error::MethodNotAllowed {
        message: format!(
            "{shown} does not take {method}; it takes {}",
            allowed.join(", ")
        ),
        allow: allowed.join(", "),
    })
}

/// `path` fit for a log line: a grant (`/g/{grant}/...`) is a credential, so
/// only its fingerprint ([`crate::grants::fingerprint`]) is kept, then `…`.
pub fn redacted(path: &str) -> Cow<'_, str> {
    let Some(rest) = path.strip_prefix("/g/") else {
        return Cow::Borrowed(path);
    };
    let (grant, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if grant.is_empty() {
        return Cow::Borrowed(path);
    }
    Cow::Owned(format!("/g/{}…{tail}", crate::grants::fingerprint(grant)))
}

fn segments(path: &str) -> Vec<&str> {
    path.trim_end_matches('/').split('/').collect()
}

/// Whether `route`'s path template matches `segments`: the number of literal
/// segments matched (more is a better match) and the decoded parameters.
fn match_path(route: &Route, segments: &[&str]) -> Option<(usize, PathParams)> {
    let pattern: Vec<&str> = route.path.split('/').collect();
    if pattern.len() != segments.len() {
        return None;
    }
    let mut literals = 0;
    let mut params = Vec::new();
    for (p, s) in pattern.iter().zip(segments) {
        match p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !s.is_empty() => params.push((name, percent_decode(s))),
            Some(_) => return None,
            None if p == s => literals += 1,
            None => return None,
        }
    }
    Some((literals, params))
}

/// Decodes `%XX` escapes as API Gateway does for path parameters.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_segments_win_over_parameters() {
        let (r, p) = match_route("GET", "/s3/multipart/abc/status").unwrap();
        assert_eq!(r.function, Function::ListParts);
        assert_eq!(p, vec![("uploadId", "abc".to_string())]);
        let (r, p) = match_route("GET", "/s3/multipart/abc/7").unwrap();
        assert_eq!(r.function, Function::SignPart);
        assert_eq!(p[1], ("partNumber", "7".to_string()));
    }

    #[test]
    fn methods_tell_same_paths_apart() {
        let (r, p) = match_route("GET", "/s3/multipart").unwrap();
        assert_eq!(
            (r.function, r.operation, p.len()),
            (Function::ListParts, Operation::ListUploads, 0)
        );
        let (r, _) = match_route("POST", "/s3/multipart").unwrap();
        assert_eq!(r.operation, Operation::Create);
        let (r, p) = match_route("POST", "/s3/multipart/abc/batch").unwrap();
        assert_eq!(
            (r.function, r.operation),
            (Function::SignPart, Operation::SignBatchChecked)
        );
        assert_eq!(p, vec![("uploadId", "abc".to_string())]);
        let (r, _) = match_route("GET", "/s3/multipart/abc/batch").unwrap();
        assert_eq!(r.operation, Operation::SignBatch);
    }

    #[test]
    fn grant_routes_carry_the_grant() {
        let (r, p) = match_route("GET", "/g/abc.def/s3/multipart/u1/3").unwrap();
        assert_eq!((r.operation, r.is_granted()), (Operation::SignPart, true));
        assert_eq!(p[0], ("grant", "abc.def".to_string()));
        let (r, _) = match_route("GET", "/s3/multipart/u1/3").unwrap();
        assert!(!r.is_granted());
        let (r, _) = match_route("POST", "/grants").unwrap();
        assert_eq!(
            (r.operation, r.is_granted()),
            (Operation::IssueGrant, false)
        );
    }

    #[test]
    fn grants_are_cut_from_logged_paths() {
        let grant = "AAAAbbbbCCCCdddd.secretsecretsecret";
        let path = format!("/g/{grant}/s3/multipart/u1");
        assert_eq!(redacted(&path), "/g/AAAAbbbb…/s3/multipart/u1");
        assert_eq!(redacted(&format!("/g/{grant}")), "/g/AAAAbbbb…");
        assert_eq!(redacted("/s3/multipart"), "/s3/multipart");
        assert_eq!(redacted("/g/"), "/g/");
        for method in ["TRACE", "GET"] {
            let err = resolve(method, &format!("{path}/x/y")).unwrap_err();
            assert!(!err.to_string().contains("secret"), "{err}");
        }
        let err = resolve("PUT", &path).unwrap_err();
        assert_eq!(err.status(), 405);
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn parameters_are_percent_decoded() {
        let (_, p) = match_route("DELETE", "/s3/multipart/a%2Fb%3D").unwrap();
        assert_eq!(p[0].1, "a/b=");
    }

    #[test]
    fn unknown_routes_and_methods_do_not_match() {
        assert!(match_route("PUT", "/s3/multipart").is_none());
        assert!(match_route("GET", "/s3/other").is_none());
        assert!(match_route("GET", "/s3/multipart//1").is_none());
    }

    #[test]
    fn a_known_path_with_another_method_is_405_with_allow() {
        for (method, path, allow) in [
            ("TRACE", "/s3/multipart", "GET, POST"),
            ("PUT", "/s3/multipart", "GET, POST"),
            ("TRACE", "/s3/multipart/abc", "DELETE, GET"),
            ("PATCH", "/s3/multipart/abc/batch", "GET, POST"),
            ("POST", "/s3/multipart/abc/7", "GET"),
            ("GET", "/grants", "POST"),
            ("TRACE", "/g/x/s3/multipart/u", "DELETE, GET"),
            // `complete` is a part number to the GET route, as on API Gateway.
            ("PUT", "/s3/multipart/u/complete", "GET, POST"),
        ] {
            let err = resolve(method, path).unwrap_err();
            assert_eq!(
                (err.status(), err.code()),
                (405, "MethodNotAllowed"),
                "{method} {path}"
            );
            assert_eq!(err.allow(), Some(allow), "{method} {path}");
            assert!(err.to_string().contains(method), "{err}");
        }
        let err = resolve("TRACE", "/s3/other").unwrap_err();
        assert_eq!((err.status(), err.allow()), (404, None));
        assert_eq!(
            resolve("get", "/s3/multipart/a/status")
                .unwrap()
                .0
                .operation,
            Operation::Status
        );
    }
}
