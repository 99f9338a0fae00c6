//! Size limits and per-owner quotas, each tried the way a hostile client
//! would try to get past it, against Garage and DynamoDB Local.

mod common;

use common::*;
use futures::StreamExt;
use partwise::Context;
use partwise::model::{Status, now_millis};
use partwise::quota::counters;
use serde_json::{Value, json};

const MIB: usize = 1 << 20;
const KEYS: &str = "limits-test-key-0123456789abcdef0123456789abcdef";
const GRANTS: &str = "POST /grants";
const G_CREATE: &str = "POST /g/{grant}/s3/multipart";
const QUOTA: &str = "GET /quota";

/// A context with `extra` settings whose keys live under a prefix of their own.
async fn isolated(extra: &[(&str, &str)]) -> Context {
    let prefix = format!("limits-{}/", uuid::Uuid::new_v4().simple());
    let mut settings = vec![
        ("PARTWISE_KEY_PREFIX", prefix.as_str()),
        ("PARTWISE_GRANT_KEYS", KEYS),
    ];
    settings.extend_from_slice(extra);
    context(&settings).await
}

/// A grant for `owner` through `POST /grants`, with `body`'s limits.
async fn grant(ctx: &Context, owner: &str, body: Value) -> String {
    let (status, answer) = Call::new(GRANTS).owner(owner).json(body).send(ctx).await;
    assert_eq!(status, 200, "{answer}");
    let endpoint = answer["endpoint"].as_str().unwrap();
    endpoint.rsplit_once("/g/").unwrap().1.to_string()
}

/// The item's `abort_reason`, as the table holds it.
async fn abort_reason(ctx: &Context, upload_id: &str) -> Option<String> {
    let item = ctx
        .store
        .client()
        .get_item()
        .table_name(ctx.store.table())
        .key(
            "upload_id",
            aws_sdk_dynamodb::types::AttributeValue::S(upload_id.into()),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    item.get("abort_reason")
        .and_then(|v| v.as_s().ok())
        .cloned()
}

async fn status_of(ctx: &Context, upload_id: &str) -> Status {
    ctx.store.get(upload_id).await.unwrap().unwrap().status
}

/// A PUT to a presigned URL with the content type it was signed for: its
/// status, or 0 when the server cut the body off (a refusal mid-request).
async fn put_typed(url: &str, content_type: &str, body: Vec<u8>) -> u16 {
    // As browsers and curl do for a PUT, the length is sent even when it
    // is 0 (hyper leaves an empty body's out).
    match http()
        .put(url)
        .header("content-type", content_type)
        .header("content-length", body.len())
        .body(body)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            if status != 200 {
                eprintln!(
                    "PUT refused: {status} {}",
                    resp.text().await.unwrap_or_default()
                );
            }
            status
        }
        Err(e) => {
            eprintln!("PUT cut off: {e}");
            0
        }
    }
}

#[tokio::test]
async fn an_empty_files_put_url_takes_no_body_but_an_empty_one() {
    let ctx = isolated(&[]).await;
    let alice = owner("alice");
    let g = grant(&ctx, &alice, json!({"maxFileSize": MIB})).await;
    // Straight, and through a grant limited to 1 MiB: the same URL shape.
    for call in [
        Call::new(CREATE).owner(&alice),
        Call::new(G_CREATE).path("grant", &g),
    ] {
        let (status, body) = call
            .json(json!({"filename": "e.bin", "type": "application/octet-stream", "size": 0}))
            .send(&ctx)
            .await;
        assert_eq!(status, 200, "{body}");
        let (url, key) = (body["url"].as_str().unwrap(), body["key"].as_str().unwrap());
        assert!(
            body["headers"].get("content-length").is_none(),
            "a browser cannot set content-length: {body}"
        );
        // The bypass: 2 MiB to the URL of an empty file. S3 answers 403
        // (signature mismatch), Garage 400 or 403.
        let status = put_typed(url, "application/octet-stream", bytes(2 * MIB, 1)).await;
        assert!(matches!(status, 0 | 400 | 403), "2 MiB body: {status}");
        assert_eq!(s3_object(&ctx, key).await, None, "nothing landed");
        let status = put_typed(url, "application/octet-stream", vec![1]).await;
        assert!(matches!(status, 0 | 400 | 403), "1 byte: {status}");
        assert_eq!(
            put_typed(url, "application/octet-stream", vec![]).await,
            200
        );
        assert_eq!(s3_object(&ctx, key).await, Some(vec![]));
    }
}

