//! Hostile input through the handlers, against the real local stack: dot and
//! invisible filenames, look-alike owners, lenient-looking bodies and part
//! numbers, and calls without a caller. Each is refused with a clear 4xx, or
//! gives a key S3 (and every URL parser on the way) takes as is. Property
//! tests do the same for every parser of client input, whole events included.

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

/// Property tests: whatever a client sends, a clear 4xx or a success, never
/// a panic or a 5xx.
mod properties {
    use super::*;
    use partwise::api::{ROUTES, routes};
    use partwise::{Config, metadata, plan, validate};
    use proptest::prelude::*;
    use proptest::test_runner::{Config as Cases, TestRunner};

    fn config() -> Config {
        Config::from_lookup(|k| match k {
            "PARTWISE_BUCKET" | "PARTWISE_TABLE" => Some("x".into()),
            _ => None,
        })
        .unwrap()
    }

    fn is_4xx(e: &partwise::Error) -> bool {
        (400..500).contains(&e.status())
    }

    /// Text with what breaks parsers: escapes, separators, brackets, control
    /// and invisible characters, and anything else.
    fn hostile_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[%0-9a-fA-F+&=,\\-\\[\\]{}\"/.: ]{0,40}",
            "[\\x00-\\x1f\u{ad}\u{200b}\u{202e}\u{2060}\u{feff}a-z/.%]{0,40}",
            any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(Cases::with_cases(1000))]

        /// Uppy's metadata object and query pairs: accepted within S3's
        /// limits, or a 400 (never a panic, never another status).
        #[test]
        fn metadata_is_accepted_within_limits_or_a_400(
            pairs in proptest::collection::vec((hostile_text(), hostile_text()), 0..8),
            numbers in proptest::collection::vec(any::<i64>(), 0..3),
        ) {
            let mut object = serde_json::Map::new();
            for (k, v) in &pairs {
                object.insert(k.clone(), json!(v));
            }
            for (i, n) in numbers.iter().enumerate() {
                object.insert(format!("n{i}"), json!(n));
            }
            match metadata::from_uppy(Some(&serde_json::Value::Object(object))) {
                Ok(m) => {
                    let total: usize = m.iter().map(|(k, v)| k.len() + v.len()).sum();
                    prop_assert!(total <= metadata::MAX_METADATA_BYTES, "{total} bytes accepted");
                    for (k, v) in &m {
                        prop_assert!(k.bytes().all(|b| b.is_ascii_graphic()), "{k:?}");
                        prop_assert!(!v.chars().any(char::is_control), "{v:?}");
                    }
                }
                Err(e) => prop_assert_eq!(e.status(), 400, "{}", e),
            }
            let query: Vec<(String, String)> =
                pairs.iter().map(|(k, v)| (format!("metadata[{k}]"), v.clone())).collect();
            if let Err(e) = metadata::from_query(query.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                prop_assert_eq!(e.status(), 400, "{}", e);
            }
        }

        /// Content types: a `type/subtype` that is kept as given, or a 4xx.
        #[test]
        fn content_types_are_kept_or_a_4xx(given in proptest::option::of(hostile_text())) {
            match validate::content_type(&config(), given.as_deref()) {
                Ok(t) => {
                    prop_assert!(t.contains('/'), "{t:?}");
                    prop_assert!(!t.chars().any(char::is_control), "{t:?}");
                }
                Err(e) => prop_assert!(is_4xx(&e), "{e}"),
            }
        }

        /// Sizes and part sizes: within the limits, or a 4xx; a planned
        /// upload has at most 10,000 parts that add up to its size.
        #[test]
        fn sizes_are_planned_or_a_4xx(size in any::<u64>(), preferred in proptest::option::of(any::<u64>())) {
            let config = config();
            let size = match validate::size(&config, Some(size)) {
                Ok(s) => s.unwrap(),
                Err(e) => { prop_assert_eq!(e.status(), 413); return Ok(()); }
            };
            let preferred = match validate::part_size(preferred) {
                Ok(p) => p.unwrap_or(16 * 1024 * 1024),
                Err(e) => { prop_assert_eq!(e.status(), 400); return Ok(()); }
            };
            match plan::PartPlan::for_size(size, preferred) {
                Ok(p) => {
                    prop_assert!((1..=10_000).contains(&p.part_count), "{p:?}");
                    prop_assert!((5 * MIB as u64..=5 << 30).contains(&p.part_size), "{p:?}");
                    if size > 0 {
                        let total: u64 = (1..=p.part_count).map(|n| p.part_len(size, n)).sum();
                        prop_assert_eq!(total, size, "{:?}", p);
                        prop_assert!(p.part_len(size, p.part_count) > 0, "{:?}", p);
                    }
                }
                Err(e) => prop_assert!(is_4xx(&e), "{e}"),
            }
        }

