//! List state and an event-time timer: a key's elements are buffered until the key has been
//! quiet for a gap (the watermark passes the last element's time plus the gap), then emitted
//! as one session, as a session window would.

use rmpv::Value;
use serde::{Deserialize, Serialize};
use weir::process::{Collector, Context, KeyedProcessFunction, NoBroadcast, ProcessResult, StateDecl};

/// A session closes when no element came for this long (event time, ms).
pub const SESSION_GAP_MS: i64 = 30_000;

/// An element as buffered in the list state, with its event time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    pub at: i64,
    pub event: Value,
}

/// A closed session: the key, the first and last event times, and the elements in event-time
/// order (ties in arrival order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub key: Value,
    pub start: i64,
    pub end: i64,
    pub events: Vec<Value>,
}

/// Buffers each key's elements (`events`, list state) and keeps one event-time timer at the
/// latest element's time plus [`SESSION_GAP_MS`] (`timer`, value state); when it fires, emits
/// the [`Session`] and forgets it. Elements need event time.
#[derive(Debug, Default)]
pub struct Sessionize;

impl KeyedProcessFunction for Sessionize {
    type Input = Value;
    type Output = Session;
    type Broadcast = NoBroadcast;
    const STATES: &'static [StateDecl] = &[StateDecl::list::<Stamped>("events"), StateDecl::value::<i64>("timer")];

    fn process_element(&mut self, event: Value, ctx: &Context<'_>, _: &mut Collector<'_, Session>) -> ProcessResult {
        let at = ctx.timestamp().ok_or("sessionize needs event time: assign timestamps before it in the job")?;
        ctx.list::<Stamped>("events")?.append(&Stamped { at, event })?;
        let timer = ctx.value::<i64>("timer")?;
        let current = timer.get()?;
        // An element older than the session's latest one does not shorten it.
        let close_at = current.map_or(at + SESSION_GAP_MS, |c| c.max(at + SESSION_GAP_MS));
        if current != Some(close_at) {
            let timers = ctx.timer_service();
            if let Some(old) = current {
                timers.delete_event_time_timer(old);
            }
            timers.register_event_time_timer(close_at);
            timer.set(&close_at)?;
        }
        Ok(())
    }

    fn on_timer(&mut self, at: i64, ctx: &Context<'_>, out: &mut Collector<'_, Session>) -> ProcessResult {
        let timer = ctx.value::<i64>("timer")?;
        if timer.get()? != Some(at) {
            return Ok(()); // a timer this function deleted cannot fire; nothing else registers one
        }
        let events = ctx.list::<Stamped>("events")?;
        let mut buffered = events.get()?;
        buffered.sort_by_key(|e| e.at);
        if let (Some(first), Some(last)) = (buffered.first(), buffered.last()) {
            let (start, end) = (first.at, last.at);
            out.collect(Session {
                key: ctx.current_key()?,
                start,
                end,
                events: buffered.into_iter().map(|e| e.event).collect(),
            });
        }
        events.clear()?;
        timer.clear()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir::process::TimeDomain;
    use weir::testing::ProcessHarness;

    use super::*;
    use crate::PLUGIN;

    fn session(key: &str, start: i64, end: i64, events: &[&str]) -> Session {
        Session { key: key.into(), start, end, events: events.iter().map(|&e| e.into()).collect() }
    }

    #[test]
    fn a_session_closes_a_gap_after_its_latest_element() -> Result<(), Box<dyn std::error::Error>> {
        let mut h = ProcessHarness::new(&PLUGIN, "sessionize");
        h.process("u1", "a", 1_000)?;
        h.process("u1", "b", 20_000)?;
        h.process("u1", "early", 500)?; // out of order: joins, does not move the close
        h.process("u2", "x", 5_000)?;
        assert_eq!(h.timers("u1"), [(TimeDomain::EventTime, 50_000)]);
        assert_eq!(h.list_state::<Stamped>("u1", "events").len(), 3);
        h.advance_watermark(49_999)?;
        assert_eq!(h.take_output::<Session>(), [session("u2", 5_000, 5_000, &["x"])]);
        h.advance_watermark(50_000)?;
        assert_eq!(h.take_output::<Session>(), [session("u1", 500, 20_000, &["early", "a", "b"])]);
        assert!(h.list_state::<Stamped>("u1", "events").is_empty());
        assert_eq!((h.value_state::<i64>("u1", "timer"), h.timer_count(TimeDomain::EventTime)), (None, 0));
        // A later element starts a new session.
        h.process("u1", "c", 90_000)?;
        h.advance_watermark(120_000)?;
        assert_eq!(h.output::<Session>(), [session("u1", 90_000, 90_000, &["c"])]);
        Ok(())
    }

    #[test]
    fn an_element_without_event_time_fails_alone() {
        let mut h = ProcessHarness::new(&PLUGIN, "sessionize");
        let error = h.process("u1", "a", None).expect_err("no event time");
        assert!(error.to_string().contains("sessionize needs event time"), "{error}");
        assert!(h.list_state::<Stamped>("u1", "events").is_empty());
    }
}
