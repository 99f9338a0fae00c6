//! Abuse over the wire: `partwise-local serve` (the real binary, its own
//! stack) gets oversized, malformed, deep and ambiguous requests. Each gets a
//! 4xx in the JSON error shape, and the server's memory stays bounded across
//! repeated rounds (VmRSS and VmHWM from /proc, printed).

use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

/// `partwise-local serve` on a free port; killed (with its stack) on drop.
struct Server {
    child: Child,
    api: String,
    dir: PathBuf,
}

impl Server {
    fn start() -> Server {
        let dir = std::env::temp_dir().join(format!("partwise-abuse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let env_file = dir.join("serve.env");
        let log = std::fs::File::create(dir.join("serve.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_partwise-local"))
            .args(["serve", "--port", "0", "--env-file"])
            .arg(&env_file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            api: String::new(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while !env_file.exists() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "partwise-local serve exited; see {}",
                server.dir.display()
            );
            assert!(Instant::now() < deadline, "serve not ready after 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        let env = std::fs::read_to_string(&env_file).unwrap();
        server.api = env
            .lines()
            .find_map(|l| l.strip_prefix("export PARTWISE_API="))
            .unwrap()
            .trim_matches('\'')
            .to_string();
        server
    }

    fn host(&self) -> &str {
        self.api.trim_start_matches("http://")
    }

    /// `(VmRSS, VmHWM)` in KiB.
    fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap()
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM: serve stops its stack (Garage, DynamoDB Local) on the way out.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One raw HTTP/1.1 exchange: `head` (without the final CRLF pair, which is
/// added with `Connection: close`), then `body`. Returns status, headers, body.
fn raw(host: &str, head: &[u8], body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut s = TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = head.to_vec();
    req.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    req.extend_from_slice(body);
    // The server may answer and close before reading everything (a refused head).
    let _ = s.write_all(&req);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(len) = resp.parse(&out).unwrap() else {
        panic!("incomplete answer: {:?}", String::from_utf8_lossy(&out));
    };
    let headers = resp
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    (resp.code.unwrap(), headers, out[len..].to_vec())
}

/// A request line and headers, for [`raw`].
fn head(method: &str, target: &str, host: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut h =
        format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer mallory");
    for (k, v) in extra {
        h.push_str(&format!("\r\n{k}: {v}"));
    }
    h.into_bytes()
}

/// What every refusal must be: a 4xx of `status`, JSON, `error.code` = `code`,
/// the same message at the top level.
#[track_caller]
fn assert_refused(
    what: &str,
    answer: &(u16, Vec<(String, String)>, Vec<u8>),
    status: u16,
    code: &str,
) {
    let (got, headers, body) = answer;
    let body: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "{what}: {got} with a body that is not JSON ({e}): {:?}",
            String::from_utf8_lossy(body)
        )
    });
    assert_eq!(
        (*got, body["error"]["code"].as_str()),
        (status, Some(code)),
        "{what}: {body}"
    );
    assert_eq!(body["message"], body["error"]["message"], "{what}");
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(content_type, Some("application/json"), "{what}");
}

fn call(
    host: &str,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let len = body.len().to_string();
    let h = head(
        method,
        target,
        host,
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &len),
        ],
    );
    raw(host, &h, body)
}

fn json_of(answer: &(u16, Vec<(String, String)>, Vec<u8>)) -> Value {
    serde_json::from_slice(&answer.2).unwrap()
}

/// One round of every abuse case; returns how long each took.
fn abuse_round(host: &str, upload_id: &str, key: &str) -> Vec<(&'static str, Duration)> {
    let mut timings = vec![];
    let mut time = |name: &'static str, f: &mut dyn FnMut()| {
        let t = Instant::now();
        f();
        timings.push((name, t.elapsed()));
    };
    let key_q: String = form_encode(key);

