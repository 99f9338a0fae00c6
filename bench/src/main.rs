//! The sweep benchmark. For each N it creates N stale uploads (tracked and
//! orphaned) on the local stack and sweeps them, beside two references run
//! against the same servers in the same run:
//!
//! - (a) the AWS SDKs' `abortMultipartUploads`: list, then abort one by one;
//! - (b) raw capacity: the same aborts at the sweep's concurrency, nothing else.
//!
//! The sweep and (a) run twice: on plain loopback, and through a proxy that
//! adds a fixed delay (20 ms) to every request, closer to what a Lambda waits
//! on S3 and DynamoDB. Each sweep runs in a child process (this binary with
//! `__sweep`), built as a Lambda builds its context, so its peak memory
//! (VmHWM) is the sweep's own.
//!
//! DynamoDB Local is a JVM: its JIT compiles the request path during the
//! first tens of thousands of requests, on the same two cores as everything else.
//! A warm-up sweep (not counted, its figure printed) runs first, as any JVM
//! benchmark warms up, so the figures measure the sweep rather than the JIT.
//!
//!   cargo run --profile bench -p partwise-bench -- [--n 1000,10000]
//!       [--delay-ms 20] [--tracked-percent 80] [--concurrency C] [--warmup 10000]

use partwise::Context;
use partwise_bench::proxy::DelayProxy;
use partwise_bench::reference;
use partwise_local::{Stack, backlog};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const RESULT_MARK: &str = "BENCH_RESULT ";

struct Options {
    sizes: Vec<usize>,
    delay: Duration,
    tracked_percent: usize,
    concurrency: Option<usize>,
    warmup: usize,
}

fn usage() -> String {
    "usage: partwise-bench [--n 1000,10000] [--delay-ms 20] [--tracked-percent 80] [--concurrency C] [--warmup 10000]"
        .into()
}

fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        sizes: vec![1_000, 10_000],
        delay: Duration::from_millis(20),
        tracked_percent: 80,
        concurrency: None,
        warmup: 10_000,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        let number = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| format!("{flag}: {v:?} is not a whole number"))
        };
        match flag.as_str() {
            "--n" => o.sizes = value()?.split(',').map(number).collect::<Result<_, _>>()?,
            "--delay-ms" => o.delay = Duration::from_millis(number(value()?)? as u64),
            "--tracked-percent" => o.tracked_percent = number(value()?)?.min(100),
            "--concurrency" => o.concurrency = Some(number(value()?)?.max(1)),
            "--warmup" => o.warmup = number(value()?)?,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    if o.sizes.is_empty() || o.sizes.contains(&0) {
        return Err("--n needs sizes of at least 1".into());
    }
    Ok(o)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("__sweep") {
        return child_sweep(&args[1..]).await;
    }
    let options = match parse_args(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("partwise-bench: {e}");
            ExitCode::from(1)
        }
    }
}

/// One measured run.
struct Measure {
    label: String,
    aborted: usize,
    elapsed: Duration,
    peak_kib: Option<u64>,
    /// Sweeps only: tracked uploads per second over the tracked pass.
    tracked_rate: f64,
}

impl Measure {
    /// A reference run: no memory or tracked-pass figures of its own.
    fn reference(label: &str, aborted: usize, elapsed: Duration) -> Measure {
        Measure {
            label: label.into(),
            aborted,
            elapsed,
            peak_kib: None,
            tracked_rate: 0.0,
        }
    }