        /// Routing any method and path: a route, a 404, or a 405 whose
        /// `Allow` names methods that do serve the path.
        #[test]
        fn any_method_and_path_routes_or_is_404_or_405(
            method in prop_oneof![
                Just("GET".to_string()), Just("POST".to_string()), Just("DELETE".to_string()),
                Just("TRACE".to_string()), Just("PUT".to_string()), "[A-Za-z]{1,8}",
            ],
            segments in proptest::collection::vec(prop_oneof![
                Just("s3".to_string()), Just("multipart".to_string()), Just("g".to_string()),
                Just("batch".to_string()), Just("complete".to_string()), Just("status".to_string()),
                Just(String::new()), hostile_text(),
            ], 0..7),
        ) {
            let path = format!("/{}", segments.join("/"));
            match routes::resolve(&method, &path) {
                Ok((route, params)) => {
                    prop_assert!(route.method.eq_ignore_ascii_case(&method));
                    prop_assert!(params.iter().all(|(_, v)| !v.is_empty()));
                }
                Err(e) if e.status() == 405 => {
                    for m in e.allow().unwrap().split(", ") {
                        prop_assert!(routes::match_route(m, &path).is_some(), "{m} {path}");
                    }
                }
                Err(e) => prop_assert_eq!((e.status(), e.allow()), (404, None)),
            }
        }
    }

    /// Whole API Gateway events, built from hostile parts, through the
    /// handlers on the local stack: every answer is below 500 and JSON, and an
    /// error is in the one error shape.
    #[test]
    fn any_event_is_answered_in_json_below_500() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ctx = rt.block_on(super::ctx());
        let owner = owner("fuzz");
        const NAMES: &[&str] = &[
            "key",
            "partNumbers",
            "filename",
            "type",
            "size",
            "checksum",
            "cursor",
            "limit",
            "state",
            "bytes",
            "metadata[x]",
        ];
        let body = prop_oneof![
            Just(None),
            "[\\[\\]{}\"a-zA-Z:,0-9 .\\\\-]{0,120}".prop_map(Some),
            any::<String>().prop_map(Some),
            (hostile_text(), any::<i64>(), proptest::collection::vec((any::<i64>(), hostile_text()), 0..4))
                .prop_map(|(f, n, parts)| {
                    let parts: Vec<_> = parts.iter().map(|(p, e)| json!({"PartNumber": p, "ETag": e, "partNumber": p, "checksum": e})).collect();
                    Some(json!({"filename": f, "size": n, "type": f, "parts": parts, "metadata": {f.clone(): n}, "checksumAlgorithm": f, "expiresIn": n}).to_string())
                }),
        ];
        let strategy = (
            0..ROUTES.len(),
            hostile_text(),
            hostile_text(),
            proptest::collection::vec((0..NAMES.len(), hostile_text()), 0..4),
            body,
            any::<bool>(),
        );
        // Call takes the route key as &'static str: leaked once, 18 short strings.
        let keys: Vec<&'static str> = ROUTES
            .iter()
            .map(|r| &*Box::leak(r.key().into_boxed_str()))
            .collect();
        let mut runner = TestRunner::new(Cases::with_cases(96));
        runner
            .run(
                &strategy,
                |(route_index, upload_id, part, query, body, with_owner)| {
                    let route = &ROUTES[route_index];
                    let mut call = Call::new(keys[route_index])
                        .path("grant", "not-a-grant")
                        .path("uploadId", &upload_id)
                        .path("partNumber", &part);
                    call.path
                        .retain(|(k, _)| route.path.contains(&format!("{{{k}}}")));
                    for (name, value) in &query {
                        call = call.query(NAMES[*name], value);
                    }
                    if let Some(b) = &body {
                        call = call.raw_body(b);
                    }
                    if with_owner {
                        call = call.owner(&owner);
                    }
                    let (status, answer) = rt.block_on(call.send(&ctx));
                    prop_assert!(
                        (200..500).contains(&status),
                        "{}: {status} {answer}",
                        route.key()
                    );
                    prop_assert!(answer.is_object(), "{}: {status} {answer}", route.key());
                    if status >= 400 {
                        prop_assert!(answer["error"]["code"].is_string(), "{answer}");
                        prop_assert_eq!(&answer["message"], &answer["error"]["message"]);
                    }
                    Ok(())
                },
            )
            .unwrap();
    }
}
