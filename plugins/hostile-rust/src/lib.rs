//! Weir test plugin `hostile`: functions that misbehave on marked rows only.
//!
//! The host's failure handling is tested with these: a trap, a timeout or a memory cap must
//! fail only the marked row (the host retries the batch row by row and rebuilds the
//! instance), and every other row of the same batch must come out unchanged (identity).

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

weir::plugin! {
    name: "hostile",
    version: "0.1.0",
    functions: [trap, spin, hog, fail],
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
        assert_eq!(
            out,
            [Ok(vec!["ok".to_string()]), Err("bad record".to_string()), Ok(vec!["fine".to_string()])]
        );
    }

    #[test]
    #[should_panic(expected = "trap on purpose")]
    fn trap_panics_on_boom() {
        trap("boom".into());
    }
}
