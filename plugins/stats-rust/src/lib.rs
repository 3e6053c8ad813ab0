//! Weir example plugin `stats`: aggregate functions (UDAFs) for windows, and one map.
//!
//! | function | kind | input | result |
//! |---|---|---|---|
//! | `avg` | aggregate | a number | the mean, or nil with no values; supports retract |
//! | `weighted_avg` | aggregate | `{value, weight}` | `sum(value * weight) / sum(weight)`, or nil |
//! | `distinct_count` | aggregate | a string | how many distinct strings |
//! | `p95` | aggregate | a number, or a record with `latency_ms` | the exact 95th percentile (nearest rank), or nil |
//! | `count` | aggregate | anything (not decoded) | how many values; supports retract |
//! | `latency_ms` | map | a record with `latency_ms` | the number |
//!
//! Each accumulator is a plain struct; the SDK stores it as MessagePack bytes that the host
//! keeps per key and window. `p95` is exact: it keeps every value, sorted, so its accumulator
//! grows with the window (fine for examples and small windows; a production percentile would
//! use a sketch such as t-digest or DDSketch, which merges the same way).

use std::collections::BTreeSet;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use weir::Aggregate;

/// Average of numbers.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Avg {
    sum: f64,
    count: u64,
}

impl Aggregate for Avg {
    type Input = f64;
    type Output = Option<f64>;

    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1;
    }

    fn merge(&mut self, other: Self) {
        self.sum += other.sum;
        self.count += other.count;
    }

    fn result(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }

    fn retract(&mut self, value: f64) -> Result<(), String> {
        if self.count == 0 {
            return Err(format!("cannot retract {value} from an empty average"));
        }
        self.sum -= value;
        self.count -= 1;
        Ok(())
    }
}

/// One input of [`WeightedAvg`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Weighted {
    pub value: f64,
    pub weight: f64,
}

/// Weighted average: `sum(value * weight) / sum(weight)`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct WeightedAvg {
    weighted_sum: f64,
    weight_sum: f64,
}

impl Aggregate for WeightedAvg {
    type Input = Weighted;
    type Output = Option<f64>;

    fn add(&mut self, v: Weighted) {
        self.weighted_sum += v.value * v.weight;
        self.weight_sum += v.weight;
    }

    fn merge(&mut self, other: Self) {
        self.weighted_sum += other.weighted_sum;
        self.weight_sum += other.weight_sum;
    }

    fn result(&self) -> Option<f64> {
        (self.weight_sum != 0.0).then(|| self.weighted_sum / self.weight_sum)
    }

    fn retract(&mut self, v: Weighted) -> Result<(), String> {
        self.weighted_sum -= v.value * v.weight;
        self.weight_sum -= v.weight;
        Ok(())
    }
}

/// Number of distinct strings. The accumulator is the set itself (exact); no retract, since
/// a set cannot tell whether another copy of a value is still in the window.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DistinctCount {
    seen: BTreeSet<String>,
}

impl Aggregate for DistinctCount {
    type Input = String;
    type Output = u64;

    fn add(&mut self, value: String) {
        self.seen.insert(value);
    }

    fn merge(&mut self, other: Self) {
        self.seen.extend(other.seen);
    }

    fn result(&self) -> u64 {
        self.seen.len() as u64
    }
}

/// A latency: a bare number, or a record with a `latency_ms` field (other fields ignored),
/// so `p95` works on the field or on the whole access-log record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Latency {
    Millis(f64),
    Record { latency_ms: f64 },
}

impl Latency {
    fn millis(&self) -> f64 {
        match *self {
            Latency::Millis(ms) | Latency::Record { latency_ms: ms } => ms,
        }
    }
}

/// Exact 95th percentile by nearest rank: keeps every value, sorted.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct P95 {
    /// Sorted ascending (by `f64::total_cmp`).
    sorted: Vec<f64>,
}

impl P95 {
    fn insert(&mut self, ms: f64) {
        let at = self.sorted.partition_point(|x| x.total_cmp(&ms).is_le());
        self.sorted.insert(at, ms);
    }
}

impl Aggregate for P95 {
    type Input = Latency;
    type Output = Option<f64>;

    fn add(&mut self, value: Latency) {
        self.insert(value.millis());
    }

    fn merge(&mut self, other: Self) {
        let mut merged = Vec::with_capacity(self.sorted.len() + other.sorted.len());
        let (mut a, mut b) = (self.sorted.iter().peekable(), other.sorted.iter().peekable());
        while let (Some(x), Some(y)) = (a.peek(), b.peek()) {
            if x.total_cmp(y).is_le() {
                merged.extend(a.next());
            } else {
                merged.extend(b.next());
            }
        }
        merged.extend(a);
        merged.extend(b);
        self.sorted = merged;
    }

