//! Watermarks for one input by bounded out-of-orderness, with idleness.
//!
//! This is Flink's `BoundedOutOfOrdernessWatermarks` wrapped in `WatermarksWithIdleness`:
//! the watermark trails the highest timestamp seen by the bound, minus one millisecond
//! (`max_timestamp - bound - 1`), because a record *at* `max_timestamp - bound` may still
//! arrive and must not be late. Watermarks are emitted periodically, and an input that had
//! no records for `idle_timeout` of processing time says it is idle so that downstream
//! operators stop waiting for it.
//!
//! Processing time is only sampled at periodic emits (the caller passes `now`), as in
//! Flink, so a record costs no clock read. An input is idle when the last emit that had
//! seen records since the one before is at least `idle_timeout` ago: idleness is detected
//! between `idle_timeout` and `idle_timeout` plus one emit interval after the last record.

use std::time::Duration;

use super::{END_OF_TIME, TimeSignal};

/// Generates one input's watermarks; see the module docs.
///
/// ```
/// use std::time::Duration;
/// use weir::time::{TimeSignal, WatermarkGenerator};
/// let mut wm = WatermarkGenerator::new(Duration::from_millis(100));
/// wm.on_event(1_000);
/// wm.on_event(900); // out of order, within the bound
/// assert_eq!(wm.on_periodic_emit(0), Some(TimeSignal::Watermark(899)));
/// assert_eq!(wm.on_periodic_emit(200), None); // nothing new
/// ```
#[derive(Debug, Clone)]
pub struct WatermarkGenerator {
    bound: i64,
    idle_timeout: Option<i64>,
    max_timestamp: Option<i64>,
    /// The last watermark handed out; watermarks only move forward.
    emitted: i64,
    /// Records arrived since the last periodic emit.
    active_since_emit: bool,
    /// Processing time of the last emit that had seen records (or the first emit).
    last_active_at: Option<i64>,
    idle: bool,
    ended: bool,
}

impl WatermarkGenerator {
    /// Watermarks that allow records to be up to `max_out_of_orderness` late.
    pub fn new(max_out_of_orderness: Duration) -> Self {
        Self {
            bound: millis(max_out_of_orderness),
            idle_timeout: None,
            max_timestamp: None,
            emitted: i64::MIN,
            active_since_emit: false,
            last_active_at: None,
            idle: false,
            ended: false,
        }
    }

    /// Mark the input idle after `idle_timeout` of processing time without records.
    pub fn with_idleness(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = Some(millis(idle_timeout));
        self
    }

