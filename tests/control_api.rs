//! The control API and its CLI, as a user runs them: `weir run` as a child process on an
//! unbounded, paced datagen source, then `weir deploy`, `plugins`, `rollback`, `cancel`
//! against it while records flow; the API's security (token, upload limit, names); and a
//! watched plugin folder.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A `weir run` child process with its own run folder.
struct RunningJob {
    child: Child,
    run_dir: PathBuf,
    id: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl RunningJob {
    /// Start `weir run job.yaml --summary ARGS` on a paced, unbounded datagen source, and
    /// wait for its API to be up.
    fn start(dir: &Path, name: &str, args: &[&str]) -> Self {
        let datagen = "{connector: datagen, rows-per-second: 3000, fields: {seq: {kind: sequence, start: 0}}}";
        Self::start_on(dir, name, datagen, args)
    }

    /// [`RunningJob::start`] with the source given as YAML.
    fn start_on(dir: &Path, name: &str, source: &str, args: &[&str]) -> Self {
        let job = common::write_job(
            dir,
            &format!(
                "name: {name}\n\
                 plugins:\n  v: {}\n\
                 source: {source}\n\
                 pipeline:\n  - map: v.tag\n\
                 sink: {{connector: file, path: out.jsonl, format: json}}\n",
                common::plugin_yaml("versioned-v1-rust")
            ),
        );
        let run_dir = dir.join("run");
        let mut child = common::weir()
            .env("WEIR_RUN_DIR", &run_dir)
            .arg("run")
            .arg(&job)
            .arg("--summary")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir runs");
        let mut pipe = child.stderr.take().expect("piped stderr");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        let id = weir::control::job_id_from_name(name);
        let mut job = Self { child, run_dir, id, stderr: Some(stderr) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !job.info().is_some_and(|i| i["address"].is_string()) {
            if let Ok(Some(status)) = job.child.try_wait() {
                let stderr = job.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
                panic!("weir run ended ({status}) before its API was up:\n{stderr}");
            }
            assert!(Instant::now() < deadline, "the API of job {} is not up after 60 s", job.id);
            std::thread::sleep(Duration::from_millis(20));
        }
        job
    }

    /// `<id>.json` from the run folder.
    fn info(&self) -> Option<Value> {
        let text = std::fs::read(self.run_dir.join(format!("{}.json", self.id))).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn address(&self) -> String {
        self.info().expect("the run file")["address"].as_str().expect("an address").to_string()
    }

    fn token(&self) -> String {
        common::read_file(&self.run_dir.join(format!("{}.token", self.id)))
    }

    /// A `weir` command using this job's run folder.
    fn weir(&self, args: &[&str]) -> common::Run {
        common::run(common::weir().env("WEIR_RUN_DIR", &self.run_dir).args(args))
    }

    /// Records the sink has received, from `weir jobs --json`.
    fn records_out(&self) -> u64 {
        let run = self.weir(&["jobs", "--json"]);
        run.assert_ok();
        let v: Value = serde_json::from_str(&run.stdout).expect("JSON from weir jobs --json");
        v["jobs"].as_array().into_iter().flatten().find(|j| j["id"] == self.id.as_str()).expect("the job is listed")
            ["records_out"]
            .as_u64()
            .expect("records_out")
    }

    /// Wait until `n` more records than now have come out.
    fn let_records_flow(&self, n: u64) {
        let target = self.records_out() + n;
        self.wait_until(&format!("{target} records out"), || self.records_out() >= target);
    }

    fn versions(&self) -> Vec<Value> {
        let run = self.weir(&["plugins", &self.id, "--json"]);
        run.assert_ok();
        let v: Value = serde_json::from_str(&run.stdout).expect("JSON from weir plugins --json");
        v["operators"][0]["versions"].as_array().expect("versions").clone()
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for `weir run` to end; its exit code and stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for weir run") {
                break status;
            }
            assert!(Instant::now() < deadline, "weir run did not end after cancel");
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        (status.code(), stderr)
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        // A failed test must not leave a job running forever.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over a plain socket, as any client could send it: (status, body).
fn http(address: &str, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(address).expect("connect to the API");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    let _ = s.write_all(body); // the server may answer (413) before it reads it all
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let status = reply.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("no status: {reply}"));
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The output's `seq`s and the version that handled each (1 or 2).
fn output(dir: &Path) -> Vec<(u64, u32)> {
    common::read_json_lines(&dir.join("out.jsonl"))
        .iter()
        .map(|r| {
            let version = match (r.get("v1"), r.get("version")) {
                (Some(Value::Bool(true)), None) => 1,
                (None, Some(v)) if v == 2 => 2,
                _ => panic!("neither v1 nor v2 format: {r}"),
            };
            (r["seq"].as_u64().expect("seq"), version)
        })
        .collect()
}

/// Checks every record came out once, in order, and returns the versions' runs.
fn runs_of_versions(out: &[(u64, u32)]) -> Vec<u32> {
    let seqs: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (0..out.len() as u64).collect::<Vec<_>>(), "every input record exactly once, in order");
    let mut runs: Vec<u32> = Vec::new();
    for (_, v) in out {
        if runs.last() != Some(v) {
            runs.push(*v);
        }
    }
    runs
}

#[test]
fn deploy_plugins_rollback_and_cancel_through_the_cli_while_records_flow() {
    let dir = common::temp_dir();
    let job = RunningJob::start(dir.path(), "Control Test", &[]);
    assert_eq!(job.id, "control-test");
    let listed = job.weir(&["jobs"]);
    listed.assert_ok();
    assert!(listed.stdout.contains("control-test") && listed.stdout.contains("running"), "{}", listed.stdout);

    job.let_records_flow(500);
    let v2 = common::plugin("versioned-v2-rust");
    let deployed = job.weir(&["deploy", "control-test", "tag", v2.to_str().unwrap()]);
    deployed.assert_ok();
    assert!(
        deployed.stdout.contains("deployed versioned@2.0.0") && deployed.stdout.contains("generation 2"),
        "{}",
        deployed.stdout
    );
    job.let_records_flow(1_000);

    let versions = job.versions();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!((versions[0]["generation"].as_u64(), versions[0]["outcome"].as_str()), (Some(1), Some("replaced")));
    assert_eq!((versions[1]["generation"].as_u64(), versions[1]["outcome"].as_str()), (Some(2), Some("active")));
    assert_eq!(versions[1]["plugin"], "versioned@2.0.0");
    assert_eq!(versions[1]["sha256"].as_str().map(str::len), Some(64));
    assert_ne!(versions[0]["sha256"], versions[1]["sha256"]);
    assert!(versions[1]["deployed_at_ms"].as_i64() >= versions[0]["deployed_at_ms"].as_i64());
    let text = job.weir(&["plugins", "Control Test"]);
    text.assert_ok();
    assert!(
        text.stdout.contains("map[0] versioned@1.0.0.tag") && text.stdout.contains("versioned@2.0.0"),
        "{}",
        text.stdout
    );

    // Mistakes say what is wrong, and the job runs on.
    let unknown = job.weir(&["deploy", "control-test", "nosuch", v2.to_str().unwrap()]);
    let err = unknown.assert_failed();
    assert!(err.contains("no step `nosuch`") && err.contains("map[0] versioned@1.0.0.tag"), "{err}");
    let not_running = job.weir(&["plugins", "other-job"]);
    assert!(
        not_running.assert_failed().contains("no job `other-job` is running (running: control-test"),
        "{}",
        not_running.stderr
    );

    let back = job.weir(&["rollback", "control-test", "tag"]);
    back.assert_ok();
    assert!(back.stdout.contains("back to versioned@1.0.0: generation 3"), "{}", back.stdout);
    job.let_records_flow(1_000);
    assert_eq!(job.versions()[1]["outcome"], "rolled-back");

    job.weir(&["cancel", "control-test", "--wait"]).assert_ok();
    let run_dir = job.run_dir.clone();
    let (code, stderr) = job.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let out = output(dir.path());
    assert_eq!(runs_of_versions(&out), [1, 2, 1], "v1, then v2 after the deploy, then v1 after the rollback");
    let summary = stderr.lines().find(|l| l.contains(" finished: ")).unwrap_or_else(|| panic!("no summary: {stderr}"));
    assert!(summary.contains(&format!("{} records in, {} out, 0 dead letters", out.len(), out.len())), "{summary}");
    assert!(std::fs::read_dir(&run_dir).unwrap().next().is_none(), "the run files are removed at the end");
    let gone = common::run(common::weir().env("WEIR_RUN_DIR", &run_dir).args(["cancel", "control-test"]));
    assert!(gone.assert_failed().contains("no job `control-test` is running"), "{}", gone.stderr);
}

#[test]
fn the_api_wants_the_token_caps_uploads_and_refuses_names_that_look_like_paths() {
    let dir = common::temp_dir();
    let job = RunningJob::start(dir.path(), "Security Test", &["--max-upload-bytes", "4096"]);
    let (address, token) = (job.address(), job.token());
    assert_eq!(token.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(job.run_dir.join("security-test.token")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is its owner's only");
    }
    assert!(address.starts_with("127.0.0.1:"), "{address}");
    let info = job.info().unwrap();
    assert_eq!((info["name"].as_str(), info["id"].as_str()), (Some("Security Test"), Some("security-test")));

    let deploy = "/jobs/security-test/operators/tag/deploy";
    let wasm = b"\0asm\x0d\0\x01\0";
    let (status, body) = http(&address, "POST", deploy, None, wasm);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Authorization: Bearer") && body.contains("security-test.token"), "{body}");
    assert_eq!(http(&address, "POST", deploy, Some("0123456789abcdef"), wasm).0, 401);
    assert_eq!(http(&address, "POST", "/jobs/security-test/cancel", Some(&token[1..]), b"").0, 401);
    assert_eq!(http(&address, "POST", "/jobs/security-test/operators/tag/rollback", None, b"").0, 401);
    // Reading needs no token.
    let (status, body) = http(&address, "GET", "/jobs", None, b"");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"state\":\"running\""), "{body}");

    let mut big = b"\0asm".to_vec();
    big.resize(64 << 10, 0);
    let (status, body) = http(&address, "POST", deploy, Some(&token), &big);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("larger than the limit of 4096 bytes"), "{body}");

    for path in [
        "/jobs/security-test/operators/..%2F..%2Fetc%2Fpasswd/deploy",
        "/jobs/security-test/operators/../deploy",
        "/jobs/security-test/operators/a%5Cb/deploy",
    ] {
        let (status, body) = http(&address, "POST", path, Some(&token), wasm);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("not an operator name") && body.contains("never file paths"), "{path}: {body}");
    }
    let (status, body) = http(&address, "POST", "/jobs/..%2Fsecurity-test/cancel", Some(&token), b"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not a job id"), "{body}");
    assert_eq!(http(&address, "GET", "/jobs/other/plugins", None, b"").0, 404);

    let (status, body) = http(&address, "POST", deploy, Some(&token), b"hello, not a plugin");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not WebAssembly") && body.contains("weir plugin build"), "{body}");
    let (status, body) = http(&address, "POST", deploy, Some(&token), wasm);
    assert_eq!(status, 422, "an empty component exports no `tag`: {body}");
    assert_eq!(job.versions().len(), 1, "nothing was swapped in");

    let (status, body) = http(&address, "GET", "/metrics", None, b"");
    assert_eq!(status, 200);
    assert!(body.contains("weir_records_out_total{job=\"security-test\"}"), "{body}");

    let (status, body) = http(&address, "POST", "/jobs/security-test/cancel", Some(&token), b"");
    assert_eq!(status, 202, "{body}");
    let (code, stderr) = job.finish();
    assert_eq!(code, Some(0), "{stderr}");
    runs_of_versions(&output(dir.path()));
}

