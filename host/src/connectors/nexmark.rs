//! The Nexmark source: the Person / Auction / Bid stream of the Nexmark benchmark (an
//! online auction), as Flink, Arroyo and RisingWave generate it, to run the Nexmark
//! queries (`benches/nexmark/`) or to try a job on realistic data.
//!
//! Each event is a flat MessagePack map with an `event_type` (`person`, `auction` or
//! `bid`), the standard fields of its kind and its event time in `date_time` (epoch ms),
//! so `assign_timestamps: {field: date_time, ...}` works for all three. The events are the
//! types of the `weir-nexmark` crate (`sdk/nexmark`), which the `nexmark-rust` plugin and
//! the Nexmark bench decode records into. The generator module's docs say which
//! distributions follow Beam's generator, and where (and why) it departs from it.
//!
//! **Event `i` is a pure function of the spec (seed included) and `i`**: [`run`] is a loop
//! over event indices from a `start` index, so a source can resume at event `n` after a
//! crash and emit exactly what a run from 0 would have emitted from `n` on.
//!
//! ```
//! use weir::connectors::NexmarkSpec;
//!
//! let spec = NexmarkSpec::new(1_000_000).rate(100_000).seed(42).hot_auction_ratio(4);
//! assert_eq!(spec.event_rate(), 100_000);
//! assert!(spec.validate().is_ok());
//! ```

mod config;
mod event;
mod generator;

use std::time::{Duration, Instant};

use thiserror::Error;

pub(super) use config::parse_source;

use super::{Source, start_index};
use crate::checkpoint::SourcePosition;
use crate::task::{ConnectorError, SourceContext};
pub use generator::NexmarkGenerator;
pub use weir_nexmark::{Auction, Bid, Event, Person};

/// Event-time spacing when no `rate` is given: Beam's default `firstEventRate`.
pub const DEFAULT_EVENT_RATE: u64 = 10_000;
/// 2026-01-01T00:00:00Z: event time of the first event unless `base_time_ms` says otherwise.
pub const DEFAULT_BASE_TIME_MS: i64 = 1_767_225_600_000;

/// How far the source may run ahead of `rate` before it sleeps (as the datagen source).
const PACING_SLACK: Duration = Duration::from_millis(1);

/// What a Nexmark source generates. Defaults are Beam's `NexmarkConfiguration` defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkSpec {
    /// Events to generate: the stream is events `0..events`.
    pub events: u64,
    /// The first event the source emits (0 unless it resumes): it emits `start..events`,
    /// exactly as a run from 0 emits them.
    pub start: u64,
    /// Events per second: paces the source and spaces event time; `None`: as fast as the
    /// job takes them, with event time spaced as at [`DEFAULT_EVENT_RATE`].
    pub rate: Option<u64>,
    pub seed: u64,
    /// Event time of event 0 (epoch ms).
    pub base_time_ms: i64,
    /// Out of every `person + auction + bid` events, this many are of each kind (1/3/46).
    pub person_proportion: u64,
    pub auction_proportion: u64,
    pub bid_proportion: u64,
    /// One bid in `hot_auction_ratio` goes to a random in-flight auction, the others to the
    /// current hot one (2: half the bids).
    pub hot_auction_ratio: u64,
    /// As `hot_auction_ratio`, for auctions' sellers (4).
    pub hot_sellers_ratio: u64,
    /// As `hot_auction_ratio`, for bidders (4).
    pub hot_bidders_ratio: u64,
    /// People that random sellers and bidders are drawn from: the latest this many (1000).
    pub num_active_people: u64,
    /// Auctions random bids are drawn from: the latest this many (100); also sets auction
    /// lengths.
    pub num_in_flight_auctions: u64,
    /// Average record sizes the `extra` field pads to (200 / 500 / 100 bytes).
    pub avg_person_byte_size: u64,
    pub avg_auction_byte_size: u64,
    pub avg_bid_byte_size: u64,
    /// Ids are shuffled within groups of this many events (1: in order).
    pub out_of_order_group_size: u64,
    /// Delayed events carry an event time up to this much earlier than their place (3 s).
    pub occasional_delay_ms: i64,
    /// The share of delayed events (0.1).
    pub prob_delayed_event: f64,
}

