//! The real `sweep` binary under a Lambda Runtime API on loopback: the
//! deadline header goes through `lambda_runtime` exactly as on AWS.

use partwise::model::now_millis;
use partwise_local::backlog;
use partwise_local::runtime_api::{Answer, Deadline, RuntimeApi};
use partwise_local::{Stack, StackError};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A stack (the one `scripts/test.sh` runs, or a private one), a prefix of
/// this test's own, and the sweep binary serving a Runtime API.
struct Harness {
    stack: Stack,
    overrides: Vec<(&'static str, String)>,
    api: RuntimeApi,
    _child: tokio::process::Child,
}

impl Harness {
    async fn start(settings: &[(&'static str, &str)]) -> Harness {
        let stack = Stack::from_env_or_start()
            .await
            .unwrap_or_else(|e: StackError| panic!("local stack: {e}"));
        let prefix = format!("sweep-rt-{}/", uuid::Uuid::new_v4().simple());
        let mut overrides = vec![
            ("PARTWISE_KEY_PREFIX", prefix),
            ("PARTWISE_GSI_SHARDS", "4".to_string()),
        ];
        overrides.extend(settings.iter().map(|(k, v)| (*k, v.to_string())));
        let api = RuntimeApi::start().await.unwrap();
        let mut cmd = api.command(env!("CARGO_BIN_EXE_sweep").as_ref(), "sweep");
        cmd.envs(stack.env())
            .envs(overrides.iter().map(|(k, v)| (k, v)));
        cmd.stdout(std::process::Stdio::null());
        let child = cmd.spawn().expect("start the sweep binary");
        Harness {
            stack,
            overrides,
            api,
            _child: child,
        }
    }

    fn context(&self) -> partwise::Context {
        let o: Vec<(&str, &str)> = self
            .overrides
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        self.stack.context_with(&o).unwrap()
    }

    async fn sweep(&self, payload: Value, deadline: Deadline) -> Value {
        match self
            .api
            .invoke(payload, deadline, Duration::from_secs(120))
            .await
        {
            Some(Answer::Response(v)) => v,
            other => panic!(
                "no response: {other:?}; init error: {:?}",
                self.api.init_error()
            ),
        }
    }
}

#[tokio::test]
async fn a_deadline_already_past_on_arrival_still_sweeps_everything() {
    let h = Harness::start(&[]).await;
    let ctx = h.context();
    backlog::uploads(&ctx, 60, 30, 16).await.unwrap();
    let cutoff = now_millis() + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;

    // cargo-lambda's emulator sends a duration (ten minutes after 1970).
    let s = h
        .sweep(json!({"older_than": cutoff}), Deadline::Header(600_000))
        .await;
    assert_eq!(s["aborted"], 30, "{s}");
    assert_eq!(s["orphans_aborted"], 30, "{s}");
    assert_eq!(s["more_work"], false, "{s}");
    assert_eq!(
        (
            s["remaining_uploads"].as_u64(),
            s["remaining_tracked"].as_u64()
        ),
        (Some(0), Some(0)),
        "{s}"
    );
    let census = backlog::census(&ctx, &ctx.config.key_prefix).await.unwrap();
    assert_eq!((census.s3_uploads, census.live_items), (0, 0));
}

#[tokio::test]
async fn a_near_deadline_stops_in_time_and_counts_what_remains() {
    let h = Harness::start(&[
        ("PARTWISE_SWEEP_CONCURRENCY", "1"),
        ("PARTWISE_SWEEP_SAFETY_MARGIN_MS", "2500"),
    ])
    .await;
    let ctx = h.context();
    let n = 1500;
    backlog::uploads(&ctx, n, 0, 32).await.unwrap();
    let cutoff = now_millis() + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;

    // 4 s to live, 2.5 s of them kept back: about 1.5 s of aborts, one at a time.
    let deadline = Instant::now() + Duration::from_secs(4);
    let s = h
        .sweep(
            json!({"older_than": cutoff}),
            Deadline::Header(now_millis() as u64 + 4000),
        )
        .await;
    let answered = Instant::now();
    assert!(
        answered < deadline,
        "answered {:?} after its deadline",
        answered - deadline
    );
    let aborted = s["orphans_aborted"].as_u64().unwrap();
    assert!(aborted > 0 && aborted < n as u64, "not cut short: {s}");
    assert_eq!(s["more_work"], true, "{s}");
    assert_eq!(s["remaining_exact"], true, "{s}");
    let census = backlog::census(&ctx, &ctx.config.key_prefix).await.unwrap();
    assert_eq!(
        s["remaining_uploads"].as_u64(),
        Some(census.s3_uploads),
        "{s}"
    );
    assert_eq!(census.s3_uploads, n as u64 - aborted);

    // The next invocation, with time enough, finishes the work.
    let s = h
        .sweep(
            json!({"older_than": cutoff}),
            Deadline::After(Duration::from_secs(120)),
        )
        .await;
    assert_eq!(s["more_work"], false, "{s}");
    assert_eq!(
        s["orphans_aborted"].as_u64(),
        Some(n as u64 - aborted),
        "{s}"
    );
}
