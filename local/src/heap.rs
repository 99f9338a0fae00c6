//! The process's live heap, as the counting global allocator of `partwise-local` sees it.
//!
//! A process's resident memory keeps what its allocator has taken from the
//! system, even after the program has freed it, so RSS under load climbs to
//! the allocator's high-water mark and a leak cannot be told from it. The
//! bytes handed out and not yet given back can: `serve --heap-stats FILE`
//! writes them for the load bench. Only `partwise-local`'s binary installs
//! the counting allocator; anywhere else [`live_bytes`] is 0.

use std::path::PathBuf;
use std::time::Duration;

/// Bytes allocated and not yet freed, process-wide.
pub fn live_bytes() -> u64 {
    // A realloc's growth is already in `bytes_allocated` and its shrinking in
    // `bytes_deallocated`; `bytes_reallocated` is the same change again.
    let s = stats_alloc::INSTRUMENTED_SYSTEM.stats();
    s.bytes_allocated.saturating_sub(s.bytes_deallocated) as u64
}

/// Writes [`live_bytes`] to `path` (replaced whole, so a reader never sees a
/// half-written number) every 250 ms until the task is aborted.
pub fn write_every_quarter_second(path: PathBuf) -> tokio::task::JoinHandle<()> {
    let tmp = path.with_extension("tmp");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tick.tick().await;
            let written = tokio::fs::write(&tmp, format!("{}\n", live_bytes())).await;
            if written.is_ok() {
                let _ = tokio::fs::rename(&tmp, &path).await;
            }
        }
    })
}

/// The number a [`write_every_quarter_second`] file holds.
pub fn read(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