/// A Nexmark spec that cannot generate; each names the job-file key.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NexmarkError {
    #[error("`rate` must be at least 1 event per second (leave it out for no limit)")]
    ZeroRate,
    #[error("`{key}` must be at least 1")]
    Zero { key: &'static str },
    #[error("`occasional-delay` ({0} ms) must not be negative")]
    NegativeDelay(i64),
    #[error("`prob-delayed-event` ({0}) must be a share from 0 to 1")]
    Probability(f64),
    #[error("the proportions add up to more than {max}; keep them small (the standard is 1/3/46)")]
    Proportions { max: u64 },
}

impl From<NexmarkError> for ConnectorError {
    fn from(e: NexmarkError) -> Self {
        ConnectorError::failed(format!("nexmark source: {e}"))
    }
}

impl NexmarkSpec {
    /// `events` events with Beam's defaults, unpaced, seed 0.
    pub fn new(events: u64) -> Self {
        Self {
            events,
            start: 0,
            rate: None,
            seed: 0,
            base_time_ms: DEFAULT_BASE_TIME_MS,
            person_proportion: 1,
            auction_proportion: 3,
            bid_proportion: 46,
            hot_auction_ratio: 2,
            hot_sellers_ratio: 4,
            hot_bidders_ratio: 4,
            num_active_people: 1000,
            num_in_flight_auctions: 100,
            avg_person_byte_size: 200,
            avg_auction_byte_size: 500,
            avg_bid_byte_size: 100,
            out_of_order_group_size: 1,
            occasional_delay_ms: 3_000,
            prob_delayed_event: 0.1,
        }
    }

    pub fn rate(mut self, events_per_second: u64) -> Self {
        self.rate = Some(events_per_second);
        self
    }

    /// Resume at event `index`: emit `index..events`.
    pub fn start_at(mut self, index: u64) -> Self {
        self.start = index;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    pub fn base_time_ms(mut self, ms: i64) -> Self {
        self.base_time_ms = ms;
        self
    }

    pub fn hot_auction_ratio(mut self, ratio: u64) -> Self {
        self.hot_auction_ratio = ratio;
        self
    }

    pub fn out_of_order_group_size(mut self, n: u64) -> Self {
        self.out_of_order_group_size = n;
        self
    }

    /// Delayed events: this share of them, up to `delay_ms` earlier (0 and 0: in order).
    pub fn delays(mut self, prob_delayed_event: f64, delay_ms: i64) -> Self {
        self.prob_delayed_event = prob_delayed_event;
        self.occasional_delay_ms = delay_ms;
        self
    }

    /// Events per second of event time: `rate`, or [`DEFAULT_EVENT_RATE`] when unpaced.
    pub fn event_rate(&self) -> u64 {
        self.rate.unwrap_or(DEFAULT_EVENT_RATE).max(1)
    }

    /// Whether this spec can generate.
    pub fn validate(&self) -> Result<(), NexmarkError> {
        if self.rate == Some(0) {
            return Err(NexmarkError::ZeroRate);
        }
        let at_least_one = [
            ("person-proportion", self.person_proportion),
            ("auction-proportion", self.auction_proportion),
            ("bid-proportion", self.bid_proportion),
            ("hot-auction-ratio", self.hot_auction_ratio),
            ("hot-sellers-ratio", self.hot_sellers_ratio),
            ("hot-bidders-ratio", self.hot_bidders_ratio),
            ("num-active-people", self.num_active_people),
            ("num-in-flight-auctions", self.num_in_flight_auctions),
            ("out-of-order-group-size", self.out_of_order_group_size),
        ];
        if let Some((key, _)) = at_least_one.iter().find(|(_, v)| *v == 0) {
            return Err(NexmarkError::Zero { key });
        }
        const MAX_PROPORTIONS: u64 = 1 << 20;
        if self.person_proportion + self.auction_proportion + self.bid_proportion > MAX_PROPORTIONS {
            return Err(NexmarkError::Proportions { max: MAX_PROPORTIONS });
        }
        if self.occasional_delay_ms < 0 {
            return Err(NexmarkError::NegativeDelay(self.occasional_delay_ms));
        }
        if !(0.0..=1.0).contains(&self.prob_delayed_event) {
            return Err(NexmarkError::Probability(self.prob_delayed_event));
        }
        Ok(())
    }
}

/// Generate events `start..spec.events` into `ctx`, paced by `rate` (event `i` is due
/// `(i - start) / rate` seconds after the source starts), until the end or until the job
/// stops. A run from `start` emits exactly the events a run from 0 emits from `start` on, so
/// the position a checkpoint records for this source is the index of the next event.
impl Source for NexmarkSpec {
    fn name(&self) -> &'static str {
        "source nexmark"
    }

