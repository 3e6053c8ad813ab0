//! The run folder: how the CLI finds a running job's API and token.
//!
//! `weir run` claims `<job-id>.json` with an exclusive create, so two runs of the same job
//! get `first-program` and `first-program-2` rather than one overwriting the other; a file
//! left by a job that died without cleaning up (its pid is gone) is taken over. The token
//! file is created afresh with mode 0600 (readable by its owner only), and the folder, when
//! this creates it, with 0700. Only names checked by [`validate_job_id`] become file names.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::{job_id_from_name, validate_job_id};

/// Overrides where run files live.
pub const RUN_DIR_ENV: &str = "WEIR_RUN_DIR";

/// How many runs of one job name may be running at once (`id`, `id-2`, ... `id-100`).
const MAX_RUNS_PER_NAME: usize = 100;

/// `$WEIR_RUN_DIR`, else `$XDG_RUNTIME_DIR/weir`, else `~/.cache/weir/run`.
pub fn default_run_dir() -> PathBuf {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var(RUN_DIR_ENV) {
        return dir;
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        return dir.join("weir");
    }
    match var("HOME") {
        Some(home) => home.join(".cache").join("weir").join("run"),
        None => std::env::temp_dir().join("weir-run"),
    }
}

/// What `<job-id>.json` says about a running job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub id: String,
    /// The job's name as its job file gives it.
    pub name: String,
    pub pid: u32,
    /// The control API; `None` while the job is starting.
    pub address: Option<SocketAddr>,
    pub started_at_ms: i64,
}

#[derive(Debug, Error)]
pub enum RunDirError {
    #[error("cannot use the run folder {dir}: {source} (set {RUN_DIR_ENV} to a folder you can write)")]
    Io { dir: PathBuf, source: std::io::Error },
    #[error("{MAX_RUNS_PER_NAME} jobs with the id `{base}` are running already; stop one or rename the job")]
    Taken { base: String },
    #[error("cannot generate a token: {0}")]
    Random(String),
}

/// The run files of the job this process runs; removed on drop.
#[derive(Debug)]
pub struct RunFiles {
    dir: PathBuf,
    info: RunInfo,
    token: String,
}

impl RunFiles {
    /// Claim an id for the job `name` in `dir` and write its token.
    pub fn claim(dir: &Path, name: &str) -> Result<Self, RunDirError> {
        let io = |source| RunDirError::Io { dir: dir.to_path_buf(), source };
        create_private_dir(dir).map_err(io)?;
        let base = job_id_from_name(name);
        let mut claimed = None;
        let mut n = 1;
        while n <= MAX_RUNS_PER_NAME {
            let id = if n == 1 { base.clone() } else { format!("{base}-{n}") };
            if validate_job_id(&id).is_err() {
                break;
            }
            let info = RunInfo {
                id: id.clone(),
                name: name.to_string(),
                pid: std::process::id(),
                address: None,
                started_at_ms: crate::time::now_ms(),
            };
            let path = info_path(dir, &id);
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    file.write_all(&serde_json::to_vec_pretty(&info).unwrap_or_default()).map_err(io)?;
                    claimed = Some(info);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if is_stale(&path) {
                        tracing::info!(path = %path.display(), "removing the run file of a job that is gone");
                        let _ = std::fs::remove_file(&path);
                        continue; // the same id again
                    }
                }
                Err(e) => return Err(io(e)),
            }
            n += 1;
        }
        let info = claimed.ok_or(RunDirError::Taken { base })?;
        let mut files = RunFiles { dir: dir.to_path_buf(), info, token: String::new() };
        files.token = new_token()?;
        write_private(&token_path(dir, &files.info.id), files.token.as_bytes()).map_err(io)?;
        Ok(files)
    }

    pub fn id(&self) -> &str {
        &self.info.id
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Say where the API listens: rewrites `<id>.json` atomically (write, then rename), so
    /// a reader never sees half a file.
    pub fn publish(&mut self, address: SocketAddr) -> Result<(), RunDirError> {
        self.info.address = Some(address);
        let io = |source| RunDirError::Io { dir: self.dir.clone(), source };
        let tmp = self.dir.join(format!(".{}.json.tmp", self.info.id));
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.info).unwrap_or_default()).map_err(io)?;
        std::fs::rename(&tmp, info_path(&self.dir, &self.info.id)).map_err(io)
    }

    /// Remove the run files now (also done on drop).
    pub fn remove(&self) {
        for path in [info_path(&self.dir, &self.info.id), token_path(&self.dir, &self.info.id)] {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove a run file");
            }
        }
    }
}

