//! `partwise`: parses the command line, runs it, and turns any failure into a
//! short message and an exit code (never a panic or a backtrace).

mod api;
mod args;
mod error;
mod manage;
mod output;
mod resume;
mod s3;
mod signer;
mod source;
mod state;
mod upload;

use args::{Cli, Command};
use clap::Parser;
use error::{CliError, Result};

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
    part_buffers_from_mmap();
    let code = match tokio::runtime::Runtime::new() {
        Ok(rt) => match rt.block_on(interruptible(cli)) {
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

/// glibc raises its mmap threshold after the first large free, and from then on
/// serves multi-MiB part buffers from per-thread arenas that keep freed memory:
/// peak memory drifts far above parallel x part size. A fixed threshold keeps
/// every buffer of 1 MiB or more in its own mapping, returned on free.
fn part_buffers_from_mmap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Runs the command until it ends or Ctrl-C (what was uploaded stays resumable).
async fn interruptible(cli: Cli) -> Result<()> {
    tokio::select! {
        r = run(cli) => r,
        _ = tokio::signal::ctrl_c() => Err(CliError::Interrupted),
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Upload(a) => {
            let part_size = a.part_size.as_deref().map(args::part_size).transpose()?;
            let api = api::Api::new(&a.conn.api, a.conn.token)?;
            let settings = upload::Settings {
                parallel: a.parallel as usize,
                part_size,
                json: a.conn.json,
            };
            upload::run(&api, &a.files, &settings).await
        }
        Command::Ls { conn } => manage::ls(&api::Api::new(&conn.api, conn.token)?, conn.json).await,
        Command::Status { id, conn } => {
            manage::status(&api::Api::new(&conn.api, conn.token)?, &id, conn.json).await
        }
        Command::Abort { id, conn } => {
            manage::abort(&api::Api::new(&conn.api, conn.token)?, &id, conn.json).await
        }
    }
}
