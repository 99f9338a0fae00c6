//! Named points between an S3 call and the DynamoDB write that records it,
//! where a crash test can kill the process (feature `crash-points`).
//!
//! With the feature on and `PARTWISE_CRASH_AT=<point>` (or `<point>#<n>`, the
//! n-th time the point is reached) in the environment, the process prints
//! `CRASHPOINT <point>` on stderr when it gets there and stops: the harness
//! reading stderr SIGKILLs it then, a real crash at that exact place. If
//! nobody does within [`HOLD`], the process aborts itself, which is the same
//! crash. Without the feature a point compiles to nothing: only test builds
//! have it (a dev-dependency of `partwise-local` turns it on), never a Lambda
//! or a plain `cargo build`.

/// In `complete`, the item is claimed COMPLETING; S3 is not called yet.
pub const COMPLETE_BEFORE_S3: &str = "complete.before_s3";
/// In `complete`, S3 has completed the upload; the item is still COMPLETING.
pub const COMPLETE_AFTER_S3: &str = "complete.after_s3";
/// In an abort (API or sweep), the item is claimed ABORTING; S3 is not called yet.
pub const ABORT_BEFORE_S3: &str = "abort.before_s3";
/// In an abort (API or sweep), S3 has aborted the upload; the item is still ABORTING.
pub const ABORT_AFTER_S3: &str = "abort.after_s3";

/// Every point, for the harness and the docs.
pub const ALL: [&str; 4] = [
    COMPLETE_BEFORE_S3,
    COMPLETE_AFTER_S3,
    ABORT_BEFORE_S3,
    ABORT_AFTER_S3,
];

/// Longest a process waits at its point to be killed before it aborts itself.
pub const HOLD: std::time::Duration = std::time::Duration::from_secs(20);

/// Reached `point`: crash here if the environment says so.
///
/// The wait blocks the thread on purpose: the futures polled in the same
/// task (a sweep's whole batch) stop with it, so the kill finds the batch
/// exactly as it was at this point, not some milliseconds later.
#[cfg(feature = "crash-points")]
pub fn reached(point: &'static str) {
    if armed::hit(point) {
        eprintln!("CRASHPOINT {point}");
        std::thread::sleep(HOLD);
        eprintln!("CRASHPOINT {point}: not killed within {HOLD:?}; aborting");
        std::process::abort();
    }
}

/// Reached `point`: nothing happens without the `crash-points` feature.
#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn reached(_point: &'static str) {}

#[cfg(feature = "crash-points")]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// The armed point and on which hit it fires, read once from the environment.
    fn target() -> Option<&'static (String, u64)> {
        static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
        TARGET
            .get_or_init(|| parse(&std::env::var("PARTWISE_CRASH_AT").ok()?))
            .as_ref()
    }

    /// `point` or `point#n` (n ≥ 1).
    pub(super) fn parse(spec: &str) -> Option<(String, u64)> {
        let (name, nth) = match spec.split_once('#') {
            Some((name, n)) => (name, n.parse().ok().filter(|n| *n >= 1)?),
            None => (spec, 1),
        };
        super::ALL.contains(&name).then(|| (name.to_string(), nth))
    }

    /// Whether this hit of `point` is the armed one.
    pub(super) fn hit(point: &str) -> bool {
        static HITS: AtomicU64 = AtomicU64::new(0);
        match target() {
            Some((name, nth)) if name == point => HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth,
            _ => false,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::parse;

        #[test]
        fn specs_parse() {
            assert_eq!(parse("abort.after_s3"), Some(("abort.after_s3".into(), 1)));
            assert_eq!(
                parse("abort.before_s3#4"),
                Some(("abort.before_s3".into(), 4))
            );
            assert_eq!(parse("abort.before_s3#0"), None);
            assert_eq!(parse("abort.before_s3#x"), None);
            assert_eq!(parse("nowhere"), None);
        }
    }
}
