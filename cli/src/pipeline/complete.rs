//! Stage "complete": the part list to the API, the local record forgotten,
//! the object's size checked; and a 0-byte file, which goes as one PUT.

use super::Shared;
use super::find::{Target, content_type};
use super::send::Done;
use crate::error::{CliError, Result};
use crate::events::{Event, Finished, Service};
use crate::retry::Streak;
use crate::s3::{self, PutError};
use crate::source::Source;
use crate::state;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Instant;

pub async fn complete(
    shared: &Shared,
    file: usize,
    src: &Source,
    target: &Target,
    done: Vec<Done>,
    started: Instant,
) -> Result<Finished> {
    if !src.unchanged() {
        return Err(CliError::FileChanged(src.path.clone()));
    }
    let parts: Vec<Value> = done
        .iter()
        .map(|d| {
            let mut p = json!({"PartNumber": d.part, "ETag": d.etag});
            if target.checksum.is_some() {
                p["ChecksumCRC32C"] = json!(d.crc32c);
            }
            p
        })
        .collect();
    shared.events.send(Event::Completing { file });
    let answer = shared
        .api
        .complete(&target.upload_id, &target.key, &parts)
        .await?;
    if !src.stdin {
        state::forget(shared.api.base(), src);
    }
    if let Some(size) = answer.get("size").and_then(Value::as_u64)
        && size != src.size
    {
        return Err(CliError::Other(format!(
            "S3 holds {size} bytes for {}, not {}",
            src.shown(),
            src.size
        )));
    }
    Ok(Finished {
        file: src.shown(),
        key: answer
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or(&target.key)
            .to_string(),
        size: src.size,
        etag: answer
            .get("etag")
            .and_then(Value::as_str)
            .map(str::to_string),
        checksum: answer.get("checksum").filter(|c| !c.is_null()).cloned(),
        seconds: started.elapsed().as_secs_f64(),
        upload_id: Some(target.upload_id.clone()),
        part_size: Some(target.plan.part_size),
        parts_sent: done.iter().filter(|d| d.sent).count() as u32,
        parts_skipped: done.iter().filter(|d| !d.sent).count() as u32,
        bytes_sent: done.iter().filter(|d| d.sent).map(|d| d.len).sum(),
    })
}

/// A 0-byte file: S3 takes no empty part, so it goes as one presigned PUT
/// (or, from servers older than that, one POST form).
pub async fn empty(shared: &Shared, src: &Source, started: Instant) -> Result<Finished> {
    let api = &shared.api;
    let content_type = content_type(&shared.settings, src);
    let init = api
        .initiate(
            &src.name,
            &content_type,
            0,
            None,
            false,
            &shared.settings.meta,
        )
        .await?;
    let http = &shared.http;
    // A `url` is the empty file's presigned PUT (tracked by the server as a
    // `put` upload, whose id it may send along).
    let (key, etag) = match (init.upload_id, init.url) {
        (_, Some(url)) => {
            let etag = retry_single(shared, || {
                s3::put_part(
                    http,
                    &url,
                    &init.headers,
                    0,
                    futures::stream::empty::<std::io::Result<bytes::Bytes>>(),
                    std::sync::Arc::new(|_| {}),
                )
            })
            .await?;
            (init.key, Some(etag))
        }
        (upload_id, _) => {
            // An older server started a multipart upload that can never take an
            // empty part: drop it, and use a POST form.
            if let Some(id) = upload_id {
                let _ = api.abort(&id, Some(&init.key)).await;
            }
            let form = api.post_form(&src.name, &content_type, 0).await?;
            let key = form.fields.get("key").cloned().unwrap_or_default();
            let fields: HashMap<String, String> = form.fields.clone();
            let etag = retry_single(shared, || {
                s3::post_form(
                    http,
                    &form.url,
                    &fields,
                    &src.name,
                    &content_type,
                    bytes::Bytes::new(),
                )
            })
            .await?;
            (key, etag)
        }
    };
    Ok(Finished {
        file: src.shown(),
        key,
        size: 0,
        etag,
        checksum: None,
        seconds: started.elapsed().as_secs_f64(),
        upload_id: None,
        part_size: None,
        parts_sent: 1,
        parts_skipped: 0,
        bytes_sent: 0,
    })
}

/// One request straight to S3, tried again through an outage.
async fn retry_single<T, F, Fut>(shared: &Shared, send: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, PutError>>,
{
    let retry = shared.api.retry();
    let mut streak = Streak::new();
    loop {
        match send().await {
            Ok(v) => {
                retry.recovered(Service::S3, &streak);
                return Ok(v);
            }
            Err(PutError::Transient(why, d)) => {
                if !retry.wait(Service::S3, why, &mut streak, &d, None).await {
                    return Err(CliError::Storage { part: 1, detail: d });
                }
            }
            Err(PutError::Fatal(d) | PutError::Forbidden(d) | PutError::Digest(d)) => {
                return Err(CliError::Storage { part: 1, detail: d });
            }
        }
    }
}
