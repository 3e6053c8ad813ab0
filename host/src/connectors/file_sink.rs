//! The file sink: one record per line.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde_norway::Value;

use super::{LineFormat, Sink, SinkSpec, line_format, write_line};
use crate::config::{Ctx, JobError, get, join};
use crate::record::Batch;
use crate::task::{ConnectorError, OpenedSink, SinkContext, SinkWriter};

/// `sink: {connector: file, path, format}`: one file, or in a checkpointed job a directory
/// of part files committed per checkpoint (exactly-once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkSpec {
    pub path: PathBuf,
    pub format: LineFormat,
}

impl Sink for FileSinkSpec {
    fn name(&self) -> &'static str {
        "sink file"
    }

    fn open(&self) -> Result<Box<dyn SinkWriter>, ConnectorError> {
        Ok(Box::new(FileSink::create(&self.path, self.format)?))
    }

    fn open_for_job(&self, ctx: &SinkContext) -> Result<OpenedSink, ConnectorError> {
        let Some(first_epoch) = ctx.first_epoch else {
            return Ok(OpenedSink { writer: self.open()?, committer: None });
        };
        let writer = Box::new(PartFileSink::open(&self.path, self.format, first_epoch)?);
        let dir = self.path.clone();
        let committer = move |id| commit_parts(&dir, id).map(|_| ()).map_err(|e| format!("{}: {e}", dir.display()));
        Ok(OpenedSink { writer, committer: Some(Box::new(committer)) })
    }

    /// The parts the restored checkpoint covers are committed, later ones deleted (all of
    /// them when starting afresh).
    fn recover(&self, restored: u64) -> Result<(), ConnectorError> {
        recover_parts(&self.path, restored).map_err(|source| ConnectorError::Io {
            what: "cannot recover the output parts in",
            path: self.path.display().to_string(),
            source,
        })
    }
}

/// `sink: {connector: file, path, format}`.
pub(super) fn parse_sink(ctx: &Ctx, v: &Value, key: &str) -> Result<SinkSpec, JobError> {
    let entries = ctx.map(v, key, &["connector", "path", "format"])?;
    let path = get(&entries, "path").ok_or_else(|| ctx.err(key, "the file connector needs `path`, the output file"))?;
    let path = ctx.path(&ctx.string(path, &join(key, "path"))?);
    let format = line_format(ctx, get(&entries, "format"), &join(key, "format"))?;
    Ok(SinkSpec::file(path, format))
}

struct FileSink {
    path: PathBuf,
    format: LineFormat,
    out: BufWriter<File>,
}

impl FileSink {
    pub fn create(path: &Path, format: LineFormat) -> Result<Self, ConnectorError> {
        let err = |source| ConnectorError::Io {
            what: "cannot create the output file",
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let file = File::create(path).map_err(err)?;
        Ok(Self { path: path.to_path_buf(), format, out: BufWriter::new(file) })
    }

    fn io(&self, source: std::io::Error) -> ConnectorError {
        ConnectorError::Io { what: "cannot write", path: self.path.display().to_string(), source }
    }
}

impl SinkWriter for FileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        for (value, _) in batch.iter() {
            if let Err(e) = write_line(&mut self.out, value, self.format) {
                return Err(self.io(e));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.out.flush().map_err(|e| self.io(e))?;
        self.out.get_ref().sync_all().map_err(|e| self.io(e))
    }
}

/// The file sink of a checkpointed job (exactly-once, like Flink's `FileSink`): `path` is a
/// directory of part files, one per checkpoint epoch. What comes in between barriers `n - 1`
/// and `n` goes to `.part-<n>.inprogress`; barrier `n` closes and syncs it, and when
/// checkpoint `n` is complete the coordinator renames it `part-<n>` ([`commit_parts`]).
/// Readers take the `part-*` files in name order.
pub struct PartFileSink {
    dir: PathBuf,
    format: LineFormat,
    epoch: u64,
    out: Option<BufWriter<File>>,
}

impl PartFileSink {
    /// Part files in `dir`, the first for checkpoint `first_epoch`.
    pub fn open(dir: &Path, format: LineFormat, first_epoch: u64) -> Result<Self, ConnectorError> {
        std::fs::create_dir_all(dir).map_err(|source| ConnectorError::Io {
            what: "cannot create the output directory",
            path: dir.display().to_string(),
            source,
        })?;
        Ok(Self { dir: dir.to_path_buf(), format, epoch: first_epoch, out: None })
    }

    fn io(&self, source: std::io::Error) -> ConnectorError {
        ConnectorError::Io {
            what: "cannot write",
            path: in_progress(&self.dir, self.epoch).display().to_string(),
            source,
        }
    }

    /// Closes and syncs the current part, if any.
    fn close(&mut self) -> Result<(), ConnectorError> {
        if let Some(mut out) = self.out.take() {
            out.flush().map_err(|e| self.io(e))?;
            out.get_ref().sync_all().map_err(|e| self.io(e))?;
        }
        Ok(())
    }
}

impl SinkWriter for PartFileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), ConnectorError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.out.is_none() {
            let file = File::create(in_progress(&self.dir, self.epoch)).map_err(|e| self.io(e))?;
            self.out = Some(BufWriter::new(file));
        }
        let out = self.out.as_mut().expect("opened above");
        for (value, _) in batch.iter() {
            if let Err(e) = write_line(out, value, self.format) {
                return Err(self.io(e));
            }
        }
        Ok(())
    }

    fn barrier(&mut self, id: u64) -> Result<(), ConnectorError> {
        self.close()?;
        self.epoch = id + 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.close()
    }
}

fn in_progress(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!(".part-{epoch:010}.inprogress"))
}

fn committed(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("part-{epoch:010}"))
}

/// The epoch of a part file's name, and whether it is still in progress.
fn part_epoch(name: &str) -> Option<(u64, bool)> {
    if let Some(rest) = name.strip_prefix(".part-").and_then(|r| r.strip_suffix(".inprogress")) {
        return rest.parse().ok().map(|e| (e, true));
    }
    name.strip_prefix("part-")?.parse().ok().map(|e| (e, false))
}

fn parts(dir: &Path) -> std::io::Result<Vec<(u64, bool, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if let Some((epoch, open)) = part_epoch(&entry.file_name().to_string_lossy()) {
            found.push((epoch, open, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Checkpoint `up_to` is complete: its part files and earlier ones become visible.
fn commit_parts(dir: &Path, up_to: u64) -> std::io::Result<usize> {
    let mut n = 0;
    for (epoch, _, path) in parts(dir)?.into_iter().filter(|(e, open, _)| *open && *e <= up_to) {
        std::fs::rename(&path, committed(dir, epoch))?;
        n += 1;
    }
    if n > 0 {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(n)
}

/// A job resumes from checkpoint `restored`: parts it covers are committed (a crash may have
/// come between the checkpoint and the rename); later ones are deleted, since the records
/// in them will come again. `restored` 0 (a job starting afresh) deletes every part.
fn recover_parts(dir: &Path, restored: u64) -> std::io::Result<()> {
    commit_parts(dir, restored)?;
    for (_, open, path) in parts(dir)?.into_iter().filter(|(e, ..)| *e > restored) {
        if !open && restored > 0 {
            tracing::warn!(part = %path.display(), restored, "deleting output committed after the checkpoint the job resumes from (a newer one was damaged); its records come again");
        }
        std::fs::remove_file(&path)?;
    }
    Ok(())
}
