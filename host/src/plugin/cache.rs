//! The on-disk cache of compiled components.
//!
//! Compiling a componentize-py component takes seconds; loading its compiled form takes
//! milliseconds. Compiled artifacts are keyed by the component's sha256 **and** the engine's
//! compatibility hash (wasmtime version, target, and settings such as epoch interruption
//! that change the generated code), so a stale artifact is never loaded.
//!
//! Trust: `Component::deserialize` is `unsafe` because a crafted artifact can do anything.
//! This cache only ever reads files it wrote itself, named by hashes it computed, from its
//! own directory; artifacts are never accepted from users. Files are written to a temporary
//! name and renamed, so a crash never leaves a truncated artifact under a real name.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components go unless `WEIR_CACHE_DIR` says otherwise.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("weir");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache").join("weir"),
        None => std::env::temp_dir().join("weir-cache"),
    }
}

/// The sha256 of a component's bytes, in hex: its identity in the cache (and, later, the
/// registry).
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a component was obtained, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    Hit,
    Compiled,
}

#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
    engine_key: String,
}

impl ComponentCache {
    pub fn new(engine: &Engine, dir: PathBuf) -> Self {
        // DefaultHasher::new() is SipHash with fixed keys: stable for one build of Weir,
        // which is all the key needs (the hashed value includes the wasmtime version).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut h);
        Self { dir: dir.join("components"), engine_key: format!("{:016x}", h.finish()) }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn artifact_path(&self, hash: &str) -> PathBuf {
        self.dir.join(format!("{hash}-{}.cwasm", self.engine_key))
    }

    /// The compiled component for `bytes` (whose sha256 is `hash`): from the cache, or
    /// compiled and then stored. A cache that cannot be written is logged, not fatal.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        hash: &str,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CacheOutcome)> {
        let path = self.artifact_path(hash);
        if path.is_file() {
            // SAFETY: the file is one this cache wrote (atomically, see `store`) under a name
            // derived from the sha256 of the component and the engine's compatibility hash;
            // nothing from outside Weir is ever placed in the cache directory by Weir.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(c) => return Ok((c, CacheOutcome::Hit)),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable compiled component; recompiling")
                }
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write the component cache; the next run will compile again");
        }
        Ok((component, CacheOutcome::Compiled))
    }

    /// Keeps a deployed component's own bytes as `<sha256>.wasm` beside the compiled ones
    /// (content addressed: the same version is stored once), so every version a job ran can
    /// be found again by the hash its history shows. Failing to write is logged, not fatal.
    pub fn keep_component(&self, hash: &str, bytes: &[u8]) -> Option<PathBuf> {
        let dir = &self.dir;
        let path = dir.join(format!("{hash}.wasm"));
        if path.is_file() {
            return Some(path);
        }
        let written = std::fs::create_dir_all(dir).and_then(|()| {
            let tmp = dir.join(format!(".tmp-{}-{}", std::process::id(), unique()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)
        });
        match written {
            Ok(()) => Some(path),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot keep the deployed component");
                None
            }
        }
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
        let tmp = self.dir.join(format!(".tmp-{}-{}", std::process::id(), unique()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployed_components_are_kept_once_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(&Engine::default(), dir.path().to_path_buf());
        let hash = content_hash(b"\0asm v2");
        let path = cache.keep_component(&hash, b"\0asm v2").unwrap();
        assert_eq!(path, cache.dir().join(format!("{hash}.wasm")));
        assert_eq!(std::fs::read(&path).unwrap(), b"\0asm v2");
        assert_eq!(cache.keep_component(&hash, b"\0asm v2"), Some(path));
        assert_eq!(std::fs::read_dir(cache.dir()).unwrap().count(), 1);
    }

    #[test]
    fn content_hash_is_sha256_hex() {
        assert_eq!(content_hash(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
