//! `partwise-local`: Partwise on one machine.
//!
//! - `partwise-local stack [--env-file F]`: start Garage + DynamoDB Local, print
//!   (and write to F) `export K=V` lines for them, run until SIGINT/SIGTERM.
//! - `partwise-local serve [--port P] [--anonymous] [--no-dev-auth]`: the same
//!   stack plus the HTTP API on 127.0.0.1, run until Ctrl-C.

use partwise_local::stack::vars;
use partwise_local::{ServerOptions, Stack, StackPlan, spawn};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "\
usage:
  partwise-local stack [--env-file FILE]
      Start Garage + DynamoDB Local on free loopback ports; print `export K=V`
      lines for them (and write them to FILE); stop on SIGINT/SIGTERM.
  partwise-local serve [--port PORT] [--anonymous] [--dev-auth | --no-dev-auth]
      Start the stack and the HTTP API on 127.0.0.1:PORT (default 3000; 0 = any).
      --anonymous    accept callers without identity (PARTWISE_ANONYMOUS=true)
      --dev-auth     DEV MODE, on by default: trust bearer tokens unverified
      --no-dev-auth  no authorizer at all (only --anonymous callers get through)";

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Stack {
        env_file: Option<PathBuf>,
    },
    Serve {
        port: u16,
        anonymous: bool,
        dev_auth: bool,
    },
    Help,
}

fn parse(args: &[String]) -> Result<Command, String> {
    let Some((sub, rest)) = args.split_first() else {
        return Err("missing subcommand".into());
    };
    let mut rest = rest.iter();
    match sub.as_str() {
        "stack" => {
            let mut env_file = None;
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "--env-file" => {
                        env_file =
                            Some(PathBuf::from(rest.next().ok_or("--env-file needs a path")?))
                    }
                    other => return Err(format!("unknown argument {other:?}")),
                }
            }
            Ok(Command::Stack { env_file })
        }
        "serve" => {
            let (mut port, mut anonymous, mut dev_auth) = (3000, false, true);
            while let Some(a) = rest.next() {
                match a.as_str() {
                    "--port" => {
                        let p = rest.next().ok_or("--port needs a number")?;
                        port = p
                            .parse()
                            .map_err(|_| format!("--port: {p:?} is not a port"))?;
                    }
                    "--anonymous" => anonymous = true,
                    "--dev-auth" => dev_auth = true,
                    "--no-dev-auth" => dev_auth = false,
                    other => return Err(format!("unknown argument {other:?}")),
                }
            }
            Ok(Command::Serve {
                port,
                anonymous,
                dev_auth,
            })
        }
        "help" | "-h" | "--help" => Ok(Command::Help),
        other => Err(format!("unknown subcommand {other:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("partwise-local: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    let result = match command {
        Command::Help => {
            println!("{USAGE}");
            Ok(())
        }
        Command::Stack { env_file } => {
            runtime().and_then(|rt| rt.block_on(run_stack(env_file.as_deref())))
        }
        Command::Serve {
            port,
            anonymous,
            dev_auth,
        } => serve(port, anonymous, dev_auth),
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
        // Written whole then renamed: whoever waits for the file never reads half of it.
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, &exports)?;
        std::fs::rename(&tmp, path)?;
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

fn serve(port: u16, anonymous: bool, dev_auth: bool) -> Result<(), AnyError> {
    let plan = StackPlan::new()?;
    // The stack's variables go into our own environment so that the handlers'
    // context is built by `Context::from_env`, exactly as in a Lambda.
    for (k, v) in plan.env() {
        // SAFETY: no other thread exists yet (the runtime is built below), so
        // nothing can read the environment while it changes.
        unsafe { std::env::set_var(k, v) };
    }
    if anonymous {
        // SAFETY: as above, still single-threaded.
        unsafe { std::env::set_var("PARTWISE_ANONYMOUS", "true") };
    }
    runtime()?.block_on(async move {
        let stopped = stop_signal()?;
        tokio::pin!(stopped);
        let stack = tokio::select! {
            s = plan.start() => s?,
            _ = &mut stopped => return Err("interrupted during start-up".into()),
        };
        let ctx = Arc::new(partwise::Context::from_env().await?);
        let opts = ServerOptions {
            port,
            dev_auth,
            ..ServerOptions::default()
        };
        let (addr, server) = spawn(ctx, opts).await?;
        println!("Partwise API: http://{addr}");
        println!("  bucket {} and table {} on the local stack", stack.bucket(), stack.table());
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
        server.shutdown().await;
        stack.stop();
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_parse() {
        assert_eq!(
            parse(&args(&["stack", "--env-file", "/tmp/e"])),
            Ok(Command::Stack {
                env_file: Some("/tmp/e".into())
            })
        );
        assert_eq!(
            parse(&args(&["serve"])),
            Ok(Command::Serve {
                port: 3000,
                anonymous: false,
                dev_auth: true
            })
        );
        assert_eq!(
            parse(&args(&[
                "serve",
                "--port",
                "0",
                "--anonymous",
                "--no-dev-auth"
            ])),
            Ok(Command::Serve {
                port: 0,
                anonymous: true,
                dev_auth: false
            })
        );
        assert!(parse(&args(&["serve", "--port", "x"])).is_err());
        assert!(parse(&args(&["stack", "--env-file"])).is_err());
        assert!(parse(&args(&["nope"])).is_err());
        assert!(parse(&[]).is_err());
    }

    #[test]
    fn values_are_shell_quoted() {
        assert_eq!(shell_quote("http://127.0.0.1:1"), "'http://127.0.0.1:1'");
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
    }
}
