//! `POST /s3/puts`: many small files started in one call, each a presigned
//! PUT with its length (and CRC32C) signed in, tracked and charged together;
//! tried against Garage and DynamoDB Local the way a hostile client would.

mod common;

use base64::Engine;
use common::*;
use partwise::Context;
use partwise::model::{Status, UploadKind};
use serde_json::{Value, json};

const PUTS: &str = "POST /s3/puts";
const QUOTA: &str = "GET /quota";
const KIB: usize = 1 << 10;

async fn isolated(extra: &[(&str, &str)]) -> Context {
    let prefix = format!("puts-{}/", uuid::Uuid::new_v4().simple());
    let mut settings = vec![("PARTWISE_KEY_PREFIX", prefix.as_str())];
    settings.extend_from_slice(extra);
    context(&settings).await
}

fn crc32c(bytes: &[u8]) -> String {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32;
    base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
}

fn file(name: &str, body: &[u8]) -> Value {
    json!({"filename": name, "type": "application/octet-stream", "size": body.len(),
           "checksumCRC32C": crc32c(body)})
}

async fn start(ctx: &Context, owner: &str, files: Vec<Value>) -> (u16, Value) {
    Call::new(PUTS)
        .owner(owner)
        .json(json!({ "files": files }))
        .send(ctx)
        .await
}

