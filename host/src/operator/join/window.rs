//! The window join: Flink's `a.join(b).where(..).equalTo(..).window(assigner)`.
//!
//! Rows of both sides are assigned event-time windows of [`crate::window`]: tumbling,
//! sliding or session. When the watermark reaches a window's last millisecond (its end -
//! 1, Flink's `maxTimestamp`), every pair of a left and a right row of the key in that
//! window comes out (the cross product: each left row in event-time order with each right
//! row in event-time order), with event time end - 1. A window with rows on one side only
//! emits nothing.
//!
//! **State.** A row is stored once, per key and side ordered by event time, however many
//! sliding windows it is in; a window's rows are found by its time range when it fires. A
//! row goes when the last of its windows has fired; a session window's rows when it fires.
//! Each key is queued at the end of its earliest window that holds rows, so a watermark
//! visits only keys with a window to fire. A key also remembers up to which watermark its
//! windows have fired (`fired`), so a window fires exactly once, and a row that came after
//! one of its sliding windows fired is not in that window.
//!
//! **Late rows.** A row whose windows have all fired (for a session: whose own window
//! `[ts, ts + gap)` is complete; it could not merge with a session that has fired, as those
//! are gone) goes to the late output, as in Flink's window operator without allowed
//! lateness. A sliding-window row in no window (a slide longer than the size) is dropped
//! like the window operator does: silently unless it is late.
//!
//! At the final watermark every window fires, as Flink's does.

use serde_bytes::Bytes;

use super::keyed::Keyed;
use super::rows::Rows;
use super::{JoinConfigError, JoinSides, JoinStats, Pairs, Side, blob, missing_timestamp, row_key, too_large};
use crate::record::Batch;
use crate::task::{DeadLetter, DeadLetters, LATE, Operator, OperatorError};
use crate::time::END_OF_TIME;
use crate::window::{SessionWindows, TimeWindow, WindowAssigner, trigger};

const KIND: &str = "window join";

/// Which windows a [`WindowJoin`] pairs rows in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowJoinConfig {
    pub sides: JoinSides,
    /// Tumbling, sliding or session windows, over event time.
    pub assigner: WindowAssigner,
}

/// The window join operator; see the module docs.
pub struct WindowJoin {
    name: String,
    shape: Shape,
    pairs: Pairs,
    keys: Keyed<KeyWindows>,
    watermark: i64,
    stats: JoinStats,
}

/// A key's rows, its sessions, and the watermark its windows have fired up to.
#[derive(Default)]
struct KeyWindows {
    left: Rows,
    right: Rows,
    sessions: SessionWindows,
    fired: i64,
}

impl KeyWindows {
    /// Set up a key's state (empty, or emptied by [`WindowJoin::fire`]).
    fn start(&mut self, fired: i64) {
        debug_assert!(self.left.is_empty() && self.right.is_empty());
        self.sessions = SessionWindows::new();
        self.fired = fired;
    }

    fn first_at(&self) -> Option<i64> {
        self.left.first_at().into_iter().chain(self.right.first_at()).min()
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Tumbling (slide = size) or sliding windows.
    Grid(Grid),
    Session {
        gap: i64,
    },
}

/// Windows `[s, s + size)` for every `s = offset + k * slide`, computed in i128 so that no
/// time near the ends of i64 overflows; windows are clamped to i64 as the assigner does.
#[derive(Debug, Clone, Copy)]
struct Grid {
    size: i128,
    slide: i128,
    offset: i128,
}

impl Grid {
    /// The latest window start at or before `t`.
    fn last_start(self, t: i128) -> i128 {
        let from_offset = t - self.offset;
        // In i64 when it fits: 128-bit division is a call, and this runs per row.
        let rem = match (i64::try_from(from_offset), i64::try_from(self.slide)) {
            (Ok(x), Ok(slide)) => i128::from(x.rem_euclid(slide)),
            _ => from_offset.rem_euclid(self.slide),
        };
        t - rem
    }

    /// The earliest window start after `t`.
    fn first_start_after(self, t: i128) -> i128 {
        self.last_start(t) + self.slide
    }

    /// The earliest window start whose window contains `t`.
    fn first_start_of(self, t: i128) -> i128 {
        self.first_start_after(t - self.size)
    }

    fn window(self, start: i128) -> TimeWindow {
        TimeWindow::new(clamp(start), clamp(start + self.size))
    }

    /// When the window at `start` fires.
    fn fire_time(self, start: i128) -> i64 {
        self.window(start).max_timestamp()
    }

