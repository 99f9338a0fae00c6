//! The upload page served at the local API's `/`, beside the API, over the wire.
//!
//! Uses the stack named by the environment (`scripts/test.sh` starts one), or
//! starts a private one when `AWS_ENDPOINT_URL_S3` is unset.

use partwise_local::{Page, ServerOptions, Stack, spawn};
use serde_json::Value;
use std::sync::Arc;

#[tokio::test]
async fn the_page_is_served_at_the_root_and_the_api_is_unchanged() {
    let stack = match Stack::from_env_or_start().await {
        Ok(s) => s,
        Err(e) => panic!("local stack: {e}"),
    };
    let dir = std::env::temp_dir().join(format!("partwise-page-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>Partwise</title>",
    )
    .unwrap();
    std::fs::write(dir.join("main.js"), "console.log(1)").unwrap();
    let opts = ServerOptions {
        page: Some(Page::new(&dir).unwrap()),
        ..ServerOptions::dev()
    };
    let (addr, server) = spawn(Arc::new(stack.context().unwrap()), opts)
        .await
        .unwrap();
    let base = format!("http://{addr}");
    let http = reqwest::Client::new();

    let r = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/html");
    assert_eq!(
        r.text().await.unwrap(),
        "<!doctype html><title>Partwise</title>"
    );
    let r = http.get(format!("{base}/main.js")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/javascript");

    // Nothing outside the folder, and unknown files are the API's JSON 404.
    for path in ["/missing.js", "/%2e%2e/Cargo.toml", "/..%2f..%2fetc/passwd"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
        let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "UnknownRoute", "{path}");
    }
    // Writes to the page's paths are not served by it.
    let r = http.post(format!("{base}/")).send().await.unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());

    // The API's routes still answer as the API: the list needs a caller.
    let r = http
        .get(format!("{base}/s3/multipart"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{base}/s3/multipart"))
        .bearer_auth("page-tester")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(body["uploads"].is_array(), "{body}");

    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
