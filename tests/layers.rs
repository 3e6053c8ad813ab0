//! The host's modules import one way: the task layer at the bottom, operators and
//! connectors on it, the graph and the runtime above them, job files, the builder API, the
//! control plane and the CLI on top (docs/decisions/0011-layers-and-registry.md). This
//! test reads `host/src` and fails on any `crate::` path that points up or sideways.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each top-level module of the `weir` crate and its layer: a module may use only modules
/// of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("record", 0),
    ("time", 1),
    ("window", 1),
    ("state", 1),
    ("config", 1),
    ("plugin", 2),
    ("checkpoint", 2),
    ("deploy", 3),
    ("task", 4),
    ("operator", 5),
    ("connectors", 5),
    ("graph", 6),
    ("runtime", 7),
    ("env", 8),
    ("job", 9),
    ("control", 9),
    ("cli", 10),
];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

/// The top-level module a file of `src` belongs to (`task/stage.rs` -> `task`,
/// `record.rs` -> `record`).
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).unwrap();
    let first = relative.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::name` in `text`, with its line number; comments are skipped, and so are a
/// file's unit tests (from its `#[cfg(test)]` on), which may read a connector's options
/// through the job-file parser above it.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim() == "#[cfg(test)]" {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            let tail = &rest[at + "crate::".len()..];
            let name: String = tail.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            // `weir_crate::x` or `$crate::x` are not paths into this crate's modules.
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') && !name.is_empty() {
                found.push((n + 1, name));
            }
            rest = tail;
        }
    }
    found
}

#[test]
fn imports_run_down_the_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../host/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut modules = BTreeMap::new();
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let Some(own) = layer(&module) else {
            violations.push(format!("{}: module `{module}` has no layer in tests/layers.rs", file.display()));
            continue;
        };
        modules.insert(module.clone(), own);
        let text = std::fs::read_to_string(file).unwrap();
        for (line, used) in crate_paths(&text) {
            if used == module {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                Some(l) => violations.push(format!(
                    "{}:{line}: `{module}` (layer {own}) uses `crate::{used}` (layer {l}); move what it needs down a layer",
                    file.strip_prefix(&src).unwrap().display()
                )),
                None => {}
            }
        }
    }
    assert!(modules.contains_key("task"), "host/src/task is missing");
    assert!(violations.is_empty(), "imports that run up or sideways:\n{}", violations.join("\n"));
}

#[test]
fn the_scanner_sees_paths_and_skips_comments() {
    let text = "use crate::task::Message;\n// crate::runtime in a comment\nlet x = crate::state::key_group(k, 128); // crate::job\n$crate::x\n#[cfg(test)]\nuse crate::job;";
    assert_eq!(crate_paths(text), vec![(1, "task".to_string()), (3, "state".to_string())]);
}
