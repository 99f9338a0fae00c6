//! DynamoDB Local: start, readiness, and creating a table from its
//! `template.yaml` definition.

use super::{StackError, setup};
use crate::process::{Daemon, poll};
use crate::template::TableDefinition;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_dynamodb::types::TableStatus;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The JVM starts in 1-3 s here; allow for a busy machine.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Local tables are ACTIVE at once; bounded anyway.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts DynamoDB Local in memory on `port`, logging to `dynamodb.log` in `dir`.
///
/// `-sharedDb` makes every credential and region see the same tables (without
/// it DynamoDB Local keeps one database per access key and region, and a tool
/// with other credentials would see an empty stack); `-disableTelemetry`
/// because there is nowhere to send it.
///
/// The JVM compiles with C1 only and collects with the serial collector: a
/// local stack lives seconds to minutes on a machine of few cores, where
/// C2's compiling and a parallel collector's threads cost more CPU than they
/// give back (200 tracked uploads: DynamoDB Local's CPU 3.3 s cold and 1.3 s
/// warm with the defaults, 1.4 s and 0.6 s so; `docs/performance.md`).
pub(super) fn spawn(install_dir: &Path, port: u16, dir: &Path) -> std::io::Result<Daemon> {
    let mut cmd = Command::new("java");
    cmd.current_dir(install_dir)
        .args(["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"])
        .arg("-Djava.library.path=DynamoDBLocal_lib")
        .args([
            "-jar",
            "DynamoDBLocal.jar",
            "-inMemory",
            "-sharedDb",
            "-disableTelemetry",
        ])
        .arg("-port")
        .arg(port.to_string());
    Daemon::spawn("DynamoDB Local", cmd, &dir.join("dynamodb.log"))
}

/// Waits until DynamoDB Local answers ListTables.
pub(super) async fn wait_ready(
    daemon: &mut Daemon,
    client: &aws_sdk_dynamodb::Client,
) -> Result<(), StackError> {
    poll(
        "DynamoDB Local",
        READY_TIMEOUT,
        || daemon.ensure_running(),
        || async {
            client
                .list_tables()
                .limit(1)
                .customize()
                // Fail fast while the JVM starts; poll() does the retrying.
                .config_override(
                    aws_sdk_dynamodb::config::Builder::default()
                        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| DisplayErrorContext(&e).to_string())
        },
    )
    .await
    .map_err(setup)
}

/// Creates `name` as `def` says, waits for ACTIVE, then applies TTL and
/// point-in-time recovery (separate calls in the DynamoDB API).
pub(crate) async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    def: &TableDefinition,
    name: &str,
) -> Result<(), StackError> {
    let fail = |what: &str, e: &dyn std::error::Error| {
        setup(format!("{what} {name}: {}", DisplayErrorContext(e)))
    };
    client
        .create_table()
        .table_name(name)
        .set_attribute_definitions(Some(def.attribute_definitions.clone()))
        .set_key_schema(Some(def.key_schema.clone()))
        .set_global_secondary_indexes(def.global_secondary_indexes.clone())
        .set_local_secondary_indexes(def.local_secondary_indexes.clone())
        .set_billing_mode(def.billing_mode.clone())
        .set_provisioned_throughput(def.provisioned_throughput.clone())
        .set_stream_specification(def.stream_specification.clone())
        .set_sse_specification(def.sse_specification.clone())
        .set_table_class(def.table_class.clone())
        .set_deletion_protection_enabled(def.deletion_protection_enabled)
        .send()
        .await
        .map_err(|e| fail("CreateTable", &e))?;

    poll(
        "table ACTIVE",
        ACTIVE_TIMEOUT,
        || Ok(()),
        || async {
            let out = client
                .describe_table()
                .table_name(name)
                .send()
                .await
                .map_err(|e| DisplayErrorContext(&e).to_string())?;
            match out.table().and_then(|t| t.table_status()) {
                Some(TableStatus::Active) => Ok(()),
                other => Err(format!("status {other:?}")),
            }
        },
    )
    .await
    .map_err(setup)?;

    if let Some(ttl) = &def.time_to_live {
        client
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(ttl.clone())
            .send()
            .await
            .map_err(|e| fail("UpdateTimeToLive", &e))?;
    }
    if let Some(pitr) = &def.point_in_time_recovery {
        let result = client
            .update_continuous_backups()
            .table_name(name)
            .point_in_time_recovery_specification(pitr.clone())
            .send()
            .await;
        match result {
            Ok(_) => {}
            // DynamoDB Local has no backups; nothing to emulate.
            Err(e) if e.code() == Some("UnknownOperationException") => {
                tracing::debug!(
                    "{name}: point-in-time recovery is not supported by DynamoDB Local; skipped"
                );
            }
            Err(e) => return Err(fail("UpdateContinuousBackups", &e)),
        }
    }
    Ok(())
}
