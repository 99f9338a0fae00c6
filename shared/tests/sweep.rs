//! The sweep against Garage and DynamoDB Local: stale vs fresh, orphans, dry
//! runs, deadlines, crash leftovers, and races with complete.

mod common;

use common::*;
use partwise::Context;
use partwise::model::{Status, now_millis};
use partwise::store::Transition;
use partwise::sweep::{self, Summary, SweepRequest};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A context whose keys live under a prefix of their own, so each test sweeps only its uploads.
async fn isolated(extra: &[(&str, &str)]) -> (Context, String) {
    let prefix = format!("sweep-{}/", uuid::Uuid::new_v4().simple());
    let mut settings = vec![
        ("PARTWISE_KEY_PREFIX", prefix.as_str()),
        ("PARTWISE_GSI_SHARDS", "4"),
    ];
    settings.extend_from_slice(extra);
    (context(&settings).await, prefix)
}

fn request(ctx: &Context, cutoff_ms: i64) -> SweepRequest {
    SweepRequest {
        cutoff_ms,
        dry_run: false,
        prefix: ctx.config.key_prefix.clone(),
        limit: None,
    }
}

async fn status_of(ctx: &Context, up: &Started) -> Status {
    ctx.store.get(&up.upload_id).await.unwrap().unwrap().status
}

