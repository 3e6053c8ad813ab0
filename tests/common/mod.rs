//! Helpers shared by the integration tests: where the `weir` binary, the repository and
//! the built plugins are, job files in temporary folders, running `weir`, and a tiny TCP
//! server for the socket source.
//!
//! Every test file includes this module (`mod common;`) and uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod kill;
pub mod postgres;

/// Page views `{url, ts}` (ms) a little out of order, for the window tests (tests/windows.rs
/// works their windows out by hand; tests/postgres.rs upserts them).
pub const URL_VIEWS: &str = r#"{"url":"/a","ts":1000}
{"url":"/a","ts":4000}
{"url":"/b","ts":9000}
{"url":"/a","ts":12000}
{"url":"/a","ts":8000}
{"url":"/b","ts":21000}
"#;

/// The repository root (this crate is `tests/` in it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The profile folder the tests were built into (e.g. target/release): the test binary is
/// `<profile>/deps/<test>-<hash>`. Following the test binary, rather than assuming
/// `target/`, keeps working when CARGO_TARGET_DIR points elsewhere.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    let deps = exe.parent().expect("the test binary is in a folder");
    let profile = if deps.file_name().is_some_and(|n| n == "deps") { deps.parent().unwrap_or(deps) } else { deps };
    profile.to_path_buf()
}

/// The `weir` binary built beside these tests.
pub fn weir_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = profile_dir().join(format!("weir{}", std::env::consts::EXE_SUFFIX));
        assert!(
            bin.is_file(),
            "the weir binary is not at {}: run `cargo build --release -p weir` (or `just test`) before these tests",
            bin.display()
        );
        bin
    })
    .clone()
}

/// A built plugin component, by its folder under plugins/ (e.g. `upper-rust`).
pub fn plugin(dir: &str) -> PathBuf {
    let path = repo_root().join("plugins").join(dir).join(format!("{dir}.wasm"));
    assert!(path.is_file(), "the plugin {} is not built: run `just plugins` before these tests", path.display());
    path
}

/// A plugin path as it goes into a job file (YAML single-quoted, so any path is safe).
pub fn plugin_yaml(dir: &str) -> String {
    yaml_path(&plugin(dir))
}

/// A path as a single-quoted YAML scalar.
pub fn yaml_path(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

/// A compiled-component cache shared by the tests of one build, so each plugin is compiled
/// once per test run rather than once per test (tests that are about the cache make their
/// own). It lives beside the binaries, never in the user's ~/.cache.
pub fn shared_cache_dir() -> PathBuf {
    profile_dir().join("weir-tests-cache")
}

/// A temporary folder for one test's job files, inputs and outputs.
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new().prefix("weir-test-").tempdir().expect("cannot create a temporary folder")
}

/// Write `text` to `dir/name` and return its path.
pub fn write_file(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("cannot create a folder for a test file");
    }
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// Write a job file `job.yaml` into `dir`.
pub fn write_job(dir: &Path, yaml: &str) -> PathBuf {
    write_file(dir, "job.yaml", yaml)
}