#[test]
fn a_component_renamed_into_the_watched_folder_is_deployed_and_a_half_written_one_is_not() {
    let dir = common::temp_dir();
    let watched = dir.path().join("plugins");
    std::fs::create_dir(&watched).unwrap();
    let job = RunningJob::start(dir.path(), "Watch Test", &["--watch", watched.to_str().unwrap()]);
    job.let_records_flow(300);
    let v2 = std::fs::read(common::plugin("versioned-v2-rust")).unwrap();

    // Half a component, left there: it never loads, so nothing is swapped.
    std::fs::write(watched.join("versioned.wasm"), &v2[..v2.len() / 2]).unwrap();
    std::thread::sleep(Duration::from_millis(1_500));
    assert_eq!(job.versions().len(), 1, "a half-written file is not deployed");

    // The whole component, written beside it and renamed over it (atomic).
    let tmp = watched.join(".versioned.wasm.tmp");
    std::fs::write(&tmp, &v2).unwrap();
    std::fs::rename(&tmp, watched.join("versioned.wasm")).unwrap();
    job.wait_until("v2 is deployed from the folder", || job.versions().len() == 2);
    let versions = job.versions();
    assert_eq!(
        (versions[1]["plugin"].as_str(), versions[1]["outcome"].as_str()),
        (Some("versioned@2.0.0"), Some("active"))
    );
    job.let_records_flow(500);

    job.weir(&["cancel", "watch-test"]).assert_ok();
    let (code, stderr) = job.finish();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(runs_of_versions(&output(dir.path())), [1, 2]);
}