/// An upload made straight in S3, as a crash between S3 and DynamoDB leaves it.
async fn orphan(ctx: &Context, name: &str, with_part: bool) -> Started {
    let key = format!(
        "{}someone/{}/{name}",
        ctx.config.key_prefix,
        uuid::Uuid::new_v4().simple()
    );
    let upload_id = ctx
        .storage
        .create(&key, "application/octet-stream")
        .await
        .unwrap();
    if with_part {
        let url = ctx
            .presigner
            .part(&key, &upload_id, 1, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(put(&url.url, bytes(1000, 1)).await.0, 200);
    }
    Started {
        upload_id,
        key,
        body: json!({}),
    }
}

#[tokio::test]
async fn only_stale_uploads_are_aborted_and_orphans_are_found() {
    let (ctx, prefix) = isolated(&[]).await;
    let alice = owner("alice");
    let mut stale = vec![];
    for i in 0..6 {
        let up = create(&ctx, &alice, json!({"filename": format!("stale-{i}.bin")})).await;
        upload_part(&ctx, &alice, &up, 1, bytes(5 * 1024 * 1024, i)).await;
        upload_part(&ctx, &alice, &up, 2, bytes(100, i)).await;
        stale.push(up);
    }
    let orphans = [
        orphan(&ctx, "o1.bin", true).await,
        orphan(&ctx, "o2.bin", false).await,
    ];
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = now_millis();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let fresh = create(&ctx, &alice, json!({"filename": "fresh.bin"})).await;
    upload_part(&ctx, &alice, &fresh, 1, bytes(10, 0)).await;
    let fresh_orphan = orphan(&ctx, "fresh-orphan.bin", true).await;

    let s = sweep::run(&ctx, &request(&ctx, cutoff), None).await;
    assert_eq!(
        (
            s.aborted,
            s.orphans_found,
            s.orphans_aborted,
            s.failed,
            s.more_work
        ),
        (6, 2, 2, 0, false),
        "{s:?}"
    );
    assert_eq!(s.examined, 8);

    for up in &stale {
        assert_eq!(status_of(&ctx, up).await, Status::Aborted);
        assert!(
            !s3_upload_exists(&ctx, up).await,
            "stale upload still holds parts"
        );
    }
    for up in &orphans {
        assert!(!s3_upload_exists(&ctx, up).await, "orphan left");
    }
    assert_eq!(status_of(&ctx, &fresh).await, Status::Active);
    let left: BTreeSet<String> = s3_uploads_under(&ctx, &prefix)
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert_eq!(
        left,
        BTreeSet::from([fresh.upload_id.clone(), fresh_orphan.upload_id.clone()])
    );

    // A second run finds nothing more: nothing is counted or aborted twice.
    let again = sweep::run(&ctx, &request(&ctx, cutoff), None).await;
    assert_eq!(
        (again.examined, again.aborted, again.orphans_aborted),
        (0, 0, 0),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_dry_run_changes_nothing_and_names_exactly_what_a_real_run_aborts() {
    let (ctx, prefix) = isolated(&[]).await;
    let alice = owner("alice");
    let tracked = create(&ctx, &alice, json!({"filename": "t.bin"})).await;
    upload_part(&ctx, &alice, &tracked, 1, bytes(10, 1)).await;
    let lost = orphan(&ctx, "lost.bin", true).await;
    let cutoff = now_millis() + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;

    let dry = sweep::run(
        &ctx,
        &SweepRequest {
            dry_run: true,
            ..request(&ctx, cutoff)
        },
        None,
    )
    .await;
    assert_eq!(
        (dry.would_abort, dry.aborted, dry.orphans_aborted),
        (2, 0, 0),
        "{dry:?}"
    );
    let named: BTreeSet<String> = dry
        .would_abort_list
        .iter()
        .map(|v| v["uploadId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        named,
        BTreeSet::from([tracked.upload_id.clone(), lost.upload_id.clone()])
    );
    assert_eq!(status_of(&ctx, &tracked).await, Status::Active);
    assert_eq!(
        s3_uploads_under(&ctx, &prefix).await.len(),
        2,
        "dry run touched S3"
    );

    let real = sweep::run(&ctx, &request(&ctx, cutoff), None).await;
    assert_eq!(
        real.aborted + real.orphans_aborted,
        dry.would_abort,
        "{real:?}"
    );
    assert!(s3_uploads_under(&ctx, &prefix).await.is_empty());
}

#[tokio::test]
async fn a_run_cut_short_by_its_deadline_or_limit_is_finished_by_the_next() {
    let (ctx, prefix) = isolated(&[
        ("PARTWISE_SWEEP_CONCURRENCY", "1"),
        ("PARTWISE_SWEEP_SAFETY_MARGIN_MS", "0"),
    ])
    .await;
    let alice = owner("alice");
    let mut ups = vec![];
    for i in 0..40 {
        ups.push(create(&ctx, &alice, json!({"filename": format!("u{i}")})).await);
    }
    let cutoff = now_millis() + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;

    let limited = sweep::run(
        &ctx,
        &SweepRequest {
            limit: Some(5),
            ..request(&ctx, cutoff)
        },
        None,
    )
    .await;
    assert_eq!(
        (limited.aborted, limited.more_work),
        (5, true),
        "{limited:?}"
    );
    assert_eq!(
        (
            limited.remaining_uploads,
            limited.remaining_tracked,
            limited.remaining_exact
        ),
        (35, 35, true),
        "what remains is counted, not what the limit refused: {limited:?}"
    );
    assert_eq!(s3_uploads_under(&ctx, &prefix).await.len(), 35);

    let short = sweep::run(
        &ctx,
        &request(&ctx, cutoff),
        Some(Instant::now() + Duration::from_millis(30)),
    )
    .await;
    assert!(
        short.more_work && short.aborted < 35,
        "not cut short: {short:?}"
    );

    let rest = sweep::run(&ctx, &request(&ctx, cutoff), None).await;
    assert!(!rest.more_work, "{rest:?}");
    assert_eq!(
        (
            rest.remaining_uploads,
            rest.remaining_tracked,
            rest.remaining_exact
        ),
        (0, 0, true),
        "{rest:?}"
    );
    let total = |s: &Summary| s.aborted + s.already_gone;
    assert_eq!(
        total(&limited) + total(&short) + total(&rest),
        40,
        "each upload aborted exactly once"
    );
    for up in &ups {
        assert_eq!(status_of(&ctx, up).await, Status::Aborted);
    }
    assert!(s3_uploads_under(&ctx, &prefix).await.is_empty());
}

#[tokio::test]
async fn crash_leftovers_are_resolved_from_s3s_truth() {
    let (ctx, prefix) = isolated(&[]).await;
    let alice = owner("alice");
    let claim = |up: &Started, from, to| {
        let ctx = &ctx;
        let id = up.upload_id.clone();
        async move {
            assert!(matches!(
                ctx.store.transition(&id, from, to, None).await.unwrap(),
                Transition::Won
            ))
        }
    };
    let age_out = |up: &Started| {
        let ctx = &ctx;
        let id = up.upload_id.clone();
        async move {
            ctx.store
                .client()
                .update_item()
                .table_name(ctx.store.table())
                .key("upload_id", aws_sdk_dynamodb::types::AttributeValue::S(id))
                .update_expression("SET updated_at = :old")
                .expression_attribute_values(
                    ":old",
                    aws_sdk_dynamodb::types::AttributeValue::N("0".into()),
                )
                .send()
                .await
                .unwrap();
        }
    };

    // Crashed mid-abort: claimed, parts still in S3.
    let aborting = create(&ctx, &alice, json!({"filename": "aborting.bin"})).await;
    upload_part(&ctx, &alice, &aborting, 1, bytes(10, 1)).await;
    claim(&aborting, Status::Active, Status::Aborting).await;

    // Crashed after S3 completed, before the item said so.
    let done = create(&ctx, &alice, json!({"filename": "done.bin"})).await;
    let etag = upload_part(&ctx, &alice, &done, 1, bytes(10, 2)).await;
    claim(&done, Status::Active, Status::Completing).await;
    let parts = [partwise::storage::Part {
        part_number: 1,
        etag,
        size: 10,
        checksum: None,
    }];
    assert!(matches!(
        ctx.storage
            .complete(&done.key, &done.upload_id, &parts)
            .await
            .unwrap(),
        partwise::storage::Completed::Done { .. }
    ));
    age_out(&done).await;

    // Crashed after claiming the completion, before S3 was asked.
    let stuck = create(&ctx, &alice, json!({"filename": "stuck.bin"})).await;
    upload_part(&ctx, &alice, &stuck, 1, bytes(10, 3)).await;
    claim(&stuck, Status::Active, Status::Completing).await;
    age_out(&stuck).await;

    // A completion in progress right now: within its lease, left alone.
    let busy = create(&ctx, &alice, json!({"filename": "busy.bin"})).await;
    claim(&busy, Status::Active, Status::Completing).await;

    let cutoff = now_millis() + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let s = sweep::run(&ctx, &request(&ctx, cutoff), None).await;
    assert_eq!(
        (s.aborted, s.completions_resolved, s.skipped, s.failed),
        (1, 2, 1, 0),
        "{s:?}"
    );

    assert_eq!(status_of(&ctx, &aborting).await, Status::Aborted);
    assert!(!s3_upload_exists(&ctx, &aborting).await);
    let item = ctx.store.get(&done.upload_id).await.unwrap().unwrap();
    assert_eq!(
        (item.status, item.completion.map(|c| c.size)),
        (Status::Completed, Some(10))
    );
    assert_eq!(
        s3_object(&ctx, &done.key).await.unwrap(),
        bytes(10, 2),
        "a completed object is never touched"
    );
    assert_eq!(status_of(&ctx, &stuck).await, Status::Aborted);
    assert!(!s3_upload_exists(&ctx, &stuck).await);
    assert_eq!(status_of(&ctx, &busy).await, Status::Completing);
    assert_eq!(
        s3_uploads_under(&ctx, &prefix).await.len(),
        1,
        "only the busy upload remains"
    );
}

#[tokio::test]
async fn scheduled_and_bad_manual_events() {
    let (ctx, _) = isolated(&[("PARTWISE_SWEEP_MAX_AGE_SECS", "3600")]).await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "young.bin"})).await;
    let scheduled = json!({"version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-11-25T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let s = sweep::handle(&ctx, scheduled, None).await.unwrap();
    assert_eq!(
        s.aborted, 0,
        "an upload younger than the max age is not stale"
    );
    assert_eq!(status_of(&ctx, &up).await, Status::Active);
    let err = sweep::handle(&ctx, json!({"older_than": "soon"}), None)
        .await
        .unwrap_err();
    assert_eq!(err.status(), 400);
    let s = sweep::handle(&ctx, json!({"max_age_secs": 0}), None)
        .await
        .unwrap();
    assert_eq!(s.aborted, 1);
}

/// 200 trials of complete racing the sweep: each ends in one terminal state
/// that S3 agrees with (the trial itself is shared with the load bench, which
/// runs 1,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn complete_racing_the_sweep_ends_in_one_state_that_matches_s3() {
    let (ctx, _) = isolated(&[]).await;
    let r = partwise_local::races::complete_vs_sweep(&ctx, 200, 8).await;
    assert_eq!(r.trials, 200);
    assert!(r.inconsistent.is_empty(), "{:#?}", r.inconsistent);
    assert_eq!(r.completed + r.aborted, 200);
    eprintln!(
        "complete vs sweep: {} completed, {} aborted",
        r.completed, r.aborted
    );
}

/// A context whose S3 or DynamoDB side cannot be reached: S3 with keys it
/// refuses, or DynamoDB on a port nothing listens on.
async fn unreachable(ctx: &Context, side: &str) -> Context {
    use aws_credential_types::Credentials;
    let good = aws_config::load_from_env().await;
    let sdk = match side {
        "s3" => good
            .to_builder()
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(Credentials::new(
                    "GK0123456789abcdef01234567",
                    "f".repeat(64),
                    None,
                    None,
                    "test",
                )),
            )
            .build(),
        _ => {
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let port = closed.local_addr().unwrap().port();
            drop(closed);
            let ddb = aws_sdk_dynamodb::config::Builder::from(&good)
                .endpoint_url(format!("http://127.0.0.1:{port}"))
                .build();
            let mut broken = Context::new(ctx.config.clone(), &good);
            broken.store = partwise::store::Store::new(
                aws_sdk_dynamodb::Client::from_conf(ddb),
                &ctx.config.table,
                ctx.config.gsi_shards,
                ctx.config.retention,
            );
            return broken;
        }
    };
    Context::new(ctx.config.clone(), &sdk)
}

#[tokio::test]
async fn a_sweep_that_cannot_list_fails_the_invocation_and_keeps_more_work() {
    let (ctx, prefix) = isolated(&[]).await;
    let alice = owner("alice");
    let tracked = create(&ctx, &alice, json!({"filename": "t.bin"})).await;
    let stray = orphan(&ctx, "o.bin", false).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let event = json!({"older_than": now_millis()});

    for side in ["s3", "dynamodb"] {
        let broken = unreachable(&ctx, side).await;
        let summary = sweep::run(&broken, &request(&broken, now_millis()), None).await;
        assert!(summary.listing_failures >= 1, "{side}: {summary:?}");
        assert!(summary.more_work, "{side}: {summary:?}");
        assert!(!summary.listing_errors.is_empty(), "{side}: {summary:?}");

        let err = sweep::handle(&broken, event.clone(), None)
            .await
            .expect_err("an unreachable side must fail the invocation");
        assert_eq!(err.status(), 500, "{side}");
        assert!(
            err.to_string().contains("sweep incomplete"),
            "{side}: {err}"
        );
        assert!(
            err.to_string().contains("more_work stays true"),
            "{side}: {err}"
        );
    }

    // Nothing was lost: a run that can reach both finishes the work.
    let done = sweep::handle(&ctx, event, None).await.unwrap();
    assert!(!done.more_work && done.listing_failures == 0, "{done:?}");
    assert_eq!(status_of(&ctx, &tracked).await, Status::Aborted);
    assert!(!s3_upload_exists(&ctx, &stray).await);
    assert!(s3_uploads_under(&ctx, &prefix).await.is_empty());
}

#[tokio::test]
async fn a_stale_upload_completed_straight_in_s3_is_recorded_completed_not_aborted() {
    let (ctx, prefix) = isolated(&[]).await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "direct.bin"})).await;
    let etag = upload_part(&ctx, &alice, &up, 1, bytes(10, 7)).await;
    complete_in_s3(&ctx, &up, &etag).await;

    let cutoff = now_millis() + 1;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let s = sweep::run(&ctx, &request(&ctx, cutoff), None).await;
    assert_eq!(
        (s.aborted, s.already_gone, s.completions_resolved, s.failed),
        (0, 0, 1, 0),
        "{s:?}"
    );
    let item = ctx.store.get(&up.upload_id).await.unwrap().unwrap();
    assert_eq!(
        (item.status, item.completion.map(|c| c.size)),
        (Status::Completed, Some(10))
    );
    assert_eq!(s3_object(&ctx, &up.key).await.unwrap(), bytes(10, 7));
    assert!(s3_uploads_under(&ctx, &prefix).await.is_empty());
}
