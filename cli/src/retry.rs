//! Outlasting outages: backoff with jitter, for as long as `--retry-for`
//! allows, counted from the first failure of a streak. Each wait is told to
//! the observer, so the bar can say "retrying (API unreachable, 0:42)".

use crate::events::{Event, Events, Service, Why};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Until the API has answered once in this run, an outage is more likely a
/// wrong `--api` than a blip: retries stop after this long.
const FIRST_CONTACT: Duration = Duration::from_secs(10);

/// The retry policy a run shares.
#[derive(Clone)]
pub struct Retry {
    pub window: Duration,
    pub events: Events,
    /// Whether the API has answered in this run.
    pub reached: Arc<AtomicBool>,
}

/// One request's streak of failures.
pub struct Streak {
    since: Option<Instant>,
    attempt: u32,
}

impl Default for Streak {
    fn default() -> Self {
        Self::new()
    }
}

impl Streak {
    pub fn new() -> Streak {
        Streak {
            since: None,
            attempt: 0,
        }
    }

    /// Failures so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Time since the first failure.
    pub fn elapsed(&self) -> Duration {
        self.since.map(|s| s.elapsed()).unwrap_or_default()
    }
}

impl Retry {
    pub fn new(window: Duration, events: Events) -> Retry {
        Retry {
            window,
            events,
            reached: Arc::new(AtomicBool::new(false)),
        }
    }

    /// After a failure: waits (backoff with jitter, or `at_least`), and says
    /// whether to try again; `false` once the window is spent (a few quick
    /// tries are always made, even with `--retry-for 0`).
    pub async fn wait(
        &self,
        service: Service,
        why: Why,
        streak: &mut Streak,
        reason: &str,
        at_least: Option<Duration>,
    ) -> bool {
        let since = *streak.since.get_or_insert_with(Instant::now);
        streak.attempt += 1;
        let pause = backoff(streak.attempt).max(at_least.unwrap_or_default());
        let quick = streak.attempt < 3;
        let window = if service == Service::Api && !self.reached.load(Ordering::Relaxed) {
            self.window.min(FIRST_CONTACT)
        } else {
            self.window
        };
        if !quick && since.elapsed() + pause > window {
            return false;
        }
        self.events.send(Event::Retrying {
            service,
            why,
            since,
            reason: reason.to_string(),
        });
        tokio::time::sleep(pause).await;
        true
    }

    /// After a success that followed failures.
    pub fn recovered(&self, service: Service, streak: &Streak) {
        if streak.since.is_some() {
            self.events.send(Event::Recovered { service });
        }
    }
}

/// 0.25 s, 0.5 s, 1 s, ... up to 15 s, with jitter so parts do not retry in step.
pub fn backoff(attempt: u32) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.min(6)).min(15_000);
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64 % (base / 2 + 1));
    Duration::from_millis(base / 2 + jitter)
}