impl Drop for RunFiles {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `dir/<id>.json`, for an id that [`validate_job_id`] accepted.
fn info_path(dir: &Path, id: &str) -> PathBuf {
    debug_assert!(validate_job_id(id).is_ok());
    dir.join(format!("{id}.json"))
}

fn token_path(dir: &Path, id: &str) -> PathBuf {
    debug_assert!(validate_job_id(id).is_ok());
    dir.join(format!("{id}.token"))
}

/// The jobs with run files in `dir`, by id.
pub fn list(dir: &Path) -> Vec<RunInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut jobs: Vec<RunInfo> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
        .filter(|id| validate_job_id(id).is_ok())
        .filter_map(|id| read_info(dir, &id).ok())
        .collect();
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    jobs
}

/// The run file of the job `id` (checked first: it becomes a file name).
pub fn read_info(dir: &Path, id: &str) -> std::io::Result<RunInfo> {
    validate_job_id(id).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let text = std::fs::read(info_path(dir, id))?;
    serde_json::from_slice(&text).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The token of the job `id`.
pub fn read_token(dir: &Path, id: &str) -> std::io::Result<String> {
    validate_job_id(id).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    Ok(std::fs::read_to_string(token_path(dir, id))?.trim().to_string())
}

/// Whether the process `pid` is gone (as far as this platform can tell).
pub fn pid_is_gone(pid: u32) -> bool {
    if cfg!(target_os = "linux") { !Path::new("/proc").join(pid.to_string()).exists() } else { false }
}

/// A run file whose job is gone. A file that does not parse is not stale: its job may be
/// writing it right now.
fn is_stale(path: &Path) -> bool {
    let Ok(text) = std::fs::read(path) else { return false };
    let Ok(info) = serde_json::from_slice::<RunInfo>(&text) else { return false };
    info.pid != std::process::id() && pid_is_gone(info.pid)
}

/// 32 random bytes, hex.
fn new_token() -> Result<String, RunDirError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| RunDirError::Random(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Create `path` afresh (an old file, with whatever mode it had, is removed first),
/// readable and writable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_of_a_job_gets_its_own_id_and_files_go_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunFiles::claim(dir.path(), "My Job").unwrap();
        let b = RunFiles::claim(dir.path(), "My Job").unwrap();
        assert_eq!((a.id(), b.id()), ("my-job", "my-job-2"));
        assert_ne!(a.token(), b.token());
        assert_eq!(a.token().len(), 64);
        assert_eq!(read_token(dir.path(), "my-job").unwrap(), a.token());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("my-job.token")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(list(dir.path()).len(), 2);
        drop(a);
        assert!(!dir.path().join("my-job.json").exists() && !dir.path().join("my-job.token").exists());
        assert_eq!(list(dir.path()).iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), ["my-job-2"]);
    }

    #[test]
    fn the_run_file_of_a_dead_job_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        // A pid beyond Linux's pid_max: no such process.
        let dead = RunInfo { id: "j".into(), name: "j".into(), pid: 4_194_304 + 7, address: None, started_at_ms: 0 };
        std::fs::write(dir.path().join("j.json"), serde_json::to_vec(&dead).unwrap()).unwrap();
        let files = RunFiles::claim(dir.path(), "j").unwrap();
        let expected = if cfg!(target_os = "linux") { "j" } else { "j-2" };
        assert_eq!(files.id(), expected);
    }

    #[test]
    fn ids_are_checked_before_they_become_paths() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_info(dir.path(), "../x").unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(read_token(dir.path(), "a/b").unwrap_err().kind(), std::io::ErrorKind::InvalidInput);
    }
}
