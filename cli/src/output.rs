//! What the user sees of an upload, as one observer of the pipeline's events:
//! on a terminal, a bar per file in flight and a total, laid out for the
//! terminal's width so no line wraps; otherwise (or with `--json`) one JSON
//! line per finished file. Notes go to stderr.

use crate::events::{Event, Finished, Observer, Service, Why, clock};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Quiet,
    Normal,
    Verbose,
}

/// Bars or JSON lines.
pub struct Output {
    json: bool,
    level: Level,
    width: usize,
    multi: MultiProgress,
    total: ProgressBar,
    files: Mutex<HashMap<usize, ProgressBar>>,
    /// The outage being retried through, if any: the total bar says so.
    outage: Mutex<Option<(Service, Why, Instant)>>,
    /// Held by whatever draws (an event, the outage clock) and by `done`:
    /// events still arriving from a stopped run's connections cannot draw
    /// between `done`'s clearing and its last lines.
    draw: Mutex<()>,
    /// While bars are drawn on a terminal (see [`QuietInterrupt`]).
    quiet_interrupt: Mutex<Option<QuietInterrupt>>,
    stop: Arc<AtomicBool>,
    sent: AtomicU64,
    held: AtomicU64,
    count: usize,
    started: Instant,
}

const CHARS: &str = "█▉▊▋▌▍▎▏ ";

/// The bar layouts, by terminal width: (name width, file bar, total bar).
/// Lines stop two columns short of the width: a full line would wrap when
/// the terminal echoes `^C` after it, and the bars would be redrawn a line
/// lower, the old ones left behind.
fn layout(width: usize) -> (usize, String, String) {
    let (name, rest, rest_len) = if width >= 120 {
        (
            28,
            "{binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12} ETA {eta:<4} {msg:<22!}",
            66,
        )
    } else if width >= 80 {
        (
            20,
            "{binary_bytes:>10}/{binary_total_bytes:<10} {binary_bytes_per_sec:>12} {eta:>4}",
            39,
        )
    } else {
        (14, "{percent:>3}% {binary_bytes_per_sec:>12}", 17)
    };
    let bar = width.saturating_sub(name + 2 + rest_len + ECHO_ROOM).max(5);
    (
        name,
        format!("{{prefix:<{name}}} {{bar:{bar}.cyan/blue}} {rest}"),
        format!("{{prefix:<{name}.bold}} {{bar:{bar}.green/blue}} {rest}"),
    )
}

/// Columns left free at the end of a bar line (for the terminal's `^C`).
const ECHO_ROOM: usize = 2;

/// The terminal's width in columns (80 when it cannot be told).
pub fn term_width() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ fills a winsize we own; stdout's descriptor is only read.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0
            && ws.ws_col > 0
        {
            return ws.ws_col as usize;
        }
    }
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(80)
}

/// While bars are drawn, Ctrl-C neither echoes `^C` nor flushes the
/// terminal's output queue (ECHOCTL off, NOFLSH on), restored when dropped:
/// the echo lands after the bars, and the next draw (and the last clear)
/// then start a line too low, leaving an old bar on the screen; a flush
/// would drop half of a redraw on its way, with the same effect.
struct QuietInterrupt(Option<libc::termios>);

impl QuietInterrupt {
    fn new() -> QuietInterrupt {
        // SAFETY: tcgetattr/tcsetattr on standard input with a termios we own;
        // a descriptor that is not a terminal fails and nothing changes.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::isatty(libc::STDIN_FILENO) != 1
                || libc::tcgetattr(libc::STDIN_FILENO, &mut t) != 0
            {
                return QuietInterrupt(None);
            }
            let saved = t;
            t.c_lflag &= !libc::ECHOCTL;
            t.c_lflag |= libc::NOFLSH;
            if libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &t) != 0 {
                return QuietInterrupt(None);
            }
            QuietInterrupt(Some(saved))
        }
    }
}

impl Drop for QuietInterrupt {
    fn drop(&mut self) {
        if let Some(saved) = self.0.take() {
            // SAFETY: restores the settings read in `new` on the same descriptor.
            unsafe {
                libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &saved);
            }
        }
    }
}

/// `name` in at most `max` characters, the middle given up for an ellipsis
/// (the extension stays readable).
pub fn fit(name: &str, max: usize) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= max || max < 4 {
        return chars.into_iter().take(max.max(1)).collect();
    }
    let tail = (max - 1) / 2;
    let head = max - 1 - tail;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// A path in at most `max` characters: whole, else its last components
