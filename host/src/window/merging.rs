//! Session window merging, after Flink's `TimeWindow.mergeWindows` and `MergingWindowSet`.
//!
//! A key's session windows never intersect (touching counts, see
//! [`TimeWindow::intersects`]). A new record's window `[t, t + gap)` either stands alone,
//! falls inside a session, or bridges one or more sessions into a larger one. The result
//! is returned as data, a [`WindowMerge`], so the window operator can merge accumulators
//! (a UDAF's `merge`, or [`Accumulator::merge`](super::Accumulator::merge)) and move
//! timers without this module knowing about either.
//!
//! Unlike Flink, which keeps a mapping from each merged window to the window its state
//! lives under (to avoid moving state), Weir stores a session's accumulator under the
//! session's own window: a merge reads the accumulators of `merged`, writes one under
//! `into`. Accumulators are small, and the state then reads like the output.

use serde::{Deserialize, Serialize};

use super::TimeWindow;

/// What adding a window to a key's sessions did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowMerge {
    /// The session the new record belongs to now.
    pub into: TimeWindow,
    /// Existing sessions absorbed into `into`, in start order: take their accumulators out
    /// of state, merge them, add the new record, and store the result under `into`. Empty
    /// when the record starts a new session; `[into]` when it falls inside one.
    pub merged: Vec<TimeWindow>,
}

impl WindowMerge {
    /// Whether accumulators must be merged (two or more sessions became one, or one grew).
    pub fn needs_merge(&self) -> bool {
        self.merged.len() > 1 || self.merged.first().is_some_and(|w| *w != self.into)
    }
}

/// Merge `new` into a key's sessions, Flink's way: everything that intersects the growing
/// cover of `new` joins it. `existing` need not be sorted, and even overlapping inputs
/// (which only a bug produces) give a correct cover.
pub fn merge_session(existing: &[TimeWindow], new: TimeWindow) -> WindowMerge {
    let mut into = new;
    let mut merged: Vec<TimeWindow> = Vec::new();
    // Repeat until stable: absorbing one window can widen the cover into another.
    loop {
        let before = merged.len();
        for w in existing {
            if w.intersects(&into) && !merged.contains(w) {
                into = into.cover(w);
                merged.push(*w);
            }
        }
        if merged.len() == before {
            break;
        }
    }
    merged.sort_unstable();
    WindowMerge { into, merged }
}

/// A key's session windows (Flink's `MergingWindowSet`), serializable so it can live in
/// keyed state next to the accumulators. Kept sorted by start and non-intersecting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionWindows {
    windows: Vec<TimeWindow>,
}

impl SessionWindows {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a record's window; the merge to apply to the accumulators.
    pub fn add(&mut self, new: TimeWindow) -> WindowMerge {
        let merge = merge_session(&self.windows, new);
        self.windows.retain(|w| !merge.merged.contains(w));
        let at = self.windows.partition_point(|w| w < &merge.into);
        self.windows.insert(at, merge.into);
        merge
    }

    /// Forget a session (it fired and its lateness ran out, or its cleanup timer fired).
    pub fn remove(&mut self, window: &TimeWindow) -> bool {
        let before = self.windows.len();
        self.windows.retain(|w| w != window);
        self.windows.len() != before
    }

    pub fn windows(&self) -> &[TimeWindow] {
        &self.windows
    }

    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(start: i64, end: i64) -> TimeWindow {
        TimeWindow::new(start, end)
    }

    #[test]
    fn hand_worked_sessions_with_gap_10() {
        let mut s = SessionWindows::new();
        // A record at 0: a new session [0, 10), nothing to merge.
        let m = s.add(w(0, 10));
        assert_eq!(m, WindowMerge { into: w(0, 10), merged: vec![] });
        assert!(!m.needs_merge());
        // At 30: far from the first, a second session.
        s.add(w(30, 40));
        // At 5: inside [0, 10) and extends it to [0, 15): the session grows.
        let m = s.add(w(5, 15));
        assert_eq!(m, WindowMerge { into: w(0, 15), merged: vec![w(0, 10)] });
        assert!(m.needs_merge());
        // At 3: [3, 13) lies inside [0, 15): same session, accumulator updated in place.
        let m = s.add(w(3, 13));
        assert_eq!(m, WindowMerge { into: w(0, 15), merged: vec![w(0, 15)] });
        assert!(!m.needs_merge());
        // At 20: [20, 30) touches [30, 40) but not [0, 15): it joins the later session.
        assert_eq!(s.add(w(20, 30)), WindowMerge { into: w(20, 40), merged: vec![w(30, 40)] });
        // At 15: [15, 25) touches [0, 15) and overlaps [20, 40): it bridges both.
        assert_eq!(s.add(w(15, 25)), WindowMerge { into: w(0, 40), merged: vec![w(0, 15), w(20, 40)] });
        assert_eq!(s.windows(), &[w(0, 40)]);
        assert!(s.remove(&w(0, 40)) && s.is_empty() && !s.remove(&w(0, 40)));
    }

    #[test]
    fn a_cover_that_grows_picks_up_more() {
        // Overlapping inputs (a bug upstream) still merge into one cover.
        let m = merge_session(&[w(0, 5), w(4, 30), w(29, 40)], w(2, 3));
        assert_eq!(m, WindowMerge { into: w(0, 40), merged: vec![w(0, 5), w(4, 30), w(29, 40)] });
    }

    proptest! {
        #[test]
        fn sessions_stay_disjoint_and_cover_every_record(
            gap in 1i64..50,
            records in prop::collection::vec(-500i64..500, 1..60),
        ) {
            let mut s = SessionWindows::new();
            let mut before: Vec<TimeWindow> = Vec::new();
            for &t in &records {
                let new = w(t, t + gap);
                let m = s.add(new);
                // The new window and every absorbed one lie inside `into`...
                prop_assert!(m.into.start <= new.start && m.into.end >= new.end);
                for x in &m.merged {
                    prop_assert!(before.contains(x));
                    prop_assert!(m.into.start <= x.start && m.into.end >= x.end);
                }
                // ...and `into` is exactly their cover: nothing invented.
                let cover = m.merged.iter().fold(new, |c, x| c.cover(x));
                prop_assert_eq!(cover, m.into);
                before = s.windows().to_vec();
                prop_assert!(before.windows(2).all(|p| p[0].end < p[1].start), "sorted, disjoint, not touching: {:?}", before);
            }
            for &t in &records {
                prop_assert_eq!(s.windows().iter().filter(|x| x.contains(t)).count(), 1);
            }
            // Order does not matter: the same records in reverse give the same sessions.
            let mut r = SessionWindows::new();
            records.iter().rev().for_each(|&t| { r.add(w(t, t + gap)); });
            prop_assert_eq!(r.windows(), s.windows());
        }
    }
}
