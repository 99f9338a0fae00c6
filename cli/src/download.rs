//! `partwise get`: a completed upload downloaded through its presigned GET,
//! resumed with a `Range` request after an interruption, and checked against
//! the checksum (or the multipart ETag) S3 reported at completion before it
//! takes its name.

use crate::api::{Api, Download};
use crate::error::{CliError, Result, describe};
use crate::events::{Service, Why};
use crate::manage::resolve;
use crate::output::{Level, human_bytes};
use crate::retry::Streak;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What a partial download is of, kept beside it: a resume must be of the same object.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct Partial {
    upload_id: String,
    etag: Option<String>,
    size: u64,
}

/// Downloads `what` (an id, a unique prefix of one, or a key) to `dest`.
pub async fn get(
    api: &Api,
    what: &str,
    dest: Option<&Path>,
    json: bool,
    level: Level,
) -> Result<()> {
    let started = Instant::now();
    let id = resolve(api, what).await?;
    let mut d = api.download(&id).await?;
    let name = d
        .filename
        .clone()
        .filter(|f| !f.is_empty() && !f.contains('/'))
        .unwrap_or_else(|| "download".into());
    let dest = match dest {
        Some(p) if p.is_dir() => p.join(&name),
        Some(p) => p.to_path_buf(),
        None => PathBuf::from(&name),
    };
    let part = with_suffix(&dest, ".partwise-part");
    let record = with_suffix(&dest, ".partwise-part.json");
    let me = Partial {
        upload_id: id.clone(),
        etag: d.etag.clone(),
        size: d.size,
    };
    let same = std::fs::read_to_string(&record)
        .ok()
        .and_then(|t| serde_json::from_str::<Partial>(&t).ok())
        .is_some_and(|p| p == me);
    if !same {
        let _ = std::fs::remove_file(&part);
    }
    let io = |p: &Path, e: std::io::Error| CliError::Unreadable {
        path: p.to_path_buf(),
        reason: e.to_string(),
    };
    std::fs::write(&record, serde_json::to_vec(&me).unwrap_or_default())
        .map_err(|e| io(&record, e))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)
        .map_err(|e| io(&part, e))?;
    let mut have = file.metadata().map_err(|e| io(&part, e))?.len();
    if have > d.size {
        file.set_len(0).map_err(|e| io(&part, e))?;
        have = 0;
    }
    let resumed = have;
    let bar = bar(d.size, json, level, &name);
    bar.set_position(have);
    let http = crate::s3::client().map_err(|e| CliError::Other(format!("HTTP client: {e}")))?;
    let retry = api.retry().clone();
    let mut streak = Streak::new();
    while have < d.size {
        let mut req = http.get(&d.url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let (why, failure) = match req.send().await {
            Err(e) => (Why::Unreachable, describe(&e)),
            Ok(resp) => {
                let status = resp.status().as_u16();
                match status {
                    200 | 206 => {
                        if status == 200 && have > 0 {
                            // The server ignored the range: start over.
                            file.set_len(0).map_err(|e| io(&part, e))?;
                            have = 0;
                            bar.set_position(0);
                        }
                        let mut body = resp.bytes_stream();
                        let mut failed = None;
                        while let Some(chunk) = body.next().await {
                            match chunk {
                                Ok(c) => {
                                    file.write_all(&c).map_err(|e| io(&part, e))?;
                                    have += c.len() as u64;
                                    bar.set_position(have);
                                }
                                Err(e) => {
                                    failed = Some((Why::Unreachable, describe(&e)));
                                    break;
                                }
                            }
                        }
                        match failed {
                            None => {
                                retry.recovered(Service::S3, &streak);
                                continue;
                            }
                            Some(f) => f,
                        }
                    }
                    403 => {
                        // The URL expired on the way: ask for a fresh one.
                        d = api.download(&id).await?;
                        (
                            Why::Failing,
                            format!("HTTP {status}: a fresh URL was asked for"),
                        )
                    }
                    429 => (Why::Busy, "HTTP 429".to_string()),
                    s if s >= 500 => (Why::Failing, format!("HTTP {s}")),
                    s => {
                        return Err(CliError::Storage {
                            part: 0,
                            detail: format!("S3 answered the download with HTTP {s}"),
                        });
                    }
                }
            }
        };
        if !retry
            .wait(Service::S3, why, &mut streak, &failure, None)
            .await
        {
            bar.abandon();
            return Err(CliError::Storage {
                part: 0,
                detail: format!("downloading: {failure}; run the command again to resume"),
            });
        }
    }
    file.flush().map_err(|e| io(&part, e))?;
    drop(file);
    bar.set_message("checking");
    let verified = check(&part, &d).await?;
    std::fs::rename(&part, &dest).map_err(|e| io(&dest, e))?;
    let _ = std::fs::remove_file(&record);
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "file": dest.display().to_string(),
                "key": d.key,
                "uploadId": id,
                "size": d.size,
                "bytesReceived": d.size - resumed,
                "seconds": secs,
                "checked": verified,
            })
        );
    } else if level != Level::Quiet {
        let got = d.size - resumed;
        let resumed = if resumed > 0 {
            format!(", {} were already here", human_bytes(resumed))
        } else {
            String::new()
        };
        println!(
            "✓ {}  {} received in {secs:.1} s{resumed}; {verified}",
            dest.display(),
            human_bytes(got)
        );
    }
    Ok(())
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn bar(size: u64, json: bool, level: Level, name: &str) -> ProgressBar {
    if json || level == Level::Quiet || !std::io::stdout().is_terminal() {
        return ProgressBar::with_draw_target(Some(size), ProgressDrawTarget::hidden());
    }
    let width = crate::output::term_width();
    let b = ProgressBar::new(size);
    let tpl = if width >= 80 {
        "{prefix:<20} {wide_bar:.cyan/blue} {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4}"
    } else {
        "{prefix:<14} {wide_bar:.cyan/blue} {percent:>3}% {binary_bytes_per_sec:>12}"
    };
    if let Ok(s) = ProgressStyle::with_template(tpl) {
        b.set_style(s.progress_chars("█▉▊▋▌▍▎▏ "));
    }
    b.set_prefix(crate::output::fit(name, if width >= 80 { 20 } else { 14 }));
    b
}

