//! Local resume records: which upload a local file belongs to, kept under the
//! user's cache directory, one per API and canonical path, each with a lock
//! so two runs never share an upload.

use crate::error::{CliError, Result};
use crate::source::Source;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;

/// What a later run needs to pick the upload up again, and the file version it is of.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Saved {
    pub api: String,
    pub path: PathBuf,
    pub size: u64,
    #[serde(default)]
    pub mtime_nanos: u128,
    #[serde(default)]
    pub fingerprint: Option<String>,
    pub upload_id: String,
    pub key: String,
    pub part_size: u64,
    pub part_count: u32,
    pub checksum_algorithm: Option<String>,
}

impl Saved {
    /// Whether the record is of this version of the file.
    pub fn is_of(&self, src: &Source) -> bool {
        self.size == src.size && self.mtime_nanos == src.mtime_nanos
    }
}

/// The state folder, or `None` when the system has no cache directory (resume
/// then still works through the API).
pub fn dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "partwise").map(|d| d.cache_dir().join("cli-uploads"))
}

fn stem(api: &str, src: &Source) -> Option<PathBuf> {
    let id = format!("{api}\n{}", src.canonical.display());
    Some(dir()?.join(hex::encode(Md5::digest(id.as_bytes()))))
}

fn file_for(api: &str, src: &Source) -> Option<PathBuf> {
    stem(api, src).map(|s| s.with_extension("json"))
}

/// The saved upload of this file (any version), if any (unreadable state is ignored).
pub fn load(api: &str, src: &Source) -> Option<Saved> {
    let text = std::fs::read_to_string(file_for(api, src)?).ok()?;
    let saved: Saved = serde_json::from_str(&text).ok()?;
    (saved.api == api).then_some(saved)
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

/// Forgets the upload of this file.
pub fn forget(api: &str, src: &Source) {
    if let Some(path) = file_for(api, src) {
        let _ = std::fs::remove_file(path);
    }
}

/// The lock on a file's record, held while this run uploads it (released on drop,
/// and by the kernel when the process dies, so a killed run never leaves it stuck).
pub struct Lock {
    _file: File,
}

/// Takes the file's lock, or says which run holds it. Without a cache
/// directory there is nothing to lock, and nothing is refused.
pub fn lock(api: &str, src: &Source) -> Result<Option<Lock>> {
    let Some(path) = stem(api, src).map(|s| s.with_extension("lock")) else {
        return Ok(None);
    };
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let Ok(mut file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    else {
        return Ok(None);
    };
    // An advisory lock the OS drops when the process ends, however it ends.
    if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        return Err(CliError::Busy {
            path: src.path.clone(),
            pid: if pid.trim().is_empty() {
                "unknown".into()
            } else {
                pid.trim().to_string()
            },
        });
    }
    let _ = file.set_len(0);
    let _ = file.rewind();
    let _ = write!(file, "{}", std::process::id());
    let _ = file.flush();
    Ok(Some(Lock { _file: file }))
}
