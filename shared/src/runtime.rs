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

/// Serves one API function: every event becomes an answer, errors included.
pub async fn serve_api(function: api::Function) -> Result<(), lambda_runtime::Error> {
    init_logging();
    let ctx = &Context::from_env().await?;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
            Ok::<_, Infallible>(api::handle(ctx, function, event.payload).await)
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
            let remaining = Duration::from_millis(
                event
                    .context
                    .deadline
                    .saturating_sub(now_millis().max(0) as u64),
            );
            let deadline = Instant::now() + remaining;
            // Boxed: the sweep's future is deep enough to overflow the compiler's
            // layout recursion limit when inlined into the runtime's service.
            Box::pin(crate::sweep::handle(ctx, event.payload, Some(deadline))).await
        },
    ))
    .await
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
