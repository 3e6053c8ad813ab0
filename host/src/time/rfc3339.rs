//! A strict RFC 3339 parser to epoch milliseconds, and the matching formatter.
//!
//! Hand-written rather than a dependency: the grammar is small (RFC 3339 section 5.6), the
//! civil-date arithmetic is Howard Hinnant's well-known `days_from_civil`, and the proptest
//! round trips below check it against its inverse over years 0000-9999 and every offset.
//! Neither `time` nor `chrono` is in the dependency tree today, and this is the only place
//! that needs calendar math.
//!
//! Accepted: `YYYY-MM-DD`, a `T` (or `t`, or a space as RFC 3339 allows), `hh:mm:ss`, an
//! optional fraction of any length (digits past milliseconds are truncated toward the
//! past), and `Z`, `z` or `+hh:mm` / `-hh:mm`. Rejected with a reason: anything else,
//! impossible dates (`2026-02-29`), and leap seconds (`:60`), which epoch milliseconds
//! cannot represent.

use thiserror::Error;

/// A string that is not an RFC 3339 timestamp, with what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{input}` is not an RFC 3339 timestamp like 2026-11-25T10:00:00.123Z: {reason}")]
pub struct Rfc3339Error {
    pub input: String,
    pub reason: &'static str,
}

/// Parse an RFC 3339 timestamp to epoch milliseconds.
///
/// ```
/// use weir::time::parse_rfc3339;
/// assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Ok(1_500));
/// assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Ok(0));
/// ```
pub fn parse_rfc3339(input: &str) -> Result<i64, Rfc3339Error> {
    let fail = |reason| Rfc3339Error { input: input.to_string(), reason };
    let b = input.as_bytes();
    if b.len() < 20 {
        return Err(fail("too short for a date, a time and an offset"));
    }
    let year = digits(b, 0, 4).ok_or_else(|| fail("the year must be 4 digits"))?;
    let month = digits(b, 5, 2).ok_or_else(|| fail("the month must be 2 digits"))?;
    let day = digits(b, 8, 2).ok_or_else(|| fail("the day must be 2 digits"))?;
    let hour = digits(b, 11, 2).ok_or_else(|| fail("the hour must be 2 digits"))?;
    let minute = digits(b, 14, 2).ok_or_else(|| fail("the minute must be 2 digits"))?;
    let second = digits(b, 17, 2).ok_or_else(|| fail("the second must be 2 digits"))?;
    if b[4] != b'-' || b[7] != b'-' {
        return Err(fail("the date must be YYYY-MM-DD"));
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(fail("date and time must be separated by `T`"));
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(fail("the time must be hh:mm:ss"));
    }
    if !(1..=12).contains(&month) {
        return Err(fail("the month must be 01-12"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(fail("the day does not exist in that month"));
    }
    if hour > 23 || minute > 59 {
        return Err(fail("the hour must be 00-23 and the minute 00-59"));
    }
    if second == 60 {
        return Err(fail("leap seconds cannot be represented in epoch milliseconds"));
    }
    if second > 59 {
        return Err(fail("the second must be 00-59"));
    }

    let mut pos = 19;
    let mut millis = 0;
    if b[pos] == b'.' {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            if pos - start < 3 {
                millis = millis * 10 + i64::from(b[pos] - b'0');
            }
            pos += 1;
        }
        match pos - start {
            0 => return Err(fail("a `.` must be followed by fraction digits")),
            1 => millis *= 100,
            2 => millis *= 10,
            _ => {}
        }
    }

    let offset_minutes = match &b[pos..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = digits(b, pos + 1, 2)
                .zip(digits(b, pos + 4, 2))
                .ok_or_else(|| fail("the offset must be +hh:mm or -hh:mm"))?;
            if h > 23 || m > 59 {
                return Err(fail("the offset must be at most 23:59"));
            }
            let minutes = h * 60 + m;
            if *sign == b'-' { -minutes } else { minutes }
        }
        [] => return Err(fail("the offset is missing (add `Z` for UTC)")),
        _ => return Err(fail("the offset must be `Z`, +hh:mm or -hh:mm, with nothing after it")),
    };

    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

/// Format epoch milliseconds as RFC 3339 in UTC with millisecond precision, e.g.
/// `2026-11-25T10:00:00.123Z`; `None` outside years 0000-9999, which RFC 3339 cannot write.
pub fn format_rfc3339(millis: i64) -> Option<String> {
    let days = millis.div_euclid(86_400_000);
    let in_day = millis.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let (h, m, s, ms) = (in_day / 3_600_000, in_day / 60_000 % 60, in_day / 1_000 % 60, in_day % 1_000);
    Some(format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{ms:03}Z"))
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    b.get(at..at + n)?.iter().try_fold(0i64, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0')))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant, "chrono-Compatible
/// Low-Level Date Algorithms"): years are shifted to start in March so the leap day is last.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
    const MIN: i64 = -62_167_219_200_000;
    const MAX: i64 = 253_402_300_799_999;

    #[test]
    fn known_instants() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Ok(0));
        // 2026-11-25 is day 20782 since the epoch: 20782 * 86400 s + 10 h.
        assert_eq!(parse_rfc3339("2026-11-25T10:00:00.123Z"), Ok(1_795_600_800_123));
        // +01:00 means local time is one hour ahead of UTC: 11:00 there is 10:00 UTC.
        assert_eq!(parse_rfc3339("2026-11-25T11:00:00.123+01:00"), Ok(1_795_600_800_123));
        assert_eq!(parse_rfc3339("2026-11-25T05:30:00.123-04:30"), Ok(1_795_600_800_123));
        // Before the epoch the fraction still counts forward: .250 after -1 s is -750 ms.
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59.25Z"), Ok(-750));
        // Sub-millisecond digits are truncated, never rounded up into the next millisecond.
        assert_eq!(parse_rfc3339("1970-01-01t00:00:00.999999z"), Ok(999));
        assert_eq!(parse_rfc3339("2000-02-29 12:00:00Z"), Ok(951_825_600_000));
        assert_eq!(format_rfc3339(1_795_600_800_123).as_deref(), Some("2026-11-25T10:00:00.123Z"));
        assert_eq!(format_rfc3339(-750).as_deref(), Some("1969-12-31T23:59:59.250Z"));
        assert_eq!(format_rfc3339(MAX + 1), None);
        assert_eq!(format_rfc3339(MIN - 1), None);
    }

    #[test]
    fn rejects_with_a_reason() {
        for (bad, why) in [
            ("2026-11-25", "too short"),
            ("2026-11-25T10:00:00", "too short"),
            ("2026-11-25T10:00:00.5", "offset is missing"),
            ("2026-02-29T10:00:00Z", "does not exist"),
            ("2026-13-01T10:00:00Z", "month must be 01-12"),
            ("2026-11-25T24:00:00Z", "hour must be"),
            ("2026-12-31T23:59:60Z", "leap seconds"),
            ("2026-11-25T10:00:00.Z", "fraction digits"),
            ("2026-11-25T10:00:00+0100", "offset must be"),
            ("2026-11-25T10:00:00Z ", "nothing after it"),
            ("2026/11/25T10:00:00Z", "YYYY-MM-DD"),
            ("２026-11-25T10:00:00Z", "year must be 4 digits"),
            ("1795600800123", "too short"),
        ] {
            let err = parse_rfc3339(bad).expect_err(bad);
            assert!(err.to_string().contains(why), "{bad}: {err}");
            assert_eq!(err.input, bad);
        }
    }

    proptest! {
        #[test]
        fn utc_round_trip(ms in MIN..=MAX) {
            let text = format_rfc3339(ms).expect("in range");
            prop_assert_eq!(parse_rfc3339(&text), Ok(ms));
        }

        #[test]
        fn offset_round_trip(ms in MIN + 86_400_000..=MAX - 86_400_000, offset in -(23 * 60 + 59)..=(23 * 60 + 59i64)) {
            // Write the same instant as local time at `offset` and read it back.
            let local = format_rfc3339(ms + offset * 60_000).expect("in range");
            let sign = if offset < 0 { '-' } else { '+' };
            let text = format!("{}{sign}{:02}:{:02}", &local[..local.len() - 1], offset.abs() / 60, offset.abs() % 60);
            prop_assert_eq!(parse_rfc3339(&text), Ok(ms));
        }

        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = parse_rfc3339(&s);
        }

        #[test]
        fn days_round_trip(days in -800_000i64..3_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
