//! `hello-lambda`: the cold-start baseline. It uses only `lambda_runtime` and
//! echoes its event, so its init is what any Rust Lambda pays before its own
//! code runs; `coldstart` compares every function against it.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            Ok::<_, lambda_runtime::Error>(event.payload)
        },
    ))
    .await
}
