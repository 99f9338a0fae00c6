//! The sweep: aborts every live upload initiated before a cutoff, in bulk,
//! with bounded concurrency, streaming pagination, deadline awareness, and
//! the same conditional claims as the API, so it can race anything safely.
//!
//! 1. Tracked uploads: every shard of the live-uploads index, oldest first.
//!    ACTIVE is claimed (→ ABORTING), aborted, confirmed empty, marked ABORTED;
//!    ABORTING (a crashed run's leftover) is finished; COMPLETING past its
//!    lease is settled from S3's truth.
//! 2. Expired single-request uploads: POST forms and PUT URLs unused past
//!    their expiry plus `PARTWISE_SETTLE_GRACE_SECS`, from the same index,
//!    settled ABORTED (`expired`), or COMPLETED if their object is there.
//! 3. Orphans: ListMultipartUploads under the prefix finds stale uploads no
//!    live item tracks (a crash between S3 and DynamoDB, or made outside the
//!    service) and aborts them.

mod event;
mod remaining;
mod report;

pub use event::{SweepRequest, parse};
pub use remaining::Remaining;
pub use report::{Outcome, Summary};

use crate::Context;
use crate::error::{Error, Result};
use crate::lifecycle::{self, AbortOutcome};
use crate::model::{AbortReason, Actor, Status, Upload, UploadKind, now_millis};
use crate::storage::{Aborted, ListedUpload};
use crate::store::{Page, Stamp, Transition};
use futures::{Stream, StreamExt, future, stream};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub use crate::lifecycle::COMPLETING_LEASE;

/// Index page size. With `SHARDS_IN_FLIGHT` shards read at once this keeps
/// the workers fed, and it bounds what is held: a parsed page costs about
/// 3 KB an item, so larger pages would make memory grow with the backlog.
const PAGE_SIZE: i32 = 100;

/// Shards of the index read at once.
const SHARDS_IN_FLIGHT: usize = 4;

/// Orphan lookups (BatchGetItem of 100 ids) in flight while earlier ones are aborted.
const LOOKUPS_IN_FLIGHT: usize = 2;

/// Runs a sweep for a Lambda event: parse, sweep, log the summary and the EMF line.
///
/// A listing that failed after its retries (an index shard, S3's uploads, an
/// orphan lookup) means stale uploads were not even looked at: the run is
/// then an error, so Lambda records a failed invocation and the template's
/// alarm fires, after the summary (with `more_work: true`) has been logged.
pub async fn handle(
    ctx: &Context,
    event: serde_json::Value,
    deadline: Option<Instant>,
) -> Result<Summary> {
    let req = parse(&event, &ctx.config, now_millis())?;
    let summary = run(ctx, &req, deadline).await;
    println!("{}", summary.emf(now_millis()));
    let line = serde_json::to_string(&summary).unwrap_or_default();
    if let Some(first) = summary.listing_errors.first() {
        tracing::error!(summary = %line, "sweep incomplete");
        return Err(Error::Internal(format!(
            "sweep incomplete: {} listing call(s) failed after retries, so stale uploads were left unexamined \
             (first: {first}); {} upload(s) aborted before that; more_work stays true and the next run retries",
            summary.listing_failures,
            summary.aborted + summary.orphans_aborted + summary.already_gone,
        )));
    }
    tracing::info!(summary = %line, "sweep finished");
    Ok(summary)
}

