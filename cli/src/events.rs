//! What the pipeline's stages report as they go; the terminal output (bars,
//! JSON lines, notes) is one observer of these events.

use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;

/// Which service an outage is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Api,
    S3,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Api => "API",
            Service::S3 => "S3",
        }
    }
}

/// Why a request is being tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Why {
    /// No answer: connection refused, reset or timed out.
    Unreachable,
    /// A 5xx answer.
    Failing,
    /// A 429: throttled, or a per-minute quota (waits as long as it asks).
    Busy,
}

impl Why {
    /// `API unreachable`, `S3 failing`, `API asks to wait`.
    pub fn words(self, service: Service) -> String {
        match self {
            Why::Unreachable => format!("{} unreachable", service.name()),
            Why::Failing => format!("{} failing", service.name()),
            Why::Busy => format!("{} asks to wait", service.name()),
        }
    }
}

/// One finished file, as printed (the JSON line's fields).
#[derive(Debug, Clone, Serialize)]
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
    /// Bytes sent by this run; the rest were already in S3.
    pub bytes_sent: u64,
}

/// A stage's report. `file` is the file's index in the run.
#[derive(Debug, Clone)]
pub enum Event {
    /// A file entered the pipeline.
    Started {
        file: usize,
        name: String,
        size: u64,
    },
    /// An unfinished upload was found; `held` bytes are kept if they match the file.
    Resumed {
        file: usize,
        path: String,
        upload_id: String,
        held_parts: usize,
        parts: u32,
        held_bytes: u64,
        found_in: &'static str,
    },
    /// A part S3 held did not match the file: its bytes go again.
    Unheld {
        file: usize,
        bytes: u64,
    },
    /// Bytes went out (negative: a failed try taken back).
    Sent {
        file: usize,
        bytes: i64,
    },
    /// The upload is being completed.
    Completing {
        file: usize,
    },
    Finished {
        file: usize,
        done: Finished,
    },
    /// The service failed; retrying since `since`.
    Retrying {
        service: Service,
        why: Why,
        since: Instant,
        reason: String,
    },
    /// The service answered again.
    Recovered {
        service: Service,
    },
    /// A line for the user (stderr).
    Note(String),
}

/// Receives every event, in the order sent.
pub trait Observer: Send + Sync {
    fn on(&self, e: Event);
}

/// A cloneable handle stages send events through.
#[derive(Clone)]
pub struct Events(Arc<dyn Observer>);

impl Events {
    pub fn new(o: Arc<dyn Observer>) -> Events {
        Events(o)
    }

    pub fn send(&self, e: Event) {
        self.0.on(e);
    }

    pub fn note(&self, msg: String) {
        self.0.on(Event::Note(msg));
    }
}

/// Notes and (with `-v`) retries on stderr, for commands without bars.
pub struct Plain {
    pub quiet: bool,
    pub verbose: bool,
}

impl Observer for Plain {
    fn on(&self, e: Event) {
        match e {
            Event::Note(m) if !self.quiet => eprintln!("partwise: {m}"),
            Event::Retrying {
                service,
                why,
                since,
                reason,
            } if self.verbose => eprintln!(
                "partwise: retrying ({}, {}): {reason}",
                why.words(service),
                clock(since.elapsed().as_secs())
            ),
            _ => {}
        }
    }
}

/// `0:42`, `12:05`, `1:02:03`.
pub fn clock(secs: u64) -> String {
    if secs >= 3600 {
        format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
    } else {
        format!("{}:{:02}", secs / 60, secs % 60)
    }
}
