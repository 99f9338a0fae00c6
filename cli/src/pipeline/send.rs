//! Stage "send": each part, under a permit of the run's shared pool, has its
//! checksum read from disk, is kept if S3's copy matches, else is signed and
//! streamed to S3 from disk, with retries through outages and expired URLs.

use super::Shared;
use super::find::Target;
use super::plan::PartJob;
use super::put_retry::{self, Span, Tried, Tries};
use super::sign::{Signer, Url};
use crate::api::HeldPart;
use crate::error::{CliError, Result};
use crate::events::Event;
use crate::source::{Source, crc32c_b64};
use futures::{StreamExt, TryStreamExt};

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
    let span = Span {
        part: job.number,
        offset: job.offset,
        len: job.len,
        crc,
    };
    let mut tries = Tries::default();
    // A URL that waited long for a stream is signed again rather than risked.
    let mut url: Option<Url> = first.lifetime.fresh().then_some(first);
    loop {
        let u = match url.take() {
            Some(u) => u,
            None => signer.url(job.number, checksum.clone()).await?,
        };
        match put_retry::attempt(shared, file, src, &span, (&u.url, &u.headers), &mut tries).await?
        {
            Tried::Sent(etag) => return Ok(etag),
            // Kept only while it is still comfortably valid.
            Tried::Again if u.lifetime.fresh() => url = Some(u),
            Tried::Again | Tried::FreshUrl => {}
        }
    }
}
