//! The combined watermark of an operator with several inputs.
//!
//! Flink's `StatusWatermarkValve`: the operator's event time is the minimum watermark over
//! its inputs, because any input may still send a record up to its own watermark. Two
//! refinements keep that from stalling or going backwards:
//!
//! - **Idle inputs do not count.** An idle input is left out of the minimum; when every
//!   input is idle the operator is idle itself and its watermark does not advance (unlike
//!   Flink, which then flushes to the maximum: Weir waits for data, the safer choice).
//!   Inputs that ended do not count here: idle inputs alongside ended ones still wait.
//! - **Alignment.** An input that comes back from idleness behind the combined watermark
//!   does not pull it back: it rejoins the minimum only once its own watermark has caught
//!   up (Flink's `isWatermarkAligned`).
//!
//! An input that ended counts as [`END_OF_TIME`]: it holds nobody back, and when all inputs
//! have ended the operator's watermark is `END_OF_TIME`, which flushes every window.

use super::{END_OF_TIME, TimeSignal};

#[derive(Debug, Clone, Copy)]
struct Input {
    watermark: i64,
    idle: bool,
    /// Part of the minimum: active and not behind the combined watermark.
    aligned: bool,
    ended: bool,
}

/// Combines the watermarks and idleness of N inputs; see the module docs.
///
/// ```
/// use weir::time::{TimeSignal::*, WatermarkTracker};
/// let mut t = WatermarkTracker::new(2);
/// assert_eq!(t.on_signal(0, Watermark(10)), vec![]); // input 1 still at i64::MIN
/// assert_eq!(t.on_signal(1, Watermark(7)), vec![Watermark(7)]);
/// assert_eq!(t.on_signal(1, Idle), vec![Watermark(10)]); // only input 0 counts now
/// ```
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    inputs: Vec<Input>,
    watermark: i64,
    idle: bool,
}

impl WatermarkTracker {
    /// A tracker for `inputs` inputs, all active at `i64::MIN`.
    pub fn new(inputs: usize) -> Self {
        let input = Input { watermark: i64::MIN, idle: false, aligned: true, ended: false };
        Self { inputs: vec![input; inputs], watermark: i64::MIN, idle: false }
    }

    /// Feed a signal from input `input`; returns what to forward downstream, in order.
    /// Signals for an input index out of range are ignored (a wiring bug, not data).
    pub fn on_signal(&mut self, input: usize, signal: TimeSignal) -> Vec<TimeSignal> {
        let mut out = Vec::new();
        let Some(state) = self.inputs.get_mut(input) else { return out };
        if state.ended {
            return out;
        }
        match signal {
            TimeSignal::Watermark(w) => {
                // Flink ignores watermarks from idle inputs: an input says Active first.
                if state.idle || w <= state.watermark {
                    return out;
                }
                state.watermark = w;
                state.ended = w == END_OF_TIME;
                state.aligned = state.aligned || w >= self.watermark;
            }
            TimeSignal::Idle if !state.idle => {
                state.idle = true;
                state.aligned = false;
            }
            TimeSignal::Active if state.idle => {
                state.idle = false;
                state.aligned = state.watermark >= self.watermark;
            }
            TimeSignal::Idle | TimeSignal::Active => return out,
        }
        self.update(&mut out);
        out
    }

    /// Input `input` ended: the same as its watermark reaching [`END_OF_TIME`], whether or
    /// not it was idle.
    pub fn on_end_of_input(&mut self, input: usize) -> Vec<TimeSignal> {
        let mut out = Vec::new();
        if let Some(state) = self.inputs.get(input)
            && state.idle
            && !state.ended
        {
            out.extend(self.on_signal(input, TimeSignal::Active));
        }
        out.extend(self.on_signal(input, TimeSignal::Watermark(END_OF_TIME)));
        out
    }

    /// The combined watermark: the last one forwarded.
    pub fn current_watermark(&self) -> i64 {
        self.watermark
    }

    /// All inputs are idle.
    pub fn is_idle(&self) -> bool {
        self.idle
    }

    /// Every input has ended.
    pub fn is_finished(&self) -> bool {
        self.inputs.iter().all(|i| i.ended)
    }