/// PUTs `body` to an answered upload with the headers it names (a client
/// must send them as given); the status, or 0 when cut off mid-body.
async fn put_as_answered(up: &Value, body: Vec<u8>, skip: Option<&str>) -> u16 {
    let mut req = http()
        .put(up["url"].as_str().unwrap())
        .header("content-length", body.len());
    for (k, v) in up["headers"].as_object().unwrap() {
        if Some(k.as_str()) != skip {
            req = req.header(k, v.as_str().unwrap());
        }
    }
    match req.body(body).send().await {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

/// The owner's usage of `quota` as `GET /quota` says it.
async fn usage(ctx: &Context, owner: &str, quota: &str) -> u64 {
    let (status, body) = Call::new(QUOTA).owner(owner).send(ctx).await;
    assert_eq!(status, 200, "{body}");
    body["quotas"][quota]["usage"].as_u64().unwrap()
}

#[tokio::test]
async fn a_batch_starts_tracked_puts_that_land_exactly_their_files() {
    let ctx = isolated(&[]).await;
    let alice = owner("alice");
    let bodies = [vec![], bytes(KIB, 1), bytes(3 << 20, 2)];
    let mut files: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| file(&format!("f{i}.bin"), b))
        .collect();
    files[1]["metadata"] = json!({"project": "apollo"});
    let (status, answer) = start(&ctx, &alice, files).await;
    assert_eq!(status, 200, "{answer}");
    let ups = answer["uploads"].as_array().unwrap();
    assert_eq!(ups.len(), 3);
    // Tracked, ACTIVE and charged before a byte is sent.
    assert_eq!(usage(&ctx, &alice, "liveUploads").await, 3);
    assert_eq!(
        usage(&ctx, &alice, "bytesInFlight").await,
        (KIB + (3 << 20)) as u64
    );
    for (up, body) in ups.iter().zip(&bodies) {
        assert_eq!(up["method"], "PUT");
        let id = up["uploadId"].as_str().unwrap();
        assert!(id.starts_with("put:"), "{up}");
        let item = ctx.store.get(id).await.unwrap().expect("tracked");
        assert_eq!(
            (item.status, item.kind, item.size, item.owner.as_str()),
            (
                Status::Active,
                UploadKind::Put,
                Some(body.len() as u64),
                alice.as_str()
            )
        );
        assert_eq!(put_as_answered(up, body.clone(), None).await, 200, "{up}");
        let key = up["key"].as_str().unwrap();
        assert_eq!(s3_object(&ctx, key).await.as_deref(), Some(&body[..]));
    }
    // The metadata rides on the object, as a multipart upload's does.
    let head = ctx
        .storage
        .client()
        .head_object()
        .bucket(ctx.storage.bucket())
        .key(ups[1]["key"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.metadata()
            .and_then(|m| m.get("project"))
            .map(String::as_str),
        Some("apollo")
    );
    // S3's notification settles each, and gives its charge back.
    for up in ups {
        let event = json!({"version": "0", "detail-type": "Object Created", "source": "aws.s3",
            "detail": {"bucket": {"name": ctx.storage.bucket()}, "object": {"key": up["key"], "size": 1, "etag": "e"},
                       "reason": "PutObject"}});
        partwise::settle::handle(&ctx, event).await.unwrap();
        let id = up["uploadId"].as_str().unwrap();
        assert_eq!(
            ctx.store.get(id).await.unwrap().unwrap().status,
            Status::Completed
        );
    }
    assert_eq!(usage(&ctx, &alice, "liveUploads").await, 0);
    assert_eq!(usage(&ctx, &alice, "bytesInFlight").await, 0);
}

#[tokio::test]
async fn a_put_url_takes_only_its_files_length_and_bytes() {
    let ctx = isolated(&[]).await;
    let bob = owner("bob");
    let body = bytes(64 * KIB, 3);
    let (status, answer) = start(&ctx, &bob, vec![file("a.bin", &body)]).await;
    assert_eq!(status, 200, "{answer}");
    let up = &answer["uploads"][0];
    let key = up["key"].as_str().unwrap();
    assert!(
        up["headers"].get("x-amz-checksum-crc32c").is_some(),
        "the checksum is a header to send: {up}"
    );
    // Longer, shorter, same length with other bytes, or without the
    // checksum header: each refused, and nothing lands.
    let mut other = body.clone();
    other[100] ^= 1;
    for (what, try_body, skip) in [
        ("one byte more", [&body[..], &[0]].concat(), None),
        ("one byte less", body[1..].to_vec(), None),
        ("other bytes", other, None),
        (
            "no checksum header",
            body.clone(),
            Some("x-amz-checksum-crc32c"),
        ),
    ] {
        let status = put_as_answered(up, try_body, skip).await;
        assert!(matches!(status, 0 | 400 | 403), "{what}: {status}");
        assert_eq!(s3_object(&ctx, key).await, None, "{what}: nothing landed");
    }
    assert_eq!(put_as_answered(up, body.clone(), None).await, 200);
    assert_eq!(s3_object(&ctx, key).await, Some(body));
}

#[tokio::test]
async fn a_bad_file_refuses_the_whole_call_and_names_it() {
    let ctx = isolated(&[("PARTWISE_MAX_POST_SIZE", "1048576")]).await;
    let carol = owner("carol");
    let ok = file("ok.bin", &bytes(KIB, 4));
    let cases = [
        (json!({"files": []}), 400, "1 to 64"),
        (json!({"files": vec![ok.clone(); 65]}), 400, "1 to 64"),
        (
            json!({"files": [ok.clone(), {"filename": "x.bin"}]}),
            400,
            "files[1]: size is required",
        ),
        (
            json!({"files": [ok.clone(), {"filename": "x.bin", "size": 2 << 20}]}),
            413,
            "files[1]: 2097152 bytes is more than 1048576",
        ),
        (
            json!({"files": [{"filename": "x.bin", "size": 1, "checksumCRC32C": "nope"}]}),
            400,
            "files[0]",
        ),
        (
            json!({"files": [{"filename": "", "size": 1}]}),
            400,
            "files[0]",
        ),
        (json!({"files": "x"}), 400, ""),
    ];
    for (body, want, says) in cases {
        let (status, answer) = Call::new(PUTS)
            .owner(&carol)
            .json(body.clone())
            .send(&ctx)
            .await;
        assert_eq!(status, want, "{body} -> {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(says),
            "{body}: {message:?} should say {says:?}"
        );
    }
    // Nothing of any refused call was tracked or charged.
    assert_eq!(usage(&ctx, &carol, "liveUploads").await, 0);
}

#[tokio::test]
async fn the_quotas_count_a_batch_as_a_whole() {
    let ctx = isolated(&[
        ("PARTWISE_MAX_LIVE_UPLOADS_PER_OWNER", "5"),
        ("PARTWISE_MAX_UPLOADS_PER_MINUTE_PER_OWNER", "8"),
    ])
    .await;
    let dave = owner("dave");
    let files = |n: usize| {
        (0..n)
            .map(|i| file(&format!("{i}.bin"), &bytes(KIB, 5)))
            .collect()
    };
    let (status, answer) = start(&ctx, &dave, files(4)).await;
    assert_eq!(status, 200, "{answer}");
    // 4 live: a batch of 2 would be 6. Refused whole: none of it tracked.
    let (status, answer) = start(&ctx, &dave, files(2)).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["quota"], "liveUploads");
    assert_eq!(usage(&ctx, &dave, "liveUploads").await, 4);
    // More files than the whole live quota: refused at once.
    let (status, answer) = start(&ctx, &dave, files(6)).await;
    assert_eq!(status, 403, "{answer}");
    // One more fits exactly.
    let (status, answer) = start(&ctx, &dave, files(1)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(usage(&ctx, &dave, "liveUploads").await, 5);
    assert_eq!(usage(&ctx, &dave, "uploadsPerMinute").await, 5);
    // The rate counts files, not calls: 5 this minute, 4 more would be 9 of 8.
    let erin = owner("erin");
    let (status, _) = start(&ctx, &erin, files(4)).await;
    assert_eq!(status, 200);
    let (status, answer) = start(&ctx, &erin, files(5)).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"]["quota"], "uploadsPerMinute");
    assert_eq!(usage(&ctx, &erin, "liveUploads").await, 4);
}

#[tokio::test]
async fn anonymous_callers_get_an_owner_of_their_own_for_a_batch() {
    let ctx = isolated(&[("PARTWISE_ANONYMOUS", "true")]).await;
    let (status, answer) = Call::new(PUTS)
        .json(json!({"files": [file("a.bin", b"a"), file("b.bin", b"b")]}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{answer}");
    let owners: Vec<String> =
        futures::future::join_all(answer["uploads"].as_array().unwrap().iter().map(|u| async {
            ctx.store
                .get(u["uploadId"].as_str().unwrap())
                .await
                .unwrap()
                .unwrap()
                .owner
        }))
        .await;
    assert!(owners[0].starts_with("anon-"), "{owners:?}");
    assert_eq!(owners[0], owners[1], "one caller, one owner");
}
