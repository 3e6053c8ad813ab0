//! Window assigners: tumbling, sliding and session windows, with Flink's formulas.
//!
//! Sizes, slides, gaps and offsets are milliseconds. The same assigner serves event time
//! (pass the record's timestamp) and processing time (pass the clock's `now`). Windows are
//! computed in i128 and clamped to i64, so timestamps within one window size of the ends of
//! i64 get windows clipped at the end of the range instead of overflowing.

use thiserror::Error;

use super::time_window::{TimeWindow, clamp, start_with_offset_wide};

/// A window definition that cannot work, named with Flink's rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WindowConfigError {
    #[error("tumbling windows need size > 0 and |offset| < size (got size {size} ms, offset {offset} ms)")]
    Tumbling { size: i64, offset: i64 },
    #[error(
        "sliding windows need size > 0, slide > 0 and |offset| < slide (got size {size} ms, slide {slide} ms, offset {offset} ms)"
    )]
    Sliding { size: i64, slide: i64, offset: i64 },
    #[error("session windows need a gap > 0 (got {gap} ms)")]
    Session { gap: i64 },
}

/// Which windows a timestamp belongs to.
///
/// ```
/// use weir::window::{TimeWindow, WindowAssigner};
/// let five_by_one = WindowAssigner::sliding(5_000, 1_000, 0).unwrap();
/// let windows = five_by_one.assign(12_500);
/// assert_eq!(windows.len(), 5);
/// assert_eq!(windows[0], TimeWindow::new(12_000, 17_000)); // latest start first, as Flink
/// assert_eq!(windows[4], TimeWindow::new(8_000, 13_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowAssigner {
    Tumbling { size: i64, offset: i64 },
    Sliding { size: i64, slide: i64, offset: i64 },
    Session { gap: i64 },
}

/// `tumbling 1 min`, `sliding 5 min every 1 min`, `session gap 30 s` (with `offset 15 min`
/// when there is one): how step names show a window.
impl std::fmt::Display for WindowAssigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let offset = |offset: i64| if offset == 0 { String::new() } else { format!(" offset {}", Duration(offset)) };
        match *self {
            WindowAssigner::Tumbling { size, offset: o } => write!(f, "tumbling {}{}", Duration(size), offset(o)),
            WindowAssigner::Sliding { size, slide, offset: o } => {
                write!(f, "sliding {} every {}{}", Duration(size), Duration(slide), offset(o))
            }
            WindowAssigner::Session { gap } => write!(f, "session gap {}", Duration(gap)),
        }
    }
}

/// Milliseconds in the largest unit that shows them exactly: `2 h`, `90 s`, `250 ms`.
struct Duration(i64);

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = self.0;
        match [(3_600_000, "h"), (60_000, "min"), (1_000, "s")].iter().find(|(unit, _)| ms != 0 && ms % unit == 0) {
            Some((unit, name)) => write!(f, "{} {name}", ms / unit),
            None => write!(f, "{ms} ms"),
        }
    }
}

impl WindowAssigner {
    /// Windows `[offset + k*size, offset + (k+1)*size)`: every timestamp in exactly one.
    pub fn tumbling(size: i64, offset: i64) -> Result<Self, WindowConfigError> {
        if size <= 0 || offset.checked_abs().is_none_or(|o| o >= size) {
            return Err(WindowConfigError::Tumbling { size, offset });
        }
        Ok(Self::Tumbling { size, offset })
    }

    /// Windows of length `size` starting every `slide`: a timestamp is in `size / slide`
    /// of them when the slide divides the size, and in none when `slide > size` and it
    /// falls in a gap between windows.
    pub fn sliding(size: i64, slide: i64, offset: i64) -> Result<Self, WindowConfigError> {
        if size <= 0 || slide <= 0 || offset.checked_abs().is_none_or(|o| o >= slide) {
            return Err(WindowConfigError::Sliding { size, slide, offset });
        }
        Ok(Self::Sliding { size, slide, offset })
    }

