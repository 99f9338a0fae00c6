//! The upload lifecycle end to end, against Garage and DynamoDB Local over the wire.

mod common;

use common::*;
use partwise::model::Status;
use serde_json::json;

const MIB: usize = 1024 * 1024;

/// Small parts keep the tests quick while still exercising S3's 5 MiB rule.
async fn ctx() -> partwise::Context {
    context(&[("PARTWISE_PART_SIZE", "5MiB")]).await
}

#[tokio::test]
async fn full_lifecycle_with_real_bytes() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let size = 2 * 5 * MIB + 1234;
    let data = bytes(size, 7);
    let up = create(
        &ctx,
        &alice,
        json!({"filename": "../../holiday video.mp4", "type": "video/mp4", "size": size}),
    )
    .await;
    assert_eq!(up.body["partSize"], 5 * MIB);
    assert_eq!(up.body["partCount"], 3);
    assert!(
        up.key.starts_with(&format!("uploads/{alice}/")) && up.key.ends_with("/holiday video.mp4"),
        "{}",
        up.key
    );

    // Batch signing, then real PUTs of every part.
    let (status, batch) = Call::new(BATCH)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .query("partNumbers", "1-3")
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{batch}");
    let mut parts = vec![];
    for (i, chunk) in data.chunks(5 * MIB).enumerate() {
        let n = i + 1;
        let url = batch["presignedUrls"][n.to_string()].as_str().unwrap();
        let (st, etag) = put(url, chunk.to_vec()).await;
        assert_eq!(st, 200);
        parts.push(json!({"PartNumber": n, "ETag": etag.unwrap()}));
    }

    let (status, body) = Call::new(STATUS)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["uploaded"]["parts"], 3);
    assert_eq!(body["uploaded"]["bytes"], size);

    let (status, done) = Call::new(COMPLETE)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .json(json!({"parts": parts}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["size"], size);
    // The object's URL on the endpoint clients use, as for POST-form uploads.
    let location = done["location"].as_str().unwrap();
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3").unwrap();
    assert!(
        location.starts_with(endpoint.trim_end_matches('/'))
            && location.ends_with(&*key_tail(done["key"].as_str().unwrap())),
        "location {location} names the object on {endpoint}"
    );

    assert_eq!(
        s3_object(&ctx, &up.key).await.unwrap(),
        data,
        "object differs from the bytes sent"
    );
    assert!(!s3_upload_exists(&ctx, &up).await);
    let item = ctx.store.get(&up.upload_id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Completed);
    assert!(item.expires_at.is_some(), "terminal items carry a TTL");
    assert_eq!(item.completion.unwrap().size, size as u64);
}

#[tokio::test]
async fn resume_with_list_parts_then_complete_with_what_s3_holds() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "big.bin"})).await;
    let p1 = bytes(5 * MIB, 1);
    let p2 = bytes(777, 2);
    let e1 = upload_part(&ctx, &alice, &up, 1, p1.clone()).await;
    let e2 = upload_part(&ctx, &alice, &up, 2, p2.clone()).await;

    // A client that lost its state asks what S3 holds.
    let (status, listed) = Call::new(LIST)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(
        listed,
        json!([{"PartNumber": 1, "ETag": e1, "Size": 5 * MIB}, {"PartNumber": 2, "ETag": e2, "Size": 777}])
    );

    // Completing without a part list uses all parts S3 holds.
    let (status, body) = Call::new(COMPLETE)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s3_object(&ctx, &up.key).await.unwrap(), [p1, p2].concat());
}

