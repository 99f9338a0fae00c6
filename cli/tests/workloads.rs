//! Real workloads over the wire: a tree of many files, an API outage in the
//! middle of an upload, runs that collide, a superseded upload, memory on a
//! big file with huge parts, and `get`. The API is served in-process over the
//! local stack; a loopback proxy counts requests and can take the API down.

mod support;

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::proxy::Behavior;
use support::{Env, MIB, Run, content};

/// The API's `host:port`, as the proxy sees it.
fn api_host(env: &Env) -> String {
    env.server.url().trim_start_matches("http://").to_string()
}

/// Waits (bounded) until S3 has taken `n` parts through the proxy.
async fn until_parts(env: &Env, n: usize) {
    for _ in 0..1200 {
        if env
            .proxy()
            .puts()
            .iter()
            .filter(|p| p.status == 200)
            .count()
            >= n
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("S3 did not take {n} parts in 60 s");
}

async fn finish(child: tokio::process::Child, limit: Duration) -> Run {
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .expect("the CLI ran too long")
        .unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn kill(child: &tokio::process::Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    let pid = child.id().unwrap() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_200_files_goes_up_recursively_byte_exact_in_few_api_calls() {
    let env = Env::new(&[]).await.with_proxy().await;
    let root = env.dir.join("tree");
    let mut expected = Vec::new();
    for i in 0..200usize {
        let sub = root.join(format!("d{}", i % 7)).join(format!("e{}", i % 3));
        std::fs::create_dir_all(&sub).unwrap();
        let name = format!("f{i:03}.bin");
        // 1 B to ~96 KiB: the tree's shape, not its bulk, is under test.
        let size = 1 + (i * 4099) % (96 * 1024);
        std::fs::write(sub.join(&name), content(&name, size)).unwrap();
        expected.push((name, size));
    }
    // Excluded by glob, and never sent.
    std::fs::write(root.join("d0").join("skip.tmp"), b"no").unwrap();
    let root_s = root.display().to_string();
    let run = env
        .run(&[
            "upload",
            "--json",
            "--recursive",
            "--exclude",
            "*.tmp",
            &root_s,
        ])
        .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = run.lines();
    assert_eq!(lines.len(), 200, "one line per file");
    for (name, size) in &expected {
        let line = lines
            .iter()
            .find(|l| l["file"].as_str().unwrap().ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(line["size"], *size as u64);
        let key = line["key"].as_str().unwrap();
        assert_eq!(env.object(key).await, content(name, *size), "{name}");
    }
    assert!(!run.stdout.contains("skip.tmp"));
    // API round trips, counted at the proxy: small files are started in
    // batches (8 to fill the pool, then 64 a call), so 200 files take 4
    // calls; as one-part multipart uploads they took 3 per file.
    let api = api_host(&env);
    let calls: Vec<(String, String)> = env
        .proxy()
        .requests()
        .into_iter()
        .filter(|(_, u)| u.contains(&api))
        .collect();
    eprintln!("{} API calls for 200 files", calls.len());
    assert_eq!(calls.len(), 4, "{calls:?}");
    assert!(
        calls
            .iter()
            .all(|(m, u)| m == "POST" && u.ends_with("/s3/puts")),
        "{calls:?}"
    );
    assert_eq!(env.s3_uploads().await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_down_for_30_s_mid_upload_is_outlasted_without_a_rerun() {
    let env = Env::new(&[]).await.with_proxy().await;
    let size = 40 * MIB;
    let path = env.file("outage.bin", size);
    let path = path.display().to_string();
    env.proxy().set(Behavior {
        delay_each: Some(Duration::from_millis(300)),
        ..Behavior::default()
    });
    let child = env
        .command(&["upload", "--json", "--parallel", "2", &path])
        .spawn()
        .unwrap();
    until_parts(&env, 2).await;
    let down_from = Instant::now();
    env.proxy().set(Behavior {
        delay_each: Some(Duration::from_millis(300)),
        down: Some((api_host(&env), down_from + Duration::from_secs(30))),
        ..Behavior::default()
    });
    let run = finish(child, Duration::from_secs(180)).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        down_from.elapsed() >= Duration::from_secs(30),
        "finished while the API was down?"
    );
    assert!(run.stderr.contains("retrying (API unreachable"), "{run:?}");
    let line = &run.lines()[0];
    let key = line["key"].as_str().unwrap();
    assert_eq!(env.object(key).await, content("outage.bin", size));
    assert_eq!(env.s3_uploads().await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_of_one_file_one_uploads_and_the_other_refuses() {
    let env = Env::new(&[]).await.with_proxy().await;
    let size = 20 * MIB;
    let path = env.file("twice.bin", size);
    let path = path.display().to_string();
    env.proxy().set(Behavior {
        delay_each: Some(Duration::from_millis(300)),
        ..Behavior::default()
    });
    let first = env
        .command(&["upload", "--json", "--parallel", "1", &path])
        .spawn()
        .unwrap();
    until_parts(&env, 1).await;
    let second = env.run(&["upload", "--json", &path]).await;
    assert_eq!(second.code, Some(13), "{second:?}");
    assert!(
        second
            .stderr
            .contains("another partwise run is uploading this file"),
        "{second:?}"
    );
    let first = finish(first, Duration::from_secs(120)).await;
    assert_eq!(first.code, Some(0), "{first:?}");
    let key = first.lines()[0]["key"].as_str().unwrap().to_string();
    assert_eq!(env.object(&key).await, content("twice.bin", size));
    assert_eq!(env.s3_uploads().await, vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_name_and_size_from_another_folder_leaves_the_first_upload_alone() {
    let mut env = Env::new(&[]).await.with_proxy().await;
    let size = 20 * MIB;
    let a = env.dir.join("a");
    let b = env.dir.join("b");
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let first = a.join("same.bin");
    std::fs::write(&first, content("first", size)).unwrap();
    let other = b.join("same.bin");
    std::fs::write(&other, content("other", size)).unwrap();
    env.proxy().set(Behavior {
        delay_each: Some(Duration::from_millis(300)),
        ..Behavior::default()
    });
    let first_s = first.display().to_string();
    let child = env
        .command(&["upload", "--json", "--parallel", "1", &first_s])
        .spawn()
        .unwrap();
    until_parts(&env, 2).await;
    kill(&child);
    let _ = finish(child, Duration::from_secs(10)).await;
    env.proxy().settle().await;
    let uploads = env.s3_uploads().await;
    assert_eq!(uploads.len(), 1, "{uploads:?}");
    let (key, id) = uploads[0].clone();
    let held = env.s3_parts(&key, &id).await;

    // Another machine (an empty cache), another folder, the same name and size.
    env.proxy().set(Behavior::default());
    env.new_machine("elsewhere");
    let run = env
        .run(&["upload", "--json", &other.display().to_string()])
        .await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let line = &run.lines()[0];
    assert_ne!(
        line["uploadId"],
        id.as_str(),
        "took the first file's upload"
    );
    assert_eq!(
        env.object(line["key"].as_str().unwrap()).await,
        content("other", size)
    );
    // The first upload is as it was.
    assert_eq!(env.s3_parts(&key, &id).await, held);
    let still: Vec<String> = env.s3_uploads().await.into_iter().map(|u| u.1).collect();
    assert_eq!(still, vec![id.clone()]);
    // Clean up through the CLI, by a prefix of the id.
    let abort = env.run(&["abort", &id[..12]]).await;
    assert_eq!(abort.code, Some(0), "{abort:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_superseded_by_a_changed_file_is_aborted() {
    let env = Env::new(&[]).await.with_proxy().await;
    let size = 20 * MIB;
    let path = env.file("grows.bin", size);
    let path_s = path.display().to_string();
    env.proxy().set(Behavior {
        delay_each: Some(Duration::from_millis(300)),
        ..Behavior::default()
    });
    let child = env
        .command(&["upload", "--json", "--parallel", "1", &path_s])
        .spawn()
        .unwrap();
    until_parts(&env, 2).await;
    kill(&child);
    let _ = finish(child, Duration::from_secs(10)).await;
    env.proxy().settle().await;
    let old = env.s3_uploads().await;
    assert_eq!(old.len(), 1, "{old:?}");
    // Appended to after the kill.
    let mut bytes = content("grows.bin", size);
    bytes.extend_from_slice(b"more");
    std::fs::write(&path, &bytes).unwrap();
    env.proxy().set(Behavior::default());
    let run = env.run(&["upload", "--json", &path_s]).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains("changed since upload") && run.stderr.contains("is aborted"),
        "{run:?}"
    );
    let line = &run.lines()[0];
    assert_ne!(line["uploadId"], old[0].1.as_str());
    // Nothing left in S3 but the final object.
    assert_eq!(env.s3_uploads().await, vec![]);
    let objects = env.s3_objects().await;
    assert_eq!(objects, vec![line["key"].as_str().unwrap().to_string()]);
    assert_eq!(env.object(&objects[0]).await, bytes);
}

/// The process's peak resident memory, sampled until it exits.
async fn peak_rss_kib(mut child: tokio::process::Child, limit: Duration) -> (Option<i32>, u64) {
    let pid = child.id().unwrap();
    let start = Instant::now();
    let mut peak = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status"))
            && let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if let Ok(Some(s)) = child.try_wait() {
            return (s.code(), peak);
        }
        assert!(start.elapsed() < limit, "the upload ran over {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_gib_upload_with_512_mib_parts_stays_in_its_memory_bound() {
    let env = Env::new(&[]).await;
    // Sparse: 2 GiB of zeros that take no disk.
    let path = env.dir.join("huge.bin");
    std::fs::File::create(&path)
        .unwrap()
        .set_len(2048 * MIB as u64)
        .unwrap();
    let path_s = path.display().to_string();
    let child = env
        .command(&["upload", "--json", "--part-size", "512MiB", &path_s])
        .spawn()
        .unwrap();
    let (code, peak_kib) = peak_rss_kib(child, Duration::from_secs(600)).await;
    assert_eq!(code, Some(0));
    // 64 MiB + parallel (8) × 8 MiB.
    let bound_kib = (64 + 8 * 8) * 1024;
    eprintln!(
        "peak RSS {} MiB (bound {} MiB)",
        peak_kib / 1024,
        bound_kib / 1024
    );
    assert!(peak_kib > 0 && peak_kib <= bound_kib, "peak {peak_kib} KiB");
    let objects = env.s3_objects().await;
    assert_eq!(objects.len(), 1);
    let head = env
        .stack
        .s3()
        .head_object()
        .bucket(env.stack.bucket())
        .key(&objects[0])
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(2048 * MIB as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_round_trips_byte_exact_resumes_and_is_owner_only() {
    let env = Env::new(&[]).await;
    let size = 12 * MIB + 5;
    let path = env.file("round.bin", size);
    // 5 MiB parts: a multipart upload (files up to 16 MiB go as one PUT otherwise).
    let up = env
        .run(&[
            "upload",
            "--json",
            "--part-size",
            "5MiB",
            &path.display().to_string(),
        ])
        .await;
    assert_eq!(up.code, Some(0), "{up:?}");
    let id = up.lines()[0]["uploadId"].as_str().unwrap().to_string();

    // A small file's single PUT comes back as soon as S3 holds it (no
    // notification settles it here), checked against its whole-object CRC32C.
    let small = env.file("small.bin", 3 * MIB + 1);
    let up_small = env
        .run(&["upload", "--json", &small.display().to_string()])
        .await;
    assert_eq!(up_small.code, Some(0), "{up_small:?}");
    let small_id = up_small.lines()[0]["uploadId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(small_id.starts_with("put:"), "{small_id}");
    let small_back = env.dir.join("small-back.bin");
    let got = env
        .run(&[
            "get",
            "--json",
            &small_id,
            &small_back.display().to_string(),
        ])
        .await;
    assert_eq!(got.code, Some(0), "{got:?}");
    assert_eq!(
        std::fs::read(&small_back).unwrap(),
        content("small.bin", 3 * MIB + 1)
    );
    assert!(
        got.lines()[0]["checked"]
            .as_str()
            .unwrap()
            .contains("CRC32C"),
        "{got:?}"
    );

    // Whole, by a prefix of the id.
    let dest = env.dir.join("back.bin");
    let dest_s = dest.display().to_string();
    let got = env.run(&["get", "--json", &id[..10], &dest_s]).await;
    assert_eq!(got.code, Some(0), "{got:?}");
    assert_eq!(std::fs::read(&dest).unwrap(), content("round.bin", size));
    let line: Value = got.lines()[0].clone();
    assert_eq!(line["bytesReceived"], size as u64);
    assert!(
        line["checked"].as_str().unwrap().contains("CRC32C"),
        "{line}"
    );

    // Resumed: a partial copy left by an interrupted run is kept, the rest fetched.
    let again = env.dir.join("again.bin");
    let again_s = again.display().to_string();
    let interrupted = env
        .command(&["get", "--json", &id, &again_s])
        .spawn()
        .unwrap();
    kill(&interrupted);
    let _ = finish(interrupted, Duration::from_secs(10)).await;
    let partial = env.dir.join("again.bin.partwise-part");
    let record = env.dir.join("again.bin.partwise-part.json");
    let have = 5 * MIB;
    std::fs::write(&partial, &content("round.bin", size)[..have]).unwrap();
    let etag = {
        let s = env.run(&["status", "--json", &id]).await;
        s.lines()[0]["completion"]["etag"].clone()
    };
    std::fs::write(
        &record,
        serde_json::json!({"uploadId": id, "etag": etag, "size": size}).to_string(),
    )
    .unwrap();
    let resumed = env.run(&["get", "--json", &id, &again_s]).await;
    assert_eq!(resumed.code, Some(0), "{resumed:?}");
    assert_eq!(
        resumed.lines()[0]["bytesReceived"],
        (size - have) as u64,
        "only the missing bytes fetched"
    );
    assert_eq!(std::fs::read(&again).unwrap(), content("round.bin", size));
    assert!(!partial.exists() && !record.exists());

    // A partial copy with wrong bytes is caught by the checksum, and not kept.
    let bad = env.dir.join("bad.bin");
    let bad_partial = env.dir.join("bad.bin.partwise-part");
    let mut wrong = content("round.bin", size)[..have].to_vec();
    wrong[7] ^= 0xff;
    std::fs::write(&bad_partial, &wrong).unwrap();
    std::fs::write(
        env.dir.join("bad.bin.partwise-part.json"),
        serde_json::json!({"uploadId": id, "etag": etag, "size": size}).to_string(),
    )
    .unwrap();
    let refused = env
        .run(&["get", "--json", &id, &bad.display().to_string()])
        .await;
    assert_eq!(refused.code, Some(10), "{refused:?}");
    assert!(!bad.exists() && !bad_partial.exists());

    // Another owner's id: 404, as for a missing one.
    let mut stranger = env.command(&["get", "--json", &id, &dest_s]);
    stranger.env("PARTWISE_TOKEN", format!("{}-other", env.owner));
    let out = stranger.output().await.unwrap();
    assert_eq!(out.status.code(), Some(8), "{out:?}");
    let direct = reqwest::Client::new()
        .get(format!("{}/s3/multipart/{id}/download", env.server.url()))
        .bearer_auth(format!("{}-other", env.owner))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 404);
    let ids: BTreeSet<String> = env.s3_objects().await.into_iter().collect();
    assert_eq!(ids.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_refusal_is_said_in_plain_words_and_usage_is_shown() {
    let env = Env::new(&[("PARTWISE_MAX_LIVE_UPLOADS_PER_OWNER", "1")]).await;
    // One unfinished upload takes the whole quota.
    let r = reqwest::Client::new()
        .post(format!("{}/s3/multipart", env.server.url()))
        .bearer_auth(&env.owner)
        .json(&serde_json::json!({"filename": "held.bin", "type": "application/octet-stream", "size": 6 * MIB}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let path = env.file("refused.bin", 6 * MIB);
    let run = env
        .run(&["upload", "--json", &path.display().to_string()])
        .await;
    assert_eq!(run.code, Some(12), "{run:?}");
    assert!(
        run.stderr
            .contains("quota reached: 1 of 1 unfinished uploads allowed are in use"),
        "{run:?}"
    );
    let quota = env.run(&["quota"]).await;
    assert_eq!(quota.code, Some(0), "{quota:?}");
    let row = quota
        .stdout
        .lines()
        .find(|l| l.starts_with("unfinished uploads"))
        .unwrap_or_else(|| panic!("{quota:?}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>()[2..],
        ["1", "1"],
        "{row}"
    );
    let ls = env.run(&["ls"]).await;
    assert!(ls.stdout.contains("QUOTA"), "{ls:?}");
    let uploads = env.s3_uploads().await;
    assert_eq!(uploads.len(), 1, "the refused file started nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdin_goes_up_under_its_name_and_a_profile_gives_the_token() {
    use tokio::io::AsyncWriteExt;
    let env = Env::new(&[]).await;
    let size = 7 * MIB + 3;
    // Standard input, with --name, and the token from the config file's command.
    let config = env.dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[default]\ntoken_command = \"printf %s {}\"\n\n[profiles.other]\ntoken = \"{}-other\"\n",
            env.owner, env.owner
        ),
    )
    .unwrap();
    let mut cmd = env.command(&["upload", "--json", "-", "--name", "piped.bin"]);
    cmd.env_remove("PARTWISE_TOKEN")
        .env("PARTWISE_CONFIG", &config)
        .stdin(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&content("piped.bin", size)).await.unwrap();
    drop(stdin);
    let run = finish(child, Duration::from_secs(120)).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let line = &run.lines()[0];
    assert_eq!(line["file"], "-");
    let key = line["key"].as_str().unwrap();
    assert!(key.ends_with("/piped.bin"), "{key}");
    assert!(
        key.contains(&format!("/{}/", env.owner)),
        "the token command's owner: {key}"
    );
    assert_eq!(env.object(key).await, content("piped.bin", size));

    // Another profile is another caller: it sees none of these uploads.
    let mut ls = env.command(&["--profile", "other", "ls", "--json"]);
    ls.env_remove("PARTWISE_TOKEN")
        .env("PARTWISE_CONFIG", &config);
    let out = ls.output().await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{out:?}"
    );
    let mut missing = env.command(&["ls", "--profile", "nope"]);
    missing.env("PARTWISE_CONFIG", &config);
    let out = missing.output().await.unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no profile \"nope\""));
    // "-" without --name is refused before anything is read.
    let run = env.run(&["upload", "-"]).await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--name"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_larger_than_the_open_files_limit_goes_up() {
    // 64 descriptors at most, 300 files (and 2 large ones among them): a
    // file is open only while it is read, and only a multipart upload's
    // file is locked, one at a time.
    let env = Env::new(&[]).await;
    let root = env.dir.join("many");
    std::fs::create_dir_all(&root).unwrap();
    let mut expected = Vec::new();
    for i in 0..300usize {
        let name = format!("g{i:03}.bin");
        let size = if i % 150 == 7 { 17 * MIB } else { 1 + i * 13 };
        std::fs::write(root.join(&name), content(&name, size)).unwrap();
        expected.push((name, size));
    }
    let mut cmd = env.command(&[
        "upload",
        "--json",
        "--recursive",
        &root.display().to_string(),
    ]);
    // SAFETY: setrlimit only, between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64,
                rlim_max: 64,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = finish(cmd.spawn().unwrap(), Duration::from_secs(120)).await;
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = run.lines();
    assert_eq!(lines.len(), 300, "one line per file");
    for (name, size) in &expected {
        let line = lines
            .iter()
            .find(|l| l["file"].as_str().unwrap().ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} missing"));
        let key = line["key"].as_str().unwrap();
        assert_eq!(env.object(key).await, content(name, *size), "{name}");
    }
    assert_eq!(env.s3_uploads().await, vec![]);
}
