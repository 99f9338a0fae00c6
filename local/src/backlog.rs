//! A backlog of stale uploads to sweep, and a census of what a sweep left.
//!
//! Seeds tracked uploads (an S3 upload and its ACTIVE item, as `initiate`
//! makes them) and orphans (an S3 upload with no item, as a crash between S3
//! and DynamoDB leaves them); counts what S3 and the table still hold. The
//! benchmark, the sweep's tests and `partwise-local seed` / `census` share it.

use futures::{StreamExt, TryStreamExt, stream};
use partwise::Context;
use partwise::model::{Status, Upload, now_millis};

/// What was created, so the references can abort exactly the same set.
pub struct Seeded {
    pub uploads: Vec<(String, String)>,
    pub tracked: usize,
}

/// Tracks `n` ACTIVE uploads in the table only (no S3 upload), for the
/// tracking-ceiling reference.
pub async fn items(ctx: &Context, n: usize, concurrency: usize) -> partwise::Result<Vec<String>> {
    let store = &unmetered(ctx);
    stream::iter(0..n)
        .map(|i| async move {
            let upload_id = uuid::Uuid::new_v4().simple().to_string();
            store
                .insert(&active(&upload_id, &ctx.config.key_prefix, i))
                .await?;
            Ok::<_, partwise::Error>(upload_id)
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await
}

fn active(upload_id: &str, prefix: &str, i: usize) -> Upload {
    let now = now_millis();
    Upload {
        upload_id: upload_id.into(),
        key: format!("{prefix}backlog/{i:06}.bin"),
        owner: "backlog".into(),
        status: Status::Active,
        initiated_at: now,
        updated_at: now,
        filename: format!("{i:06}.bin"),
        content_type: "application/octet-stream".into(),
        size: None,
        plan: None,
        completion: None,
        expires_at: None,
        checksum: None,
    }
}

/// Creates `n` uploads under the context's key prefix, the first `tracked`
/// of them tracked, `concurrency` at a time.
pub async fn uploads(
    ctx: &Context,
    n: usize,
    tracked: usize,
    concurrency: usize,
) -> partwise::Result<Seeded> {
    let store = &unmetered(ctx);
    let uploads: Vec<(String, String)> = stream::iter(0..n)
        .map(|i| async move {
            let key = format!("{}backlog/{i:06}.bin", ctx.config.key_prefix);
            let upload_id = ctx.storage.create(&key, "application/octet-stream").await?;
            if i < tracked {
                store
                    .insert(&active(&upload_id, &ctx.config.key_prefix, i))
                    .await?;
            }
            Ok::<_, partwise::Error>((key, upload_id))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    Ok(Seeded {
        uploads,
        tracked: tracked.min(n),
    })
}

/// What S3 and the table hold under a prefix, from their own listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Census {
    /// Multipart uploads S3 lists under the prefix (every page).
    pub s3_uploads: u64,
    /// Live (not terminal) items whose key is under the prefix, every index shard.
    pub live_items: u64,
}

/// Counts both, with no cutoff and no cap: for tests and people, not for a Lambda.
pub async fn census(ctx: &Context, prefix: &str) -> partwise::Result<Census> {
    let mut s3_uploads = 0;
    let mut from = None;
    loop {
        let page = ctx.storage.list_uploads_page(prefix, from.as_ref()).await?;
        s3_uploads += page.uploads.len() as u64;
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    let mut live_items = 0;
    for shard in 0..ctx.store.shards() {
        let mut start = None;
        loop {
            let (n, next) = ctx
                .store
                .count_live_page(shard, i64::MAX, Some(prefix), start)
                .await?;
            live_items += n;
            match next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
    }
    Ok(Census {
        s3_uploads,
        live_items,
    })
}

/// The store without quotas: a seeded backlog stands for uploads of many
/// owners, not one owner starting thousands.
fn unmetered(ctx: &Context) -> partwise::store::Store {
    ctx.store
        .clone()
        .with_quotas(partwise::quota::Quotas::default())
}
