//! Stage "find or start": the file's unfinished upload (this machine's record
//! first, then the caller's ACTIVE uploads whose stored fingerprint is this
//! file's), or a new upload. A record of an older version of the file names
//! an upload that can never complete: it is aborted, and the user told.

use super::Shared;
use super::plan::Plan;
use crate::api::{HeldPart, Listed};
use crate::error::{CliError, Result};
use crate::events::Event;
use crate::source::Source;
use crate::state::{self, Saved};
use std::collections::HashMap;
use tokio::sync::OnceCell;

/// The metadata entry the file's fingerprint is stored under.
pub const FINGERPRINT: &str = "partwise-fingerprint";

/// The upload to carry on with, and the parts S3 holds for it.
#[derive(Debug, Clone)]
pub struct Target {
    pub upload_id: String,
    pub key: String,
    pub plan: Plan,
    /// `Some("CRC32C")` when parts carry signed checksums.
    pub checksum: Option<String>,
    pub held: HashMap<u32, HeldPart>,
}

/// The caller's ACTIVE uploads, listed once per run, when a file first needs them.
#[derive(Default)]
pub struct Listing(OnceCell<Vec<Listed>>);

impl Listing {
    async fn get(&self, shared: &Shared) -> Result<&[Listed]> {
        self.0
            .get_or_try_init(|| async {
                match shared.api.list(Some("ACTIVE"), false).await {
                    Ok(l) => Ok(l.unwrap_or_default()),
                    Err(e @ (CliError::Auth { .. } | CliError::NoToken { .. })) => Err(e),
                    Err(e @ CliError::Unreachable { .. }) => Err(e),
                    // Resuming is a shortcut: a list that fails only costs it.
                    Err(_) => Ok(Vec::new()),
                }
            })
            .await
            .map(Vec::as_slice)
    }
}

/// Where a resumed upload was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    LocalState,
    ServerList,
}

impl Found {
    fn words(self) -> &'static str {
        match self {
            Found::LocalState => "this machine's record",
            Found::ServerList => "the server's list of unfinished uploads",
        }
    }
}

/// The file's upload: resumed when one is found, else started.
pub async fn find_or_start(shared: &Shared, file: usize, src: &Source) -> Result<Target> {
    let fingerprint = src.fingerprint().await?;
    let api = &shared.api;
    let mut candidates: Vec<(Target, Found)> = Vec::new();
    let saved = (!src.stdin).then(|| state::load(api.base(), src)).flatten();
    match saved {
        Some(s) if s.is_of(src) => candidates.push((target_of(&s), Found::LocalState)),
        Some(s) => supersede(shared, src, &s).await,
        None => {}
    }
    if candidates.is_empty() && !src.stdin {
        for u in shared.listing.get(shared).await? {
            if let Some(t) = server_candidate(shared, u, src, &fingerprint).await {
                candidates.push((t, Found::ServerList));
            }
        }
    }
    for (mut target, found) in candidates.into_iter().take(3) {
        if !target.plan.fits(src.size) {
            continue;
        }
        match api.parts(&target.upload_id, &target.key).await {
            Ok(parts) => {
                target.held = parts.into_iter().map(|p| (p.number, p)).collect();
                shared.events.send(Event::Resumed {
                    file,
                    path: src.shown(),
                    upload_id: target.upload_id.clone(),
                    held_parts: target.held.len(),
                    parts: target.plan.part_count,
                    held_bytes: target.held.values().map(|p| p.size).sum(),
                    found_in: found.words(),
                });
                remember(shared, src, &target, &fingerprint);
                return Ok(target);
            }
            // Finished, aborted or swept: nothing to resume there.
            Err(CliError::NotFound(_) | CliError::Conflict(_)) => {
                if found == Found::LocalState {
                    state::forget(api.base(), src);
                }
            }
            Err(e) => return Err(e),
        }
    }
    let target = start(shared, src, &fingerprint).await?;
    remember(shared, src, &target, &fingerprint);
    Ok(target)
}

fn target_of(s: &Saved) -> Target {
    Target {
        upload_id: s.upload_id.clone(),
        key: s.key.clone(),
        plan: Plan {
            part_size: s.part_size,
            part_count: s.part_count,
        },
        checksum: s.checksum_algorithm.clone(),
        held: HashMap::new(),
    }
}

