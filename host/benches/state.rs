//! The keyed state benchmark: one run, one JSON document on stdout, progress on stderr.
//!
//!     cargo bench -p weir --bench state        (or `just bench`)
//!
//! 1 M keys (MessagePack strings, as `key_by` gives them) in 128 key groups, one 8-byte value
//! each, with a read cache of 16 MiB (smaller than the working set) in front of sled. Measures:
//! 1. loading the 1 M keys (value set, a flush every 100 k writes as checkpoints would);
//! 2. value get on random keys (mostly cache misses) and on 1 000 hot keys (cache hits);
//! 3. value set on random and on hot keys, and the flush of each epoch;
//! 4. a keyed count (get + set per event) over random keys with a flush every 100 k events,
//!    against a native baseline (a `HashMap` doing the same) in the same run;
//! 5. memory: VmRSS and VmHWM of this process (before the native baseline runs), the cache's
//!    own figure, and sled's size on disk.
//!
//! Every phase is checked: a wrong count fails the benchmark (non-zero exit).

use std::collections::HashMap;
use std::error::Error;
use std::time::{Duration, Instant};

use serde_json::json;
use weir::state::key_group;
use weir::state::{KeyGroupRange, KeyedState, StateConfig, StateDescriptor, StateStore};

type BenchResult<T> = Result<T, Box<dyn Error>>;

const HOT_KEYS: u64 = 1_000;
const FLUSH_EVERY: u64 = 100_000;
const MAX_PARALLELISM: u16 = 128;
const CACHE_BYTES: usize = 16 << 20;

/// A number from the environment (to try other sizes), or the default.
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `user-0000042` as a MessagePack string: 13 bytes.
fn key(i: u64) -> [u8; 13] {
    let mut out = [0u8; 13];
    out[0] = 0xa0 | 12;
    out[1..6].copy_from_slice(b"user-");
    let mut n = i;
    for b in out[6..].iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out
}

/// splitmix64: a fixed sequence, so runs compare.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

fn select(state: &mut KeyedState, i: u64) {
    let k = key(i);
    state.set_current_key(key_group(&k, MAX_PARALLELISM), &k);
}

fn read_u64(state: &mut KeyedState) -> BenchResult<u64> {
    Ok(match state.value_get("count")? {
        Some(bytes) => u64::from_le_bytes(bytes.as_slice().try_into()?),
        None => 0,
    })
}