#[tokio::test]
async fn an_unsized_upload_signs_no_part_that_cannot_fit_and_aborts_when_over() {
    let ctx = isolated(&[]).await;
    let bob = owner("bob");
    // 8 MiB through a grant: parts of 5 MiB at least, so no part 3.
    let g = grant(&ctx, &bob, json!({"maxFileSize": 8 * MIB})).await;
    let (status, up) = Call::new(G_CREATE)
        .path("grant", &g)
        .json(json!({"filename": "big.bin"}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{up}");
    let (id, key) = (
        up["uploadId"].as_str().unwrap().to_string(),
        up["key"].as_str().unwrap().to_string(),
    );
    let sign = |n: u32| {
        Call::new("GET /g/{grant}/s3/multipart/{uploadId}/{partNumber}")
            .path("grant", &g)
            .path("uploadId", &id)
            .path("partNumber", n)
            .query("key", &key)
    };
    let (status, body) = sign(3).send(&ctx).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "TooLarge");
    // Parts 1 and 2 fit, and a hostile client fills each with 6 MiB (12 > 8).
    let mut etags = vec![];
    for n in [1, 2] {
        let (status, body) = sign(n).send(&ctx).await;
        assert_eq!(status, 200, "{body}");
        let (status, etag) = put(body["url"].as_str().unwrap(), bytes(6 * MIB, n as u8)).await;
        assert_eq!(status, 200);
        etags.push(json!({"PartNumber": n, "ETag": etag.unwrap()}));
    }
    // Complete over the limit: 413, and the upload is aborted at once.
    let (status, body) = Call::new("POST /g/{grant}/s3/multipart/{uploadId}/complete")
        .path("grant", &g)
        .path("uploadId", &id)
        .query("key", &key)
        .json(json!({"parts": etags}))
        .send(&ctx)
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(status_of(&ctx, &id).await, Status::Aborted);
    assert_eq!(abort_reason(&ctx, &id).await.as_deref(), Some("too_large"));
    let started = Started {
        upload_id: id.clone(),
        key: key.clone(),
        body: up.clone(),
    };
    assert!(!s3_upload_exists(&ctx, &started).await, "parts deleted");
    assert_eq!(s3_object(&ctx, &key).await, None);
}

#[tokio::test]
async fn an_unsized_upload_over_its_limit_is_aborted_at_its_next_signing() {
    let ctx = isolated(&[("PARTWISE_MAX_UPLOAD_SIZE", "12MiB")]).await;
    let carol = owner("carol");
    let up = create(&ctx, &carol, json!({"filename": "f.bin"})).await;
    // Each part URL takes any size: part 1 gets 13 MiB (S3 allows 5 GiB).
    let url = sign(&ctx, &carol, &up, 1).await;
    assert_eq!(put(&url, bytes(13 * MIB, 3)).await.0, 200);
    let (status, body) = Call::new(SIGN)
        .owner(&carol)
        .path("uploadId", &up.upload_id)
        .path("partNumber", 2)
        .query("key", &up.key)
        .send(&ctx)
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(status_of(&ctx, &up.upload_id).await, Status::Aborted);
    assert_eq!(
        abort_reason(&ctx, &up.upload_id).await.as_deref(),
        Some("too_large")
    );
    assert!(!s3_upload_exists(&ctx, &up).await);
}

#[tokio::test]
async fn an_unsized_upload_signs_only_a_window_past_what_s3_holds() {
    let ctx = isolated(&[("PARTWISE_UNSIZED_PART_WINDOW", "2")]).await;
    let dan = owner("dan");
    let up = create(&ctx, &dan, json!({"filename": "w.bin"})).await;
    let sign_n = |n: u32| {
        Call::new(SIGN)
            .owner(&dan)
            .path("uploadId", &up.upload_id)
            .path("partNumber", n)
            .query("key", &up.key)
    };
    let (status, body) = sign_n(3).send(&ctx).await;
    assert_eq!(status, 409, "{body}");
    // The batch routes hold to it too.
    let (status, body) = Call::new(BATCH)
        .owner(&dan)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .query("partNumbers", "1-3")
        .send(&ctx)
        .await;
    assert_eq!(status, 409, "{body}");
    upload_part(&ctx, &dan, &up, 1, bytes(5 * MIB, 4)).await;
    let (status, body) = sign_n(3).send(&ctx).await;
    assert_eq!(status, 200, "once part 1 is held: {body}");
    let (status, body) = sign_n(4).send(&ctx).await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = Call::new(ABORT)
        .owner(&dan)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_deploy_can_require_a_declared_size() {
    let ctx = isolated(&[("PARTWISE_REQUIRE_DECLARED_SIZE", "true")]).await;
    let erin = owner("erin");
    let (status, body) = Call::new(CREATE)
        .owner(&erin)
        .json(json!({"filename": "x.bin"}))
        .send(&ctx)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("size"), "{body}");
    let up = create(&ctx, &erin, json!({"filename": "x.bin", "size": 6 * MIB})).await;
    // A sized part URL refuses any other size.
    let url = sign(&ctx, &erin, &up, 1).await;
    let status = put_typed(&url, "application/octet-stream", bytes(6 * MIB + 1, 5)).await;
    assert!(matches!(status, 0 | 400 | 403), "{status}");
    let (status, _) = Call::new(ABORT)
        .owner(&erin)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
}

/// What `GET /quota` says `owner` uses of `quota`.
async fn usage(ctx: &Context, owner: &str, quota: &str) -> (u64, Value) {
    let (status, body) = Call::new(QUOTA).owner(owner).send(ctx).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["owner"], owner);
    let f = &body["quotas"][quota];
    (f["usage"].as_u64().unwrap(), f["limit"].clone())
}