pub fn read_file(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The lines of a JSON-lines file, parsed.
pub fn read_json_lines(path: &Path) -> Vec<serde_json::Value> {
    read_file(path)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not a JSON line: {l:?}: {e}", path.display())))
        .collect()
}

/// What a `weir` run did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from_output(out: Output) -> Self {
        Self {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Panic with the whole output unless the run succeeded.
    pub fn assert_ok(&self) -> &Self {
        assert!(
            self.success(),
            "weir failed (exit {:?})\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panic unless the run failed; the `error: ...` text on stderr.
    pub fn assert_failed(&self) -> &str {
        assert!(
            !self.success() && self.code.is_some(),
            "weir should have failed (exit {:?})\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.stdout,
            self.stderr
        );
        self.stderr.trim()
    }

    /// The `--summary` line's counters: "records in", "out", "dead letters".
    pub fn summary(&self) -> Summary {
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("job `") && l.contains(" finished: "))
            .unwrap_or_else(|| panic!("no summary line on stderr:\n{}", self.stderr));
        let after = line.split(" finished: ").nth(1).unwrap_or_default();
        let mut numbers = BTreeMap::new();
        for part in after.split(", ") {
            let (n, what) = part.split_once(' ').unwrap_or((part, ""));
            if let Ok(n) = n.parse::<u64>() {
                numbers.insert(what.to_string(), n);
            }
        }
        let get = |what: &str| *numbers.get(what).unwrap_or_else(|| panic!("summary line without `{what}`: {line}"));
        Summary {
            records_in: get("records in"),
            records_out: get("out"),
            dead_letters: get("dead letters"),
            late: numbers.get("late").copied().unwrap_or(0),
            broadcast: numbers.get("broadcast").copied().unwrap_or(0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Records sent to the late-data output (0 when the line has no such counter).
    pub late: u64,
    /// Records of broadcast inputs (0 when the line has no such counter).
    pub broadcast: u64,
    pub records_in: u64,
    pub records_out: u64,
    pub dead_letters: u64,
}

/// A `weir` command with the shared component cache and quiet logs.
pub fn weir() -> Command {
    weir_with_cache(&shared_cache_dir())
}

/// A `weir` command with its own component cache.
pub fn weir_with_cache(cache: &Path) -> Command {
    let mut cmd = Command::new(weir_bin());
    // NO_COLOR: log lines are grepped, so no ANSI escapes (tracing colours even into pipes).
    cmd.arg("--cache-dir").arg(cache).env_remove("WEIR_LOG").env_remove("WEIR_CACHE_DIR").env("NO_COLOR", "1");
    cmd
}

/// The longest any `weir` run in these tests may take: a hang (a plugin call that is
/// never interrupted, a job that never ends) fails the test instead of stalling the suite.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// Run a command to its end (killed, and the test failed, after [`RUN_TIMEOUT`]).
pub fn run(cmd: &mut Command) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // Drain both pipes while waiting, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
                panic!("{cmd:?} did not finish within {RUN_TIMEOUT:?}; killed it\n--- stderr\n{err}");
            }
            Err(e) => panic!("cannot wait for {cmd:?}: {e}"),
        }
    };
    Run::from_output(Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// `weir run JOB --summary` with the shared cache.
pub fn run_job(job: &Path) -> Run {
    run(weir().arg("run").arg(job).arg("--summary"))
}

/// One connection on `listener`, or a `TimedOut` error if nobody connects in time (so a
/// job that never connects fails the test rather than hanging it).
pub fn accept_within(listener: &TcpListener, timeout: Duration) -> std::io::Result<std::net::TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false)?;
                return Ok(conn);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no connection to the test's line server",
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

/// A TCP server on 127.0.0.1 (any free port) that accepts one connection, writes `lines`
/// (each followed by `\n`) and closes it. Join the handle to learn that it did.
pub struct LineServer {
    pub port: u16,
    handle: JoinHandle<std::io::Result<()>>,
}

impl LineServer {
    pub fn start<L: Into<Vec<u8>>>(lines: impl IntoIterator<Item = L>) -> Self {
        let lines: Vec<Vec<u8>> = lines.into_iter().map(Into::into).collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("cannot bind a local TCP port");
        let port = listener.local_addr().expect("a bound listener has an address").port();
        let handle = std::thread::spawn(move || {
            let mut conn = accept_within(&listener, RUN_TIMEOUT)?;
            let mut out = std::io::BufWriter::new(&mut conn);
            for line in &lines {
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            drop(out);
            conn.shutdown(std::net::Shutdown::Write)
        });
        Self { port, handle }
    }

    /// Wait for the server to have written everything and closed the connection.
    pub fn join(self) {
        match self.handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the test's line server failed: {e}"),
            Err(_) => panic!("the test's line server panicked"),
        }
    }
}

/// Clicks of users `a` and `b` with event times (`ts`), the input of the process-function
/// tests.
pub const CLICKS: &str = r#"{"user":"a","ts":1000}
{"user":"b","ts":2000}
{"user":"a","ts":3000}
{"user":"a","ts":50000}
{"user":"b","ts":90000}
"#;

/// Five clicks of `a` and `b`, the third of which carries `boom` (which the hostile process
/// functions fail on).
pub const CLICKS_WITH_BOOM: &str = r#"{"user":"a"}
{"user":"b"}
{"user":"a","note":"boom"}
{"user":"a"}
{"user":"b"}
"#;

/// A job in `dir` over `input` (JSON lines): optional event time from `ts`, key by `user`,
/// then the process function `function` of the plugin in `plugins/<plugin>`; output in
/// out.jsonl, dead letters in dead.jsonl. `extra` adds top-level keys (e.g. `state_dir`).
pub fn process_job(
    dir: &Path,
    plugin: &str,
    input: &str,
    batch_size: usize,
    timestamps: bool,
    function: &str,
    extra: &str,
) -> PathBuf {
    write_file(dir, "input.jsonl", input);
    let ts = if timestamps { "  - assign_timestamps: {field: ts, max_out_of_orderness: 0 s}\n" } else { "" };
    write_job(
        dir,
        &format!(
            "name: process\nparallelism: 1\nbatch_size: {batch_size}\nplugins:\n  p: {}\n{extra}\
             source: {{connector: file, path: input.jsonl, format: json}}\n\
             pipeline:\n{ts}  - key_by: user\n  - process: p.{function}\n\
             sink: {{connector: file, path: out.jsonl, format: json}}\n\
             dead_letter: {{connector: file, path: dead.jsonl}}\n",
            plugin_yaml(plugin),
        ),
    )
}

/// `(key, count)` of each `{key, count}` output row.
pub fn key_counts(rows: &[serde_json::Value]) -> Vec<(String, u64)> {
    rows.iter().map(|r| (r["key"].as_str().unwrap().to_string(), r["count"].as_u64().unwrap())).collect()
}

/// `GET /metrics` of the job running with its run folder in `run_dir` (`None` until its
/// API is up).
pub fn metrics(run_dir: &Path, job: &str) -> Option<String> {
    let info = std::fs::read(run_dir.join(format!("{}.json", weir::control::job_id_from_name(job)))).ok()?;
    let info: serde_json::Value = serde_json::from_slice(&info).ok()?;
    let address = info["address"].as_str()?;
    let mut conn = std::net::TcpStream::connect(address).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(conn, "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n").ok()?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).ok()?;
    Some(reply)
}