    /// `[t, t + gap)` per record; overlapping or touching windows of a key merge (see
    /// [`merge_session`](super::merge_session)).
    pub fn session(gap: i64) -> Result<Self, WindowConfigError> {
        if gap <= 0 {
            return Err(WindowConfigError::Session { gap });
        }
        Ok(Self::Session { gap })
    }

    /// Session windows merge; the others never do.
    pub fn is_merging(&self) -> bool {
        matches!(self, Self::Session { .. })
    }

    /// The windows of `timestamp`.
    pub fn assign(&self, timestamp: i64) -> Vec<TimeWindow> {
        let mut out = Vec::new();
        self.assign_into(timestamp, &mut out);
        out
    }

    /// The windows of `timestamp`, appended to `out` (reuse one buffer on the hot path).
    pub fn assign_into(&self, timestamp: i64, out: &mut Vec<TimeWindow>) {
        let ts = i128::from(timestamp);
        match *self {
            Self::Tumbling { size, offset } => {
                let start = TimeWindow::start_with_offset(timestamp, offset, size);
                out.push(window(i128::from(start), size));
            }
            Self::Sliding { size, slide, offset } => {
                // Flink's SlidingEventTimeWindows.assignWindows: from the last window that
                // starts at or before the timestamp, step back while it still reaches it.
                let mut start = start_with_offset_wide(timestamp, offset, slide);
                while start > ts - i128::from(size) {
                    out.push(window(start, size));
                    start -= i128::from(slide);
                }
            }
            Self::Session { gap } => out.push(window(ts, gap)),
        }
    }
}

