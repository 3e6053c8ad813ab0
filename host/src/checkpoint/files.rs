//! Checkpoint files: `chk-<id>.meta` in the checkpoint directory, one per complete
//! checkpoint, each `WEIRCHK1 | xxh3-64 of the body (LE) | body (MessagePack)`. A file is
//! written to a temporary name, synced, and renamed, so a crash leaves either no file or a
//! whole one; the checksum catches a file damaged afterwards (or truncated by a full disk).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::SourcePosition;

const MAGIC: &[u8; 8] = b"WEIRCHK1";
pub(super) const HEADER: usize = MAGIC.len() + 8;

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("checkpoint directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint file {path} is damaged ({detail}); a job resumes from the newest checkpoint before it")]
    Damaged { path: PathBuf, detail: String },
    #[error("checkpoint {id} cannot be restored: {detail}")]
    Mismatch { id: u64, detail: String },
    #[error(
        "the sink committed checkpoint {committed} last, but {dir} no longer holds it; resume from a savepoint, or delete the checkpoints to start afresh"
    )]
    SinkAhead { committed: u64, dir: PathBuf },
    #[error(
        "checkpoint {id} holds state of {unmatched}, which no step of this job has (its steps: {steps}); give the step that should take the state over that uid (`uid:` in the job file, `.uid()` in the builder), or run with --allow-non-restored-state to start without it"
    )]
    NonRestoredState { id: u64, unmatched: String, steps: String },
    #[error(transparent)]
    State(#[from] crate::state::StateError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io { path: path.to_path_buf(), source }
}

/// The in-memory state of one operator instance at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorSnapshot {
    /// The step's uid (before uids: its place in the job, `stage/step`).
    pub step: String,
    pub instance: u32,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A step of the job at a checkpoint: its uid (before uids: its place, `stage/step`) and its
/// name, which names the plugin and function it ran (e.g. `map[0] upper@0.1.0.upper`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginVersion {
    pub step: String,
    pub name: String,
}

/// A complete checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub id: u64,
    pub job: String,
    pub completed_at_ms: i64,
    /// The job's input had ended: this is the last checkpoint of a finished run.
    pub finished: bool,
    /// Position of each source (the main source first, then broadcast inputs by step).
    pub sources: Vec<SourcePosition>,
    pub operators: Vec<OperatorSnapshot>,
    pub plugins: Vec<PluginVersion>,
    /// Time from the request to completion.
    pub duration_ms: u64,
}

/// One line of `weir checkpoints`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointSummary {
    pub id: u64,
    pub path: PathBuf,
    pub bytes: u64,
    /// The checkpoint, or why it cannot be used.
    pub meta: Result<CheckpointMeta, String>,
}

pub(super) fn file_name(id: u64) -> String {
    format!("chk-{id:010}.meta")
}

fn id_of(name: &str) -> Option<u64> {
    name.strip_prefix("chk-")?.strip_suffix(".meta")?.parse().ok()
}

/// Writes `meta` durably as `dir/chk-<id>.meta`.
pub fn write(dir: &Path, meta: &CheckpointMeta) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let body = rmp_serde::to_vec_named(meta)
        .map_err(|e| CheckpointError::Io { path: dir.to_path_buf(), source: std::io::Error::other(e.to_string()) })?;
    let path = dir.join(file_name(meta.id));
    write_checked(&path, MAGIC, &body)?;
    sync_dir(dir)?;
    Ok(path)
}

/// Writes `magic | xxh3-64 of body (LE) | body` to `path`: into a temporary file, synced,
/// then renamed, so `path` is either absent or whole. Checkpoints and savepoints use it.
pub(super) fn write_checked(path: &Path, magic: &[u8; 8], body: &[u8]) -> Result<(), CheckpointError> {
    let name = path.file_name().map_or_else(Default::default, |n| n.to_string_lossy().into_owned());
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(magic).map_err(io(&tmp))?;
    file.write_all(&xxhash_rust::xxh3::xxh3_64(body).to_le_bytes()).map_err(io(&tmp))?;
    file.write_all(body).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// The body of a file [`write_checked`] wrote with `magic`; `Damaged` if it is not one
/// (`what`: what it should be) or its checksum does not match.
pub(super) fn read_checked(path: &Path, magic: &[u8; 8], what: &str) -> Result<Vec<u8>, CheckpointError> {
    let mut bytes = std::fs::read(path).map_err(io(path))?;
    let damaged = |detail: String| CheckpointError::Damaged { path: path.to_path_buf(), detail };
    if bytes.len() < HEADER || &bytes[..magic.len()] != magic {
        return Err(damaged(format!("not {what}, or truncated")));
    }
    let sum = u64::from_le_bytes(bytes[magic.len()..HEADER].try_into().expect("8 bytes"));
    if xxhash_rust::xxh3::xxh3_64(&bytes[HEADER..]) != sum {
        return Err(damaged("checksum mismatch".into()));
    }
    bytes.drain(..HEADER);
    Ok(bytes)
}

/// Makes renames and deletions in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), CheckpointError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Reads and checks one checkpoint file.
pub fn read(path: &Path) -> Result<CheckpointMeta, CheckpointError> {
    let body = read_checked(path, MAGIC, "a Weir checkpoint file")?;
    rmp_serde::from_slice(&body)
        .map_err(|e| CheckpointError::Damaged { path: path.to_path_buf(), detail: format!("cannot decode: {e}") })
}

/// The checkpoint files of `dir`, newest first (none if `dir` does not exist).
fn files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, CheckpointError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CheckpointError::Io { path: dir.to_path_buf(), source: e }),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        if let Some(id) = id_of(&entry.file_name().to_string_lossy()) {
            found.push((id, entry.path()));
        }
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    Ok(found)
}

