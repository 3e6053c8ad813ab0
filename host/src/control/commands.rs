//! The CLI commands that talk to a running job's control API: `weir jobs`, `plugins`,
//! `deploy`, `rollback`, `cancel`. A job is named by its id (`weir jobs` shows it) or by its
//! name, which gives the id the same way `weir run` made it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use hyper::Method;
use serde_json::Value;

use super::client::{self, ClientError, path_segment};
use super::run_dir::{self, RunInfo, pid_is_gone};
use super::{job_id_from_name, validate_job_id, validate_operator};

/// `weir jobs`: every job with a run file, and what its API says.
pub fn jobs(run_dir: &Path, as_json: bool) -> Result<()> {
    let found = run_dir::list(run_dir);
    let mut rows = Vec::new();
    for info in &found {
        let summary = match info.address {
            None => None,
            Some(_) if pid_is_gone(info.pid) => None,
            Some(address) => client::call(address, Method::GET, "/jobs", None, Vec::new())
                .ok()
                .filter(|r| r.status.is_success())
                .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok())
                .and_then(|v| v["jobs"].as_array().and_then(|j| j.first().cloned())),
        };
        rows.push((info, summary));
    }
    if as_json {
        let jobs: Vec<Value> = rows
            .iter()
            .map(|(info, summary)| {
                let mut v = summary.clone().unwrap_or_else(
                    || serde_json::json!({"id": info.id, "name": info.name, "state": state_without_api(info)}),
                );
                v["address"] = serde_json::json!(info.address);
                v
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "jobs": jobs }))?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no running jobs (run folder {})", run_dir.display());
        return Ok(());
    }
    println!("{:<24} {:<24} {:<12} {:>10} {:>10}  API", "ID", "NAME", "STATE", "IN", "OUT");
    for (info, summary) in rows {
        let address = info.address.map(|a| a.to_string()).unwrap_or_else(|| "-".into());
        match summary {
            Some(s) => println!(
                "{:<24} {:<24} {:<12} {:>10} {:>10}  {address}",
                info.id,
                info.name,
                s["state"].as_str().unwrap_or("?"),
                s["records_in"].as_u64().unwrap_or(0),
                s["records_out"].as_u64().unwrap_or(0)
            ),
            None => println!(
                "{:<24} {:<24} {:<12} {:>10} {:>10}  {address}",
                info.id,
                info.name,
                state_without_api(info),
                "-",
                "-"
            ),
        }
    }
    Ok(())
}

fn state_without_api(info: &RunInfo) -> &'static str {
    match info.address {
        _ if pid_is_gone(info.pid) => "gone",
        None => "starting",
        Some(_) => "unreachable",
    }
}

/// `weir plugins JOB`: each operator that runs a plugin, with every version.
pub fn plugins(run_dir: &Path, job: &str, as_json: bool) -> Result<()> {
    let info = find_job(run_dir, job)?;
    let reply = call(&info, Method::GET, &format!("/jobs/{}/plugins", info.id), None, Vec::new())?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&reply)?);
        return Ok(());
    }
    println!("job {}", info.id);
    for op in reply["operators"].as_array().into_iter().flatten() {
        println!("{}", op["operator"].as_str().unwrap_or("?"));
        println!("  {:<4} {:<24} {:<12} {:<20} OUTCOME", "GEN", "PLUGIN", "SHA256", "DEPLOYED (UTC)");
        for v in op["versions"].as_array().into_iter().flatten() {
            let generation = match v["generation"].as_u64() {
                Some(0) | None => "-".to_string(),
                Some(g) => g.to_string(),
            };
            let sha = v["sha256"].as_str().unwrap_or("");
            let mut outcome = v["outcome"].as_str().unwrap_or("?").to_string();
            if let Some(reason) = v["reason"].as_str() {
                outcome.push_str(&format!(": {reason}"));
            }
            println!(
                "  {generation:<4} {:<24} {:<12} {:<20} {outcome}",
                v["plugin"].as_str().unwrap_or("?"),
                &sha[..sha.len().min(12)],
                utc(v["deployed_at_ms"].as_i64().unwrap_or(0)),
            );
        }
    }
    Ok(())
}

/// `weir deploy JOB OPERATOR FILE [--canary SHARE]`.
pub fn deploy(run_dir: &Path, job: &str, operator: &str, file: &Path, canary: Option<f64>) -> Result<()> {
    validate_operator(operator).map_err(anyhow::Error::msg)?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read the plugin {}", file.display()))?;
    let info = find_job(run_dir, job)?;
    let token = token(run_dir, &info)?;
    let mut path = format!("/jobs/{}/operators/{}/deploy", info.id, path_segment(operator));
    if let Some(share) = canary {
        path.push_str(&format!("?canary={share}"));
    }
    let reply = call(&info, Method::POST, &path, Some(&token), bytes)?;
    let v = &reply["version"];
    if canary.is_some() {
        println!(
            "canary {} (sha256 {}) running on `{}` of job {}: it replaces the current version if it passes \
             (`weir plugins {}` shows it)",
            v["plugin"].as_str().unwrap_or("?"),
            v["sha256"].as_str().map(|s| &s[..s.len().min(12)]).unwrap_or("?"),
            reply["operator"].as_str().unwrap_or(operator),
            info.id,
            info.id
        );
        return Ok(());
    }
    println!(
        "deployed {} (sha256 {}) to `{}` of job {}: generation {}",
        v["plugin"].as_str().unwrap_or("?"),
        v["sha256"].as_str().map(|s| &s[..s.len().min(12)]).unwrap_or("?"),
        reply["operator"].as_str().unwrap_or(operator),
        info.id,
        v["generation"]
    );
    Ok(())
}

