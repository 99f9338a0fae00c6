//! Object keys: `{prefix}{owner segment}/{unique id}/{sanitized filename}`.
//!
//! Nothing a client sends can escape the prefix (no `/`, `\`, no `.`, `..` or
//! empty segment), add control or invisible characters, or push the key past
//! S3's 1,024 bytes. Two owners never share a segment: it is an injective
//! encoding of the owner.

use crate::config::limits::MAX_KEY_BYTES;
use crate::error::{Error, Result};
use icu_properties::CodePointSetData;
use icu_properties::props::{BidiControl, DefaultIgnorableCodePoint};
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// Longest filename we read at all; longer ones are refused, not truncated.
const MAX_FILENAME_INPUT: usize = 4096;
/// Owner segments are capped so a long `sub` or ARN cannot eat the filename's room.
pub const MAX_OWNER_BYTES: usize = 128;
/// Starts every escape in an owner segment (`!` + two uppercase hex digits
/// per UTF-8 byte). It is itself always escaped, so decoding is unambiguous.
const ESCAPE: u8 = b'!';
/// Separates the readable head of an over-long owner segment from the
/// SHA-256 of the whole owner. Never part of a full encoding (`!` is always
/// followed by a hex digit there), so the two forms cannot collide.
const HASHED: &str = "!!";
/// The segment of the empty owner: neither a full encoding nor a hashed one.
const EMPTY_OWNER: &str = "!";

/// Characters S3 advises against in keys, and the separators; replaced by `_`.
fn is_troublesome(c: char) -> bool {
    matches!(
        c,
        '/' | '\\' | '{' | '}' | '^' | '%' | '`' | '[' | ']' | '"' | '<' | '>' | '~' | '#' | '|'
    )
}

/// Characters that can disguise a name: controls, bidi controls, and every
/// Default_Ignorable_Code_Point (soft hyphen, zero-width and word joiners,
/// Arabic letter mark, variation selectors, BOM, ...), per Unicode's data.
pub fn is_invisible(c: char) -> bool {
    c.is_control()
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || CodePointSetData::new::<BidiControl>().contains(c)
}

/// The last path component of `name`, cleaned: no separators, controls,
/// invisible characters, leading dots or spaces; whitespace runs folded to one
/// space. What is left can never be `.` or `..`: it starts with neither.
pub fn sanitize_filename(name: &str) -> Result<String> {
    if name.len() > MAX_FILENAME_INPUT {
        return Err(Error::bad_request(format!(
            "filename is longer than {MAX_FILENAME_INPUT} bytes"
        )));
    }
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::with_capacity(last.len());
    for c in last.chars() {
        // Tabs and newlines are controls too, but fold to spaces first.
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else if !is_invisible(c) {
            out.push(if is_troublesome(c) { '_' } else { c });
        }
    }
    // `". .."` must not become `..`: dots and spaces go together.
    let cleaned = out.trim_start_matches(['.', ' ']).trim_end();
    if cleaned.is_empty() {
        return Err(Error::bad_request(format!(
            "filename {name:?} has no usable characters"
        )));
    }
    Ok(cleaned.to_string())
}

/// The key segment for an owner: an injective, reversible encoding that
/// leaves `[A-Za-z0-9_-]` (and `.` after the first character) as is and
/// writes every other byte as `!XX` (uppercase hex of its UTF-8 bytes), so
/// `u1`, `.u1` and `u1@x` get `u1`, `!2Eu1` and `u1!40x`. The segment is
/// never empty, `.` or `..`, and holds no `/`.
///
/// Past [`MAX_OWNER_BYTES`], it is the encoding's head (cut between escapes),
/// `!!`, and the SHA-256 of the whole owner in hex: distinct owners still get
/// distinct segments, barring a SHA-256 collision.
///
/// Owners whose segment changed with this encoding (anything outside
/// `[A-Za-z0-9._-]`, or starting with `.`) keep their existing objects where
/// they are: uploads are found by id in the table, never by prefix.
pub fn owner_segment(owner: &str) -> String {
    if owner.is_empty() {
        return EMPTY_OWNER.to_string();
    }
    let mut out = String::with_capacity(owner.len());
    for (i, b) in owner.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "{}{b:02X}", char::from(ESCAPE));
        }
        if out.len() > 3 * MAX_OWNER_BYTES {
            break; // Long past the cap: only the head is kept anyway.
        }
    }
    if out.len() <= MAX_OWNER_BYTES {
        return out;
    }
    let digest = hex::encode(Sha256::digest(owner.as_bytes()));
    let mut end = MAX_OWNER_BYTES - HASHED.len() - digest.len();
    // The encoding is ASCII; step back so no `!XX` escape is split.
    let bytes = out.as_bytes();
    if bytes[end - 1] == ESCAPE {
        end -= 1;
    } else if bytes[end - 2] == ESCAPE {
        end -= 2;
    }
    format!("{}{HASHED}{digest}", &out[..end])
}

