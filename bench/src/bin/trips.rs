//! Round trips per route: each route's sequential calls to DynamoDB and S3,
//! counted through recording proxies on the local stack, beside its median
//! latency through the sweep bench's delay proxy (every request to Garage and
//! DynamoDB Local delayed by `--delay-ms`, closer to what a Lambda waits on
//! AWS) and on plain loopback, in the same run. The handlers run in this
//! process, as the Lambdas run them, without HTTP in front.
//!
//!   cargo run --profile bench -p partwise-bench --bin trips -- [--samples 30] [--delay-ms 20]

use partwise::Context;
use partwise_bench::counting::{CountingProxy, Log, Service};
use partwise_bench::proxy::DelayProxy;
use partwise_bench::trips::{Scenario, measure};
use partwise_local::Stack;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// Held in the recording proxy so calls sent together surely overlap.
const HOLD: Duration = Duration::from_millis(50);

struct Options {
    samples: usize,
    delay: Duration,
}

/// The command line (clap); out-of-range values are clamped into [`Options`].
#[derive(clap::Parser)]
#[command(name = "trips", about = "Round trips and latency per route")]
struct Args {
    /// Samples per route (1-10000).
    #[arg(long, default_value_t = 30)]
    samples: u64,
    /// Delay the proxy adds to every request to S3 and DynamoDB, in ms (at most 10000).
    #[arg(long, default_value_t = 20)]
    delay_ms: u64,
}

impl From<Args> for Options {
    fn from(a: Args) -> Self {
        Options {
            samples: a.samples.clamp(1, 10_000) as usize,
            delay: Duration::from_millis(a.delay_ms.min(10_000)),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let o = Options::from(<Args as clap::Parser>::parse());
    match run(o).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("trips: {e}");
            ExitCode::from(1)
        }
    }
}

fn socket_of(url: &str) -> Result<SocketAddr, String> {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .replace("localhost", "127.0.0.1")
        .parse()
        .map_err(|_| format!("endpoint {url:?} is not http://IP:PORT"))
}

/// A context whose S3 and DynamoDB endpoints are `s3` and `dynamodb`.
fn context_at(stack: &Stack, s3: String, dynamodb: String) -> Result<Context, String> {
    let mut env = stack.env().clone();
    env.insert("AWS_ENDPOINT_URL_S3".into(), s3);
    env.insert("AWS_ENDPOINT_URL_DYNAMODB".into(), dynamodb);
    Stack::attach(&env)
        .map_err(|e| e.to_string())?
        .context()
        .map_err(|e| e.to_string())
}

async fn run(o: Options) -> Result<(), String> {
    let stack = Stack::from_env_or_start()
        .await
        .map_err(|e| format!("local stack: {e}"))?;
    let s3 = socket_of(stack.var("AWS_ENDPOINT_URL_S3").unwrap_or_default())?;
    let dynamodb = socket_of(stack.var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_default())?;
    let owner = format!("trips-{}", uuid::Uuid::new_v4().simple());

    // 1. Counting, through the recording proxies.
    let log = Log::default();
    let s3_rec = CountingProxy::start(s3, Service::S3, log.clone(), HOLD)
        .await
        .map_err(|e| e.to_string())?;
    let ddb_rec = CountingProxy::start(dynamodb, Service::DynamoDb, log.clone(), HOLD)
        .await
        .map_err(|e| e.to_string())?;
    let counting = context_at(&stack, s3_rec.url(), ddb_rec.url())?;
    let mut counted = BTreeMap::new();
    for (i, scenario) in Scenario::ALL.into_iter().enumerate() {
        let m = measure(&counting, &owner, scenario, Some(&log)).await?;
        let waves = m.waves();
        let (ddb, s3_calls) = m.calls.iter().fold((0, 0), |(d, s), c| match c.service {
            Service::DynamoDb => (d + 1, s),
            Service::S3 => (d, s + 1),
        });
        counted.insert(i, (waves.len(), ddb, s3_calls, m.describe()));
    }

    // 2. Latency: through the delay proxy, and on plain loopback, interleaved.
    let s3_delay = DelayProxy::start(s3, o.delay)
        .await
        .map_err(|e| e.to_string())?;
    let ddb_delay = DelayProxy::start(dynamodb, o.delay)
        .await
        .map_err(|e| e.to_string())?;
    let delayed = context_at(&stack, s3_delay.url(), ddb_delay.url())?;
    let plain = stack.context().map_err(|e| e.to_string())?;
    let mut times: BTreeMap<(usize, bool), Vec<Duration>> = BTreeMap::new();
    // One warm-up round each, not counted: connections and credentials.
    for ctx in [&delayed, &plain] {
        for scenario in Scenario::ALL {
            measure(ctx, &owner, scenario, None).await?;
        }
    }
    for _ in 0..o.samples {
        // An owner a round, as many callers would be: one owner starting
        // hundreds of uploads a minute is what the rate quota refuses.
        let owner = format!("trips-{}", uuid::Uuid::new_v4().simple());
        for (i, scenario) in Scenario::ALL.into_iter().enumerate() {
            for (is_delayed, ctx) in [(true, &delayed), (false, &plain)] {
                let m = measure(ctx, &owner, scenario, None).await?;
                times.entry((i, is_delayed)).or_default().push(m.elapsed);
            }
        }
    }

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let delay_ms = ms(o.delay);
    println!(
        "partwise round trips per route: handlers in process on the local stack (Garage + DynamoDB Local), \
         {} samples per route; delay proxy +{delay_ms:.0} ms per request",
        o.samples
    );
    println!(
        "\n{:<42} {:>5} {:>4} {:>4} {:>10} {:>10} {:>14}  calls",
        "route", "waves", "DDB", "S3", "p50 +delay", "p50 loop", "÷ waves×delay"
    );
    let mut wrong = vec![];
    for (i, scenario) in Scenario::ALL.into_iter().enumerate() {
        let (waves, ddb, s3_calls, described) = &counted[&i];
        let mut p50 = |delayed| median(times.get_mut(&(i, delayed)).map(Vec::as_mut_slice));
        let (d, p) = (p50(true), p50(false));
        let ratio = if *waves == 0 {
            "-".to_string()
        } else {
            format!("{:.2}", ms(d) / (*waves as f64 * delay_ms))
        };
        println!(
            "{:<42} {:>5} {:>4} {:>4} {:>8.1}ms {:>8.1}ms {:>14}  {}",
            scenario.label(),
            waves,
            ddb,
            s3_calls,
            ms(d),
            ms(p),
            ratio,
            if described.is_empty() {
                "none"
            } else {
                described
            }
        );
        if *waves != scenario.minimum() {
            wrong.push(format!(
                "{}: {waves} sequential calls, its minimum is {}",
                scenario.label(),
                scenario.minimum()
            ));
        }
    }
    println!(
        "\nwaves: sequential calls (calls sent together count once); DDB, S3: all calls made; \
         ÷ waves×delay: the delayed p50 over what the waves alone cost at +{delay_ms:.0} ms each"
    );
    println!("\nwhy each is the minimum:");
    for scenario in Scenario::ALL {
        println!("  {}: {}", scenario.label(), scenario.why());
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("\n"))
    }
}

fn median(samples: Option<&mut [Duration]>) -> Duration {
    match samples {
        Some(s) if !s.is_empty() => {
            s.sort();
            s[s.len() / 2]
        }
        _ => Duration::ZERO,
    }
}
