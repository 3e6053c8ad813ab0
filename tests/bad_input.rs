//! Mistakes in job files and plugins, as a user makes them: `weir check` and `weir run`
//! both fail (non-zero exit, nothing on stdout) with an `error:` that names the job file,
//! the line and the key, and says what is wrong.

mod common;

use std::path::{Path, PathBuf};

use common::{Run, plugin, plugin_yaml, run, temp_dir, weir, write_file, write_job, yaml_path};

/// A valid job to break: `plugins` holds `upper` (upper-rust) and `words` (words-rust).
fn base_job() -> String {
    format!(
        "name: broken\nplugins:\n  upper: {}\n  words: {}\nsource:\n  connector: collection\n  elements: [a, b]\npipeline:\n  - map: upper.upper\n  - flat_map: words.split\nsink:\n  connector: print\n",
        plugin_yaml("upper-rust"),
        plugin_yaml("words-rust")
    )
}

/// The 1-based line of the first line of `yaml` that contains `needle`.
fn line_of(yaml: &str, needle: &str) -> usize {
    yaml.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("`{needle}` is not in\n{yaml}")) + 1
}

/// `weir check` and `weir run` on `yaml`: both must fail the same way; the error text.
fn fails(dir: &Path, yaml: &str) -> String {
    let job = write_job(dir, yaml);
    let check = run(weir().arg("check").arg(&job));
    let run_out = run(weir().arg("run").arg(&job));
    let mut errors = Vec::new();
    for (what, out) in [("check", &check), ("run", &run_out)] {
        let err = error_line(what, out);
        assert!(out.stdout.is_empty(), "`weir {what}` printed to stdout: {}", out.stdout);
        errors.push(err);
    }
    assert_eq!(errors[0], errors[1], "`weir check` and `weir run` should report the same error");
    errors.remove(0)
}

fn error_line(what: &str, out: &Run) -> String {
    let stderr = out.assert_failed();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("`weir {what}`: no `error:` line in\n{stderr}"));
    line["error: ".len()..].to_string()
}

/// `job.yaml:LINE: KEY: ` for the job in `dir`.
fn at(dir: &Path, yaml: &str, needle: &str, key: &str) -> String {
    format!("{}:{}: {key}: ", dir.join("job.yaml").display(), line_of(yaml, needle))
}

fn assert_starts(err: &str, prefix: &str) {
    assert!(err.starts_with(prefix), "the error should start with {prefix:?}:\n{err}");
}

fn assert_contains(err: &str, parts: &[&str]) {
    for part in parts {
        assert!(err.contains(part), "the error should contain {part:?}:\n{err}");
    }
}

#[test]
fn the_base_job_is_valid() {
    let dir = temp_dir();
    let job = write_job(dir.path(), &base_job());
    run(weir().arg("check").arg(&job)).assert_ok();
    let out = run(weir().arg("run").arg(&job));
    out.assert_ok();
    assert_eq!(out.stdout, "a\nb\n");
}

#[test]
fn malformed_yaml() {
    let dir = temp_dir();
    let yaml = base_job().replace("  elements: [a, b]", "  elements: [a, b");
    let err = fails(dir.path(), &yaml);
    assert_starts(&err, &format!("{}:", dir.path().join("job.yaml").display()));
    assert_contains(&err, &["not valid YAML"]);
}

#[test]
fn unknown_connector() {
    let dir = temp_dir();
    let yaml = base_job().replace("connector: collection", "connector: kafkaa");
    let err = fails(dir.path(), &yaml);
    assert_starts(&err, &at(dir.path(), &yaml, "kafkaa", "source.connector"));
    assert_contains(
        &err,
        &["unknown source connector `kafkaa`", "collection, file, socket, datagen, nexmark or kafka"],
    );
}

#[test]
fn unknown_step() {
    let dir = temp_dir();
    let yaml = base_job().replace("  - flat_map: words.split", "  - flatmap: words.split");
    let err = fails(dir.path(), &yaml);
    assert_starts(&err, &at(dir.path(), &yaml, "flatmap", "pipeline[1].flatmap"));
    assert_contains(&err, &["unknown step `flatmap`", "flat_map"]);
}

#[test]
fn undeclared_plugin() {
    let dir = temp_dir();
    let yaml = base_job().replace("  - map: upper.upper", "  - map: uper.upper");
    let err = fails(dir.path(), &yaml);
    assert_starts(&err, &at(dir.path(), &yaml, "uper.upper", "pipeline[0].map"));
    assert_contains(&err, &["plugin `uper` is not declared", "upper, words"]);
}