/// An ACTIVE upload of the caller's that is this file's: same name and size
/// (cheap, from the list), then the same fingerprint (stored with it).
async fn server_candidate(
    shared: &Shared,
    u: &Listed,
    src: &Source,
    fingerprint: &str,
) -> Option<Target> {
    let (Some(part_size), Some(part_count)) = (u.part_size, u.part_count) else {
        return None;
    };
    let same_name = u
        .filename
        .as_deref()
        .is_some_and(|f| same_filename(f, &src.name));
    if u.state != "ACTIVE" || u.size != Some(src.size) || !same_name {
        return None;
    }
    let status = shared.api.status(&u.upload_id).await.ok()?;
    let stored = status
        .pointer(&format!("/metadata/{FINGERPRINT}"))
        .and_then(|v| v.as_str())?;
    (stored == fingerprint).then(|| Target {
        upload_id: u.upload_id.clone(),
        key: u.key.clone(),
        plan: Plan {
            part_size,
            part_count,
        },
        checksum: u.checksum_algorithm.clone(),
        held: HashMap::new(),
    })
}

/// The record names an upload of an older version of the file: abort it, so
/// its parts stop costing, and say so.
async fn supersede(shared: &Shared, src: &Source, s: &Saved) {
    let api = &shared.api;
    let said = match api.abort(&s.upload_id, Some(&s.key)).await {
        Ok(_) => format!(
            "{} changed since upload {} of it was started: that upload is aborted (S3 drops its parts), and a new one starts",
            src.shown(),
            short(&s.upload_id)
        ),
        Err(CliError::NotFound(_) | CliError::Conflict(_)) => String::new(),
        Err(e) => format!(
            "{} changed since upload {} of it was started; aborting that upload failed ({e}): run partwise abort {}",
            src.shown(),
            short(&s.upload_id),
            short(&s.upload_id)
        ),
    };
    if !said.is_empty() {
        shared.events.note(said);
    }
    state::forget(api.base(), src);
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn remember(shared: &Shared, src: &Source, t: &Target, fingerprint: &str) {
    if src.stdin {
        return;
    }
    state::save(
        src,
        &Saved {
            api: shared.api.base().to_string(),
            path: src.canonical.clone(),
            size: src.size,
            mtime_nanos: src.mtime_nanos,
            fingerprint: Some(fingerprint.to_string()),
            upload_id: t.upload_id.clone(),
            key: t.key.clone(),
            part_size: t.plan.part_size,
            part_count: t.plan.part_count,
            checksum_algorithm: t.checksum.clone(),
        },
    );
}

/// Starts a new upload, the fingerprint in its metadata; the server's plan is checked, not trusted.
async fn start(shared: &Shared, src: &Source, fingerprint: &str) -> Result<Target> {
    let settings = &shared.settings;
    let mut meta = settings.meta.clone();
    meta.insert(FINGERPRINT.into(), fingerprint.into());
    let init = shared
        .api
        .initiate(
            &src.name,
            &content_type(settings, src),
            src.size,
            settings.part_size,
            true,
            &meta,
        )
        .await?;
    let plan = match (init.part_size, init.part_count) {
        (Some(part_size), Some(part_count)) => Plan {
            part_size,
            part_count,
        },
        _ => {
            return Err(CliError::Other(
                "the API gave no part plan for the upload".into(),
            ));
        }
    };
    if !plan.fits(src.size) {
        return Err(CliError::Other(format!(
            "the API's part plan ({} parts of {} bytes) does not fit {} bytes",
            plan.part_count, plan.part_size, src.size
        )));
    }
    // Older servers do not echo the algorithm: then parts go without checksums.
    let checksum = init
        .checksum_algorithm
        .filter(|a| a.eq_ignore_ascii_case("CRC32C"));
    let upload_id = init
        .upload_id
        .ok_or_else(|| CliError::Other("the API started no multipart upload".into()))?;
    Ok(Target {
        upload_id,
        key: init.key,
        plan,
        checksum,
        held: HashMap::new(),
    })
}

/// `--content-type`, else guessed from the name.
pub fn content_type(settings: &super::Settings, src: &Source) -> String {
    settings.content_type.clone().unwrap_or_else(|| {
        mime_guess::from_path(&src.name)
            .first_or_octet_stream()
            .to_string()
    })
}

/// Whether the server's (cleaned) filename is the local one: the server
/// replaces what a key cannot hold, so compare both cleaned the same way.
fn same_filename(server: &str, local: &str) -> bool {
    let fold = |s: &str| -> String {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || "-. ".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string()
    };
    server == local || fold(server) == fold(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_compare_as_the_server_cleans_them() {
        assert!(same_filename("video.mp4", "video.mp4"));
        assert!(same_filename("a_b.txt", "a:b.txt"));
        assert!(same_filename("my file.txt", "my  file.txt"));
        assert!(!same_filename("a.txt", "b.txt"));
    }
}
