//! Hostile input through the handlers, against the real local stack: dot and
//! invisible filenames, look-alike owners, lenient-looking bodies and part
//! numbers, and calls without a caller. Each is refused with a clear 4xx, or
//! gives a key S3 (and every URL parser on the way) takes as is.

mod common;

use common::*;
use partwise::keys;
use serde_json::json;

async fn ctx() -> partwise::Context {
    context(&[]).await
}

const MIB: usize = 1024 * 1024;

/// Segments that URL parsers normalize away, or that are empty.
fn has_dot_segment(key: &str) -> bool {
    key.split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
}

#[tokio::test]
async fn dot_and_invisible_filenames_give_keys_a_real_put_reaches() {
    let ctx = ctx().await;
    // A look-alike owner full of characters the encoding escapes.
    let owner = format!("..{}|x@y/z", owner("u1"));
    for name in [". ..", ". .", "x/. ..", " . \u{00AD}. "] {
        let (status, body) = Call::new(CREATE)
            .owner(&owner)
            .json(json!({ "filename": name }))
            .send(&ctx)
            .await;
        assert_eq!(status, 400, "{name:?}: {body}");
        assert_eq!(body["error"]["code"], "BadRequest");
    }
    let prefix = format!("uploads/{}/", keys::owner_segment(&owner));
    assert!(s3_uploads_under(&ctx, &prefix).await.is_empty());

    let up = create(
        &ctx,
        &owner,
        json!({"filename": "x/. ..\u{00AD}re\u{061C}port\u{2060} .pdf", "size": 1234}),
    )
    .await;
    assert!(up.key.starts_with(&prefix), "{}", up.key);
    assert!(up.key.ends_with("/report .pdf"), "{}", up.key);
    assert!(!has_dot_segment(&up.key), "{}", up.key);
    assert_eq!(keys::key_problem(&up.key), None);

    // The presigned URL is PUT over HTTP as is: the part lands on this upload.
    let data = bytes(1234, 3);
    let etag = upload_part(&ctx, &owner, &up, 1, data.clone()).await;
    let (status, body) = Call::new(COMPLETE)
        .owner(&owner)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s3_object(&ctx, &up.key).await, Some(data));
}

#[tokio::test]
async fn look_alike_owners_get_prefixes_of_their_own() {
    let ctx = ctx().await;
    let base = owner("u1");
    let groups = [
        vec![base.clone(), format!(".{base}"), format!("..{base}")],
        vec![
            format!("{base}/x"),
            format!("{base}@x"),
            format!("{base}|x"),
            format!("{base}_x"),
        ],
    ];
    for group in groups {
        let mut keys_seen = vec![];
        for o in &group {
            let up = create(&ctx, o, json!({"filename": "same.txt"})).await;
            keys_seen.push((o.clone(), up.key));
        }
        for (o, key) in &keys_seen {
            let prefix = format!("uploads/{}/", keys::owner_segment(o));
            assert!(key.starts_with(&prefix), "{o}: {key}");
            // Listing the owner's prefix finds exactly the owner's upload.
            let listed = s3_uploads_under(&ctx, &prefix).await;
            assert_eq!(listed.len(), 1, "{o}: {listed:?}");
            assert_eq!(&listed[0].0, key);
        }
    }
    // A plain owner keeps its readable prefix.
    let plain = owner("alice");
    let up = create(&ctx, &plain, json!({"filename": "a.txt"})).await;
    assert!(
        up.key.starts_with(&format!("uploads/{plain}/")),
        "{}",
        up.key
    );
}

#[tokio::test]
async fn a_call_without_a_caller_is_401_on_every_route() {
    let ctx = ctx().await;
    for route in [CREATE, SIGN, BATCH, LIST, STATUS, COMPLETE, ABORT, PARAMS] {
        let (status, body) = Call::new(route)
            .path("uploadId", "u")
            .path("partNumber", 1)
            .query("key", "k")
            .query("partNumbers", "1")
            .query("filename", "a.txt")
            .json(json!({"filename": "a.txt"}))
            .send(&ctx)
            .await;
        assert_eq!(status, 401, "{route}: {body}");
        assert_eq!(body["error"]["code"], "Unauthorized", "{route}");
        assert_eq!(body["message"], body["error"]["message"], "{route}");
    }
}

#[tokio::test]
async fn bodies_that_are_not_objects_or_too_deep_create_nothing() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let deep = |n: usize| {
        format!(
            r#"{{"filename":"a.txt","metadata":{{"k":{}1{}}}}}"#,
            "[".repeat(n),
            "]".repeat(n)
        )
    };
    for body in [
        r#"["a.txt", "text/plain"]"#.to_string(),
        r#""a.txt""#.to_string(),
        deep(40),
        deep(5000),
    ] {
        let (status, answer) = Call::new(CREATE)
            .owner(&alice)
            .raw_body(&body)
            .send(&ctx)
            .await;
        assert_eq!(status, 400, "{}: {answer}", &body[..body.len().min(60)]);
        assert_eq!(answer["error"]["code"], "BadRequest");
    }
    let prefix = format!("uploads/{}/", keys::owner_segment(&alice));
    assert!(s3_uploads_under(&ctx, &prefix).await.is_empty());
    // Real metadata, nested a little, is fine.
    let (status, answer) = Call::new(CREATE)
        .owner(&alice)
        .raw_body(&deep(10))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn part_numbers_have_one_spelling() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let up = create(
        &ctx,
        &alice,
        json!({"filename": "a.bin", "size": 100 * MIB}),
    )
    .await;
    assert!(up.body["partCount"].as_u64().unwrap() >= 3, "{}", up.body);
    let sign = |n: &str| {
        Call::new(SIGN)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .path("partNumber", n)
    };
    for n in ["+1", "01", "1 ", "1.0"] {
        let (status, body) = sign(n).send(&ctx).await;
        assert_eq!(status, 400, "part {n:?}: {body}");
    }
    assert_eq!(sign("1").send(&ctx).await.0, 200);
    let batch = |q: &str| {
        Call::new(BATCH)
            .owner(&alice)
            .path("uploadId", &up.upload_id)
            .query("partNumbers", q)
    };
    for q in ["+1", "01", "1,02", "01-3", "1-+3", "1,,2", "1,"] {
        let (status, body) = batch(q).send(&ctx).await;
        assert_eq!(status, 400, "partNumbers {q:?}: {body}");
    }
    let (status, body) = batch("1,2-3").send(&ctx).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["presignedUrls"].as_object().unwrap().len(), 3);
}