/// Builds the key, shortening the filename (keeping its extension) to fit
/// 1,024 bytes, and checks the result with [`key_problem`].
pub fn build_key(prefix: &str, owner: &str, id: &str, filename: &str) -> Result<String> {
    let base = format!("{prefix}{}/{id}/", owner_segment(owner));
    let room = MAX_KEY_BYTES
        .checked_sub(base.len())
        .filter(|r| *r >= 16)
        .ok_or_else(|| Error::Config("key prefix leaves no room for filenames".into()))?;
    let key = base + &fit(filename, room);
    match key_problem(&key) {
        None => Ok(key),
        Some(problem) => Err(Error::internal(format!("key {key:?} {problem}"))),
    }
}

/// The unique id segment of a key [`build_key`] made under `prefix`
/// (`{prefix}{owner}/{id}/{filename}`), or `None` for any other key.
pub fn id_segment<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    let mut segments = key.strip_prefix(prefix)?.splitn(3, '/');
    let (_owner, id, filename) = (segments.next()?, segments.next()?, segments.next()?);
    (!id.is_empty() && !filename.is_empty() && !filename.contains('/')).then_some(id)
}

/// Why `key` is not one Partwise may write, or `None` if it is: at most
/// 1,024 bytes, no empty, `.` or `..` segment (clients and proxies normalize
/// those, so a presigned URL would point elsewhere), no control or invisible
/// character.
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Some("is empty or longer than 1,024 bytes");
    }
    if key
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Some("has an empty, `.` or `..` segment");
    }
    if key.chars().any(is_invisible) {
        return Some("has a control or invisible character");
    }
    None
}

