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
        .seal(&Claims {
            owner: mallory.clone(),
            expires: 1,
            max_file_size: None,
            content_types: None,
        })
        .unwrap();
    let good = grant(&ctx, &mallory, json!({})).await;
    let (nonce, sealed) = good.split_once('.').unwrap();
    let tampered = format!("{nonce}x.{sealed}");
    // A flipped character inside the ciphertext: still base64, no longer sealed.
    let flipped = {
        let mut b = sealed.as_bytes().to_vec();
        b[5] = if b[5] == b'A' { b'B' } else { b'A' };
        format!("{nonce}.{}", String::from_utf8(b).unwrap())
    };
    // The old readable form: claims in base64 JSON, naming anyone.
    use base64::Engine;
    let readable = format!(
        "{}.{sealed}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(json!({"sub": mallory, "exp": u64::MAX / 2}).to_string())
    );
    let foreign = GrantKeys::parse("some-other-key-0123456789abcdef0123456789")
        .unwrap()
        .seal(&Claims {
            owner: mallory.clone(),
            expires: u64::MAX / 2,
            max_file_size: None,
            content_types: None,
        })
        .unwrap();
    for (what, g) in [
        ("expired", expired.as_str()),
        ("tampered", &tampered),
        ("flipped", &flipped),
        ("readable claims", &readable),
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

#[tokio::test]
async fn uppys_metadata_lands_on_the_object_and_the_item() {
    let ctx = ctx().await;
    let erin = owner("erin");
    let g = grant(&ctx, &erin, json!({})).await;
    let meta = json!({"name": "plan.pdf", "type": "application/pdf", "relativePath": null,
        "Project": "Bridge 7", "caption": "café"});
    let (status, started) = via(G_CREATE, &g)
        .json(json!({"filename": "plan.pdf", "type": "application/pdf", "metadata": meta}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{started}");
    let key = started["key"].as_str().unwrap().to_string();
    let upload_id = started["uploadId"].as_str().unwrap().to_string();
    let (_, signed) = via(G_SIGN, &g)
        .path("uploadId", &upload_id)
        .path("partNumber", 1)
        .send(&ctx)
        .await;
    let (_, etag) = put(signed["url"].as_str().unwrap(), bytes(500, 3)).await;
    let (status, done) = via(G_COMPLETE, &g)
        .path("uploadId", &upload_id)
        .json(json!({"parts": [{"PartNumber": 1, "ETag": etag.unwrap()}]}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{done}");

    let head = ctx
        .storage
        .client()
        .head_object()
        .bucket(ctx.storage.bucket())
        .key(&key)
        .send()
        .await
        .unwrap();
    let on_object = head.metadata().cloned().unwrap_or_default();
    assert_eq!(on_object.get("name").map(String::as_str), Some("plan.pdf"));
    assert_eq!(
        on_object.get("project").map(String::as_str),
        Some("Bridge 7")
    );
    assert_eq!(
        on_object.get("caption").map(String::as_str),
        Some("=?UTF-8?B?Y2Fmw6k=?=")
    );
    assert!(!on_object.contains_key("relativepath"));

    let sdk = aws_config::load_from_env().await;
    let item = aws_sdk_dynamodb::Client::new(&sdk)
        .get_item()
        .table_name(&ctx.config.table)
        .key(
            "upload_id",
            aws_sdk_dynamodb::types::AttributeValue::S(upload_id.clone()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let on_item = item["metadata"].as_m().unwrap();
    assert_eq!(on_item["project"].as_s().unwrap(), "Bridge 7");

    // The POST form binds the metadata as x-amz-meta-* fields.
    let (status, form) = via(G_PARAMS, &g)
        .query("filename", "a.txt")
        .query("metadata[name]", "a.txt")
        .query("metadata[Project]", "Bridge 7")
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{form}");
    assert_eq!(form["fields"]["x-amz-meta-project"], "Bridge 7");
    assert_eq!(form["fields"]["x-amz-meta-name"], "a.txt");
    let mut multipart = reqwest::multipart::Form::new();
    for (k, v) in form["fields"].as_object().unwrap() {
        multipart = multipart.text(k.clone(), v.as_str().unwrap().to_string());
    }
    multipart = multipart.part("file", reqwest::multipart::Part::bytes(b"hello".to_vec()));
    let resp = http()
        .post(form["url"].as_str().unwrap())
        .multipart(multipart)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "POST form: {}", resp.status());
    let posted = ctx
        .storage
        .client()
        .head_object()
        .bucket(ctx.storage.bucket())
        .key(form["fields"]["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let posted = posted.metadata().cloned().unwrap_or_default();
    assert_eq!(posted.get("project").map(String::as_str), Some("Bridge 7"));

    // Bad metadata is a 400, and nothing is started.
    for bad in [
        json!({"bad key": "x"}),
        json!({"k": "a\u{7}b"}),
        json!({"k": "x".repeat(2100)}),
    ] {
        let (status, body) = via(G_CREATE, &g)
            .json(json!({"filename": "x.bin", "metadata": bad}))
            .send(&ctx)
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = via(G_PARAMS, &g)
        .query("filename", "a.txt")
        .query("metadata[a b]", "x")
        .send(&ctx)
        .await;
    assert_eq!(status, 400);
    let (_, listed) = via(G_UPLOADS, &g).query("state", "live").send(&ctx).await;
    // Live: only the POST form used above (no notification reaches this
    // test's Garage, so it stays ACTIVE); the refused calls started nothing.
    let live = listed["uploads"].as_array().unwrap();
    assert_eq!(live.len(), 1, "no upload left started: {listed}");
    assert_eq!(live[0]["kind"], "post");
}

#[tokio::test]
async fn metadata_values_with_commas_survive_the_query_string() {
    let ctx = ctx().await;
    let g = grant(&ctx, &owner("fay"), json!({})).await;
    // API Gateway's event splits query values at commas; one value it stays.
    let (status, form) = via(G_PARAMS, &g)
        .query("filename", "my report, v2.bin")
        .query("metadata[name]", "my report, v2.bin")
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{form}");
    assert_eq!(form["fields"]["x-amz-meta-name"], "my report, v2.bin");
}

#[tokio::test]
async fn a_grants_text_names_no_owner() {
    let ctx = ctx().await;
    let gina = owner("gina");
    for body in [
        json!({}),
        json!({"maxFileSize": 1000, "allowedTypes": ["image/png"]}),
    ] {
        let g = grant(&ctx, &gina, body).await;
        assert!(g.len() < 300, "short enough for every Uppy URL: {g}");
        // Neither in the text, nor in anything its parts decode to.
        use base64::Engine;
        let mut seen = g.clone();
        for part in g.split('.') {
            for engine in [
                base64::engine::general_purpose::URL_SAFE_NO_PAD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
            ] {
                if let Ok(bytes) = engine.decode(part) {
                    seen.push_str(&String::from_utf8_lossy(&bytes));
                }
            }
        }
        for secret in [gina.as_str(), "gina", "image/png", "1000", "\"sub\""] {
            assert!(!seen.contains(secret), "{secret} readable in {g}");
        }
        // Yet it opens to her.
        let claims = GrantKeys::parse(KEYS).unwrap().open(&g, 0).unwrap();
        assert_eq!(claims.owner, gina);
    }
}

#[tokio::test]
async fn a_grant_sealed_with_the_previous_key_still_opens_after_rotation() {
    const NEW: &str = "rotated-grant-key-0123456789abcdef0123456789ab";
    let before = ctx().await;
    let hana = owner("hana");
    let old_grant = grant(&before, &hana, json!({})).await;
    // The secret now holds "new,old": grants in flight keep working.
    let rotated = context(&[("PARTWISE_GRANT_KEYS", &format!("{NEW},{KEYS}"))]).await;
    let (status, started) = via(G_CREATE, &old_grant)
        .json(json!({"filename": "after-rotation.bin"}))
        .send(&rotated)
        .await;
    assert_eq!(status, 200, "{started}");
    let up_id = started["uploadId"].as_str().unwrap().to_string();
    // New grants are sealed with the new key: the old key alone refuses them.
    let new_grant = grant(&rotated, &hana, json!({})).await;
    let (status, listed) = via(G_UPLOADS, &new_grant).send(&rotated).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["uploads"][0]["uploadId"], json!(up_id));
    let (status, _) = via(G_UPLOADS, &new_grant).send(&before).await;
    assert_eq!(status, 401, "the old key alone cannot open a new grant");
    // Once the old key is dropped ("new"), its grants are refused.
    let after = context(&[("PARTWISE_GRANT_KEYS", NEW)]).await;
    let (status, body) = via(G_ABORT, &old_grant)
        .path("uploadId", &up_id)
        .send(&after)
        .await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = via(G_ABORT, &new_grant)
        .path("uploadId", &up_id)
        .send(&after)
        .await;
    assert_eq!(status, 200, "{body}");
}
