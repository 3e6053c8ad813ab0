//! The datagen source's random numbers: xoshiro256++ seeded through SplitMix64.
//!
//! Why not `rand`'s `StdRng`: its algorithm is documented as free to change between `rand`
//! releases, and so are `rand`'s range-sampling methods. A `seed` in a job file promises
//! the same rows on every Weir version and machine, so the generator and the way a draw
//! becomes a number in a range are fixed here, in a few lines, with the reference vectors
//! of both algorithms as tests. xoshiro256++ (Blackman and Vigna) is fast (a handful of
//! instructions per draw), passes BigCrush, and is what `rand_xoshiro` ships; it is not for
//! cryptography, which test data does not need.

/// A seeded generator; the same seed gives the same sequence everywhere.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

/// SplitMix64: expands one 64-bit seed into well-mixed state words (the seeding Vigna
/// recommends for xoshiro, so that similar seeds give unrelated streams).
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    pub fn seed(seed: u64) -> Self {
        let mut sm = seed;
        // SplitMix64 never yields four zero words in a row, the one state xoshiro must avoid.
        Self { s: [splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm), splitmix64(&mut sm)] }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias: Lemire's multiply-and-shift with
    /// rejection of the few draws that would favour small results.
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0, "below(0) has no value to return");
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Uniform in `min..=max` (`min <= max`).
    pub fn int_in(&mut self, min: i64, max: i64) -> i64 {
        debug_assert!(min <= max);
        let span = max.wrapping_sub(min) as u64;
        if span == u64::MAX {
            return self.next_u64() as i64;
        }
        min.wrapping_add(self.below(span + 1) as i64)
    }

    /// Uniform in `[0, 1)`, with the 53 bits a double holds.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[min, max]` (finite, `min <= max`, `max - min` finite).
    pub fn float_in(&mut self, min: f64, max: f64) -> f64 {
        // Rounding can land a hair above `max`; the range is a promise, so clamp.
        (min + self.unit_f64() * (max - min)).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::{prop_assert, prop_assert_eq, prop_assert_ne, proptest};

    #[test]
    fn splitmix64_matches_the_reference_output() {
        // Vigna's splitmix64.c from state 1234567.
        let mut state = 1_234_567;
        let out: Vec<u64> = (0..5).map(|_| splitmix64(&mut state)).collect();
        assert_eq!(
            out,
            [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821]
        );
    }

    #[test]
    fn xoshiro256plusplus_matches_the_reference_output() {
        // xoshiro256plusplus.c from the state [1, 2, 3, 4] (also rand_xoshiro's test vector).
        let mut rng = Rng { s: [1, 2, 3, 4] };
        let out: Vec<u64> = (0..10).map(|_| rng.next_u64()).collect();
        assert_eq!(
            out,
            [
                41943041,
                58720359,
                3588806011781223,
                3591011842654386,
                9228616714210784205,
                9973669472204895162,
                14011001112246962877,
                12406186145184390807,
                15849039046786891736,
                10450023813501588000
            ]
        );
    }

    #[test]
    fn below_is_roughly_uniform() {
        // 60,000 draws in 6 buckets: each within 5% of 10,000 (a fair generator misses this
        // about once in 10^6 runs; a biased mapping, e.g. taking high bits badly, misses it always).
        let mut rng = Rng::seed(7);
        let mut buckets = [0u32; 6];
        for _ in 0..60_000 {
            buckets[rng.below(6) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| (9_500..=10_500).contains(&b)), "{buckets:?}");
    }

    #[test]
    fn full_range_ints_and_single_values() {
        let mut rng = Rng::seed(1);
        assert_eq!(rng.int_in(5, 5), 5);
        let a = rng.int_in(i64::MIN, i64::MAX);
        let b = rng.int_in(i64::MIN, i64::MAX);
        assert_ne!(a, b, "the full range draws whole words");
        assert_eq!(rng.float_in(2.5, 2.5), 2.5);
    }

    proptest! {
        #[test]
        fn ints_stay_in_range(seed: u64, a: i64, b: i64) {
            let (min, max) = (a.min(b), a.max(b));
            let mut rng = Rng::seed(seed);
            for _ in 0..32 {
                let v = rng.int_in(min, max);
                prop_assert!((min..=max).contains(&v), "{v} not in {min}..={max}");
            }
        }

        #[test]
        fn floats_stay_in_range(seed: u64, a in -1e300f64..1e300, b in -1e300f64..1e300) {
            let (min, max) = (a.min(b), a.max(b));
            let mut rng = Rng::seed(seed);
            for _ in 0..32 {
                let v = rng.float_in(min, max);
                prop_assert!(v >= min && v <= max, "{v} not in [{min}, {max}]");
            }
        }

        #[test]
        fn the_same_seed_gives_the_same_stream(seed: u64) {
            let (mut a, mut b) = (Rng::seed(seed), Rng::seed(seed));
            for _ in 0..16 {
                prop_assert_eq!(a.next_u64(), b.next_u64());
            }
            let mut other = Rng::seed(seed.wrapping_add(1));
            prop_assert_ne!(Rng::seed(seed).next_u64(), other.next_u64());
        }
    }
}