/// `name` cut to at most `max` bytes on a char boundary, keeping a short
/// extension when it leaves the stem at least half the room.
fn fit(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let ext = name
        .rfind('.')
        .filter(|i| *i > 0)
        .map(|i| &name[i..])
        .filter(|e| e.len() <= 16 && e.len() * 2 <= max)
        .unwrap_or("");
    let mut end = (max - ext.len()).min(name.len() - ext.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    // The stem starts with neither a dot nor a space (sanitized), so it stays non-empty.
    format!("{}{ext}", name[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an owner segment decodes to: the owner itself, or (when hashed)
    /// the head's bytes and the digest. `None` if it is not a segment we write.
    #[derive(Debug, PartialEq)]
    enum Decoded {
        Full(Vec<u8>),
        Hashed(Vec<u8>, String),
    }

    fn decode(seg: &str) -> Option<Decoded> {
        if seg == EMPTY_OWNER {
            return Some(Decoded::Full(Vec::new()));
        }
        let (head, digest) = match seg.split_once(HASHED) {
            Some((h, d)) => (h, Some(d)),
            None => (seg, None),
        };
        let b = head.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == ESCAPE {
                let hex = head.get(i + 1..i + 3)?;
                if hex.bytes().any(|h| h.is_ascii_lowercase()) {
                    return None; // Not canonical.
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        Some(match digest {
            None => Decoded::Full(out),
            Some(d) => Decoded::Hashed(out, d.to_string()),
        })
    }

    #[test]
    fn id_segments_are_read_back() {
        let key = build_key("uploads/", "a/b", "0193ab", "f.txt").unwrap();
        assert_eq!(id_segment(&key, "uploads/"), Some("0193ab"));
        assert_eq!(id_segment(&key, "other/"), None);
        assert_eq!(id_segment("uploads/a/0193ab", "uploads/"), None);
        assert_eq!(id_segment("uploads/a/x/y/z", "uploads/"), None);
    }

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
            assert_eq!(key_problem(&key), None, "{key}");
        }
    }

    #[test]
    fn names_that_clean_to_dot_segments_are_refused() {
        for bad in [
            ". ..",
            ". .",
            "x/. ..",
            " . . . ",
            ".\u{00AD}.",
            "a\\.\u{2060}.",
        ] {
            assert!(sanitize_filename(bad).is_err(), "{bad:?}");
        }
        assert_eq!(sanitize_filename(". .. a").unwrap(), "a");
        assert_eq!(sanitize_filename("a. ..").unwrap(), "a. ..");
    }

    #[test]
    fn control_bidi_and_default_ignorable_characters_are_removed() {
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
        // Soft hyphen, Arabic letter mark, word joiner, variation selector, Hangul filler.
        assert_eq!(
            sanitize_filename("a\u{00AD}b\u{061C}c\u{2060}d\u{FE0F}e\u{3164}.txt").unwrap(),
            "abcde.txt"
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
    fn owner_segments_are_readable_and_distinct() {
        assert_eq!(owner_segment("alice"), "alice");
        assert_eq!(
            owner_segment("3f6d2a9c-5b1e-4c7a-9e2f-8d4b6a1c0e57"),
            "3f6d2a9c-5b1e-4c7a-9e2f-8d4b6a1c0e57"
        );
        assert_eq!(owner_segment("a.b_c-d"), "a.b_c-d");
        assert_eq!(
            owner_segment("arn:aws:iam::123:user/bob"),
            "arn!3Aaws!3Aiam!3A!3A123!3Auser!2Fbob"
        );
        assert_eq!(owner_segment("bob@example.com"), "bob!40example.com");
        assert_eq!(owner_segment(".."), "!2E.");
        assert_eq!(owner_segment("."), "!2E");
        assert_eq!(owner_segment(""), "!");
        assert_eq!(owner_segment("!"), "!21");
        assert_eq!(owner_segment("é"), "!C3!A9");
        let groups = [
            &["u1", ".u1", "..u1"][..],
            &["u1/x", "u1@x", "u1|x", "u1_x"],
        ];
        for group in groups {
            let segs: std::collections::BTreeSet<String> =
                group.iter().map(|o| owner_segment(o)).collect();
            assert_eq!(segs.len(), group.len(), "{group:?} -> {segs:?}");
        }
    }

    #[test]
    fn long_owner_segments_end_with_the_owners_hash() {
        let a = "x".repeat(200);
        let b = "x".repeat(201);
        let (sa, sb) = (owner_segment(&a), owner_segment(&b));
        assert_ne!(sa, sb);
        assert_eq!(sa.len(), MAX_OWNER_BYTES);
        let digest = hex::encode(Sha256::digest(a.as_bytes()));
        assert_eq!(sa, format!("{}!!{digest}", "x".repeat(62)));
        // The cut never splits an escape.
        for pad in 0..4 {
            let o = "y".repeat(pad) + &"/".repeat(100);
            let seg = owner_segment(&o);
            assert!(seg.len() <= MAX_OWNER_BYTES, "{seg}");
            assert!(matches!(decode(&seg), Some(Decoded::Hashed(..))), "{seg}");
        }
    }

    mod properties {
        //! Property tests: keys stay inside the caller's prefix and valid for S3,
        //! and owner segments are injective, whatever the input.
        use super::super::*;
        use super::{Decoded, decode};
        use proptest::prelude::*;

        /// Strings rich in what breaks keys: separators, dots, spaces, invisible
        /// and troublesome characters, multi-byte text, and anything at all.
        fn hostile() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just(".".to_string()),
                Just("..".to_string()),
                Just("/".to_string()),
                Just("\\".to_string()),
                Just(" ".to_string()),
                Just("\t".to_string()),
                Just("!".to_string()),
                Just("%2F".to_string()),
                Just("\u{00AD}".to_string()),
                Just("\u{061C}".to_string()),
                Just("\u{2060}".to_string()),
                Just("\u{202E}".to_string()),
                Just("\u{FEFF}".to_string()),
                Just("é".to_string()),
                Just("\u{0}".to_string()),
                "[a-z]{1,3}",
                any::<char>().prop_map(String::from),
            ];
            prop_oneof![
                prop::collection::vec(piece, 0..40).prop_map(|v| v.concat()),
                any::<String>(),
                ".{0,1500}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            #[test]
            fn sanitized_keys_stay_in_the_owners_prefix_and_are_valid(
                owner in hostile(),
                name in hostile(),
            ) {
                let Ok(filename) = sanitize_filename(&name) else {
                    return Ok(()); // Refused as a 400: fine.
                };
                prop_assert!(!filename.contains(['/', '\\']));
                prop_assert!(!filename.starts_with(['.', ' ']));
                let key = build_key("uploads/", &owner, "0193c4a2e5b87d41", &filename).unwrap();
                let owner_prefix = format!("uploads/{}/0193c4a2e5b87d41/", owner_segment(&owner));
                prop_assert!(key.starts_with(&owner_prefix), "{key}");
                prop_assert_eq!(key[owner_prefix.len()..].matches('/').count(), 0);
                prop_assert_eq!(key_problem(&key), None, "{}", key);
            }

            #[test]
            fn owner_segments_are_safe_and_decode_to_their_owner(owner in hostile()) {
                let seg = owner_segment(&owner);
                prop_assert!(!seg.is_empty() && seg.len() <= MAX_OWNER_BYTES, "{seg}");
                prop_assert!(seg != "." && seg != ".." && !seg.starts_with('.'), "{seg}");
                prop_assert!(
                    seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"!._-".contains(&b)),
                    "{seg}"
                );
                match decode(&seg) {
                    Some(Decoded::Full(bytes)) => prop_assert_eq!(bytes, owner.as_bytes()),
                    Some(Decoded::Hashed(head, digest)) => {
                        prop_assert!(owner.as_bytes().starts_with(&head));
                        prop_assert_eq!(digest, hex::encode(Sha256::digest(owner.as_bytes())));
                    }
                    None => prop_assert!(false, "{seg} does not decode"),
                }
            }

            #[test]
            fn different_owners_get_different_segments(
                a in hostile(),
                b in hostile(),
                edit in any::<(usize, char)>(),
            ) {
                // Near-misses too: `b` also as `a` with one character changed.
                let mut near: Vec<char> = a.chars().collect();
                if !near.is_empty() {
                    let i = edit.0 % near.len();
                    near[i] = edit.1;
                }
                let near: String = near.into_iter().collect();
                for other in [b, near, format!(".{a}"), format!("{a}.")] {
                    if other != a {
                        prop_assert_ne!(owner_segment(&a), owner_segment(&other));
                    }
                }
            }

            #[test]
            fn sanitizing_never_panics(name in any::<String>()) {
                let _ = sanitize_filename(&name);
            }
        }
    }
}
