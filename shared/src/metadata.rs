//! Uppy's `metadata`, checked and made into S3 user metadata (`x-amz-meta-*`).
//!
//! As Companion does, every entry becomes one user-metadata entry: strings as
//! they are, other JSON values as JSON text, nulls dropped. Keys are HTTP
//! token characters (S3 stores them lower-cased); values hold no control
//! characters; non-ASCII values are stored RFC 2047 encoded, as S3 itself
//! answers them. Key and value bytes together stay under S3's 2 KB limit.

use crate::error::{Error, Result};
use base64::Engine;
use serde_json::Value;
use std::collections::BTreeMap;

/// S3 user metadata: lower-case key → header-safe value.
pub type Metadata = BTreeMap<String, String>;

/// S3's limit on user metadata: key and value bytes of every entry, in total.
pub const MAX_METADATA_BYTES: usize = 2048;

/// Uppy's `metadata` object (absent or null: none) as S3 user metadata, or a
/// 400 that names the entry at fault.
pub fn from_uppy(value: Option<&Value>) -> Result<Metadata> {
    let object = match value {
        None | Some(Value::Null) => return Ok(Metadata::new()),
        Some(Value::Object(o)) => o,
        Some(_) => return Err(Error::bad_request("metadata must be a JSON object")),
    };
    let mut out = Metadata::new();
    for (key, value) in object {
        let text = match value {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        insert(&mut out, key, &text)?;
    }
    check_total(&out)?;
    Ok(out)
}

/// Query parameters in Uppy's `metadata[name]=value` form (for `/s3/params`),
/// one pair per distinct name (repeated values already joined).
pub fn from_query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Metadata> {
    let mut out = Metadata::new();
    for (k, v) in pairs {
        if let Some(name) = k
            .strip_prefix("metadata[")
            .and_then(|n| n.strip_suffix(']'))
        {
            insert(&mut out, name, v)?;
        }
    }
    check_total(&out)?;
    Ok(out)
}

fn insert(out: &mut Metadata, key: &str, value: &str) -> Result<()> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if key.is_empty() || key.len() > MAX_METADATA_BYTES || !key.bytes().all(token) {
        let shown: String = key.chars().take(40).collect();
        return Err(Error::bad_request(format!(
            "metadata key {shown:?} is not a valid S3 metadata name (letters, digits and !#$%&'*+-.^_`|~)"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::bad_request(format!(
            "metadata {key:?} holds control characters"
        )));
    }
    let key = key.to_ascii_lowercase();
    if out.contains_key(&key) {
        return Err(Error::bad_request(format!(
            "metadata {key:?} is given twice (names are case-insensitive)"
        )));
    }
    let value = if value.is_ascii() {
        value.trim().to_string()
    } else {
        format!(
            "=?UTF-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    };
    out.insert(key, value);
    Ok(())
}

fn check_total(m: &Metadata) -> Result<()> {
    let total: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > MAX_METADATA_BYTES {
        return Err(Error::bad_request(format!(
            "metadata is {total} bytes; S3 keeps at most {MAX_METADATA_BYTES}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uppy_metadata_becomes_user_metadata() {
        let m = from_uppy(Some(&json!({
            "name": "site survey.mp4", "type": "video/mp4", "relativePath": null,
            "Project": 42, "tags": ["a", "b"], "caption": "café"
        })))
        .unwrap();
        assert_eq!(m["name"], "site survey.mp4");
        assert_eq!(m["type"], "video/mp4");
        assert!(!m.contains_key("relativepath"));
        assert_eq!(m["project"], "42");
        assert_eq!(m["tags"], r#"["a","b"]"#);
        assert_eq!(m["caption"], "=?UTF-8?B?Y2Fmw6k=?=");
        assert!(from_uppy(None).unwrap().is_empty());
        assert!(from_uppy(Some(&json!(null))).unwrap().is_empty());
    }

    #[test]
    fn bad_metadata_is_a_400() {
        for bad in [
            json!("text"),
            json!([1]),
            json!({"bad key": "x"}),
            json!({"": "x"}),
            json!({"ключ": "x"}),
            json!({"k": "line\nbreak"}),
            json!({"k": "nul\u{0}"}),
            json!({"A": "1", "a": "2"}),
            json!({"k": "x".repeat(MAX_METADATA_BYTES)}),
        ] {
            let err = from_uppy(Some(&bad)).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
        let many: serde_json::Map<String, Value> = (0..300)
            .map(|i| (format!("k{i}"), json!("value")))
            .collect();
        assert!(from_uppy(Some(&Value::Object(many))).is_err());
    }

    #[test]
    fn query_form_is_read_too() {
        let m = from_query([
            ("filename", "a.txt"),
            ("metadata[name]", "a.txt"),
            ("metadata[Owner]", "ann"),
        ])
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["owner"], "ann");
        assert!(from_query([("metadata[a b]", "x")]).is_err());
    }
}
