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
    file: Arc<File>,
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
        let file = File::open(path).map_err(|e| match e.kind() {
            ErrorKind::NotFound => CliError::FileMissing(path.to_path_buf()),
            _ => CliError::Unreadable {
                path: path.to_path_buf(),
                reason: e.to_string(),
            },
        })?;
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
            file: Arc::new(file),
        })
    }

    /// Whether the file on disk is still the version that was opened.
    pub fn unchanged(&self) -> bool {
        std::fs::metadata(&self.path)
            .map(|m| m.len() == self.size && mtime_nanos(&m) == self.mtime_nanos)
            .unwrap_or(false)
    }

    /// Reads `len` bytes at `offset` off the async runtime, with the part's CRC32C.
    pub async fn read(&self, offset: u64, len: u64) -> Result<Part> {
        let file = self.file.clone();
        let path = self.path.clone();
        let size = self.size;
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, offset).map_err(|e| {
                if e.kind() == ErrorKind::UnexpectedEof {
                    CliError::FileChanged(path.clone())
                } else {
                    CliError::Unreadable {
                        path: path.clone(),
                        reason: e.to_string(),
                    }
                }
            })?;
            let _ = size;
            let crc = crc32c::crc32c(&buf);
            Ok(Part {
                data: Bytes::from(buf),
                crc32c: crc,
            })
        })
        .await
        .map_err(|e| CliError::Other(format!("reading the file: {e}")))?
    }
}

/// One part's bytes and checksum.
pub struct Part {
    pub data: Bytes,
    pub crc32c: u32,
}

impl Part {
    /// The checksum as S3 writes it: base64 of the big-endian CRC.
    pub fn crc32c_b64(&self) -> String {
        B64.encode(self.crc32c.to_be_bytes())
    }

    /// The ETag S3 gives a part uploaded without SSE-KMS: hex MD5 of its bytes.
    pub fn md5_hex(&self) -> String {
        hex::encode(Md5::digest(&self.data))
    }
}

fn mtime_nanos(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// How a file is cut: every part `part_size` bytes but the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub part_size: u64,
    pub part_count: u32,
}

impl Plan {
    pub fn offset(&self, n: u32) -> u64 {
        (n as u64 - 1) * self.part_size
    }

    pub fn len(&self, size: u64, n: u32) -> u64 {
        if n < self.part_count {
            self.part_size
        } else {
            size - self.offset(n)
        }
    }

    /// Whether this plan really cuts a `size`-byte file (a server's answer is checked, not trusted).
    pub fn fits(&self, size: u64) -> bool {
        self.part_size > 0
            && self.part_count >= 1
            && (self.part_count as u64 - 1) * self.part_size < size.max(1)
            && self.part_size * self.part_count as u64 >= size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_cut_files() {
        let p = Plan {
            part_size: 10,
            part_count: 3,
        };
        assert!(p.fits(25));
        assert_eq!(p.len(25, 3), 5);
        assert_eq!(p.offset(3), 20);
        assert!(!p.fits(31));
        assert!(!p.fits(20));
    }

    #[test]
    fn digests_match_s3s_spelling() {
        let part = Part {
            data: Bytes::from_static(b"hello"),
            crc32c: crc32c::crc32c(b"hello"),
        };
        assert_eq!(part.md5_hex(), "5d41402abc4b2a76b9719d911017c592");
        // CRC32C("hello") = 0x9a71bb4c
        assert_eq!(part.crc32c_b64(), B64.encode([0x9a, 0x71, 0xbb, 0x4c]));
    }
}
