//! Garage as a single-node S3: configuration, start, and the CLI steps that
//! turn a fresh node into a cluster with our key and bucket.

use super::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, StackError, setup};
use crate::process::{Daemon, poll};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Name of the imported key inside Garage.
const KEY_NAME: &str = "partwise-local";
/// Loopback-only cluster secret; a fixed value is fine, nothing else can reach the port.
const RPC_SECRET: &str = "0c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee0";
/// Upper bound for Garage to answer after start.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one CLI call.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// Writes `garage.toml` into `dir`: sqlite, replication factor 1, loopback only.
pub(super) fn write_config(
    dir: &Path,
    rpc_port: u16,
    s3_port: u16,
    admin_port: u16,
) -> std::io::Result<PathBuf> {
    let d = dir.display();
    let text = format!(
        r#"metadata_dir = "{d}/garage-meta"
data_dir = "{d}/garage-data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{RPC_SECRET}"

[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
"#
    );
    let path = dir.join("garage.toml");
    std::fs::write(&path, text)?;
    Ok(path)
}

/// Starts `garage server`, logging to `garage.log` in `dir`.
pub(super) fn spawn(bin: &Path, config: &Path, dir: &Path) -> std::io::Result<Daemon> {
    let mut cmd = Command::new(bin);
    cmd.arg("-c")
        .arg(config)
        .arg("server")
        .env("RUST_LOG", "garage=warn");
    Daemon::spawn("garage", cmd, &dir.join("garage.log"))
}

/// Waits for the node, gives it the whole (tiny) layout, imports the test key
/// (allowed to create buckets, for [`super::Stack::create_bucket`]), creates
/// `bucket`, then waits until S3 answers with that key.
pub(super) async fn bootstrap(
    bin: &Path,
    config: &Path,
    daemon: &mut Daemon,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
) -> Result<(), StackError> {
    let node = poll(
        "garage node id",
        READY_TIMEOUT,
        || daemon.ensure_running(),
        || run(bin, config, vec!["node".into(), "id".into(), "-q".into()]),
    )
    .await
    .map_err(setup)?;
    let node_id = node
        .trim()
        .split('@')
        .next()
        .unwrap_or_default()
        .to_string();

    let steps: [&[&str]; 6] = [
        &["layout", "assign", "-z", "dc1", "-c", "1G", &node_id],
        &["layout", "apply", "--version", "1"],
        &[
            "key",
            "import",
            "--yes",
            "-n",
            KEY_NAME,
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
        ],
        &["key", "allow", "--create-bucket", KEY_NAME],
        &["bucket", "create", bucket],
        &[
            "bucket", "allow", "--read", "--write", "--owner", bucket, "--key", KEY_NAME,
        ],
    ];
    for (i, step) in steps.into_iter().enumerate() {
        let args: Vec<String> = step.iter().map(|a| a.to_string()).collect();
        let result = if i == 0 {
            // `node id` reads the key from disk and answers before the RPC
            // port listens (seen on a loaded machine): the first step that
            // needs RPC waits for it.
            poll(
                "garage RPC",
                READY_TIMEOUT,
                || daemon.ensure_running(),
                || run(bin, config, args.clone()),
            )
            .await
            .map(drop)
        } else {
            run(bin, config, args).await.map(drop)
        };
        result.map_err(|e| setup(format!("{e}\ngarage log:\n{}", daemon.log_tail())))?;
    }

    poll(
        "garage S3 API",
        READY_TIMEOUT,
        || daemon.ensure_running(),
        || async {
            s3.head_bucket()
                .bucket(bucket)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| aws_sdk_s3::error::DisplayErrorContext(&e).to_string())
        },
    )
    .await
    .map_err(setup)
}

/// Runs `garage -c config args...`; its stdout, or an error with its output.
async fn run(bin: &Path, config: &Path, args: Vec<String>) -> Result<String, String> {
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("-c")
        .arg(config)
        .args(&args)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .map_err(|_| format!("garage {}: timed out", args.join(" ")))?
        .map_err(|e| format!("garage {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "garage {} failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}
