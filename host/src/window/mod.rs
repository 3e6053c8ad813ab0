//! Windows over event time (or processing time): which windows a record belongs to, how
//! session windows merge, when a window fires, when a record is too late, and the built-in
//! aggregates that fold a window's records into an accumulator.
//!
//! Every formula is Flink's, so a Flink user's expectations hold to the millisecond:
//! windows are half-open `[start, end)` ([`TimeWindow`]); tumbling and sliding windows are
//! aligned to the epoch plus an offset ([`WindowAssigner`]); session windows start as
//! `[t, t + gap)` and merge when they overlap or touch ([`merge_session`]); a window fires
//! when the watermark reaches its last millisecond and is dropped `allowed_lateness` later
//! ([`trigger`]). Everything is pure: the window operator that calls these functions owns
//! the state (one [`Accumulator`] or UDAF accumulator per key and window) and the timers.

mod aggregate;
mod assigner;
mod merging;
mod time_window;
pub mod trigger;

pub use aggregate::{Accumulator, AggregateError, AggregateKind, Number};
pub use assigner::{WindowAssigner, WindowConfigError};
pub use merging::{SessionWindows, WindowMerge, merge_session};
pub use time_window::TimeWindow;
