//! Savepoints (Flink's): a portable, self-contained copy of a job's latest complete
//! checkpoint, to start the job (or a changed version of it: another parallelism, newer
//! plugins) from it later with `weir run --from-savepoint`.
//!
//! A savepoint file is `WEIRSVP1 | xxh3-64 of the body (LE) | body (MessagePack)`: the
//! checkpoint's metadata (sources' positions, in-memory operator state) and every entry of
//! the keyed state as of that checkpoint, tree by tree. Keyed entries start with their key
//! group, so a job at any parallelism takes them as they are.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::CheckpointConfig;
use super::files::{self, CheckpointError, CheckpointMeta};
use crate::state::{ExportedTree, StateConfig, StateStore};

const MAGIC: &[u8; 8] = b"WEIRSVP1";

#[derive(Serialize, Deserialize)]
struct Savepoint {
    meta: CheckpointMeta,
    trees: Vec<SavedTree>,
}

#[derive(Serialize, Deserialize)]
struct SavedTree {
    name: String,
    entries: Vec<(ByteBuf, ByteBuf)>,
}

/// What a savepoint holds, for the CLI to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavepointInfo {
    pub path: PathBuf,
    pub checkpoint: u64,
    pub job: String,
    pub keyed_entries: usize,
    pub bytes: u64,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Io { path: path.to_path_buf(), source: std::io::Error::other(e.to_string()) }
}

/// Writes a savepoint of the latest complete checkpoint in `config.dir` (keyed state from
/// `state_dir`) to `out`. The job may be running: its state is read from a copy.
pub fn take(config: &CheckpointConfig, state_dir: &Path, out: &Path) -> Result<SavepointInfo, CheckpointError> {
    let meta = files::read_latest(&config.dir)?.ok_or_else(|| CheckpointError::Mismatch {
        id: 0,
        detail: format!("no complete checkpoint in {} to take a savepoint of; run the job first", config.dir.display()),
    })?;
    let mut trees = Vec::new();
    if state_dir.is_dir() {
        let copy = tempfile::tempdir().map_err(|e| io_error(state_dir, e))?;
        crate::state::copy_database(state_dir, copy.path()).map_err(|e| io_error(state_dir, e))?;
        let store = StateStore::open_at(copy.path(), StateConfig::default(), Some(meta.id))?;
        store.apply_checkpoints(meta.id)?;
        for (name, entries) in store.export()? {
            let entries = entries.into_iter().map(|(k, v)| (ByteBuf::from(k), ByteBuf::from(v))).collect();
            trees.push(SavedTree { name, entries });
        }
    }
    let keyed_entries = trees.iter().map(|t| t.entries.len()).sum();
    let savepoint = Savepoint { meta, trees };
    let body = rmp_serde::to_vec_named(&savepoint).map_err(|e| io_error(out, e))?;
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    files::write_checked(out, MAGIC, &body)?;
    Ok(SavepointInfo {
        path: out.to_path_buf(),
        checkpoint: savepoint.meta.id,
        job: savepoint.meta.job,
        keyed_entries,
        bytes: (files::HEADER + body.len()) as u64,
    })
}

fn read(path: &Path) -> Result<Savepoint, CheckpointError> {
    let body = files::read_checked(path, MAGIC, "a Weir savepoint")?;
    rmp_serde::from_slice(&body)
        .map_err(|e| CheckpointError::Damaged { path: path.to_path_buf(), detail: format!("cannot decode: {e}") })
}

/// Makes `config.dir` and `state_dir` hold the savepoint `file` as their only checkpoint,
/// so that the job's next run resumes from it. Returns the checkpoint's id.
pub fn restore(file: &Path, config: &CheckpointConfig, state_dir: &Path) -> Result<SavepointInfo, CheckpointError> {
    let savepoint = read(file)?;
    files::clear(&config.dir)?;
    if state_dir.exists() {
        std::fs::remove_dir_all(state_dir).map_err(|e| io_error(state_dir, e))?;
    }
    let trees: Vec<ExportedTree> = savepoint
        .trees
        .into_iter()
        .map(|t| (t.name, t.entries.into_iter().map(|(k, v)| (k.into_vec(), v.into_vec())).collect()))
        .collect();
    let keyed_entries = trees.iter().map(|(_, e)| e.len()).sum();
    {
        let store = StateStore::open(state_dir, StateConfig::default())?;
        store.import(&trees)?;
    }
    let mut meta = savepoint.meta;
    meta.finished = false;
    files::write(&config.dir, &meta)?;
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    Ok(SavepointInfo { path: file.to_path_buf(), checkpoint: meta.id, job: meta.job, keyed_entries, bytes })
}
