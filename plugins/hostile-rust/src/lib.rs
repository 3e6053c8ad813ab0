//! Weir test plugin `hostile`: functions that misbehave on marked rows only.
//!
//! The host's failure handling is tested with these: a trap, a timeout or a memory cap must
//! fail only the marked row (the host retries the batch row by row and rebuilds the
//! instance), and every other row of the same batch must come out unchanged (identity).
//! The aggregates `agg_trap` and `agg_spin` do the same for UDAFs: every other value must
//! be folded into the accumulator exactly once.

/// Panics (traps the instance) on a row containing `boom`.
#[weir::map]
pub fn trap(s: String) -> String {
    if s.contains("boom") {
        panic!("hostile plugin: trap on purpose for row {s:?}");
    }
    s
}

/// Loops forever on a row containing `loop` (the host's per-call time limit must stop it).
#[weir::map]
pub fn spin(s: String) -> String {
    if s.contains("loop") {
        let mut counter = 0u64;
        loop {
            // `black_box` keeps the optimiser from proving the loop side-effect free.
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
    s
}

/// Allocates without bound on a row containing `hog` (the host's memory cap must stop it).
#[weir::map]
pub fn hog(s: String) -> String {
    if s.contains("hog") {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // Non-zero fill writes every page, so the memory is really used, not just reserved.
            let chunk = vec![0xA5u8; 1 << 20];
            hoard.push(std::hint::black_box(chunk));
            std::hint::black_box(&hoard);
        }
    }
    s
}

/// Fails (a per-row error, not a trap) on a row containing `bad`.
#[weir::map]
pub fn fail(s: String) -> Result<String, String> {
    if s.contains("bad") { Err("bad record".to_string()) } else { Ok(s) }
}

/// An aggregate that collects its values in order (so a test sees each one went in exactly
/// once) and panics on a value containing `boom`. No retract.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AggTrap {
    values: Vec<String>,
}

impl weir::Aggregate for AggTrap {
    type Input = String;
    type Output = Vec<String>;

    fn add(&mut self, value: String) {
        if value.contains("boom") {
            panic!("hostile plugin: aggregate trap on purpose for value {value:?}");
        }
        self.values.push(value);
    }

    fn merge(&mut self, other: Self) {
        self.values.extend(other.values);
    }

    fn result(&self) -> Vec<String> {
        self.values.clone()
    }
}

/// Like [`AggTrap`], but loops forever on a value containing `loop` (the time limit stops it).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct AggSpin {
    values: Vec<String>,
}

impl weir::Aggregate for AggSpin {
    type Input = String;
    type Output = Vec<String>;

    fn add(&mut self, value: String) {
        if value.contains("loop") {
            let mut counter = 0u64;
            loop {
                counter = std::hint::black_box(counter.wrapping_add(1));
            }
        }
        self.values.push(value);
    }

    fn merge(&mut self, other: Self) {
        self.values.extend(other.values);
    }

    fn result(&self) -> Vec<String> {
        self.values.clone()
    }
}

weir::plugin! {
    name: "hostile",
    version: "0.1.0",
    functions: [trap, spin, hog, fail],
    aggregates: [agg_trap: AggTrap, agg_spin: AggSpin],
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir::testing::Harness;

    #[test]
    fn unmarked_rows_pass_unchanged() {
        let harness = Harness::new(&PLUGIN);
        for name in ["trap", "spin", "hog", "fail"] {
            assert_eq!(harness.map::<_, String>(name, ["a", "b"]), ["a", "b"], "{name}");
        }
    }

    #[test]
    fn fail_errs_only_on_bad_rows() {
        let out = Harness::new(&PLUGIN).apply::<_, String>("fail", ["ok", "bad one", "fine"]);
        assert_eq!(out, [Ok(vec!["ok".to_string()]), Err("bad record".to_string()), Ok(vec!["fine".to_string()])]);
    }

    #[test]
    fn aggregates_collect_unmarked_values() {
        let harness = Harness::new(&PLUGIN);
        for name in ["agg_trap", "agg_spin"] {
            let merged: Vec<String> = harness.aggregate_merged(name, [vec!["a", "b"], vec!["c"]]);
            assert_eq!(merged, ["a", "b", "c"], "{name}");
        }
    }

    #[test]
    #[should_panic(expected = "aggregate trap on purpose")]
    fn agg_trap_panics_on_boom() {
        Harness::new(&PLUGIN).aggregate::<_, Vec<String>>("agg_trap", ["a", "boom"]);
    }

    #[test]
    #[should_panic(expected = "trap on purpose")]
    fn trap_panics_on_boom() {
        trap("boom".into());
    }
}
