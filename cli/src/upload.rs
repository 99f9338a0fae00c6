//! `partwise upload`: every file checked first, then each one started (or
//! resumed), its parts read, checked or sent N at a time, and completed.

use crate::api::{Api, HeldPart};
use crate::error::{CliError, Result};
use crate::output::{Bar, Finished, Output};
use crate::resume::{self, Found, Target};
use crate::s3::{self, PutError};
use crate::signer::{Signer, Url};
use crate::source::{Part, Plan, Source};
use crate::state;
use futures::{StreamExt, TryStreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Tries per part on network errors and 5xx; re-signs after a 403; tries after a digest refusal.
const TRANSIENT_TRIES: u32 = 6;
const RESIGN_TRIES: u32 = 4;
const DIGEST_TRIES: u32 = 2;

/// How to upload.
#[derive(Debug, Clone)]
pub struct Settings {
    pub parallel: usize,
    pub part_size: Option<u64>,
    pub json: bool,
}

/// Uploads `files` one after another; stops at the first failure (which stays resumable).
pub async fn run(api: &Api, files: &[PathBuf], settings: &Settings) -> Result<()> {
    // Every file is checked before anything is sent: a typo leaves nothing in S3.
    let sources = files
        .iter()
        .map(|p| Source::open(p))
        .collect::<Result<Vec<_>>>()?;
    let http = s3::client().map_err(|e| CliError::Other(format!("HTTP client: {e}")))?;
    let total: u64 = sources.iter().map(|s| s.size).sum();
    let out = Output::new(settings.json, total, sources.len());
    for src in &sources {
        match one(api, &http, src, settings, &out).await {
            Ok(f) => out.finished(&f),
            Err(e) => {
                out.done();
                return Err(e);
            }
        }
    }
    out.done();
    Ok(())
}

async fn one(
    api: &Api,
    http: &reqwest::Client,
    src: &Source,
    settings: &Settings,
    out: &Output,
) -> Result<Finished> {
    let started = Instant::now();
    let content_type = mime_guess::from_path(&src.path)
        .first_or_octet_stream()
        .to_string();
    let bar = out.file(&src.name, src.size);
    if src.size == 0 {
        return empty(api, http, src, &content_type, started, &bar).await;
    }
    let (target, held) = match resume::find(api, src).await? {
        Some((t, found, held)) => {
            let how = match found {
                Found::LocalState => "this machine's record",
                Found::ServerList => "the server's list of unfinished uploads",
            };
            out.note(&format!(
                "resuming {}: S3 holds {} of {} parts, each checked against the file before it is kept\n  (upload {}, found in {how})",
                src.path.display(),
                held.len(),
                t.plan.part_count,
                t.upload_id,
            ));
            state::save(src, &t.saved(api, src));
            bar.expect_held(held.values().map(|p| p.size).sum());
            (t, held)
        }
        None => {
            let t = start(api, src, &content_type, settings.part_size).await?;
            state::save(src, &t.saved(api, src));
            (t, HashMap::new())
        }
    };

    let signer = Signer::start(
        api.clone(),
        target.upload_id.clone(),
        target.key.clone(),
        target.checksum.is_some(),
    );
    let job = Job {
        src,
        http,
        signer: &signer,
        target: &target,
        bar: &bar,
    };
    let results: Vec<Done> = futures::stream::iter(1..=target.plan.part_count)
        .map(|n| job.part(n, held.get(&n)))
        .buffer_unordered(settings.parallel.max(1))
        .try_collect()
        .await?;
    if !src.unchanged() {
        return Err(CliError::FileChanged(src.path.clone()));
    }
    let mut results = results;
    results.sort_by_key(|d| d.part);
    let parts: Vec<Value> = results
        .iter()
        .map(|d| {
            let mut p = json!({"PartNumber": d.part, "ETag": d.etag});
            if target.checksum.is_some() {
                p["ChecksumCRC32C"] = json!(d.crc32c);
            }
            p
        })
        .collect();
    bar.set_message("completing".into());
    let done = api.complete(&target.upload_id, &target.key, &parts).await?;
    state::forget(api.base(), src);
    bar.finish();
    if let Some(size) = done.get("size").and_then(Value::as_u64)
        && size != src.size
    {
        return Err(CliError::Other(format!(
            "S3 holds {size} bytes for {}, not {}",
            src.path.display(),
            src.size
        )));
    }
    Ok(Finished {
        file: src.path.display().to_string(),
        key: done
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or(&target.key)
            .to_string(),
        size: src.size,
        etag: done.get("etag").and_then(Value::as_str).map(str::to_string),
        checksum: done.get("checksum").filter(|c| !c.is_null()).cloned(),
        seconds: started.elapsed().as_secs_f64(),
        upload_id: Some(target.upload_id.clone()),
        part_size: Some(target.plan.part_size),
        parts_sent: results.iter().filter(|d| d.sent).count() as u32,
        parts_skipped: results.iter().filter(|d| !d.sent).count() as u32,
    })
}

/// Starts a new upload; the server's plan is checked, not trusted.
async fn start(
    api: &Api,
    src: &Source,
    content_type: &str,
    part_size: Option<u64>,
) -> Result<Target> {
    let init = api
        .initiate(&src.name, content_type, src.size, part_size, true)
        .await?;
    let plan = match (init.part_size, init.part_count) {
        (Some(part_size), Some(part_count)) => Plan {
            part_size,
            part_count,
        },
        _ => {
            return Err(CliError::Other(
                "the API gave no part plan for the upload".into(),
            ));
        }
    };
    if !plan.fits(src.size) {
        return Err(CliError::Other(format!(
            "the API's part plan ({} parts of {} bytes) does not fit {} bytes",
            plan.part_count, plan.part_size, src.size
        )));
    }
    // Older servers do not echo the algorithm: then parts go without checksums.
    let checksum = init
        .checksum_algorithm
        .filter(|a| a.eq_ignore_ascii_case("CRC32C"));
    let upload_id = init
        .upload_id
        .ok_or_else(|| CliError::Other("the API started no multipart upload".into()))?;
    Ok(Target {
        upload_id,
        key: init.key,
        plan,
        checksum,
    })
}

/// A 0-byte file: S3 takes no empty part, so it goes as one presigned PUT
/// (or, from servers older than that, one POST form).
async fn empty(
    api: &Api,
    http: &reqwest::Client,
    src: &Source,
    content_type: &str,
    started: Instant,
    bar: &Bar,
) -> Result<Finished> {
    let init = api
        .initiate(&src.name, content_type, 0, None, false)
        .await?;
    // A `url` is the empty file's presigned PUT (tracked by the server as a
    // `put` upload, whose id it may send along).
    let (key, etag) = match (init.upload_id, init.url) {
        (_, Some(url)) => {
            let put = |_: i64| {};
            let etag = retry_single(|| {
                s3::put_part(
                    http,
                    &url,
                    &init.headers,
                    bytes::Bytes::new(),
                    std::sync::Arc::new(put),
                )
            })
            .await?;
            (init.key, Some(etag))
        }
        (upload_id, _) => {
            // An older server started a multipart upload that can never take an
            // empty part: drop it, and use a POST form.
            if let Some(id) = upload_id {
                let _ = api.abort(&id, Some(&init.key)).await;
            }
            let form = api.post_form(&src.name, content_type, 0).await?;
            let key = form.fields.get("key").cloned().unwrap_or_default();
            let etag = retry_single(|| {
                s3::post_form(
                    http,
                    &form.url,
                    &form.fields,
                    &src.name,
                    content_type,
                    bytes::Bytes::new(),
                )
            })
            .await?;
            (key, etag)
        }
    };
    bar.finish();
    Ok(Finished {
        file: src.path.display().to_string(),
        key,
        size: 0,
        etag,
        checksum: None,
        seconds: started.elapsed().as_secs_f64(),
        upload_id: None,
        part_size: None,
        parts_sent: 1,
        parts_skipped: 0,
    })
}

/// One request straight to S3, tried again on transient failures.
async fn retry_single<T, F, Fut>(send: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, PutError>>,
{
    let mut tries = 0;
    loop {
        tries += 1;
        match send().await {
            Ok(v) => return Ok(v),
            Err(PutError::Transient(_)) if tries < TRANSIENT_TRIES => {
                tokio::time::sleep(backoff(tries)).await
            }
            Err(
                PutError::Transient(d)
                | PutError::Fatal(d)
                | PutError::Forbidden(d)
                | PutError::Digest(d),
            ) => return Err(CliError::Storage { part: 1, detail: d }),
        }
    }
}

/// One part's outcome.
struct Done {
    part: u32,
    etag: String,
    crc32c: String,
    sent: bool,
}

/// What every part of one upload shares.
struct Job<'a> {
    src: &'a Source,
    http: &'a reqwest::Client,
    signer: &'a Signer,
    target: &'a Target,
    bar: &'a Bar,
}

impl Job<'_> {
    /// Reads part `n`; keeps S3's copy if it matches the file, else sends it.
    async fn part(&self, n: u32, held: Option<&HeldPart>) -> Result<Done> {
        let plan = self.target.plan;
        let len = plan.len(self.src.size, n);
        let part = self.src.read(plan.offset(n), len).await?;
        let crc = part.crc32c_b64();
        if let Some(h) = held {
            if !self.matches(h, &part) {
                self.bar.unheld(h.size);
            } else {
                return Ok(Done {
                    part: n,
                    etag: h.etag.clone(),
                    crc32c: crc,
                    sent: false,
                });
            }
        }
        let etag = self.send(n, &part, &crc).await?;
        Ok(Done {
            part: n,
            etag,
            crc32c: crc,
            sent: true,
        })
    }

    /// Whether S3's copy of a part is the file's: same size, and the same
    /// checksum (or, without one, the same MD5 ETag).
    fn matches(&self, held: &HeldPart, part: &Part) -> bool {
        if held.size != part.data.len() as u64 {
            return false;
        }
        match &held.crc32c {
            Some(c) => *c == part.crc32c_b64(),
            None => held
                .etag
                .trim_matches('"')
                .eq_ignore_ascii_case(&part.md5_hex()),
        }
    }

    /// PUTs a part, re-signing after a 403 and backing off on transient failures.
    async fn send(&self, n: u32, part: &Part, crc: &str) -> Result<String> {
        let checksum = self.target.checksum.as_ref().map(|_| crc.to_string());
        let (mut transient, mut resigned, mut digest) = (0u32, 0u32, 0u32);
        let mut url: Option<Url> = None;
        let bar = self.bar.clone();
        let sent: std::sync::Arc<dyn Fn(i64) + Send + Sync> =
            std::sync::Arc::new(move |k| bar.add(k));
        loop {
            let u = match url.take() {
                Some(u) => u,
                None => self.signer.url(n, checksum.clone()).await?,
            };
            match s3::put_part(
                self.http,
                &u.url,
                &u.headers,
                part.data.clone(),
                sent.clone(),
            )
            .await
            {
                Ok(etag) => return Ok(etag),
                Err(PutError::Forbidden(detail)) => {
                    // Most often the URL expired on the way (a slow link): sign again.
                    resigned += 1;
                    if resigned >= RESIGN_TRIES {
                        return Err(CliError::Storage {
                            part: n,
                            detail: format!("{detail} (still refused after {resigned} fresh URLs)"),
                        });
                    }
                }
                Err(PutError::Digest(detail)) => {
                    digest += 1;
                    let now = self
                        .src
                        .read(self.target.plan.offset(n), part.data.len() as u64)
                        .await?;
                    if now.crc32c != part.crc32c {
                        return Err(CliError::FileChanged(self.src.path.clone()));
                    }
                    if digest >= DIGEST_TRIES {
                        return Err(CliError::Integrity {
                            path: self.src.path.clone(),
                            part: n,
                            detail,
                        });
                    }
                    url = Some(u);
                }
                Err(PutError::Transient(detail)) => {
                    transient += 1;
                    if transient >= TRANSIENT_TRIES {
                        return Err(CliError::Storage {
                            part: n,
                            detail: format!("{detail} (after {transient} tries)"),
                        });
                    }
                    tokio::time::sleep(backoff(transient)).await;
                    if u.fresh() {
                        url = Some(u);
                    }
                }
                Err(PutError::Fatal(detail)) => {
                    return Err(CliError::Storage { part: n, detail });
                }
            }
        }
    }
}

/// 0.2 s, 0.4 s, ... up to 8 s, with jitter so parts do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(6)).min(8_000);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64 % (base / 2 + 1));
    Duration::from_millis(base / 2 + jitter)
}