/// after `…/`, else its file name [`fit`] (what tells files apart is at the end).
pub fn fit_path(path: &str, max: usize) -> String {
    if path.chars().count() <= max {
        return path.to_string();
    }
    let parts: Vec<&str> = path.split('/').collect();
    for from in 1..parts.len() {
        let tail = format!("…/{}", parts[from..].join("/"));
        if tail.chars().count() <= max {
            return tail;
        }
    }
    fit(parts.last().copied().unwrap_or(path), max)
}

impl Output {
    /// JSON when asked or when stdout is not a terminal.
    pub fn new(json: bool, level: Level, total_bytes: u64, files: usize) -> Arc<Output> {
        let json = json || !std::io::stdout().is_terminal();
        let bars = !json && level != Level::Quiet;
        let multi = if bars {
            MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(8))
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        let width = term_width();
        let total = multi.add(ProgressBar::new(total_bytes));
        let (_, _, tpl) = layout(width);
        if let Ok(style) = ProgressStyle::with_template(&tpl) {
            total.set_style(style.progress_chars(CHARS));
        }
        total.set_prefix(format!(
            "total ({files} file{})",
            if files == 1 { "" } else { "s" }
        ));
        if bars {
            total.enable_steady_tick(Duration::from_millis(250));
        }
        let out = Arc::new(Output {
            json,
            level,
            width,
            multi,
            total,
            files: Mutex::new(HashMap::new()),
            outage: Mutex::new(None),
            draw: Mutex::new(()),
            quiet_interrupt: Mutex::new(bars.then(QuietInterrupt::new)),
            stop: Arc::new(AtomicBool::new(false)),
            sent: AtomicU64::new(0),
            held: AtomicU64::new(0),
            count: files,
            started: Instant::now(),
        });
        if bars {
            // The outage clock moves each second even when no byte does.
            let weak = Arc::downgrade(&out);
            let stop = out.stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(500));
                    match weak.upgrade() {
                        Some(o) => {
                            let _draw = o.draw.lock().unwrap_or_else(|e| e.into_inner());
                            o.show_outage();
                        }
                        None => break,
                    }
                }
            });
        }
        out
    }

    fn show_outage(&self) {
        // Called with `draw` held; after `done`, nothing is drawn.
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        let outage = *self.outage.lock().unwrap_or_else(|e| e.into_inner());
        let (name, _, tpl) = layout(self.width);
        match outage {
            Some((service, why, since)) => {
                let text = format!(
                    "retrying ({}, {})",
                    why.words(service),
                    clock(since.elapsed().as_secs())
                );
                if let Ok(style) =
                    ProgressStyle::with_template(&format!("{{prefix:<{name}.bold}} {{msg}}"))
                {
                    self.total.set_style(style);
                }
                self.total
                    .set_message(fit(&text, self.width.saturating_sub(name + 1 + ECHO_ROOM)));
            }
            None => {
                if let Ok(style) = ProgressStyle::with_template(&tpl) {
                    self.total.set_style(style.progress_chars(CHARS));
                }
                self.total.set_message("");
            }
        }
    }

    fn note(&self, msg: &str) {
        if self.level == Level::Quiet {
            return;
        }
        if self.json {
            eprintln!("partwise: {msg}");
        } else {
            self.multi.suspend(|| {
                let _ = writeln!(std::io::stderr(), "{msg}");
            });
        }
    }

    fn bar(&self, file: usize) -> Option<ProgressBar> {
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&file)
            .cloned()
    }

    fn finished(&self, f: &Finished) {
        self.sent.fetch_add(f.bytes_sent, Ordering::Relaxed);
        if self.json {
            if let Ok(line) = serde_json::to_string(f) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            return;
        }
        if self.level == Level::Quiet {
            return;
        }
        let held = f.size.saturating_sub(f.bytes_sent);
        self.held.fetch_add(held, Ordering::Relaxed);
        if self.count > 4 && held == 0 && self.level != Level::Verbose {
            // More than a few files: one line each, the path (its end kept: the name
            // tells files apart) and the size. Keys and checksums: `--json`
            // or `-v`; `partwise ls` lists them later.
            let size = human_bytes(f.size);
            let room = self.width.saturating_sub(size.chars().count() + 5);
            let line = format!("✓ {}  {size}", fit_path(&f.file, room));
            self.multi.suspend(|| println!("{line}"));
            return;
        }
        let rate = if f.seconds > 0.0 {
            f.bytes_sent as f64 / f.seconds
        } else {
            0.0
        };
        let amount = if held > 0 {
            format!(
                "{} sent, {} already in S3,",
                human_bytes(f.bytes_sent),
                human_bytes(held)
            )
        } else {
            human_bytes(f.size)
        };
        let tail = format!(
            "  {amount} in {:.1} s, {}/s",
            f.seconds,
            human_bytes(rate as u64)
        );
        let room = self.width.saturating_sub(tail.chars().count() + 2);
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
        // Short lines: keys are long, and a wrapped line reads badly. The key
        // stays whole (it is to be copied); the checksum goes on a line of
        // its own when the two do not fit together.
        let key_line = format!("    → {}{checksum}", f.key);
        let key_line = if key_line.chars().count() + ECHO_ROOM > self.width && !checksum.is_empty()
        {
            format!("    → {}\n     {checksum}", f.key)
        } else {
            key_line
        };
        let line = format!("✓ {}{tail}\n{key_line}", fit(&f.file, room));
        self.multi.suspend(|| println!("{line}"));
    }

    /// Ends the bars: cleared, then after success the run's total, after a
    /// failure or Ctrl-C where each unfinished file stopped and what was sent.
    pub fn done(&self, ok: bool) {
        let _draw = self.draw.lock().unwrap_or_else(|e| e.into_inner());
        self.stop.store(true, Ordering::Relaxed);
        drop(
            self.quiet_interrupt
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take(),
        );
        // Where each unfinished file stopped, read before the bars go: they
        // are cleared, and that said plainly (bars left behind were drawn
        // twice, or lost, when the run stopped between two draws).
        let mut bars: Vec<(usize, ProgressBar)> = self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        bars.sort_by_key(|(file, _)| *file);
        let mut lines: Vec<String> = bars
            .iter()
            .map(|(_, b)| {
                let of = b.length().unwrap_or(0);
                format!(
                    "{}  stopped at {}/{}",
                    b.prefix(),
                    human_bytes(b.position()),
                    human_bytes(of)
                )
            })
            .collect();
        lines.push(format!(
            "{}  {}/{} sent",
            self.total.prefix(),
            human_bytes(self.total.position()),
            human_bytes(self.total.length().unwrap_or(0))
        ));
        for (_, b) in bars {
            b.finish_and_clear();
        }
        self.total.disable_steady_tick();
        self.total.finish_and_clear();
        let _ = self.multi.clear();
        // Nothing reaches the terminal after this: a draw still on its way
        // (a tick, a last chunk reported) would move up over what follows.
        self.multi.set_draw_target(ProgressDrawTarget::hidden());
        if self.json || self.level == Level::Quiet {
            return;
        }
        if !ok {
            println!("{}", lines.join("\n"));
        } else if self.count > 1 {
            let sent = self.sent.load(Ordering::Relaxed);
            let held = self.held.load(Ordering::Relaxed);
            let secs = self.started.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { sent as f64 / secs } else { 0.0 };
            let held = if held > 0 {
                format!(" ({} already in S3)", human_bytes(held))
            } else {
                String::new()
            };
            println!(
                "{} files: {} sent{held} in {secs:.1} s, {}/s",
                self.count,
                human_bytes(sent),
                human_bytes(rate as u64)
            );
        }
    }
}

