//! PutEvents: up to ten entries a call, failed entries retried with backoff.

use super::change::Notice;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::DateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::time::Duration;

/// PutEvents' limit of entries per call.
pub const MAX_ENTRIES: usize = 10;

/// Where and how events are put.
#[derive(Clone, Debug)]
pub struct Publisher {
    pub client: Client,
    pub bus: String,
    pub source: String,
    /// PutEvents calls tried for an entry before it counts as failed.
    pub attempts: u32,
}

impl Publisher {
    /// Puts `notices` (at most [`MAX_ENTRIES`]); whether each was accepted,
    /// after retrying the failed ones (entries with an `ErrorCode`, or all of
    /// a call that failed outright) up to `attempts` calls in all.
    pub async fn put(&self, notices: &[&Notice]) -> Vec<bool> {
        debug_assert!(notices.len() <= MAX_ENTRIES);
        let mut accepted = vec![false; notices.len()];
        let mut pending: Vec<usize> = (0..notices.len()).collect();
        for attempt in 0..self.attempts {
            if pending.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
            }
            let entries = pending.iter().map(|&i| self.entry(notices[i])).collect();
            match self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    for (j, &i) in pending.iter().enumerate() {
                        match out.entries().get(j) {
                            Some(r) if r.error_code().is_none() && r.event_id().is_some() => {
                                accepted[i] = true
                            }
                            r => tracing::warn!(
                                attempt,
                                event_id = %notices[i].detail["eventId"],
                                error_code = r.and_then(|r| r.error_code()).unwrap_or("missing"),
                                error_message = r.and_then(|r| r.error_message()).unwrap_or(""),
                                "PutEvents refused an entry"
                            ),
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    attempt,
                    entries = pending.len(),
                    error = %aws_sdk_eventbridge::error::DisplayErrorContext(&e),
                    "PutEvents failed"
                ),
            }
            pending.retain(|&i| !accepted[i]);
        }
        accepted
    }

    fn entry(&self, n: &Notice) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .source(&self.source)
            .detail_type(n.detail_type.as_str())
            .detail(n.detail.to_string())
            .event_bus_name(&self.bus)
            .time(DateTime::from_millis(n.time_ms))
            .build()
    }
}