    fn result(&self) -> Option<f64> {
        // Nearest rank: the smallest value with at least 95% of the values at or below it.
        let n = self.sorted.len();
        let rank = (n * 95).div_ceil(100).max(1);
        self.sorted.get(rank - 1).copied()
    }

    fn retract(&mut self, value: Latency) -> Result<(), String> {
        let ms = value.millis();
        let at = self.sorted.partition_point(|x| x.total_cmp(&ms).is_lt());
        match self.sorted.get(at) {
            Some(x) if x.total_cmp(&ms).is_eq() => {
                self.sorted.remove(at);
                Ok(())
            }
            _ => Err(format!("cannot retract {ms}: it is not in the accumulator")),
        }
    }
}

/// Number of values, whatever they are: the accumulator is the count itself (a `u64`), and
/// values are skipped over rather than decoded, so this is the cheapest UDAF there is (the
/// benchmark of a UDAF's fixed cost against the built-in `count`).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Count(u64);

impl Aggregate for Count {
    type Input = IgnoredAny;
    type Output = u64;

    fn add(&mut self, _: IgnoredAny) {
        self.0 += 1;
    }

    fn merge(&mut self, other: Self) {
        self.0 += other.0;
    }

    fn result(&self) -> u64 {
        self.0
    }

    fn retract(&mut self, _: IgnoredAny) -> Result<(), String> {
        self.0 = self.0.checked_sub(1).ok_or("cannot retract a value from a count of 0")?;
        Ok(())
    }
}

/// An access-log record, as far as `latency_ms` cares.
#[derive(Debug, Deserialize)]
pub struct Request {
    pub latency_ms: f64,
}

/// The `latency_ms` field of a record (a transform beside the aggregates).
#[weir::map]
pub fn latency_ms(request: Request) -> f64 {
    request.latency_ms
}

