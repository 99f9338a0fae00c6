//! What the user sees: progress bars on a terminal, otherwise (or with
//! `--json`) one JSON line per finished file; notes go to stderr.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// One finished file, as printed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finished {
    pub file: String,
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    /// `{algorithm, type, value}` when the server returned the object's checksum.
    pub checksum: Option<serde_json::Value>,
    pub seconds: f64,
    pub upload_id: Option<String>,
    pub part_size: Option<u64>,
    pub parts_sent: u32,
    pub parts_skipped: u32,
}

/// Bars or JSON lines.
pub struct Output {
    json: bool,
    multi: MultiProgress,
    total: ProgressBar,
}

/// A bar (hidden in JSON mode) that byte counts can go to.
#[derive(Clone)]
pub struct Bar {
    file: ProgressBar,
    total: ProgressBar,
}

impl Bar {
    /// Adds (or with a negative `n`, takes back) bytes sent.
    pub fn add(&self, n: i64) {
        if n >= 0 {
            self.file.inc(n as u64);
            self.total.inc(n as u64);
        } else {
            self.file.dec(n.unsigned_abs());
            self.total.dec(n.unsigned_abs());
        }
    }

    /// Bytes S3 already holds leave the bars' lengths, so rate and ETA count
    /// only what is sent; the message says how much was kept.
    pub fn expect_held(&self, n: u64) {
        self.file
            .set_length(self.file.length().unwrap_or(0).saturating_sub(n));
        self.total
            .set_length(self.total.length().unwrap_or(0).saturating_sub(n));
        self.file
            .set_message(format!("+{} already in S3", human_bytes(n)));
    }

    /// A held part that did not match the file: it is sent after all.
    pub fn unheld(&self, n: u64) {
        self.file.inc_length(n);
        self.total.inc_length(n);
    }

    pub fn set_message(&self, m: String) {
        self.file.set_message(m);
    }

    pub fn finish(&self) {
        self.file.finish_and_clear();
    }
}

const FILE_TEMPLATE: &str = "{prefix:<24!} {bar:28.cyan/blue} {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:<4} {msg}";
const TOTAL_TEMPLATE: &str = "{prefix:<24!.bold} {bar:28.green/blue} {binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:<4} {msg}";

impl Output {
    /// JSON when asked or when stdout is not a terminal.
    pub fn new(json: bool, total_bytes: u64, files: usize) -> Output {
        let json = json || !std::io::stdout().is_terminal();
        let multi = if json {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(8))
        };
        let total = multi.add(ProgressBar::new(total_bytes));
        if let Ok(style) = ProgressStyle::with_template(TOTAL_TEMPLATE) {
            total.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
        }
        total.set_prefix(format!(
            "total ({files} file{})",
            if files == 1 { "" } else { "s" }
        ));
        if !json {
            total.enable_steady_tick(Duration::from_millis(250));
        }
        Output { json, multi, total }
    }

    /// A bar for one file, shown above the total.
    pub fn file(&self, name: &str, size: u64) -> Bar {
        let file = self
            .multi
            .insert_before(&self.total, ProgressBar::new(size));
        if let Ok(style) = ProgressStyle::with_template(FILE_TEMPLATE) {
            file.set_style(style.progress_chars("█▉▊▋▌▍▎▏ "));
        }
        file.set_prefix(name.to_string());
        Bar {
            file,
            total: self.total.clone(),
        }
    }

    /// A line for the user on stderr, above the bars.
    pub fn note(&self, msg: &str) {
        if self.json {
            eprintln!("partwise: {msg}");
        } else {
            let _ = self.multi.suspend(|| {
                let mut err = std::io::stderr();
                writeln!(err, "{msg}")
            });
        }
    }

    /// Reports a finished file.
    pub fn finished(&self, f: &Finished) {
        if self.json {
            if let Ok(line) = serde_json::to_string(f) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            return;
        }
        let rate = if f.seconds > 0.0 {
            f.size as f64 / f.seconds
        } else {
            0.0
        };
        let resumed = if f.parts_skipped > 0 {
            format!(
                "  (resumed: {} of {} parts were already in S3)",
                f.parts_skipped,
                f.parts_skipped + f.parts_sent
            )
        } else {
            String::new()
        };
        let checksum = f
            .checksum
            .as_ref()
            .and_then(|c| {
                Some(format!(
                    "  {} {}",
                    c.get("algorithm")?.as_str()?,
                    c.get("value")?.as_str()?
                ))
            })
            .unwrap_or_default();
        // Two short lines: keys are long, and a wrapped line reads badly.
        let line = format!(
            "✓ {}  {} in {:.1} s, {}/s{}\n    → {}{}",
            f.file,
            human_bytes(f.size),
            f.seconds,
            human_bytes(rate as u64),
            resumed,
            f.key,
            checksum,
        );
        self.multi.suspend(|| println!("{line}"));
    }

    /// Clears the bars (before the final message or an error).
    pub fn done(&self) {
        self.total.finish_and_clear();
        let _ = self.multi.clear();
    }
}

/// `1.5 GiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}
