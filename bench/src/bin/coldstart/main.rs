//! `coldstart`: how long each function's release binary takes to start, as Lambda starts it.
//!
//! ```text
//! cargo build --release -p initiate -p sign-part -p list-parts -p complete -p abort \
//!     -p sweep -p notify -p hello-lambda
//! cargo run --release -p partwise-bench --bin coldstart -- [--runs 20] [--secret-latency-ms 0]
//! ```
//!
//! It starts a local stack, an EventBridge receiver and a Secrets Manager
//! stand-in (holding the grant signing keys) on loopback, then, round after
//! round, starts every binary under a fresh Lambda Runtime API on loopback
//! with the environment Lambda would give it (`template.yaml`'s variables,
//! Lambda's own, the stack's endpoints and credentials; nothing inherited),
//! and measures:
//! - init: from just before exec to its first `GET /runtime/invocation/next`;
//! - first invoke: from handing over a real event (an upload that exists on
//!   the stack) to the function's response, which must be a success;
//! - warm invoke: a second event to the same instance, for comparison.
//!
//! The baseline is `hello-lambda` (only `lambda_runtime`, same release
//! profile), run in the same rounds. The API functions read their grant keys
//! from Secrets Manager at the first call that needs them, not at init, so
//! `initiate` also runs twice with a grant issued at its first call: keys
//! from the secret (read then) and keys in the environment, so the difference
//! is what the read costs. Every read the stand-in serves is counted: one per
//! such start, none at any init. The order rotates every round, so no binary
//! always follows another. Each start waits `--settle-ms` after its events
//! are prepared: preparing `complete`'s writes a part to Garage, and that
//! work must not land in the start's time (back to back, identical binaries
//! measured up to 0.8 ms apart). The pause lengthens every start, the
//! baseline's too, by 0.2–0.5 ms here (an idle VM wakes slower), so ratios
//! from runs with different pauses do not compare. Each binary runs from a
//! copy in a task folder of its own, as Lambda runs an unpacked deployment
//! (`deploy`); `--in-place` runs them where they were built instead.

mod deploy;
mod events;
mod lambda_env;
mod report;

use clap::Parser;
use partwise_local::Stack;
use partwise_local::eventbridge::Receiver;
use partwise_local::runtime_api::{Answer, Deadline, RuntimeApi};
use partwise_local::secrets::SecretsManager;
use report::{Row, Sample};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The grant key secret's ARN, as the stand-in knows it.
const SECRET_ARN: &str =
    "arn:aws:secretsmanager:us-east-1:000000000000:secret:partwise-grant-keys-AbCdEf";
/// The grant signing keys (current,previous), in the stand-in's secret or the environment.
const GRANT_KEYS: &str =
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk,ppppppppppppppppppppppppppppppppppppppppppp";
/// How long a start or an invocation may take before the run is called failed.
const WAIT: Duration = Duration::from_secs(20);

#[derive(Parser, Debug)]
#[command(about = "Cold starts of every function's release binary against a hello-world Lambda")]
struct Args {
    /// Starts of each binary (interleaved rounds).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Where the binaries are (default: the workspace's target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Delay the Secrets Manager stand-in adds to each answer, standing for
    /// a real network round trip (0: loopback only).
    #[arg(long, default_value_t = 0)]
    secret_latency_ms: u64,
    /// Only these binaries (comma list; hello-lambda always runs).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Also run an earlier build of a function, as `BINARY=PATH` (e.g.
    /// `sign-part=/tmp/sign-part-main`), deployed the same way, for a
    /// before/after comparison in the same rounds.
    #[arg(long, value_parser = parse_before)]
    before: Vec<(String, PathBuf)>,
    /// Start the binaries where they are instead of from a deployed copy
    /// each (a freshly linked file starts slower; see `deploy.rs`).
    #[arg(long)]
    in_place: bool,
    /// Pause after preparing each start's events and before its clock
    /// starts, so the local stack's own work for them (a part written to
    /// Garage, DynamoDB Local's collector) does not share the CPU with the
    /// start, as it never does on Lambda (0: start at once, back to back).
    #[arg(long, default_value_t = 20)]
    settle_ms: u64,
}

fn parse_before(s: &str) -> Result<(String, PathBuf), String> {
    let (binary, path) = s.split_once('=').ok_or("expected BINARY=PATH")?;
    Ok((binary.to_string(), PathBuf::from(path)))
}