impl Observer for Output {
    fn on(&self, e: Event) {
        // After `done`, nothing is drawn: a stopped run's connections can
        // still report a chunk or two, which would draw cleared bars again.
        let _draw = self.draw.lock().unwrap_or_else(|e| e.into_inner());
        if self.stop.load(Ordering::Relaxed) {
            return;
        }
        match e {
            Event::Started { file, name, size } => {
                if self.json || self.level == Level::Quiet {
                    return;
                }
                let (width, tpl, _) = layout(self.width);
                let bar = self
                    .multi
                    .insert_before(&self.total, ProgressBar::new(size));
                if let Ok(style) = ProgressStyle::with_template(&tpl) {
                    bar.set_style(style.progress_chars(CHARS));
                }
                bar.set_prefix(fit(&name, width));
                self.files
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(file, bar);
            }
            Event::Resumed {
                file,
                path,
                upload_id,
                held_parts,
                parts,
                held_bytes,
                found_in,
            } => {
                // Three short lines: the path and the id are long, and a note
                // that wraps under the bars reads badly.
                self.note(&format!(
                    "resuming {}\n  {held_parts} of {parts} parts ({}) already in S3, each checked before it is kept\n  (upload {upload_id},\n   found in {found_in})",
                    fit(&path, self.width.saturating_sub(10).max(12)),
                    human_bytes(held_bytes)
                ));
                // Held bytes leave the bars' lengths: rate and ETA count only what is sent.
                if let Some(b) = self.bar(file) {
                    b.set_length(b.length().unwrap_or(0).saturating_sub(held_bytes));
                    b.set_message(format!("+{} in S3", human_bytes(held_bytes)));
                }
                self.total
                    .set_length(self.total.length().unwrap_or(0).saturating_sub(held_bytes));
            }
            Event::Unheld { file, bytes } => {
                if let Some(b) = self.bar(file) {
                    b.inc_length(bytes);
                }
                self.total.inc_length(bytes);
            }
            Event::Sent { file, bytes } => {
                let bar = self.bar(file);
                if bytes >= 0 {
                    if let Some(b) = bar {
                        b.inc(bytes as u64);
                    }
                    self.total.inc(bytes as u64);
                } else {
                    if let Some(b) = bar {
                        b.dec(bytes.unsigned_abs());
                    }
                    self.total.dec(bytes.unsigned_abs());
                }
            }
            Event::Completing { file } => {
                if let Some(b) = self.bar(file) {
                    b.set_message("completing");
                }
            }
            Event::Finished { file, done } => {
                if let Some(b) = self
                    .files
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&file)
                {
                    b.finish_and_clear();
                    self.multi.remove(&b);
                }
                self.finished(&done);
            }
            Event::Retrying {
                service,
                why,
                since,
                reason,
            } => {
                let mut o = self.outage.lock().unwrap_or_else(|e| e.into_inner());
                if o.is_none() || self.level == Level::Verbose {
                    let first = o.is_none();
                    *o = Some((service, why, since));
                    drop(o);
                    if self.level == Level::Verbose || (first && self.json) {
                        self.note(&format!(
                            "retrying ({}, {}): {reason}",
                            why.words(service),
                            clock(since.elapsed().as_secs())
                        ));
                    }
                    self.show_outage();
                }
            }
            Event::Recovered { service } => {
                let mut o = self.outage.lock().unwrap_or_else(|e| e.into_inner());
                if o.is_some_and(|(s, _, _)| s == service) {
                    *o = None;
                    drop(o);
                    if self.level == Level::Verbose {
                        self.note(&format!("{} answers again", service.name()));
                    }
                    self.show_outage();
                }
            }
            Event::Note(m) => self.note(&m),
        }
    }
}

