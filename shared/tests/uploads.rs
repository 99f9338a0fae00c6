//! `GET /s3/multipart` against the local stack: only the caller's uploads,
//! newest first, paged by an opaque cursor that cannot cross owners, filtered
//! by state, with the bytes S3 holds when asked.

mod common;

use base64::Engine;
use common::*;
use partwise::Context;
use partwise::api::Cursor;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

const LIST_UPLOADS: &str = "GET /s3/multipart";

/// One call of the list route as `owner` (None: no identity) with `query`.
async fn list(ctx: &Context, owner: Option<&str>, query: &[(&'static str, &str)]) -> (u16, Value) {
    let mut call = Call::new(LIST_UPLOADS);
    if let Some(o) = owner {
        call = call.owner(o);
    }
    for (k, v) in query {
        call = call.query(k, v);
    }
    call.send(ctx).await
}

/// Every page of `owner`'s uploads at `limit` a page; the pages' sizes too.
async fn list_all(
    ctx: &Context,
    owner: &str,
    limit: &str,
    extra: &[(&'static str, &str)],
) -> (Vec<Value>, Vec<usize>) {
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..50 {
        let mut q: Vec<(&'static str, &str)> = vec![("limit", limit)];
        q.extend_from_slice(extra);
        if let Some(c) = cursor.as_deref() {
            q.push(("cursor", c));
        }
        let (status, body) = list(ctx, Some(owner), &q).await;
        assert_eq!(status, 200, "{body}");
        let page = body["uploads"].as_array().unwrap().clone();
        sizes.push(page.len());
        all.extend(page);
        match body["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => {
                assert!(body["next"].is_null(), "{body}");
                return (all, sizes);
            }
        }
    }
    panic!("more than 50 pages");
}

fn ids(listed: &[Value]) -> Vec<String> {
    listed
        .iter()
        .map(|u| u["uploadId"].as_str().unwrap().to_string())
        .collect()
}

/// Creates uploads a few milliseconds apart, so their order is defined.
async fn create_spaced(ctx: &Context, owner: &str, bodies: Vec<Value>) -> Vec<Started> {
    let mut out = Vec::new();
    for b in bodies {
        out.push(create(ctx, owner, b).await);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    out
}

#[tokio::test]
async fn lists_only_the_callers_uploads_newest_first_in_pages() {
    let ctx = context(&[]).await;
    let alice = owner("alice");
    let bob = owner("bob");
    let mine = create_spaced(
        &ctx,
        &alice,
        (0..5)
            .map(
                |i| json!({"filename": format!("a{i}.bin"), "type": "text/plain", "size": 100 + i}),
            )
            .collect(),
    )
    .await;
    let theirs = create_spaced(
        &ctx,
        &bob,
        vec![json!({"filename": "b0.bin"}), json!({"filename": "b1.bin"})],
    )
    .await;

    let (listed, sizes) = list_all(&ctx, &alice, "2", &[]).await;
    let expected: Vec<String> = mine.iter().rev().map(|u| u.upload_id.clone()).collect();
    assert_eq!(ids(&listed), expected, "alice's five, newest first");
    assert_eq!(sizes, vec![2, 2, 1], "pages of at most limit");
    for (u, started) in listed.iter().zip(mine.iter().rev()) {
        assert_eq!(u["key"], json!(started.key));
        assert_eq!(u["state"], "ACTIVE");
        assert_eq!(u["contentType"], "text/plain");
        assert!(u["filename"].as_str().unwrap().starts_with('a'));
        assert_eq!(u["partCount"], 1);
        assert!(u["size"].as_u64().unwrap() >= 100);
        assert!(u.get("bytesHeld").is_none(), "only with bytes=true");
        for t in ["initiated", "updated"] {
            let text = u[t].as_str().unwrap();
            let parsed =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .unwrap_or_else(|e| panic!("{t} {text}: {e}"));
            assert!(parsed.year() >= 2025, "{text}");
        }
    }
    let (bobs, _) = list_all(&ctx, &bob, "50", &[]).await;
    let bob_ids: BTreeSet<String> = ids(&bobs).into_iter().collect();
    assert_eq!(
        bob_ids,
        theirs.iter().map(|u| u.upload_id.clone()).collect(),
        "bob sees his own two, none of alice's"
    );

    // A new owner has nothing; without identity the route refuses.
    let (status, body) = list(&ctx, Some(&owner("nobody")), &[]).await;
    assert_eq!((status, body), (200, json!({"uploads": [], "next": null})));
    let (status, body) = list(&ctx, None, &[]).await;
    assert!(status == 401 || status == 403, "{status} {body}");

    for u in mine.iter().chain(&theirs) {
        let who = if mine.iter().any(|m| m.upload_id == u.upload_id) {
            &alice
        } else {
            &bob
        };
        let (status, _) = Call::new(ABORT)
            .owner(who)
            .path("uploadId", &u.upload_id)
            .send(&ctx)
            .await;
        assert_eq!(status, 200);
    }
}

#[tokio::test]
async fn states_filter_and_bytes_held_come_from_s3() {
    let ctx = context(&[]).await;
    let who = owner("states");
    let ups = create_spaced(
        &ctx,
        &who,
        vec![
            json!({"filename": "done.bin"}),
            json!({"filename": "dropped.bin"}),
            json!({"filename": "live.bin"}),
        ],
    )
    .await;
    let (done, dropped, live) = (&ups[0], &ups[1], &ups[2]);
    upload_part(&ctx, &who, done, 1, bytes(300, 1)).await;
    let (status, body) = Call::new(COMPLETE)
        .owner(&who)
        .path("uploadId", &done.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    upload_part(&ctx, &who, dropped, 1, bytes(200, 2)).await;
    let (status, _) = Call::new(ABORT)
        .owner(&who)
        .path("uploadId", &dropped.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
    upload_part(&ctx, &who, live, 1, bytes(1000, 3)).await;
    upload_part(&ctx, &who, live, 2, bytes(234, 4)).await;

    // Every state, newest first; bytes only for the live one.
    let (all, _) = list_all(&ctx, &who, "10", &[("bytes", "true")]).await;
    let states: Vec<(&str, &str)> = all
        .iter()
        .map(|u| {
            (
                u["filename"].as_str().unwrap(),
                u["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("live.bin", "ACTIVE"),
            ("dropped.bin", "ABORTED"),
            ("done.bin", "COMPLETED")
        ]
    );
    assert_eq!(all[0]["bytesHeld"], 1234, "what S3 holds: {}", all[0]);
    assert!(all[1].get("bytesHeld").is_none() && all[2].get("bytesHeld").is_none());

    for (state, expected) in [
        ("live", vec![live]),
        ("ACTIVE", vec![live]),
        ("COMPLETED", vec![done]),
        ("ABORTED", vec![dropped]),
        ("COMPLETING", vec![]),
    ] {
        // limit=1 makes the filter skip items page by page.
        let (listed, _) = list_all(&ctx, &who, "1", &[("state", state)]).await;
        assert_eq!(
            ids(&listed),
            expected
                .iter()
                .map(|u| u.upload_id.clone())
                .collect::<Vec<_>>(),
            "state={state}"
        );
    }

    // Once S3 lost a live upload, it holds 0 bytes of it.
    ctx.storage
        .abort_and_confirm(&live.key, &live.upload_id, 3)
        .await
        .unwrap();
    let (status, body) = list(&ctx, Some(&who), &[("state", "live"), ("bytes", "true")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["uploads"][0]["bytesHeld"], 0, "{body}");
    let (status, _) = Call::new(ABORT)
        .owner(&who)
        .path("uploadId", &live.upload_id)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn cursors_are_opaque_and_never_cross_owners() {
    let ctx = context(&[]).await;
    let alice = owner("alice");
    let mallory = owner("mallory");
    let ups = create_spaced(
        &ctx,
        &alice,
        vec![json!({"filename": "x.bin"}), json!({"filename": "y.bin"})],
    )
    .await;
    create(&ctx, &mallory, json!({"filename": "m.bin"})).await;
    let (status, body) = list(&ctx, Some(&alice), &[("limit", "1")]).await;
    assert_eq!(status, 200, "{body}");
    let cursor = body["next"].as_str().expect("a next page").to_string();
    assert_eq!(body["uploads"][0]["uploadId"], json!(ups[1].upload_id));

    // Alice's cursor works for alice, and for no one else.
    let (status, body) = list(&ctx, Some(&alice), &[("limit", "1"), ("cursor", &cursor)]).await;
    assert_eq!(status, 200);
    assert_eq!(body["uploads"][0]["uploadId"], json!(ups[0].upload_id));
    let (status, body) = list(&ctx, Some(&mallory), &[("cursor", &cursor)]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "BadRequest");

    // A cursor rewritten to name mallory, at alice's position: it only ever
    // pages through mallory's own uploads.
    let mut forged = Cursor::decode(&cursor, &alice).unwrap();
    forged.owner = mallory.clone();
    forged.initiated_at += 3_600_000;
    let (status, body) = list(&ctx, Some(&mallory), &[("cursor", &forged.encode())]).await;
    assert_eq!(status, 200, "{body}");
    let seen: Vec<&str> = body["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["filename"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ["m.bin"], "{body}");

    // Junk in every parameter is a clear 400, never a 5xx.
    let junk_cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{\"o\":1}");
    for (k, v) in [
        ("cursor", "not-a-cursor"),
        ("cursor", junk_cursor.as_str()),
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "ten"),
        ("state", "active"),
        ("state", "DONE"),
        ("bytes", "yes"),
    ] {
        let (status, body) = list(&ctx, Some(&alice), &[(k, v)]).await;
        assert_eq!(status, 400, "{k}={v}: {body}");
        assert!(body["message"].as_str().unwrap().contains(k), "{k}: {body}");
    }
}

#[tokio::test]
async fn anonymous_mode_lists_uploads_only_through_a_grant() {
    let ctx = context(&[("PARTWISE_ANONYMOUS", "true")]).await;
    let (status, body) = Call::new(CREATE)
        .json(json!({"filename": "drop.bin"}))
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    let id = body["uploadId"].as_str().unwrap().to_string();
    let key = body["key"].as_str().unwrap().to_string();
    // Once, this listed every visitor's uploads: names, keys and ids.
    let (status, body) = list(&ctx, None, &[("state", "live"), ("limit", "100")]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert!(
        body["message"].as_str().unwrap().contains("POST /grants"),
        "says what to do: {body}"
    );
    // A caller with an identity does not see the drop box.
    let (_, body) = list(&ctx, Some(&owner("carol")), &[]).await;
    assert_eq!(body["uploads"], json!([]));
    let (status, _) = Call::new(ABORT)
        .path("uploadId", &id)
        .query("key", &key)
        .send(&ctx)
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_completed_upload_lists_its_real_size_when_none_was_declared() {
    let ctx = context(&[]).await;
    let alice = owner("alice");
    // Uppy declares no size.
    let up = create(
        &ctx,
        &alice,
        json!({"filename": "photo.jpg", "type": "image/jpeg"}),
    )
    .await;
    upload_part(&ctx, &alice, &up, 1, bytes(1234, 7)).await;
    let (status, body) = Call::new(COMPLETE)
        .owner(&alice)
        .path("uploadId", &up.upload_id)
        .query("key", &up.key)
        .send(&ctx)
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, listed) = list(&ctx, Some(&alice), &[]).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["uploads"][0]["state"], "COMPLETED", "{listed}");
    assert_eq!(listed["uploads"][0]["size"], 1234, "{listed}");
}
