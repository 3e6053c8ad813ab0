//! Weir example plugin `access_log`: parses web server access-log lines (nginx's `combined`
//! format followed by `$request_time`) into records that windows can key and time.
//!
//! ```text
//! 10.0.0.1 - - [25/Nov/2026:10:00:05 +0000] "GET /cart?id=7 HTTP/1.1" 200 512 "-" "curl/8.5" 0.037
//! ```
//! becomes `{"ts": 1795600805000, "client": "10.0.0.1", "method": "GET", "url": "/cart",
//! "status": 200, "bytes": 512, "latency_ms": 37.0}`: the event time in epoch ms (the log's
//! offset applied), the path without its query string, the request time in milliseconds.
//! The referer and user agent are optional, so the shorter `common` format plus request
//! time parses too. A line that does not parse is an error naming what is wrong, which the
//! host sends to the dead-letter output with the line.

use serde::Serialize;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request<'a> {
    /// Event time, epoch milliseconds.
    pub ts: i64,
    pub client: &'a str,
    pub method: &'a str,
    /// The path, without the query string.
    pub url: &'a str,
    pub status: u16,
    pub bytes: u64,
    pub latency_ms: f64,
}

/// Parses one access-log line.
#[weir::map]
pub fn parse(line: &str) -> Result<Request<'_>, String> {
    parse_line(line).map_err(|e| {
        format!(
            "not an access-log line: {e} (expected `client - user [25/Nov/2026:10:00:05 +0000] \"GET /path HTTP/1.1\" status bytes [\"referer\" \"agent\"] seconds`)"
        )
    })
}

fn parse_line(line: &str) -> Result<Request<'_>, String> {
    let (client, rest) = line.split_once(' ').ok_or("expected `client - user [time] \"request\" ...`")?;
    let (_, rest) = rest.split_once('[').ok_or("no `[time]`")?;
    let (time, rest) = rest.split_once(']').ok_or("no `]` after the time")?;
    let ts = parse_time(time)?;
    let (_, rest) = rest.split_once('"').ok_or("no quoted request")?;
    let (request, rest) = rest.split_once('"').ok_or("the request has no closing quote")?;
    let mut parts = request.split(' ');
    let method = parts.next().filter(|m| !m.is_empty()).ok_or("the request has no method")?;
    let target = parts.next().ok_or("the request has no path")?;
    let url = target.split('?').next().unwrap_or(target);
    let mut fields = rest.split_whitespace();
    let status = fields.next().ok_or("no status")?;
    let status: u16 = status.parse().map_err(|_| format!("status `{status}` is not a number"))?;
    let bytes = fields.next().ok_or("no byte count")?;
    let bytes = if bytes == "-" { 0 } else { bytes.parse().map_err(|_| format!("bytes `{bytes}` is not a number"))? };
    // The request time is the last field, after the optional quoted referer and agent.
    let seconds = fields.last().filter(|s| !s.ends_with('"')).ok_or("no request time at the end")?;
    let seconds: f64 = seconds.parse().map_err(|_| format!("request time `{seconds}` is not a number of seconds"))?;
    let latency_ms = (seconds * 1000.0 * 1000.0).round() / 1000.0;
    Ok(Request { ts, client, method, url, status, bytes, latency_ms })
}

/// `25/Nov/2026:10:00:05 +0000` → epoch milliseconds.
fn parse_time(text: &str) -> Result<i64, String> {
    let bad = || format!("time `{text}` is not like `25/Nov/2026:10:00:05 +0000`");
    let (stamp, offset) = text.split_once(' ').ok_or_else(bad)?;
    let mut p = stamp.split(['/', ':']);
    let mut next = || p.next().ok_or_else(bad);
    let day: i64 = next()?.parse().map_err(|_| bad())?;
    let month = next()?;
    let month = MONTHS.iter().position(|m| *m == month).ok_or_else(bad)? as i64 + 1;
    let year: i64 = next()?.parse().map_err(|_| bad())?;
    let hms: Vec<i64> = (0..3).map(|_| next()?.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
    if !(1..=31).contains(&day) || hms[0] > 23 || hms[1] > 59 || hms[2] > 60 {
        return Err(bad());
    }
    let sign = match offset.as_bytes().first() {
        Some(b'+') => 1,
        Some(b'-') => -1,
        _ => return Err(bad()),
    };
    let digits: i64 = offset[1..].parse().map_err(|_| bad())?;
    let offset_s = sign * ((digits / 100) * 3600 + (digits % 100) * 60);
    let seconds = days_from_civil(year, month, day) * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2] - offset_s;
    Ok(seconds * 1000)
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

weir::plugin! {
    name: "access_log",
    version: "0.1.0",
    functions: [parse],
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use weir::testing::Harness;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Parsed {
        ts: i64,
        client: String,
        method: String,
        url: String,
        status: u16,
        bytes: u64,
        latency_ms: f64,
    }

    fn parse_one(line: &str) -> Result<Parsed, String> {
        let mut out = Harness::new(&PLUGIN).try_apply::<_, Parsed>("parse", [line]).unwrap();
        let row = out.remove(0);
        row.map(|mut rows| rows.remove(0))
    }

    #[test]
    fn a_combined_line_with_request_time() {
        let line =
            r#"10.0.0.1 - - [25/Nov/2026:10:00:05 +0000] "GET /cart?id=7 HTTP/1.1" 200 512 "-" "curl/8.5" 0.037"#;
        let expected = Parsed {
            ts: 1_795_600_805_000,
            client: "10.0.0.1".into(),
            method: "GET".into(),
            url: "/cart".into(),
            status: 200,
            bytes: 512,
            latency_ms: 37.0,
        };
        assert_eq!(parse_one(line), Ok(expected));
    }

    #[test]
    fn the_offset_is_applied_and_common_format_parses() {
        // 11:00:05 at +01:00 is 10:00:05 UTC.
        let line = r#"::1 - bob [25/Nov/2026:11:00:05 +0100] "POST /api HTTP/2.0" 503 - 1.5"#;
        let p = parse_one(line).unwrap();
        assert_eq!(
            (p.ts, p.url.as_str(), p.status, p.bytes, p.latency_ms),
            (1_795_600_805_000, "/api", 503, 0, 1500.0)
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let err = |line: &str| parse_one(line).unwrap_err();
        assert!(err("garbage").contains("expected"), "{}", err("garbage"));
        assert!(err(r#"1 - - [25/Nov/2026:10:00:05 +0000] "GET / HTTP/1.1" 2xx 5 0.1"#).contains("status `2xx`"));
        assert!(err(r#"1 - - [25/Foo/2026:10:00:05 +0000] "GET / HTTP/1.1" 200 5 0.1"#).contains("time"));
        assert!(err(r#"1 - - [25/Nov/2026:10:00:05 +0000] "GET / HTTP/1.1" 200 5"#).contains("request time"));
    }
}
