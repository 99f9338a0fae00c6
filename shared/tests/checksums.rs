//! Per-part integrity over the wire: a part's checksum is signed into its URL,
//! so S3 (Garage here) refuses changed bytes and a PUT without the header;
//! complete passes the parts' checksums on and answers the object's.

mod common;

use base64::Engine;
use common::*;
use partwise::Context;
use partwise::model::ChecksumAlgorithm;
use serde_json::{Value, json};
use sha2::Digest;

const BATCH_CHECKED: &str = "POST /s3/multipart/{uploadId}/batch";
const MIB: usize = 1 << 20;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The raw digest of `bytes` in `a`.
fn digest(a: ChecksumAlgorithm, bytes: &[u8]) -> Vec<u8> {
    use crc_fast::{CrcAlgorithm, checksum};
    match a {
        ChecksumAlgorithm::Crc32c => (checksum(CrcAlgorithm::Crc32Iscsi, bytes) as u32)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Crc32 => (checksum(CrcAlgorithm::Crc32IsoHdlc, bytes) as u32)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Crc64Nvme => checksum(CrcAlgorithm::Crc64Nvme, bytes)
            .to_be_bytes()
            .to_vec(),
        ChecksumAlgorithm::Sha256 => sha2::Sha256::digest(bytes).to_vec(),
    }
}

