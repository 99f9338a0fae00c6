//! `partwise ls`, `status`, `abort` and `quota`: the caller's uploads (short
//! ids, any unique prefix accepted), and what of the quota they use.

use crate::api::{Api, Listed};
use crate::error::{CliError, Result};
use crate::output::human_bytes;
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// Lists the caller's uploads, unfinished first, newest first within each group.
pub async fn ls(api: &Api, json: bool) -> Result<()> {
    let mut uploads = api.list(None, true).await?.ok_or_else(|| {
        CliError::Other(format!(
            "the API at {} cannot list uploads (an older server?)",
            api.base()
        ))
    })?;
    // Stable: the server's newest-first order holds within each group.
    uploads.sort_by_key(|u| finished(&u.state));
    if json {
        for u in &uploads {
            println!("{}", serde_json::to_string(u).unwrap_or_default());
        }
        return Ok(());
    }
    if uploads.is_empty() {
        println!("no uploads");
        return Ok(());
    }
    let ids: Vec<&str> = uploads.iter().map(|u| u.upload_id.as_str()).collect();
    let w = short_len(&ids);
    println!(
        "{:<w$}  {:<10} {:>11} {:>11} {:>6}  FILE",
        "ID", "STATE", "SIZE", "HELD", "AGE"
    );
    for u in &uploads {
        println!(
            "{:<w$}  {:<10} {:>11} {:>11} {:>6}  {}",
            u.upload_id.get(..w).unwrap_or(&u.upload_id),
            u.state,
            u.size.map(human_bytes).unwrap_or_else(|| "-".into()),
            held(u),
            age(u.initiated.as_ref()),
            u.filename.as_deref().unwrap_or(&u.key)
        );
    }
    if let Ok(Some(q)) = api.quota().await {
        println!();
        print_quota(&q);
    }
    Ok(())
}

/// The shortest id length, 8 or more, at which every listed id is unique.
fn short_len(ids: &[&str]) -> usize {
    let longest = ids.iter().map(|i| i.len()).max().unwrap_or(2).max(2);
    (8..longest)
        .find(|&n| {
            let mut seen = std::collections::HashSet::new();
            ids.iter().all(|i| seen.insert(i.get(..n).unwrap_or(i)))
        })
        .unwrap_or(longest)
}

