//! The two references the sweep is measured against, on the same servers.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::DateTime;
use futures::{StreamExt, stream};
use partwise::model::Status;
use partwise::store::{Store, Transition};

/// (a) The AWS SDKs' `abortMultipartUploads(bucket, date)`: list every page of
/// ListMultipartUploads, then abort the uploads initiated before `date` one
/// after another. Returns how many it aborted.
pub async fn sdk_algorithm(
    s3: &Client,
    bucket: &str,
    prefix: &str,
    before: DateTime,
) -> Result<usize, String> {
    let mut stale = Vec::new();
    let mut markers: (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(markers.0.take())
            .set_upload_id_marker(markers.1.take())
            .send()
            .await
            .map_err(|e| format!("ListMultipartUploads: {e:?}"))?;
        for u in page.uploads() {
            if u.initiated().is_some_and(|t| *t < before)
                && let (Some(k), Some(id)) = (u.key(), u.upload_id())
            {
                stale.push((k.to_string(), id.to_string()));
            }
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        markers = (
            page.next_key_marker().map(str::to_string),
            page.next_upload_id_marker().map(str::to_string),
        );
    }
    for (key, upload_id) in &stale {
        s3.abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .map_err(|e| format!("AbortMultipartUpload: {e:?}"))?;
    }
    Ok(stale.len())
}

/// (b) Raw capacity: the same aborts, `concurrency` at a time, with nothing
/// else: no listing, no tracking, no confirmation. Returns how many succeeded.
pub async fn raw_aborts(
    s3: &Client,
    bucket: &str,
    uploads: &[(String, String)],
    concurrency: usize,
) -> Result<usize, String> {
    let results: Vec<_> = stream::iter(uploads)
        .map(|(key, upload_id)| {
            s3.abort_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        return Err(format!("{failed} raw aborts failed"));
    }
    Ok(results.len())
}

/// (c) The tracking ceiling: the two conditional writes the sweep makes per
/// tracked upload (claim ACTIVE → ABORTING, record ABORTED), `concurrency`
/// uploads at a time, with no S3 call. Returns how many uploads it recorded.
pub async fn tracking_writes(
    store: &Store,
    upload_ids: &[String],
    concurrency: usize,
) -> Result<usize, String> {
    let won: Vec<bool> = stream::iter(upload_ids)
        .map(|id| async move {
            let claimed = store
                .transition(id, Status::Active, Status::Aborting, None)
                .await;
            let recorded = store
                .transition(id, Status::Aborting, Status::Aborted, None)
                .await;
            matches!(
                (claimed, recorded),
                (Ok(Transition::Won), Ok(Transition::Won))
            )
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    match won.iter().filter(|w| !**w).count() {
        0 => Ok(won.len()),
        lost => Err(format!("{lost} tracking transitions failed")),
    }
}
