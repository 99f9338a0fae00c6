//! Wiring to the Lambda runtime: build the clients once, then serve events.

use crate::{Context, api};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use lambda_runtime::{LambdaEvent, service_fn};
use std::convert::Infallible;

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

/// Serves the sweep.
pub async fn serve_sweep() -> Result<(), lambda_runtime::Error> {
    init_logging();
    Err("sweep is not built yet".into())
}
