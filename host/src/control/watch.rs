//! `weir run --watch DIR`: a component saved into DIR is deployed into the running job.
//!
//! Which operator: every operator whose current plugin has the same name (as the component
//! describes itself, e.g. `versioned`) as the saved one, so rebuilding a plugin updates
//! each step that runs it. If no operator runs a plugin of that name, the file's stem is
//! taken as an operator name or a part only one contains (`tag.wasm` -> the step with `tag`
//! in its name). Each deploy is validated as through the API.
//!
//! A half-written file is never loaded: a file is only read once no change was seen for
//! [`SETTLE`] and its size and modification time stayed the same over one more [`SETTLE`];
//! it must start with `\0asm` and load (compile, describe) before anything is swapped. A
//! file that fails is reported and tried again at its next change. Editors and build tools
//! that write a temporary file and rename it over the target (atomic) work best; hidden
//! files (`.name.wasm.tmp`) and other extensions are ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher as _};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::env::JobHandle;

/// How long a file must be left alone before it is looked at, and again before it is read.
pub const SETTLE: Duration = Duration::from_millis(300);

#[derive(Debug, Error)]
pub enum WatchError {
    #[error("cannot watch {dir}: it is not a folder")]
    NotAFolder { dir: PathBuf },
    #[error("cannot watch {dir}: {source}")]
    Notify { dir: PathBuf, source: notify::Error },
    #[error("cannot start the folder watcher: {0}")]
    Thread(std::io::Error),
}

/// Watches a folder while the job runs; stops on drop.
pub struct FolderWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for FolderWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start deploying the components saved into `dir` into `job`.
pub fn watch(dir: &Path, job: JobHandle) -> Result<FolderWatch, WatchError> {
    if !dir.is_dir() {
        return Err(WatchError::NotAFolder { dir: dir.to_path_buf() });
    }
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let (tx, rx) = channel();
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = tx.send(event);
    })
    .map_err(|source| WatchError::Notify { dir: dir.clone(), source })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError::Notify { dir: dir.clone(), source })?;
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    tracing::info!(dir = %dir.display(), "watching for plugin components");
    let thread = std::thread::Builder::new()
        .name("weir-watch".into())
        .spawn(move || {
            let _watcher = watcher; // lives as long as the loop
            let mut folder = Folder { job, pending: HashMap::new(), deployed: HashMap::new() };
            while !stopped.load(Ordering::Acquire) && !folder.job.control().is_finished() {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(Ok(event)) => folder.on_event(&dir, event),
                    Ok(Err(e)) => tracing::warn!(dir = %dir.display(), error = %e, "watching the plugin folder"),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                folder.settle();
            }
        })
        .map_err(WatchError::Thread)?;
    Ok(FolderWatch { stop, thread: Some(thread) })
}

/// A changed file waiting to settle.
struct Pending {
    last_change: Instant,
    /// Size and modification time when last looked at.
    seen: Option<(u64, Option<SystemTime>)>,
}

struct Folder {
    job: JobHandle,
    pending: HashMap<PathBuf, Pending>,
    /// The hash last deployed from each file, so repeated events do not deploy it twice.
    deployed: HashMap<PathBuf, String>,
}

impl Folder {
    fn on_event(&mut self, dir: &Path, event: notify::Event) {
        if matches!(event.kind, EventKind::Access(_) | EventKind::Remove(_)) {
            return;
        }
        for path in event.paths {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let wanted = path.parent() == Some(dir) && name.ends_with(".wasm") && !name.starts_with('.');
            if wanted {
                self.pending.insert(path, Pending { last_change: Instant::now(), seen: None });
            }
        }
    }

    /// Reads the files that have settled.
    fn settle(&mut self) {
        let now = Instant::now();
        let due: Vec<PathBuf> = self
            .pending
            .iter()
            .filter(|(_, p)| now.duration_since(p.last_change) >= SETTLE)
            .map(|(k, _)| k.clone())
            .collect();
        for path in due {
            let Ok(meta) = std::fs::metadata(&path) else {
                self.pending.remove(&path); // gone again
                continue;
            };
            let look = (meta.len(), meta.modified().ok());
            let Some(pending) = self.pending.get_mut(&path) else { continue };
            if pending.seen != Some(look) {
                // Changed since last looked at (or first look): once more after a pause.
                pending.seen = Some(look);
                pending.last_change = now;
                continue;
            }
            self.pending.remove(&path);
            match std::fs::read(&path) {
                Ok(bytes) if bytes.len() as u64 == look.0 => self.deploy(&path, &bytes),
                Ok(_) => {
                    // Still being written after all: wait for the next change.
                    self.pending.insert(path, Pending { last_change: now, seen: None });
                }
                Err(e) => tracing::warn!(file = %path.display(), error = %e, "cannot read a saved plugin"),
            }
        }
    }

    fn deploy(&mut self, path: &Path, bytes: &[u8]) {
        if !bytes.starts_with(b"\0asm") {
            tracing::warn!(file = %path.display(), "not deployed: not a WebAssembly component (no `\\0asm` at its start)");
            return;
        }
        let hash = format!("{:x}", Sha256::digest(bytes));
        if self.deployed.get(path) == Some(&hash) {
            return;
        }
        let targets = self.job.targets();
        let Some(first) = targets.0.first() else {
            tracing::warn!(file = %path.display(), "not deployed: the job runs no plugin");
            return;
        };
        let (_, current) = first.cell.current();
        let new = match current.runtime().load_bytes(bytes, path, current.limits()) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "not deployed: the component does not load (is it whole?)");
                return;
            }
        };
        let name = &new.info().name;
        let mut steps: Vec<String> =
            targets.0.iter().filter(|t| &t.cell.current().1.info().name == name).map(|t| t.step.clone()).collect();
        if steps.is_empty() {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            match targets.find(stem) {
                Ok(t) => steps.push(t.step.clone()),
                Err(e) => {
                    tracing::warn!(file = %path.display(), plugin = %name, error = %e, "not deployed: no operator runs a plugin of this name, and the file name names none");
                    return;
                }
            }
        }
        for step in steps {
            match self.job.deploy(&step, bytes, path) {
                Ok(r) => {
                    tracing::info!(file = %path.display(), %step, generation = r.generation, plugin = %r.plugin, "deployed from the watched folder")
                }
                Err(e) => tracing::warn!(file = %path.display(), %step, error = %e, "not deployed"),
            }
        }
        self.deployed.insert(path.to_path_buf(), hash);
    }
}
