//! The data of the join bench (`joins.rs`) and the answer it must give, shared knowledge
//! with its Flink peer (`benches/peers/flink_joins.py`).
//!
//! Two streams, `a` (the join's left side) and `b` (its right), each of rows
//! `seq = 0..rows` with event time `seq` ms (1 ms per row, in order) and a key `k` in
//! `0..keys` that is a pure function of `seq` ([`key`]), with other constants per stream.
//! Flink's datagen connector has no seed, and Weir's random fields come from its own
//! generator; a key worked out from the sequence number, by arithmetic Flink SQL can
//! express too, gives both engines the same rows, so their matches can be compared pair for
//! pair: a count and an order-independent checksum ([`pair_hash`]).
//!
//! [`expected`] works the answer out from the rows themselves, without a stream processor.
//!
//! Included with `mod join_data;` (a folder, so that cargo does not take it for a bench).

/// 2^31 - 1: a prime whose square fits in an i64, so Flink SQL's BIGINT arithmetic computes
/// [`key`] exactly as this does.
const P: u64 = 2_147_483_647;

/// Event time of a tumbling window of the window join, ms.
pub const WINDOW_MS: u64 = 10_000;
/// The interval join's bounds: `b.ts - a.ts` within `LOWER_MS..=UPPER_MS`.
pub const LOWER_MS: i64 = -5_000;
pub const UPPER_MS: i64 = 10_000;

/// One of the two streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }

    /// The multiplier and addend of the first step of [`key`] (`SIDES` in the Flink script).
    fn constants(self) -> (u64, u64) {
        match self {
            Side::A => (48_271, 11),
            Side::B => (16_807, 7),
        }
    }
}

/// The key of row `seq` of `side`: `x3 mod keys`, with `x1 = (seq * m + c) mod P` and
/// `x(n+1) = (xn^2 + 1) mod P`. The squarings make the keys of the two streams unrelated
/// (an affine map alone would pair rows at a fixed distance); the Flink script's `key_sql`
/// writes the same steps in SQL.
pub fn key(side: Side, seq: u64, keys: u64) -> u64 {
    let (m, c) = side.constants();
    let x1 = (seq * m + c) % P;
    let x2 = (x1 * x1 + 1) % P;
    let x3 = (x2 * x2 + 1) % P;
    x3 % keys
}

/// A pair's share of the checksum: splitmix64's finalizer of `a_seq << 32 | b_seq`; the
/// checksum is the wrapping sum over all pairs, so the order they come in does not count.
pub fn pair_hash(a_seq: u64, b_seq: u64) -> u64 {
    let mut z = (a_seq << 32) | b_seq;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The two joins of the bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Join {
    /// 10 s tumbling windows: `a` and `b` rows of a key in the same window.
    Window,
    /// `b.ts - a.ts` within -5 s..=+10 s.
    Interval,
}

impl Join {
    pub fn name(self) -> &'static str {
        match self {
            Join::Window => "window",
            Join::Interval => "interval",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        [Join::Window, Join::Interval].into_iter().find(|j| j.name() == name)
    }

    /// The same join in a job file (the bench builds it with the builder API).
    pub fn as_job_file(self) -> String {
        match self {
            Join::Window => {
                format!("join: {{left: a, right: b, where: k, equal_to: k, window: {{tumbling: {WINDOW_MS} ms}}}}")
            }
            Join::Interval => format!(
                "interval_join: {{left: a, right: b, where: k, equal_to: k, between: {{lower: {LOWER_MS} ms, upper: {UPPER_MS} ms}}}}"
            ),
        }
    }

    /// The event times of `b` rows that an `a` row at `ts` meets, both inclusive (the
    /// definitions of docs/job-files.md, not the operators' code).
    fn partners(self, ts: u64) -> (i64, i64) {
        let ts = ts as i64;
        match self {
            Join::Window => {
                let start = ts - ts % WINDOW_MS as i64;
                (start, start + WINDOW_MS as i64 - 1)
            }
            Join::Interval => (ts + LOWER_MS, ts + UPPER_MS),
        }
    }
}

/// Matches and their checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Answer {
    pub matches: u64,
    pub checksum: u64,
}

/// The answer of `join` over `rows` rows per stream and `keys` keys: the rows of each
/// stream sorted by key and time, then each `a` row with the `b` rows of its key in its
/// range. Linear in rows and matches; about a second for 10 M rows per stream.
pub fn expected(join: Join, rows: u64, keys: u64) -> Answer {
    // key << 32 | seq: sorted, a key's rows in time order (seq < 2^32 checked by the caller).
    let sorted = |side: Side| {
        let mut v: Vec<u64> = (0..rows).map(|seq| (key(side, seq, keys) << 32) | seq).collect();
        v.sort_unstable();
        v
    };
    let (a, b) = (sorted(Side::A), sorted(Side::B));
    let seq = |packed: u64| packed & 0xFFFF_FFFF;
    let mut answer = Answer::default();
    let mut bi = 0;
    for group in a.chunk_by(|x, y| x >> 32 == y >> 32) {
        let k = group[0] >> 32;
        while bi < b.len() && b[bi] >> 32 < k {
            bi += 1;
        }
        let end = bi + b[bi..].partition_point(|y| y >> 32 == k);
        let partners = &b[bi..end];
        for &x in group {
            let (lo, hi) = join.partners(seq(x));
            let from = partners.partition_point(|&y| (seq(y) as i64) < lo);
            for &y in partners[from..].iter().take_while(|&&y| seq(y) as i64 <= hi) {
                answer.matches += 1;
                answer.checksum = answer.checksum.wrapping_add(pair_hash(seq(x), seq(y)));
            }
        }
        bi = end;
    }
    answer
}