/// The full id of the caller's one upload starting with `prefix`.
pub async fn resolve(api: &Api, prefix: &str) -> Result<String> {
    // A whole id (S3's are long) is used as it is: no list needed.
    if prefix.len() >= 40 && !prefix.contains('/') {
        return Ok(prefix.to_string());
    }
    let Some(uploads) = api.list(None, false).await? else {
        return Ok(prefix.to_string());
    };
    let matching: Vec<&Listed> = uploads
        .iter()
        .filter(|u| u.upload_id.starts_with(prefix) || u.key == prefix)
        .collect();
    match matching.as_slice() {
        [one] => Ok(one.upload_id.clone()),
        [] => Err(CliError::NotFound(format!(
            "none of your uploads has an id starting with {prefix:?} (see partwise ls)"
        ))),
        many => Err(CliError::Usage(format!(
            "{prefix:?} is the start of {} upload ids ({}); give more of it",
            many.len(),
            many.iter()
                .take(4)
                .map(|u| u.upload_id.get(..16).unwrap_or(&u.upload_id))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// `partwise quota`.
pub async fn quota(api: &Api, json: bool) -> Result<()> {
    let Some(q) = api.quota().await? else {
        return Err(CliError::Other(format!(
            "the API at {} has no quota route (an older server, or no quotas)",
            api.base()
        )));
    };
    if json {
        println!("{q}");
    } else {
        print_quota(&q);
    }
    Ok(())
}

fn print_quota(q: &Value) {
    let Some(quotas) = q.get("quotas").and_then(Value::as_object) else {
        return;
    };
    println!("{:<27} {:>10} {:>12}", "QUOTA", "USED", "LIMIT");
    for (name, label, bytes) in [
        ("liveUploads", "unfinished uploads", false),
        ("bytesInFlight", "bytes in unfinished uploads", true),
        ("uploadsPerMinute", "new uploads this minute", false),
    ] {
        let Some(v) = quotas.get(name) else { continue };
        let num = |k: &str| v.get(k).and_then(Value::as_u64);
        let show = |n: Option<u64>| match (n, bytes) {
            (Some(n), true) => human_bytes(n),
            (Some(n), false) => n.to_string(),
            (None, _) => "-".into(),
        };
        println!(
            "{label:<27} {:>10} {:>12}",
            show(num("usage")),
            show(num("limit"))
        );
    }
}

fn finished(state: &str) -> bool {
    matches!(state, "COMPLETED" | "ABORTED")
}

fn held(u: &Listed) -> String {
    match u.bytes_held {
        Some(b) => human_bytes(b),
        None => "-".into(),
    }
}

/// `3m`, `2h`, `5d` since an RFC 3339 time or epoch milliseconds.
fn age(t: Option<&Value>) -> String {
    let Some(t) = t else {
        return "-".into();
    };
    let millis = match t {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => rfc3339_millis(s),
        _ => None,
    };
    let Some(millis) = millis else {
        return "-".into();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let s = now.saturating_sub(millis) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// Milliseconds since the epoch of `2026-11-25T21:52:57.123Z` (UTC forms only).
fn rfc3339_millis(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (mo + if mo > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    u64::try_from(secs).ok().map(|s| s * 1000)
}

/// Shows one upload.
pub async fn status(api: &Api, id: &str, json: bool) -> Result<()> {
    let id = resolve(api, id).await?;
    let s = api.status(&id).await?;
    if json {
        println!("{s}");
        return Ok(());
    }
    let field = |k: &str| s.get(k).cloned().unwrap_or(Value::Null);
    let text = |v: Value| match v {
        Value::String(s) => s,
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!("upload    {}", text(field("uploadId")));
    println!("file      {}", text(field("filename")));
    println!("key       {}", text(field("key")));
    println!("state     {}", text(field("status")));
    println!(
        "size      {}",
        field("size")
            .as_u64()
            .map(human_bytes)
            .unwrap_or_else(|| "-".into())
    );
    if let Some(p) = s.get("plan").filter(|p| !p.is_null()) {
        println!(
            "plan      {} parts of {}",
            text(p.get("partCount").cloned().unwrap_or(Value::Null)),
            p.get("partSize")
                .and_then(Value::as_u64)
                .map(human_bytes)
                .unwrap_or_else(|| "-".into())
        );
    }
    if let Some(u) = s.get("uploaded") {
        println!(
            "held      {} parts, {}",
            text(u.get("parts").cloned().unwrap_or(Value::Null)),
            u.get("bytes")
                .and_then(Value::as_u64)
                .map(human_bytes)
                .unwrap_or_else(|| "-".into())
        );
    }
    println!("started   {} ago", age(s.get("initiatedAt")));
    println!("updated   {} ago", age(s.get("updatedAt")));
    Ok(())
}

/// Aborts one upload.
pub async fn abort(api: &Api, id: &str, json: bool) -> Result<()> {
    let id = resolve(api, id).await?;
    let answer = api.abort(&id, None).await?;
    if json {
        println!("{answer}");
    } else {
        println!(
            "{id}: {}",
            answer
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("ABORTED")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_stay_unique() {
        assert_eq!(short_len(&["abcdefgh1111", "abcdefgh2222"]), 9);
        assert_eq!(short_len(&["a1b2c3d4e5f6", "ffff0000aaaa"]), 8);
        assert_eq!(short_len(&["abc"]), 3);
    }

    #[test]
    fn rfc3339_parses() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            rfc3339_millis("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_000)
        );
        assert_eq!(rfc3339_millis("nonsense"), None);
    }
}
