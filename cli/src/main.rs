//! `partwise`: parses the command line, runs it, and turns any failure into a
//! short message and an exit code (never a panic or a backtrace).

mod api;
mod args;
mod config;
mod download;
mod error;
mod events;
mod manage;
mod output;
mod pipeline;
mod retry;
mod s3;
mod source;
mod state;
mod walk;

use args::{Cli, Command, Global, UploadArgs};
use clap::{CommandFactory, Parser};
use error::{CliError, Result};
use events::{Events, Plain};
use output::{Level, Output, human_bytes};
use retry::Retry;
use std::sync::Arc;

fn main() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("partwise: internal error ({what}); this is a bug, please report it");
    }));
    let cli = Cli::parse();
    more_open_files();
    chunks_from_mmap();
    let code = match tokio::runtime::Runtime::new() {
        Ok(rt) => match rt.block_on(run(cli)) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("partwise: {e}");
                e.exit_code()
            }
        },
        Err(e) => {
            eprintln!("partwise: cannot start: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// A run over a big tree holds a descriptor per file (and per lock): the soft
/// limit is raised to the hard one, as far as the system allows.
fn more_open_files() {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// glibc raises its mmap threshold after the first large free, and from then
/// on serves the 1 MiB read chunks from per-thread arenas that keep freed
/// memory. A fixed threshold keeps each chunk in its own mapping, returned
/// the moment S3 has taken it.
fn chunks_from_mmap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 * 1024);
    }
}

fn level(g: &Global) -> Level {
    if g.quiet {
        Level::Quiet
    } else if g.verbose {
        Level::Verbose
    } else {
        Level::Normal
    }
}

/// The API client for the resolved profile, its retries told to `events`.
fn api(g: &Global, events: Events) -> Result<api::Api> {
    let conn = config::resolve(g)?;
    api::Api::new(&conn.api, conn.token, Retry::new(g.retry_for, events))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        // `upload` takes Ctrl-C itself, so its bars end by saying where it
        // stopped; raced against another, it was dropped mid-draw.
        Command::Upload(a) => upload(&cli.global, a).await,
        command => interruptible(&cli.global, command).await,
    }
}

/// Every other command, ended by Ctrl-C wherever it is.
async fn interruptible(g: &Global, command: Command) -> Result<()> {
    let plain = || {
        Events::new(Arc::new(Plain {
            quiet: g.quiet,
            verbose: g.verbose,
        }))
    };
    let work = async {
        match command {
            Command::Upload(a) => upload(g, a).await,
            Command::Get(a) => {
                let api = api(g, plain())?;
                download::get(&api, &a.what, a.dest.as_deref(), g.json, level(g)).await
            }
            Command::Ls => manage::ls(&api(g, plain())?, g.json).await,
            Command::Status { id } => manage::status(&api(g, plain())?, &id, g.json).await,
            Command::Abort { id } => manage::abort(&api(g, plain())?, &id, g.json).await,
            Command::Quota => manage::quota(&api(g, plain())?, g.json).await,
            Command::Completions { shell } => {
                // Into a buffer first: clap_complete panics on a closed pipe (`| head`).
                let mut script = Vec::new();
                clap_complete::generate(shell, &mut Cli::command(), "partwise", &mut script);
                use std::io::Write;
                let _ = std::io::stdout().write_all(&script);
                Ok(())
            }
        }
    };
    tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
    }
}

async fn upload(g: &Global, a: UploadArgs) -> Result<()> {
    let part_size = a.part_size.as_deref().map(args::part_size).transpose()?;
    // Every file is checked before anything is sent: a typo leaves nothing in S3.
    let (sources, _spooled) = walk::sources(&a)?;
    let total: u64 = sources.iter().map(|s| s.size).sum();
    if a.dry_run {
        return dry_run(g, &sources, part_size);
    }
    let out = Output::new(g.json, level(g), total, sources.len());
    let events = Events::new(out.clone());
    let api = api(g, events.clone())?;
    let settings = pipeline::Settings {
        parallel: a.parallel as usize,
        part_size,
        content_type: a.content_type.clone(),
        meta: a.meta.iter().cloned().collect(),
    };
    let result = tokio::select! {
        r = pipeline::run(&api, sources, &settings, events) => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
    };
    out.done(result.is_ok());
    result
}

/// `--dry-run`: the plan the server would make for each file, nothing sent.
fn dry_run(g: &Global, sources: &[source::Source], part_size: Option<u64>) -> Result<()> {
    let preferred = part_size.unwrap_or(16 * args::MIB);
    let mut parts_total = 0u64;
    for s in sources {
        let plan = pipeline::server_plan(s.size, preferred);
        parts_total += plan.part_count as u64;
        if g.json {
            println!(
                "{}",
                serde_json::json!({
                    "file": s.shown(),
                    "size": s.size,
                    "partSize": plan.part_size,
                    "partCount": plan.part_count,
                })
            );
        } else {
            println!(
                "{}  {}: {} part{} of {}",
                s.shown(),
                human_bytes(s.size),
                plan.part_count,
                if plan.part_count == 1 { "" } else { "s" },
                human_bytes(plan.part_size)
            );
        }
    }
    if !g.json {
        let total: u64 = sources.iter().map(|s| s.size).sum();
        println!(
            "{} file{}, {}, {parts_total} parts; nothing sent (--dry-run)",
            sources.len(),
            if sources.len() == 1 { "" } else { "s" },
            human_bytes(total)
        );
    }
    Ok(())
}