/// Sweeps as `req` says, then counts what remains. One upload's failure is
/// counted and logged, and the run goes on; a failed listing is recorded in
/// `listing_errors`.
pub async fn run(ctx: &Context, req: &SweepRequest, deadline: Option<Instant>) -> Summary {
    let started = Instant::now();
    let budget = Budget {
        stop_at: deadline.map(|d| {
            d.checked_sub(ctx.config.sweep_safety_margin)
                .unwrap_or(started)
        }),
        limit: req.limit,
        started: AtomicU64::new(0),
        stopped: AtomicBool::new(false),
    };
    let faults = Faults::default();
    let summary = Summary {
        cutoff: req.cutoff_ms,
        dry_run: req.dry_run,
        ..Summary::default()
    };
    let mut summary = tracked(ctx, req, &budget, &faults, summary).await;
    if !budget.stopped() {
        summary = expired(ctx, req, &budget, &faults, summary).await;
    }
    summary.tracked_ms = started.elapsed().as_millis() as u64;
    tracing::info!(
        elapsed_ms = summary.tracked_ms,
        examined = summary.examined,
        "tracked pass finished"
    );
    if !budget.stopped() {
        summary = orphans(ctx, req, &budget, &faults, summary).await;
    }
    if !budget.stopped() && !req.dry_run {
        summary = recount_quotas(ctx, &budget, &faults, summary).await;
    }
    match remaining::count(ctx, req, deadline).await {
        Ok(r) => {
            summary.remaining_uploads = r.uploads;
            summary.remaining_tracked = r.tracked;
            summary.remaining_exact = r.exact;
        }
        Err(e) => faults.record("counting what remains", &e),
    }
    (summary.listing_failures, summary.listing_errors) = faults.into_parts();
    summary.more_work = budget.stopped()
        || summary.listing_failures > 0
        || !summary.remaining_exact
        || summary.remaining_uploads > 0
        || summary.remaining_tracked > 0;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    summary
}

/// Recounts drifted quota counters (a release lost to a crash, say) from
/// the owners' live items, while time remains.
async fn recount_quotas(
    ctx: &Context,
    budget: &Budget,
    faults: &Faults,
    mut summary: Summary,
) -> Summary {
    let in_time = || budget.stop_at.is_none_or(|t| Instant::now() < t);
    match crate::quota::counters::recount_all(
        ctx.store.client(),
        ctx.store.table(),
        crate::store::OWNER_INDEX,
        ctx.store.shards(),
        crate::model::now_millis(),
        in_time,
    )
    .await
    {
        Ok(r) => {
            summary.quota_counters_checked = r.checked;
            summary.quota_counters_fixed = r.fixed;
        }
        Err(e) => faults.record("recounting quota counters", &e),
    }
    summary
}

/// Listings that failed after their retries: the stale uploads behind them
/// were never examined, so the run cannot call itself done.
#[derive(Default)]
struct Faults {
    count: AtomicU64,
    first: Mutex<Vec<String>>,
}

impl Faults {
    /// Most messages kept; the count stays exact.
    const KEPT: usize = 10;

    fn record(&self, what: &str, e: &Error) {
        tracing::error!(error = %e, "{what} failed; the uploads behind it are left for the next run");
        self.count.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first.lock().unwrap_or_else(|p| p.into_inner());
        if first.len() < Self::KEPT {
            first.push(format!("{what}: {e}"));
        }
    }

    /// How many listings failed, and the first messages.
    fn into_parts(self) -> (u64, Vec<String>) {
        let first = self.first.into_inner().unwrap_or_else(|p| p.into_inner());
        (self.count.into_inner(), first)
    }
}

/// When to stop starting new work.
struct Budget {
    stop_at: Option<Instant>,
    limit: Option<u64>,
    started: AtomicU64,
    stopped: AtomicBool,
}

impl Budget {
    /// Takes one unit of work, unless the deadline's margin or the limit is reached.
    fn try_start(&self) -> bool {
        let out_of_time = self.stop_at.is_some_and(|t| Instant::now() >= t);
        let out_of_count = self
            .limit
            .is_some_and(|l| self.started.load(Ordering::Relaxed) >= l);
        if out_of_time || out_of_count || self.stopped() {
            self.stopped.store(true, Ordering::Relaxed);
            return false;
        }
        self.started.fetch_add(1, Ordering::Relaxed);
        true
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }
}