    /// A record with event time `timestamp` passed. Returns [`TimeSignal::Active`] when the
    /// input was idle: the caller sends it downstream *before* the record.
    pub fn on_event(&mut self, timestamp: i64) -> Option<TimeSignal> {
        self.max_timestamp = Some(self.max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
        self.active_since_emit = true;
        if self.idle && !self.ended {
            self.idle = false;
            return Some(TimeSignal::Active);
        }
        None
    }

    /// The periodic tick (Flink's `autoWatermarkInterval`, 200 ms by default) at processing
    /// time `now`: a new watermark if it advanced, `Idle` if the input just became idle.
    pub fn on_periodic_emit(&mut self, now: i64) -> Option<TimeSignal> {
        if self.ended {
            return None;
        }
        if self.active_since_emit || self.last_active_at.is_none() {
            self.last_active_at = Some(now);
        }
        let had_records = std::mem::take(&mut self.active_since_emit);
        if let (Some(timeout), Some(since), false) = (self.idle_timeout, self.last_active_at, had_records)
            && !self.idle
            && now.saturating_sub(since) >= timeout
        {
            self.idle = true;
            return Some(TimeSignal::Idle);
        }
        let watermark = self.current_watermark();
        if watermark > self.emitted {
            self.emitted = watermark;
            return Some(TimeSignal::Watermark(watermark));
        }
        None
    }

    /// The input ended: its final watermark is [`END_OF_TIME`], which fires every window.
    pub fn on_end_of_input(&mut self) -> TimeSignal {
        self.ended = true;
        self.idle = false;
        self.emitted = END_OF_TIME;
        TimeSignal::Watermark(END_OF_TIME)
    }

    /// `max_timestamp - bound - 1`, or `i64::MIN` before the first record.
    pub fn current_watermark(&self) -> i64 {
        if self.ended {
            return END_OF_TIME;
        }
        self.max_timestamp.map_or(i64::MIN, |m| m.saturating_sub(self.bound).saturating_sub(1))
    }

    pub fn is_idle(&self) -> bool {
        self.idle
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use TimeSignal::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn bound_minus_one() {
        let mut g = WatermarkGenerator::new(ms(5));
        assert_eq!(g.on_periodic_emit(0), None, "no record yet: the watermark stays at i64::MIN");
        g.on_event(10);
        // A record at 10 - 5 = 5 may still come and is not late, so the watermark is 4.
        assert_eq!(g.on_periodic_emit(1), Some(Watermark(4)));
        g.on_event(3); // out of order: does not move the watermark back
        assert_eq!(g.on_periodic_emit(2), None);
        assert_eq!(g.current_watermark(), 4);
        g.on_event(20);
        assert_eq!(g.on_periodic_emit(3), Some(Watermark(14)));
    }

    #[test]
    fn idle_after_timeout_and_active_again_before_the_next_record() {
        let mut g = WatermarkGenerator::new(ms(0)).with_idleness(ms(1_000));
        g.on_event(100);
        assert_eq!(g.on_periodic_emit(0), Some(Watermark(99)));
        // Quiet since the emit at 0: not idle until 1000 ms of processing time have passed.
        assert_eq!(g.on_periodic_emit(200), None);
        assert_eq!(g.on_periodic_emit(999), None);
        assert_eq!(g.on_periodic_emit(1_000), Some(Idle));
        assert!(g.is_idle());
        assert_eq!(g.on_periodic_emit(5_000), None, "idle is said once");
        assert_eq!(g.on_event(50), Some(Active), "a record ends idleness, even a late one");
        assert_eq!(g.on_event(60), None);
        // The watermark has not moved (max is still 100): nothing to emit, and the timer
        // restarts from this emit.
        assert_eq!(g.on_periodic_emit(5_200), None);
        assert_eq!(g.on_periodic_emit(6_199), None);
        assert_eq!(g.on_periodic_emit(6_200), Some(Idle));
    }

    #[test]
    fn an_input_that_never_sends_becomes_idle_from_its_first_emit() {
        let mut g = WatermarkGenerator::new(ms(0)).with_idleness(ms(100));
        assert_eq!(g.on_periodic_emit(1_000), None);
        assert_eq!(g.on_periodic_emit(1_100), Some(Idle));
    }

    #[test]
    fn end_of_input_is_the_last_word() {
        let mut g = WatermarkGenerator::new(ms(10)).with_idleness(ms(1));
        g.on_event(5);
        assert_eq!(g.on_end_of_input(), Watermark(i64::MAX));
        assert_eq!(g.on_periodic_emit(10_000), None);
        assert_eq!(g.on_event(1), None);
        assert_eq!(g.current_watermark(), i64::MAX);
    }

    #[test]
    fn extreme_values_saturate() {
        let mut g = WatermarkGenerator::new(Duration::MAX);
        g.on_event(i64::MIN);
        assert_eq!(g.current_watermark(), i64::MIN);
        g.on_event(i64::MAX);
        assert_eq!(g.current_watermark(), -1);
    }

    proptest! {
        #[test]
        fn watermarks_never_decrease_and_never_pass_a_max_minus_bound(
            bound in 0u64..1_000,
            steps in prop::collection::vec((any::<bool>(), -10_000i64..10_000, 0i64..500), 1..200),
        ) {
            let mut g = WatermarkGenerator::new(ms(bound)).with_idleness(ms(300));
            let (mut now, mut last, mut max) = (0i64, i64::MIN, i64::MIN);
            for (is_event, ts, dt) in steps {
                if is_event {
                    g.on_event(ts);
                    max = max.max(ts);
                } else {
                    now += dt;
                    if let Some(Watermark(w)) = g.on_periodic_emit(now) {
                        prop_assert!(w > last, "{w} after {last}");
                        prop_assert_eq!(w, max - bound as i64 - 1);
                        last = w;
                    }
                }
                prop_assert!(g.current_watermark() >= last);
            }
        }
    }
}
