//! The harness: the API served in-process over the local stack, the real
//! `partwise` binary run as a subprocess, and S3 read back with the SDK.

// Each test binary uses part of the harness.
#![allow(dead_code)]

pub mod proxy;

use partwise_local::{ServerHandle, ServerOptions, Stack, spawn};
use proxy::Proxy;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

pub const MIB: usize = 1024 * 1024;

/// One test's world: a server, a caller of its own, a scratch folder.
pub struct Env {
    pub stack: Stack,
    pub server: ServerHandle,
    pub owner: String,
    pub dir: PathBuf,
    pub proxy: Option<Proxy>,
    cache: PathBuf,
}

/// What a CLI run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The JSON lines printed on stdout.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl Env {
    /// 5 MiB parts (S3's minimum) keep tests small; `overrides` adds settings.
    pub async fn new(overrides: &[(&str, &str)]) -> Env {
        let stack = match Stack::from_env_or_start().await {
            Ok(s) => s,
            Err(e) => panic!("local stack: {e}"),
        };
        let mut settings = vec![("PARTWISE_PART_SIZE", "5MiB")];
        settings.extend_from_slice(overrides);
        let ctx = Arc::new(stack.context_with(&settings).unwrap());
        let (_, server) = spawn(ctx, ServerOptions::dev()).await.unwrap();
        let owner = Stack::unique_name("cli");
        let dir = std::env::temp_dir().join(&owner);
        std::fs::create_dir_all(&dir).unwrap();
        let cache = dir.join("cache");
        Env {
            stack,
            server,
            owner,
            dir,
            proxy: None,
            cache,
        }
    }

    /// Routes the CLI's traffic (API and S3) through a counting proxy.
    pub async fn with_proxy(mut self) -> Env {
        self.proxy = Some(Proxy::start().await);
        self
    }

    pub fn proxy(&self) -> &Proxy {
        self.proxy.as_ref().unwrap()
    }

    /// A fresh cache folder: as if the next run were on another machine.
    pub fn new_machine(&mut self, name: &str) {
        self.cache = self.dir.join(name);
    }

    /// The CLI, pointed at this test's server as this test's caller.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_partwise"));
        c.args(args)
            .env("PARTWISE_API", self.server.url())
            .env("PARTWISE_TOKEN", &self.owner)
            .env("XDG_CACHE_HOME", &self.cache)
            .env("NO_PROXY", "")
            .env("no_proxy", "")
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for k in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            c.env_remove(k);
        }
        if let Some(p) = &self.proxy {
            c.env("HTTP_PROXY", p.url()).env("http_proxy", p.url());
        }
        c
    }

    /// Runs the CLI to its end (bounded: two minutes).
    pub async fn run(&self, args: &[&str]) -> Run {
        let child = self.command(args).spawn().unwrap();
        let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
            .await
            .expect("the CLI ran for more than two minutes")
            .unwrap();
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// A file of `size` pseudo-random bytes (every part different).
    pub fn file(&self, name: &str, size: usize) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, content(name, size)).unwrap();
        path
    }

    /// The object's bytes, read back with the SDK.
    pub async fn object(&self, key: &str) -> Vec<u8> {
        let o = self
            .stack
            .s3()
            .get_object()
            .bucket(self.stack.bucket())
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get {key}: {e:?}"));
        o.body.collect().await.unwrap().into_bytes().to_vec()
    }

    fn prefix(&self) -> String {
        format!("uploads/{}/", self.owner)
    }

    /// This caller's unfinished uploads in S3: `(key, upload id)`.
    pub async fn s3_uploads(&self) -> Vec<(String, String)> {
        let r = self
            .stack
            .s3()
            .list_multipart_uploads()
            .bucket(self.stack.bucket())
            .prefix(self.prefix())
            .send()
            .await
            .unwrap();
        r.uploads()
            .iter()
            .map(|u| {
                (
                    u.key().unwrap_or_default().to_string(),
                    u.upload_id().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Part numbers S3 holds for an upload.
    pub async fn s3_parts(&self, key: &str, upload_id: &str) -> Vec<u32> {
        let r = self
            .stack
            .s3()
            .list_parts()
            .bucket(self.stack.bucket())
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
            .unwrap();
        let mut v: Vec<u32> = r
            .parts()
            .iter()
            .filter_map(|p| p.part_number().map(|n| n as u32))
            .collect();
        v.sort();
        v
    }

    /// This caller's objects in S3.
    pub async fn s3_objects(&self) -> Vec<String> {
        let r = self
            .stack
            .s3()
            .list_objects_v2()
            .bucket(self.stack.bucket())
            .prefix(self.prefix())
            .send()
            .await
            .unwrap();
        r.contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_string))
            .collect()
    }

    /// Nothing of this caller's in S3: no object, no unfinished upload.
    pub async fn assert_nothing_in_s3(&self) {
        assert_eq!(self.s3_objects().await, Vec::<String>::new());
        assert_eq!(self.s3_uploads().await, Vec::<(String, String)>::new());
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Deterministic bytes for a file (xorshift seeded by its name).
pub fn content(name: &str, size: usize) -> Vec<u8> {
    let mut x: u64 = name.bytes().fold(0x9E37_79B9_7F4A_7C15, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    });
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}