    /// Recompute status and watermark after one input changed. Ended inputs sit at
    /// `END_OF_TIME`; when every input that has not ended is idle the operator is idle
    /// and waits, rather than jumping to what the ended inputs allow.
    fn update(&mut self, out: &mut Vec<TimeSignal>) {
        let live = self.inputs.iter().filter(|i| !i.ended);
        let all_idle = live.clone().next().is_some() && live.clone().all(|i| i.idle);
        if all_idle {
            if !self.idle {
                self.idle = true;
                out.push(TimeSignal::Idle);
            }
            return;
        }
        if self.idle {
            self.idle = false;
            out.push(TimeSignal::Active);
        }
        let min = self.inputs.iter().filter(|i| i.aligned).map(|i| i.watermark).min();
        if let Some(min) = min
            && min > self.watermark
        {
            self.watermark = min;
            out.push(TimeSignal::Watermark(min));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TimeSignal::*;
    use proptest::prelude::*;

    #[test]
    fn min_over_inputs() {
        let mut t = WatermarkTracker::new(3);
        assert_eq!(t.on_signal(0, Watermark(5)), vec![]);
        assert_eq!(t.on_signal(1, Watermark(3)), vec![]);
        // The last input reports: the minimum of 5, 3 and 8 is 3.
        assert_eq!(t.on_signal(2, Watermark(8)), vec![Watermark(3)]);
        assert_eq!(t.on_signal(1, Watermark(9)), vec![Watermark(5)]);
        assert_eq!(t.on_signal(1, Watermark(4)), vec![], "an input's watermark never goes back");
        assert_eq!(t.current_watermark(), 5);
    }

    #[test]
    fn idle_inputs_are_left_out_until_they_catch_up() {
        let mut t = WatermarkTracker::new(2);
        t.on_signal(0, Watermark(10));
        assert_eq!(t.on_signal(1, Watermark(2)), vec![Watermark(2)]);
        // Input 1 goes quiet: input 0 alone decides.
        assert_eq!(t.on_signal(1, Idle), vec![Watermark(10)]);
        assert_eq!(t.on_signal(0, Watermark(20)), vec![Watermark(20)]);
        assert_eq!(t.on_signal(1, Watermark(30)), vec![], "watermarks from an idle input are ignored");
        // Input 1 is back but behind (2 < 20): it must not pull the watermark back to 2.
        assert_eq!(t.on_signal(1, Active), vec![]);
        assert_eq!(t.on_signal(0, Watermark(25)), vec![Watermark(25)]);
        assert_eq!(t.on_signal(1, Watermark(22)), vec![], "still behind 25, not aligned yet");
        assert_eq!(t.on_signal(1, Watermark(26)), vec![], "aligned now; the minimum is 25");
        assert_eq!(t.on_signal(0, Watermark(40)), vec![Watermark(26)], "input 1 holds it back again");
    }

    #[test]
    fn all_idle_means_idle_and_no_advance() {
        let mut t = WatermarkTracker::new(2);
        t.on_signal(0, Watermark(10));
        t.on_signal(1, Watermark(4));
        assert_eq!(t.on_signal(0, Idle), vec![]);
        assert_eq!(t.on_signal(1, Idle), vec![Idle], "no flush to 10: input 1 may still send 5..10");
        assert!(t.is_idle());
        assert_eq!(t.current_watermark(), 4);
        assert_eq!(t.on_signal(1, Active), vec![Active]);
        assert_eq!(t.on_signal(1, Watermark(12)), vec![Watermark(12)]);
    }

    #[test]
    fn end_of_input_counts_as_end_of_time() {
        let mut t = WatermarkTracker::new(2);
        t.on_signal(0, Watermark(10));
        assert_eq!(t.on_end_of_input(1), vec![Watermark(10)]);
        assert!(!t.is_finished());
        // Input 0 is all that is left and it is idle: wait for it, do not jump to the end.
        assert_eq!(t.on_signal(0, Idle), vec![Idle]);
        assert_eq!(t.on_end_of_input(0), vec![Active, Watermark(i64::MAX)]);
        assert!(t.is_finished());
        assert_eq!(t.on_signal(0, Idle), vec![], "an ended input says nothing more");
        assert_eq!(WatermarkTracker::new(7).on_signal(7, Watermark(1)), vec![]);
    }

    fn signal() -> impl Strategy<Value = TimeSignal> {
        prop_oneof![(-1_000i64..1_000).prop_map(Watermark), Just(Idle), Just(Active)]
    }

    proptest! {
        #[test]
        fn forwarded_watermarks_increase_and_respect_the_active_minimum(
            n in 1usize..5,
            steps in prop::collection::vec((0usize..5, signal()), 0..200),
        ) {
            let mut t = WatermarkTracker::new(n);
            // A model: each input's highest watermark received while active, and idleness.
            let mut model = vec![(i64::MIN, false); n];
            let mut last = i64::MIN;
            for (input, s) in steps {
                let input = input % n;
                match s {
                    Watermark(w) if !model[input].1 => model[input].0 = model[input].0.max(w),
                    Idle => model[input].1 = true,
                    Active => model[input].1 = false,
                    Watermark(_) => {}
                }
                for out in t.on_signal(input, s) {
                    if let Watermark(w) = out {
                        prop_assert!(w > last, "{w} after {last}");
                        last = w;
                        // No active input has promised less than the combined watermark:
                        // an active input is either past it or rejoining (not aligned).
                        prop_assert!(model.iter().any(|&(m, idle)| !idle && m == w));
                    }
                }
                prop_assert_eq!(t.current_watermark(), last);
                prop_assert_eq!(t.is_idle(), model.iter().all(|&(_, idle)| idle));
            }
        }
    }
}
