//! Finding the unfinished upload of a file: the local state first, then the
//! caller's ACTIVE uploads on the server (same filename and size), so a resume
//! also works from another machine. Parts S3 holds are only trusted after they
//! are checked against the local file (see `upload`).

use crate::api::{Api, HeldPart};
use crate::error::{CliError, Result};
use crate::source::{Plan, Source};
use crate::state::{self, Saved};
use std::collections::HashMap;

/// An upload to carry on with.
#[derive(Debug, Clone)]
pub struct Target {
    pub upload_id: String,
    pub key: String,
    pub plan: Plan,
    /// `Some("CRC32C")` when parts carry signed checksums.
    pub checksum: Option<String>,
}

impl Target {
    pub fn saved(&self, api: &Api, src: &Source) -> Saved {
        Saved {
            api: api.base().to_string(),
            path: src.canonical.clone(),
            size: src.size,
            upload_id: self.upload_id.clone(),
            key: self.key.clone(),
            part_size: self.plan.part_size,
            part_count: self.plan.part_count,
            checksum_algorithm: self.checksum.clone(),
        }
    }
}

/// Where a resumed upload was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    LocalState,
    ServerList,
}

/// The upload to resume and the parts S3 holds for it, if there is one.
pub async fn find(
    api: &Api,
    src: &Source,
) -> Result<Option<(Target, Found, HashMap<u32, HeldPart>)>> {
    let mut candidates: Vec<(Target, Found)> = Vec::new();
    if let Some(s) = state::load(api.base(), src) {
        candidates.push((
            Target {
                upload_id: s.upload_id,
                key: s.key,
                plan: Plan {
                    part_size: s.part_size,
                    part_count: s.part_count,
                },
                checksum: s.checksum_algorithm,
            },
            Found::LocalState,
        ));
    }
    let listed = match api.list(Some("ACTIVE"), false).await {
        Ok(l) => l.unwrap_or_default(),
        Err(e @ (CliError::Auth { .. } | CliError::Unreachable { .. })) => return Err(e),
        // Resuming is a shortcut: a list that fails only costs it.
        Err(_) => Vec::new(),
    };
    for u in listed {
        let (Some(part_size), Some(part_count)) = (u.part_size, u.part_count) else {
            continue;
        };
        let same_name = u
            .filename
            .as_deref()
            .is_some_and(|f| same_filename(f, &src.name));
        if u.state == "ACTIVE"
            && u.size == Some(src.size)
            && same_name
            && !candidates.iter().any(|(t, _)| t.upload_id == u.upload_id)
        {
            candidates.push((
                Target {
                    upload_id: u.upload_id,
                    key: u.key,
                    plan: Plan {
                        part_size,
                        part_count,
                    },
                    checksum: u.checksum_algorithm,
                },
                Found::ServerList,
            ));
        }
    }
    for (target, found) in candidates.into_iter().take(3) {
        if !target.plan.fits(src.size) {
            continue;
        }
        match api.parts(&target.upload_id, &target.key).await {
            Ok(parts) => {
                let held = parts.into_iter().map(|p| (p.number, p)).collect();
                return Ok(Some((target, found, held)));
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
    Ok(None)
}

/// The server cleans filenames (see the API's `keys`); compare loosely, since
/// every part is checked against the file before it is kept anyway.
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
