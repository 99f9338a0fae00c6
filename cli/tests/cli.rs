//! The `partwise` binary over the wire: the API served in-process over the
//! local stack (Garage, DynamoDB Local), objects read back with the SDK, part
//! PUTs counted from outside the CLI by a loopback proxy.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use support::proxy::Behavior;
use support::{Env, MIB, content};

/// Whether the server signs part checksums (it echoes `checksumAlgorithm`).
async fn server_signs_checksums(env: &Env) -> bool {
    let r = reqwest::Client::new()
        .post(format!("{}/s3/multipart", env.server.url()))
        .bearer_auth(format!("{}-probe", env.owner))
        .json(&serde_json::json!({"filename": "probe", "type": "application/octet-stream", "size": 1, "checksumAlgorithm": "CRC32C"}))
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let _ = reqwest::Client::new()
        .delete(format!(
            "{}/s3/multipart/{}",
            env.server.url(),
            v["uploadId"].as_str().unwrap_or_default()
        ))
        .query(&[("key", v["key"].as_str().unwrap_or_default())])
        .bearer_auth(format!("{}-probe", env.owner))
        .send()
        .await;
    v.get("checksumAlgorithm").is_some_and(|a| a == "CRC32C")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_of_mixed_sizes_arrive_byte_exact() {
    let env = Env::new(&[]).await;
    let sizes = [
        ("empty.bin", 0),
        ("one.bin", 1),
        ("under.bin", 5 * MIB - 1),
        ("over.bin", 5 * MIB + 1),
        ("many.bin", 17 * MIB + 123),
    ];
    let paths: Vec<String> = sizes
        .iter()
        .map(|(n, s)| env.file(n, *s).display().to_string())
        .collect();
    let mut args = vec!["upload", "--json", "--parallel", "3"];
    args.extend(paths.iter().map(String::as_str));
    let run = env.run(&args).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = run.lines();
    assert_eq!(lines.len(), sizes.len(), "{run:?}");
    let checksums = server_signs_checksums(&env).await;
    // Files go side by side, so lines come in the order files finish.
    for (name, size) in &sizes {
        let line = lines
            .iter()
            .find(|l| l["file"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no line for {name}: {run:?}"));
        assert_eq!(line["size"], *size as u64, "{line}");
        assert!(line["seconds"].as_f64().unwrap() >= 0.0);
        let key = line["key"].as_str().unwrap();
        assert!(key.ends_with(name), "{key}");
        assert_eq!(env.object(key).await, content(name, *size), "{name}");
        if *size > 0 {
            assert!(
                line["etag"].as_str().is_some_and(|e| !e.is_empty()),
                "{line}"
            );
            if checksums {
                assert_eq!(line["checksum"]["algorithm"], "CRC32C", "{line}");
            }
        }
    }
    // Nothing unfinished left behind.
    assert_eq!(env.s3_uploads().await, vec![]);
}

/// Starts an upload of a 40 MiB file (8 parts), SIGKILLs the CLI once S3 holds
/// three parts, then runs it again (on another machine when `elsewhere`).
async fn kill_and_resume(elsewhere: bool) {
    let mut env = Env::new(&[]).await.with_proxy().await;
    let size = 40 * MIB;
    let path = env.file("big.bin", size);
    let path = path.display().to_string();
    let args = ["upload", "--json", "--parallel", "2", path.as_str()];
    env.proxy().set(Behavior {
        delay_each: Some(Duration::from_millis(300)),
        ..Behavior::default()
    });
    let mut child = env.command(&args).spawn().unwrap();
    let mut waited = 0;
    while env
        .proxy()
        .puts()
        .iter()
        .filter(|p| p.status == 200)
        .count()
        < 3
    {
        waited += 1;
        assert!(waited < 600, "no three parts after 30 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SAFETY: plain kill(2) on our own child's pid.
    let pid = child.id().unwrap() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let status = child.wait().await.unwrap();
    assert_eq!(status.code(), None, "killed by a signal");
    env.proxy().settle().await;

    let uploads = env.s3_uploads().await;
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let (key, id) = uploads[0].clone();
    let held: BTreeSet<u32> = env.s3_parts(&key, &id).await.into_iter().collect();
    assert!(held.len() >= 3 && held.len() < 8, "{held:?}");

    env.proxy().set(Behavior::default());
    env.proxy().clear();
    if elsewhere {
        env.new_machine("other-machine");
    }
    let run = env.run(&args).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let how = if elsewhere {
        "the server's list"
    } else {
        "this machine's record"
    };
    assert!(run.stderr.contains(&format!("(upload {id},")), "{run:?}");
    assert!(run.stderr.contains(how), "{run:?}");
    let sent: Vec<u32> = env.proxy().puts().iter().map(|p| p.part).collect();
    let sent_set: BTreeSet<u32> = sent.iter().copied().collect();
    let missing: BTreeSet<u32> = (1..=8).filter(|n| !held.contains(n)).collect();
    assert_eq!(sent.len(), sent_set.len(), "a part sent twice: {sent:?}");
    assert_eq!(sent_set, missing, "only the missing parts are sent");
    let line = &run.lines()[0];
    assert_eq!(line["key"], key.as_str());
    assert_eq!(line["partsSkipped"], held.len() as u64);
    assert_eq!(line["partsSent"], missing.len() as u64);
    assert_eq!(env.object(&key).await, content("big.bin", size));
    assert_eq!(env.s3_uploads().await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upload_resumes_sending_only_missing_parts() {
    kill_and_resume(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upload_resumes_from_another_machine() {
    kill_and_resume(true).await;
}

/// A stack whose URLs live 3 s, reached through a proxy that does `behavior`.
async fn short_lived_urls(behavior: Behavior) -> Env {
    let env = Env::new(&[("PARTWISE_URL_EXPIRY_SECS", "3")])
        .await
        .with_proxy()
        .await;
    env.proxy().set(behavior);
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_expires_on_the_way_is_signed_again() {
    // URLs live 3 s; the proxy holds part 2's first PUT for 5 s, so S3 sees it expired.
    let env = short_lived_urls(Behavior {
        delay_first_of: Some((2, Duration::from_secs(5))),
        ..Behavior::default()
    })
    .await;
    let path = env.file("slow.bin", 12 * MIB);
    // 5 MiB parts: a multipart upload (files up to 16 MiB go as one PUT otherwise).
    let run = env
        .run(&[
            "upload",
            "--json",
            "--part-size",
            "5MiB",
            path.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let part2: Vec<u16> = env
        .proxy()
        .puts()
        .iter()
        .filter(|p| p.part == 2)
        .map(|p| p.status)
        .collect();
    // S3 answers an expired URL 403; Garage 400 "Date is too old", or, when the
    // URL signs Content-Length, closes the connection unanswered (0).
    assert!(
        matches!(part2[..], [0 | 400 | 403, 200]),
        "refused as expired, then sent with a fresh URL: {part2:?}"
    );
    let key = run.lines()[0]["key"].as_str().unwrap().to_string();
    assert_eq!(env.object(&key).await, content("slow.bin", 12 * MIB));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_changed_after_signing_is_refused_and_reported() {
    let env = Env::new(&[]).await.with_proxy().await;
    if !server_signs_checksums(&env).await {
        eprintln!("SKIPPED: this server does not sign part checksums");
        return;
    }
    env.proxy().set(Behavior {
        corrupt: Some(2),
        ..Behavior::default()
    });
    let path = env.file("tampered.bin", 12 * MIB);
    let run = env
        .run(&[
            "upload",
            "--json",
            "--part-size",
            "5MiB",
            path.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, Some(10), "{run:?}");
    assert!(
        run.stderr.contains("S3 refused part 2") && run.stderr.contains("checksum"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    let puts = env.proxy().puts();
    assert!(
        puts.iter().filter(|p| p.part == 2).all(|p| p.status == 400),
        "{puts:?}"
    );
    // S3 kept the good parts and not the tampered one.
    let uploads = env.s3_uploads().await;
    assert_eq!(uploads.len(), 1);
    let held = env.s3_parts(&uploads[0].0, &uploads[0].1).await;
    assert!(!held.contains(&2), "{held:?}");
    assert!(env.s3_objects().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ls_status_and_abort_show_only_the_callers_uploads() {
    let env = Env::new(&[]).await;
    let start = |owner: String, name: &'static str| {
        let url = env.server.url();
        async move {
            let v: Value = reqwest::Client::new()
                .post(format!("{url}/s3/multipart"))
                .bearer_auth(owner)
                .json(&serde_json::json!({"filename": name, "type": "video/mp4", "size": 12 * MIB}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["uploadId"].as_str().unwrap().to_string()
        }
    };
    let mine = start(env.owner.clone(), "mine.mp4").await;
    let other_owner = format!("{}-other", env.owner);
    let theirs = start(other_owner.clone(), "theirs.mp4").await;

    let ls = env.run(&["ls", "--json"]).await;
    assert_eq!(ls.code, Some(0), "{ls:?}");
    let ids: Vec<String> = ls
        .lines()
        .iter()
        .map(|u| u["uploadId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec![mine.clone()]);
    let table = env.run(&["ls"]).await;
    // Short ids: a prefix, unique among the caller's uploads.
    assert!(
        table.stdout.contains(&mine[..8])
            && !table.stdout.contains(&mine)
            && table.stdout.contains("ACTIVE"),
        "{table:?}"
    );
    assert!(
        table.stdout.contains("12.00 MiB") && table.stdout.contains("mine.mp4"),
        "{table:?}"
    );
    assert!(!table.stdout.contains(&theirs));

    let status = env.run(&["status", &mine[..10]]).await;
    assert_eq!(status.code, Some(0), "{status:?}");
    assert!(status.stdout.contains("ACTIVE") && status.stdout.contains("mine.mp4"));
    let stranger = env.run(&["status", &theirs]).await;
    assert_eq!(stranger.code, Some(8), "{stranger:?}");
    assert!(stranger.stderr.contains("not found"), "{stranger:?}");
    let not_mine = env.run(&["abort", &theirs]).await;
    assert_eq!(not_mine.code, Some(8), "{not_mine:?}");

    let abort = env.run(&["abort", &mine]).await;
    assert_eq!(abort.code, Some(0), "{abort:?}");
    assert!(abort.stdout.contains("ABORTED"), "{abort:?}");
    env.assert_nothing_in_s3().await;
    let after = env.run(&["status", &mine, "--json"]).await;
    assert_eq!(after.lines()[0]["status"], "ABORTED");

    // The other caller's upload is untouched; clean it up.
    let r = reqwest::Client::new()
        .delete(format!("{}/s3/multipart/{theirs}", env.server.url()))
        .bearer_auth(other_owner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_message_and_leaves_nothing() {
    let env = Env::new(&[]).await;
    let good = env.file("good.bin", 6 * MIB);
    let good = good.to_str().unwrap();
    let missing = env.dir.join("missing.bin");
    let missing = missing.to_str().unwrap();
    let dir = env.dir.to_str().unwrap();

    let check = |run: support::Run, code: i32, words: &[&str]| {
        assert_eq!(run.code, Some(code), "{run:?}");
        for w in words {
            assert!(run.stderr.contains(w), "{w:?} not in {run:?}");
        }
        assert!(
            !run.stderr.contains("panicked") && !run.stderr.contains("backtrace"),
            "{run:?}"
        );
    };
    // A good file before the bad one: nothing is sent unless all are good.
    check(
        env.run(&["upload", good, missing]).await,
        3,
        &["missing.bin: no such file"],
    );
    check(env.run(&["upload", dir]).await, 3, &["is a directory"]);
    check(
        env.run(&["upload", "--part-size", "1MiB", good]).await,
        2,
        &["--part-size", "5MiB to 5GiB"],
    );
    check(
        env.run(&["upload", "--part-size", "lots", good]).await,
        2,
        &["not a size"],
    );
    check(
        env.run(&["upload", "--token", "e30.bm90anNvbg.x", good])
            .await,
        5,
        &["refused the token", "PARTWISE_TOKEN"],
    );
    let mut no_token = env.command(&["upload", good]);
    no_token.env_remove("PARTWISE_TOKEN");
    let out = no_token.output().await.unwrap();
    check(
        support::Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        },
        5,
        &["token"],
    );
    check(
        env.run(&["upload", "--api", "http://127.0.0.1:9", good])
            .await,
        4,
        &["cannot reach the API", "--api"],
    );
    // A FIFO is not a file that can be read in parts (or resumed).
    let fifo = env.dir.join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    check(
        env.run(&["upload", fifo.to_str().unwrap()]).await,
        3,
        &["not a regular file"],
    );
    unreadable_file(&env, &check).await;
    env.assert_nothing_in_s3().await;
}

/// A file the caller may not read: as root, the CLI runs as `nobody` (setpriv).
async fn unreadable_file(env: &Env, check: &impl Fn(support::Run, i32, &[&str])) {
    let secret = env.file("secret.bin", 10);
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    // SAFETY: geteuid(2) has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mut cmd = if root {
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(setpriv) = setpriv else {
            eprintln!("SKIPPED unreadable-file case: running as root and setpriv(1) is missing");
            return;
        };
        let std_cmd = env.command(&["upload", secret.to_str().unwrap()]);
        let std_cmd = std_cmd.as_std();
        let mut c = tokio::process::Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(std_cmd.get_program())
            .args(std_cmd.get_args());
        for (k, v) in std_cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    } else {
        env.command(&["upload", secret.to_str().unwrap()])
    };
    let out = cmd.output().await.unwrap();
    check(
        support::Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        },
        3,
        &["secret.bin: cannot read it", "ermission denied"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_files_url_that_expires_on_the_way_is_started_again() {
    // URLs live 3 s; the proxy holds the file's first PUT for 5 s.
    let env = short_lived_urls(Behavior {
        delay_first_of: Some((0, Duration::from_secs(5))),
        ..Behavior::default()
    })
    .await;
    let path = env.file("small.bin", 3 * MIB);
    let run = env.run(&["upload", "--json", path.to_str().unwrap()]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let seen: Vec<u16> = env.proxy().puts().iter().map(|p| p.status).collect();
    assert!(
        matches!(seen[..], [0 | 400 | 403, 200]),
        "refused as expired, then sent under a fresh start: {seen:?}"
    );
    let line = &run.lines()[0];
    assert!(
        line["uploadId"].as_str().unwrap().starts_with("put:"),
        "{line}"
    );
    let key = line["key"].as_str().unwrap();
    assert_eq!(env.object(key).await, content("small.bin", 3 * MIB));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_files_put_cut_off_after_its_url_expired_is_started_again() {
    // S3 may close a request on an expired URL without an answer, which looks
    // like an outage: the CLI must not try that URL again.
    let env = short_lived_urls(Behavior {
        cut_first_of: Some((0, Duration::from_secs(4))),
        ..Behavior::default()
    })
    .await;
    let path = env.file("cut.bin", MIB);
    let run = env.run(&["upload", "--json", path.to_str().unwrap()]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let seen: Vec<u16> = env.proxy().puts().iter().map(|p| p.status).collect();
    assert_eq!(
        seen,
        [0, 200],
        "cut off, then sent once under a fresh start"
    );
    let line = &run.lines()[0];
    let key = line["key"].as_str().unwrap();
    assert_eq!(env.object(key).await, content("cut.bin", MIB));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_file_changed_on_the_way_is_refused_and_nothing_lands() {
    let env = Env::new(&[]).await.with_proxy().await;
    env.proxy().set(Behavior {
        corrupt: Some(0),
        ..Behavior::default()
    });
    let path = env.file("tampered-small.bin", 2 * MIB);
    let run = env.run(&["upload", "--json", path.to_str().unwrap()]).await;
    assert_eq!(run.code, Some(10), "{run:?}");
    assert!(run.stderr.contains("checksum"), "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    let puts = env.proxy().puts();
    assert!(
        !puts.is_empty() && puts.iter().all(|p| p.part == 0 && p.status == 400),
        "{puts:?}"
    );
    assert!(run.stdout.is_empty(), "no file reported done: {run:?}");
}
