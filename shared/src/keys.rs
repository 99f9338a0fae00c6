//! Object keys: `{prefix}{owner}/{unique id}/{sanitized filename}`.
//!
//! Nothing a client sends can escape the prefix (no `/`, `\`, `..`), add
//! control or bidi characters, or push the key past S3's 1,024 bytes.

use crate::config::limits::MAX_KEY_BYTES;
use crate::error::{Error, Result};

/// Longest filename we read at all; longer ones are refused, not truncated.
const MAX_FILENAME_INPUT: usize = 4096;
/// Owner segments are capped so a long `sub` or ARN cannot eat the filename's room.
const MAX_OWNER_BYTES: usize = 128;

/// Characters S3 advises against in keys, and the separators; replaced by `_`.
fn is_troublesome(c: char) -> bool {
    matches!(
        c,
        '/' | '\\' | '{' | '}' | '^' | '%' | '`' | '[' | ']' | '"' | '<' | '>' | '~' | '#' | '|'
    )
}

/// Invisible characters that can disguise a name (bidi overrides, zero-width, BOM).
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// The last path component of `name`, cleaned: no separators, controls or
/// leading dots; whitespace runs folded to one space.
pub fn sanitize_filename(name: &str) -> Result<String> {
    if name.len() > MAX_FILENAME_INPUT {
        return Err(Error::bad_request(format!(
            "filename is longer than {MAX_FILENAME_INPUT} bytes"
        )));
    }
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::with_capacity(last.len());
    for c in last.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else if !is_invisible(c) {
            out.push(if is_troublesome(c) { '_' } else { c });
        }
    }
    let cleaned = out.trim().trim_start_matches('.').trim().to_string();
    if cleaned.is_empty() {
        return Err(Error::bad_request(format!(
            "filename {name:?} has no usable characters"
        )));
    }
    Ok(cleaned)
}

/// The key segment for an owner: only `[A-Za-z0-9._-]`, at most 128 bytes.
pub fn owner_segment(owner: &str) -> String {
    let seg: String = owner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_OWNER_BYTES)
        .collect();
    match seg.trim_start_matches('.') {
        "" => "_".into(),
        s => s.to_string(),
    }
}

/// Builds the key, shortening the filename (keeping its extension) to fit 1,024 bytes.
pub fn build_key(prefix: &str, owner: &str, id: &str, filename: &str) -> Result<String> {
    let base = format!("{prefix}{}/{id}/", owner_segment(owner));
    let room = MAX_KEY_BYTES
        .checked_sub(base.len())
        .filter(|r| *r >= 16)
        .ok_or_else(|| Error::Config("key prefix leaves no room for filenames".into()))?;
    Ok(base + &fit(filename, room))
}

/// `name` cut to at most `max` bytes on a char boundary, keeping a short extension.
fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = name
        .rfind('.')
        .map(|i| &name[i..])
        .filter(|e| e.len() <= 16)
        .unwrap_or("");
    let stem_room = max - ext.len();
    let mut end = stem_room.min(name.len() - ext.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ext}", &name[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_tricks_cannot_escape_the_prefix() {
        for evil in [
            "../../etc/passwd",
            "..\\..\\boot.ini",
            "/abs/name.txt",
            "a/../../b",
        ] {
            let f = sanitize_filename(evil).unwrap();
            assert!(
                !f.contains('/') && !f.contains('\\') && !f.starts_with('.'),
                "{evil} -> {f}"
            );
            let key = build_key("uploads/", "../owner/x", "id1", &f).unwrap();
            assert!(key.starts_with("uploads/"));
            assert_eq!(key.matches('/').count(), 3, "{key}");
            assert!(!key.split('/').any(|s| s == ".." || s == "."), "{key}");
        }
    }

    #[test]
    fn control_and_bidi_characters_are_removed() {
        let f = sanitize_filename("inv\u{0}oice\u{202E}fdp.exe\r\n").unwrap();
        assert_eq!(f, "invoicefdp.exe");
        assert_eq!(
            sanitize_filename("  my   holiday\tphoto .jpg ").unwrap(),
            "my holiday photo .jpg"
        );
        assert_eq!(
            sanitize_filename("résumé 2026.pdf").unwrap(),
            "résumé 2026.pdf"
        );
    }

    #[test]
    fn empty_or_dot_only_names_are_refused() {
        for bad in ["", "   ", "..", "/", "dir/", "\u{202E}", &"x".repeat(5000)] {
            assert!(sanitize_filename(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_never_exceed_1024_bytes_and_keep_the_extension() {
        let long = "é".repeat(2000) + ".tar.gz";
        let key = build_key(
            "uploads/",
            &"o".repeat(500),
            "0190-id",
            &sanitize_filename(&long[..4000]).unwrap(),
        )
        .unwrap();
        assert!(key.len() <= MAX_KEY_BYTES);
        let key = build_key("uploads/", "alice", "id", &("a".repeat(2000) + ".mp4")).unwrap();
        assert!(key.len() <= MAX_KEY_BYTES && key.ends_with(".mp4"), "{key}");
    }

    #[test]
    fn owner_segments_are_safe() {
        assert_eq!(
            owner_segment("arn:aws:iam::123:user/bob"),
            "arn_aws_iam__123_user_bob"
        );
        assert_eq!(owner_segment(".."), "_");
        assert_eq!(owner_segment(""), "_");
    }
}