    /// The first window start that has not fired once the watermark was `fired`.
    fn first_unfired(self, fired: i64) -> Option<i128> {
        // fire_time(s) > fired <=> s + size > fired + 1, while fired + 1 < i64::MAX.
        (fired < i64::MAX - 1).then(|| self.first_start_after(i128::from(fired) + 1 - self.size))
    }

    /// The last window start that fires at watermark `upto`.
    fn last_due(self, upto: i64) -> i128 {
        if upto >= i64::MAX - 1 { i128::MAX } else { self.last_start(i128::from(upto) + 1 - self.size) }
    }

    /// When the earliest window unfired at `fired` that holds the row at `ts` fires.
    fn next_fire(self, fired: i64, ts: i64) -> Option<i64> {
        let first = self.first_unfired(fired)?;
        Some(self.fire_time(first.max(self.first_start_of(i128::from(ts)))))
    }
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

impl WindowJoin {
    pub fn new(name: String, config: WindowJoinConfig) -> Result<Self, JoinConfigError> {
        let shape = match config.assigner {
            WindowAssigner::Tumbling { size, offset } => {
                Shape::Grid(Grid { size: size.into(), slide: size.into(), offset: offset.into() })
            }
            WindowAssigner::Sliding { size, slide, offset } => {
                Shape::Grid(Grid { size: size.into(), slide: slide.into(), offset: offset.into() })
            }
            WindowAssigner::Session { gap } => Shape::Session { gap },
        };
        Ok(Self {
            name,
            shape,
            pairs: Pairs::new(config.sides)?,
            keys: Keyed::default(),
            watermark: i64::MIN,
            stats: JoinStats::default(),
        })
    }

    pub fn stats(&self) -> JoinStats {
        JoinStats { keys: self.keys.len(), ..self.stats }
    }

    /// Rows held, both sides.
    pub fn state_rows(&self) -> usize {
        self.stats.state_rows
    }

    /// Pairs emitted.
    pub fn matches(&self) -> u64 {
        self.stats.matches
    }

    /// When a key next has a window to fire.
    fn next_due(shape: Shape, w: &KeyWindows) -> Option<i64> {
        match shape {
            Shape::Grid(grid) => grid.next_fire(w.fired, w.first_at()?),
            // Sessions are disjoint and in start order: the first ends first.
            Shape::Session { .. } => w.sessions.windows().first().map(TimeWindow::max_timestamp),
        }
    }

    fn on_rows(
        &mut self,
        side: Side,
        input: &Batch,
        out: &mut Batch,
        dead: &mut DeadLetters,
    ) -> Result<(), OperatorError> {
        for i in 0..input.len() {
            let key = row_key(&self.name, &self.pairs, side, input, i)?;
            let Some(ts) = input.timestamp(i) else {
                dead.push(missing_timestamp(&self.name, "a window join", input, i));
                continue;
            };
            // The row's last window (the others fire before it), or its session window.
            let last = match self.shape {
                Shape::Grid(grid) => {
                    let start = grid.last_start(ts.into());
                    (start + grid.size > i128::from(ts)).then(|| grid.window(start))
                }
                Shape::Session { gap } => Some(TimeWindow::new(ts, ts.saturating_add(gap))),
            };
            if trigger::is_record_late(ts, last.as_slice(), self.watermark, 0) {
                let message = format!(
                    "late row of `{}`: event time {ts} is in no window still open at the watermark {}",
                    self.pairs.name(side),
                    self.watermark
                );
                dead.push(DeadLetter::of_row(&self.name, LATE, message, input, i));
                self.stats.late += 1;
                continue;
            }
            let Some(window) = last else { continue };
            let watermark = self.watermark;
            let slot = self.keys.slot(key, |w| w.start(watermark));
            if self.keys.state(slot).fired < watermark {
                // Windows that became due before this row came fire without it (after a
                // restore of instances at different watermarks); else none are due.
                if self.keys.due(slot).is_some_and(|due| due <= watermark) {
                    self.fire(slot, watermark, out);
                }
                self.keys.state(slot).fired = watermark;
            }
            let (_, w) = self.keys.parts(slot);
            let rows = match side {
                Side::Left => &mut w.left,
                Side::Right => &mut w.right,
            };
            rows.insert(ts, ts, input.value(i)).map_err(|_| too_large(&self.name, self.pairs.name(side)))?;
            self.stats.state_rows += 1;
            let due = match self.shape {
                Shape::Grid(grid) => grid.next_fire(w.fired, ts),
                Shape::Session { .. } => {
                    w.sessions.add(window);
                    Self::next_due(self.shape, w)
                }
            };
            if let Some(due) = due {
                self.keys.schedule(slot, due);
            }
        }
        Ok(())
    }

