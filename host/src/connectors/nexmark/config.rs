//! Job-file syntax of the `nexmark` source (hyphenated options, as the datagen source's and
//! Flink's connector options are):
//!
//! ```yaml
//! source:
//!   connector: nexmark
//!   events: 1000000              # required
//!   rate: 100000                 # optional: events/s (paces the source and spaces event time)
//!   seed: 42                     # optional, default 0
//!   base-time: 2026-01-01T00:00:00Z   # optional: event time of event 0 (ms or RFC 3339)
//!   hot-auction-ratio: 2         # optional knobs, Beam's NexmarkConfiguration names and defaults
//! ```

use serde_norway::Value;

use crate::config::{Ctx, JobError, describe, duration, get, join};

use super::NexmarkSpec;
use crate::connectors::SourceSpec;

const SOURCE_KEYS: &[&str] = &[
    "connector",
    "events",
    "rate",
    "seed",
    "base-time",
    "person-proportion",
    "auction-proportion",
    "bid-proportion",
    "hot-auction-ratio",
    "hot-sellers-ratio",
    "hot-bidders-ratio",
    "num-active-people",
    "num-in-flight-auctions",
    "avg-person-byte-size",
    "avg-auction-byte-size",
    "avg-bid-byte-size",
    "out-of-order-group-size",
    "occasional-delay",
    "prob-delayed-event",
];

/// `source: {connector: nexmark, ...}`.
pub(in crate::connectors) fn parse_source(ctx: &Ctx, v: &Value, key: &str) -> Result<SourceSpec, JobError> {
    let entries = ctx.map(v, key, SOURCE_KEYS)?;
    let events = get(&entries, "events").ok_or_else(|| {
        ctx.err(key, "the nexmark connector needs `events`: how many events to generate, e.g. `events: 1000000`")
    })?;
    let mut spec = NexmarkSpec::new(ctx.number(events, &join(key, "events"), 0, u64::MAX)?);
    let count = |name: &str, min: u64, max: u64| -> Result<Option<u64>, JobError> {
        get(&entries, name).map(|n| ctx.number(n, &join(key, name), min, max)).transpose()
    };
    spec.rate = count("rate", 1, 1_000_000_000)?;
    spec.seed = count("seed", 0, u64::MAX)?.unwrap_or(0);
    let small = |name: &str, default: u64| -> Result<u64, JobError> { Ok(count(name, 1, 1 << 16)?.unwrap_or(default)) };
    spec.person_proportion = small("person-proportion", spec.person_proportion)?;
    spec.auction_proportion = small("auction-proportion", spec.auction_proportion)?;
    spec.bid_proportion = small("bid-proportion", spec.bid_proportion)?;
    spec.hot_auction_ratio = small("hot-auction-ratio", spec.hot_auction_ratio)?;
    spec.hot_sellers_ratio = small("hot-sellers-ratio", spec.hot_sellers_ratio)?;
    spec.hot_bidders_ratio = small("hot-bidders-ratio", spec.hot_bidders_ratio)?;
    let large = |name: &str, default: u64| -> Result<u64, JobError> { Ok(count(name, 1, 1 << 40)?.unwrap_or(default)) };
    spec.num_active_people = large("num-active-people", spec.num_active_people)?;
    spec.num_in_flight_auctions = large("num-in-flight-auctions", spec.num_in_flight_auctions)?;
    spec.out_of_order_group_size = large("out-of-order-group-size", spec.out_of_order_group_size)?;
    let size = |name: &str, default: u64| -> Result<u64, JobError> { Ok(count(name, 0, 1 << 20)?.unwrap_or(default)) };
    spec.avg_person_byte_size = size("avg-person-byte-size", spec.avg_person_byte_size)?;
    spec.avg_auction_byte_size = size("avg-auction-byte-size", spec.avg_auction_byte_size)?;
    spec.avg_bid_byte_size = size("avg-bid-byte-size", spec.avg_bid_byte_size)?;
    if let Some(t) = get(&entries, "base-time") {
        let t_key = join(key, "base-time");
        spec.base_time_ms = match t {
            Value::String(s) => crate::time::parse_rfc3339(s).map_err(|e| ctx.err(&t_key, e.to_string()))?,
            other => other.as_i64().ok_or_else(|| {
                ctx.err(&t_key, format!("expected epoch milliseconds or an RFC 3339 time, found {}", describe(other)))
            })?,
        };
    }
    if let Some(d) = get(&entries, "occasional-delay") {
        spec.occasional_delay_ms = duration(ctx, d, &join(key, "occasional-delay"))?;
    }
    if let Some(p) = get(&entries, "prob-delayed-event") {
        spec.prob_delayed_event = match p.as_f64() {
            Some(p) if (0.0..=1.0).contains(&p) => p,
            _ => {
                let found = describe(p);
                return Err(
                    ctx.err(&join(key, "prob-delayed-event"), format!("expected a share from 0 to 1, found {found}"))
                );
            }
        };
    }
    spec.validate().map_err(|e| ctx.err(key, e.to_string()))?;
    Ok(SourceSpec::new(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nexmark(source: &str) -> Result<NexmarkSpec, String> {
        let text = format!("name: t\nsource:\n  connector: nexmark\n{source}sink:\n  connector: blackhole\n");
        let source = crate::job::parse_text(&text).map_err(|e| e.to_string())?.source().clone();
        source.get::<NexmarkSpec>().cloned().ok_or_else(|| format!("not a nexmark source: {source:?}"))
    }

    #[test]
    fn parses_the_knobs() {
        let spec = nexmark(
            "  events: 500\n  rate: 2000\n  seed: 3\n  base-time: 1000\n  hot-auction-ratio: 5\n  occasional-delay: 2 s\n  prob-delayed-event: 0.25\n  avg-bid-byte-size: 0\n",
        )
        .unwrap();
        assert_eq!((spec.events, spec.rate, spec.seed, spec.base_time_ms), (500, Some(2000), 3, 1000));
        assert_eq!((spec.hot_auction_ratio, spec.occasional_delay_ms, spec.avg_bid_byte_size), (5, 2000, 0));
        assert_eq!(spec.prob_delayed_event, 0.25);
        let defaults = nexmark("  events: 10\n").unwrap();
        assert_eq!(defaults, NexmarkSpec::new(10));
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            nexmark("  rate: 10\n").unwrap_err(),
            "job.yaml:2: source: the nexmark connector needs `events`: how many events to generate, e.g. `events: 1000000`"
        );
        assert!(
            nexmark("  events: 10\n  rate: 0\n")
                .unwrap_err()
                .starts_with("job.yaml:5: source.rate: expected a whole number from 1 to")
        );
        assert!(nexmark("  events: 10\n  hot-bidders-ratio: 0\n").unwrap_err().contains("source.hot-bidders-ratio"));
        assert!(nexmark("  events: 10\n  prob-delayed-event: 2\n").unwrap_err().contains("source.prob-delayed-event"));
        assert_eq!(
            nexmark("  events: 10\n  hot_auction_ratio: 2\n").unwrap_err().split("; ").next().unwrap_or_default(),
            "job.yaml:5: source.hot_auction_ratio: unknown key"
        );
    }
}
