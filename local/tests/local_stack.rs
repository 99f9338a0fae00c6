//! The local stack and the API Gateway stand-in, end to end.
//!
//! Uses the stack named by the environment (`scripts/test.sh` starts one), or
//! starts a private one when `AWS_ENDPOINT_URL_S3` is unset.

use aws_sdk_dynamodb::types::TimeToLiveStatus;
use partwise_local::template::Template;
use partwise_local::{ServerOptions, Stack, spawn};
use serde_json::Value;
use std::sync::Arc;

async fn stack() -> Stack {
    match Stack::from_env_or_start().await {
        Ok(s) => s,
        Err(e) => panic!("local stack: {e}"),
    }
}

/// Checks `table` against the template's table definition, field by field.
async fn assert_table_matches_template(stack: &Stack, table: &str) {
    let def = Template::bundled().unwrap().table().unwrap();
    let desc = stack
        .dynamodb()
        .describe_table()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let t = desc.table().unwrap();
    assert_eq!(t.key_schema(), def.key_schema.as_slice());
    let mut declared = def.attribute_definitions.clone();
    let mut actual = t.attribute_definitions().to_vec();
    declared.sort_by(|a, b| a.attribute_name().cmp(b.attribute_name()));
    actual.sort_by(|a, b| a.attribute_name().cmp(b.attribute_name()));
    assert_eq!(actual, declared);
    assert_eq!(
        t.billing_mode_summary().and_then(|b| b.billing_mode()),
        def.billing_mode.as_ref()
    );

    let expected = def.global_secondary_indexes.clone().unwrap_or_default();
    assert_eq!(t.global_secondary_indexes().len(), expected.len());
    for want in &expected {
        let got = t
            .global_secondary_indexes()
            .iter()
            .find(|g| g.index_name() == Some(want.index_name()))
            .unwrap_or_else(|| panic!("index {} missing", want.index_name()));
        assert_eq!(got.key_schema(), want.key_schema());
        let want_projection = want.projection().and_then(|p| p.projection_type());
        assert_eq!(
            got.projection().and_then(|p| p.projection_type()),
            want_projection
        );
    }

    // The stream is the upload events' outbox: it must exist with the template's view.
    let want_stream = def.stream_specification.as_ref();
    assert!(
        want_stream.is_some(),
        "template.yaml's table has no StreamSpecification"
    );
    assert_eq!(t.stream_specification(), want_stream);
    assert!(t.latest_stream_arn().is_some(), "the table has no stream");

    let ttl = stack
        .dynamodb()
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    match &def.time_to_live {
        Some(spec) => {
            assert_eq!(ttl.attribute_name(), Some(spec.attribute_name()));
            let want = if spec.enabled() {
                TimeToLiveStatus::Enabled
            } else {
                TimeToLiveStatus::Disabled
            };
            assert_eq!(ttl.time_to_live_status(), Some(&want));
        }
        None => assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Disabled)),
    }
}

async fn assert_bucket_exposes_etag(stack: &Stack, bucket: &str) {
    let cors = stack
        .s3()
        .get_bucket_cors()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rules = cors.cors_rules();
    assert!(!rules.is_empty());
    // Uppy reads each part's ETag from the browser: S3 must expose it.
    assert!(
        rules.iter().any(|r| r
            .expose_headers()
            .iter()
            .any(|h| h.eq_ignore_ascii_case("etag"))),
        "{rules:?}"
    );
    assert_eq!(
        rules,
        Template::bundled()
            .unwrap()
            .bucket_cors()
            .unwrap()
            .as_slice()
    );
}

#[tokio::test]
async fn stack_is_shaped_by_the_template() {
    let stack = stack().await;
    assert_table_matches_template(&stack, stack.table()).await;
    assert_bucket_exposes_etag(&stack, stack.bucket()).await;

    // Private tables and buckets for tests that must not share state.
    let table = Stack::unique_name("t");
    stack.create_table(&table).await.unwrap();
    assert_table_matches_template(&stack, &table).await;
    let bucket = Stack::unique_name("b");
    stack.create_bucket(&bucket).await.unwrap();
    assert_bucket_exposes_etag(&stack, &bucket).await;
    stack
        .s3()
        .put_object()
        .bucket(&bucket)
        .key("k")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap();

    // A stack this test started is gone once dropped.
    if stack.owns_servers() {
        let s3 = stack
            .var("AWS_ENDPOINT_URL_S3")
            .unwrap()
            .trim_start_matches("http://")
            .to_string();
        let dir = stack.dir().unwrap().to_path_buf();
        stack.stop();
        assert!(
            std::net::TcpStream::connect(&s3).is_err(),
            "S3 still listening on {s3}"
        );
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
}

#[tokio::test]
async fn server_behaves_like_api_gateway() {
    let stack = stack().await;
    let ctx = Arc::new(stack.context().unwrap());
    let (addr, server) = spawn(ctx, ServerOptions::dev()).await.unwrap();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    // Unknown route: API Gateway's 404, in our JSON error form.
    let r = http.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers().contains_key("access-control-allow-origin"));
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "UnknownRoute");
    assert!(body["message"].is_string());
    // A known path with a method it does not serve: 405 with `Allow`, in the JSON form.
    for method in [reqwest::Method::PUT, reqwest::Method::TRACE] {
        let r = http
            .request(method.clone(), format!("{base}/s3/multipart"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method}");
        assert_eq!(r.headers()["allow"], "GET, POST", "{method}");
        let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "MethodNotAllowed", "{method}");
    }

    // Preflight: answered by the gateway, never by a handler.
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{base}/s3/multipart"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let h = r.headers();
    assert!(h.contains_key("access-control-allow-origin"));
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(
        h["access-control-allow-headers"],
        "authorization,content-type"
    );
    assert!(h.contains_key("access-control-max-age"));

    // A known route reaches partwise::api::handle (whatever it answers, it is not the gateway's 404).
    let r = http
        .post(format!("{base}/s3/multipart"))
        .header("origin", "http://localhost:5173")
        .header("authorization", "Bearer alice")
        .header("content-type", "application/json")
        .body(r#"{"filename":"cat.jpg","type":"image/jpeg","metadata":{}}"#)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 404);
    assert!(r.headers().contains_key("access-control-allow-origin"));
    assert!(r.headers().contains_key("access-control-expose-headers"));
    assert!(r.headers().contains_key("apigw-requestid"));

    // DEV MODE auth: a JWT-shaped token that is not a JWT is refused, as by a JWT authorizer.
    let r = http
        .post(format!("{base}/s3/multipart"))
        .header("authorization", "Bearer abc.def.ghi")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // API Gateway's 10 MB body limit.
    let r = http
        .post(format!("{base}/s3/multipart"))
        .header("content-type", "application/json")
        .body(vec![b' '; 10 * 1024 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "TooLarge");

    server.shutdown().await;
    assert!(
        http.get(format!("{base}/nope")).send().await.is_err(),
        "server still answering"
    );
}