    /// Fire the key's windows due at watermark `upto`, drop the rows no window needs any
    /// more, and schedule the key's next window; returns whether the key still has rows.
    fn fire(&mut self, slot: u32, upto: i64, out: &mut Batch) -> bool {
        let (key, w) = self.keys.parts(slot);
        let gone = match self.shape {
            Shape::Grid(grid) => fire_grid(grid, &self.pairs, &mut self.stats, key, w, upto, out),
            Shape::Session { .. } => fire_sessions(&self.pairs, &mut self.stats, key, w, upto, out),
        };
        w.fired = w.fired.max(upto);
        self.stats.state_rows -= gone;
        let rows = !(w.left.is_empty() && w.right.is_empty());
        if let Some(due) = Self::next_due(self.shape, w) {
            self.keys.schedule(slot, due);
        }
        rows
    }
}

/// Emit the pairs of the rows in `[from, to]`, at event time `to`.
fn emit_window(pairs: &Pairs, stats: &mut JoinStats, key: &[u8], w: &KeyWindows, from: i64, to: i64, out: &mut Batch) {
    let (left, right) = (w.left.between(from, to), w.right.between(from, to));
    if left.is_empty() || right.is_empty() {
        return;
    }
    stats.matches += (left.len() * right.len()) as u64;
    for i in left {
        let l = w.left.get(i).1;
        for j in right.clone() {
            pairs.emit(out, key, Some(to), l, w.right.get(j).1);
        }
    }
}

/// Fire the tumbling or sliding windows of a key that fire after `w.fired` and at or before
/// `upto`, in start order, skipping windows without rows; returns how many rows went.
fn fire_grid(
    grid: Grid,
    pairs: &Pairs,
    stats: &mut JoinStats,
    key: &[u8],
    w: &mut KeyWindows,
    upto: i64,
    out: &mut Batch,
) -> usize {
    let (Some(first), Some(min_ts)) = (grid.first_unfired(w.fired), w.first_at()) else { return 0 };
    let last = grid.last_due(upto);
    let mut start = first.max(grid.first_start_of(min_ts.into()));
    while start <= last {
        let window = grid.window(start);
        emit_window(pairs, stats, key, w, window.start, window.max_timestamp(), out);
        // On to the next window that holds a row.
        let Ok(from) = i64::try_from(start + grid.slide) else { break };
        let next = [&w.left, &w.right].into_iter().filter_map(|rows| {
            let i = rows.first_from(from);
            (i < rows.len()).then(|| rows.get(i).0.at)
        });
        let Some(next) = next.min() else { break };
        start = (start + grid.slide).max(grid.first_start_of(next.into()));
    }
    // A row goes when its last window has fired.
    let done = |ts: i64| upto == END_OF_TIME || grid.fire_time(grid.last_start(ts.into())) <= upto;
    w.left.drop_while(done) + w.right.drop_while(done)
}

/// Fire the sessions of a key that end at or before `upto`; returns how many rows went.
fn fire_sessions(
    pairs: &Pairs,
    stats: &mut JoinStats,
    key: &[u8],
    w: &mut KeyWindows,
    upto: i64,
    out: &mut Batch,
) -> usize {
    let mut fired = false;
    // Sessions are disjoint and in start order, so they also end in order.
    while let Some(&session) = w.sessions.windows().first().filter(|s| s.max_timestamp() <= upto) {
        emit_window(pairs, stats, key, w, session.start, session.max_timestamp(), out);
        w.sessions.remove(&session);
        fired = true;
    }
    if !fired {
        return 0;
    }
    // Every row is in a session, and the fired ones come first.
    match w.sessions.windows().first().map(|s| s.start) {
        Some(next) => w.left.drop_while(|ts| ts < next) + w.right.drop_while(|ts| ts < next),
        None => {
            let n = w.left.len() + w.right.len();
            w.left.clear();
            w.right.clear();
            n
        }
    }
}

impl Operator for WindowJoin {
    fn name(&self) -> &str {
        &self.name
    }

    fn process(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.on_rows(Side::Left, &input, out, dead)
    }

    fn process_second(&mut self, input: Batch, out: &mut Batch, dead: &mut DeadLetters) -> Result<(), OperatorError> {
        self.on_rows(Side::Right, &input, out, dead)
    }