fn window(start: i128, size: i64) -> TimeWindow {
    TimeWindow::new(clamp(start), clamp(start + i128::from(size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_show_their_sizes_in_words() {
        assert_eq!(WindowAssigner::tumbling(60_000, 0).unwrap().to_string(), "tumbling 1 min");
        assert_eq!(WindowAssigner::tumbling(3_600_000, 900_000).unwrap().to_string(), "tumbling 1 h offset 15 min");
        assert_eq!(WindowAssigner::sliding(300_000, 90_000, 0).unwrap().to_string(), "sliding 5 min every 90 s");
        assert_eq!(WindowAssigner::session(250).unwrap().to_string(), "session gap 250 ms");
    }
    use proptest::prelude::*;

    #[test]
    fn hand_worked_assignments() {
        let minute = WindowAssigner::tumbling(60_000, 0).unwrap();
        // 10:00:59.999 is the last millisecond of the 10:00 minute; 10:01:00 starts the next.
        assert_eq!(minute.assign(36_059_999), vec![TimeWindow::new(36_000_000, 36_060_000)]);
        assert_eq!(minute.assign(36_060_000), vec![TimeWindow::new(36_060_000, 36_120_000)]);
        assert_eq!(minute.assign(-1), vec![TimeWindow::new(-60_000, 0)], "before the epoch");

        // size 10, slide 4: starts ..., 0, 4, 8, ...; 9 is in [8,18), [4,14) and [0,10).
        let sliding = WindowAssigner::sliding(10, 4, 0).unwrap();
        assert_eq!(sliding.assign(9), vec![TimeWindow::new(8, 18), TimeWindow::new(4, 14), TimeWindow::new(0, 10)]);
        // 10 is past [0,10): only two windows.
        assert_eq!(sliding.assign(10), vec![TimeWindow::new(8, 18), TimeWindow::new(4, 14)]);
        // size 2, slide 5: windows [0,2), [5,7): 3 falls in the gap.
        assert_eq!(WindowAssigner::sliding(2, 5, 0).unwrap().assign(3), vec![]);

        assert_eq!(WindowAssigner::session(30).unwrap().assign(-5), vec![TimeWindow::new(-5, 25)]);
        assert!(WindowAssigner::session(30).unwrap().is_merging() && !minute.is_merging());
    }

    #[test]
    fn rejects_what_flink_rejects() {
        assert!(WindowAssigner::tumbling(0, 0).is_err());
        assert!(WindowAssigner::tumbling(10, 10).is_err());
        assert!(WindowAssigner::tumbling(10, -10).is_err());
        assert!(WindowAssigner::tumbling(10, i64::MIN).is_err());
        assert!(WindowAssigner::tumbling(10, -9).is_ok());
        assert!(WindowAssigner::sliding(10, 0, 0).is_err());
        assert!(WindowAssigner::sliding(10, 5, 5).is_err());
        assert!(WindowAssigner::sliding(-1, 5, 0).is_err());
        let err = WindowAssigner::session(0).unwrap_err().to_string();
        assert!(err.contains("gap > 0 (got 0 ms)"), "{err}");
    }

    #[test]
    fn extremes_do_not_overflow() {
        let w = WindowAssigner::tumbling(1_000, 0).unwrap().assign(i64::MAX);
        assert_eq!(w[0].end, i64::MAX);
        assert_eq!(WindowAssigner::session(10).unwrap().assign(i64::MAX)[0], TimeWindow::new(i64::MAX, i64::MAX));
        // The grid starts s with s <= i64::MIN < s + 10 are MIN-1, MIN-4 and MIN-7: three
        // windows, clipped at the bottom of the range but still containing the timestamp.
        let w = WindowAssigner::sliding(10, 3, 0).unwrap().assign(i64::MIN);
        assert_eq!(w.len(), 3);
        assert!(w.iter().all(|w| w.contains(i64::MIN)));
    }

    const T: std::ops::Range<i64> = -1_000_000_000_000..1_000_000_000_000;

    proptest! {
        #[test]
        fn tumbling_windows_partition_the_line(size in 1i64..100_000, off in 0i64..100_000, ts in T) {
            let offset = off % size;
            let a = WindowAssigner::tumbling(size, offset).unwrap();
            let w = a.assign(ts);
            prop_assert_eq!(w.len(), 1);
            prop_assert!(w[0].contains(ts));
            prop_assert_eq!(w[0].end - w[0].start, size);
            prop_assert_eq!((w[0].start - offset).rem_euclid(size), 0, "on the grid");
            // Neighbours: the windows of the first and last millisecond are this one, and
            // the millisecond before and after belong to the adjacent windows.
            prop_assert_eq!(a.assign(w[0].start), w.clone());
            prop_assert_eq!(a.assign(w[0].max_timestamp()), w.clone());
            prop_assert_eq!(a.assign(w[0].end)[0].start, w[0].end);
            prop_assert_eq!(a.assign(w[0].start - 1)[0].end, w[0].start);
        }

        #[test]
        fn sliding_windows_contain_the_timestamp(size in 1i64..10_000, slide in 1i64..10_000, off in 0i64..10_000, ts in T) {
            let offset = off % slide;
            let w = WindowAssigner::sliding(size, slide, offset).unwrap().assign(ts);
            for x in &w {
                prop_assert!(x.contains(ts));
                prop_assert_eq!(x.end - x.start, size);
                prop_assert_eq!((x.start - offset).rem_euclid(slide), 0);
            }
            prop_assert!(w.windows(2).all(|p| p[0].start - p[1].start == slide), "consecutive, latest first");
            // Exactly the windows on the grid that contain ts: ceil-ish count.
            let expected = (0..=size / slide + 1).filter(|k| {
                let start = TimeWindow::start_with_offset(ts, offset, slide) - k * slide;
                start + size > ts
            }).count();
            prop_assert_eq!(w.len(), expected);
            if size % slide == 0 {
                prop_assert_eq!(w.len() as i64, size / slide);
            }
        }

        #[test]
        fn session_window_starts_at_the_record(gap in 1i64..100_000, ts in T) {
            let w = WindowAssigner::session(gap).unwrap().assign(ts);
            prop_assert_eq!(w, vec![TimeWindow::new(ts, ts + gap)]);
        }
    }
}