/// Retries throttled calls with exponential backoff and jitter; other errors pass through.
pub async fn with_backoff<T, F, Fut>(mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut attempt = 0u32;
    loop {
        match call().await {
            Err(Error::Throttled(m)) if attempt < 6 => {
                let base = 50u64 << attempt;
                let jitter = now_millis().unsigned_abs() % base.max(1);
                tracing::warn!(attempt, message = %m, "throttled; backing off");
                tokio::time::sleep(Duration::from_millis(base + jitter)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The pages of one query of the live index, every shard, a few shards at
/// once, so the workers never wait on one shard's next page; memory stays
/// bounded by `SHARDS_IN_FLIGHT` pages. A shard whose query fails (after
/// backing off) is recorded in `faults` (`what`: which query) and left.
fn every_shard<'a, F, Fut>(
    ctx: &'a Context,
    faults: &'a Faults,
    what: &'static str,
    page: F,
) -> impl Stream<Item = Upload> + 'a
where
    F: Fn(u32, Option<Start>) -> Fut + Copy + Send + Sync + 'a,
    Fut: Future<Output = Result<Page>> + Send + 'a,
{
    stream::iter(0..ctx.store.shards())
        .map(move |shard| {
            stream::unfold(Some(None), move |state| async move {
                let start = state?;
                match with_backoff(|| page(shard, start.clone())).await {
                    Ok(page) => {
                        tracing::debug!(
                            shard,
                            query = what,
                            items = page.uploads.len(),
                            more = page.next.is_some(),
                            "live index page"
                        );
                        Some((stream::iter(page.uploads), page.next.map(Some)))
                    }
                    Err(e) => {
                        faults.record(&format!("querying shard {shard} {what}"), &e);
                        None
                    }
                }
            })
            .flatten()
            .boxed()
        })
        .flatten_unordered(SHARDS_IN_FLIGHT)
}

/// Where a query page starts: DynamoDB's LastEvaluatedKey of the one before.
type Start = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Live items of every shard initiated before the cutoff, page by page.
fn live_uploads<'a>(
    ctx: &'a Context,
    req: &'a SweepRequest,
    faults: &'a Faults,
) -> impl Stream<Item = Upload> + 'a {
    // Filtered even at the service prefix: a table shared with other prefixes
    // (tests, staging) must never see its uploads swept by this one.
    let prefix = Some(req.prefix.as_str()).filter(|p| !p.is_empty());
    every_shard(
        ctx,
        faults,
        "of the live-uploads index",
        move |shard, start| {
            ctx.store
                .live_page(shard, req.cutoff_ms, prefix, start, PAGE_SIZE)
        },
    )
}

async fn tracked(
    ctx: &Context,
    req: &SweepRequest,
    budget: &Budget,
    faults: &Faults,
    summary: Summary,
) -> Summary {
    let examined = AtomicU64::new(0);
    let now = now_millis();
    // Single-request uploads are not stale by age but by their URL's expiry: [`expired`].
    let mut summary = live_uploads(ctx, req, faults)
        .filter(|u| future::ready(u.kind == UploadKind::Multipart))
        .take_while(|_| future::ready(budget.try_start()))
        .map(|u| {
            examined.fetch_add(1, Ordering::Relaxed);
            settle_tracked(ctx, u, req.dry_run, now)
        })
        .buffer_unordered(ctx.config.sweep_concurrency)
        .fold(summary, |s, o| future::ready(s.record(o)))
        .await;
    summary.examined += examined.into_inner();
    summary
}

/// Live single-request uploads whose form or URL expired before `before_ms`,
/// every shard, page by page.
fn expired_uploads<'a>(
    ctx: &'a Context,
    req: &'a SweepRequest,
    before_ms: i64,
    faults: &'a Faults,
) -> impl Stream<Item = Upload> + 'a {
    let prefix = Some(req.prefix.as_str()).filter(|p| !p.is_empty());
    every_shard(
        ctx,
        faults,
        "for expired forms and URLs",
        move |shard, start| {
            ctx.store
                .expired_page(shard, before_ms, prefix, start, PAGE_SIZE)
        },
    )
}

/// Settles the POST forms and PUT URLs that expired more than the grace ago.
async fn expired(
    ctx: &Context,
    req: &SweepRequest,
    budget: &Budget,
    faults: &Faults,
    summary: Summary,
) -> Summary {
    let examined = AtomicU64::new(0);
    let before = now_millis() - ctx.config.settle_grace.as_millis() as i64;
    let mut summary = expired_uploads(ctx, req, before, faults)
        .filter(|u| future::ready(u.kind != UploadKind::Multipart))
        .take_while(|_| future::ready(budget.try_start()))
        .map(|u| {
            examined.fetch_add(1, Ordering::Relaxed);
            settle_expired(ctx, u, req.dry_run)
        })
        .buffer_unordered(ctx.config.sweep_concurrency)
        .fold(summary, |s, o| future::ready(s.record(o)))
        .await;
    summary.examined += examined.into_inner();
    summary
}

