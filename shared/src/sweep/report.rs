//! The sweep's summary, its structured log line and its CloudWatch EMF metrics.

use serde::Serialize;
use serde_json::json;

/// Most uploads a dry run lists by name; the counts stay exact beyond it.
pub const DRY_RUN_LISTED: usize = 1000;

/// What happened to one upload the sweep looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Claimed, aborted in S3, confirmed empty, marked ABORTED.
    Aborted,
    /// S3 had no such upload any more; marked ABORTED.
    AlreadyGone,
    /// An untracked upload in S3, aborted.
    OrphanAborted,
    /// A COMPLETING item settled from S3's truth.
    CompletionResolved,
    /// Someone else moved it first, or its completion is still within its lease.
    Skipped,
    /// Dry run: a real run would act on it.
    WouldAbort {
        upload_id: String,
        key: String,
        kind: &'static str,
    },
    /// Failed; logged, and left for the next run.
    Failed,
}

/// The JSON summary a run returns.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub cutoff: i64,
    pub dry_run: bool,
    /// Tracked stale uploads and stale S3 uploads looked at.
    pub examined: u64,
    pub aborted: u64,
    pub already_gone: u64,
    pub orphans_found: u64,
    pub orphans_aborted: u64,
    pub completions_resolved: u64,
    pub skipped: u64,
    /// Uploads the run tried to settle and could not (logged; the next run retries them).
    pub failed: u64,
    /// Stale multipart uploads S3 still listed under the prefix when the run
    /// ended (S3's own listing, counted after the run): what is still billed.
    pub remaining_uploads: u64,
    /// Stale live items still in the live-uploads index when the run ended.
    pub remaining_tracked: u64,
    /// False when counting what remains hit its time cap (a few seconds): both
    /// `remaining_*` figures are then lower bounds.
    pub remaining_exact: bool,
    /// True when another run has work: the run stopped at its limit or
    /// deadline, a listing failed, or anything stale remains.
    pub more_work: bool,
    /// Listings (an index shard, S3's uploads, an orphan lookup) that failed
    /// after their retries; any makes the invocation fail.
    pub listing_failures: u64,
    /// The first of those failures' messages.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listing_errors: Vec<String>,
    pub would_abort: u64,
    /// Dry run only: the first uploads a real run would act on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub would_abort_list: Vec<serde_json::Value>,
    /// Per-owner quota counters looked at, and those found drifted and recounted.
    pub quota_counters_checked: u64,
    pub quota_counters_fixed: u64,
    pub duration_ms: u64,
    /// How much of `duration_ms` the tracked pass took; the rest is orphans.
    pub tracked_ms: u64,
}

impl Summary {
    /// Counts one outcome.
    pub fn record(mut self, o: Outcome) -> Self {
        match o {
            Outcome::Aborted => self.aborted += 1,
            Outcome::AlreadyGone => self.already_gone += 1,
            Outcome::OrphanAborted => self.orphans_aborted += 1,
            Outcome::CompletionResolved => self.completions_resolved += 1,
            Outcome::Skipped => self.skipped += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::WouldAbort {
                upload_id,
                key,
                kind,
            } => {
                self.would_abort += 1;
                if self.would_abort_list.len() < DRY_RUN_LISTED {
                    self.would_abort_list
                        .push(json!({ "uploadId": upload_id, "key": key, "kind": kind }));
                }
            }
        }
        self
    }

    /// One CloudWatch Embedded Metric Format line: CloudWatch turns it into
    /// metrics without a PutMetricData call.
    pub fn emf(&self, timestamp_ms: i64) -> String {
        let metrics = [
            ("Examined", self.examined),
            ("Aborted", self.aborted),
            ("AlreadyGone", self.already_gone),
            ("OrphansFound", self.orphans_found),
            ("OrphansAborted", self.orphans_aborted),
            ("CompletionsResolved", self.completions_resolved),
            ("Skipped", self.skipped),
            ("Failed", self.failed),
            ("RemainingUploads", self.remaining_uploads),
            ("RemainingTracked", self.remaining_tracked),
            ("ListingFailures", self.listing_failures),
        ];
        let mut line = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": "Partwise",
                    "Dimensions": [["Function", "DryRun"]],
                    "Metrics": metrics.iter().map(|(n, _)| json!({"Name": n, "Unit": "Count"}))
                        .chain([json!({"Name": "DurationMs", "Unit": "Milliseconds"})])
                        .collect::<Vec<_>>(),
                }],
            },
            "Function": "sweep",
            "DryRun": self.dry_run.to_string(),
            "DurationMs": self.duration_ms,
        });
        for (n, v) in metrics {
            line[n] = json!(v);
        }
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_declares_every_metric_it_carries() {
        let s = Summary::default()
            .record(Outcome::Aborted)
            .record(Outcome::Aborted)
            .record(Outcome::Failed);
        let v: serde_json::Value = serde_json::from_str(&s.emf(1)).unwrap();
        for m in v["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            let name = m["Name"].as_str().unwrap();
            assert!(v[name].is_number(), "{name} declared but absent");
        }
        assert_eq!(v["Aborted"], 2);
        assert_eq!(v["Failed"], 1);
    }

    #[test]
    fn dry_run_listing_is_capped_but_counts_are_exact() {
        let mut s = Summary::default();
        for i in 0..DRY_RUN_LISTED + 5 {
            s = s.record(Outcome::WouldAbort {
                upload_id: i.to_string(),
                key: "k".into(),
                kind: "tracked",
            });
        }
        assert_eq!(s.would_abort, DRY_RUN_LISTED as u64 + 5);
        assert_eq!(s.would_abort_list.len(), DRY_RUN_LISTED);
    }
}
