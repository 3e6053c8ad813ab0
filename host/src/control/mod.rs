//! The control plane of a running job: an HTTP API on loopback, the CLI commands that talk
//! to it, and a watched plugin folder (issue 7; DESIGN.md sections 8 and 9).
//!
//! `weir run` starts the job, then [`server::serve`]s its API on 127.0.0.1 (any free port
//! unless `--api` says otherwise) and writes two files into the [`run_dir`]:
//! `<job-id>.json` (address, pid, job name) for the CLI to find it, and `<job-id>.token`
//! (mode 0600), the bearer token mutating calls need. Both go when the job ends.
//!
//! Lessons from Flink's CVE-2020-17518/17519 (path traversal through REST uploads): no
//! client-given name ever becomes a path. A job id is checked by [`validate_job_id`] before
//! it is joined to the run folder; an operator name only selects among the job's steps.
//! Uploads are kept in memory (size-capped) and known by their hash, never by a file name.
//!
//! - [`run_dir`]: where run files live, claiming a job id, the token.
//! - [`server`]: the axum API.
//! - [`client`]: a tiny HTTP/1 client (hyper) for the CLI.
//! - [`commands`]: `weir jobs`, `plugins`, `deploy`, `rollback`, `cancel`.
//! - [`watch`]: deploy `.wasm` files saved into a folder.

pub mod client;
pub mod commands;
pub mod run_dir;
pub mod server;
pub mod watch;

/// The longest job id or operator name the API takes.
pub const MAX_NAME_LEN: usize = 200;

/// A job id: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `-` and `_`, so it is safe as a
/// file name and in a URL.
///
/// ```
/// use weir::control::validate_job_id;
/// assert!(validate_job_id("first-program_2").is_ok());
/// assert!(validate_job_id("../etc").is_err());
/// assert!(validate_job_id("").is_err());
/// ```
pub fn validate_job_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_NAME_LEN {
        return Err(format!("a job id has 1 to {MAX_NAME_LEN} characters"));
    }
    if let Some(c) = id.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_')) {
        return Err(format!(
            "`{}` is not a job id: `{c}` is not allowed (letters, digits, - and _ only)",
            id.escape_debug()
        ));
    }
    Ok(())
}

/// The id of a job named `name`: lower-case letters and digits, other runs of characters
/// as one `-` (`First Program` -> `first-program`); `job` if nothing is left.
///
/// ```
/// use weir::control::job_id_from_name;
/// assert_eq!(job_id_from_name("First Program"), "first-program");
/// assert_eq!(job_id_from_name("../../etc/passwd"), "etc-passwd");
/// assert_eq!(job_id_from_name("日本"), "job");
/// ```
pub fn job_id_from_name(name: &str) -> String {
    let mut id = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            id.push(c.to_ascii_lowercase());
        } else if !id.is_empty() && !id.ends_with('-') {
            id.push('-');
        }
    }
    let id: String = id.trim_end_matches('-').chars().take(MAX_NAME_LEN - 8).collect();
    if id.is_empty() { "job".to_string() } else { id }
}

/// An operator name as the API takes it: a step's full name (`map[0] upper@0.1.0.upper`)
/// or part of one. Letters, digits, spaces and `[ ] @ . _ - :`, without `..`; it only
/// selects among the job's steps, but a name that looks like a path is refused outright.
///
/// ```
/// use weir::control::validate_operator;
/// assert!(validate_operator("map[0] versioned@1.0.0.tag").is_ok());
/// assert!(validate_operator("../tag").is_err());
/// assert!(validate_operator("a/b").is_err());
/// ```
pub fn validate_operator(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("an operator name has 1 to {MAX_NAME_LEN} characters"));
    }
    if name.contains("..") {
        return Err(format!("`{}` is not an operator name: `..` is not allowed", name.escape_debug()));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || " []@._-:".contains(c);
    if let Some(c) = name.chars().find(|c| !allowed(*c)) {
        return Err(format!(
            "`{}` is not an operator name: `{}` is not allowed (letters, digits, spaces and `[ ] @ . _ - :`)",
            name.escape_debug(),
            c.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_derived_from_names_are_valid() {
        for name in ["First Program", "a/b\\c", "..", "", "x".repeat(500).as_str(), "Ünïcode job", "-lead-"] {
            let id = job_id_from_name(name);
            assert!(validate_job_id(&id).is_ok(), "{name:?} -> {id:?}");
        }
        assert_eq!(job_id_from_name("-lead-"), "lead");
    }

    #[test]
    fn path_like_names_are_refused() {
        for bad in ["..", "../x", "a/b", "a\\b", "x\0", "x\n", "%2e%2e", ""] {
            assert!(validate_operator(bad).is_err(), "{bad:?}");
            assert!(validate_job_id(bad).is_err(), "{bad:?}");
        }
        assert!(validate_job_id("ok-id_1").is_ok());
    }
}
