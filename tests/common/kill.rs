//! Killing a `weir run` with SIGKILL at random moments and starting it again: the harness
//! of the exactly-once tests (the job's checkpoints are in `ckpt` under the test folder).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::weir;

/// The ids of the complete checkpoints in `dir/ckpt`, oldest first.
pub fn checkpoint_ids(dir: &Path) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(dir.join("ckpt")) else { return Vec::new() };
    let mut ids: Vec<u64> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_prefix("chk-")?.strip_suffix(".meta")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// A small seeded generator for the kill schedule (xorshift), so a failing schedule replays.
pub struct Schedule(pub u64);

impl Schedule {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// `weir run JOB --no-api` with no input; set its output and spawn it.
pub fn run_command(job: &Path) -> Command {
    let mut command = weir();
    command.arg("run").arg(job).arg("--no-api").stdin(Stdio::null());
    command
}

/// `weir run JOB` started quietly.
pub fn spawn(job: &Path) -> Child {
    run_command(job).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("weir starts")
}

/// Starts the job and returns once it completed `n` checkpoints (or after 30 s).
pub fn run_until_checkpoints(dir: &Path, job: &Path, n: usize) -> Child {
    let child = spawn(job);
    let started = Instant::now();
    while checkpoint_ids(dir).len() < n && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(5));
    }
    child
}

/// Runs the job and kills it with SIGKILL `kills` times at seeded random moments: some
/// soon after it starts (during recovery), most after it completed a new checkpoint plus a
/// random delay. Returns the number of kills that hit a running job.
pub fn kill_repeatedly(dir: &Path, job: &Path, kills: usize, seed: u64) -> usize {
    let mut schedule = Schedule(seed | 1);
    let mut landed = 0;
    for _ in 0..kills {
        let before = checkpoint_ids(dir).last().copied().unwrap_or(0);
        let mut child = spawn(job);
        let started = Instant::now();
        if schedule.below(4) == 0 {
            std::thread::sleep(Duration::from_millis(10 + schedule.below(200)));
        } else {
            // Wait for a checkpoint this run made, then a little more.
            while checkpoint_ids(dir).last().copied().unwrap_or(0) <= before
                && started.elapsed() < Duration::from_secs(20)
                && child.try_wait().expect("wait").is_none()
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(schedule.below(250)));
        }
        if child.try_wait().expect("wait").is_some() {
            // It finished before the kill: nothing left to kill.
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        landed += 1;
    }
    landed
}

/// The committed output of a job writing the file sink to `dir/out`: every line of its
/// `part-*` files (parts in progress left out), sorted.
pub fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir.join("out")).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("part-") {
            lines.extend(super::read_file(&entry.path()).lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}