#[test]
fn cancel_ends_a_job_whose_socket_source_is_quiet_with_what_it_read() {
    // The server sends 100 lines and keeps the connection open: without cancel the job
    // would wait for more forever.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let mut conn = common::accept_within(&listener, common::RUN_TIMEOUT).expect("the job connects");
        for seq in 0..100 {
            writeln!(conn, "{{\"seq\": {seq}}}").unwrap();
        }
        conn.flush().unwrap();
        let _ = done_rx.recv_timeout(common::RUN_TIMEOUT); // hold the connection open
    });
    let dir = common::temp_dir();
    let source = format!("{{connector: socket, hostname: 127.0.0.1, port: {port}, format: json}}");
    let job = RunningJob::start_on(dir.path(), "Quiet Socket", &source, &[]);
    job.wait_until("100 records out", || job.records_out() == 100);
    job.weir(&["cancel", "quiet-socket"]).assert_ok();
    let (code, stderr) = job.finish();
    let _ = done_tx.send(());
    server.join().unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("100 records in, 100 out, 0 dead letters"), "{stderr}");
    assert_eq!(runs_of_versions(&output(dir.path())), [1]);
}

#[test]
fn a_canary_deployed_through_the_cli_that_fails_is_dropped_and_its_records_run_on_v1() {
    // v3 traps on every record. `--canary 0.5` runs it on every other batch; its first
    // batch fails, so it is dropped (outcome `failed`) and the records it failed run again
    // on v1: every record comes out once, all in v1's format, none dead.
    let dir = common::temp_dir();
    let job = RunningJob::start(dir.path(), "Canary Test", &[]);
    job.let_records_flow(300);
    let v3 = common::plugin("versioned-v3-rust");
    let deployed = job.weir(&["deploy", "canary-test", "tag", v3.to_str().unwrap(), "--canary", "0.5"]);
    deployed.assert_ok();
    assert!(deployed.stdout.contains("canary versioned@3.0.0"), "{}", deployed.stdout);
    job.wait_until("the canary is dropped", || job.versions().get(1).is_some_and(|v| v["outcome"] == "failed"));
    let versions = job.versions();
    assert!(versions[1]["reason"].as_str().unwrap_or_default().contains("canary dropped"), "{versions:?}");
    assert_eq!((versions[0]["generation"].as_u64(), versions[0]["outcome"].as_str()), (Some(1), Some("active")));
    job.let_records_flow(300);
    job.weir(&["cancel", "canary-test", "--wait"]).assert_ok();
    let (code, stderr) = job.finish();
    assert_eq!(code, Some(0), "{stderr}");
    let out = output(dir.path());
    assert!(out.iter().all(|(_, v)| *v == 1));
    let mut seqs: Vec<u64> = out.iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..out.len() as u64).collect::<Vec<_>>(), "every record once");
    assert!(stderr.contains(" 0 dead letters"), "{stderr}");
}