    fn on_watermark(
        &mut self,
        watermark: i64,
        out: &mut Batch,
        _dead: &mut DeadLetters,
    ) -> Result<Option<i64>, OperatorError> {
        if watermark <= self.watermark {
            return Ok(Some(watermark));
        }
        self.watermark = watermark;
        while let Some(slot) = self.keys.pop_due(watermark) {
            if !self.fire(slot, watermark, out) {
                self.keys.remove(slot);
            }
        }
        Ok(Some(watermark))
    }

    fn snapshot(&mut self, _id: u64) -> Result<Option<Vec<u8>>, OperatorError> {
        let keys = self.keys.iter().map(|(k, w)| (Bytes::new(k), w.fired, &w.left, &w.right, &w.sessions)).collect();
        blob::write(&self.name, &blob::BlobRef { kind: KIND, watermark: self.watermark, keys })
    }

    fn restore(&mut self, blobs: &[&[u8]], owns: &dyn Fn(&[u8]) -> bool) -> Result<(), OperatorError> {
        for bytes in blobs {
            let snap: blob::Blob<(&Bytes, i64, Rows, Rows, SessionWindows)> = blob::read(&self.name, KIND, bytes)?;
            // Every instance had the same watermark or a lower one; event time only grows.
            // A key keeps the watermark its windows fired up to, so windows of a lower
            // instance that are due now still fire.
            self.watermark = self.watermark.max(snap.watermark);
            for (key, fired, left, right, sessions) in snap.keys.into_iter().filter(|e| owns(e.0)) {
                let slot = self.keys.slot(key, |w| w.start(fired));
                let w = self.keys.state(slot);
                w.left.extend(&left).map_err(|_| too_large(&self.name, &self.pairs.sides.left))?;
                w.right.extend(&right).map_err(|_| too_large(&self.name, &self.pairs.sides.right))?;
                for session in sessions.windows() {
                    w.sessions.add(*session);
                }
                self.stats.state_rows += left.len() + right.len();
            }
        }
        for slot in self.keys.slots() {
            if let Some(due) = Self::next_due(self.shape, self.keys.state(slot)) {
                self.keys.schedule(slot, due);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{is, step};
    use super::*;

    fn join(assigner: WindowAssigner) -> WindowJoin {
        WindowJoin::new("join".into(), WindowJoinConfig { sides: JoinSides::new("l", "r"), assigner }).unwrap()
    }

    fn tumbling(size: i64) -> WindowJoin {
        join(WindowAssigner::tumbling(size, 0).unwrap())
    }

    #[test]
    fn a_tumbling_window_emits_its_cross_product_when_the_watermark_reaches_its_end() {
        let mut op = tumbling(10);
        // Out of order on both sides; [0,10) has lefts 1, 9 and rights 5, 0; [10,20) a
        // left 12 only; key b has [0,10) with one of each.
        let (out, _) = step(
            &mut op,
            &[("a", Some(9), r#""l9""#), ("a", Some(12), r#""l12""#), ("a", Some(1), r#""l1""#), ("b", Some(3), "1")],
            &[("a", Some(5), r#""r5""#), ("b", Some(7), "2"), ("a", Some(0), r#""r0""#)],
            Some(8),
        );
        assert!(out.is_empty(), "watermark 8 < 9, the end - 1 of [0,10)");
        assert_eq!(op.state_rows(), 7);
        let (mut out, _) = step(&mut op, &[], &[], Some(9));
        out.sort();
        assert_eq!(
            out,
            [
                r#"a @ 9: {"l":"l1","r":"r0"}"#,
                r#"a @ 9: {"l":"l1","r":"r5"}"#,
                r#"a @ 9: {"l":"l9","r":"r0"}"#,
                r#"a @ 9: {"l":"l9","r":"r5"}"#,
                r#"b @ 9: {"l":1,"r":2}"#,
            ]
        );
        assert_eq!((op.matches(), op.state_rows()), (5, 1));
        // A row of a fired window is late, on either side; the left at 12 has no partner.
        let (out, late) = step(&mut op, &[("a", Some(9), "0")], &[("b", Some(0), "0")], Some(END_OF_TIME));
        assert!(out.is_empty());
        assert_eq!(late, [LATE, LATE]);
        assert_eq!((op.state_rows(), op.keys.len()), (0, 0));
    }

    #[test]
    fn sliding_windows_pair_rows_in_each_window_they_share() {
        // Size 10 every 5: 7 is in [0,10) and [5,15); 12 in [5,15) and [10,20).
        let mut op = join(WindowAssigner::sliding(10, 5, 0).unwrap());
        let (out, _) = step(
            &mut op,
            &[("a", Some(7), r#""l7""#)],
            &[("a", Some(12), r#""r12""#), ("a", Some(3), r#""r3""#)],
            Some(9),
        );
        assert_eq!(out, [r#"a @ 9: {"l":"l7","r":"r3"}"#]);
        // [0,10) fired: the right at 3 is in no open window, gone; a left at 8 is in [5,15)
        // only, not in [0,10), which fired before it came.
        assert_eq!(op.state_rows(), 2);
        let (out, late) = step(&mut op, &[("a", Some(8), r#""l8""#)], &[("a", Some(4), "0")], Some(END_OF_TIME));
        assert_eq!(late, [LATE]);
        assert_eq!(out, [r#"a @ 14: {"l":"l7","r":"r12"}"#, r#"a @ 14: {"l":"l8","r":"r12"}"#]);
        assert_eq!(op.state_rows(), 0);
    }

    #[test]
    fn session_windows_merge_and_pair_their_rows() {
        let mut op = join(WindowAssigner::session(10).unwrap());
        // Gap 10: left 1 opens [1,11), right 20 [20,30), left 40 [40,50), all apart.
        step(&mut op, &[("a", Some(1), r#""l1""#), ("a", Some(40), r#""l40""#)], &[("a", Some(20), r#""r20""#)], None);
        // Right 10 opens [10,20), which overlaps the first and touches the second: one
        // session [1,30), complete at watermark 29.
        let (out, _) = step(&mut op, &[], &[("a", Some(10), r#""r10""#)], Some(29));
        assert_eq!(out, [r#"a @ 29: {"l":"l1","r":"r10"}"#, r#"a @ 29: {"l":"l1","r":"r20"}"#]);
        assert_eq!(op.state_rows(), 1);
        // [40,50) stays; a right at 35 opens [35,45), which merges with it.
        let (out, late) = step(&mut op, &[], &[("a", Some(35), r#""r35""#), ("a", Some(19), "0")], Some(END_OF_TIME));
        assert_eq!(late, [LATE], "[19,29) is complete at watermark 29");
        assert_eq!(out, [r#"a @ 49: {"l":"l40","r":"r35"}"#]);
        assert_eq!(op.state_rows(), 0);
    }

    #[test]
    fn a_snapshot_restores_into_two_instances_that_split_the_keys() {
        for assigner in [WindowAssigner::tumbling(10, 0).unwrap(), WindowAssigner::session(5).unwrap()] {
            let mut op = join(assigner);
            step(
                &mut op,
                &[("a", Some(1), r#""a1""#), ("b", Some(2), r#""b1""#), ("a", Some(13), r#""a13""#)],
                &[("b", Some(3), r#""b3""#)],
                Some(0),
            );
            let blob = op.snapshot(1).unwrap().unwrap();
            let (mut only_a, mut only_b) = (join(assigner), join(assigner));
            only_a.restore(&[&blob], &is("a")).unwrap();
            only_b.restore(&[&blob], &|k| !is("a")(k)).unwrap();
            assert_eq!((only_a.state_rows(), only_b.state_rows()), (2, 2), "{assigner}");
            let (out, _) = step(&mut only_a, &[], &[("a", Some(4), r#""a4""#)], Some(END_OF_TIME));
            let end = if assigner.is_merging() { 8 } else { 9 };
            assert_eq!(out, [format!(r#"a @ {end}: {{"l":"a1","r":"a4"}}"#)], "{assigner}");
            let (out, late) = step(&mut only_b, &[], &[("b", Some(-20), "0")], Some(END_OF_TIME));
            let end = if assigner.is_merging() { 7 } else { 9 };
            assert_eq!(out, [format!(r#"b @ {end}: {{"l":"b1","r":"b3"}}"#)], "{assigner}");
            assert_eq!(late, [LATE], "the watermark came along");
        }
    }

    #[test]
    fn windows_a_lower_instance_had_not_fired_fire_after_a_restore() {
        // Two instances checkpointed at different watermarks (an unaligned restore): the
        // key of the one at watermark 0 still fires [0,10) once the joined watermark moves.
        let mut low = tumbling(10);
        step(&mut low, &[("a", Some(1), "1")], &[("a", Some(2), "2")], Some(0));
        let mut high = tumbling(10);
        step(&mut high, &[], &[], Some(20));
        let mut op = tumbling(10);
        op.restore(&[&high.snapshot(1).unwrap().unwrap(), &low.snapshot(1).unwrap().unwrap()], &|_| true).unwrap();
        let (out, _) = step(&mut op, &[], &[("a", Some(25), "3")], None);
        assert_eq!(out, [r#"a @ 9: {"l":1,"r":2}"#], "due windows fire before a new row of the key");
        assert_eq!(op.state_rows(), 1);
    }
}