    fn rate(&self) -> f64 {
        self.aborted as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Where the servers are, plainly and through the delay proxy.
struct Endpoints {
    s3: String,
    dynamodb: String,
}

async fn run(o: Options) -> Result<bool, String> {
    let stack = Stack::from_env_or_start()
        .await
        .map_err(|e| format!("local stack: {e}"))?;
    // A bucket and table of the bench's own: nothing else in them to filter out.
    let bucket = Stack::unique_name("bench");
    let table = Stack::unique_name("bench");
    stack
        .create_bucket(&bucket)
        .await
        .map_err(|e| e.to_string())?;
    stack
        .create_table(&table)
        .await
        .map_err(|e| e.to_string())?;
    let var = |k: &str| {
        stack
            .var(k)
            .map(str::to_string)
            .ok_or(format!("{k} missing"))
    };
    let plain = Endpoints {
        s3: var("AWS_ENDPOINT_URL_S3")?,
        dynamodb: var("AWS_ENDPOINT_URL_DYNAMODB")?,
    };
    let s3_proxy = DelayProxy::start(socket_of(&plain.s3)?, o.delay)
        .await
        .map_err(|e| e.to_string())?;
    let dynamodb_proxy = DelayProxy::start(socket_of(&plain.dynamodb)?, o.delay)
        .await
        .map_err(|e| e.to_string())?;
    let delayed = Endpoints {
        s3: s3_proxy.url(),
        dynamodb: dynamodb_proxy.url(),
    };
    let base = [
        ("PARTWISE_BUCKET", bucket.as_str()),
        ("PARTWISE_TABLE", table.as_str()),
    ];
    let concurrency = match o.concurrency {
        Some(c) => c,
        None => {
            stack
                .partwise_config(&base)
                .map_err(|e| e.to_string())?
                .sweep_concurrency
        }
    };
    let delay_ms = o.delay.as_millis();
    println!(
        "partwise sweep benchmark: Garage + DynamoDB Local on loopback, sweep concurrency {concurrency}, \
         {}% tracked / {}% orphaned, delay proxy +{delay_ms} ms per request",
        o.tracked_percent,
        100 - o.tracked_percent
    );

    if o.warmup > 0 {
        let run_id = Stack::unique_name("warmup");
        let warm = Bench {
            stack: &stack,
            bucket: &bucket,
            base: &base,
            run_id: &run_id,
            n: o.warmup,
            tracked_percent: o.tracked_percent,
            concurrency,
        };
        let m = warm.sweep("warm-up", "sweep", &plain).await?;
        warm.tracking("warm-up", "tracking").await?;
        println!(
            "\nwarm-up (not counted): a sweep of {} uploads at {:.0} aborts/s, then {} tracking writes",
            o.warmup,
            m.rate(),
            2 * o.warmup
        );
    }

    let mut all_ok = true;
    let mut peaks = BTreeMap::new();
    for &n in &o.sizes {
        let run_id = Stack::unique_name("run");
        let bench = Bench {
            stack: &stack,
            bucket: &bucket,
            base: &base,
            run_id: &run_id,
            n,
            tracked_percent: o.tracked_percent,
            concurrency,
        };
        println!("\nN = {n}");
        let sweep_plain = bench
            .sweep("sweep, loopback", "sweep-plain", &plain)
            .await?;
        let raw = bench.raw("(b) raw aborts, loopback", "raw").await?;
        let ceiling = bench
            .tracking("(c) tracking writes, loopback", "tracking")
            .await?;
        let sdk_plain = bench
            .sdk("(a) SDK algorithm, loopback", "sdk-plain", &plain)
            .await?;
        let sweep_delayed = bench
            .sweep(&format!("sweep, +{delay_ms} ms"), "sweep-delay", &delayed)
            .await?;
        let sdk_delayed = bench
            .sdk(
                &format!("(a) SDK algorithm, +{delay_ms} ms"),
                "sdk-delay",
                &delayed,
            )
            .await?;
        println!(
            "  {:<30} {:>10} {:>10} {:>12}",
            "", "aborts/s", "seconds", "peak memory"
        );
        for m in [
            &sweep_plain,
            &raw,
            &ceiling,
            &sdk_plain,
            &sweep_delayed,
            &sdk_delayed,
        ] {
            println!(
                "  {:<30} {:>10.0} {:>10.2} {:>12}",
                m.label,
                m.rate(),
                m.elapsed.as_secs_f64(),
                m.peak_kib
                    .map_or(String::new(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
            );
        }
        let through_delay = sweep_delayed.rate() / sdk_delayed.rate();
        let vs_raw = sweep_plain.rate() / raw.rate();
        all_ok &= verdict(
            "sweep ÷ (a), through the delay proxy",
            through_delay,
            10.0,
            true,
        );
        all_ok &= verdict("sweep ÷ (b), loopback", vs_raw, 0.4, true);
        verdict(
            "sweep ÷ (a), loopback (no target)",
            sweep_plain.rate() / sdk_plain.rate(),
            0.0,
            true,
        );
        // How close the sweep's tracked pass comes to what DynamoDB Local can record at all.
        verdict(
            "sweep's tracked pass ÷ (c), loopback (no target)",
            sweep_plain.tracked_rate / ceiling.rate(),
            0.0,
            true,
        );
        let peak = [sweep_plain.peak_kib, sweep_delayed.peak_kib]
            .into_iter()
            .flatten()
            .max();
        peaks.insert(n, peak);
    }
    if let (Some((small, Some(a))), Some((large, Some(b)))) =
        (peaks.first_key_value(), peaks.last_key_value())
        && large > small
    {
        println!();
        all_ok &= verdict(
            &format!("peak memory N = {large} ÷ N = {small}"),
            *b as f64 / *a as f64,
            1.2,
            false,
        );
    }
    Ok(all_ok)
}

/// Prints `name: ratio` against its target; true when met.
fn verdict(name: &str, ratio: f64, target: f64, at_least: bool) -> bool {
    let met = if at_least {
        ratio >= target
    } else {
        ratio <= target
    };
    let goal = match (target > 0.0, at_least) {
        (false, _) => String::new(),
        (true, true) => format!(
            "  (target ≥ {target}×: {})",
            if met { "met" } else { "MISSED" }
        ),
        (true, false) => format!(
            "  (target ≤ {target}×: {})",
            if met { "met" } else { "MISSED" }
        ),
    };
    println!("  {name}: {ratio:.2}×{goal}");
    met
}

fn socket_of(url: &str) -> Result<SocketAddr, String> {
    let hostport = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .replace("localhost", "127.0.0.1");
    hostport
        .parse()
        .map_err(|_| format!("endpoint {url:?} is not http://IP:PORT"))
}

struct Bench<'a> {
    stack: &'a Stack,
    bucket: &'a str,
    base: &'a [(&'a str, &'a str)],
    run_id: &'a str,
    n: usize,
    tracked_percent: usize,
    concurrency: usize,
}

impl Bench<'_> {
    fn prefix(&self, case: &str) -> String {
        format!("uploads/{}/{case}/", self.run_id)
    }

    fn context(&self, prefix: &str) -> Result<Context, String> {
        let mut overrides = self.base.to_vec();
        overrides.push(("PARTWISE_KEY_PREFIX", prefix));
        self.stack
            .context_with(&overrides)
            .map_err(|e| e.to_string())
    }

    /// Seeds `n` uploads under `prefix` and waits until they are in the past
    /// at S3's timestamp resolution (a second), so a cutoff of "now" takes them all.
    async fn seed(&self, prefix: &str, tracked_percent: usize) -> Result<backlog::Seeded, String> {
        let ctx = self.context(prefix)?;
        let seeded = backlog::uploads(&ctx, self.n, self.n * tracked_percent / 100, 64)
            .await
            .map_err(|e| format!("seeding: {e}"))?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        Ok(seeded)
    }

    async fn remaining(&self, prefix: &str) -> Result<usize, String> {
        let ctx = self.context(prefix)?;
        let mut count = 0;
        let mut from = None;
        loop {
            let page = ctx
                .storage
                .list_uploads_page(prefix, from.as_ref())
                .await
                .map_err(|e| e.to_string())?;
            count += page.uploads.len();
            match page.next {
                Some(n) => from = Some(n),
                None => return Ok(count),
            }
        }
    }

    /// The sweep, in a child process whose endpoints are `at`.
    async fn sweep(&self, label: &str, case: &str, at: &Endpoints) -> Result<Measure, String> {
        let prefix = self.prefix(case);
        let seeded = self.seed(&prefix, self.tracked_percent).await?;
        let cutoff = partwise::model::now_millis();
        let mut env: BTreeMap<String, String> = self.stack.env().clone();
        for (k, v) in self.base {
            env.insert(k.to_string(), v.to_string());
        }
        env.insert("PARTWISE_KEY_PREFIX".into(), prefix.clone());
        env.insert(
            "PARTWISE_SWEEP_CONCURRENCY".into(),
            self.concurrency.to_string(),
        );
        env.insert("AWS_ENDPOINT_URL_S3".into(), at.s3.clone());
        env.insert("AWS_ENDPOINT_URL_DYNAMODB".into(), at.dynamodb.clone());
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = tokio::process::Command::new(exe)
            .arg("__sweep")
            .arg(json!({ "older_than": cutoff, "prefix": prefix }).to_string())
            .envs(env)
            .env(
                "RUST_LOG",
                std::env::var("BENCH_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .output()
            .await
            .map_err(|e| format!("sweep child: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if std::env::var_os("BENCH_CHILD_LOG").is_some() {
            eprintln!("--- {label} (N = {}) ---\n{stdout}", self.n);
        }
        let result: Value = stdout
            .lines()
            .find_map(|l| l.strip_prefix(RESULT_MARK))
            .and_then(|l| serde_json::from_str(l).ok())
            .ok_or_else(|| {
                format!(
                    "sweep child gave no result ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                )
            })?;
        let s = &result["summary"];
        let count = |k: &str| s[k].as_u64().unwrap_or(0) as usize;
        let aborted = count("aborted") + count("orphans_aborted");
        let left = self.remaining(&prefix).await?;
        if aborted != self.n || count("failed") != 0 || left != 0 {
            return Err(format!(
                "{label}: the sweep aborted {aborted} of {} ({} failed, {left} still in S3): {s}",
                self.n,
                count("failed")
            ));
        }
        if count("aborted") != seeded.tracked {
            return Err(format!(
                "{label}: {} tracked aborts for {} tracked uploads",
                count("aborted"),
                seeded.tracked
            ));
        }
        Ok(Measure {
            label: label.into(),
            aborted,
            elapsed: Duration::from_millis(s["duration_ms"].as_u64().unwrap_or(0)),
            peak_kib: result["peak_kib"].as_u64(),
            tracked_rate: result["tracked_per_sec"].as_f64().unwrap_or(0.0),
        })
    }

    fn s3(&self, endpoint: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&self.stack.sdk_config())
                .endpoint_url(endpoint)
                .force_path_style(true)
                .build(),
        )
    }

    async fn sdk(&self, label: &str, case: &str, at: &Endpoints) -> Result<Measure, String> {
        let prefix = self.prefix(case);
        self.seed(&prefix, 0).await?;
        let before = aws_sdk_s3::primitives::DateTime::from_millis(partwise::model::now_millis());
        let s3 = self.s3(&at.s3);
        let started = Instant::now();
        let aborted = reference::sdk_algorithm(&s3, self.bucket, &prefix, before).await?;
        let elapsed = started.elapsed();
        self.check_all_gone(label, &prefix, aborted).await?;
        Ok(Measure::reference(label, aborted, elapsed))
    }

    async fn raw(&self, label: &str, case: &str) -> Result<Measure, String> {
        let prefix = self.prefix(case);
        let seeded = self.seed(&prefix, 0).await?;
        let s3 = self.s3(self.stack.var("AWS_ENDPOINT_URL_S3").unwrap_or_default());
        let started = Instant::now();
        let aborted =
            reference::raw_aborts(&s3, self.bucket, &seeded.uploads, self.concurrency).await?;
        let elapsed = started.elapsed();
        self.check_all_gone(label, &prefix, aborted).await?;
        Ok(Measure::reference(label, aborted, elapsed))
    }

    async fn tracking(&self, label: &str, case: &str) -> Result<Measure, String> {
        let ctx = self.context(&self.prefix(case))?;
        let ids = backlog::items(&ctx, self.n, 64)
            .await
            .map_err(|e| format!("seeding: {e}"))?;
        let started = Instant::now();
        let recorded = reference::tracking_writes(&ctx.store, &ids, self.concurrency).await?;
        Ok(Measure::reference(label, recorded, started.elapsed()))
    }

    async fn check_all_gone(
        &self,
        label: &str,
        prefix: &str,
        aborted: usize,
    ) -> Result<(), String> {
        let left = self.remaining(prefix).await?;
        if aborted != self.n || left != 0 {
            return Err(format!(
                "{label}: aborted {aborted} of {}, {left} still in S3",
                self.n
            ));
        }
        Ok(())
    }
}

/// The child: builds its context from the environment as a Lambda does,
/// sweeps, and prints the summary with its own peak memory.
async fn child_sweep(args: &[String]) -> ExitCode {
    let event: Value = match args.first().map(|a| serde_json::from_str(a)) {
        Some(Ok(v)) => v,
        _ => {
            eprintln!("__sweep needs the sweep's JSON payload");
            return ExitCode::from(2);
        }
    };
    partwise::runtime::init_logging();
    let ctx = match Context::from_env().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sweep child: {e}");
            return ExitCode::from(1);
        }
    };
    // Boxed, as in `partwise::runtime`: inlined, the sweep's future overflows
    // the compiler's layout recursion limit.
    match Box::pin(partwise::sweep::handle(&ctx, event, None)).await {
        Ok(summary) => {
            let tracked_per_sec =
                summary.aborted as f64 / (summary.tracked_ms.max(1) as f64 / 1000.0);
            let result = json!({
                "summary": summary,
                "peak_kib": peak_kib(),
                "tracked_per_sec": tracked_per_sec,
            });
            println!("{RESULT_MARK}{result}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sweep child: {e}");
            ExitCode::from(1)
        }
    }
}

/// This process's peak resident memory (VmHWM), in KiB.
fn peak_kib() -> Option<u64> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}
