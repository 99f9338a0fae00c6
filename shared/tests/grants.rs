//! Upload grants over the wire: `POST /grants`, then the Companion routes
//! under `/g/{grant}` with no token, against the real local stack.

mod common;

use common::*;
use partwise::grants::{Claims, GrantKeys};
use partwise::keys;
use serde_json::{Value, json};

const KEYS: &str = "grant-test-key-0123456789abcdef0123456789abcdef";

const GRANTS: &str = "POST /grants";
const G_CREATE: &str = "POST /g/{grant}/s3/multipart";
const G_PARAMS: &str = "GET /g/{grant}/s3/params";
const G_SIGN: &str = "GET /g/{grant}/s3/multipart/{uploadId}/{partNumber}";
const G_LIST: &str = "GET /g/{grant}/s3/multipart/{uploadId}";
const G_COMPLETE: &str = "POST /g/{grant}/s3/multipart/{uploadId}/complete";
const G_ABORT: &str = "DELETE /g/{grant}/s3/multipart/{uploadId}";
const G_UPLOADS: &str = "GET /g/{grant}/s3/multipart";

async fn ctx() -> partwise::Context {
    context(&[("PARTWISE_GRANT_KEYS", KEYS)]).await
}

/// A grant for `owner` through `POST /grants`, as a page would ask for it.
async fn grant(ctx: &partwise::Context, owner: &str, body: Value) -> String {
    let (status, answer) = Call::new(GRANTS).owner(owner).json(body).send(ctx).await;
    assert_eq!(status, 200, "{answer}");
    let endpoint = answer["endpoint"].as_str().unwrap();
    assert!(
        answer["expires"].as_str().unwrap().ends_with('Z'),
        "{answer}"
    );
    endpoint
        .strip_prefix("https://test.local/g/")
        .unwrap_or_else(|| panic!("endpoint {endpoint}"))
        .to_string()
}

fn via(route: &'static str, grant: &str) -> Call {
    Call::new(route).path("grant", grant)
}

/// Everything S3 holds under `owner`'s prefix: objects and multipart uploads.
async fn held_under(ctx: &partwise::Context, owner: &str) -> usize {
    let prefix = format!("{}{}/", ctx.config.key_prefix, keys::owner_segment(owner));
    let s3 = ctx.storage.client();
    let objects = s3
        .list_objects_v2()
        .bucket(ctx.storage.bucket())
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    let uploads = s3
        .list_multipart_uploads()
        .bucket(ctx.storage.bucket())
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    objects.contents().len() + uploads.uploads().len()
}

#[tokio::test]
async fn a_grant_uploads_under_its_owners_prefix_with_no_token() {
    let ctx = ctx().await;
    let alice = owner("alice");
    let g = grant(&ctx, &alice, json!({})).await;

    let (status, started) = via(G_CREATE, &g)
        .json(json!({"filename": "photo.jpg", "type": "image/jpeg"}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{started}");
    let key = started["key"].as_str().unwrap().to_string();
    let upload_id = started["uploadId"].as_str().unwrap().to_string();
    let prefix = format!("uploads/{}/", keys::owner_segment(&alice));
    assert!(key.starts_with(&prefix), "{key}");

    let data = bytes(4096, 7);
    let (status, signed) = via(G_SIGN, &g)
        .path("uploadId", &upload_id)
        .path("partNumber", 1)
        .query("key", &key)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{signed}");
    let (status, etag) = put(signed["url"].as_str().unwrap(), data.clone()).await;
    assert_eq!(status, 200);

    let (status, parts) = via(G_LIST, &g)
        .path("uploadId", &upload_id)
        .send(&ctx)
        .await;
    assert_eq!((status, parts[0]["PartNumber"].clone()), (200, json!(1)));
    let (status, listed) = via(G_UPLOADS, &g).send(&ctx).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["uploads"][0]["uploadId"], json!(upload_id));

    let (status, done) = via(G_COMPLETE, &g)
        .path("uploadId", &upload_id)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": etag.unwrap()}]}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(s3_object(&ctx, &key).await, Some(data));

    // The POST form lands under the same prefix.
    let (status, form) = via(G_PARAMS, &g)
        .query("filename", "small.txt")
        .query("type", "text/plain")
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{form}");
    assert!(
        form["fields"]["key"].as_str().unwrap().starts_with(&prefix),
        "{form}"
    );
}

#[tokio::test]
async fn one_callers_grant_cannot_touch_anothers_upload() {
    let ctx = ctx().await;
    let (alice, bob) = (owner("alice"), owner("bob"));
    let up = create(&ctx, &alice, json!({"filename": "a.bin"})).await;
    let etag = upload_part(&ctx, &alice, &up, 1, bytes(100, 1)).await;
    let g = grant(&ctx, &bob, json!({})).await;

    let (status, body) = via(G_SIGN, &g)
        .path("uploadId", &up.upload_id)
        .path("partNumber", 2)
        .send(&ctx)
        .await;
    assert_eq!(status, 404, "sign: {body}");
    let (status, _) = via(G_LIST, &g)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 404, "list parts");
    let (status, _) = via(G_COMPLETE, &g)
        .path("uploadId", &up.upload_id)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": etag}]}))
        .send(&ctx)
        .await;
    assert_eq!(status, 404, "complete");
    let (status, _) = via(G_ABORT, &g)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 404, "abort");
    let (status, listed) = via(G_UPLOADS, &g).send(&ctx).await;
    assert_eq!((status, listed["uploads"].clone()), (200, json!([])));
    assert!(
        s3_upload_exists(&ctx, &up).await,
        "alice's upload is untouched"
    );

    // Her own grant can abort it.
    let mine = grant(&ctx, &alice, json!({})).await;
    let (status, body) = via(G_ABORT, &mine)
        .path("uploadId", &up.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(!s3_upload_exists(&ctx, &up).await);
}