#[tokio::test]
async fn list_parts_reads_every_page() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "many.bin"})).await;
    let n_parts = 1_100u32; // Garage pages ListParts at 1,000.
    let batch = || {
        Call::new(BATCH)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .query("partNumbers", format!("1-{n_parts}"))
    };
    let (status, body) = batch().send(&ctx).await;
    assert_eq!(status, 400, "the default batch cap is 1,000: {body}");
    let roomy = context(&[("PARTWISE_MAX_BATCH_SIGN", "2000")]).await;
    let (status, batch) = batch().send(&roomy).await;
    assert_eq!(status, 200, "{batch}");
    let urls: Vec<String> = (1..=n_parts)
        .map(|n| {
            batch["presignedUrls"][n.to_string()]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    use futures::StreamExt;
    let statuses: Vec<u16> = futures::stream::iter(
        urls.into_iter()
            .map(|u| async move { put(&u, vec![b'x']).await.0 }),
    )
    .buffer_unordered(16)
    .collect()
    .await;
    assert!(statuses.iter().all(|s| *s == 200));
    let (status, listed) = Call::new(LIST)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
    let numbers: Vec<u64> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["PartNumber"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, (1..=n_parts as u64).collect::<Vec<_>>());
    // 1-byte parts break S3's 5 MiB rule: refused before S3 is asked, upload still ACTIVE.
    let (status, body) = Call::new(COMPLETE)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        ctx.store.get(&up.upload_id).await.unwrap().unwrap().status,
        Status::Active
    );
    let (status, _) = Call::new(ABORT)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
    assert!(!s3_upload_exists(&ctx, &up).await);
}

#[tokio::test]
async fn abort_frees_every_part_and_is_idempotent() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "gone.bin"})).await;
    let e1 = upload_part(&ctx, &alice, &up, 1, bytes(5 * MIB, 3)).await;
    upload_part(&ctx, &alice, &up, 2, bytes(100, 4)).await;
    assert_eq!(
        s3_uploads_under(&ctx, &format!("uploads/{alice}/"))
            .await
            .len(),
        1
    );

    for _ in 0..2 {
        let (status, body) = Call::new(ABORT)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .query("key", &up.key)
            .send(&ctx)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    assert!(
        !s3_upload_exists(&ctx, &up).await,
        "parts remain after abort"
    );
    assert!(
        s3_uploads_under(&ctx, &format!("uploads/{alice}/"))
            .await
            .is_empty()
    );
    assert!(s3_object(&ctx, &up.key).await.is_none());
    let item = ctx.store.get(&up.upload_id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Aborted);
    assert!(item.expires_at.is_some());

    // Nothing more can happen to an aborted upload.
    let (status, _) = Call::new(COMPLETE)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": e1}]}))
        .send(&ctx)
        .await;
    assert_eq!(status, 409);
    let (status, _) = Call::new(SIGN)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .path("partNumber", 3)
        .send(&ctx)
        .await;
    assert_eq!(status, 409);
    let (status, _) = Call::new(LIST)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn repeated_complete_returns_the_same_result_and_abort_keeps_the_object() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let up = create(
        &ctx,
        &alice,
        json!({"filename": "once.txt", "type": "text/plain", "size": 11}),
    )
    .await;
    let etag = upload_part(&ctx, &alice, &up, 1, b"hello world".to_vec()).await;
    let complete = || {
        Call::new(COMPLETE)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}))
    };
    let (s1, first) = complete().send(&ctx).await;
    let (s2, second) = complete().send(&ctx).await;
    assert_eq!((s1, s2), (200, 200), "{first} {second}");
    assert_eq!(first, second);
    let (status, _) = Call::new(ABORT)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 409);
    assert_eq!(s3_object(&ctx, &up.key).await.unwrap(), b"hello world");
}

