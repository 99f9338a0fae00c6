//! Load: the local server (`partwise-local serve`: the real handlers behind
//! the API Gateway stand-in, in a child process so its memory is its own)
//! under many concurrent clients for a bounded time. Each client loops over
//! full small uploads (create, sign, PUT to Garage, complete), an abandoned
//! one (create, sign, PUT, list parts, abort) every fourth round, and its
//! uploads list every other round. It reports p50, p99 and max latency per
//! route and every error (there must be none), and the server's memory at
//! the start, after a warm-up, half-way, at the end and once the clients are
//! gone: its live heap (counted by `partwise-local`'s allocator), which must
//! stay flat, and its resident memory, which also holds what the allocator
//! keeps after the program freed it. Then it
//! runs the complete-versus-abort and complete-versus-sweep races (1,000
//! trials each by default; CI runs 200 of the same trials) on the same stack:
//! there must be no inconsistent state.
//!
//!   cargo build -p partwise-local && cargo run -p partwise-bench --bin load -- \
//!       [--clients 200] [--duration 60] [--trials 1000] [--part-bytes 1024]

use partwise_local::Stack;
use partwise_local::races::{self, RaceReport};
use reqwest::Client;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Options {
    clients: usize,
    duration: Duration,
    trials: usize,
    part_bytes: usize,
}

/// The command line (clap); out-of-range values are clamped into [`Options`].
#[derive(clap::Parser)]
#[command(
    name = "load",
    about = "The local server under many clients, then the races"
)]
struct Args {
    /// Concurrent clients (1-2000).
    #[arg(long, default_value_t = 200)]
    clients: u64,
    /// Seconds of load (1-3600).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Trials of each race afterwards (0 skips them).
    #[arg(long, default_value_t = 1000)]
    trials: u64,
    /// Bytes per uploaded part (1 to 5 MiB).
    #[arg(long, default_value_t = 1024)]
    part_bytes: u64,
}

impl From<Args> for Options {
    fn from(a: Args) -> Self {
        Options {
            clients: a.clients.clamp(1, 2000) as usize,
            duration: Duration::from_secs(a.duration.clamp(1, 3600)),
            trials: a.trials.min(100_000) as usize,
            part_bytes: a.part_bytes.clamp(1, 5 << 20) as usize,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let o = Options::from(<Args as clap::Parser>::parse());
    match run(o).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::from(1)
        }
    }
}

