//! Command-line arguments (clap derive) and the human sizes they take.

use crate::error::{CliError, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

pub const MIB: u64 = 1024 * 1024;
pub const GIB: u64 = 1024 * MIB;
/// S3's smallest and largest part.
pub const MIN_PART_SIZE: u64 = 5 * MIB;
pub const MAX_PART_SIZE: u64 = 5 * GIB;

/// Upload big files through the Partwise API: parallel parts, progress, resume, checksums.
#[derive(Debug, Parser)]
#[command(name = "partwise", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Where the API is and who the caller is.
#[derive(Debug, Args, Clone)]
pub struct Conn {
    /// Base URL of the Partwise API.
    #[arg(long, env = "PARTWISE_API", default_value = "http://127.0.0.1:3000")]
    pub api: String,
    /// Bearer token sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "PARTWISE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of bars and tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Upload files; an unfinished upload of the same file is resumed.
    Upload(UploadArgs),
    /// List your uploads, unfinished first.
    Ls {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show one upload.
    Status {
        /// The upload id (from `partwise ls`).
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// Abort one upload; S3 drops its parts.
    Abort {
        /// The upload id (from `partwise ls`).
        id: String,
        #[command(flatten)]
        conn: Conn,
    },
}

#[derive(Debug, Args)]
pub struct UploadArgs {
    /// Files to upload.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Parts in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Preferred part size (5MiB to 5GiB, e.g. `64MiB`); the server's plan decides.
    #[arg(long, value_name = "SIZE")]
    pub part_size: Option<String>,
    #[command(flatten)]
    pub conn: Conn,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
