//! The Partwise API client: one method per route, answers as typed structs,
//! HTTP failures turned into [`CliError`]s a person can act on.

use crate::error::{CliError, Result};
use crate::events::{Service, Why};
use crate::retry::{Retry, Streak};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The most files one `POST /s3/puts` starts (the server's limit).
pub const MAX_PUTS: usize = 64;

/// `POST /s3/multipart`'s answer: the server's part plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Initiated {
    pub key: String,
    /// For an empty file, which gets one presigned PUT (`url`, `headers`)
    /// instead, the tracked PUT's id (`put:…`), or null from older servers.
    pub upload_id: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    pub part_size: Option<u64>,
    pub part_count: Option<u32>,
    /// Echoed only by servers that sign part checksums.
    pub checksum_algorithm: Option<String>,
}

/// One small file to start through `POST /s3/puts`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PutFile {
    pub filename: String,
    #[serde(rename = "type")]
    pub content_type: String,
    pub size: u64,
    /// Base64 of the file's CRC32C: signed into the URL, so S3 checks the bytes.
    #[serde(rename = "checksumCRC32C")]
    pub crc32c: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub metadata: HashMap<String, String>,
}

/// One started small file: PUT it to `url` with exactly `headers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartedPut {
    pub key: String,
    pub upload_id: String,
    pub url: String,
    #[serde(default)]
    pub headers: HashMap<String, String>,
    /// How long `url` holds, counted from when the answer arrived.
    #[serde(rename = "expires", default, deserialize_with = "lifetime")]
    pub lifetime: Lifetime,
}

/// When a presigned URL was handed out, and for how many seconds it holds.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    since: Instant,
    length: Duration,
}

impl Lifetime {
    /// From now, for `secs` (the API's `expires`; 300 when it gives none).
    pub fn from_now(secs: Option<u64>) -> Self {
        Lifetime {
            since: Instant::now(),
            length: Duration::from_secs(secs.unwrap_or(300).max(1)),
        }
    }

    /// Still comfortably valid for another try: in the first half of its life.
    /// A try on a URL past that may be refused as expired, or (Garage) cut off
    /// without an answer, which looks like an outage.
    pub fn fresh(&self) -> bool {
        self.since.elapsed() < self.length / 2
    }
}

impl Default for Lifetime {
    fn default() -> Self {
        Lifetime::from_now(None)
    }
}

fn lifetime<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Lifetime, D::Error> {
    Ok(Lifetime::from_now(Option::<u64>::deserialize(d)?))
}

#[derive(Deserialize)]
struct StartedPuts {
    uploads: Vec<StartedPut>,
}

/// `GET /s3/multipart/{id}/download`'s answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Download {
    pub url: String,
    pub key: String,
    #[serde(default)]
    pub filename: Option<String>,
    pub size: u64,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub checksum: Option<Value>,
    #[serde(default)]
    pub part_size: Option<u64>,
}

/// A presigned POST form (`GET /s3/params`), or the single-request path of a 0-byte upload.
#[derive(Debug, Clone, Deserialize)]
pub struct PostForm {
    pub url: String,
    #[serde(default)]
    pub fields: HashMap<String, String>,
}

/// Presigned part URLs, and the headers to send with each.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Signed {
    pub presigned_urls: HashMap<String, String>,
    #[serde(default)]
    pub headers: HashMap<String, HashMap<String, String>>,
    /// Seconds the URLs stay valid.
    #[serde(default)]
    pub expires: Option<u64>,
}

/// A part S3 holds, as the list-parts route answers.
#[derive(Debug, Clone, Deserialize)]
pub struct HeldPart {
    #[serde(rename = "PartNumber")]
    pub number: u32,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "ChecksumCRC32C", default)]
    pub crc32c: Option<String>,
}

/// One of the caller's uploads from `GET /s3/multipart`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listed {
    pub upload_id: String,
    pub key: String,
    #[serde(default)]
    pub filename: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    pub state: String,
    #[serde(default)]
    pub initiated: Option<Value>,
    #[serde(default)]
    pub updated: Option<Value>,
    #[serde(default)]
    pub part_size: Option<u64>,
    #[serde(default)]
    pub part_count: Option<u32>,
    #[serde(default)]
    pub checksum_algorithm: Option<String>,
    #[serde(default)]
    pub bytes_held: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ListPage {
    uploads: Vec<Listed>,
    #[serde(default)]
    next: Option<String>,
}

/// The client, with its base URL, token and retry policy.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    retry: Retry,
}

/// Pages of `GET /s3/multipart` read at most, so a huge history cannot hang a command.
const MAX_LIST_PAGES: usize = 50;

