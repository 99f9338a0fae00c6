//! The config file (`~/.config/partwise/config.toml`): the API and the token
//! (or a command that prints one) per profile, under what flags and the
//! environment give.
//!
//! ```toml
//! [default]
//! api = "https://uploads.example.com"
//! token_command = "pass show partwise"
//!
//! [profiles.staging]
//! api = "https://staging.example.com"
//! token = "…"
//! ```

use crate::args::Global;
use crate::error::{CliError, Result};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::PathBuf;

/// One profile's settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub api: Option<String>,
    pub token: Option<String>,
    /// Run with `sh -c`; its first line of output is the token.
    pub token_command: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    default: Profile,
    #[serde(default)]
    profiles: HashMap<String, Profile>,
}

/// The API and token in force.
#[derive(Debug, Clone)]
pub struct Conn {
    pub api: String,
    pub token: Option<String>,
}

/// The config file's path (`$PARTWISE_CONFIG`, else the user's config folder).
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PARTWISE_CONFIG") {
        return Some(PathBuf::from(p));
    }
    directories::ProjectDirs::from("", "", "partwise").map(|d| d.config_dir().join("config.toml"))
}

/// Flags and environment first, then the profile, then the defaults.
pub fn resolve(g: &Global) -> Result<Conn> {
    let file = match path() {
        Some(p) if p.exists() => {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?;
            toml::from_str::<File>(&text)
                .map_err(|e| CliError::Usage(format!("{}: {e}", p.display())))?
        }
        _ => File::default(),
    };
    let profile = match &g.profile {
        Some(name) => file.profiles.get(name).cloned().ok_or_else(|| {
            let mut known: Vec<&String> = file.profiles.keys().collect();
            known.sort();
            CliError::Usage(format!(
                "no profile {name:?} in the config file (profiles: {known:?})"
            ))
        })?,
        None => file.default.clone(),
    };
    let api = g
        .api
        .clone()
        .or(profile.api.clone())
        .or(file.default.api.clone())
        .unwrap_or_else(|| "http://127.0.0.1:3000".into());
    let token = match g.token.clone().or(profile.token.clone()) {
        Some(t) => Some(t),
        None => match profile.token_command.as_deref() {
            Some(cmd) => Some(run_token_command(cmd)?),
            None => None,
        },
    };
    Ok(Conn { api, token })
}

fn run_token_command(cmd: &str) -> Result<String> {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| CliError::Usage(format!("token_command {cmd:?}: {e}")))?;
    let token = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if !out.status.success() || token.is_empty() {
        return Err(CliError::Usage(format!(
            "token_command {cmd:?} printed no token (exit {})",
            out.status.code().unwrap_or(-1)
        )));
    }
    Ok(token)
}