weir::plugin! {
    name: "stats",
    version: "0.1.0",
    functions: [latency_ms],
    aggregates: [avg: Avg, weighted_avg: WeightedAvg, distinct_count: DistinctCount, p95: P95, count: Count],
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::testing::Harness;

    fn harness() -> Harness {
        Harness::new(&PLUGIN)
    }

    #[test]
    fn describe_lists_the_map_and_the_aggregates() {
        let names: Vec<_> = PLUGIN.aggregates().iter().map(|a| a.name()).collect();
        assert_eq!(names, ["avg", "weighted_avg", "distinct_count", "p95", "count"]);
        assert_eq!(PLUGIN.functions()[0].name(), "latency_ms");
    }

    #[test]
    fn avg_of_numbers_and_of_nothing() {
        assert_eq!(harness().aggregate::<_, Option<f64>>("avg", [1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(harness().aggregate::<f64, Option<f64>>("avg", []), None);
        // Integers in the input decode as f64 too.
        assert_eq!(harness().aggregate::<_, Option<f64>>("avg", [1u32, 2]), Some(1.5));
    }

    #[test]
    fn avg_merges_and_retracts() {
        let h = harness();
        assert_eq!(h.aggregate_merged::<_, Option<f64>>("avg", [vec![1.0, 2.0], vec![], vec![9.0]]), Some(4.0));
        let acc = h.add("avg", &h.create_accumulator("avg").unwrap(), [1.0, 2.0, 9.0]).unwrap();
        let acc = h.retract("avg", &acc, [9.0]).unwrap();
        assert_eq!(h.result::<Option<f64>>("avg", &acc).unwrap(), Some(1.5));
    }

    #[test]
    fn a_value_that_does_not_decode_fails_the_batch_naming_it() {
        let h = harness();
        let acc = h.create_accumulator("avg").unwrap();
        let err = h.add("avg", &acc, ["1", "x"]).unwrap_err().to_string();
        assert!(err.contains("value 0") && err.contains("f64"), "{err}");
    }

    #[test]
    fn one_add_call_folds_values_into_several_accumulators() {
        let h = harness();
        let empty = h.create_accumulator("avg").unwrap();
        let accs = h.add_grouped("avg", &[empty.clone(), empty], [(0, 1.0), (1, 10.0), (0, 3.0)]).unwrap();
        assert_eq!(h.result::<Option<f64>>("avg", &accs[0]).unwrap(), Some(2.0));
        assert_eq!(h.result::<Option<f64>>("avg", &accs[1]).unwrap(), Some(10.0));
        let err = h.add_grouped("avg", &accs, [(2, 1.0)]).unwrap_err().to_string();
        assert!(err.contains("accumulator 2 of 2"), "{err}");
    }

    #[test]
    fn weighted_avg_weighs() {
        let values = [Weighted { value: 10.0, weight: 1.0 }, Weighted { value: 20.0, weight: 3.0 }];
        assert_eq!(harness().aggregate::<_, Option<f64>>("weighted_avg", values), Some(17.5));
        let zero = [Weighted { value: 10.0, weight: 0.0 }];
        assert_eq!(harness().aggregate::<_, Option<f64>>("weighted_avg", zero), None);
    }

    #[test]
    fn distinct_count_counts_each_string_once_across_merges() {
        assert_eq!(harness().aggregate::<_, u64>("distinct_count", ["a", "b", "a"]), 2);
        let merged: u64 = harness().aggregate_merged("distinct_count", [vec!["a", "b"], vec!["b", "c"]]);
        assert_eq!(merged, 3);
        let h = harness();
        let acc = h.create_accumulator("distinct_count").unwrap();
        let err = h.retract("distinct_count", &acc, ["a"]).unwrap_err().to_string();
        assert!(err.contains("does not support retract"), "{err}");
    }

    #[test]
    fn p95_by_nearest_rank() {
        // 1..=100: the 95th value is 95.
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(harness().aggregate::<_, Option<f64>>("p95", values), Some(95.0));
        // Few values: the largest one (rank ceil(0.95 * 3) = 3).
        assert_eq!(harness().aggregate::<_, Option<f64>>("p95", [5.0, 1.0, 3.0]), Some(5.0));
        assert_eq!(harness().aggregate::<f64, Option<f64>>("p95", []), None);
    }

    #[test]
    fn p95_reads_records_merges_and_retracts() {
        #[derive(Serialize)]
        struct Line {
            url: &'static str,
            latency_ms: f64,
        }
        let h = harness();
        let lines = (1..=20).map(|i| Line { url: "/", latency_ms: f64::from(i) });
        let acc = h.add("p95", &h.create_accumulator("p95").unwrap(), lines).unwrap();
        assert_eq!(h.result::<Option<f64>>("p95", &acc).unwrap(), Some(19.0));
        let acc = h.retract("p95", &acc, [19.0, 20.0]).unwrap();
        assert_eq!(h.result::<Option<f64>>("p95", &acc).unwrap(), Some(18.0));
        assert!(h.retract("p95", &acc, [42.0]).is_err());
        let split: Option<f64> = h.aggregate_merged("p95", [vec![1.0, 7.0, 3.0], vec![2.0, 10.0], vec![4.0]]);
        assert_eq!(split, Some(10.0));
    }

    #[test]
    fn count_counts_any_values_merges_and_retracts() {
        #[derive(Serialize)]
        struct Click {
            url: &'static str,
            ts: i64,
        }
        let clicks = [Click { url: "/a", ts: 1 }, Click { url: "/b", ts: 2 }, Click { url: "/a", ts: 3 }];
        assert_eq!(harness().aggregate::<_, u64>("count", clicks), 3);
        assert_eq!(harness().aggregate::<f64, u64>("count", []), 0);
        let mixed: u64 = harness().aggregate_merged("count", [vec!["x", "y"], vec![], vec!["z"]]);
        assert_eq!(mixed, 3);
        let h = harness();
        let acc = h.add("count", &h.create_accumulator("count").unwrap(), [1, 2]).unwrap();
        let acc = h.retract("count", &acc, [1]).unwrap();
        assert_eq!(h.result::<u64>("count", &acc).unwrap(), 1);
        let acc = h.retract("count", &acc, [2]).unwrap();
        let err = h.retract("count", &acc, [3]).unwrap_err().to_string();
        assert!(err.contains("count of 0"), "{err}");
        // The accumulator is the bare number in MessagePack (a positive fixint here).
        assert_eq!(h.create_accumulator("count").unwrap(), [0x00]);
        assert_eq!(h.add("count", &[0x00], ["a", "b"]).unwrap(), [0x02]);
    }

    #[test]
    fn count_folds_into_several_accumulators_in_one_call() {
        let h = harness();
        let empty = h.create_accumulator("count").unwrap();
        let accs = h.add_grouped("count", &[empty.clone(), empty], [(0, "a"), (1, "b"), (0, "c"), (0, "d")]).unwrap();
        assert_eq!(h.result::<u64>("count", &accs[0]).unwrap(), 3);
        assert_eq!(h.result::<u64>("count", &accs[1]).unwrap(), 1);
    }

    #[test]
    fn latency_ms_extracts_the_field() {
        #[derive(Serialize)]
        struct Line {
            url: &'static str,
            latency_ms: u32,
        }
        let out: Vec<f64> = harness().map("latency_ms", [Line { url: "/a", latency_ms: 12 }]);
        assert_eq!(out, [12.0]);
    }
}