/// `weir rollback JOB OPERATOR`.
pub fn rollback(run_dir: &Path, job: &str, operator: &str) -> Result<()> {
    validate_operator(operator).map_err(anyhow::Error::msg)?;
    let info = find_job(run_dir, job)?;
    let token = token(run_dir, &info)?;
    let path = format!("/jobs/{}/operators/{}/rollback", info.id, path_segment(operator));
    let reply = call(&info, Method::POST, &path, Some(&token), Vec::new())?;
    let v = &reply["version"];
    println!(
        "rolled `{}` of job {} back to {}: generation {}",
        reply["operator"].as_str().unwrap_or(operator),
        info.id,
        v["plugin"].as_str().unwrap_or("?"),
        v["generation"]
    );
    Ok(())
}

/// `weir cancel JOB`: the job's sources stop; with `wait`, until the job has ended.
pub fn cancel(run_dir: &Path, job: &str, wait: bool) -> Result<()> {
    let info = find_job(run_dir, job)?;
    let token = token(run_dir, &info)?;
    call(&info, Method::POST, &format!("/jobs/{}/cancel", info.id), Some(&token), Vec::new())?;
    if !wait {
        println!("cancelling job {}: it ends once its sources have shipped what they read", info.id);
        return Ok(());
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while run_dir::read_info(run_dir, &info.id).is_ok_and(|i| i.pid == info.pid) && !pid_is_gone(info.pid) {
        if std::time::Instant::now() > deadline {
            bail!("job {} was cancelled but has not ended within 120 s; its log may say why", info.id);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    println!("job {} cancelled and ended", info.id);
    Ok(())
}

/// The running job `job` (an id, or a name), from its run file.
fn find_job(run_dir: &Path, job: &str) -> Result<RunInfo> {
    let mut ids = Vec::new();
    if validate_job_id(job).is_ok() {
        ids.push(job.to_string());
    }
    let derived = job_id_from_name(job);
    if !ids.contains(&derived) {
        ids.push(derived);
    }
    for id in &ids {
        match run_dir::read_info(run_dir, id) {
            Ok(info) if pid_is_gone(info.pid) => bail!(
                "job {id} is not running: its run file in {} was left by process {}, which is gone",
                run_dir.display(),
                info.pid
            ),
            Ok(info) if info.address.is_none() => bail!("job {id} is starting; try again in a moment"),
            Ok(info) => return Ok(info),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => bail!("cannot read the run file of job {id} in {}: {e}", run_dir.display()),
        }
    }
    let running: Vec<String> = run_dir::list(run_dir).into_iter().map(|i| i.id).collect();
    let running = if running.is_empty() { "none".to_string() } else { running.join(", ") };
    bail!(
        "no job `{job}` is running (running: {running}; run folder {}, set by --run-dir or WEIR_RUN_DIR)",
        run_dir.display()
    )
}

fn token(run_dir: &Path, info: &RunInfo) -> Result<String> {
    run_dir::read_token(run_dir, &info.id)
        .with_context(|| format!("cannot read the token of job {} in {}", info.id, run_dir.display()))
}

/// One call; the reply's JSON, or an error made of the API's `error` and `hint`.
fn call(info: &RunInfo, method: Method, path: &str, token: Option<&str>, body: Vec<u8>) -> Result<Value> {
    let Some(address) = info.address else { bail!("job {} is starting; try again in a moment", info.id) };
    let reply = match client::call(address, method, path, token, body) {
        Ok(r) => r,
        Err(e @ ClientError::Connect { .. }) => {
            bail!("job {} is not answering ({e}); has it ended? `weir jobs` lists running jobs", info.id)
        }
        Err(e) => return Err(e.into()),
    };
    let value: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    if !reply.status.is_success() {
        let error = value["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&reply.body).into_owned());
        match value["hint"].as_str() {
            Some(hint) => bail!("{error} (HTTP {})\n  hint: {hint}", reply.status.as_u16()),
            None => bail!("{error} (HTTP {})", reply.status.as_u16()),
        }
    }
    Ok(value)
}

/// Epoch milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_epoch_milliseconds() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(utc(1_795_000_000_123), "2026-11-18 11:06:40");
    }
}