/// One configuration started again and again.
struct Variant {
    label: String,
    /// Which function it is (its events, its check).
    binary: String,
    path: PathBuf,
    memory_mb: u64,
    vars: BTreeMap<String, String>,
    /// The baseline, or a function as deployed, or a grant at its first call.
    kind: Kind,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Baseline,
    Deployed,
    /// An earlier build, deployed the same way.
    Before,
    /// Deployed, its first call issuing a grant: the keys' secret is read then.
    GrantKeysFromSecret,
    /// The same first call, the keys given in the environment: no read.
    GrantKeysGiven,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = Args::parse();
    let bin_dir = args.bin_dir.clone().unwrap_or_else(default_bin_dir);
    let stack = Stack::from_env_or_start()
        .await
        .map_err(|e| format!("local stack: {e}"))?;
    let receiver = Receiver::for_stack()
        .await
        .map_err(|e| format!("EventBridge receiver: {e}"))?;
    let secrets = SecretsManager::for_stack(
        HashMap::from([(SECRET_ARN.to_string(), GRANT_KEYS.to_string())]),
        Duration::from_millis(args.secret_latency_ms),
    )
    .await
    .map_err(|e| format!("Secrets Manager stand-in: {e}"))?;

    let mut variants = variants(&stack, &args.only, &bin_dir, &args.before)?;
    for v in &variants {
        if !v.path.is_file() {
            return Err(format!(
                "{} is missing: build the release binaries first (see this file's top comment)",
                v.path.display()
            ));
        }
    }
    let tasks = deploy::Tasks::new().map_err(|e| format!("task folders: {e}"))?;
    if !args.in_place {
        for (i, v) in variants.iter_mut().enumerate() {
            v.path = tasks
                .deploy(i, &v.path)
                .map_err(|e| format!("deploying {}: {e}", v.path.display()))?;
        }
    }
    let extra = BTreeMap::from([
        ("AWS_ENDPOINT_URL_EVENTBRIDGE".to_string(), receiver.url()),
        (
            "AWS_ENDPOINT_URL_SECRETS_MANAGER".to_string(),
            secrets.url(),
        ),
    ]);
    let ctx = stack.context().map_err(|e| e.to_string())?;
    let shared = events::create(&ctx, 64 << 20).await?;

    let mut samples: Vec<Vec<Sample>> = variants.iter().map(|_| vec![]).collect();
    let settle = Duration::from_millis(args.settle_ms);
    for round in 0..args.runs {
        for i in (0..variants.len()).map(|i| (i + round) % variants.len()) {
            let v = &variants[i];
            let s = run_once(v, &stack, &extra, &ctx, &shared, settle).await?;
            samples[i].push(s);
        }
    }
    let keys_read = secrets.served();
    let rejected = secrets.rejected();

    let rows: Vec<Row> = variants
        .iter()
        .zip(samples)
        .map(|(v, s)| Row {
            label: v.label.clone(),
            binary: v.binary.clone(),
            baseline: v.kind == Kind::Baseline,
            grant: match v.kind {
                Kind::GrantKeysFromSecret => Some(report::GrantKeys::FromSecret),
                Kind::GrantKeysGiven => Some(report::GrantKeys::Given),
                _ => None,
            },
            size: std::fs::metadata(&v.path).map_or(0, |m| m.len()),
            samples: s,
        })
        .collect();
    println!(
        "binaries started {}",
        if args.in_place {
            "where they were built"
        } else {
            "from a copy each in a task folder of its own, as Lambda runs a deployment"
        }
    );
    print!(
        "{}",
        report::render(
            &rows,
            args.runs,
            args.secret_latency_ms,
            keys_read,
            rejected
        )
    );
    if rejected > 0 {
        return Err(format!("{rejected} GetSecretValue requests were refused"));
    }
    // One read per start whose first call needed the keys, and none at any
    // init of these builds (an earlier build given with --before may read
    // at its init, once per start).
    let count = |kind: Kind| variants.iter().filter(|v| v.kind == kind).count() * args.runs;
    let expected = count(Kind::GrantKeysFromSecret) as u64;
    let earlier = count(Kind::Before) as u64;
    if keys_read != expected && keys_read != expected + earlier {
        return Err(format!(
            "the grant keys' secret was read {keys_read} times; expected {expected} \
             (once per start whose first call issues a grant, never at init), \
             plus {earlier} if the earlier builds read it at init"
        ));
    }
    Ok(())
}

fn default_bin_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("release")
}

