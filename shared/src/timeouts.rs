//! The SDK clients' timeouts and retries, chosen so that a slow or failing
//! S3 or DynamoDB call ends in time for the function to answer honestly
//! (503 and `Retry-After`) rather than be cut off by its own timeout or by
//! API Gateway's 30 s.
//!
//! The budget: the API functions time out at 10 s (`Globals` in
//! template.yaml), `complete` at 29 s, and API Gateway gives up at 30 s. A
//! handler makes two to five calls in sequence, each normally a few
//! milliseconds; one call that goes wrong must leave the rest room to run.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use std::time::Duration;

/// TCP and TLS set-up. Inside a region this takes milliseconds; Linux
/// retransmits a lost SYN after 1 s, so 2 s lets one loss through and no more.
pub const CONNECT: Duration = Duration::from_secs(2);

/// One attempt, connect to last byte. Single-item DynamoDB calls and S3's
/// control calls (create, list, abort, head) answer in tens of milliseconds;
/// after 3 s the connection is presumed stuck and the attempt is retried on
/// a new one.
pub const ATTEMPT: Duration = Duration::from_secs(3);

/// A whole call, every attempt and backoff included. 5 s caps one bad call
/// at half the API functions' 10 s, so the handler still has the time to
/// answer 503 itself (a function killed by its timeout answers nothing useful).
pub const OPERATION: Duration = Duration::from_secs(5);

/// Attempts per call: the SDK's standard three. A fourth would not fit in
/// [`OPERATION`] after a stalled attempt anyway.
pub const MAX_ATTEMPTS: u32 = 3;

/// First backoff (full jitter, doubling). The SDK's default of 1 s would spend
/// a fifth of the budget on one throttle; S3 and DynamoDB throttles clear in
/// tens of milliseconds, and a caller that still sees one gets 429/503 with
/// `Retry-After` and comes back itself.
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(50);

/// Longest backoff between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// `CompleteMultipartUpload` of thousands of parts takes seconds on S3: its
/// attempt may use most of the `complete` function's 29 s. The whole call is
/// capped 2 s later, so a retry after a timed-out attempt cannot outlast it.
pub const COMPLETE_ATTEMPT: Duration = Duration::from_secs(25);

/// Timeouts for every S3 and DynamoDB client of the functions.
pub fn sdk_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT)
        .operation_attempt_timeout(ATTEMPT)
        .operation_timeout(OPERATION)
        .build()
}

/// Retries for every S3 and DynamoDB client of the functions: standard mode
/// (throttles, 5xx, resets and timeouts are retried; 4xx are not).
pub fn sdk_retries() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// Timeouts for `CompleteMultipartUpload` alone (a per-call override).
pub fn complete_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT)
        .operation_attempt_timeout(COMPLETE_ATTEMPT)
        .operation_timeout(COMPLETE_ATTEMPT + Duration::from_secs(2))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_call_fits_the_functions_timeouts() {
        // An API function (10 s) survives one call at its limit with time to answer.
        assert!(OPERATION * 2 <= Duration::from_secs(10));
        assert!(CONNECT < ATTEMPT && ATTEMPT < OPERATION);
        // Complete's own call stays inside its 29 s and API Gateway's 30 s.
        let c = complete_timeouts();
        assert!(c.operation_timeout().unwrap() < Duration::from_secs(29));
        // Backoffs of all retries fit in what a stalled attempt leaves.
        let backoffs: Duration = (0..MAX_ATTEMPTS - 1)
            .map(|i| (INITIAL_BACKOFF * 2u32.pow(i)).min(MAX_BACKOFF))
            .sum();
        assert!(ATTEMPT + backoffs < OPERATION);
    }
}
