//! The local file: checked before anything is sent, read one part at a time
//! (never whole), and the digests S3 knows parts by (CRC32C, MD5 ETags).

use crate::error::{CliError, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use md5::{Digest, Md5};
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// A regular, readable file and what identifies this version of it.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub canonical: PathBuf,
    pub name: String,
    pub size: u64,
    pub mtime_nanos: u128,
    /// Standard input, spooled to `path`: never resumed.
    pub stdin: bool,
    /// Opened at the first read and closed with the last clone, so a tree of
    /// many files holds descriptors only for the files being sent.
    file: Arc<Lazy>,
}

/// A file opened when first read.
#[derive(Debug, Default)]
struct Lazy(std::sync::Mutex<Option<Arc<File>>>);

impl Lazy {
    fn get(&self, path: &Path) -> Result<Arc<File>> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = held.as_ref() {
            return Ok(f.clone());
        }
        let f = Arc::new(open_file(path)?);
        *held = Some(f.clone());
        Ok(f)
    }

    /// The open file if it is held, else one opened for this read alone:
    /// checksumming a batch of small files ahead of sending them holds no
    /// descriptor for each.
    fn get_or_borrow(&self, path: &Path) -> Result<Arc<File>> {
        let held = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match held {
            Some(f) => Ok(f),
            None => Ok(Arc::new(open_file(path)?)),
        }
    }
}

fn open_file(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => CliError::FileMissing(path.to_path_buf()),
        _ => CliError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })
}

impl Source {
    /// Opens `path`, refusing what is missing, not a regular file, or unreadable.
    pub fn open(path: &Path) -> Result<Source> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => CliError::FileMissing(path.to_path_buf()),
            _ => CliError::Unreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        })?;
        if meta.is_dir() {
            return Err(CliError::IsDirectory(path.to_path_buf()));
        }
        if !meta.is_file() {
            return Err(CliError::Unreadable {
                path: path.to_path_buf(),
                reason: "not a regular file (a pipe, socket or device cannot be resumed)".into(),
            });
        }
        // Readable now, so nothing is sent of a run with an unreadable file;
        // read later through its own descriptor (see `file`).
        drop(open_file(path)?);
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        Ok(Source {
            path: path.to_path_buf(),
            canonical,
            name,
            size: meta.len(),
            mtime_nanos: mtime_nanos(&meta),
            stdin: false,
            file: Arc::default(),
        })
    }

    /// The same file, uploaded under another name (a path under a folder, or stdin's `--name`).
    pub fn named(mut self, name: String) -> Source {
        self.name = name;
        self
    }

    /// Standard input, copied to a file under `dir` first: its parts are read
    /// twice (checksum, then send) and a retry reads a part again, which a
    /// pipe cannot do. The copy is removed by [`Spooled`]'s drop.
    pub fn spool_stdin(dir: &Path, name: &str) -> Result<(Source, Spooled)> {
        std::fs::create_dir_all(dir).map_err(|e| CliError::Unreadable {
            path: dir.to_path_buf(),
            reason: e.to_string(),
        })?;
        let path = dir.join(format!("stdin-{}.part", std::process::id()));
        let spooled = Spooled(path.clone());
        let mut out = File::create(&path).map_err(|e| CliError::Unreadable {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        std::io::copy(&mut std::io::stdin().lock(), &mut out).map_err(|e| {
            CliError::Unreadable {
                path: PathBuf::from("-"),
                reason: e.to_string(),
            }
        })?;
        let src = Source::open(&path)?.named(name.to_string());
        Ok((Source { stdin: true, ..src }, spooled))
    }

    /// The path as the user gave it (`-` for standard input).
    pub fn shown(&self) -> String {
        if self.stdin {
            "-".into()
        } else {
            self.path.display().to_string()
        }
    }

    /// Whether the file on disk is still the version that was opened.
    pub fn unchanged(&self) -> bool {
        std::fs::metadata(&self.path)
            .map(|m| m.len() == self.size && mtime_nanos(&m) == self.mtime_nanos)
            .unwrap_or(false)
    }

    /// A fingerprint of this version of the file, stored with its upload so a
    /// resume through the API never takes another file's upload: size, mtime,
    /// and the CRC32C of the first and the last MiB.
    pub async fn fingerprint(&self) -> Result<String> {
        let head = self.size.min(CHUNK as u64);
        let (first, _) = self.digest(0, head, false).await?;
        let tail_at = self.size.saturating_sub(CHUNK as u64);
        let (last, _) = self.digest(tail_at, self.size - tail_at, false).await?;
        Ok(format!(
            "v1:{}:{}:{first:08x}:{last:08x}",
            self.size, self.mtime_nanos
        ))
    }

    /// The CRC32C (and with `md5`, the MD5) of `len` bytes at `offset`, read
    /// a chunk at a time: memory stays one chunk whatever the part size.
    pub async fn digest(&self, offset: u64, len: u64, md5: bool) -> Result<(u32, Option<String>)> {
        let lazy = self.file.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let file = lazy.get_or_borrow(&path)?;
            let mut buf = vec![0u8; CHUNK.min(len as usize).max(1)];
            let mut crc = 0u32;
            let mut hasher = md5.then(Md5::new);
            let mut at = 0u64;
            while at < len {
                let n = ((len - at) as usize).min(buf.len());
                read_at(&file, &path, &mut buf[..n], offset + at)?;
                crc = crc32c::crc32c_append(crc, &buf[..n]);
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf[..n]);
                }
                at += n as u64;
            }
            Ok((crc, hasher.map(|h| hex::encode(h.finalize()))))
        })
        .await
        .map_err(|e| CliError::Other(format!("reading the file: {e}")))?
    }

    /// `len` bytes at `offset` as a stream of chunks read from disk as the
    /// connection takes them (never the whole part in memory).
    pub fn stream(
        &self,
        offset: u64,
        len: u64,
    ) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        let lazy = self.file.clone();
        let path = self.path.clone();
        futures::stream::try_unfold(0u64, move |at| {
            let lazy = lazy.clone();
            let path = path.clone();
            async move {
                if at >= len {
                    return Ok(None);
                }
                let n = ((len - at) as usize).min(CHUNK);
                let chunk = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; n];
                    let file = lazy
                        .get(&path)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    read_at(&file, &path, &mut buf, offset + at)
                        .map(|_| Bytes::from(buf))
                        .map_err(|e| std::io::Error::other(e.to_string()))
                })
                .await
                .map_err(std::io::Error::other)??;
                Ok(Some((chunk, at + n as u64)))
            }
        })
    }
}

/// Bytes read from disk at a time.
pub const CHUNK: usize = 1024 * 1024;

fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            CliError::FileChanged(path.to_path_buf())
        } else {
            CliError::Unreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        }
    })
}

/// A checksum as S3 writes it: base64 of the big-endian CRC32C.
pub fn crc32c_b64(crc: u32) -> String {
    B64.encode(crc.to_be_bytes())
}

/// A spooled copy of standard input, removed when dropped.
pub struct Spooled(PathBuf);

impl Drop for Spooled {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn mtime_nanos(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_s3s_spelling() {
        // CRC32C("hello") = 0x9a71bb4c
        assert_eq!(
            crc32c_b64(crc32c::crc32c(b"hello")),
            B64.encode([0x9a, 0x71, 0xbb, 0x4c])
        );
    }
}
