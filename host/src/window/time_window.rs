//! The window type: a half-open interval of milliseconds, like Flink's `TimeWindow`.

use serde::{Deserialize, Serialize};

/// The window `[start, end)`. Windowed results carry it so users see which window a result
/// is for; it is also the namespace of a window's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimeWindow {
    pub start: i64,
    pub end: i64,
}

impl TimeWindow {
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }

    /// The last millisecond in the window (`end - 1`): the window fires when the watermark
    /// reaches it, because then no record of the window can still be on time.
    pub fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }

    pub fn contains(&self, timestamp: i64) -> bool {
        self.start <= timestamp && timestamp < self.end
    }

    /// Flink's `TimeWindow.intersects`: overlapping *or touching* windows, so a session
    /// record exactly `gap` after the previous one continues the session.
    pub fn intersects(&self, other: &TimeWindow) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// The smallest window covering both.
    pub fn cover(&self, other: &TimeWindow) -> TimeWindow {
        TimeWindow::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Flink's `TimeWindow.getWindowStartWithOffset`: the start of the window of length
    /// `size` (aligned to `offset` past the epoch) that contains `timestamp`. Flink writes it
    /// with a remainder that it corrects when negative; that is a Euclidean remainder, which
    /// keeps negative timestamps in the window *below* them. Computed in i128 and clamped, so
    /// timestamps near the ends of i64 cannot overflow.
    pub fn start_with_offset(timestamp: i64, offset: i64, size: i64) -> i64 {
        clamp(start_with_offset_wide(timestamp, offset, size))
    }
}

impl std::fmt::Display for TimeWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {})", self.start, self.end)
    }
}

/// [`TimeWindow::start_with_offset`] before clamping (a non-positive size counts as 1).
pub(crate) fn start_with_offset_wide(timestamp: i64, offset: i64, size: i64) -> i128 {
    let ts = i128::from(timestamp);
    ts - (ts - i128::from(offset)).rem_euclid(i128::from(size.max(1)))
}

pub(crate) fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_window_starts() {
        // Hourly windows: 10:00:00.123 (as ms of a day) starts at 10:00.
        assert_eq!(TimeWindow::start_with_offset(36_000_123, 0, 3_600_000), 36_000_000);
        // Offsets shift the grid: 15-minute offset, so 10:00 is in [09:15, 10:15).
        assert_eq!(TimeWindow::start_with_offset(36_000_000, 900_000, 3_600_000), 33_300_000);
        // Negative timestamps go down, not toward zero: -1 is in [-10, 0), not [0, 10).
        assert_eq!(TimeWindow::start_with_offset(-1, 0, 10), -10);
        assert_eq!(TimeWindow::start_with_offset(-10, 0, 10), -10);
        assert_eq!(TimeWindow::start_with_offset(-11, 0, 10), -20);
        // Negative offsets are allowed: -3 shifts the grid to ..., -3, 7, 17, ...
        assert_eq!(TimeWindow::start_with_offset(5, -3, 10), -3);
        assert_eq!(TimeWindow::start_with_offset(i64::MIN, 0, 7), i64::MIN);
    }

    #[test]
    fn half_open_and_touching() {
        let w = TimeWindow::new(0, 10);
        assert!(w.contains(0) && w.contains(9) && !w.contains(10));
        assert_eq!(w.max_timestamp(), 9);
        assert!(w.intersects(&TimeWindow::new(10, 20)), "touching windows intersect (sessions merge)");
        assert!(!w.intersects(&TimeWindow::new(11, 20)));
        assert_eq!(w.cover(&TimeWindow::new(5, 30)), TimeWindow::new(0, 30));
        assert_eq!(w.to_string(), "[0, 10)");
    }
}
