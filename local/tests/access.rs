//! Who may do what, over the wire: `partwise-local serve --anonymous` (the
//! real binary, its own stack) with grant keys and a narrowed CORS origin
//! list. Two anonymous visitors cannot list, see or abort each other's
//! uploads, through the plain routes or a grant, while Uppy's plain flow
//! still works; grants name no owner, and a tampered or expired one is 401;
//! no full grant reaches the server's log; CORS answers only the allowed
//! origin, on the API and the bucket alike.

use partwise::grants::{Claims, GrantKeys};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KEYS: &str = "access-test-grant-key-0123456789abcdef0123456789";
const ALLOWED: &str = "https://app.example";
const DISALLOWED: &str = "https://evil.example";

/// `partwise-local serve` on a free port; killed (with its stack) on drop.
struct Server {
    child: Child,
    env: String,
    dir: PathBuf,
}

impl Server {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Server {
        let dir = std::env::temp_dir().join(format!(
            "partwise-access-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let env_file = dir.join("serve.env");
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_partwise-local"));
        cmd.args(["serve", "--port", "0", "--env-file"])
            .arg(&env_file)
            .args(args)
            // Everything a debugging operator would see.
            .env("RUST_LOG", "debug")
            .env_remove("PARTWISE_ALLOWED_ORIGINS")
            .stdout(Stdio::null())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let mut server = Server {
            child,
            env: String::new(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(180);
        while !env_file.exists() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "partwise-local serve exited; see {}",
                server.dir.display()
            );
            assert!(Instant::now() < deadline, "serve not ready after 180 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        server.env = std::fs::read_to_string(&env_file).unwrap();
        server
    }

    fn var(&self, name: &str) -> String {
        self.env
            .lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("{name} not in the env file"))
            .trim_matches('\'')
            .to_string()
    }

    fn api(&self) -> String {
        self.var("PARTWISE_API")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("serve.log")).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM first, so the stack's Garage and DynamoDB Local stop with it.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn call(method: Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A grant's endpoint for an anonymous visitor, as the page asks for it.
async fn anonymous_grant(api: &str) -> String {
    let (status, answer) = call(Method::POST, &format!("{api}/grants"), Some(json!({}))).await;
    assert_eq!(status, 200, "{answer}");
    answer["endpoint"].as_str().unwrap().to_string()
}

fn grant_of(endpoint: &str) -> &str {
    endpoint.rsplit("/g/").next().unwrap()
}

/// Starts an upload at `endpoint` (the API's base, or a grant's): `(key, uploadId)`.
async fn start(endpoint: &str, filename: &str) -> (String, String) {
    let (status, body) = call(
        Method::POST,
        &format!("{endpoint}/s3/multipart"),
        Some(json!({"filename": filename, "type": "application/octet-stream", "metadata": {}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    (
        body["key"].as_str().unwrap().to_string(),
        body["uploadId"].as_str().unwrap().to_string(),
    )
}

/// A key for a query string: ours hold only `[A-Za-z0-9/._-]` here.
fn q(key: &str) -> &str {
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)),
        "{key}"
    );
    key
}

#[tokio::test]
async fn anonymous_visitors_grants_logs_and_cors() {
    let server = Server::start(
        &["--anonymous", "--no-dev-auth", "--allowed-origins", ALLOWED],
        &[("PARTWISE_GRANT_KEYS", KEYS)],
    );
    let api = server.api();
    let mut grants_seen: Vec<String> = Vec::new();

    // --- Anonymous grants: one owner per visitor, named nowhere in the URL.
    let (a, b) = (anonymous_grant(&api).await, anonymous_grant(&api).await);
    let keys = GrantKeys::parse(KEYS).unwrap();
    let (owner_a, owner_b) = (
        keys.open(grant_of(&a), 0).unwrap().owner,
        keys.open(grant_of(&b), 0).unwrap().owner,
    );
    assert_ne!(owner_a, owner_b, "each visitor is an owner of their own");
    for (endpoint, owner) in [(&a, &owner_a), (&b, &owner_b)] {
        assert!(
            partwise::api::anonymous::is_anonymous_owner(owner),
            "{owner}"
        );
        assert!(
            !endpoint.contains(owner.as_str()) && !endpoint.contains("anon"),
            "{endpoint}"
        );
        grants_seen.push(grant_of(endpoint).to_string());
    }

    // Visitor A uploads through her grant, and through the plain endpoint as Uppy does.
    let (key_ag, id_ag) = start(&a, "a-granted-secret.bin").await;
    let (key_ap, id_ap) = start(&api, "a-plain-secret.bin").await;
    let (key_bp, _) = start(&api, "b-plain.bin").await;

    // The plain uploads list once showed every visitor's files: now 401, saying what to do.
    let (status, body) = call(Method::GET, &format!("{api}/s3/multipart"), None).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("grant"),
        "{body}"
    );
    // B's grant lists nothing of A's; A's lists her grant's upload.
    let (status, listed) = call(Method::GET, &format!("{b}/s3/multipart"), None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["uploads"], json!([]), "{listed}");
    let (status, listed) = call(Method::GET, &format!("{a}/s3/multipart"), None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["uploads"][0]["uploadId"], json!(id_ag), "{listed}");

    // B knows A's upload ids (say, from a shared screen): with his grant, or
    // plainly with no key or his own key, he can neither see, sign nor abort.
    for (what, method, url, want) in [
        (
            "grant abort",
            Method::DELETE,
            format!("{b}/s3/multipart/{id_ag}?key={}", q(&key_ag)),
            404,
        ),
        (
            "grant list parts",
            Method::GET,
            format!("{b}/s3/multipart/{id_ag}"),
            404,
        ),
        (
            "grant sign",
            Method::GET,
            format!("{b}/s3/multipart/{id_ag}/1"),
            404,
        ),
        (
            "plain abort, no key",
            Method::DELETE,
            format!("{api}/s3/multipart/{id_ap}"),
            401,
        ),
        (
            "plain status, no key",
            Method::GET,
            format!("{api}/s3/multipart/{id_ap}/status"),
            401,
        ),
        (
            "plain abort, own key",
            Method::DELETE,
            format!("{api}/s3/multipart/{id_ap}?key={}", q(&key_bp)),
            404,
        ),
        (
            "plain list parts, own key",
            Method::GET,
            format!("{api}/s3/multipart/{id_ap}?key={}", q(&key_bp)),
            404,
        ),
        (
            "plain sign, own key",
            Method::GET,
            format!("{api}/s3/multipart/{id_ap}/1?key={}", q(&key_bp)),
            404,
        ),
        (
            "plain abort of a granted upload, own key",
            Method::DELETE,
            format!("{api}/s3/multipart/{id_ag}?key={}", q(&key_bp)),
            404,
        ),
    ] {
        let (status, body) = call(method, &url, None).await;
        assert_eq!(status.as_u16(), want, "{what}: {body}");
    }

    // A's plain Uppy flow still works: sign with her key, PUT, complete.
    let (status, signed) = call(
        Method::GET,
        &format!("{api}/s3/multipart/{id_ap}/1?key={}", q(&key_ap)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{signed}");
    let put = reqwest::Client::new()
        .put(signed["url"].as_str().unwrap())
        .body(vec![7u8; 1000])
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let etag = put.headers()["etag"].to_str().unwrap().to_string();
    let (status, done) = call(
        Method::POST,
        &format!("{api}/s3/multipart/{id_ap}/complete?key={}", q(&key_ap)),
        Some(json!({"parts": [{"PartNumber": 1, "ETag": etag}]})),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    // And her grant aborts her upload.
    let (status, body) = call(
        Method::DELETE,
        &format!("{a}/s3/multipart/{id_ag}?key={}", q(&key_ag)),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // --- Tampered and expired grants: 401.
    let ga = grant_of(&a).to_string();
    let tampered = {
        let mut bytes = ga.clone().into_bytes();
        let i = bytes.len() - 3;
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let expired = keys
        .seal(&Claims {
            owner: owner_a.clone(),
            expires: 1,
            max_file_size: None,
            content_types: None,
        })
        .unwrap();
    for (what, g) in [("tampered", &tampered), ("expired", &expired)] {
        let (status, body) = call(Method::GET, &format!("{api}/g/{g}/s3/multipart"), None).await;
        assert_eq!(status, 401, "{what}: {body}");
        // A route no method serves, with the grant in the path: the error names the path.
        let (status, body) = call(Method::PUT, &format!("{api}/g/{g}/s3/multipart"), None).await;
        assert_eq!(status, 405, "{what}: {body}");
        assert!(!body.to_string().contains(g.as_str()), "{what}: {body}");
        grants_seen.push(g.clone());
    }

    // --- CORS: the allowed origin, and only it, on the API...
    let client = reqwest::Client::new();
    for (origin, allowed) in [(ALLOWED, true), (DISALLOWED, false)] {
        let pre = client
            .request(Method::OPTIONS, format!("{api}/grants"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
            .await
            .unwrap();
        let acao = pre.headers().get("access-control-allow-origin").cloned();
        assert_eq!(
            acao.is_some(),
            allowed,
            "API preflight from {origin}: {acao:?}"
        );
        if allowed {
            assert_eq!(acao.unwrap(), origin);
        }
        let resp = client
            .post(format!("{api}/grants"))
            .header("origin", origin)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(
            resp.headers().get("access-control-allow-origin").is_some(),
            allowed,
            "API answer to {origin}"
        );
        let endpoint: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
        grants_seen.push(grant_of(endpoint["endpoint"].as_str().unwrap()).to_string());
    }
    // ...and on the bucket, whose CORS rules the stack set from the same parameter.
    let bucket_url = format!(
        "{}/{}/{}",
        server.var("AWS_ENDPOINT_URL_S3").trim_end_matches('/'),
        server.var("PARTWISE_BUCKET"),
        key_ap
    );
    // Garage refuses a preflight no rule matches with 403 (a browser then
    // sends nothing), though it adds its blanket `*` to that refusal.
    for (origin, allowed) in [(ALLOWED, true), (DISALLOWED, false)] {
        let pre = client
            .request(Method::OPTIONS, &bucket_url)
            .header("origin", origin)
            .header("access-control-request-method", "PUT")
            .send()
            .await
            .unwrap();
        let acao = pre.headers().get("access-control-allow-origin").cloned();
        let what = format!("bucket preflight from {origin}: {} {acao:?}", pre.status());
        if allowed {
            assert!(pre.status().is_success(), "{what}");
            assert_eq!(
                acao.as_ref().and_then(|v| v.to_str().ok()),
                Some(origin),
                "{what}"
            );
        } else {
            assert_eq!(pre.status(), StatusCode::FORBIDDEN, "{what}");
        }
    }

    // --- The log: every request was logged, no grant in full.
    let log = server.log();
    let granted_lines = log.lines().filter(|l| l.contains("/g/")).count();
    assert!(
        granted_lines >= 10,
        "the grant routes' requests are logged ({granted_lines} lines):\n{log}"
    );
    for g in &grants_seen {
        assert!(g.len() > 40, "a real grant: {g}");
        assert!(!log.contains(g.as_str()), "a full grant in the log: {g}");
        // Nor its sealed half, the part that is not a nonce.
        let sealed = g.split_once('.').unwrap().1;
        assert!(!log.contains(sealed), "a grant's sealed half in the log");
    }
}