/// The `partwise-local` binary: `PARTWISE_LOCAL_BIN`, else beside this one.
fn local_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("PARTWISE_LOCAL_BIN") {
        return Ok(p.into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let bin = exe
        .parent()
        .map(|d| d.join("partwise-local"))
        .filter(|p| p.exists())
        .ok_or("no partwise-local beside this binary: `cargo build -p partwise-local` first, or set PARTWISE_LOCAL_BIN")?;
    Ok(bin)
}

/// Tries of one PUT to S3 (the first and two retries after a 5xx).
const S3_ATTEMPTS: u32 = 3;

const NO_MEMORY: &str = "cannot read the server's memory (/proc status or its --heap-stats file)";

/// The server child, stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: tokio::process::Child,
    pid: u32,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `partwise-local serve` on a free port with its own fresh stack, and
/// waits (at most two minutes) for its env file: the stack's variables and
/// `PARTWISE_API`.
async fn start_server() -> Result<(Server, BTreeMap<String, String>), String> {
    let dir = std::env::temp_dir().join(Stack::unique_name("partwise-load"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let env_file = dir.join("serve.env");
    let log = std::fs::File::create(dir.join("serve.log")).map_err(|e| e.to_string())?;
    let child = tokio::process::Command::new(local_bin()?)
        .args(["serve", "--port", "0", "--env-file"])
        .arg(&env_file)
        .arg("--heap-stats")
        .arg(dir.join("heap"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting partwise-local serve: {e}"))?;
    let pid = child.id().ok_or("the server exited at once")?;
    let mut server = Server { child, pid, dir };
    for _ in 0..1200 {
        if let Ok(text) = std::fs::read_to_string(&env_file) {
            return Ok((server, parse_exports(&text)));
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(server.dir.join("serve.log")).unwrap_or_default();
            return Err(format!("the server exited ({status}): {log}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("the server was not ready after 120 s".into())
}

/// `export K='V'` lines (values single-quoted as `partwise-local` writes them).
fn parse_exports(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_string(), v.replace(r"'\''", "'"))
        })
        .collect()
}

/// The server's memory at one moment, in KiB.
#[derive(Debug, Clone, Copy)]
struct Memory {
    /// Resident (VmRSS), and of it the anonymous part (RssAnon: heap and
    /// stacks, not the binary's pages).
    rss: u64,
    anon: u64,
    /// The resident peak so far (VmHWM).
    peak: u64,
    /// Bytes allocated and not yet freed, as the server's allocator counts them.
    live_heap: u64,
}

impl Server {
    fn memory(&self) -> Option<Memory> {
        let (rss, anon, peak) = memory_kib(self.pid)?;
        let live_heap = partwise_local::heap::read(&self.dir.join("heap"))? / 1024;
        Some(Memory {
            rss,
            anon,
            peak,
            live_heap,
        })
    }
}

/// (VmRSS, RssAnon, VmHWM) of a process, in KiB.
fn memory_kib(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("RssAnon:")?, field("VmHWM:")?))
}

/// Latencies per route, and every error.
#[derive(Default)]
struct Tally {
    /// Latencies of calls started before this are not kept (the warm-up);
    /// their errors still count.
    since: Option<Instant>,
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    errors: usize,
    first_errors: Vec<String>,
    /// PUTs to S3 tried again after a 5xx, as S3 asks, and the first reason.
    s3_retries: usize,
    first_s3_retry: Option<String>,
    uploads: usize,
}

type Shared = Arc<Mutex<Tally>>;

fn lock(t: &Shared) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request body.
enum Body {
    None,
    Json(Value),
    Bytes(Vec<u8>),
}

struct Api {
    http: Client,
    base: String,
    token: String,
    tally: Shared,
}

impl Api {
    /// One call; its latency is recorded under `route` and a failure counted.
    /// The answer's JSON, or `{"etag": ...}` for a PUT to S3.
    async fn call(
        &self,
        route: &'static str,
        method: reqwest::Method,
        url: &str,
        body: Body,
    ) -> Option<Value> {
        let ours = url.starts_with(&self.base);
        let started = Instant::now();
        let mut attempt = 0;
        let outcome = loop {
            attempt += 1;
            let mut req = self.http.request(method.clone(), url);
            if ours {
                req = req.bearer_auth(&self.token);
            }
            req = match &body {
                Body::None => req,
                Body::Json(v) => req
                    .header("content-type", "application/json")
                    .body(v.to_string()),
                Body::Bytes(b) => req.body(b.clone()),
            };
            let outcome = match req.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    let etag = resp
                        .headers()
                        .get("etag")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    match resp.text().await {
                        Ok(text) if status.is_success() => Ok(match etag {
                            Some(e) if text.is_empty() => json!({ "etag": e }),
                            _ => serde_json::from_str(&text).unwrap_or(Value::Null),
                        }),
                        Ok(text) => Err((status, format!("{route}: {status} {text}"))),
                        Err(e) => Err((status, format!("{route}: reading the answer: {e}"))),
                    }
                }
                Err(e) => break Err(format!("{route}: {}", chain(&e))),
            };
            match outcome {
                // S3 asks for 5xx answers to be retried with backoff, and
                // every S3 client (Uppy, the SDKs, ours) does; Garage answers
                // 503 when its metadata database is busy. Our API's own
                // answers are never retried here: each must be right first time.
                Err((status, e)) if !ours && status.is_server_error() && attempt < S3_ATTEMPTS => {
                    {
                        let mut t = lock(&self.tally);
                        t.s3_retries += 1;
                        t.first_s3_retry.get_or_insert(e);
                    }
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                other => break other.map_err(|(_, e)| e),
            }
        };
        let elapsed = started.elapsed();
        let mut t = lock(&self.tally);
        if t.since.is_none_or(|s| started >= s) {
            t.latencies.entry(route).or_default().push(elapsed);
        }
        match outcome {
            Ok(v) => Some(v),
            Err(e) => {
                t.errors += 1;
                if t.first_errors.len() < 10 {
                    t.first_errors.push(e);
                }
                None
            }
        }
    }

    /// An answer that lacks what the route promises is an error too.
    fn missing<T>(&self, what: &str) -> Option<T> {
        let mut t = lock(&self.tally);
        t.errors += 1;
        if t.first_errors.len() < 10 {
            t.first_errors.push(format!("an answer without {what}"));
        }
        None
    }

    fn field(&self, v: &Value, name: &str) -> Option<String> {
        match v[name].as_str() {
            Some(s) => Some(s.to_string()),
            None => self.missing(name),
        }
    }

    /// Create, sign part 1, PUT it to Garage: (upload id, `key=` query, ETag).
    async fn started(&self, part: &[u8], n: usize) -> Option<(String, String, String)> {
        use reqwest::Method;
        let created = self
            .call(
                "create",
                Method::POST,
                &format!("{}/s3/multipart", self.base),
                Body::Json(json!({"filename": format!("load-{n}.bin"), "size": part.len()})),
            )
            .await?;
        let id = self.field(&created, "uploadId")?;
        let q = format!("key={}", encode(&self.field(&created, "key")?));
        let signed = self
            .call(
                "sign part",
                Method::GET,
                &format!("{}/s3/multipart/{id}/1?{q}", self.base),
                Body::None,
            )
            .await?;
        let url = self.field(&signed, "url")?;
        let put = self
            .call(
                "PUT part (Garage)",
                Method::PUT,
                &url,
                Body::Bytes(part.to_vec()),
            )
            .await?;
        let etag = self.field(&put, "etag")?;
        Some((id, q, etag))
    }

    /// A full small upload: create, sign, PUT, complete.
    async fn upload(&self, part: &[u8], n: usize) -> Option<()> {
        let (id, q, etag) = self.started(part, n).await?;
        let done = self
            .call(
                "complete",
                reqwest::Method::POST,
                &format!("{}/s3/multipart/{id}/complete?{q}", self.base),
                Body::Json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]})),
            )
            .await?;
        if done["size"].as_u64() != Some(part.len() as u64) {
            return self.missing("the uploaded size");
        }
        lock(&self.tally).uploads += 1;
        Some(())
    }

    /// An abandoned upload: create, sign, PUT, list parts (as a resume
    /// would), abort.
    async fn abandon(&self, part: &[u8], n: usize) -> Option<()> {
        let (id, q, _) = self.started(part, n).await?;
        let url = format!("{}/s3/multipart/{id}?{q}", self.base);
        let parts = self
            .call("list parts", reqwest::Method::GET, &url, Body::None)
            .await?;
        if parts.as_array().map(Vec::len) != Some(1) {
            return self.missing("the part just uploaded");
        }
        self.call("abort", reqwest::Method::DELETE, &url, Body::None)
            .await?;
        Some(())
    }

    async fn list(&self) -> Option<()> {
        let page = self
            .call(
                "uploads list",
                reqwest::Method::GET,
                &format!("{}/s3/multipart?limit=10", self.base),
                Body::None,
            )
            .await?;
        if !page["uploads"].is_array() {
            return self.missing("uploads");
        }
        Some(())
    }
}

