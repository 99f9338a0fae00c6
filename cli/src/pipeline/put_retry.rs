//! One PUT to S3, for a part and for a small file alike, and what follows
//! a failed one: try the same URL again, ask for a fresh one, or give up.

use super::Shared;
use crate::error::{CliError, Result};
use crate::events::{Event, Service};
use crate::retry::Streak;
use crate::s3::{self, PutError};
use crate::source::{Source, crc32c_b64};
use std::collections::HashMap;
use std::sync::Arc;

/// Fresh URLs after 403s, and tries after a digest refusal, before giving up.
const RESIGN_TRIES: u32 = 4;
const DIGEST_TRIES: u32 = 2;

/// The bytes one PUT sends: `len` bytes of the file at `offset`, with
/// `crc` (base64 CRC32C), reported as part `part`.
pub struct Span<'a> {
    pub part: u32,
    pub offset: u64,
    pub len: u64,
    pub crc: &'a str,
}

/// How one try went.
pub enum Tried {
    /// S3 took the bytes; its ETag.
    Sent(String),
    /// Failed; the same URL may go again (S3 refused the bytes in flight,
    /// or failed for a while), if it is still fresh.
    Again,
    /// Failed; a fresh URL first: this one was refused, most often expired on the way.
    FreshUrl,
}

/// One PUT's failures so far.
#[derive(Default)]
pub struct Tries {
    resigned: u32,
    digest: u32,
    pub streak: Streak,
}

/// PUTs `span` of `src` (streamed from disk, progress reported as file
/// `file`'s) to `url` with its signed `headers`; after a failure, decides
/// what comes next (see [`after`]).
pub async fn attempt(
    shared: &Shared,
    file: usize,
    src: &Source,
    span: &Span<'_>,
    (url, headers): (&str, &HashMap<String, String>),
    tries: &mut Tries,
) -> Result<Tried> {
    let events = shared.events.clone();
    let sent: Arc<dyn Fn(i64) + Send + Sync> =
        Arc::new(move |bytes| events.send(Event::Sent { file, bytes }));
    let body = src.stream(span.offset, span.len);
    match s3::put_part(&shared.http, url, headers, span.len, body, sent).await {
        Ok(etag) => {
            shared.api.retry().recovered(Service::S3, &tries.streak);
            Ok(Tried::Sent(etag))
        }
        Err(failed) => after(shared, src, span, tries, failed).await,
    }
}

/// Decides after `failed`: waits out outages (as long as `--retry-for`
/// allows), checks the file again after a digest refusal (a changed file is
/// [`CliError::FileChanged`]), and gives up after too many of either.
async fn after(
    shared: &Shared,
    src: &Source,
    span: &Span<'_>,
    tries: &mut Tries,
    failed: PutError,
) -> Result<Tried> {
    let part = span.part;
    match failed {
        PutError::Forbidden(detail) => {
            tries.resigned += 1;
            if tries.resigned >= RESIGN_TRIES {
                return Err(CliError::Storage {
                    part,
                    detail: format!(
                        "{detail} (still refused after {} fresh URLs)",
                        tries.resigned
                    ),
                });
            }
            Ok(Tried::FreshUrl)
        }
        PutError::Digest(detail) => {
            tries.digest += 1;
            let (now, _) = src.digest(span.offset, span.len, false).await?;
            if crc32c_b64(now) != span.crc {
                return Err(CliError::FileChanged(src.path.clone()));
            }
            if tries.digest >= DIGEST_TRIES {
                return Err(CliError::Integrity {
                    path: src.path.clone(),
                    part,
                    detail,
                });
            }
            Ok(Tried::Again)
        }
        PutError::Transient(why, detail) => {
            let retry = shared.api.retry();
            if !retry
                .wait(Service::S3, why, &mut tries.streak, &detail, None)
                .await
            {
                return Err(CliError::Storage {
                    part,
                    detail: format!(
                        "{detail} (retried for {})",
                        crate::events::clock(tries.streak.elapsed().as_secs())
                    ),
                });
            }
            Ok(Tried::Again)
        }
        PutError::Fatal(detail) => Err(CliError::Storage { part, detail }),
    }
}