async fn settle_expired(ctx: &Context, u: Upload, dry_run: bool) -> Outcome {
    if dry_run {
        return Outcome::WouldAbort {
            upload_id: u.upload_id,
            key: u.key,
            kind: "expired",
        };
    }
    let (upload_id, key) = (u.upload_id.clone(), u.key.clone());
    match with_backoff(|| crate::settle::expired(ctx, u.clone(), Actor::Sweep)).await {
        Ok(Status::Aborted) => Outcome::Expired,
        Ok(Status::Completed) => Outcome::CompletionResolved,
        Ok(_) => Outcome::Skipped,
        Err(e) => {
            tracing::error!(%upload_id, %key, error = %e, "sweep could not settle an expired upload");
            Outcome::Failed
        }
    }
}

/// Brings one stale tracked upload to a terminal state that matches S3.
async fn settle_tracked(ctx: &Context, u: Upload, dry_run: bool, now: i64) -> Outcome {
    let stale_completion = u.status == Status::Completing && lifecycle::lease_over(&u, now);
    if dry_run {
        let kind = match u.status {
            Status::Active => "tracked",
            Status::Aborting => "interrupted-abort",
            Status::Completing if stale_completion => "stuck-completion",
            _ => return Outcome::Skipped,
        };
        return Outcome::WouldAbort {
            upload_id: u.upload_id,
            key: u.key,
            kind,
        };
    }
    let result = match u.status {
        Status::Active => match with_backoff(|| {
            ctx.store.transition_by(
                &u.upload_id,
                Status::Active,
                Status::Aborting,
                None,
                Stamp::Aborting(Actor::Sweep, AbortReason::Stale),
            )
        })
        .await
        {
            Ok(Transition::Won) => finish(ctx, &u).await,
            Ok(Transition::Lost(_)) => Ok(Outcome::Skipped),
            Err(e) => Err(e),
        },
        Status::Aborting => finish(ctx, &u).await,
        Status::Completing if stale_completion => {
            with_backoff(|| lifecycle::resolve_vanished(ctx, &u, Status::Completing, Actor::Sweep))
                .await
                .map(|_| Outcome::CompletionResolved)
        }
        _ => Ok(Outcome::Skipped),
    };
    result.unwrap_or_else(|e| {
        tracing::error!(upload_id = %u.upload_id, key = %u.key, error = %e, "sweep could not settle upload");
        Outcome::Failed
    })
}

async fn finish(ctx: &Context, u: &Upload) -> Result<Outcome> {
    Ok(
        match with_backoff(|| lifecycle::finish_abort(ctx, u, Actor::Sweep)).await? {
            AbortOutcome::Aborted => Outcome::Aborted,
            AbortOutcome::AlreadyGone | AbortOutcome::WasAborted => Outcome::AlreadyGone,
            // Completed directly in S3: recorded COMPLETED, its object kept.
            AbortOutcome::FoundCompleted => Outcome::CompletionResolved,
        },
    )
}

/// Stale uploads S3 lists under the prefix, page by page (both markers).
fn listed_stale<'a>(
    ctx: &'a Context,
    req: &'a SweepRequest,
    faults: &'a Faults,
) -> impl Stream<Item = Vec<ListedUpload>> + 'a {
    stream::unfold(Some(None), move |state| async move {
        let from: Option<(String, String)> = state?;
        match with_backoff(|| ctx.storage.list_uploads_page(&req.prefix, from.as_ref())).await {
            Ok(page) => {
                let stale = page
                    .uploads
                    .into_iter()
                    .filter(|u| u.initiated_at < req.cutoff_ms)
                    .collect();
                Some((stale, page.next.map(Some)))
            }
            Err(e) => {
                faults.record("listing S3's multipart uploads", &e);
                None
            }
        }
    })
}

