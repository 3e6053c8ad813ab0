//! What the job-level benches share: running a child process and measuring its peak memory
//! exactly, and reading sizes from the environment.
//!
//! Each bench includes it with `mod common;` (benches are separate crates).

use std::error::Error;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

pub type BenchResult<T> = Result<T, Box<dyn Error>>;

/// What a child process left behind.
pub struct Finished {
    pub stdout: String,
    pub stderr: String,
    /// Wall-clock time from spawn to exit, in ms.
    pub process_ms: f64,
    /// The child's peak resident memory, from `wait4`'s `ru_maxrss`.
    pub peak_rss_kib: u64,
}

/// Runs `command` to its end with stdout and stderr captured, reaps it with `wait4` (which
/// reports the child's peak RSS exactly, not sampled) and fails unless it exited with 0.
pub fn run_measured(command: &mut Command) -> BenchResult<Finished> {
    let started = Instant::now();
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let pid = libc::pid_t::try_from(child.id())?;
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child, not reaped yet (`child` is never waited on and
        // dropping a `Child` does not wait), and both out-pointers are valid for writes.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("cannot wait for {command:?} (pid {pid}): {err}").into());
        }
    }
    let process_ms = started.elapsed().as_secs_f64() * 1e3;
    drop(child);
    let stdout = stdout.join().map_err(|_| "the stdout reader panicked")?;
    let stderr = stderr.join().map_err(|_| "the stderr reader panicked")?;
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("{command:?} failed (wait status {status}):\n{stderr}").into());
    }
    // Linux reports ru_maxrss in KiB, macOS in bytes.
    let max_rss = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    let peak_rss_kib = if cfg!(target_os = "macos") { max_rss / 1024 } else { max_rss };
    Ok(Finished { stdout, stderr, process_ms, peak_rss_kib })
}

/// A positive whole number from the environment (`_` allowed as a separator), or `default`.
pub fn env_count(name: &str, default: u64) -> BenchResult<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name}={v} is not a positive whole number").into()),
        Err(_) => Ok(default),
    }
}

pub fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// The figures (the last stdout line, JSON) of a bench child that ran a job of `events`
/// events, checked: every event in and out, no dead letters.
#[allow(dead_code)] // Only the benches whose children run a whole job use it.
pub fn child_figures(done: &Finished, events: u64, what: &str) -> BenchResult<serde_json::Value> {
    let line = done.stdout.lines().last().ok_or_else(|| format!("no figures from the child:\n{}", done.stderr))?;
    let figures: serde_json::Value = serde_json::from_str(line)?;
    let count = |f: &str| figures[f].as_u64().ok_or_else(|| format!("no `{f}` in {line}"));
    let (records_in, records_out, dead) = (count("records_in")?, count("records_out")?, count("dead_letters")?);
    if records_in != events || records_out != events || dead != 0 {
        return Err(format!(
            "{what}: {records_in} events in, {records_out} out (expected {events} each), {dead} dead letters"
        )
        .into());
    }
    Ok(figures)
}
