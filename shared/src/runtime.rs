//! Wiring to the Lambda runtime: build the clients once, then serve events.

use crate::model::now_millis;
use crate::{Context, api};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use std::convert::Infallible;
use std::time::{Duration, Instant};

/// JSON logs to stdout, as Lambda's JSON log format expects; level from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`.
pub fn init_logging() {
    let level = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Runs a function's `serve` future to its end on a runtime with one thread.
///
/// A Lambda instance handles one event at a time, and what a handler does
/// at once (the sweep's aborts, notify's PutEvents calls) is futures polled
/// together, so worker threads would have nothing to run side by side; in
/// `coldstart`, starting them cost `sign-part` about 0.5 ms of its init (see
/// docs/performance.md). Blocking work (DNS lookups) still gets Tokio's blocking pool.
pub fn block_on(
    serve: impl std::future::Future<Output = Result<(), lambda_runtime::Error>>,
) -> Result<(), lambda_runtime::Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve)
}

/// Serves one API function: every event becomes an answer, errors included.
pub async fn serve_api(function: api::Function) -> Result<(), lambda_runtime::Error> {
    init_logging();
    let ctx = &Context::from_env().await?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            // Cannot fail: every answer is a struct of strings; if it did,
            // Lambda would report the error rather than a made-up answer.
            api::wire::encode(api::handle(ctx, function, event.payload).await)
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
}

/// Serves the sweep: scheduled or manual events, stopping short of the Lambda deadline.
pub async fn serve_sweep() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let ctx = &Context::from_env().await?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let deadline = sweep_deadline(
                event.context.deadline,
                now_millis(),
                ctx.config.sweep_timeout,
            );
            // Boxed: the sweep's future is deep enough to overflow the compiler's
            // layout recursion limit when inlined into the runtime's service.
            Box::pin(crate::sweep::handle(ctx, event.payload, Some(deadline))).await
        },
    ))
    .await
}

/// Serves `notify`: DynamoDB stream batches in, partial batch failures out.
pub async fn serve_notify() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let notifier = &crate::notify::Notifier::from_env().await?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<aws_lambda_events::dynamodb::Event>| async move {
            Ok::<_, Infallible>(crate::notify::handle(notifier, event.payload).await)
        },
    ))
    .await
}

/// Serves `settle`: S3's "Object Created" notifications (EventBridge events,
/// or S3 event records) in, each object's upload settled.
pub async fn serve_settle() -> Result<(), lambda_runtime::Error> {
    init_logging();
    let ctx = &Context::from_env().await?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            crate::settle::handle(ctx, event.payload).await
        },
    ))
    .await
}

/// When a sweep invocation must be done, from the runtime's deadline header
/// (epoch milliseconds). A deadline that is already past when the event
/// arrives is a broken clock or invoker, not a deadline: cargo-lambda's
/// emulator sends `600000` (a duration where an instant belongs), which would
/// leave no time at all and make every run a no-op. Then the function's
/// configured timeout is the budget, with a warning.
pub fn sweep_deadline(deadline_ms: u64, now_ms: i64, timeout: Duration) -> Instant {
    let now_ms = now_ms.max(0) as u64;
    match deadline_ms.checked_sub(now_ms).filter(|left| *left > 0) {
        Some(left) => Instant::now() + Duration::from_millis(left),
        None => {
            tracing::warn!(
                deadline_ms,
                now_ms,
                budget_secs = timeout.as_secs(),
                "the invocation's deadline is already past on arrival (a broken clock or invoker); \
                 using the configured function timeout (PARTWISE_SWEEP_TIMEOUT_SECS) instead"
            );
            Instant::now() + timeout
        }
    }
}

/// How a failed sweep invocation reports to Lambda: our code as the error type.
impl From<crate::Error> for lambda_runtime::Diagnostic {
    fn from(e: crate::Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.code().into(),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000;

    #[test]
    fn block_on_serves_on_one_thread_with_timers_and_a_blocking_pool() {
        let caller = std::thread::current().id();
        let result = block_on(async move {
            // The SDK's timeouts need the timer; its DNS lookups, the blocking pool.
            tokio::time::sleep(Duration::from_millis(1)).await;
            // hyper runs each connection as a task of its own: on the same thread.
            let spawned = tokio::spawn(async { std::thread::current().id() }).await?;
            assert_eq!(spawned, caller);
            let blocking = tokio::task::spawn_blocking(|| std::thread::current().id()).await?;
            assert_ne!(blocking, caller);
            Err("the service's own error".into())
        });
        assert_eq!(result.unwrap_err().to_string(), "the service's own error");
    }

    #[test]
    fn a_future_deadline_is_kept() {
        let d = sweep_deadline(NOW as u64 + 30_000, NOW, Duration::from_secs(900));
        let left = d.saturating_duration_since(Instant::now());
        assert!(
            left <= Duration::from_secs(30) && left > Duration::from_secs(29),
            "{left:?}"
        );
    }

    #[test]
    fn a_deadline_already_past_falls_back_to_the_timeout() {
        // cargo-lambda's emulator: ten minutes after 1970.
        for broken in [600_000, 0, NOW as u64 - 1, NOW as u64] {
            let d = sweep_deadline(broken, NOW, Duration::from_secs(900));
            let left = d.saturating_duration_since(Instant::now());
            assert!(left > Duration::from_secs(899), "{broken}: {left:?}");
        }
    }
}
