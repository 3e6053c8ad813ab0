//! The compiled-component cache, seen from the CLI: a fresh cache compiles, the next run
//! loads what the first one stored, and both runs print the same records. Also `weir
//! plugin inspect`, which loads a component the same way.

mod common;

use std::path::Path;

use common::{Run, plugin, plugin_yaml, run, temp_dir, weir_with_cache, write_job};

/// The `cache=...` field of the "plugin loaded" log lines.
fn cache_outcomes(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("plugin loaded"))
        .map(|l| {
            let at = l.find("cache=").unwrap_or_else(|| panic!("a `plugin loaded` line without cache=: {l}"));
            l[at + "cache=".len()..].split_whitespace().next().unwrap_or_default()
        })
        .collect()
}

fn run_logged(job: &Path, cache: &Path) -> Run {
    let out = run(weir_with_cache(cache).env("WEIR_LOG", "weir=info").arg("run").arg(job));
    out.assert_ok();
    out
}

#[test]
fn a_second_run_loads_the_compiled_component_from_the_cache() {
    let dir = temp_dir();
    let cache = dir.path().join("cache");
    let job = write_job(
        dir.path(),
        &format!(
            "name: cached\nplugins:\n  upper: {}\nsource:\n  connector: collection\n  elements: [cache, me]\npipeline:\n  - map: upper.upper\nsink:\n  connector: print\n",
            plugin_yaml("upper-rust")
        ),
    );

    let first = run_logged(&job, &cache);
    assert_eq!(cache_outcomes(&first.stderr), ["Compiled"], "first run, empty cache; stderr:\n{}", first.stderr);
    let stored = std::fs::read_dir(cache.join("components")).map(|d| d.count()).unwrap_or(0);
    assert!(stored >= 1, "the first run stored nothing under {}", cache.display());

    let second = run_logged(&job, &cache);
    assert_eq!(cache_outcomes(&second.stderr), ["Hit"], "second run, same cache; stderr:\n{}", second.stderr);
    assert_eq!(first.stdout, "CACHE\nME\n");
    assert_eq!(second.stdout, first.stdout);
}

#[test]
fn another_cache_dir_compiles_again() {
    let dir = temp_dir();
    let job = write_job(
        dir.path(),
        &format!(
            "name: cached\nplugins:\n  upper: {}\nsource:\n  connector: collection\n  elements: [x]\npipeline:\n  - map: upper.upper\nsink:\n  connector: print\n",
            plugin_yaml("upper-rust")
        ),
    );
    run_logged(&job, &dir.path().join("a"));
    let other = run_logged(&job, &dir.path().join("b"));
    assert_eq!(cache_outcomes(&other.stderr), ["Compiled"], "stderr:\n{}", other.stderr);
}

#[test]
fn plugin_inspect_prints_name_version_and_functions() {
    let dir = temp_dir();
    let out = run(weir_with_cache(dir.path()).args(["plugin", "inspect"]).arg(plugin("words-rust")));
    out.assert_ok();
    let text = &out.stdout;
    let plugin_line =
        text.lines().find(|l| l.starts_with("plugin:")).unwrap_or_else(|| panic!("no plugin: line in\n{text}"));
    assert_eq!(plugin_line.split_whitespace().collect::<Vec<_>>(), ["plugin:", "words", "0.1.0"], "{text}");
    assert!(text.lines().any(|l| l.starts_with("abi:") && l.contains("weir:plugin@0.2.0")), "{text}");
    let functions: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("functions:"))
        .skip(1)
        .filter(|l| !l.trim().is_empty() && !l.starts_with("    "))
        .map(|l| l.split_whitespace().take(2).collect())
        .collect();
    let kinds: Vec<(&str, &str)> = functions.iter().map(|f| (f[0], f.get(1).copied().unwrap_or_default())).collect();
    assert_eq!(
        kinds,
        [("split", "flat_map"), ("is_long", "filter"), ("first_letter", "key_selector"), ("parse_int", "map")],
        "{text}"
    );
    // ABI 0.2: each function's types, as the SDK derived them from the Rust signature.
    let signatures: Vec<&str> = text.lines().filter_map(|l| l.trim().strip_prefix("signature ")).collect();
    assert_eq!(
        signatures,
        ["(line: string) -> string", "(word: string) -> string", "(word: string) -> string", "(text: string) -> int"],
        "{text}"
    );
}