#[test]
fn missing_plugin_file() {
    let dir = temp_dir();
    let yaml = base_job().replace(&plugin_yaml("upper-rust"), "no-such-plugin.wasm");
    let err = fails(dir.path(), &yaml);
    assert_starts(&err, &at(dir.path(), &yaml, "no-such-plugin.wasm", "plugins.upper"));
    // Relative to the job file's folder, and the advice says how to build it.
    assert_contains(
        &err,
        &[&dir.path().join("no-such-plugin.wasm").display().to_string(), "not found", "weir plugin build"],
    );
}

/// The base job with the `upper` plugin replaced by `file`; the error.
fn with_upper_plugin(dir: &Path, file: &Path) -> (String, String) {
    let yaml = base_job().replace(&plugin_yaml("upper-rust"), &yaml_path(file));
    let err = fails(dir, &yaml);
    assert_starts(&err, &at(dir, &yaml, "  upper: ", "plugins.upper"));
    assert_contains(&err, &[&file.display().to_string()]);
    (yaml, err)
}

fn garbage(len: usize) -> Vec<u8> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 56) as u8
        })
        .collect()
}

#[test]
fn a_file_of_random_bytes_is_not_a_component() {
    let dir = temp_dir();
    let file = write_file(dir.path(), "random.wasm", garbage(4096));
    let (_, err) = with_upper_plugin(dir.path(), &file);
    assert_contains(&err, &["not a WebAssembly component"]);
}

#[test]
fn a_truncated_component_is_not_a_component() {
    let dir = temp_dir();
    let bytes = std::fs::read(plugin("upper-rust")).expect("read the upper plugin");
    let file = write_file(dir.path(), "truncated.wasm", &bytes[..bytes.len() / 2]);
    let (_, err) = with_upper_plugin(dir.path(), &file);
    assert_contains(&err, &["not a WebAssembly component"]);
}

#[test]
fn a_plain_wasi_command_is_not_a_weir_plugin() {
    let dir = temp_dir();
    let (_, err) = with_upper_plugin(dir.path(), &plugin("not-a-plugin-rust"));
    assert_contains(&err, &["not a weir plugin", "weir:plugin/describe@0.2.0"]);
}

#[test]
fn a_plugin_for_the_previous_abi_is_refused_naming_both_versions() {
    let dir = temp_dir();
    let (_, err) = with_upper_plugin(dir.path(), &plugin("wrong-abi-rust"));
    assert_contains(&err, &["ABI 0.1.0", "this host speaks 0.2.0", "rebuild", "weir plugin build"]);
}

#[test]
fn a_function_of_the_wrong_kind() {
    let dir = temp_dir();
    let yaml = base_job().replace("  - map: upper.upper", "  - map: words.is_long");
    let err = fails(dir.path(), &yaml);
    assert_starts(&err, &at(dir.path(), &yaml, "words.is_long", "pipeline[0].map"));
    assert_contains(&err, &["`words.is_long` is a filter function", "map"]);
}

#[test]
fn an_unknown_function() {
    let dir = temp_dir();
    let yaml = base_job().replace("  - flat_map: words.split", "  - flat_map: words.splitt");
    let err = fails(dir.path(), &yaml);
    assert_starts(&err, &at(dir.path(), &yaml, "words.splitt", "pipeline[1].flat_map"));
    assert_contains(&err, &["has no function `splitt`", "it has: split (flat_map), is_long (filter)"]);
}

#[test]
fn a_rolling_count_without_key_by() {
    let dir = temp_dir();
    let yaml = base_job().replace("  - flat_map: words.split", "  - count");
    let err = fails(dir.path(), &yaml);
    assert_starts(&err, &at(dir.path(), &yaml, "  - count", "pipeline[1].count"));
    assert_contains(&err, &["key_by"]);
}

#[test]
fn a_missing_input_file() {
    let dir = temp_dir();
    let yaml =
        base_job().replace("  connector: collection\n  elements: [a, b]", "  connector: file\n  path: missing.txt");
    let err = fails(dir.path(), &yaml);
    assert_starts(&err, &at(dir.path(), &yaml, "missing.txt", "source.path"));
    assert_contains(&err, &["does not exist"]);
}

#[test]
fn a_job_file_that_does_not_exist() {
    let dir = temp_dir();
    let job: PathBuf = dir.path().join("nope.yaml");
    let out = run(weir().arg("run").arg(&job));
    let err = error_line("run", &out);
    assert_contains(&err, &[&job.display().to_string(), "cannot read the job file"]);
}