async fn abort_via_api(ctx: &Context, owner: &str, up: &Started) {
    let (status, body) = Call::new(ABORT)
        .owner(owner)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .send(ctx)
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn live_uploads_are_capped_and_released_at_complete_abort_and_sweep() {
    let ctx = isolated(&[("PARTWISE_MAX_LIVE_UPLOADS_PER_OWNER", "3")]).await;
    let fay = owner("fay");
    let mut ups = vec![];
    for i in 0..3 {
        ups.push(
            create(
                &ctx,
                &fay,
                json!({"filename": format!("{i}.bin"), "size": 1024}),
            )
            .await,
        );
    }
    assert_eq!(usage(&ctx, &fay, "liveUploads").await, (3, json!(3)));
    let (status, body) = Call::new(CREATE)
        .owner(&fay)
        .json(json!({"filename": "4.bin", "size": 1024}))
        .send(&ctx)
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "QuotaExceeded");
    assert_eq!(body["error"]["quota"], "liveUploads");
    assert_eq!(
        (
            body["error"]["usage"].clone(),
            body["error"]["limit"].clone()
        ),
        (json!(3), json!(3))
    );
    // The refused call left nothing in S3 under the owner's prefix but the three.
    let prefix = format!(
        "{}{}/",
        ctx.config.key_prefix,
        partwise::keys::owner_segment(&fay)
    );
    assert_eq!(s3_uploads_under(&ctx, &prefix).await.len(), 3);

    // Complete one, abort one, sweep one: each gives its place back.
    let etag = upload_part(&ctx, &fay, &ups[0], 1, bytes(1024, 1)).await;
    let (status, body) = Call::new(COMPLETE)
        .owner(&fay)
        .path("uploadId", &ups[0].upload_id)
        .query("key", &ups[0].key)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(usage(&ctx, &fay, "liveUploads").await.0, 2);
    abort_via_api(&ctx, &fay, &ups[1]).await;
    assert_eq!(usage(&ctx, &fay, "liveUploads").await.0, 1);
    let summary = partwise::sweep::run(
        &ctx,
        &partwise::sweep::SweepRequest {
            cutoff_ms: now_millis() + 1000,
            dry_run: false,
            prefix: ctx.config.key_prefix.clone(),
            limit: None,
        },
        None,
    )
    .await;
    assert_eq!(summary.aborted, 1, "{summary:?}");
    assert_eq!(usage(&ctx, &fay, "liveUploads").await.0, 0);
    assert_eq!(usage(&ctx, &fay, "bytesInFlight").await.0, 0);
}