#[tokio::test]
async fn other_owners_and_anonymous_callers_are_refused() {
    let ctx = ctx().await;
    let (alice, bob) = (owner("alice"), owner("bob"));
    let up = create(&ctx, &alice, json!({"filename": "private.bin"})).await;
    upload_part(&ctx, &alice, &up, 1, bytes(100, 3)).await;
    // Without the key, and with it (then S3 is asked while the item is read,
    // and abort's claim carries the owner check): bob learns nothing, changes nothing.
    for with_key in [false, true] {
        for call in [
            Call::new(SIGN).path("partNumber", 1),
            Call::new(BATCH).query("partNumbers", "1"),
            Call::new(LIST),
            Call::new(STATUS),
            Call::new(COMPLETE).json(json!({})),
            Call::new(ABORT),
        ] {
            let route = call.route_key;
            let call = if with_key {
                call.query("key", &up.key)
            } else {
                call
            };
            let (status, body) = call
                .path("uploadId", &up.upload_id)
                .owner(&bob)
                .send(&ctx)
                .await;
            assert_eq!(status, 404, "{route} (key given: {with_key}): {body}");
            assert_eq!(body["error"]["code"], "NotFound");
        }
    }
    // A right id with a wrong key is not found either.
    for call in [
        Call::new(LIST),
        Call::new(STATUS),
        Call::new(COMPLETE).json(json!({})),
        Call::new(ABORT),
    ] {
        let route = call.route_key;
        let (status, body) = call
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .query("key", "uploads/x")
            .send(&ctx)
            .await;
        assert_eq!(status, 404, "{route}: {body}");
    }
    assert!(
        s3_upload_exists(&ctx, &up).await,
        "the upload is still in S3"
    );
    // No identity outside anonymous mode.
    let (status, body) = Call::new(CREATE)
        .json(json!({"filename": "a"}))
        .send(&ctx)
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert_eq!(
        ctx.store.get(&up.upload_id).await.unwrap().unwrap().status,
        Status::Active
    );

    // Anonymous mode: a public drop box.
    let anon = context(&[("PARTWISE_ANONYMOUS", "true")]).await;
    let (status, body) = Call::new(CREATE)
        .json(json!({"filename": "drop.txt"}))
        .send(&anon)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["key"]
            .as_str()
            .unwrap()
            .starts_with("uploads/anonymous/")
    );
}

#[tokio::test]
async fn tampered_and_expired_urls_are_rejected() {
    let ctx = context(&[("PARTWISE_URL_EXPIRY_SECS", "2")]).await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "t.bin"})).await;
    let url = sign(&ctx, &alice, &up, 1).await;
    assert!(url.contains("X-Amz-Expires=2"), "{url}");

    let other_part = url.replace("partNumber=1", "partNumber=2");
    assert_ne!(other_part, url);
    assert_eq!(
        put(&other_part, b"x".to_vec()).await.0,
        403,
        "part number swapped"
    );
    let sig_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut forged = url.clone().into_bytes();
    forged[sig_at] = if forged[sig_at] == b'0' { b'1' } else { b'0' };
    assert_eq!(
        put(&String::from_utf8(forged).unwrap(), b"x".to_vec())
            .await
            .0,
        403,
        "forged signature"
    );

    assert_eq!(put(&url, b"in time".to_vec()).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let late = put(&url, b"too late".to_vec()).await.0;
    assert!(matches!(late, 400 | 403), "expired URL answered {late}");
    let (_, listed) = Call::new(LIST)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["Size"], 7, "only the in-time PUT landed");
}

#[tokio::test]
async fn a_failed_item_write_leaves_no_s3_upload() {
    let broken = context(&[("PARTWISE_TABLE", "no-such-table")]).await;
    let alice = owner("alice");
    let (status, body) = Call::new(CREATE)
        .owner(&alice)
        .json(json!({"filename": "orphan.bin"}))
        .send(&broken)
        .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body["message"], "internal error",
        "no internals leak to callers"
    );
    assert!(
        s3_uploads_under(&broken, &format!("uploads/{alice}/"))
            .await
            .is_empty(),
        "orphan left in S3"
    );
}

