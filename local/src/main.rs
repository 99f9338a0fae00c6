//! `partwise-local`: Partwise on one machine.
//!
//! - `partwise-local stack [--env-file F]`: start Garage + DynamoDB Local, print
//!   (and write to F) `export K=V` lines for them, run until SIGINT/SIGTERM.
//! - `partwise-local serve [--port P] [--anonymous] [--allowed-origins O,O] [--no-dev-auth] [--env-file F] [--web DIR]`:
//!   the same stack plus the HTTP API on 127.0.0.1 (and the upload page at `/`), run until Ctrl-C.
//! - `partwise-local seed` / `census`: make a backlog of stale uploads on a
//!   running stack, and count what S3 and the table hold (for trying the sweep).
//! - `partwise-local api` / `sweep`: the HTTP API, or one sweep run, on a
//!   running stack, in a process of its own (the crash tests kill it).

use clap::{Parser, Subcommand};
use partwise_local::stack::vars;
use partwise_local::stand_ins::s3_events::{self, S3Events};
use partwise_local::{Page, ServerOptions, Stack, StackPlan, backlog, spawn};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

// Counts live heap bytes for `serve --heap-stats` (see `partwise_local::heap`).
#[global_allocator]
static ALLOCATOR: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

#[derive(Debug, Parser, PartialEq, Eq)]
#[command(
    name = "partwise-local",
    about = "Partwise on one machine: Garage + DynamoDB Local and the HTTP API on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand, PartialEq, Eq)]
