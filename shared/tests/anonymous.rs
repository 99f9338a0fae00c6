//! Anonymous mode against the real local stack: each visitor is an owner of
//! their own, on the plain routes and through grants, and nobody reaches an
//! upload without its key. (`local/tests/access.rs` runs the same over HTTP.)

mod common;

use common::*;
use partwise::api::anonymous::{is_anonymous_owner, owner_in_key};
use partwise::grants::GrantKeys;
use serde_json::json;

const KEYS: &str = "anonymous-test-grant-key-0123456789abcdef01234567";

async fn ctx() -> partwise::Context {
    context(&[
        ("PARTWISE_ANONYMOUS", "true"),
        ("PARTWISE_GRANT_KEYS", KEYS),
    ])
    .await
}

#[tokio::test]
async fn every_plain_create_and_grant_gets_a_fresh_owner() {
    let ctx = ctx().await;
    let mut owners = Vec::new();
    for _ in 0..3 {
        let (status, body) = Call::new(CREATE)
            .json(json!({"filename": "drop.bin"}))
            .send(&ctx)
            .await;
        assert_eq!(status, 200, "{body}");
        let key = body["key"].as_str().unwrap().to_string();
        owners.push(
            owner_in_key(&ctx.config.key_prefix, &key)
                .unwrap()
                .to_string(),
        );
        let (status, _) = Call::new(ABORT)
            .path("uploadId", body["uploadId"].as_str().unwrap())
            .query("key", &key)
            .send(&ctx)
            .await;
        assert_eq!(status, 200);
        let (status, body) = Call::new("POST /grants").send(&ctx).await;
        assert_eq!(status, 200, "{body}");
        let endpoint = body["endpoint"].as_str().unwrap();
        let grant = endpoint.rsplit("/g/").next().unwrap();
        let claims = GrantKeys::parse(KEYS).unwrap().open(grant, 0).unwrap();
        assert!(is_anonymous_owner(&claims.owner), "{}", claims.owner);
        owners.push(claims.owner);
    }
    let mut distinct = owners.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), owners.len(), "{owners:?}");
}

#[tokio::test]
async fn named_callers_keep_their_identity_and_their_uploads() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let up = create(&ctx, &alice, json!({"filename": "mine.bin"})).await;
    assert!(up.key.contains(&alice), "{}", up.key);
    // An anonymous caller holding her key is not her: the key names no minted owner.
    for call in [
        Call::new(LIST),
        Call::new(STATUS),
        Call::new(SIGN).path("partNumber", 1),
        Call::new(ABORT),
    ] {
        let route = call.route_key;
        let (status, body) = call
            .path("uploadId", &up.upload_id)
            .query("key", &up.key)
            .send(&ctx)
            .await;
        assert_eq!(status, 401, "{route}: {body}");
    }
    // She lists and aborts as herself.
    let (status, listed) = Call::new("GET /s3/multipart")
        .owner(&alice)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["uploads"][0]["uploadId"], json!(up.upload_id));
    let (status, _) = Call::new(ABORT)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
}