#[tokio::test]
async fn presigned_post_uploads_a_small_file_within_its_policy() {
    let ctx = context(&[("PARTWISE_MAX_POST_SIZE", "1KiB")]).await;
    let alice = owner("alice");
    let form = |name: &str| {
        Call::new(PARAMS)
            .owner(&alice)
            .query("filename", name)
            .query("type", "text/plain")
    };
    let (status, body) = form("note.txt").send(&ctx).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "POST");
    let key = body["fields"]["key"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("uploads/{alice}/")));

    let post = |content: Vec<u8>| {
        let mut mp = reqwest::multipart::Form::new();
        for (k, v) in body["fields"].as_object().unwrap() {
            mp = mp.text(k.clone(), v.as_str().unwrap().to_string());
        }
        let mp = mp.part(
            "file",
            reqwest::multipart::Part::bytes(content).file_name("note.txt"),
        );
        http()
            .post(body["url"].as_str().unwrap())
            .multipart(mp)
            .send()
    };
    let resp = post(vec![b'a'; 2048]).await.unwrap();
    assert!(
        resp.status().is_client_error(),
        "over content-length-range: {}",
        resp.status()
    );
    assert!(s3_object(&ctx, &key).await.is_none());
    let resp = post(b"hello".to_vec()).await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(s3_object(&ctx, &key).await.unwrap(), b"hello");

    let (status, _) = form("big.txt").query("size", 4096).send(&ctx).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn bad_input_gets_clear_4xx_and_changes_nothing() {
    let ctx = context(&[
        ("PARTWISE_ALLOWED_CONTENT_TYPES", "image/*,text/plain"),
        ("PARTWISE_MAX_UPLOAD_SIZE", "1GiB"),
        ("PARTWISE_PART_SIZE", "5MiB"),
    ])
    .await;
    let alice = owner("alice");
    let create_with = |body: &str| Call::new(CREATE).owner(&alice).raw_body(body);
    for (body, want) in [
        ("{not json", 400),
        (r#"{"filename": 42}"#, 400),
        (r#"{"type": "image/png"}"#, 400),
        (r#"{"filename": "../..", "type": "image/png"}"#, 400),
        (r#"{"filename": "a.zip", "type": "application/zip"}"#, 422),
        (r#"{"filename": "a.png", "type": "image/png\r\nx: y"}"#, 400),
        (
            r#"{"filename": "a.png", "type": "image/png", "size": 1073741825}"#,
            413,
        ),
        (
            r#"{"filename": "a.png", "type": "image/png", "size": -1}"#,
            400,
        ),
    ] {
        let (status, resp) = create_with(body).send(&ctx).await;
        assert_eq!(status, want, "{body}: {resp}");
        assert!(
            resp["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{resp}"
        );
    }
    assert!(
        s3_uploads_under(&ctx, &format!("uploads/{alice}/"))
            .await
            .is_empty()
    );

    let up = create(
        &ctx,
        &alice,
        json!({"filename": "a.png", "type": "image/png", "size": 6 * MIB}),
    )
    .await;
    let sign_n = |n: &str| {
        Call::new(SIGN)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .path("partNumber", n)
    };
    for n in ["0", "3", "10001", "x", "-1"] {
        assert_eq!(sign_n(n).send(&ctx).await.0, 400, "part {n}");
    }
    let batch = |q: &str| {
        Call::new(BATCH)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .query("partNumbers", q)
    };
    assert_eq!(batch("1-3").send(&ctx).await.0, 400);
    let e1 = upload_part(&ctx, &alice, &up, 1, bytes(5 * MIB, 9)).await;
    let e2 = upload_part(&ctx, &alice, &up, 2, bytes(MIB, 8)).await;
    let complete = |parts: serde_json::Value| {
        Call::new(COMPLETE)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .json(parts)
    };
    for (parts, want) in [
        (
            json!({"parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]}),
            400,
        ),
        (
            json!({"parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 1, "ETag": e1}]}),
            400,
        ),
        (
            json!({"parts": [{"PartNumber": 1, "ETag": "\"nope\""}, {"PartNumber": 2, "ETag": e2}]}),
            400,
        ),
        (json!({"parts": [{"PartNumber": 1, "ETag": e1}]}), 422),
        (json!({"parts": "all"}), 400),
    ] {
        let (status, resp) = complete(parts.clone()).send(&ctx).await;
        assert_eq!(status, want, "{parts}: {resp}");
    }
    assert_eq!(
        ctx.store.get(&up.upload_id).await.unwrap().unwrap().status,
        Status::Active
    );
    let (status, _) =
        complete(json!({"parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]}))
            .send(&ctx)
            .await;
    assert_eq!(status, 200);

    // A route served by another function is not ours to answer.
    let (status, body) = Call::new(COMPLETE)
        .owner(&alice)
        .path("uploadId", "x")
        .send_to(&ctx, partwise::api::Function::Initiate)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("UnknownRoute"))
    );
}

/// 200 trials of complete racing abort on one upload: each ends in exactly one
/// terminal state, and S3 agrees with it (the trial itself is shared with the
/// load bench, which runs 1,000).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn complete_racing_abort_ends_in_one_state_that_matches_s3() {
    let ctx = ctx().await;
    let r = partwise_local::races::complete_vs_abort(&ctx, 200, 8).await;
    assert_eq!(r.trials, 200);
    assert!(r.inconsistent.is_empty(), "{:#?}", r.inconsistent);
    assert_eq!(r.completed + r.aborted, 200);
    eprintln!("race: {} completed, {} aborted", r.completed, r.aborted);
}

/// The key's last segment, escaped as in a URL path.
fn key_tail(key: &str) -> String {
    key.rsplit('/')
        .next()
        .unwrap_or_default()
        .replace(' ', "%20")
}

#[tokio::test]
async fn a_repeated_complete_returns_the_first_result_whatever_the_body() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "again.bin"})).await;
    upload_part(&ctx, &alice, &up, 1, bytes(100, 1)).await;
    let complete = || {
        Call::new(COMPLETE)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .query("key", &up.key)
    };
    let (status, first) = complete().send(&ctx).await;
    assert_eq!(status, 200, "{first}");
    for body in [
        "{not json",
        "[1, 2]",
        "{\"parts\": \"all\"}",
        "{\"parts\": []}",
    ] {
        let (status, again) = complete().raw_body(body).send(&ctx).await;
        assert_eq!((status, &again), (200, &first), "body {body:?}");
    }
}

#[tokio::test]
async fn an_empty_file_gets_one_presigned_put_and_nothing_tracked() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let (status, body) = Call::new(CREATE)
        .owner(&alice)
        .json(json!({"filename": "empty.log", "type": "text/plain", "size": 0, "checksumAlgorithm": "CRC32C"}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["uploadId"].is_null(), "{body}");
    assert_eq!(body["method"], "PUT");
    assert_eq!(body["expires"], ctx.config.url_expiry.as_secs());
    assert_eq!(body["headers"], json!({"content-type": "text/plain"}));
    let key = body["key"].as_str().unwrap();
    assert!(key.ends_with("/empty.log"), "{key}");

    // Without its signed content type the PUT is refused; with it, it lands.
    let url = body["url"].as_str().unwrap();
    let resp = http().put(url).body(Vec::new()).send().await.unwrap();
    // S3 answers 403 (signature mismatch), Garage 400 (signed header missing).
    let status = resp.status().as_u16();
    assert!(
        status == 403 || status == 400,
        "unsigned content type: {status}"
    );
    assert_eq!(s3_object(&ctx, key).await, None, "nothing landed");
    let resp = http()
        .put(url)
        .header("content-type", "text/plain")
        .header("content-length", "0")
        .body(Vec::new())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(s3_object(&ctx, key).await, Some(vec![]), "an empty object");
    let (_, size) = ctx.storage.head(key).await.unwrap().unwrap();
    assert_eq!(size, 0);

    // Nothing live for the sweep: no multipart upload, no tracked item.
    let prefix = key.rsplit_once('/').unwrap().0;
    assert_eq!(s3_uploads_under(&ctx, prefix).await, vec![]);
    let (status, listed) = Call::new("GET /s3/multipart")
        .owner(&alice)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["uploads"], json!([]));
}

#[tokio::test]
async fn an_empty_file_posts_through_the_form_byte_exact() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let (status, form) = Call::new(PARAMS)
        .owner(&alice)
        .query("filename", "empty.txt")
        .query("type", "text/plain")
        .query("size", 0)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{form}");
    let mut multipart = reqwest::multipart::Form::new();
    for (f, v) in form["fields"].as_object().unwrap() {
        multipart = multipart.text(f.clone(), v.as_str().unwrap().to_string());
    }
    let file = reqwest::multipart::Part::bytes(Vec::new()).file_name("empty.txt");
    let resp = http()
        .post(form["url"].as_str().unwrap())
        .multipart(multipart.part("file", file))
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert!(
        status.is_success(),
        "{status}: {}",
        resp.text().await.unwrap()
    );
    let key = form["fields"]["key"].as_str().unwrap();
    assert_eq!(s3_object(&ctx, key).await, Some(vec![]));
}

#[tokio::test]
async fn a_preferred_part_size_shapes_the_plan_within_s3s_limits() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let mib = 1024 * 1024u64;
    let (status, body) = Call::new(CREATE)
        .owner(&alice)
        .json(json!({"filename": "big.bin", "size": 100 * mib, "partSize": 32 * mib}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["partSize"].as_u64(), body["partCount"].as_u64()),
        (Some(32 * mib), Some(4))
    );
    for bad in [1, 5 * mib - 1, 5 * 1024 * mib + 1] {
        let (status, body) = Call::new(CREATE)
            .owner(&alice)
            .json(json!({"filename": "big.bin", "size": 100 * mib, "partSize": bad}))
            .send(&ctx)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn an_abort_after_a_completion_straight_in_s3_records_it_completed_and_keeps_the_object() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "direct.txt", "size": 11})).await;
    let etag = upload_part(&ctx, &alice, &up, 1, b"hello world".to_vec()).await;
    complete_in_s3(&ctx, &up, &etag).await;

    let abort = || {
        Call::new(ABORT)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
    };
    let (status, body) = abort().send(&ctx).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "Conflict");
    let item = ctx.store.get(&up.upload_id).await.unwrap().unwrap();
    assert_eq!(item.status, Status::Completed);
    let completion = item.completion.expect("the object's size and ETag");
    assert_eq!(completion.size, 11);
    assert_eq!(s3_object(&ctx, &up.key).await.unwrap(), b"hello world");

    // Every later call tells the same story.
    assert_eq!(abort().send(&ctx).await.0, 409);
    let (status, body) = Call::new(COMPLETE)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .json(json!({}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["size"].as_u64(), body["etag"].as_str()),
        (Some(11), Some(completion.etag.as_str()))
    );
}