    fn run(&self, ctx: &mut SourceContext, start: Option<&SourcePosition>) -> Result<SourcePosition, ConnectorError> {
        run(self, ctx, start_index(self, start)?.max(self.start))
    }
}

fn run(spec: &NexmarkSpec, ctx: &mut SourceContext, start: u64) -> Result<SourcePosition, ConnectorError> {
    let generator = NexmarkGenerator::new(spec)?;
    let started = Instant::now();
    tracing::info!(events = spec.events, start, rate = spec.rate, seed = spec.seed, "nexmark source started");
    for i in start..spec.events {
        ctx.checkpoint_point(|| SourcePosition::records(i))?;
        if let Some(rate) = spec.rate {
            let nanos = u64::try_from(u128::from(i - start) * 1_000_000_000 / u128::from(rate)).unwrap_or(u64::MAX);
            let Some(due) = started.checked_add(Duration::from_nanos(nanos)) else { break };
            let now = Instant::now();
            if due > now + PACING_SLACK {
                // Ship what is ready rather than hold it back for a full batch.
                ctx.flush()?;
                std::thread::sleep(due - now);
            }
        }
        let event = generator.event(i);
        let Ok(()) = ctx.emit_with(|buf| {
            event::write(&event, buf);
            Ok::<(), std::convert::Infallible>(())
        })?;
    }
    Ok(SourcePosition::records(spec.events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        assert_eq!(NexmarkSpec::new(1).rate(0).validate(), Err(NexmarkError::ZeroRate));
        let mut spec = NexmarkSpec::new(1);
        spec.hot_bidders_ratio = 0;
        assert_eq!(spec.validate().unwrap_err().to_string(), "`hot-bidders-ratio` must be at least 1");
        assert!(NexmarkSpec::new(1).delays(1.5, 10).validate().unwrap_err().to_string().contains("prob-delayed-event"));
        assert!(NexmarkSpec::new(1).delays(0.1, -1).validate().unwrap_err().to_string().contains("occasional-delay"));
    }

    #[test]
    fn event_i_is_the_same_whatever_came_before() {
        let spec = NexmarkSpec::new(1_000).seed(5).rate(50_000);
        let a = NexmarkGenerator::new(&spec).expect("valid");
        let b = NexmarkGenerator::new(&spec).expect("valid");
        let forward: Vec<Event> = (0..500).map(|i| a.event(i)).collect();
        let backward: Vec<Event> = (0..500).rev().map(|i| b.event(i)).collect();
        assert!(forward.iter().eq(backward.iter().rev()));
        let other = NexmarkGenerator::new(&spec.clone().seed(6)).expect("valid");
        assert_ne!(other.event(10), a.event(10));
    }
}
