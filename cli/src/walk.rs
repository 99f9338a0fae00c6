//! The files an upload names: plain files as given, directories (with
//! `--recursive`) walked and filtered by `--include`/`--exclude` globs, and
//! `-` (standard input, with `--name`). Every file is checked before anything
//! is sent.

use crate::args::UploadArgs;
use crate::error::{CliError, Result};
use crate::source::{Source, Spooled};
use globset::{Glob, GlobSet, GlobSetBuilder};
use std::path::Path;

/// The run's files, and the spooled copy of standard input if `-` was given.
pub fn sources(a: &UploadArgs) -> Result<(Vec<Source>, Option<Spooled>)> {
    let include = globs(&a.include, "--include")?;
    let exclude = globs(&a.exclude, "--exclude")?;
    let mut out = Vec::new();
    let mut spooled = None;
    for p in &a.paths {
        if p.as_os_str() == "-" {
            let name = a.name.as_deref().ok_or_else(|| {
                CliError::Usage(
                    "\"-\" reads standard input: give it a file name with --name NAME".into(),
                )
            })?;
            if spooled.is_some() {
                return Err(CliError::Usage("\"-\" can be given once".into()));
            }
            let dir = crate::state::dir().unwrap_or_else(std::env::temp_dir);
            let (src, s) = Source::spool_stdin(&dir, name)?;
            out.push(src);
            spooled = Some(s);
        } else if p.is_dir() {
            if !a.recursive {
                return Err(CliError::IsDirectory(p.clone()));
            }
            walk(p, &include, &exclude, &mut out)?;
        } else {
            let src = Source::open(p)?;
            out.push(match (&a.name, a.paths.len()) {
                (Some(n), 1) => src.named(n.clone()),
                _ => src,
            });
        }
    }
    if out.is_empty() {
        return Err(CliError::Usage(
            "no files to upload (the globs matched nothing?)".into(),
        ));
    }
    Ok((out, spooled))
}

fn globs(patterns: &[String], flag: &str) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(Glob::new(p).map_err(|e| CliError::Usage(format!("{flag} {p:?}: {e}")))?);
    }
    b.build()
        .map(Some)
        .map_err(|e| CliError::Usage(format!("{flag}: {e}")))
}

/// Regular files under `root`, sorted, filtered by their path under it.
fn walk(
    root: &Path,
    include: &Option<GlobSet>,
    exclude: &Option<GlobSet>,
    out: &mut Vec<Source>,
) -> Result<()> {
    for entry in walkdir::WalkDir::new(root).sort_by_file_name() {
        let entry = entry.map_err(|e| CliError::Unreadable {
            path: e.path().unwrap_or(root).to_path_buf(),
            reason: e.to_string(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry.path().strip_prefix(root).unwrap_or(entry.path());
        if include.as_ref().is_some_and(|g| !g.is_match(rel))
            || exclude.as_ref().is_some_and(|g| g.is_match(rel))
        {
            continue;
        }
        out.push(Source::open(entry.path())?);
    }
    Ok(())
}
