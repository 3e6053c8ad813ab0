//! Job-file configuration below the connectors: the validation context every part of a job
//! file is read with ([`Ctx`]: typed values, unknown keys refused, `${VAR}` expanded, paths
//! resolved), the error that names file, line and key ([`JobError`]), and durations.
//! The job module reads the file's shape with it; each connector reads its own options.

mod lines;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_norway::Value;

pub use lines::Lines;

/// An error in a job file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    pub file: PathBuf,
    pub line: Option<usize>,
    /// The key the error is about, e.g. `pipeline[0].map`; empty for the whole file.
    pub key: String,
    pub message: String,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for JobError {}

/// Validation context: the file, its line index, and where relative paths start.
pub struct Ctx<'a> {
    file: &'a Path,
    base: &'a Path,
    lines: Lines,
}

impl<'a> Ctx<'a> {
    /// The context of job file `file` (its text indexed in `lines`), whose relative paths
    /// start at `base`.
    pub fn new(file: &'a Path, base: &'a Path, lines: Lines) -> Self {
        Self { file, base, lines }
    }

    /// The line index, kept by the parsed job for later errors.
    pub fn into_lines(self) -> Lines {
        self.lines
    }

    pub fn err(&self, key: &str, message: impl Into<String>) -> JobError {
        JobError {
            file: self.file.to_path_buf(),
            line: self.lines.line(key),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// `p` resolved against the job file's folder.
    pub fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    pub fn map<'v>(&self, v: &'v Value, key: &str, allowed: &[&str]) -> Result<Vec<(&'v str, &'v Value)>, JobError> {
        let Value::Mapping(m) = v else {
            return Err(
                self.err(key, format!("expected a mapping with keys {}, found {}", allowed.join(", "), describe(v)))
            );
        };
        let mut out = Vec::new();
        for (k, val) in m {
            let Some(k) = k.as_str() else {
                return Err(self.err(key, format!("keys must be strings, found {}", describe(k))));
            };
            if !allowed.contains(&k) {
                let child = join(key, k);
                return Err(self.err(&child, format!("unknown key; expected one of: {}", allowed.join(", "))));
            }
            out.push((k, val));
        }
        Ok(out)
    }

    /// A string value; `${VAR}` and `${VAR:-default}` in it take values from the environment.
    pub fn string(&self, v: &Value, key: &str) -> Result<String, JobError> {
        match v {
            Value::String(s) if !s.trim().is_empty() => expand_env(s, |name| std::env::var(name).ok())
                .map_err(|e| self.err(key, e))
                .and_then(|s| if s.trim().is_empty() { Err(self.err(key, "must not be empty")) } else { Ok(s) }),
            Value::String(_) => Err(self.err(key, "must not be empty")),
            other => Err(self.err(key, format!("expected a string, found {}", describe(other)))),
        }
    }

    pub fn number(&self, v: &Value, key: &str, min: u64, max: u64) -> Result<u64, JobError> {
        match v.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(self.err(key, format!("expected a whole number from {min} to {max}, found {}", describe(v)))),
        }
    }
}

/// `s` with `${NAME}` replaced by the variable's value and `${NAME:-default}` by the value
/// or, when unset or empty, the default (as in a shell).
pub fn expand_env(s: &str, var: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('}') else {
            return Err(format!("`${{` without a closing `}}` in {s:?}"));
        };
        let inner = &rest[at + 2..at + end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match (var(name).filter(|v| !v.is_empty()), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err(format!(
                    "the environment variable {name} is not set; set it or write ${{{name}:-default}}"
                ));
            }
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "nothing".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

pub fn get<'v>(entries: &[(&str, &'v Value)], key: &str) -> Option<&'v Value> {
    entries.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// Milliseconds in a duration like `5 s`, `1min`, `250 ms` or `5000`.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().ok()?;
    let per = match unit.trim() {
        "" | "ms" => 1,
        "s" | "sec" | "second" | "seconds" => 1_000,
        "m" | "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(per)
}

/// A duration in milliseconds: whole milliseconds (`5000`) or a number and a unit (`5 s`,
/// `1min`, `250 ms`, `2 h`).
pub fn duration(ctx: &Ctx, v: &Value, key: &str) -> Result<i64, JobError> {
    let ms = match v {
        Value::Number(n) => n.as_i64().filter(|n| *n >= 0),
        Value::String(s) => parse_duration_ms(s),
        _ => None,
    };
    ms.ok_or_else(|| {
        ctx.err(
            key,
            format!(
                "expected a duration like `5 s`, `1 min` or `500 ms` (or whole milliseconds), found {}",
                describe(v)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("5000"), Some(5000));
        assert_eq!(parse_duration_ms("5 s"), Some(5000));
        assert_eq!(parse_duration_ms("1min"), Some(60_000));
        assert_eq!(parse_duration_ms("2 h"), Some(7_200_000));
        assert_eq!(parse_duration_ms("250 ms"), Some(250));
        assert_eq!(parse_duration_ms("5 weeks"), None);
        assert_eq!(parse_duration_ms("-5 s"), None);
        assert_eq!(parse_duration_ms("s"), None);
    }
}
