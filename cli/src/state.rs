//! Local resume state: which upload a file version belongs to, kept under the
//! user's cache directory and keyed by API, canonical path, size and mtime.

use crate::source::Source;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a later run needs to pick the upload up again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub api: String,
    pub path: PathBuf,
    pub size: u64,
    pub upload_id: String,
    pub key: String,
    pub part_size: u64,
    pub part_count: u32,
    pub checksum_algorithm: Option<String>,
}

/// The state folder, or `None` when the system has no cache directory (resume
/// then still works through the API).
pub fn dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "partwise").map(|d| d.cache_dir().join("cli-uploads"))
}

fn file_for(api: &str, src: &Source) -> Option<PathBuf> {
    let id = format!(
        "{api}\n{}\n{}\n{}",
        src.canonical.display(),
        src.size,
        src.mtime_nanos
    );
    Some(dir()?.join(format!("{}.json", hex::encode(Md5::digest(id.as_bytes())))))
}

/// The saved upload of this file version, if any (unreadable state is ignored).
pub fn load(api: &str, src: &Source) -> Option<Saved> {
    let text = std::fs::read_to_string(file_for(api, src)?).ok()?;
    let saved: Saved = serde_json::from_str(&text).ok()?;
    (saved.api == api && saved.size == src.size).then_some(saved)
}

/// Records the upload; failures only cost the local shortcut, so they are ignored.
pub fn save(src: &Source, saved: &Saved) {
    let Some(path) = file_for(&saved.api, src) else {
        return;
    };
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let tmp = path.with_extension("json.tmp");
    if let Ok(text) = serde_json::to_vec_pretty(saved)
        && std::fs::write(&tmp, text).is_ok()
    {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// Forgets the upload of this file version.
pub fn forget(api: &str, src: &Source) {
    if let Some(path) = file_for(api, src) {
        let _ = std::fs::remove_file(path);
    }
}