/// The baseline, every function as deployed, `initiate` with a grant at its
/// first call (keys from the secret, and given), and any earlier builds asked for.
fn variants(
    stack: &Stack,
    only: &[String],
    bin_dir: &Path,
    before: &[(String, PathBuf)],
) -> Result<Vec<Variant>, String> {
    let resources = BTreeMap::from([
        ("UploadsBucket", stack.bucket().to_string()),
        ("UploadsTable", stack.table().to_string()),
        ("GrantKeySecret", SECRET_ARN.to_string()),
    ]);
    let mut out = vec![Variant {
        label: "hello-lambda".into(),
        binary: "hello-lambda".into(),
        path: bin_dir.join("hello-lambda"),
        memory_mb: 256,
        vars: BTreeMap::new(),
        kind: Kind::Baseline,
    }];
    let mut grants = vec![];
    let mut earlier = vec![];
    for f in lambda_env::functions(&resources)? {
        for (_, path) in before.iter().filter(|(b, _)| *b == f.binary) {
            earlier.push(Variant {
                label: format!("{} (before)", f.binary),
                binary: f.binary.clone(),
                path: path.clone(),
                memory_mb: f.memory_mb,
                vars: f.vars.clone(),
                kind: Kind::Before,
            });
        }
        if !only.is_empty() && !only.contains(&f.binary) {
            continue;
        }
        if f.binary == "initiate" && f.vars.contains_key("PARTWISE_GRANT_SECRET_ARN") {
            let mut given = f.vars.clone();
            given.remove("PARTWISE_GRANT_SECRET_ARN");
            given.insert("PARTWISE_GRANT_KEYS".into(), GRANT_KEYS.into());
            for (label, vars, kind) in [
                (
                    "keys from the secret",
                    f.vars.clone(),
                    Kind::GrantKeysFromSecret,
                ),
                ("keys in the environment", given, Kind::GrantKeysGiven),
            ] {
                grants.push(Variant {
                    label: format!("{}, grant at first call ({label})", f.binary),
                    binary: f.binary.clone(),
                    path: bin_dir.join(&f.binary),
                    memory_mb: f.memory_mb,
                    vars,
                    kind,
                });
            }
        }
        out.push(Variant {
            label: f.binary.clone(),
            path: bin_dir.join(&f.binary),
            binary: f.binary,
            memory_mb: f.memory_mb,
            vars: f.vars,
            kind: Kind::Deployed,
        });
    }
    out.extend(grants);
    out.extend(earlier);
    Ok(out)
}

/// One cold start: exec, wait for the first poll, hand over two events.
async fn run_once(
    v: &Variant,
    stack: &Stack,
    extra: &BTreeMap<String, String>,
    ctx: &partwise::Context,
    shared: &events::Upload,
    settle: Duration,
) -> Result<Sample, String> {
    // Everything the run needs is prepared before the clock starts.
    let (first, second) = match v.kind {
        Kind::GrantKeysFromSecret | Kind::GrantKeysGiven => {
            (events::issue_grant(), events::issue_grant())
        }
        _ => (
            events::first_event(&v.binary, ctx, shared).await?,
            events::first_event(&v.binary, ctx, shared).await?,
        ),
    };
    let api = RuntimeApi::start().await.map_err(|e| e.to_string())?;
    let env = lambda_env::environment(
        &v.binary,
        v.memory_mb,
        &api.endpoint(),
        &v.vars,
        stack,
        extra,
    );
    let mut cmd = tokio::process::Command::new(&v.path);
    // Lambda starts `bootstrap` in its task folder.
    if let Some(task) = v.path.parent() {
        cmd.current_dir(task);
    }
    cmd.env_clear()
        .envs(&env)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);

    tokio::time::sleep(settle).await;
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("{}: {e}", v.binary))?;
    let Some(ready) = api.ready(WAIT).await else {
        return Err(format!(
            "{} never polled for an event; init error: {:?}",
            v.label,
            api.init_error()
        ));
    };
    let init = ready.duration_since(started);
    let first_invoke = invoke(&api, &v.binary, first).await?;
    let warm_invoke = invoke(&api, &v.binary, second).await?;
    let _ = child.kill().await;
    Ok(Sample {
        init,
        first_invoke,
        warm_invoke,
    })
}

/// Hands `event` over and waits for a successful answer; its round trip.
async fn invoke(
    api: &RuntimeApi,
    binary: &str,
    event: serde_json::Value,
) -> Result<Duration, String> {
    let at = Instant::now();
    let answer = api.invoke(event, Deadline::After(WAIT), WAIT).await;
    let took = at.elapsed();
    match answer {
        Some(Answer::Response(v)) => events::check(binary, &v).map(|()| took),
        other => Err(format!("{binary}: {other:?}")),
    }
}