#[tokio::test]
async fn expired_tampered_or_foreign_grants_are_401_and_store_nothing() {
    let ctx = ctx().await;
    let mallory = owner("mallory");
    let keys = GrantKeys::parse(KEYS).unwrap();
    let expired = keys
        .sign(&Claims {
            owner: mallory.clone(),
            expires: 1,
            max_file_size: None,
            content_types: None,
        })
        .unwrap();
    let good = grant(&ctx, &mallory, json!({})).await;
    let (payload, sig) = good.split_once('.').unwrap();
    let tampered = format!("{payload}x.{sig}");
    let foreign = GrantKeys::parse("some-other-key-0123456789abcdef0123456789")
        .unwrap()
        .sign(&Claims {
            owner: mallory.clone(),
            expires: u64::MAX / 2,
            max_file_size: None,
            content_types: None,
        })
        .unwrap();
    for (what, g) in [
        ("expired", expired.as_str()),
        ("tampered", &tampered),
        ("foreign key", &foreign),
        ("garbage", "not-a-grant"),
    ] {
        let (status, body) = via(G_CREATE, g)
            .json(json!({"filename": "x.bin"}))
            .send(&ctx)
            .await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "Unauthorized", "{what}");
        let (status, _) = via(G_PARAMS, g).query("filename", "x.bin").send(&ctx).await;
        assert_eq!(status, 401, "{what}: params");
    }
    let (_, body) = via(G_CREATE, &expired)
        .json(json!({"filename": "x.bin"}))
        .send(&ctx)
        .await;
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    assert_eq!(held_under(&ctx, &mallory).await, 0, "nothing in S3");
}

#[tokio::test]
async fn a_grant_holds_uploads_to_its_limits() {
    let ctx = ctx().await;
    let carol = owner("carol");
    let g = grant(
        &ctx,
        &carol,
        json!({"maxFileSize": 1000, "allowedTypes": ["image/*"], "expiresIn": 60}),
    )
    .await;
    let (status, body) = via(G_CREATE, &g)
        .json(json!({"filename": "big.png", "type": "image/png", "size": 1001}))
        .send(&ctx)
        .await;
    assert_eq!(status, 413, "{body}");
    let (status, body) = via(G_CREATE, &g)
        .json(json!({"filename": "notes.txt", "type": "text/plain", "size": 10}))
        .send(&ctx)
        .await;
    assert!(status == 400 || status == 422, "{status} {body}");
    let (status, body) = via(G_PARAMS, &g)
        .query("filename", "big.png")
        .query("type", "image/png")
        .query("size", 1001)
        .send(&ctx)
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(held_under(&ctx, &carol).await, 0);
    // Within the limits it works, and the POST form's policy caps the size.
    let (status, form) = via(G_PARAMS, &g)
        .query("filename", "ok.png")
        .query("type", "image/png")
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{form}");
    use base64::Engine;
    let policy = base64::engine::general_purpose::STANDARD
        .decode(form["fields"]["policy"].as_str().unwrap())
        .unwrap();
    assert!(
        String::from_utf8(policy).unwrap().contains("1000"),
        "content-length-range capped"
    );

    // A caller cannot widen the server's limits.
    let (status, _) = Call::new(GRANTS)
        .owner(&carol)
        .json(json!({"expiresIn": 12 * 3600 + 1}))
        .send(&ctx)
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn without_a_key_grants_are_off() {
    let ctx = context(&[("PARTWISE_GRANT_KEYS", "")]).await;
    assert!(ctx.config.grant_keys.is_none());
    let (status, body) = Call::new(GRANTS).owner("dave").send(&ctx).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = via(G_CREATE, "anything.at-all")
        .json(json!({"filename": "x"}))
        .send(&ctx)
        .await;
    assert_eq!(status, 401);
}