/// Checks the file against what S3 reported; says what was checked, or
/// refuses (exit 10) and removes the bad copy.
async fn check(path: &Path, d: &Download) -> Result<String> {
    let path = path.to_path_buf();
    let want = d.clone();
    let result = tokio::task::spawn_blocking(move || digest(&path, &want).map(|r| (r, path)))
        .await
        .map_err(|e| CliError::Other(format!("checking: {e}")))?;
    let ((expected, got, what), path) = result?;
    if expected == got {
        return Ok(format!("{what} checked"));
    }
    let _ = std::fs::remove_file(&path);
    Err(CliError::Integrity {
        path,
        part: 0,
        detail: format!("the download's {what} is {got}, S3 reported {expected}"),
    })
}

/// (expected, computed, what) for the best check the answer allows.
fn digest(path: &Path, d: &Download) -> Result<(String, String, String)> {
    let algorithm = d
        .checksum
        .as_ref()
        .and_then(|c| c.get("algorithm")?.as_str().map(str::to_string));
    let kind = d
        .checksum
        .as_ref()
        .and_then(|c| c.get("type")?.as_str().map(str::to_string));
    let value = d
        .checksum
        .as_ref()
        .and_then(|c| c.get("value")?.as_str().map(str::to_string));
    let part_size = d.part_size.unwrap_or(u64::MAX).max(1);
    let mut f = std::fs::File::open(path).map_err(|e| CliError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    // Per part: CRC32C and MD5, read a chunk at a time.
    let mut crcs: Vec<u32> = Vec::new();
    let mut md5s: Vec<[u8; 16]> = Vec::new();
    let mut whole_crc = 0u32;
    let mut buf = vec![0u8; crate::source::CHUNK];
    let mut in_part = 0u64;
    let (mut crc, mut md5) = (0u32, Md5::new());
    loop {
        let room = (part_size - in_part).min(buf.len() as u64) as usize;
        let n = f.read(&mut buf[..room]).map_err(|e| CliError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        whole_crc = crc32c::crc32c_append(whole_crc, &buf[..n]);
        md5.update(&buf[..n]);
        in_part += n as u64;
        if in_part == part_size {
            crcs.push(crc);
            md5s.push(md5.finalize_reset().into());
            crc = 0;
            in_part = 0;
        }
    }
    if in_part > 0 || crcs.is_empty() {
        crcs.push(crc);
        md5s.push(md5.finalize_reset().into());
    }
    match (algorithm.as_deref(), kind.as_deref(), value) {
        (Some("CRC32C"), Some("COMPOSITE"), Some(v)) => {
            let mut joined = Vec::with_capacity(crcs.len() * 4);
            for c in &crcs {
                joined.extend_from_slice(&c.to_be_bytes());
            }
            let got = format!(
                "{}-{}",
                B64.encode(crc32c::crc32c(&joined).to_be_bytes()),
                crcs.len()
            );
            Ok((v, got, "CRC32C (composite)".into()))
        }
        (Some("CRC32C"), _, Some(v)) => {
            Ok((v, B64.encode(whole_crc.to_be_bytes()), "CRC32C".into()))
        }
        _ => {
            let etag = d
                .etag
                .clone()
                .unwrap_or_default()
                .trim_matches('"')
                .to_string();
            let got = if etag.contains('-') {
                let mut all = Md5::new();
                for m in &md5s {
                    all.update(m);
                }
                format!("{}-{}", hex::encode(all.finalize()), md5s.len())
            } else {
                hex::encode(md5s.first().copied().unwrap_or_default())
            };
            Ok((etag, got, "ETag".into()))
        }
    }
}
