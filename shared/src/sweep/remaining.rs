//! What a sweep run leaves behind, counted after the run from S3's and DynamoDB's own listings.

use super::SweepRequest;
use crate::Context;
use crate::error::Result;
use futures::{StreamExt, TryStreamExt, stream};
use std::time::{Duration, Instant};

/// Longest the count may take. Past it the figures are lower bounds: a
/// backlog of millions is not worth listing to the end in every run.
pub const COUNT_CAP: Duration = Duration::from_secs(3);

/// Never count into the last second before the invocation's deadline.
const DEADLINE_GUARD: Duration = Duration::from_secs(1);

/// Stale uploads still there when the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remaining {
    /// Multipart uploads initiated before the cutoff that S3 still lists under the prefix.
    pub uploads: u64,
    /// Live items initiated before the cutoff still in the live-uploads index.
    pub tracked: u64,
    /// False when the count stopped at its time cap: the figures are then lower bounds.
    pub exact: bool,
}

/// Counts both sides at once, each stopping at the cap (or near the deadline).
pub async fn count(
    ctx: &Context,
    req: &SweepRequest,
    deadline: Option<Instant>,
) -> Result<Remaining> {
    let now = Instant::now();
    let mut stop_at = now + COUNT_CAP;
    if let Some(d) = deadline {
        stop_at = stop_at.min(d.checked_sub(DEADLINE_GUARD).unwrap_or(now));
    }
    let ((uploads, s3_exact), (tracked, table_exact)) =
        futures::try_join!(in_s3(ctx, req, stop_at), in_table(ctx, req, stop_at))?;
    Ok(Remaining {
        uploads,
        tracked,
        exact: s3_exact && table_exact,
    })
}

/// Stale multipart uploads under the prefix, every page of ListMultipartUploads.
async fn in_s3(ctx: &Context, req: &SweepRequest, stop_at: Instant) -> Result<(u64, bool)> {
    let mut count = 0;
    let mut from = None;
    loop {
        if Instant::now() >= stop_at {
            return Ok((count, false));
        }
        let page =
            super::with_backoff(|| ctx.storage.list_uploads_page(&req.prefix, from.as_ref()))
                .await?;
        count += page
            .uploads
            .iter()
            .filter(|u| u.initiated_at < req.cutoff_ms)
            .count() as u64;
        match page.next {
            Some(next) => from = Some(next),
            None => return Ok((count, true)),
        }
    }
}

/// Stale live items, every shard of the index, a few shards at once.
async fn in_table(ctx: &Context, req: &SweepRequest, stop_at: Instant) -> Result<(u64, bool)> {
    let prefix = Some(req.prefix.as_str()).filter(|p| !p.is_empty());
    stream::iter(0..ctx.store.shards())
        .map(|shard| async move {
            let mut count = 0;
            let mut start = None;
            loop {
                if Instant::now() >= stop_at {
                    return Ok((count, false));
                }
                let (n, next) = super::with_backoff(|| {
                    ctx.store
                        .count_live_page(shard, req.cutoff_ms, prefix, start.clone())
                })
                .await?;
                count += n;
                match next {
                    Some(next) => start = Some(next),
                    None => return Ok((count, true)),
                }
            }
        })
        .buffer_unordered(super::SHARDS_IN_FLIGHT)
        .try_fold((0, true), |(sum, exact), (n, e)| async move {
            Ok((sum + n, exact && e))
        })
        .await
}
