//! Event time: timestamps from records, watermarks, and the combined watermark of an
//! operator with several inputs.
//!
//! Weir follows Flink's event-time model so its users can carry their intuitions over:
//!
//! - a record's **event time** is epoch milliseconds (`i64`), read from a field holding
//!   milliseconds or an RFC 3339 string ([`TimestampField`], [`parse_rfc3339`]);
//! - a source input emits **watermarks** by bounded out-of-orderness and is marked **idle**
//!   when it has been quiet for a while, so one silent partition does not stall the job
//!   ([`WatermarkGenerator`], Flink's `BoundedOutOfOrdernessWatermarks` with `withIdleness`);
//! - an operator with several inputs advances to the **minimum** watermark of its active
//!   inputs, never backwards ([`WatermarkTracker`], Flink's `StatusWatermarkValve`).
//!
//! Everything here is pure logic driven by explicit values: no clock is read, no channel
//! is touched. Processing time comes in as `now` arguments, which keeps the math testable
//! and lets the runtime decide when to sample its clock. What travels between tasks is a
//! [`TimeSignal`]: the shape of the control messages the runtime puts in its channels.

mod extract;
mod generator;
mod rfc3339;
mod tracker;

pub use extract::{TimestampError, TimestampField};
pub use generator::WatermarkGenerator;
pub use rfc3339::{Rfc3339Error, format_rfc3339, parse_rfc3339};
pub use tracker::WatermarkTracker;

/// The watermark of an input that has ended: nothing can come after it, so every timer
/// and window fires (Flink's `Watermark.MAX_WATERMARK`).
pub const END_OF_TIME: i64 = i64::MAX;

/// What an input tells its downstream about time, in channel order with its records.
///
/// An input starts active. `Idle` takes it out of the watermark minimum until it says
/// `Active` again; watermarks from an idle input are ignored, so a generator says `Active`
/// before its next record (see [`WatermarkGenerator::on_event`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSignal {
    /// No record with a timestamp at or below this value will follow.
    Watermark(i64),
    /// The input has no data for now; do not wait for its watermark.
    Idle,
    /// The input has data again.
    Active,
}

/// The wall clock in epoch milliseconds (processing time).
pub fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}