/// Of `chunk` (at most 100), the uploads no live item tracks. Live items
/// belong to the tracked pass; terminal ones should have no upload left.
async fn untracked(ctx: &Context, chunk: Vec<ListedUpload>, faults: &Faults) -> Vec<ListedUpload> {
    let ids: Vec<String> = chunk.iter().map(|u| u.upload_id.clone()).collect();
    match with_backoff(|| ctx.store.batch_get(&ids)).await {
        Ok(items) => chunk
            .into_iter()
            .filter(|u| {
                items
                    .get(&u.upload_id)
                    .is_none_or(|i| i.status.is_terminal())
            })
            .collect(),
        Err(e) => {
            faults.record("looking up which S3 uploads are tracked", &e);
            Vec::new()
        }
    }
}

async fn orphans(
    ctx: &Context,
    req: &SweepRequest,
    budget: &Budget,
    faults: &Faults,
    summary: Summary,
) -> Summary {
    let found = AtomicU64::new(0);
    let mut summary = listed_stale(ctx, req, faults)
        .flat_map(stream::iter)
        .chunks(100)
        // The next lookup runs while this chunk's orphans are aborted.
        .map(|chunk| untracked(ctx, chunk, faults))
        .buffered(LOOKUPS_IN_FLIGHT)
        .flat_map(|orphans| {
            found.fetch_add(orphans.len() as u64, Ordering::Relaxed);
            stream::iter(orphans)
        })
        .take_while(|_| future::ready(budget.try_start()))
        .map(|u| abort_orphan(ctx, u, req.dry_run))
        .buffer_unordered(ctx.config.sweep_concurrency)
        .fold(summary, |s, o| future::ready(s.record(o)))
        .await;
    let found = found.into_inner();
    summary.orphans_found += found;
    summary.examined += found;
    summary
}

async fn abort_orphan(ctx: &Context, u: ListedUpload, dry_run: bool) -> Outcome {
    if dry_run {
        return Outcome::WouldAbort {
            upload_id: u.upload_id,
            key: u.key,
            kind: "orphan",
        };
    }
    match with_backoff(|| {
        ctx.storage
            .abort_and_confirm(&u.key, &u.upload_id, ctx.config.abort_attempts)
    })
    .await
    {
        Ok(Aborted::Aborted) => {
            tracing::info!(upload_id = %u.upload_id, key = %u.key, "orphan aborted");
            Outcome::OrphanAborted
        }
        Ok(Aborted::AlreadyGone) => Outcome::AlreadyGone,
        Err(e) => {
            tracing::error!(upload_id = %u.upload_id, key = %u.key, error = %e, "orphan abort failed");
            Outcome::Failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn throttling_is_retried_with_backoff_and_other_errors_are_not() {
        let calls = AtomicU64::new(0);
        let r = with_backoff(|| async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0 | 1 => Err(Error::Throttled("slow down".into())),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::Relaxed), 3);

        let calls = AtomicU64::new(0);
        let r: Result<()> = with_backoff(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(Error::Internal("broken".into()))
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::Relaxed), 1);

        let calls = AtomicU64::new(0);
        let r: Result<()> = with_backoff(|| async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(Error::Throttled("forever".into()))
        })
        .await;
        assert_eq!(
            r.unwrap_err().status(),
            429,
            "gives up after a bounded number of tries"
        );
        assert_eq!(calls.load(Ordering::Relaxed), 7);
    }

    #[test]
    fn the_budget_stops_at_the_limit_and_the_deadline() {
        let b = Budget {
            stop_at: None,
            limit: Some(2),
            started: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        };
        assert!(b.try_start() && b.try_start());
        assert!(!b.try_start() && b.stopped());
        let b = Budget {
            stop_at: Some(Instant::now()),
            limit: None,
            started: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        };
        assert!(!b.try_start());
    }

    #[test]
    fn faults_keep_the_first_messages_and_an_exact_count() {
        let f = Faults::default();
        for i in 0..Faults::KEPT + 3 {
            f.record("listing", &Error::Internal(format!("refused {i}")));
        }
        let (count, first) = f.into_parts();
        assert_eq!(count, Faults::KEPT as u64 + 3);
        assert_eq!(first.len(), Faults::KEPT);
        assert_eq!(first[0], "listing: refused 0");
    }
}
