//! Stage for small files (one part's worth or less): started many at a time
//! through `POST /s3/puts`, then each sent as one PUT with its length and
//! CRC32C signed in. A batch costs one API call where a one-part multipart
//! upload costs three per file (start, sign, complete); the next batch is
//! started while this one's files stream.

use super::Shared;
use super::find::content_type;
use super::put_retry::{self, Span, Tried, Tries};
use crate::api::{MAX_PUTS, PutFile, StartedPut};
use crate::error::{CliError, Result};
use crate::events::{Event, Finished};
use crate::source::{Source, crc32c_b64};
use futures::{StreamExt, TryStreamExt};
use serde_json::json;
use std::time::Instant;

/// Files up to this size go as one PUT: the server's default part size, so
/// they would be one part anyway (and well within its single-request limit).
pub const SMALL: u64 = 16 * 1024 * 1024;

/// Whether `src` goes through this stage: a file on disk of at most
/// [`SMALL`] bytes, or of one part when `--part-size` is smaller.
pub fn is_small(part_size: Option<u64>, src: &Source) -> bool {
    !src.stdin && src.size <= part_size.map_or(SMALL, |p| p.min(SMALL))
}

/// A file ready to send: its PUT, or (from a server without `POST /s3/puts`,
/// or with a smaller single-request limit) the multipart pipeline.
enum Ready {
    Put {
        file: usize,
        src: Source,
        put: StartedPut,
        crc: String,
    },
    Multipart {
        file: usize,
        src: Source,
    },
}

/// Every small file: batches started two ahead, their PUTs through the
/// run's shared pool of streams.
pub async fn all(shared: &Shared, files: Vec<(usize, Source)>) -> Result<()> {
    let parallel = shared.settings.parallel.max(1);
    futures::stream::iter(batches(files, parallel))
        .map(|batch| start(shared, batch))
        .buffered(2)
        .map_ok(|ready| futures::stream::iter(ready.into_iter().map(Ok)))
        .try_flatten()
        .map_ok(|ready| send(shared, ready))
        .try_buffer_unordered(parallel)
        .try_for_each(|_| async { Ok(()) })
        .await
}

/// The first batch just fills the pool, so bytes flow at once; the rest are
/// as large as the server takes.
fn batches<T>(files: Vec<T>, parallel: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    for f in files {
        let cap = if out.len() <= 1 {
            parallel.clamp(1, MAX_PUTS)
        } else {
            MAX_PUTS
        };
        match out.last_mut() {
            Some(b) if b.len() < cap => b.push(f),
            _ => out.push(vec![f]),
        }
    }
    out
}

/// Checksums a batch's files and starts them in one call.
async fn start(shared: &Shared, batch: Vec<(usize, Source)>) -> Result<Vec<Ready>> {
    let crcs: Vec<String> = futures::stream::iter(&batch)
        .map(|(_, src)| async move {
            let (crc, _) = src.digest(0, src.size, false).await?;
            Ok::<_, CliError>(crc32c_b64(crc))
        })
        .buffered(4)
        .try_collect()
        .await?;
    let files: Vec<PutFile> = batch
        .iter()
        .zip(&crcs)
        .map(|((_, src), crc)| put_file(shared, src, crc))
        .collect();
    match shared.api.start_puts(&files).await {
        Ok(puts) => Ok(batch
            .into_iter()
            .zip(puts)
            .zip(crcs)
            .map(|(((file, src), put), crc)| Ready::Put {
                file,
                src,
                put,
                crc,
            })
            .collect()),
        // An older server, or one whose single-request limit is below these
        // files: the multipart pipeline takes them, as before.
        Err(CliError::NotFound(_) | CliError::TooLarge(_)) => Ok(batch
            .into_iter()
            .map(|(file, src)| Ready::Multipart { file, src })
            .collect()),
        Err(e) => Err(e),
    }
}

fn put_file(shared: &Shared, src: &Source, crc: &str) -> PutFile {
    PutFile {
        filename: src.name.clone(),
        content_type: content_type(&shared.settings, src),
        size: src.size,
        crc32c: crc.to_string(),
        metadata: shared.settings.meta.clone(),
    }
}

async fn send(shared: &Shared, ready: Ready) -> Result<()> {
    match ready {
        Ready::Multipart { file, src } => super::one(shared, file, src).await,
        Ready::Put {
            file,
            src,
            put,
            crc,
        } => {
            let started = Instant::now();
            shared.events.send(Event::Started {
                file,
                name: src.name.clone(),
                size: src.size,
            });
            let _permit = shared
                .pool
                .acquire()
                .await
                .map_err(|_| CliError::Other("the pool of streams closed".into()))?;
            let (put, etag) = put_object(shared, file, &src, put, &crc).await?;
            if !src.unchanged() {
                return Err(CliError::FileChanged(src.path.clone()));
            }
            let done = Finished {
                file: src.shown(),
                key: put.key,
                size: src.size,
                etag: Some(etag),
                checksum: Some(json!({"algorithm": "CRC32C", "type": "FULL_OBJECT", "value": crc})),
                seconds: started.elapsed().as_secs_f64(),
                upload_id: Some(put.upload_id),
                part_size: None,
                parts_sent: 1,
                parts_skipped: 0,
                bytes_sent: src.size,
            };
            shared.events.send(Event::Finished { file, done });
            Ok(())
        }
    }
}

/// PUTs the file streamed from disk; retries through outages for as long as
/// `--retry-for` allows, and starts the file again (a fresh URL) after a 403,
/// or when the URL is past the first half of its life (it waited long for a
/// stream, or an outage outlasted it). Returns the upload that took the
/// bytes, and S3's ETag.
async fn put_object(
    shared: &Shared,
    file: usize,
    src: &Source,
    mut put: StartedPut,
    crc: &str,
) -> Result<(StartedPut, String)> {
    let span = Span {
        part: 1,
        offset: 0,
        len: src.size,
        crc,
    };
    let mut tries = Tries::default();
    let mut stale = !put.lifetime.fresh();
    loop {
        if stale {
            // Started again, not signed again: the first upload may be settled
            // by then. It is left to expire; the sweep releases its quota.
            let again = shared.api.start_puts(&[put_file(shared, src, crc)]).await?;
            put = again
                .into_iter()
                .next()
                .ok_or_else(|| CliError::Other("the API started no upload for the file".into()))?;
        }
        stale = match put_retry::attempt(
            shared,
            file,
            src,
            &span,
            (&put.url, &put.headers),
            &mut tries,
        )
        .await?
        {
            Tried::Sent(etag) => return Ok((put, etag)),
            Tried::Again => !put.lifetime.fresh(),
            Tried::FreshUrl => true,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_batch_fills_the_pool_and_the_rest_are_full() {
        let sizes = |n: usize, parallel: usize| -> Vec<usize> {
            batches((0..n).collect::<Vec<_>>(), parallel)
                .iter()
                .map(Vec::len)
                .collect()
        };
        assert_eq!(sizes(200, 8), vec![8, 64, 64, 64]);
        assert_eq!(sizes(3, 8), vec![3]);
        assert_eq!(sizes(70, 100), vec![64, 6]);
        assert_eq!(sizes(2, 0), vec![1, 1]);
        let order: Vec<usize> = batches((0..20).collect(), 4).concat();
        assert_eq!(order, (0..20).collect::<Vec<_>>(), "files keep their order");
    }
}
