//! The real `initiate` binary under a Lambda Runtime API on loopback, logging
//! at debug level as `LogLevel=DEBUG` would: what it writes names no grant in
//! full, whether the grant is issued, used, tampered with, or sits in the
//! path of a request no route serves.

use partwise_local::runtime_api::{Answer, Deadline, RuntimeApi};
use partwise_local::{Stack, StackError};
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;

const KEYS: &str = "logs-test-grant-key-0123456789abcdef0123456789ab";

/// An API Gateway payload-2.0 event for `route_key` at `path`.
fn event(route_key: &str, method: &str, path: &str, grant: Option<&str>, body: Value) -> Value {
    let mut e = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example", "x-forwarded-proto": "https"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "test", "domainName": "api.example",
            "requestId": uuid::Uuid::new_v4().to_string(), "routeKey": route_key,
            "stage": "$default", "time": "25/Nov/2026:00:00:00 +0000", "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "body": body.to_string(),
        "isBase64Encoded": false
    });
    match grant {
        Some(g) => e["pathParameters"] = json!({"grant": g}),
        None => {
            e["requestContext"]["authorizer"] =
                json!({"jwt": {"claims": {"sub": "log-reader"}, "scopes": null}})
        }
    }
    e
}

async fn invoke(api: &RuntimeApi, payload: Value) -> (u64, Value) {
    match api
        .invoke(
            payload,
            Deadline::After(Duration::from_secs(30)),
            Duration::from_secs(60),
        )
        .await
    {
        Some(Answer::Response(r)) => {
            let body = r["body"].as_str().unwrap_or("null");
            (
                r["statusCode"].as_u64().unwrap(),
                serde_json::from_str(body).unwrap(),
            )
        }
        other => panic!("no response: {other:?}; init error {:?}", api.init_error()),
    }
}

#[tokio::test]
async fn the_functions_log_no_grant_in_full() {
    let stack = Stack::from_env_or_start()
        .await
        .unwrap_or_else(|e: StackError| panic!("local stack: {e}"));
    let dir = std::env::temp_dir().join(format!("partwise-logs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let prefix = format!("logs-{}/", uuid::Uuid::new_v4().simple());
    let api = RuntimeApi::start().await.unwrap();
    let mut cmd = api.command(env!("CARGO_BIN_EXE_initiate").as_ref(), "initiate");
    cmd.envs(stack.env())
        .env("PARTWISE_GRANT_KEYS", KEYS)
        .env("PARTWISE_KEY_PREFIX", &prefix)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err).unwrap()));
    let mut child = cmd.spawn().expect("start the initiate binary");

    let (status, issued) = invoke(
        &api,
        event("POST /grants", "POST", "/grants", None, json!({})),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let grant = issued["endpoint"]
        .as_str()
        .unwrap()
        .strip_prefix("https://api.example/g/")
        .unwrap()
        .to_string();
    let tampered = format!("{}x", grant);
    let create = "POST /g/{grant}/s3/multipart";
    for (g, want) in [(&grant, 200), (&tampered, 401)] {
        let path = format!("/g/{g}/s3/multipart");
        let (status, body) = invoke(
            &api,
            event(
                create,
                "POST",
                &path,
                Some(g),
                json!({"filename": "log.bin"}),
            ),
        )
        .await;
        assert_eq!(status, want, "{body}");
        if status == 200 {
            // Leave nothing behind (the stack may be shared): abort it as `abort` would.
            let ctx = stack
                .context_with(&[
                    ("PARTWISE_GRANT_KEYS", KEYS),
                    ("PARTWISE_KEY_PREFIX", &prefix),
                ])
                .unwrap();
            let id = body["uploadId"].as_str().unwrap();
            let abort = "DELETE /g/{grant}/s3/multipart/{uploadId}";
            let mut e = event(abort, "DELETE", &format!("{path}/{id}"), Some(g), json!({}));
            e["pathParameters"]["uploadId"] = json!(id);
            e.as_object_mut().unwrap().remove("body");
            let answer = partwise::api::handle(
                &ctx,
                partwise::api::Function::Abort,
                serde_json::from_value(e).unwrap(),
            )
            .await;
            assert_eq!(answer.status_code, 200, "{:?}", answer.body);
        }
        // A request no route serves: its error names the path (as API Gateway's would).
        let (status, body) = invoke(
            &api,
            event(
                "TRACE /g/{grant}/s3/multipart",
                "TRACE",
                &path,
                Some(g),
                json!({}),
            ),
        )
        .await;
        assert_eq!(status, 405, "{body}");
        assert!(!body.to_string().contains(g.as_str()), "{body}");
    }

    let _ = child.kill().await;
    let logs = std::fs::read_to_string(&out).unwrap() + &std::fs::read_to_string(&err).unwrap();
    // It logged, at debug level, what it did and refused...
    for said in [
        "upload grant issued",
        "upload started",
        "request refused",
        "DEBUG",
    ] {
        assert!(logs.contains(said), "{said:?} not logged:\n{logs}");
    }
    // ...and no grant in full, nor a grant's sealed half.
    for g in [&grant, &tampered] {
        assert!(!logs.contains(g.as_str()), "a full grant in the log");
        let sealed = g.split_once('.').unwrap().1;
        assert!(!logs.contains(sealed), "a grant's sealed half in the log");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