fn ns_per_op(elapsed: Duration, ops: u64) -> f64 {
    elapsed.as_nanos() as f64 / ops as f64
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// VmRSS and VmHWM of this process, in MiB.
fn memory_mib() -> (Option<f64>, Option<f64>) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Flush times of the epochs of a phase.
#[derive(Default)]
struct Flushes(Vec<Duration>);

impl Flushes {
    fn flush(&mut self, state: &mut KeyedState) -> BenchResult<()> {
        let started = Instant::now();
        state.flush()?;
        self.0.push(started.elapsed());
        Ok(())
    }

    fn json(&self) -> serde_json::Value {
        let total: Duration = self.0.iter().sum();
        let max = self.0.iter().max().copied().unwrap_or_default();
        json!({ "count": self.0.len(), "mean_ms": ms(total) / self.0.len().max(1) as f64, "max_ms": ms(max) })
    }
}

fn main() -> BenchResult<()> {
    // WEIR_STATE_BENCH_KEYS and WEIR_STATE_BENCH_OPS shrink or grow the run; the figures in
    // the README and issue come from the defaults.
    let keys = env_or("WEIR_STATE_BENCH_KEYS", 1_000_000);
    let ops = env_or("WEIR_STATE_BENCH_OPS", 1_000_000);
    let (rss_start, _) = memory_mib();
    let dir = tempfile::tempdir()?;
    let mut config = StateConfig { cache_bytes: CACHE_BYTES, ..StateConfig::default() };
    config.sled_cache_bytes = env_or("WEIR_STATE_BENCH_SLED_CACHE_MIB", config.sled_cache_bytes >> 20) << 20;
    let sled_cache_mib = config.sled_cache_bytes as f64 / 1048576.0;
    let store = StateStore::open(dir.path(), config)?;
    let mut state = store.keyed("count", KeyGroupRange::all(MAX_PARALLELISM), &[StateDescriptor::value("count")])?;
    let mut peak_buffered_mib: f64 = 0.0;
    let mut note_buffer = |state: &KeyedState| {
        peak_buffered_mib = peak_buffered_mib.max(state.stats().buffered_bytes as f64 / 1048576.0);
    };

    // 1. Load: key i holds i.
    eprintln!("loading {keys} keys (rss, hwm MiB: {:?})", memory_mib());
    let mut load_flushes = Flushes::default();
    let mut in_sets = Duration::ZERO;
    for i in 0..keys {
        let started = Instant::now();
        select(&mut state, i);
        state.value_set("count", &i.to_le_bytes())?;
        in_sets += started.elapsed();
        if (i + 1) % FLUSH_EVERY == 0 {
            note_buffer(&state);
            load_flushes.flush(&mut state)?;
        }
    }
    let load_set_ns = ns_per_op(in_sets, keys);

    // 2. Reads.
    eprintln!("value get: random keys, then hot keys (rss, hwm MiB: {:?})", memory_mib());
    let mut rng = Rng(42);
    let before = state.stats();
    let started = Instant::now();
    for _ in 0..ops {
        let i = rng.below(keys);
        select(&mut state, i);
        if read_u64(&mut state)? != i {
            return Err(format!("key {i} read back wrong").into());
        }
    }
    let get_random_ns = ns_per_op(started.elapsed(), ops);
    let after = state.stats();
    let random_hit_rate = (after.cache_hits - before.cache_hits) as f64 / ops as f64;
    for i in 0..HOT_KEYS {
        select(&mut state, (i * 997) % keys);
        read_u64(&mut state)?;
    }
    let started = Instant::now();
    for _ in 0..ops {
        let i = (rng.below(HOT_KEYS) * 997) % keys;
        select(&mut state, i);
        if read_u64(&mut state)? != i {
            return Err(format!("hot key {i} read back wrong").into());
        }
    }
    let get_hot_ns = ns_per_op(started.elapsed(), ops);

    // 3. Writes: one epoch of random sets, one of hot sets (each key gets its own index back,
    // so the data stays checkable).
    eprintln!("value set: random keys, then hot keys (rss, hwm MiB: {:?})", memory_mib());
    let started = Instant::now();
    for _ in 0..ops {
        let i = rng.below(keys);
        select(&mut state, i);
        state.value_set("count", &i.to_le_bytes())?;
    }
    let set_random_ns = ns_per_op(started.elapsed(), ops);
    let random_epoch_writes = state.stats().buffered_writes;
    note_buffer(&state);
    let mut random_epoch = Flushes::default();
    random_epoch.flush(&mut state)?;
    let started = Instant::now();
    for _ in 0..ops {
        let i = (rng.below(HOT_KEYS) * 997) % keys;
        select(&mut state, i);
        state.value_set("count", &i.to_le_bytes())?;
    }
    let set_hot_ns = ns_per_op(started.elapsed(), ops);
    let mut hot_epoch = Flushes::default();
    hot_epoch.flush(&mut state)?;

    // 4. Keyed count over random events: reset to zero first, then count.
    eprintln!("keyed count over {ops} random events (rss, hwm MiB: {:?})", memory_mib());
    let mut counts_flushes = Flushes::default();
    let mut expected: HashMap<u64, u64> = HashMap::new();
    let mut rng_count = Rng(7);
    let started = Instant::now();
    for n in 0..ops {
        let i = rng_count.below(keys);
        select(&mut state, i);
        let count = read_u64(&mut state)?;
        state.value_set("count", &(count + 1).to_le_bytes())?;
        if (n + 1) % FLUSH_EVERY == 0 {
            note_buffer(&state);
            counts_flushes.flush(&mut state)?;
        }
    }
    let count_elapsed = started.elapsed();
    // Check: every key started at its own index i (sets above rewrote i too).
    let mut rng_check = Rng(7);
    for _ in 0..ops {
        *expected.entry(rng_check.below(keys)).or_default() += 1;
    }
    for (&i, &n) in expected.iter().take(10_000) {
        select(&mut state, i);
        let got = read_u64(&mut state)?;
        if got != i + n {
            return Err(format!("key {i}: count {got}, expected {}", i + n).into());
        }
    }
    drop(expected);
    let stats = state.stats();
    let (rss, hwm) = memory_mib();

    // 5. The native baseline: the same keyed count in a HashMap of the 1 M keys.
    eprintln!("native baseline (rss, hwm MiB: {:?})", memory_mib());
    let mut native: HashMap<[u8; 13], u64> = (0..keys).map(|i| (key(i), i)).collect();
    let mut rng_native = Rng(7);
    let started = Instant::now();
    for _ in 0..ops {
        let k = key(rng_native.below(keys));
        std::hint::black_box(key_group(&k, MAX_PARALLELISM));
        *native.entry(k).or_default() += 1;
    }
    let native_ns = ns_per_op(started.elapsed(), ops);
    std::hint::black_box(&native);
    let count_ns = ns_per_op(count_elapsed, ops);

    let report = json!({
        "benchmark": "keyed state (sled)",
        "keys": keys,
        "ops_per_phase": ops,
        "value_bytes": 8,
        "key_bytes": 13,
        "cache_mib": CACHE_BYTES as f64 / 1048576.0,
        "sled_cache_mib": sled_cache_mib,
        "load": { "set_ns_per_op": load_set_ns, "flush_every": FLUSH_EVERY, "flushes": load_flushes.json() },
        "get_random": { "ns_per_op": get_random_ns, "cache_hit_rate": random_hit_rate },
        "get_hot": { "ns_per_op": get_hot_ns, "hot_keys": HOT_KEYS },
        "set_random": {
            "ns_per_op": set_random_ns,
            "epoch_writes": random_epoch_writes,
            "epoch_flush": random_epoch.json(),
        },
        "set_hot": { "ns_per_op": set_hot_ns, "epoch_flush": hot_epoch.json() },
        "keyed_count_random": {
            "ns_per_event": count_ns,
            "events_per_s": 1e9 / count_ns,
            "includes_flushes": counts_flushes.json(),
            "native_hashmap_ns_per_event": native_ns,
            "ratio_state_vs_native": count_ns / native_ns,
        },
        "memory": {
            "rss_start_mib": rss_start,
            "rss_mib": rss,
            "peak_rss_mib": hwm,
            "cache_entries": stats.cached_entries,
            "cache_mib": stats.cached_bytes as f64 / 1048576.0,
            "peak_buffered_mib": peak_buffered_mib,
            "sled_disk_mib": stats.disk_bytes.map(|b| b as f64 / 1048576.0),
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
