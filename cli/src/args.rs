//! Command-line arguments (clap derive) and the human sizes and durations they take.

use crate::error::{CliError, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
/// S3's smallest and largest part.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const MAX_PART_SIZE: u64 = 5 * GIB;

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "partwise",
    version,
    about = "Upload big files through the Partwise API: parallel parts, progress, resume, checksums.",
    long_about = None
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes, before or after its name.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Base URL of the Partwise API [default: the profile's, else http://127.0.0.1:3000]
    #[arg(long, env = "PARTWISE_API", global = true, value_name = "URL")]
    pub api: Option<String>,
    /// Bearer token, sent as "Authorization: Bearer TOKEN" [default: the profile's]
    #[arg(
        long,
        env = "PARTWISE_TOKEN",
        hide_env_values = true,
        global = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// Profile of ~/.config/partwise/config.toml to use
    #[arg(long, env = "PARTWISE_PROFILE", global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// Print JSON lines instead of bars and tables
    #[arg(long, global = true)]
    pub json: bool,
    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more: each retry and its reason
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// How long to keep retrying through an outage of the API or S3 (e.g. 10m, 90s, 2h)
    #[arg(long, global = true, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub retry_for: Duration,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload files; an unfinished upload of the same file is resumed.
    Upload(UploadArgs),
    /// Download a completed upload; an interrupted download is resumed.
    Get(GetArgs),
    /// List your uploads, unfinished first, and your quota.
    Ls,
    /// Show one upload (by id or a unique prefix of it).
    Status {
        /// The upload id, or a unique prefix of it (from partwise ls).
        id: String,
    },
    /// Abort one upload; S3 drops its parts.
    Abort {
        /// The upload id, or a unique prefix of it (from partwise ls).
        id: String,
    },
    /// Show your quota: live uploads, bytes in flight, uploads per minute.
    Quota,
    /// Print a shell completion script (e.g. partwise completions bash > /etc/bash_completion.d/partwise).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files or (with --recursive) directories to upload; "-" reads standard input (with --name).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Upload the files under directories, at any depth.
    #[arg(short, long)]
    pub recursive: bool,
    /// Only files whose path under the directory matches this glob (repeatable, e.g. '*.mp4').
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Skip files whose path under the directory matches this glob (repeatable).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// The file name to upload standard input ("-") as.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Parts in flight at once, across every file.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Preferred part size (5MiB to 5GiB, e.g. 64MiB); the server's plan decides.
    #[arg(long, value_name = "SIZE")]
    pub part_size: Option<String>,
    /// Content type for every file [default: guessed from each name]
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<String>,
    /// Metadata stored with each upload (repeatable, e.g. --meta project=alpha).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub meta: Vec<(String, String)>,
    /// Show the plan (files, parts, sizes) and send nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// A completed upload: its id, a unique prefix of it, or its key.
    pub what: String,
    /// Where to write it [default: the upload's file name, here]
    pub dest: Option<PathBuf>,
}

/// Parses `1048576`, `64MiB`, `5 GiB`, `100MB` (decimal units), `8M` (binary).
pub fn parse_size(v: &str) -> Result<u64> {
    let bad = || CliError::Usage(format!("{v:?} is not a size (e.g. 16MiB, 1GiB, 8388608)"));
    let t = v.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1024,
        "m" | "mib" => MIB,
        "g" | "gib" => GIB,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

/// A `--part-size` S3 can take.
pub fn part_size(v: &str) -> Result<u64> {
    let n = parse_size(v).map_err(|e| CliError::Usage(format!("--part-size: {e}")))?;
    if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&n) {
        return Err(CliError::Usage(format!(
            "--part-size {v}: S3 parts are 5MiB to 5GiB"
        )));
    }
    Ok(n)
}

/// `90s`, `10m`, `2h`, `1h30m`, `600` (seconds), `0` (no retrying).
pub fn parse_duration(v: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("{v:?} is not a duration (e.g. 90s, 10m, 2h)");
    let t = v.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
    }
    if !digits.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// `key=value` for `--meta`.
fn parse_meta(v: &str) -> std::result::Result<(String, String), String> {
    match v.split_once('=') {
        Some((k, val)) if !k.trim().is_empty() => Ok((k.trim().to_string(), val.to_string())),
        _ => Err(format!("{v:?}: expected KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 * MIB);
        assert_eq!(parse_size("8M").unwrap(), 8 * MIB);
        assert_eq!(parse_size("5 GiB").unwrap(), 5 * GIB);
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-5MiB").is_err());
        assert!(parse_size("99999999999999GiB").is_err());
        assert!(part_size("4MiB").is_err());
        assert!(part_size("6GiB").is_err());
        assert_eq!(part_size("5MiB").unwrap(), MIN_PART_SIZE);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
    }

    #[test]
    fn global_options_go_anywhere_and_none_is_shown_as_required() {
        let c = Cli::try_parse_from(["partwise", "--token", "x", "ls"]).unwrap();
        assert_eq!(c.global.token.as_deref(), Some("x"));
        let c = Cli::try_parse_from(["partwise", "ls", "--token", "y", "-q"]).unwrap();
        assert_eq!(c.global.token.as_deref(), Some("y"));
        assert!(c.global.quiet);
        let usage = Cli::command().render_usage().to_string();
        assert!(!usage.contains("--api"), "{usage}");
        let about = Cli::command().render_help().to_string();
        assert!(!about.contains('`'), "{about}");
    }
}
