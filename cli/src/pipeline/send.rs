//! Stage "send": each part, under a permit of the run's shared pool, has its
//! checksum read from disk, is kept if S3's copy matches, else is signed and
//! streamed to S3 from disk, with retries through outages and expired URLs.

use super::Shared;
use super::find::Target;
use super::plan::PartJob;
use super::sign::{Signer, Url};
use crate::api::HeldPart;
use crate::error::{CliError, Result};
use crate::events::{Event, Service};
use crate::retry::Streak;
use crate::s3::{self, PutError};
use crate::source::{Source, crc32c_b64};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

/// Fresh URLs after 403s, and tries after a digest refusal, before giving up.
const RESIGN_TRIES: u32 = 4;
const DIGEST_TRIES: u32 = 2;

/// One part's outcome.
#[derive(Debug, Clone)]
pub struct Done {
    pub part: u32,
    pub etag: String,
    pub crc32c: String,
    pub sent: bool,
    pub len: u64,
}

/// Every part of one file, through the shared pool; the results in part order.
pub async fn all(
    shared: &Shared,
    file: usize,
    src: &Source,
    target: &Target,
    signer: &Signer,
    parts: Vec<PartJob>,
) -> Result<Vec<Done>> {
    let parallel = shared.settings.parallel.max(1);
    let mut done: Vec<Done> = futures::stream::iter(parts)
        .map(|job| one(shared, file, src, target, signer, job))
        .buffer_unordered(parallel)
        .try_collect()
        .await?;
    done.sort_by_key(|d| d.part);
    Ok(done)
}

async fn one(
    shared: &Shared,
    file: usize,
    src: &Source,
    target: &Target,
    signer: &Signer,
    job: PartJob,
) -> Result<Done> {
    // The first pass (checksum) and the signing happen under a permit of
    // their own, so the next parts' URLs are ready while the pool streams.
    let prep = shared
        .prep
        .acquire()
        .await
        .map_err(|_| CliError::Other("the pool of streams closed".into()))?;
    let md5 = job.held.as_ref().is_some_and(|h| h.crc32c.is_none());
    let (crc, md5) = src.digest(job.offset, job.len, md5).await?;
    let crc = crc32c_b64(crc);
    if let Some(h) = &job.held {
        if matches(h, job.len, &crc, md5.as_deref()) {
            return Ok(Done {
                part: job.number,
                etag: h.etag.clone(),
                crc32c: crc,
                sent: false,
                len: job.len,
            });
        }
        shared.events.send(Event::Unheld {
            file,
            bytes: h.size,
        });
    }
    let checksum = target.checksum.as_ref().map(|_| crc.clone());
    let url = signer.url(job.number, checksum).await?;
    drop(prep);
    let _permit = shared
        .pool
        .acquire()
        .await
        .map_err(|_| CliError::Other("the pool of streams closed".into()))?;
    let etag = put(shared, file, src, target, signer, &job, &crc, url).await?;
    Ok(Done {
        part: job.number,
        etag,
        crc32c: crc,
        sent: true,
        len: job.len,
    })
}

/// Whether S3's copy of a part is the file's: same size, and the same
/// checksum (or, without one, the same MD5 ETag).
fn matches(held: &HeldPart, len: u64, crc: &str, md5: Option<&str>) -> bool {
    if held.size != len {
        return false;
    }
    match (&held.crc32c, md5) {
        (Some(c), _) => c == crc,
        (None, Some(m)) => held.etag.trim_matches('"').eq_ignore_ascii_case(m),
        (None, None) => false,
    }
}

/// PUTs a part streamed from disk: re-signs after a 403, retries transient
/// failures for as long as `--retry-for` allows.
#[allow(clippy::too_many_arguments)]
async fn put(
    shared: &Shared,
    file: usize,
    src: &Source,
    target: &Target,
    signer: &Signer,
    job: &PartJob,
    crc: &str,
    first: Url,
) -> Result<String> {
    let checksum = target.checksum.as_ref().map(|_| crc.to_string());
    let (mut resigned, mut digest) = (0u32, 0u32);
    let mut streak = Streak::new();
    // A URL that waited long for a stream is signed again rather than risked.
    let mut url: Option<Url> = first.fresh().then_some(first);
    let events = shared.events.clone();
    let sent: Arc<dyn Fn(i64) + Send + Sync> = Arc::new(move |bytes| {
        events.send(Event::Sent { file, bytes });
    });
    let retry = shared.api.retry();
    loop {
        let u = match url.take() {
            Some(u) => u,
            None => signer.url(job.number, checksum.clone()).await?,
        };
        let body = src.stream(job.offset, job.len);
        match s3::put_part(
            &shared.http,
            &u.url,
            &u.headers,
            job.len,
            body,
            sent.clone(),
        )
        .await
        {
            Ok(etag) => {
                retry.recovered(Service::S3, &streak);
                return Ok(etag);
            }
            Err(PutError::Forbidden(detail)) => {
                // Most often the URL expired on the way (a slow link, an outage): sign again.
                resigned += 1;
                if resigned >= RESIGN_TRIES {
                    return Err(CliError::Storage {
                        part: job.number,
                        detail: format!("{detail} (still refused after {resigned} fresh URLs)"),
                    });
                }
            }
            Err(PutError::Digest(detail)) => {
                digest += 1;
                let (now, _) = src.digest(job.offset, job.len, false).await?;
                if crc32c_b64(now) != crc {
                    return Err(CliError::FileChanged(src.path.clone()));
                }
                if digest >= DIGEST_TRIES {
                    return Err(CliError::Integrity {
                        path: src.path.clone(),
                        part: job.number,
                        detail,
                    });
                }
                url = Some(u);
            }
            Err(PutError::Transient(why, detail)) => {
                if !retry
                    .wait(Service::S3, why, &mut streak, &detail, None)
                    .await
                {
                    return Err(CliError::Storage {
                        part: job.number,
                        detail: format!(
                            "{detail} (retried for {})",
                            crate::events::clock(streak.elapsed().as_secs())
                        ),
                    });
                }
                if u.fresh() {
                    url = Some(u);
                }
            }
            Err(PutError::Fatal(detail)) => {
                return Err(CliError::Storage {
                    part: job.number,
                    detail,
                });
            }
        }
    }
}
