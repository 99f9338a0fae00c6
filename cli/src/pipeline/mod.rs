//! `partwise upload` as one pipeline that reads top to bottom, per file:
//! find or start (`find`) → plan (`plan`) → sign (`sign`) → send (`send`) →
//! complete (`complete`). Files go through it side by side; the parts of
//! every file share one pool of `--parallel` streams, so many small files
//! keep the link as busy as one big one. Stages report to one observer
//! (`events`), which draws the bars or prints the JSON lines.

mod batch;
mod complete;
mod find;
mod plan;
mod put_retry;
mod send;
mod sign;

use crate::api::Api;
use crate::error::{CliError, Result};
use crate::events::{Event, Events};
use crate::source::Source;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Semaphore;

pub use plan::server_plan;

/// How to upload.
#[derive(Debug, Clone)]
pub struct Settings {
    pub parallel: usize,
    pub part_size: Option<u64>,
    pub content_type: Option<String>,
    pub meta: HashMap<String, String>,
}

/// What every file's run shares: the API, S3's client, the pool of streams,
/// the caller's unfinished uploads (listed once, for all files), the observer.
pub struct Shared {
    pub api: Api,
    pub http: reqwest::Client,
    pub pool: Arc<Semaphore>,
    /// Parts being checksummed and signed at once (one read buffer each).
    pub prep: Arc<Semaphore>,
    pub listing: find::Listing,
    pub events: Events,
    pub settings: Settings,
}

/// Files started at once: enough to keep the pool full of small files' parts
/// while the next files' API calls are on their way.
fn files_at_once(parallel: usize) -> usize {
    (parallel * 2).clamp(4, 64)
}

/// Uploads every file; the first failure stops the run (what was sent stays resumable).
pub async fn run(
    api: &Api,
    sources: Vec<Source>,
    settings: &Settings,
    events: Events,
) -> Result<()> {
    let http = crate::s3::client().map_err(|e| CliError::Other(format!("HTTP client: {e}")))?;
    let shared = Arc::new(Shared {
        api: api.clone(),
        http,
        pool: Arc::new(Semaphore::new(settings.parallel.max(1))),
        prep: Arc::new(Semaphore::new(settings.parallel.max(1))),
        listing: find::Listing::default(),
        events: events.clone(),
        settings: settings.clone(),
    });
    let (small, large): (Vec<_>, Vec<_>) = sources
        .into_iter()
        .enumerate()
        .partition(|(_, src)| batch::is_small(settings.part_size, src));
    let at_once = files_at_once(settings.parallel);
    let large = futures::stream::iter(large)
        .map(|(i, src)| {
            let shared = shared.clone();
            async move { one(&shared, i, src).await }
        })
        .buffer_unordered(at_once)
        .try_for_each(|_| async { Ok(()) });
    futures::try_join!(batch::all(&shared, small), large)?;
    Ok(())
}

/// One file through the stages.
async fn one(shared: &Shared, file: usize, src: Source) -> Result<()> {
    let started = std::time::Instant::now();
    shared.events.send(Event::Started {
        file,
        name: src.name.clone(),
        size: src.size,
    });
    // A multipart upload's file is locked while it goes: a second run of
    // the same file stops here rather than share (and spoil) its upload.
    // Locked one at a time, so a run of many files holds few descriptors.
    let _lock = if src.stdin {
        None
    } else {
        crate::state::lock(shared.api.base(), &src)?
    };
    let done = if src.size == 0 {
        complete::empty(shared, &src, started).await?
    } else {
        let target = find::find_or_start(shared, file, &src).await?;
        let parts = plan::parts(&target.plan, &target.held, &src);
        let signer = sign::Signer::start(
            shared.api.clone(),
            target.upload_id.clone(),
            target.key.clone(),
            target.checksum.is_some(),
        );
        let sent = send::all(shared, file, &src, &target, &signer, parts).await?;
        complete::complete(shared, file, &src, &target, sent, started).await?
    };
    shared.events.send(Event::Finished { file, done });
    Ok(())
}