/// `1.5 GiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_their_end() {
        let p = "tree/photos/IMG_0077-holiday-at-the-lake.jpg";
        assert_eq!(fit_path(p, 80), p);
        assert_eq!(fit_path(p, 40), "…/IMG_0077-holiday-at-the-lake.jpg");
        let f = fit_path(p, 20);
        assert!(f.starts_with("IMG_0") && f.ends_with(".jpg"), "{f}");
        assert_eq!(f.chars().count(), 20);
    }

    #[test]
    fn names_fit_with_an_ellipsis() {
        assert_eq!(fit("short.bin", 20), "short.bin");
        let f = fit("a-very-long-file-name-indeed.mp4", 14);
        assert_eq!(f.chars().count(), 14);
        assert!(f.contains('…') && f.ends_with(".mp4"), "{f}");
    }

    #[test]
    fn layouts_leave_room_for_a_bar_at_each_width() {
        for w in [60, 80, 100, 120, 200] {
            let (name, file, total) = layout(w);
            // Fixed parts: the name, spaces and the fields after the bar.
            let fixed = name
                + 2
                + if w >= 120 {
                    66
                } else if w >= 80 {
                    39
                } else {
                    17
                };
            let bar: usize = file
                .split("{bar:")
                .nth(1)
                .and_then(|b| b.split('.').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{w}: no sized bar in {file}"));
            assert!(bar >= 10, "{w}: a bar of {bar} in {file}");
            assert_eq!(
                fixed + bar + ECHO_ROOM,
                w,
                "{w}: the line ends two columns short"
            );
            assert!(total.contains(&format!("{{bar:{bar}.")), "{total}");
        }
    }
}