    time("10 MB body (at the gateway's limit)", &mut || {
        let body = vec![b' '; 10 * MIB];
        assert_refused(
            "10 MB body",
            &call(host, "POST", "/s3/multipart", &body),
            413,
            "TooLarge",
        );
    });
    time("10 MB + 1 body", &mut || {
        let body = vec![b'x'; 10 * MIB + 1];
        assert_refused(
            "10 MB + 1 body",
            &call(host, "POST", "/s3/multipart", &body),
            413,
            "TooLarge",
        );
    });
    time("10,000-part complete", &mut || {
        let parts: Vec<Value> = (1..=10_000)
            .map(|n| json!({"PartNumber": n, "ETag": format!("\"{:032x}\"", n)}))
            .collect();
        let body = json!({ "parts": parts }).to_string();
        let target = format!("/s3/multipart/{upload_id}/complete?key={key_q}");
        let answer = call(host, "POST", &target, body.as_bytes());
        // None of these parts was uploaded: S3's InvalidPart, checked before anything changes.
        assert!((400..500).contains(&answer.0), "10,000 parts: {}", answer.0);
        assert_refused(
            "10,000 parts",
            &answer,
            answer.0,
            json_of(&answer)["error"]["code"].as_str().unwrap(),
        );
        let mut more = parts;
        more.push(json!({"PartNumber": 1, "ETag": "\"x\""}));
        let body = json!({ "parts": more }).to_string();
        assert_refused(
            "10,001 parts",
            &call(host, "POST", &target, body.as_bytes()),
            400,
            "BadRequest",
        );
    });
    time(
        "1,000-number batch sign (the documented maximum)",
        &mut || {
            let numbers: Vec<String> = (1..=1000).map(|n| n.to_string()).collect();
            let target = format!(
                "/s3/multipart/{upload_id}/batch?key={key_q}&partNumbers={}",
                numbers.join(",")
            );
            let answer = call(host, "GET", &target, b"");
            assert_eq!(answer.0, 200, "{}", String::from_utf8_lossy(&answer.2));
            assert_eq!(
                json_of(&answer)["presignedUrls"].as_object().unwrap().len(),
                1000
            );
            for q in ["1-1001", "1-10000", "1-99999999999999999999999"] {
                let target = format!("/s3/multipart/{upload_id}/batch?partNumbers={q}");
                assert_refused(q, &call(host, "GET", &target, b""), 400, "BadRequest");
            }
        },
    );
    time("deeply nested JSON", &mut || {
        for depth in [33, 100_000] {
            let body = format!(
                r#"{{"filename":"a","metadata":{}{}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            assert_refused(
                "nested",
                &call(host, "POST", "/s3/multipart", body.as_bytes()),
                400,
                "BadRequest",
            );
        }
        // Unclosed: 500,000 opening brackets.
        let body = format!(r#"{{"metadata":{}"#, "{\"a\":".repeat(100_000));
        assert_refused(
            "unclosed",
            &call(host, "POST", "/s3/multipart", body.as_bytes()),
            400,
            "BadRequest",
        );
    });
    time("invalid UTF-8 in body, path and query", &mut || {
        let body = b"{\"filename\":\"\xff\xfe.txt\"}";
        assert_refused(
            "body",
            &call(host, "POST", "/s3/multipart", body),
            400,
            "BadRequest",
        );
        assert_refused(
            "escaped path",
            &call(host, "DELETE", "/s3/multipart/%FF%FE", b""),
            400,
            "BadRequest",
        );
        assert_refused(
            "escaped query",
            &call(host, "GET", "/s3/params?filename=%FF.txt", b""),
            400,
            "BadRequest",
        );
        let h = [b"GET /s3/multipart/\xff\xfe HTTP/1.1\r\nHost: x".as_slice()].concat();
        assert_refused("raw path bytes", &raw(host, &h, b""), 400, "BadRequest");
    });
    time("duplicated query parameter", &mut || {
        for target in [
            "/s3/params?filename=a.txt&filename=b.txt".to_string(),
            format!("/s3/multipart/{upload_id}?key={key_q}&key={key_q}"),
            format!("/s3/multipart/{upload_id}/batch?partNumbers=1&partNumbers=2"),
        ] {
            assert_refused(&target, &call(host, "GET", &target, b""), 400, "BadRequest");
        }
    });
    time(
        "request line and headers at and over 10,240 bytes",
        &mut || {
            // Exactly at the limit reaches the handler.
            let line = "GET /s3/multipart HTTP/1.1".len();
            // Host, Authorization, Connection: close and X-Pad.
            let values = host.len() + "Bearer mallory".len() + "close".len();
            let pad = 10240 - line - values;
            let ok = raw(
                host,
                &head("GET", "/s3/multipart", host, &[("X-Pad", &"p".repeat(pad))]),
                b"",
            );
            assert_eq!(ok.0, 200, "{}", String::from_utf8_lossy(&ok.2));
            let over = raw(
                host,
                &head(
                    "GET",
                    "/s3/multipart",
                    host,
                    &[("X-Pad", &"p".repeat(pad + 1))],
                ),
                b"",
            );
            assert_refused("one byte over", &over, 431, "HeadersTooLarge");
            // Far over hyper's own limits: 200 headers, a 1 MB header, a 100 KB URI.
            let many: Vec<(String, String)> =
                (0..200).map(|i| (format!("X-H{i}"), "v".into())).collect();
            let many: Vec<(&str, &str)> =
                many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_refused(
                "200 headers",
                &raw(host, &head("GET", "/s3/multipart", host, &many), b""),
                431,
                "HeadersTooLarge",
            );
            let huge = "h".repeat(MIB);
            assert_refused(
                "1 MB header",
                &raw(
                    host,
                    &head("GET", "/s3/multipart", host, &[("X-Big", &huge)]),
                    b"",
                ),
                431,
                "HeadersTooLarge",
            );
            let query = format!("/s3/params?filename={}", "q".repeat(20_000));
            assert_refused(
                "20 KB query",
                &raw(host, &head("GET", &query, host, &[]), b""),
                414,
                "UriTooLong",
            );
            let query = format!("/s3/params?filename={}", "q".repeat(100_000));
            assert_refused(
                "100 KB query",
                &raw(host, &head("GET", &query, host, &[]), b""),
                414,
                "UriTooLong",
            );
        },
    );
    time("malformed request lines and methods", &mut || {
        for bad in [
            &b"GET /s3/multipart HTTP/1.1 extra\r\nHost: x"[..],
            b"\x01\x02\x03 / HTTP/1.1",
            b"GET / HTTP/9.9",
            b"G\xffT /s3/multipart HTTP/1.1",
        ] {
            assert_refused(
                &String::from_utf8_lossy(bad),
                &raw(host, bad, b""),
                400,
                "BadRequest",
            );
        }
        for method in ["TRACE", "PUT", "PATCH"] {
            let answer = raw(host, &head(method, "/s3/multipart", host, &[]), b"");
            assert_refused(method, &answer, 405, "MethodNotAllowed");
            assert!(
                answer.1.contains(&("allow".into(), "GET, POST".into())),
                "{method}: {:?}",
                answer.1
            );
        }
    });
    timings
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn abuse_gets_json_4xx_within_bounded_memory() {
    let server = Server::start();
    let host = server.host().to_string();
    // A real upload to aim the part-list and batch cases at: 16 GiB, so its
    // plan has the 1,000 parts the batch case signs (an upload without a
    // size signs only a window past what S3 holds).
    let created = call(
        &host,
        "POST",
        "/s3/multipart",
        br#"{"filename":"target.bin","size":17179869184}"#,
    );
    assert_eq!(created.0, 200, "{}", String::from_utf8_lossy(&created.2));
    let created = json_of(&created);
    let (upload_id, key) = (
        created["uploadId"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );

    // Warm up with well-formed calls, so the baseline holds what any server holds.
    for _ in 0..20 {
        assert_eq!(call(&host, "GET", "/s3/multipart", b"").0, 200);
    }
    let (rss_before, hwm_before) = server.memory();
    let rounds = 3;
    let mut rss = vec![];
    for round in 1..=rounds {
        let timings = abuse_round(&host, upload_id, key);
        let (r, h) = server.memory();
        rss.push(r);
        eprintln!("round {round}: VmRSS {} KiB, VmHWM {} KiB", r, h);
        for (name, t) in timings {
            eprintln!("  {name}: {} ms", t.as_millis());
        }
    }
    let (rss_after, hwm_after) = server.memory();
    eprintln!(
        "server memory: VmRSS {rss_before} KiB before, {rss_after} KiB after {rounds} rounds; \
         VmHWM {hwm_before} KiB before, {hwm_after} KiB after"
    );
    // Bounded: the peak stays within a few times the largest request (10 MB),
    // and nothing accumulates from round to round.
    assert!(
        rss_after < 2 * rss_before + 64 * 1024,
        "VmRSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        hwm_after < hwm_before + 256 * 1024,
        "VmHWM {hwm_before} -> {hwm_after} KiB"
    );
    assert!(
        rss[rounds - 1] < rss[0] + 32 * 1024,
        "VmRSS by round: {rss:?}"
    );

    // The upload aimed at is untouched: still listed as ACTIVE.
    let status = call(
        &host,
        "GET",
        &format!("/s3/multipart/{upload_id}/status"),
        b"",
    );
    assert_eq!(status.0, 200, "{}", String::from_utf8_lossy(&status.2));
    assert_eq!(
        json_of(&status)["status"],
        "ACTIVE",
        "{}",
        String::from_utf8_lossy(&status.2)
    );
}