enum Command {
    /// Start Garage + DynamoDB Local on free loopback ports; print `export K=V`
    /// lines for them; stop on SIGINT/SIGTERM.
    Stack {
        /// Also write the export lines to this file (removed on stop).
        #[arg(long)]
        env_file: Option<PathBuf>,
    },
    /// Start the stack and the HTTP API on 127.0.0.1:PORT.
    Serve {
        /// Port on 127.0.0.1 (0 = any free one).
        #[arg(long, default_value_t = 3000)]
        port: u16,
        /// Accept callers without identity (PARTWISE_ANONYMOUS=true).
        #[arg(long)]
        anonymous: bool,
        /// Origins allowed by CORS, comma-separated, on the API and the
        /// bucket alike (template.yaml's AllowedOrigins; default `*`).
        #[arg(long, env = "PARTWISE_ALLOWED_ORIGINS")]
        allowed_origins: Option<String>,
        /// No authorizer at all (only --anonymous callers get through). By
        /// default DEV MODE trusts bearer tokens unverified.
        #[arg(long)]
        no_dev_auth: bool,
        /// Also write the stack's export lines (and PARTWISE_API) to this file.
        #[arg(long)]
        env_file: Option<PathBuf>,
        /// Serve the upload page from this directory at `/` (built by scripts/build-web.sh).
        #[arg(long)]
        web: Option<PathBuf>,
        /// Write the live heap's size in bytes to this file four times a
        /// second (the load bench reads it to tell a leak from freed memory
        /// the allocator keeps).
        #[arg(long)]
        heap_stats: Option<PathBuf>,
    },
    /// Create stale uploads on the running stack named by the environment
    /// (source the env file first): tracked ones and orphans. Prints JSON.
    Seed {
        /// Uploads tracked in the table (an S3 upload and its ACTIVE item).
        #[arg(long, default_value_t = 0)]
        tracked: usize,
        /// Uploads in S3 that no item tracks.
        #[arg(long, default_value_t = 0)]
        orphans: usize,
    },
    /// Serve the HTTP API (DEV MODE auth) on the running stack named by the
    /// environment, with no stack of its own; prints `PARTWISE_API=<url>`.
    Api,
    /// Run one sweep on the running stack named by the environment; prints
    /// the summary JSON.
    Sweep {
        /// The sweep's payload (`{"max_age_secs": 0}`, ...); none = a scheduled run.
        #[arg(long)]
        payload: Option<String>,
    },
    /// Count the multipart uploads S3 lists and the live items the table holds
    /// under a prefix, on the running stack named by the environment. Prints JSON.
    Census {
        /// Key prefix (default: PARTWISE_KEY_PREFIX, else `uploads/`).
        #[arg(long)]
        prefix: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let result = match cli.command {
        Command::Stack { env_file } => {
            runtime().and_then(|rt| rt.block_on(run_stack(env_file.as_deref())))
        }
        Command::Serve {
            port,
            anonymous,
            allowed_origins,
            no_dev_auth,
            env_file,
            web,
            heap_stats,
        } => serve(
            port,
            anonymous,
            allowed_origins.as_deref(),
            !no_dev_auth,
            env_file.as_deref(),
            web.as_deref(),
            heap_stats,
        ),
        Command::Seed { tracked, orphans } => {
            runtime().and_then(|rt| rt.block_on(seed(tracked, orphans)))
        }
        Command::Census { prefix } => runtime().and_then(|rt| rt.block_on(census(prefix))),
        Command::Api => runtime().and_then(|rt| rt.block_on(api())),
        Command::Sweep { payload } => runtime().and_then(|rt| rt.block_on(sweep(payload))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("partwise-local: {e}");
            ExitCode::FAILURE
        }
    }
}

type AnyError = Box<dyn std::error::Error>;

fn runtime() -> Result<tokio::runtime::Runtime, AnyError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Resolves on the first SIGINT or SIGTERM. Created before anything starts, so
/// a signal during start-up still ends in a clean stop.
fn stop_signal() -> Result<impl Future<Output = ()>, AnyError> {
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

async fn run_stack(env_file: Option<&Path>) -> Result<(), AnyError> {
    let stopped = stop_signal()?;
    tokio::pin!(stopped);
    let stack = tokio::select! {
        s = Stack::start() => s?,
        _ = &mut stopped => return Err("interrupted during start-up".into()),
    };
    let exports = export_lines(&stack);
    if let Some(path) = env_file {
        write_whole(path, &exports)?;
    }
    print!("{exports}");
    if let Some(dir) = stack.dir() {
        eprintln!(
            "# local stack running (data and logs in {}); Ctrl-C or SIGTERM to stop",
            dir.display()
        );
    }
    stopped.await;
    eprintln!("# stopping the local stack");
    if let Some(path) = env_file {
        let _ = std::fs::remove_file(path);
    }
    stack.stop();
    Ok(())
}

/// Written whole then renamed: whoever waits for the file never reads half of it.
fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// `export K='V'` for every stack variable.
fn export_lines(stack: &Stack) -> String {
    vars::ALL
        .iter()
        .filter_map(|k| Some(format!("export {k}={}\n", shell_quote(stack.var(k)?))))
        .collect()
}

fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

fn serve(
    port: u16,
    anonymous: bool,
    allowed_origins: Option<&str>,
    dev_auth: bool,
    env_file: Option<&Path>,
    web: Option<&Path>,
    heap_stats: Option<PathBuf>,
) -> Result<(), AnyError> {
    // Checked before anything starts, so a wrong directory fails fast.
    let page = web
        .map(Page::new)
        .transpose()
        .map_err(|e| format!("--web: {e}"))?;
    let plan = StackPlan::new()?;
    // S3's notifications: the handlers (and so the presigned URLs they hand
    // out) talk to S3 through a loopback transport in front of Garage, bound
    // now so that its address can go into the environment below.
    let notifications = std::net::TcpListener::bind("127.0.0.1:0")?;
    let garage_url = plan
        .env()
        .get(vars::S3_ENDPOINT)
        .cloned()
        .unwrap_or_default();
    let transport_url = format!("http://{}", notifications.local_addr()?);
    // The stack's variables go into our own environment so that the handlers'
    // context is built by `Context::from_env`, exactly as in a Lambda.
    for (k, v) in plan.env() {
        let v = if k == vars::S3_ENDPOINT {
            transport_url.clone()
        } else {
            v
        };
        // SAFETY: no other thread exists yet (the runtime is built below), so
        // nothing can read the environment while it changes.
        unsafe { std::env::set_var(k, v) };
    }
    if anonymous {
        // SAFETY: as above, still single-threaded.
        unsafe { std::env::set_var("PARTWISE_ANONYMOUS", "true") };
    }
    if let Some(origins) = allowed_origins {
        // The template reads it (`Template::bundled`) for the bucket's CORS
        // rules and the API's alike. SAFETY: as above, still single-threaded.
        unsafe { std::env::set_var("PARTWISE_ALLOWED_ORIGINS", origins) };
    }
    runtime()?.block_on(async move {
        let stopped = stop_signal()?;
        tokio::pin!(stopped);
        let stack = tokio::select! {
            s = plan.start() => s?,
            _ = &mut stopped => return Err("interrupted during start-up".into()),
        };
        let ctx = Arc::new(partwise::Context::from_env().await?);
        // Every event the stack would publish, one JSON line on stderr.
        let events = partwise_local::events::watch(&stack, &ctx).await?;
        // S3's "Object Created" notifications, one JSON line each on stderr
        // too, handed to the `settle` handler.
        let garage: std::net::SocketAddr = garage_url
            .trim_start_matches("http://")
            .parse()
            .map_err(|e| format!("Garage's endpoint {garage_url}: {e}"))?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let transport = S3Events::on(notifications, garage, stack.s3().clone(), sender)?;
        let settling = s3_events::deliver(ctx.clone(), receiver, |line| eprintln!("{line}"));
        let heap = heap_stats.map(partwise_local::heap::write_every_quarter_second);
        let opts = ServerOptions {
            port,
            dev_auth,
            page: page.clone(),
            ..ServerOptions::default()
        };
        let (addr, server) = spawn(ctx, opts).await?;
        // Clients of this server's S3 go through the transport too, so their
        // uploads are notified as on AWS.
        let mut exports = export_lines(&stack).replace(
            &format!("export {}={}", vars::S3_ENDPOINT, shell_quote(&garage_url)),
            &format!("export {}={}", vars::S3_ENDPOINT, shell_quote(&transport.url())),
        );
        exports.push_str(&format!("export PARTWISE_API={}\n", shell_quote(&format!("http://{addr}"))));
        if anonymous {
            exports.push_str("export PARTWISE_ANONYMOUS='true'\n");
        }
        println!("Partwise API: http://{addr}");
        if page.is_some() {
            println!("Upload page: http://{addr}/");
        }
        println!("  bucket {} and table {} on the local stack", stack.bucket(), stack.table());
        println!("The stack's variables (for cargo lambda, the sweep, the SDKs):");
        print!("{}", exports.lines().map(|l| format!("  {l}\n")).collect::<String>());
        if let Some(path) = env_file {
            write_whole(path, &exports)?;
            println!("  (also in {}: `source {}`)", path.display(), path.display());
        }
        println!("Try:");
        println!(
            "  curl -s -X POST http://{addr}/s3/multipart -H 'Authorization: Bearer alice' \\\n    \
             -H 'Content-Type: application/json' -d '{{\"filename\":\"cat.jpg\",\"type\":\"image/jpeg\",\"metadata\":{{}}}}'"
        );
        if !dev_auth && !anonymous {
            println!("  (no --anonymous and no dev auth: every call will be refused as unauthenticated)");
        }
        println!("Ctrl-C to stop.");
        stopped.await;
        eprintln!("# stopping");
        events.abort();
        settling.abort();
        drop(transport);
        if let Some(h) = heap {
            h.abort();
        }
        if let Some(path) = env_file {
            let _ = std::fs::remove_file(path);
        }
        server.shutdown().await;
        stack.stop();
        Ok(())
    })
}

/// The context of the running stack the environment names (a sourced env file).
async fn env_context() -> Result<partwise::Context, AnyError> {
    if std::env::var_os("AWS_ENDPOINT_URL_S3").is_none() {
        return Err(
            "no local stack in the environment: start `scripts/dev.sh` (or \
                    `partwise-local stack --env-file F`) and `source` the env file it names"
                .into(),
        );
    }
    Ok(partwise::Context::from_env().await?)
}

async fn seed(tracked: usize, orphans: usize) -> Result<(), AnyError> {
    let ctx = env_context().await?;
    let n = tracked + orphans;
    backlog::uploads(&ctx, n, tracked, 32).await?;
    println!(
        "{}",
        serde_json::json!({"tracked": tracked, "orphans": orphans, "prefix": ctx.config.key_prefix})
    );
    Ok(())
}

async fn census(prefix: Option<String>) -> Result<(), AnyError> {
    let ctx = env_context().await?;
    let prefix = prefix.unwrap_or_else(|| ctx.config.key_prefix.clone());
    let c = backlog::census(&ctx, &prefix).await?;
    println!("{}", serde_json::to_string(&c)?);
    Ok(())
}

async fn api() -> Result<(), AnyError> {
    let stopped = stop_signal()?;
    let ctx = Arc::new(env_context().await?);
    let (addr, server) = spawn(ctx, ServerOptions::dev()).await?;
    println!("PARTWISE_API=http://{addr}");
    stopped.await;
    server.shutdown().await;
    Ok(())
}

async fn sweep(payload: Option<String>) -> Result<(), AnyError> {
    let ctx = env_context().await?;
    let event = match payload {
        Some(p) => serde_json::from_str(&p)?,
        None => serde_json::Value::Null,
    };
    let summary = partwise::sweep::handle(&ctx, event, None).await?;
    println!("{}", serde_json::to_string(&summary)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("partwise-local").chain(v.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn arguments_parse() {
        assert_eq!(
            parse(&["stack", "--env-file", "/tmp/e"]).unwrap(),
            Command::Stack {
                env_file: Some("/tmp/e".into())
            }
        );
        assert_eq!(
            parse(&["serve"]).unwrap(),
            Command::Serve {
                port: 3000,
                anonymous: false,
                allowed_origins: None,
                no_dev_auth: false,
                env_file: None,
                web: None,
                heap_stats: None,
            }
        );
        assert_eq!(
            parse(&[
                "serve",
                "--port",
                "0",
                "--anonymous",
                "--allowed-origins",
                "https://a.example,https://b.example",
                "--no-dev-auth",
                "--env-file",
                "e",
                "--web",
                "w",
                "--heap-stats",
                "h"
            ])
            .unwrap(),
            Command::Serve {
                port: 0,
                anonymous: true,
                allowed_origins: Some("https://a.example,https://b.example".into()),
                no_dev_auth: true,
                env_file: Some("e".into()),
                web: Some("w".into()),
                heap_stats: Some("h".into()),
            }
        );
        assert_eq!(
            parse(&["seed", "--tracked", "2", "--orphans", "3"]).unwrap(),
            Command::Seed {
                tracked: 2,
                orphans: 3
            }
        );
        assert!(parse(&["serve", "--port", "x"]).is_err());
        assert!(parse(&["stack", "--env-file"]).is_err());
        assert!(parse(&["seed", "--tracked", "-1"]).is_err());
        assert_eq!(parse(&["api"]).unwrap(), Command::Api);
        assert_eq!(
            parse(&["sweep", "--payload", "{}"]).unwrap(),
            Command::Sweep {
                payload: Some("{}".into())
            }
        );
        assert!(parse(&["nope"]).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn values_are_shell_quoted() {
        assert_eq!(shell_quote("http://127.0.0.1:1"), "'http://127.0.0.1:1'");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
