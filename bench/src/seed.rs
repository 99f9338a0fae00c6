//! Stale uploads to sweep: tracked ones (an S3 upload and its ACTIVE item, as
//! `initiate` makes them) and orphans (an S3 upload with no item, as a crash
//! between S3 and DynamoDB leaves them).

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
    stream::iter(0..n)
        .map(|i| async move {
            let upload_id = uuid::Uuid::new_v4().simple().to_string();
            ctx.store
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
        key: format!("{prefix}bench/{i:06}.bin"),
        owner: "bench".into(),
        status: Status::Active,
        initiated_at: now,
        updated_at: now,
        filename: format!("{i:06}.bin"),
        content_type: "application/octet-stream".into(),
        size: None,
        plan: None,
        completion: None,
        expires_at: None,
    }
}

/// Creates `n` uploads under the context's key prefix, `tracked_percent` of
/// them tracked, `concurrency` at a time.
pub async fn uploads(
    ctx: &Context,
    n: usize,
    tracked_percent: usize,
    concurrency: usize,
) -> partwise::Result<Seeded> {
    let tracked = n * tracked_percent / 100;
    let uploads: Vec<(String, String)> = stream::iter(0..n)
        .map(|i| async move {
            let key = format!("{}bench/{i:06}.bin", ctx.config.key_prefix);
            let upload_id = ctx.storage.create(&key, "application/octet-stream").await?;
            if i < tracked {
                ctx.store
                    .insert(&active(&upload_id, &ctx.config.key_prefix, i))
                    .await?;
            }
            Ok::<_, partwise::Error>((key, upload_id))
        })
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    Ok(Seeded { uploads, tracked })
}