/// Signs part `n` with its checksum; returns (url, headers).
async fn sign_checked(
    ctx: &Context,
    owner: &str,
    up: &Started,
    n: u32,
    checksum: &str,
) -> (String, Value) {
    let (status, body) = Call::new(SIGN)
        .owner(owner)
        .path("uploadId", &up.upload_id)
        .path("partNumber", n)
        .query("key", &up.key)
        .query("checksum", checksum)
        .send(ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    (
        body["url"].as_str().unwrap().to_string(),
        body["headers"].clone(),
    )
}

/// PUTs `bytes` with `headers`; returns (status, ETag, body).
async fn put_with(url: &str, headers: &Value, bytes: Vec<u8>) -> (u16, Option<String>, String) {
    let mut req = http().put(url).body(bytes);
    for (k, v) in headers.as_object().into_iter().flatten() {
        req = req.header(k, v.as_str().unwrap());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_string());
    (status, etag, resp.text().await.unwrap_or_default())
}

async fn complete_with(ctx: &Context, owner: &str, up: &Started, body: Value) -> (u16, Value) {
    Call::new(COMPLETE)
        .owner(owner)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .json(body)
        .send(ctx)
        .await
}

/// Two parts (5 MiB + 1 KiB) per algorithm: signed with their checksums,
/// uploaded, completed; the object is byte-exact and its checksum is the one
/// S3's rules give (composite: the checksum of the parts' digests, `-2`;
/// full object: the checksum of the whole).
#[tokio::test]
async fn every_algorithm_signs_checks_and_completes() {
    let ctx = context(&[("PARTWISE_PART_SIZE", "5MiB")]).await;
    let who = owner("checksums");
    for a in ChecksumAlgorithm::ALL {
        let parts = [bytes(5 * MIB, 1), bytes(1024, 2)];
        let size = parts.iter().map(Vec::len).sum::<usize>();
        let up = create(
            &ctx,
            &who,
            json!({"filename": "c.bin", "size": size, "checksumAlgorithm": a.as_str()}),
        )
        .await;
        assert_eq!(up.body["checksumAlgorithm"], a.as_str(), "{}", up.body);
        assert_eq!(up.body["checksumType"], a.checksum_type(), "{}", up.body);
        let mut listed = vec![];
        for (i, p) in parts.iter().enumerate() {
            let n = i as u32 + 1;
            let sum = b64(&digest(a, p));
            let (url, headers) = sign_checked(&ctx, &who, &up, n, &sum).await;
            assert_eq!(
                headers,
                json!({ a.header(): sum }),
                "{a:?}: only the checksum header"
            );
            assert!(url.contains(a.header()), "{a:?}: signed in: {url}");
            let (status, etag, text) = put_with(&url, &headers, p.clone()).await;
            assert_eq!(status, 200, "{a:?} part {n}: {text}");
            listed.push(json!({"PartNumber": n, "ETag": etag.unwrap(), a.part_field(): sum}));
        }
        // S3 reports each part's checksum in the part list.
        let (status, held) = Call::new(LIST)
            .owner(&who)
            .path("uploadId", &up.upload_id)
            .send(&ctx)
            .await;
        assert_eq!(status, 200, "{held}");
        for (h, l) in held.as_array().unwrap().iter().zip(&listed) {
            assert_eq!(h[a.part_field()], l[a.part_field()], "{a:?}: {held}");
        }

        let (status, done) = complete_with(&ctx, &who, &up, json!({ "parts": listed })).await;
        assert_eq!(status, 200, "{a:?}: {done}");
        let expected = match a.checksum_type() {
            "COMPOSITE" => {
                let joined: Vec<u8> = parts.iter().flat_map(|p| digest(a, p)).collect();
                format!("{}-2", b64(&digest(a, &joined)))
            }
            _ => b64(&digest(a, &parts.concat())),
        };
        assert_eq!(
            done["checksum"],
            json!({"algorithm": a.as_str(), "type": a.checksum_type(), "value": expected}),
            "{a:?}: {done}"
        );
        assert_eq!(
            s3_object(&ctx, &up.key).await,
            Some(parts.concat()),
            "{a:?}"
        );
        // The status route and a repeated complete carry the same checksum.
        let (_, again) = complete_with(&ctx, &who, &up, json!({})).await;
        assert_eq!(again, done, "{a:?}");
        let (_, status_body) = Call::new(STATUS)
            .owner(&who)
            .path("uploadId", &up.upload_id)
            .send(&ctx)
            .await;
        assert_eq!(status_body["completion"]["checksum"], done["checksum"]);
    }
}

#[tokio::test]
async fn s3_refuses_changed_bytes_and_a_put_without_the_signed_header() {
    let ctx = context(&[]).await;
    let who = owner("tamper");
    let up = create(
        &ctx,
        &who,
        json!({"filename": "t.bin", "checksumAlgorithm": "CRC32C"}),
    )
    .await;
    let good = bytes(4096, 7);
    let sum = b64(&digest(ChecksumAlgorithm::Crc32c, &good));
    let (url, headers) = sign_checked(&ctx, &who, &up, 1, &sum).await;

    let mut changed = good.clone();
    changed[100] ^= 1;
    let (status, _, text) = put_with(&url, &headers, changed).await;
    assert_eq!(status, 400, "changed bytes: {text}");
    // S3 answers a missing signed header with 403 (signature mismatch),
    // Garage with 400 ("signed header ... is not present"): refused either way.
    let (status, _, text) = put_with(&url, &json!({}), good.clone()).await;
    assert!(
        status == 403 || status == 400,
        "without the signed header: {status} {text}"
    );
    let other = json!({"x-amz-checksum-crc32c": b64(&[0, 0, 0, 0])});
    let (status, _, text) = put_with(&url, &other, good.clone()).await;
    assert_eq!(status, 403, "another checksum than the signed one: {text}");
    assert_eq!(
        ctx.storage
            .list_parts(&up.key, &up.upload_id)
            .await
            .unwrap()
            .unwrap(),
        vec![],
        "no part landed"
    );
    let (status, _, text) = put_with(&url, &headers, good.clone()).await;
    assert_eq!(status, 200, "the right bytes with the header: {text}");

    // Completing without a part list takes each part's checksum from S3.
    let (status, done) = complete_with(&ctx, &who, &up, json!({})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["checksum"]["algorithm"], "CRC32C");
    assert_eq!(s3_object(&ctx, &up.key).await, Some(good));
}

#[tokio::test]
async fn bad_checksums_are_400_and_uppy_routes_are_unchanged() {
    let ctx = context(&[]).await;
    let who = owner("bad-checksums");
    let (status, body) = Call::new(CREATE)
        .owner(&who)
        .json(json!({"filename": "x", "checksumAlgorithm": "MD5"}))
        .send(&ctx)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("checksumAlgorithm")
    );

    // An upload without an algorithm: plain URLs, no headers; a checksum is a 400.
    let plain = create(&ctx, &who, json!({"filename": "plain.bin"})).await;
    assert!(
        plain.body.get("checksumAlgorithm").is_none(),
        "{}",
        plain.body
    );
    let (status, body) = Call::new(SIGN)
        .owner(&who)
        .path("uploadId", &plain.upload_id)
        .path("partNumber", 1)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["expires", "url"],
        "Companion's answer, unchanged"
    );
    let (status, body) = Call::new(SIGN)
        .owner(&who)
        .path("uploadId", &plain.upload_id)
        .path("partNumber", 1)
        .query("checksum", b64(&[1, 2, 3, 4]))
        .send(&ctx)
        .await;
    assert_eq!(status, 400, "{body}");

    let checked = create(
        &ctx,
        &who,
        json!({"filename": "c.bin", "checksumAlgorithm": "SHA256"}),
    )
    .await;
    for bad in ["AAAAAA==", "not base64!", "", &b64(&[0; 33])] {
        let (status, body) = Call::new(SIGN)
            .owner(&who)
            .path("uploadId", &checked.upload_id)
            .path("partNumber", 1)
            .query("checksum", bad)
            .send(&ctx)
            .await;
        // An empty value reads as absent, and every part of it needs one.
        assert_eq!(status, 400, "{bad:?}: {body}");
    }
    let (status, body) = Call::new(BATCH)
        .owner(&who)
        .path("uploadId", &checked.upload_id)
        .query("partNumbers", "1-2")
        .send(&ctx)
        .await;
    assert_eq!(status, 400, "GET batch cannot carry checksums: {body}");
    // Batch: a bad checksum, a repeat, a wrong key, too many parts, junk.
    let sum = b64(&digest(ChecksumAlgorithm::Sha256, b"x"));
    for (body, expected) in [
        (
            json!({"parts": [{"partNumber": 1, "checksum": "AAAA"}]}),
            400,
        ),
        (
            json!({"parts": [{"partNumber": 1}, {"partNumber": 1}]}),
            400,
        ),
        (json!({"parts": []}), 400),
        (json!({"parts": [{"partNumber": 1}]}), 400),
        (json!({"parts": [{"partNumber": 0}]}), 400),
        (json!({"parts": [{"partNumber": 1, "crc": sum}]}), 400),
        (
            json!({"key": "uploads/other", "parts": [{"partNumber": 1, "checksum": sum}]}),
            404,
        ),
        (
            json!({"parts": (1..=1001).map(|n| json!({"partNumber": n})).collect::<Vec<_>>()}),
            400,
        ),
    ] {
        let (status, answer) = Call::new(BATCH_CHECKED)
            .owner(&who)
            .path("uploadId", &checked.upload_id)
            .json(body.clone())
            .send(&ctx)
            .await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    let (status, answer) = Call::new(BATCH_CHECKED)
        .owner(&who)
        .path("uploadId", &checked.upload_id)
        .raw_body("{not json")
        .send(&ctx)
        .await;
    assert_eq!(status, 400, "{answer}");
    // A checksum beside a part at complete must be the upload's algorithm.
    let (status, answer) = complete_with(
        &ctx,
        &who,
        &checked,
        json!({"parts": [{"PartNumber": 1, "ETag": "x", "ChecksumCRC32C": "AAAAAA=="}]}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");

    for up in [&plain, &checked] {
        let (status, _) = Call::new(ABORT)
            .owner(&who)
            .path("uploadId", &up.upload_id)
            .send(&ctx)
            .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn batch_signing_signs_each_parts_checksum() {
    let ctx = context(&[("PARTWISE_PART_SIZE", "5MiB")]).await;
    let who = owner("batch-checked");
    let parts = [bytes(5 * MIB, 3), bytes(5 * MIB, 4), bytes(10, 5)];
    let size: usize = parts.iter().map(Vec::len).sum();
    let up = create(
        &ctx,
        &who,
        json!({"filename": "b.bin", "size": size, "checksumAlgorithm": "CRC32C"}),
    )
    .await;
    let sums: Vec<String> = parts
        .iter()
        .map(|p| b64(&digest(ChecksumAlgorithm::Crc32c, p)))
        .collect();
    let (status, body) = Call::new(BATCH_CHECKED)
        .owner(&who)
        .path("uploadId", &up.upload_id)
        .json(json!({"key": up.key, "parts": [
            {"partNumber": 1, "checksum": sums[0]},
            {"partNumber": 2, "checksum": sums[1]},
            {"partNumber": 3, "checksum": sums[2]},
        ]}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["headers"],
        json!({
            "1": {"x-amz-checksum-crc32c": sums[0]},
            "2": {"x-amz-checksum-crc32c": sums[1]},
            "3": {"x-amz-checksum-crc32c": sums[2]},
        })
    );
    assert_eq!(body["expires"], ctx.config.url_expiry.as_secs());
    let mut listed = vec![];
    for (i, p) in parts.iter().enumerate() {
        let n = (i + 1).to_string();
        let url = body["presignedUrls"][&n].as_str().unwrap();
        let (status, etag, text) = put_with(url, &body["headers"][&n], p.clone()).await;
        assert_eq!(status, 200, "part {n}: {text}");
        // Part 1's checksum comes with the list; the others' from S3.
        let mut part = json!({"PartNumber": i + 1, "ETag": etag.unwrap()});
        if i == 0 {
            part["ChecksumCRC32C"] = json!(sums[0]);
        }
        listed.push(part);
    }
    let (status, done) = complete_with(&ctx, &who, &up, json!({ "parts": listed })).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(s3_object(&ctx, &up.key).await, Some(parts.concat()));
    let joined: Vec<u8> = parts
        .iter()
        .flat_map(|p| digest(ChecksumAlgorithm::Crc32c, p))
        .collect();
    assert_eq!(
        done["checksum"]["value"],
        format!("{}-3", b64(&digest(ChecksumAlgorithm::Crc32c, &joined)))
    );
}

#[tokio::test]
async fn a_wrong_checksum_beside_a_part_at_complete_is_refused_and_fixable() {
    let ctx = context(&[]).await;
    let who = owner("complete-checksum");
    let up = create(
        &ctx,
        &who,
        json!({"filename": "w.bin", "checksumAlgorithm": "CRC32"}),
    )
    .await;
    let part = bytes(777, 6);
    let sum = b64(&digest(ChecksumAlgorithm::Crc32, &part));
    let (url, headers) = sign_checked(&ctx, &who, &up, 1, &sum).await;
    let (status, etag, text) = put_with(&url, &headers, part.clone()).await;
    assert_eq!(status, 200, "{text}");
    let etag = etag.unwrap();
    let wrong = b64(&digest(ChecksumAlgorithm::Crc32, b"other bytes"));
    let (status, answer) = complete_with(
        &ctx,
        &who,
        &up,
        json!({"parts": [{"PartNumber": 1, "ETag": etag, "ChecksumCRC32": wrong}]}),
    )
    .await;
    assert_eq!(status, 400, "a wrong checksum is refused: {answer}");
    assert!(answer["message"].as_str().unwrap().contains("checksum"));
    let (status, answer) = complete_with(
        &ctx,
        &who,
        &up,
        json!({"parts": [{"PartNumber": 1, "ETag": etag, "ChecksumCRC32": sum}]}),
    )
    .await;
    assert_eq!(
        status, 200,
        "the upload stayed ACTIVE and completes: {answer}"
    );
    assert_eq!(s3_object(&ctx, &up.key).await, Some(part));
}