/// An error with its causes: reqwest's own message names only the URL.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// A query value escaped as in a URL.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One client: starts after `delay` (the clients ramp up over the warm-up),
/// then rounds until the deadline (and at most `max_rounds`).
async fn client(api: Api, part: Vec<u8>, delay: Duration, deadline: Instant, max_rounds: usize) {
    tokio::time::sleep(delay).await;
    for round in 0..max_rounds {
        if Instant::now() >= deadline {
            return;
        }
        api.upload(&part, round).await;
        if round % 4 == 1 {
            api.abandon(&part, round).await;
        }
        if round % 2 == 0 {
            api.list().await;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

async fn run(o: Options) -> Result<bool, String> {
    let (server, env) = start_server().await?;
    let base = env
        .get("PARTWISE_API")
        .cloned()
        .ok_or("the server wrote no PARTWISE_API")?;
    let stack = Stack::attach(&env).map_err(|e| e.to_string())?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "partwise load: `partwise-local serve` (child process, pid {}) on {base}, its own Garage + DynamoDB Local; \
         {} clients for {} s; a {cores}-core machine shared with other work",
        server.pid,
        o.clients,
        o.duration.as_secs()
    );
    // Far beyond API Gateway's 30 s: on a small shared machine a request can
    // queue that long behind the others, and what this counts as an error is
    // a failure of the server, not a slow answer (the latencies say that).
    let http = Client::builder()
        .timeout(Duration::from_secs(300))
        .pool_max_idle_per_host(o.clients)
        .build()
        .map_err(|e| e.to_string())?;
    let idle = server.memory().ok_or(NO_MEMORY)?;

    let tally: Shared = Arc::default();
    // The first tenth of the run warms up (DynamoDB Local's JIT, connection
    // pools): its latencies are left out, its errors are not.
    let warm_at = Instant::now() + o.duration / 10;
    lock(&tally).since = Some(warm_at);
    let part: Vec<u8> = (0..o.part_bytes).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    let deadline = started + o.duration;
    let max_rounds = o.duration.as_secs() as usize * 1000;
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..o.clients {
        let api = Api {
            http: http.clone(),
            base: base.clone(),
            token: format!("load-{c}-{}", uuid::Uuid::new_v4().simple()),
            tally: tally.clone(),
        };
        let delay = o.duration / 10 * c as u32 / o.clients as u32;
        tasks.spawn(client(api, part.clone(), delay, deadline, max_rounds));
    }
    // The server's memory once a second while the clients run (bounded by
    // their deadline plus the slowest answers).
    let mut samples = vec![];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !tasks.is_empty() {
        tokio::select! {
            _ = tick.tick() => {
                if let Some(m) = server.memory() {
                    samples.push((started.elapsed(), m));
                }
            }
            joined = tasks.join_next() => {
                if joined.is_none() {
                    break;
                }
            }
        }
    }
    let elapsed = started.elapsed();
    let end = server.memory().ok_or(NO_MEMORY)?;
    // Once the last answers are out and the clients' connections are closed,
    // what every request and connection held should be back.
    drop(http);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.memory().ok_or(NO_MEMORY)?;

    let mut t = std::mem::take(&mut *lock(&tally));
    let total: usize = t.latencies.values().map(Vec::len).sum();
    let measured = elapsed.saturating_sub(o.duration / 10);
    println!(
        "\n{} uploads completed; after a warm-up of {} s (not counted), {total} requests in {:.1} s ({:.0}/s)",
        t.uploads,
        (o.duration / 10).as_secs(),
        measured.as_secs_f64(),
        total as f64 / measured.as_secs_f64().max(1e-3),
    );
    println!(
        "{:<20} {:>8} {:>10} {:>10} {:>10}",
        "route", "calls", "p50", "p99", "max"
    );
    for (route, lat) in t.latencies.iter_mut() {
        lat.sort();
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
        println!(
            "{:<20} {:>8} {:>10} {:>10} {:>10}",
            route,
            lat.len(),
            ms(percentile(lat, 0.50)),
            ms(percentile(lat, 0.99)),
            ms(*lat.last().unwrap_or(&Duration::ZERO))
        );
    }
    println!("errors: {}", t.errors);
    if let Some(first) = &t.first_s3_retry {
        println!(
            "PUTs to S3 retried after a 5xx (not errors: S3 asks clients to retry these): {}; the first: {first}",
            t.s3_retries
        );
    }
    for e in &t.first_errors {
        println!("  {e}");
    }
    if t.errors > 0 {
        // What the server logged for them (its log goes with it).
        let log = std::fs::read_to_string(server.dir.join("serve.log")).unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for line in log.lines().filter(|l| l.contains("ERROR")) {
            let tail = line.split_once("ERROR").map_or(line, |(_, t)| t).trim();
            if seen.insert(tail.to_string()) && seen.len() <= 10 {
                println!("  server: {tail}");
            }
        }
    }
    // Flat: over the second half of the run (warm-up done, every client
    // busy) the live heap grows by at most a fifth. Resident memory is shown
    // beside it, but not judged: it also holds freed memory the allocator
    // keeps for reuse, so it climbs to a high-water mark and stays there.
    let at = |t: Duration| {
        samples
            .iter()
            .find(|(when, _)| *when >= t)
            .or(samples.last())
            .map_or(end, |(_, m)| *m)
    };
    let warm = at(o.duration / 10);
    let middle = at(o.duration / 2);
    let growth = end.live_heap as f64 / middle.live_heap.max(1) as f64;
    let flat = growth <= 1.2;
    let row = |name: &str, f: fn(&Memory) -> u64| {
        println!(
            "  {name:<22} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>12.1}",
            mib(f(&idle)),
            mib(f(&warm)),
            mib(f(&middle)),
            mib(f(&end)),
            mib(f(&after))
        );
    };
    println!("server memory, MiB:       idle    warm-up  half-way       end  clients gone");
    row("live heap", |m| m.live_heap);
    row("resident (VmRSS)", |m| m.rss);
    row("  of it anonymous", |m| m.anon);
    println!(
        "live heap end ÷ half-way {growth:.2}× (target ≤ 1.2×: {}); resident peak (VmHWM) {:.1} MiB",
        if flat { "met" } else { "MISSED" },
        mib(after.peak)
    );

    let mut ok = t.errors == 0 && flat;
    if o.trials > 0 {
        let ctx = stack.context().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let abort = races::complete_vs_abort(&ctx, o.trials, 8).await;
        ok &= report("complete vs abort", &abort, started.elapsed());
        let prefix = format!("{}/", Stack::unique_name("load-race"));
        let isolated = stack
            .context_with(&[
                ("PARTWISE_KEY_PREFIX", prefix.as_str()),
                ("PARTWISE_GSI_SHARDS", "4"),
            ])
            .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let sweep = races::complete_vs_sweep(&isolated, o.trials, 8).await;
        ok &= report("complete vs sweep", &sweep, started.elapsed());
    }
    drop(server);
    Ok(ok)
}

/// Prints a race's figures; true when no trial ended inconsistent.
fn report(name: &str, r: &RaceReport, took: Duration) -> bool {
    println!(
        "race {name}: {} trials in {:.1} s: {} completed, {} aborted, {} inconsistent",
        r.trials,
        took.as_secs_f64(),
        r.completed,
        r.aborted,
        r.inconsistent.len()
    );
    for e in r.inconsistent.iter().take(10) {
        println!("  {e}");
    }
    r.inconsistent.is_empty()
}
