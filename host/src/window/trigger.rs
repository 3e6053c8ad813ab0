//! When a window fires, when a record is too late, and when a window's state goes away:
//! Flink's `EventTimeTrigger` and `WindowOperator` rules as pure functions of the current
//! watermark (or, for processing-time windows, the clock).
//!
//! - A window **fires** once the watermark reaches its last millisecond
//!   (`watermark >= max_timestamp`): no on-time record of it can still come.
//! - A window stays **open for late records** until `max_timestamp + allowed_lateness`, its
//!   **cleanup time**. A late record within that time updates the window's accumulator and
//!   fires it again at once, with the updated result.
//! - A record is **dropped to the late side output** when every window it belongs to is
//!   past its cleanup time and the record itself is older than `watermark -
//!   allowed_lateness`. For tumbling and sliding windows the second condition follows from
//!   the first; it matters for a record that falls into no window (a gap between sliding
//!   windows), which Flink drops silently unless it is late. For session windows, pass
//!   the merged window (the `into` of a [`WindowMerge`](super::WindowMerge)), as Flink
//!   checks lateness after merging.

use super::TimeWindow;

/// What to do with a window that just received an on-time or allowed-late record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnElement {
    /// The watermark already passed the window's end: emit its updated result now.
    FireNow,
    /// Register an event-time timer at this time (the window's `max_timestamp`) and fire
    /// when the watermark reaches it.
    FireAt(i64),
}

/// The time at which `window` fires: its last millisecond.
pub fn fire_time(window: &TimeWindow) -> i64 {
    window.max_timestamp()
}

/// Whether `window` is complete at `watermark`.
pub fn is_ready(window: &TimeWindow, watermark: i64) -> bool {
    watermark >= window.max_timestamp()
}

/// The trigger's answer for a window that just got a record (Flink's
/// `EventTimeTrigger.onElement`).
pub fn on_element(window: &TimeWindow, watermark: i64) -> OnElement {
    if is_ready(window, watermark) { OnElement::FireNow } else { OnElement::FireAt(fire_time(window)) }
}

/// When `window`'s state and timers are dropped: `max_timestamp + allowed_lateness`,
/// saturating at `i64::MAX` as Flink's `cleanupTime` does.
pub fn cleanup_time(window: &TimeWindow, allowed_lateness: i64) -> i64 {
    window.max_timestamp().saturating_add(allowed_lateness.max(0))
}

/// Whether `window` no longer accepts records (Flink's `isWindowLate`).
pub fn is_window_late(window: &TimeWindow, watermark: i64, allowed_lateness: i64) -> bool {
    cleanup_time(window, allowed_lateness) <= watermark
}

/// Whether a record at `timestamp` whose windows are `windows` goes to the late side
/// output (Flink's `isSkippedElement && isElementLate`); see the module docs.
pub fn is_record_late(timestamp: i64, windows: &[TimeWindow], watermark: i64, allowed_lateness: i64) -> bool {
    windows.iter().all(|w| is_window_late(w, watermark, allowed_lateness))
        && timestamp.saturating_add(allowed_lateness.max(0)) <= watermark
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowAssigner;
    use proptest::prelude::*;

    #[test]
    fn a_minute_window_with_ten_seconds_of_lateness() {
        let w = TimeWindow::new(0, 60_000);
        let lateness = 10_000;
        // Watermark 59_998: a record at 59_999 may still come on time.
        assert!(!is_ready(&w, 59_998));
        assert_eq!(on_element(&w, 59_998), OnElement::FireAt(59_999));
        // Watermark 59_999: complete, fire.
        assert!(is_ready(&w, 59_999));
        // A record for this window at watermark 65_000 is late but within lateness: it is
        // added and the window fires again with the updated result.
        assert!(!is_record_late(30_000, &[w], 65_000, lateness));
        assert_eq!(on_element(&w, 65_000), OnElement::FireNow);
        // Cleanup at 59_999 + 10_000: from then on records of the window are dropped.
        assert_eq!(cleanup_time(&w, lateness), 69_999);
        assert!(!is_record_late(30_000, &[w], 69_998, lateness));
        assert!(is_record_late(30_000, &[w], 69_999, lateness));
        // Without lateness a record is dropped as soon as its window has fired.
        assert!(is_record_late(59_999, &[w], 59_999, 0));
        assert_eq!(cleanup_time(&TimeWindow::new(0, i64::MAX), 5), i64::MAX);
    }

    #[test]
    fn a_record_is_late_only_when_all_its_windows_are() {
        // 10 s windows every 5 s: 7_000 is in [5_000, 15_000) and [0, 10_000).
        let windows = WindowAssigner::sliding(10_000, 5_000, 0).unwrap().assign(7_000);
        // Watermark 12_000: [0, 10_000) is done, [5_000, 15_000) is not: keep the record
        // (the operator adds it to the open window only, see is_window_late).
        assert!(!is_record_late(7_000, &windows, 12_000, 0));
        assert!(is_window_late(&windows[1], 12_000, 0) && !is_window_late(&windows[0], 12_000, 0));
        assert!(is_record_late(7_000, &windows, 14_999, 0));
    }

    #[test]
    fn a_record_in_no_window_is_late_only_by_its_own_time() {
        // 2 ms windows every 5 ms: 3 is in a gap. Flink drops it silently unless the
        // record itself is late, and only then sends it to the side output.
        assert!(!is_record_late(3, &[], 2, 0));
        assert!(is_record_late(3, &[], 3, 0));
    }

    proptest! {
        #[test]
        fn a_late_record_has_only_closed_windows(size in 1i64..1_000, slide in 1i64..1_000, ts in -5_000i64..5_000, wm in -6_000i64..6_000, lateness in 0i64..2_000) {
            let windows = WindowAssigner::sliding(size, slide, 0).unwrap().assign(ts);
            let late = is_record_late(ts, &windows, wm, lateness);
            if late {
                prop_assert!(windows.iter().all(|w| is_ready(w, wm)), "a late record's windows have all fired");
                prop_assert!(ts + lateness <= wm);
            } else if !windows.is_empty() {
                prop_assert!(windows.iter().any(|w| !is_window_late(w, wm, lateness)));
            }
        }
    }
}
