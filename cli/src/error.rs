//! The CLI's one error type: a message a person can act on, and an exit code per kind.

use std::path::PathBuf;

/// Everything that can stop a command. `Display` is the message printed to the user.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CliError {
    /// Bad arguments that clap could not catch (a part size out of range, ...).
    #[error("{0}")]
    Usage(String),
    #[error("{}: no such file", .0.display())]
    FileMissing(PathBuf),
    #[error("{}: is a directory; add --recursive to upload the files under it", .0.display())]
    IsDirectory(PathBuf),
    #[error("{}: cannot read it: {reason}", .path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: the file changed while it was being uploaded; run the command again", .0.display())]
    FileChanged(PathBuf),
    #[error(
        "cannot reach the API at {url}: {reason} (check --api or PARTWISE_API; run the command again to resume)"
    )]
    Unreachable { url: String, reason: String },
    #[error("the API refused the token ({status}): {message} (check --token or PARTWISE_TOKEN)")]
    Auth { status: u16, message: String },
    #[error(
        "the API needs a token and none was given: pass --token, set PARTWISE_TOKEN, or set token or token_command in ~/.config/partwise/config.toml ({status}: {message})"
    )]
    NoToken { status: u16, message: String },
    /// A quota refusal, said in plain words with the usage and the limit.
    #[error("{}", quota_words(.quota, *.usage, *.limit, .message))]
    Quota {
        quota: String,
        usage: u64,
        limit: u64,
        message: String,
    },
    /// Another `partwise` run holds the file's upload record.
    #[error("{}: another partwise run is uploading this file (pid {pid}); wait for it to finish, or stop it and run again", .path.display())]
    Busy { path: PathBuf, pid: String },
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the API answered {status}: {message}")]
    Api { status: u16, message: String },
    /// S3 refused a part because its bytes do not match the checksum signed into its URL.
    #[error(
        "S3 refused part {part} of {}: its bytes do not match the checksum signed for it ({detail}); the file changed or the data was corrupted on the way. Run the command again to resume",
        .path.display()
    )]
    Integrity {
        path: PathBuf,
        part: u32,
        detail: String,
    },
    #[error("uploading part {part} to S3 failed: {detail}; run the command again to resume")]
    Storage { part: u32, detail: String },
    #[error("interrupted; run the same command again to resume")]
    Interrupted,
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// Distinct, documented exit codes (2 is clap's for usage errors).
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Other(_) => 1,
            CliError::Usage(_) => 2,
            CliError::FileMissing(_)
            | CliError::IsDirectory(_)
            | CliError::Unreadable { .. }
            | CliError::FileChanged(_) => 3,
            CliError::Unreachable { .. } => 4,
            CliError::Auth { .. } | CliError::NoToken { .. } => 5,
            CliError::TooLarge(_) => 6,
            CliError::Conflict(_) => 7,
            CliError::NotFound(_) => 8,
            CliError::Api { .. } => 9,
            CliError::Integrity { .. } => 10,
            CliError::Storage { .. } => 11,
            CliError::Quota { .. } => 12,
            CliError::Busy { .. } => 13,
            CliError::Interrupted => 130,
        }
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// `quota exceeded: 3 of 3 live uploads in use (...)` from the refusal's fields.
fn quota_words(quota: &str, usage: u64, limit: u64, message: &str) -> String {
    let human = |n: u64| crate::output::human_bytes(n);
    let what = match quota {
        "liveUploads" => format!("{usage} of {limit} unfinished uploads allowed are in use"),
        "bytesInFlight" => format!(
            "{} of {} allowed in unfinished uploads are in use",
            human(usage),
            human(limit)
        ),
        "uploadsPerMinute" => format!("{usage} of {limit} new uploads a minute were started"),
        other => format!("{other}: {usage} of {limit}"),
    };
    let hint = match quota {
        "uploadsPerMinute" => "wait a minute and run the command again",
        _ => "finish or abort some (partwise ls, partwise abort ID), then run the command again",
    };
    format!("quota reached: {what}; {hint} (the API said: {message})")
}

/// A reqwest failure in words, with its causes (reqwest's own message is often just "error sending request").
pub fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_connect() {
        "connection failed".to_string()
    } else if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    let mut depth = 0;
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
        depth += 1;
        if depth > 4 {
            break;
        }
    }
    msg
}