#[tokio::test]
async fn declared_bytes_in_flight_are_capped() {
    let ctx = isolated(&[("PARTWISE_MAX_BYTES_IN_FLIGHT_PER_OWNER", "10MiB")]).await;
    let gus = owner("gus");
    let first = create(&ctx, &gus, json!({"filename": "a.bin", "size": 6 * MIB})).await;
    for size in [6 * MIB, 20 * MIB] {
        let (status, body) = Call::new(CREATE)
            .owner(&gus)
            .json(json!({"filename": "b.bin", "size": size}))
            .send(&ctx)
            .await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["quota"], "bytesInFlight");
        assert_eq!(body["error"]["usage"], 6 * MIB);
        assert_eq!(body["error"]["limit"], 10 * MIB);
    }
    let fits = create(&ctx, &gus, json!({"filename": "c.bin", "size": 4 * MIB})).await;
    assert_eq!(usage(&ctx, &gus, "bytesInFlight").await.0, 10 * MIB as u64);
    abort_via_api(&ctx, &gus, &first).await;
    abort_via_api(&ctx, &gus, &fits).await;
    assert_eq!(
        usage(&ctx, &gus, "bytesInFlight").await,
        (0, json!(10 * MIB))
    );
}

#[tokio::test]
async fn new_uploads_per_minute_are_capped_with_a_retry_after() {
    let ctx = isolated(&[("PARTWISE_MAX_UPLOADS_PER_MINUTE_PER_OWNER", "2")]).await;
    // Three calls in one calendar minute: start clear of its end.
    let into_minute = now_millis().rem_euclid(60_000);
    if into_minute > 50_000 {
        tokio::time::sleep(std::time::Duration::from_millis(
            (60_000 - into_minute + 100) as u64,
        ))
        .await;
    }
    let hal = owner("hal");
    let a = create(&ctx, &hal, json!({"filename": "a.bin", "size": 1})).await;
    let b = create(&ctx, &hal, json!({"filename": "b.bin", "size": 1})).await;
    let event = Call::new(CREATE)
        .owner(&hal)
        .json(json!({"filename": "c.bin", "size": 1}))
        .event();
    let resp = partwise::api::handle(&ctx, partwise::api::Function::Initiate, event).await;
    assert_eq!(resp.status_code, 429);
    let retry: u64 = resp
        .headers
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(usage(&ctx, &hal, "uploadsPerMinute").await, (2, json!(2)));
    abort_via_api(&ctx, &hal, &a).await;
    abort_via_api(&ctx, &hal, &b).await;
}

/// 1,000 trials, each N concurrent new uploads of one fresh owner against a
/// quota of K live uploads: never more than K items, and the counter says K.
/// Straight through the store (the transaction the API's create makes), so
/// the trials race on DynamoDB alone.
#[tokio::test]
async fn concurrent_starts_never_pass_the_live_quota() {
    const TRIALS: usize = 1000;
    const N: usize = 5;
    const K: u64 = 2;
    let ctx = isolated(&[("PARTWISE_MAX_LIVE_UPLOADS_PER_OWNER", "2")]).await;
    let over: Vec<(usize, usize, u64)> = futures::stream::iter(0..TRIALS)
        .map(|trial| trial_of(&ctx, trial, N, K))
        .buffer_unordered(8)
        .filter_map(|r| async move { r })
        .collect()
        .await;
    assert!(
        over.is_empty(),
        "trials past the quota (trial, won, counted): {over:?}"
    );
}