#[tokio::test]
async fn a_complete_retried_after_s3_completed_unrecorded_returns_the_result_at_once() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "lost.txt", "size": 11})).await;
    let etag = upload_part(&ctx, &alice, &up, 1, b"hello world".to_vec()).await;
    // What a complete that died after S3's answer leaves: claimed, and done in S3.
    assert!(matches!(
        ctx.store
            .transition(&up.upload_id, Status::Active, Status::Completing, None)
            .await
            .unwrap(),
        partwise::store::Transition::Won
    ));
    complete_in_s3(&ctx, &up, &etag).await;

    let (status, body) = Call::new(COMPLETE)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["size"], 11);
    let item = ctx.store.get(&up.upload_id).await.unwrap().unwrap();
    assert_eq!(
        (item.status, item.completion.map(|c| c.size)),
        (Status::Completed, Some(11))
    );

    // A completion in progress (claimed, nothing in S3 yet): retry shortly (503).
    let busy = create(&ctx, &alice, json!({"filename": "busy.txt"})).await;
    upload_part(&ctx, &alice, &busy, 1, b"x".to_vec()).await;
    ctx.store
        .transition(&busy.upload_id, Status::Active, Status::Completing, None)
        .await
        .unwrap();
    let (status, _) = Call::new(COMPLETE)
        .owner(&alice)
        .path("uploadId", &busy.upload_id)
        .json(json!({}))
        .send(&ctx)
        .await;
    assert_eq!(status, 503);
    assert!(s3_upload_exists(&ctx, &busy).await);
}