/// Every checkpoint of `dir`, newest first, with what is wrong with damaged ones.
pub fn list(dir: &Path) -> Result<Vec<CheckpointSummary>, CheckpointError> {
    files(dir)?
        .into_iter()
        .map(|(id, path)| {
            let bytes = std::fs::metadata(&path).map_err(io(&path))?.len();
            let meta = read(&path).map_err(|e| e.to_string());
            Ok(CheckpointSummary { id, path, bytes, meta })
        })
        .collect()
}

/// The newest checkpoint of `dir` that reads back whole. Damaged ones are skipped with a
/// warning naming them.
pub fn read_latest(dir: &Path) -> Result<Option<CheckpointMeta>, CheckpointError> {
    read_at_most(dir, u64::MAX)
}

/// The newest checkpoint of `dir` with an id of at most `max` that reads back whole.
pub fn read_at_most(dir: &Path, max: u64) -> Result<Option<CheckpointMeta>, CheckpointError> {
    for (id, path) in files(dir)?.into_iter().filter(|(id, _)| *id <= max) {
        match read(&path) {
            Ok(meta) if meta.id == id => return Ok(Some(meta)),
            Ok(meta) => {
                tracing::warn!(path = %path.display(), inner = meta.id, "checkpoint file names another id; skipped")
            }
            Err(e) => {
                tracing::warn!(checkpoint = id, error = %e, "damaged checkpoint skipped; using the one before it")
            }
        }
    }
    Ok(None)
}

/// Deletes all but the newest `keep` checkpoint files.
pub fn retain(dir: &Path, keep: usize) -> Result<(), CheckpointError> {
    for (_, path) in files(dir)?.into_iter().skip(keep.max(1)) {
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    Ok(())
}

/// Deletes every checkpoint file of `dir` (a job starting afresh).
pub fn clear(dir: &Path) -> Result<(), CheckpointError> {
    discard_after(dir, 0)
}

/// Deletes the checkpoint files of `dir` newer than checkpoint `id` (a job resuming from an
/// older checkpoint than its latest, because its sink did not commit the latest).
pub fn discard_after(dir: &Path, id: u64) -> Result<(), CheckpointError> {
    for (_, path) in files(dir)?.into_iter().filter(|(n, _)| *n > id) {
        std::fs::remove_file(&path).map_err(io(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u64) -> CheckpointMeta {
        CheckpointMeta {
            id,
            job: "j".into(),
            completed_at_ms: 5,
            finished: false,
            sources: vec![SourcePosition::records(7)],
            operators: vec![OperatorSnapshot { step: "1/0".into(), instance: 1, data: vec![1, 2, 3] }],
            plugins: Vec::new(),
            duration_ms: 3,
        }
    }

    #[test]
    fn a_checkpoint_reads_back_and_damage_falls_back_to_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &meta(1)).unwrap();
        let second = write(dir.path(), &meta(2)).unwrap();
        assert_eq!(read_latest(dir.path()).unwrap(), Some(meta(2)));

        let mut bytes = std::fs::read(&second).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&second, &bytes).unwrap();
        assert!(matches!(read(&second), Err(CheckpointError::Damaged { .. })));
        assert_eq!(read_latest(dir.path()).unwrap(), Some(meta(1)));

        std::fs::write(&second, &bytes[..10]).unwrap();
        let listed = list(dir.path()).unwrap();
        assert_eq!(listed.len(), 2);
        assert!(listed[0].meta.as_ref().unwrap_err().contains("truncated"), "{:?}", listed[0].meta);
        retain(dir.path(), 1).unwrap();
        assert_eq!(list(dir.path()).unwrap().len(), 1);
    }
}