/// One trial: `None` if it held, else (trial, uploads won, counter).
async fn trial_of(ctx: &Context, trial: usize, n: usize, k: u64) -> Option<(usize, usize, u64)> {
    {
        let who = format!("racer-{trial}-{}", uuid::Uuid::new_v4().simple());
        let attempts = (0..n).map(|i| {
            let upload = partwise::model::Upload {
                upload_id: format!("race-{}", uuid::Uuid::new_v4().simple()),
                key: format!("{}{who}/{i}/f.bin", ctx.config.key_prefix),
                owner: who.clone(),
                status: Status::Active,
                initiated_at: now_millis(),
                updated_at: now_millis(),
                filename: "f.bin".into(),
                content_type: "application/octet-stream".into(),
                size: Some(1),
                plan: None,
                completion: None,
                expires_at: None,
                checksum: None,
            };
            let store = &ctx.store;
            async move { (store.insert(&upload).await, upload.upload_id) }
        });
        let results = futures::future::join_all(attempts).await;
        let won: Vec<String> = results
            .into_iter()
            .filter_map(|(r, id)| match r {
                Ok(()) => Some(id),
                Err(e) => {
                    assert!(e.status() == 403 || e.status() == 429, "trial {trial}: {e}");
                    None
                }
            })
            .collect();
        let live = counters::usage(ctx.store.client(), ctx.store.table(), &who, now_millis())
            .await
            .unwrap()
            .live_uploads;
        let held = won.len() as u64 <= k && live == won.len() as u64 && !won.is_empty();
        // Settled the way the API settles them, which releases the counter.
        for id in &won {
            for (from, to) in [
                (Status::Active, Status::Aborting),
                (Status::Aborting, Status::Aborted),
            ] {
                ctx.store.transition(id, from, to, None).await.unwrap();
            }
        }
        let after = counters::usage(ctx.store.client(), ctx.store.table(), &who, now_millis())
            .await
            .unwrap();
        assert_eq!(
            (after.live_uploads, after.bytes_in_flight),
            (0, 0),
            "trial {trial}"
        );
        (!held).then_some((trial, won.len(), live))
    }
}

#[tokio::test]
async fn the_sweep_recounts_a_counter_that_drifted() {
    let ctx = isolated(&[("PARTWISE_GSI_SHARDS", "2")]).await;
    let ivy = owner("ivy");
    let up = create(&ctx, &ivy, json!({"filename": "a.bin", "size": 5})).await;
    // A release lost to a crash, played as a counter left high long ago.
    ctx.store
        .client()
        .update_item()
        .table_name(ctx.store.table())
        .key(
            "upload_id",
            aws_sdk_dynamodb::types::AttributeValue::S(counters::counter_id(&ivy)),
        )
        .update_expression("SET live = :l, bytes = :b, quota_updated_at = :t")
        .expression_attribute_values(":l", aws_sdk_dynamodb::types::AttributeValue::N("4".into()))
        .expression_attribute_values(
            ":b",
            aws_sdk_dynamodb::types::AttributeValue::N("99".into()),
        )
        .expression_attribute_values(
            ":t",
            aws_sdk_dynamodb::types::AttributeValue::N((now_millis() - 120_000).to_string()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(usage(&ctx, &ivy, "liveUploads").await.0, 4);
    let fixed = counters::recount(
        ctx.store.client(),
        ctx.store.table(),
        partwise::store::OWNER_INDEX,
        &ivy,
        now_millis(),
    )
    .await
    .unwrap();
    assert!(fixed);
    assert_eq!(usage(&ctx, &ivy, "liveUploads").await.0, 1);
    assert_eq!(usage(&ctx, &ivy, "bytesInFlight").await.0, 5);
    // Recounted just now: left alone until it settles.
    assert!(
        !counters::recount(
            ctx.store.client(),
            ctx.store.table(),
            partwise::store::OWNER_INDEX,
            &ivy,
            now_millis(),
        )
        .await
        .unwrap()
    );
    abort_via_api(&ctx, &ivy, &up).await;
    assert_eq!(usage(&ctx, &ivy, "liveUploads").await.0, 0);
}