impl Api {
    pub fn new(base: &str, token: Option<String>, retry: Retry) -> Result<Api> {
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "--api {base:?}: expected an http:// or https:// URL"
            )));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .user_agent(concat!("partwise-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Other(format!("cannot build an HTTP client: {e}")))?;
        Ok(Api {
            http,
            base,
            token,
            retry,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn retry(&self) -> &Retry {
        &self.retry
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    /// Sends, retrying network failures, 429 and 5xx through an outage for as
    /// long as `--retry-for` allows; maps the rest.
    async fn send<T: DeserializeOwned>(&self, build: impl Fn() -> RequestBuilder) -> Result<T> {
        let mut streak = Streak::new();
        loop {
            let (reason, at_least) = match build().send().await {
                Err(e) => {
                    let reason = crate::error::describe(&e);
                    (reason, None)
                }
                Ok(resp) => {
                    self.retry
                        .reached
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    let status = resp.status();
                    let retryable =
                        status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
                    if retryable {
                        let why = if status == StatusCode::TOO_MANY_REQUESTS {
                            Why::Busy
                        } else {
                            Why::Failing
                        };
                        let after = resp
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                            .map(Duration::from_secs);
                        let text = resp.text().await.unwrap_or_default();
                        let err = error_for(status, &text, self.token.is_some());
                        if !self
                            .retry
                            .wait(Service::Api, why, &mut streak, &err.to_string(), after)
                            .await
                        {
                            return Err(err);
                        }
                        continue;
                    }
                    self.retry.recovered(Service::Api, &streak);
                    if status.is_success() {
                        let text = resp.text().await.map_err(|e| CliError::Unreachable {
                            url: self.base.clone(),
                            reason: crate::error::describe(&e),
                        })?;
                        return serde_json::from_str(&text).map_err(|e| {
                            CliError::Other(format!(
                                "the API at {} answered something unexpected ({e}): {}",
                                self.base,
                                text.chars().take(200).collect::<String>()
                            ))
                        });
                    }
                    let text = resp.text().await.unwrap_or_default();
                    return Err(error_for(status, &text, self.token.is_some()));
                }
            };
            if !self
                .retry
                .wait(
                    Service::Api,
                    Why::Unreachable,
                    &mut streak,
                    &reason,
                    at_least,
                )
                .await
            {
                let waited = if streak.attempts() > 2 {
                    format!(
                        "{reason}; gave up after retrying for {}",
                        crate::events::clock(streak.elapsed().as_secs())
                    )
                } else {
                    reason
                };
                return Err(CliError::Unreachable {
                    url: self.base.clone(),
                    reason: waited,
                });
            }
        }
    }

    /// Starts a multipart upload with the file's size, so the server plans its parts.
    pub async fn initiate(
        &self,
        filename: &str,
        content_type: &str,
        size: u64,
        part_size: Option<u64>,
        checksum: bool,
        metadata: &HashMap<String, String>,
    ) -> Result<Initiated> {
        let mut body = json!({"filename": filename, "type": content_type, "size": size});
        if !metadata.is_empty() {
            body["metadata"] = json!(metadata);
        }
        if let Some(p) = part_size {
            body["partSize"] = json!(p);
        }
        if checksum {
            body["checksumAlgorithm"] = json!("CRC32C");
        }
        self.send(|| self.request(Method::POST, "/s3/multipart").json(&body))
            .await
    }

    /// Starts many small files in one call (at most [`MAX_PUTS`]), a
    /// presigned PUT each, in the order given. Servers without the route
    /// answer 404 ([`CliError::NotFound`]).
    pub async fn start_puts(&self, files: &[PutFile]) -> Result<Vec<StartedPut>> {
        let body = json!({ "files": files });
        let answer: StartedPuts = self
            .send(|| self.request(Method::POST, "/s3/puts").json(&body))
            .await?;
        if answer.uploads.len() != files.len() {
            return Err(CliError::Other(format!(
                "the API started {} uploads for {} files",
                answer.uploads.len(),
                files.len()
            )));
        }
        Ok(answer.uploads)
    }

    /// A presigned POST form for a small file.
    pub async fn post_form(
        &self,
        filename: &str,
        content_type: &str,
        size: u64,
    ) -> Result<PostForm> {
        let size = size.to_string();
        self.send(|| {
            self.request(Method::GET, "/s3/params").query(&[
                ("filename", filename),
                ("type", content_type),
                ("size", &size),
            ])
        })
        .await
    }

    /// URLs for `parts` without checksums (the Companion batch route).
    pub async fn sign(&self, id: &str, key: &str, parts: &[u32]) -> Result<Signed> {
        let numbers = parts
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let path = format!("/s3/multipart/{}/batch", enc(id));
        self.send(|| {
            self.request(Method::GET, &path)
                .query(&[("key", key), ("partNumbers", &numbers)])
        })
        .await
    }

    /// URLs for `parts` with each part's checksum signed in.
    pub async fn sign_checksums(
        &self,
        id: &str,
        key: &str,
        parts: &[(u32, String)],
    ) -> Result<Signed> {
        let body = json!({
            "key": key,
            "parts": parts.iter().map(|(n, c)| json!({"partNumber": n, "checksum": c})).collect::<Vec<_>>(),
        });
        let path = format!("/s3/multipart/{}/batch", enc(id));
        self.send(|| {
            self.request(Method::POST, &path)
                .query(&[("key", key)])
                .json(&body)
        })
        .await
    }

    /// Every part S3 holds for the upload.
    pub async fn parts(&self, id: &str, key: &str) -> Result<Vec<HeldPart>> {
        let path = format!("/s3/multipart/{}", enc(id));
        self.send(|| self.request(Method::GET, &path).query(&[("key", key)]))
            .await
    }

    /// The tracked upload, as the server describes it.
    pub async fn status(&self, id: &str) -> Result<Value> {
        let path = format!("/s3/multipart/{}/status", enc(id));
        self.send(|| self.request(Method::GET, &path)).await
    }

    /// A presigned GET for a completed upload, and how to check its bytes.
    pub async fn download(&self, id: &str) -> Result<Download> {
        let path = format!("/s3/multipart/{}/download", enc(id));
        self.send(|| self.request(Method::GET, &path)).await
    }

    /// The caller's quota usage and limits (`GET /quota`); `None` from servers without quotas.
    pub async fn quota(&self) -> Result<Option<Value>> {
        match self.send(|| self.request(Method::GET, "/quota")).await {
            Ok(v) => Ok(Some(v)),
            Err(CliError::NotFound(_)) | Err(CliError::Api { status: 405, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Completes the upload with these parts.
    pub async fn complete(&self, id: &str, key: &str, parts: &[Value]) -> Result<Value> {
        let path = format!("/s3/multipart/{}/complete", enc(id));
        let body = json!({ "parts": parts });
        self.send(|| {
            self.request(Method::POST, &path)
                .query(&[("key", key)])
                .json(&body)
        })
        .await
    }

    /// Aborts the upload (S3 drops its parts).
    pub async fn abort(&self, id: &str, key: Option<&str>) -> Result<Value> {
        let path = format!("/s3/multipart/{}", enc(id));
        self.send(|| {
            let r = self.request(Method::DELETE, &path);
            match key {
                Some(k) => r.query(&[("key", k)]),
                None => r,
            }
        })
        .await
    }

    /// The caller's uploads, newest first; `state` filters (`ACTIVE`, `live`, ...).
    /// `Ok(None)` when the server has no list route (older servers).
    pub async fn list(&self, state: Option<&str>, bytes: bool) -> Result<Option<Vec<Listed>>> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut q: Vec<(&str, String)> = vec![("limit", "100".into())];
            if let Some(s) = state {
                q.push(("state", s.into()));
            }
            if bytes {
                q.push(("bytes", "true".into()));
            }
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: ListPage = match self
                .send(|| self.request(Method::GET, "/s3/multipart").query(&q))
                .await
            {
                Ok(p) => p,
                // An older server: no such route (404 UnknownRoute) or method (405).
                Err(CliError::NotFound(_)) => return Ok(None),
                Err(CliError::Api { status: 405, .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            out.extend(page.uploads);
            match page.next {
                Some(n) if !n.is_empty() => cursor = Some(n),
                _ => return Ok(Some(out)),
            }
        }
        Ok(Some(out))
    }
}

/// The server's message from `{"error": {"code", "message"}, "message"}`, or the raw text.
fn message_of(text: &str) -> String {
    let v: Option<Value> = serde_json::from_str(text).ok();
    v.as_ref()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("message"))
                .and_then(Value::as_str)
        })
        .map(str::to_string)
        .unwrap_or_else(|| text.chars().take(200).collect())
}

fn error_for(status: StatusCode, text: &str, has_token: bool) -> CliError {
    let message = message_of(text);
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    if v.pointer("/error/code").and_then(Value::as_str) == Some("QuotaExceeded") {
        let num = |k: &str| {
            v.pointer(&format!("/error/{k}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        return CliError::Quota {
            quota: v
                .pointer("/error/quota")
                .and_then(Value::as_str)
                .unwrap_or("quota")
                .to_string(),
            usage: num("usage"),
            limit: num("limit"),
            message,
        };
    }
    match status.as_u16() {
        401 if !has_token => CliError::NoToken {
            status: 401,
            message,
        },
        401 | 403 => CliError::Auth {
            status: status.as_u16(),
            message,
        },
        404 => CliError::NotFound(message),
        409 => CliError::Conflict(message),
        413 => CliError::TooLarge(message),
        s => CliError::Api { status: s, message },
    }
}

/// Percent-encodes a path segment (upload ids are URL-safe in practice, but be sure).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
