//! The Nexmark suite: every query of `benches/nexmark/` run through the CLI on a small seed,
//! its output compared with the answer this test works out itself from the generated events
//! (regenerated through the public generator API; the query logic here is plain Rust over
//! those events, not the engine), so a fast wrong answer fails. Also: the source resumes
//! at any event index with exactly the events a run from 0 has there, and a bad source
//! configuration is reported at its key.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::{plugin_yaml, read_file, read_json_lines, repo_root, run, run_job, temp_dir, weir, write_job};
use serde_json::{Value, json};
use weir::connectors::{Auction, Bid, NexmarkEvent as Event, NexmarkGenerator, NexmarkSpec, Person};

const SEED: u64 = 11;
/// Events of the stateless and join queries: 4 s of event time at the default 10,000 events/s.
const SMALL: u64 = 40_000;
/// Events of the window queries: 30 s of event time, three 10 s windows.
const WINDOWED: u64 = 300_000;

fn events(n: u64) -> Vec<Event> {
    let g = NexmarkGenerator::new(&NexmarkSpec::new(n).seed(SEED)).expect("a valid spec");
    (0..n).map(|i| g.event(i)).collect()
}

fn people(events: &[Event]) -> impl Iterator<Item = &Person> {
    events.iter().filter_map(|e| if let Event::Person(p) = e { Some(p) } else { None })
}

fn auctions(events: &[Event]) -> impl Iterator<Item = &Auction> {
    events.iter().filter_map(|e| if let Event::Auction(a) = e { Some(a) } else { None })
}

fn bids(events: &[Event]) -> impl Iterator<Item = &Bid> {
    events.iter().filter_map(|e| if let Event::Bid(b) = e { Some(b) } else { None })
}

/// An event as JSON, field by field from the struct (not through the source's encoder).
fn event_json(e: &Event) -> Value {
    match e {
        Event::Person(p) => {
            json!({"event_type": "person", "id": p.id, "name": p.name, "email_address": p.email_address,
            "credit_card": p.credit_card, "city": p.city, "state": p.state, "date_time": p.date_time, "extra": p.extra})
        }
        Event::Auction(a) => json!({"event_type": "auction", "id": a.id, "item_name": a.item_name,
            "description": a.description, "initial_bid": a.initial_bid, "reserve": a.reserve, "date_time": a.date_time,
            "expires": a.expires, "seller": a.seller, "category": a.category, "extra": a.extra}),
        Event::Bid(b) => json!({"event_type": "bid", "auction": b.auction, "bidder": b.bidder, "price": b.price,
            "channel": b.channel, "url": b.url, "date_time": b.date_time, "extra": b.extra}),
    }
}

/// Run `benches/nexmark/q<n>.yaml` on `events` events of seed [`SEED`], at parallelism 2,
/// and return its output rows (after checking that nothing was a dead letter or late).
fn run_query(query: &str, events: u64) -> Vec<Value> {
    let dir = temp_dir();
    let text = read_file(&repo_root().join(format!("benches/nexmark/{query}.yaml")));
    let text = text
        .replace("../../plugins/nexmark-rust/nexmark-rust.wasm", &plugin_yaml("nexmark-rust"))
        .replace("events: 1000000\n", &format!("events: {events}\n"))
        .replace("seed: 42\n", &format!("seed: {SEED}\n"))
        .replace("sink:\n  connector: blackhole\n", "sink: {connector: file, path: out.jsonl, format: json}\n")
        .replace("connector: blackhole}", "connector: file, path: out.jsonl, format: json}");
    let text = format!("{text}dead_letter: {{connector: file, path: dead.jsonl}}\n");
    assert!(text.contains(&format!("events: {events}")) && text.contains("out.jsonl"), "unexpected job file:\n{text}");
    let job = write_job(dir.path(), &format!("parallelism: 2\n{text}"));
    let out = run_job(&job);
    out.assert_ok();
    let s = out.summary();
    assert_eq!(
        (s.records_in, s.dead_letters, s.late),
        (events, 0, 0),
        "{query}: {}",
        read_file(&dir.path().join("dead.jsonl"))
    );
    read_json_lines(&dir.path().join("out.jsonl"))
}

fn u(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or_else(|| panic!("`{field}` is not an unsigned integer in {v}"))
}

fn i(v: &Value, field: &str) -> i64 {
    v[field].as_i64().unwrap_or_else(|| panic!("`{field}` is not an integer in {v}"))
}

/// `got == expected`, or a failure that shows the lengths and the first row that differs
/// (whole outputs are too long to read). Expected rows go through JSON text as the job's
/// output did: serde_json's float parsing may land one ulp off the printed value.
fn assert_rows(query: &str, got: &[Value], expected: &[Value]) {
    let expected: Vec<Value> = expected.iter().map(reparsed).collect();
    if let Some(i) = (0..got.len().max(expected.len())).find(|&i| got.get(i) != expected.get(i)) {
        panic!(
            "{query}: {} rows, {} expected; row {i} is {:?}, expected {:?}",
            got.len(),
            expected.len(),
            got.get(i).map(Value::to_string),
            expected.get(i).map(Value::to_string)
        );
    }
}

fn reparsed(v: &Value) -> Value {
    serde_json::from_str(&v.to_string()).unwrap_or_else(|e| panic!("{v} does not parse back: {e}"))
}

fn sorted(mut rows: Vec<Value>) -> Vec<Value> {
    rows.sort_by_key(|v| v.to_string());
    rows
}

#[test]
fn q0_passes_every_event_through_unchanged() {
    let expected: Vec<Value> = events(SMALL).iter().map(event_json).collect();
    // q0 is one chain from the source: the order is kept.
    assert_rows("q0", &run_query("q0", SMALL), &expected);
}

#[test]
fn q1_converts_bid_prices_to_euros() {
    let expected: Vec<Value> = bids(&events(SMALL))
        .map(|b| json!({"auction": b.auction, "bidder": b.bidder, "price": 0.908 * b.price as f64, "date_time": b.date_time, "extra": b.extra}))
        .collect();
    assert!(expected.len() > 30_000);
    assert_rows("q1", &run_query("q1", SMALL), &expected);
}

#[test]
fn q2_selects_the_bids_of_every_123rd_auction() {
    let all = events(SMALL);
    let expected: Vec<Value> =
        all.iter().filter(|e| matches!(e, Event::Bid(b) if b.auction.is_multiple_of(123))).map(event_json).collect();
    assert!(!expected.is_empty() && expected.len() < 2_000, "{} bids", expected.len());
    assert_rows("q2", &run_query("q2", SMALL), &expected);
}

#[test]
fn q3_joins_category_10_auctions_to_sellers_in_or_id_ca() {
    let all = events(SMALL);
    let sellers: BTreeMap<u64, &Person> =
        people(&all).filter(|p| matches!(p.state.as_str(), "OR" | "ID" | "CA")).map(|p| (p.id, p)).collect();
    let expected: Vec<Value> = auctions(&all)
        .filter(|a| a.category == 10)
        .filter_map(|a| {
            let p = sellers.get(&a.seller)?;
            Some(json!({"name": p.name, "city": p.city, "state": p.state, "id": a.id, "date_time": p.date_time.max(a.date_time)}))
        })
        .collect();
    assert!(expected.len() > 50, "{} matches", expected.len());
    assert_rows("q3", &sorted(run_query("q3", SMALL)), &sorted(expected.clone()));
    // The same on the host's regular join instead of a process function.
    assert_rows("q3-join", &sorted(run_query("q3-join", SMALL)), &sorted(expected));
}

/// Each auction's winning price (Beam's `WinningBids`): the highest bid at or above the
/// reserve made while it was open; auctions without one have none.
fn winning_prices(all: &[Event]) -> Vec<(&Auction, u64)> {
    let mut by_auction: BTreeMap<u64, Vec<&Bid>> = BTreeMap::new();
    for b in bids(all) {
        by_auction.entry(b.auction).or_default().push(b);
    }
    auctions(all)
        .filter_map(|a| {
            let valid = by_auction
                .get(&a.id)?
                .iter()
                .filter(|b| b.price >= a.reserve && b.date_time >= a.date_time && b.date_time < a.expires);
            valid.map(|b| b.price).max().map(|price| (a, price))
        })
        .collect()
}

/// The last output row of each key `field`, and how many rows each key had.
fn last_per_key(rows: &[Value], field: &str) -> BTreeMap<u64, (Value, usize)> {
    let mut last: BTreeMap<u64, (Value, usize)> = BTreeMap::new();
    for r in rows {
        let entry = last.entry(u(r, field)).or_insert((Value::Null, 0));
        *entry = (r.clone(), entry.1 + 1);
    }
    last
}

#[test]
fn q4_averages_closing_prices_per_category() {
    let all = events(WINDOWED);
    let mut per_category: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    let winners = winning_prices(&all);
    for (a, price) in &winners {
        let e = per_category.entry(a.category).or_default();
        e.0 += price;
        e.1 += 1;
    }
    let rows = run_query("q4", WINDOWED);
    assert_eq!(rows.len(), winners.len(), "one update per closed auction with a winner");
    let got = last_per_key(&rows, "category");
    let expected: BTreeMap<u64, (Value, usize)> = per_category
        .iter()
        .map(|(&c, &(total, n))| (c, (json!({"category": c, "avg": total as f64 / n as f64, "auctions": n}), n)))
        .collect();
    let expected: BTreeMap<u64, (Value, usize)> = expected.iter().map(|(k, (v, n))| (*k, (reparsed(v), *n))).collect();
    assert_eq!(got, expected);
}

#[test]
fn q5_finds_the_auctions_with_the_most_bids_per_sliding_window() {
    let all = events(WINDOWED);
    let (size, slide) = (10_000i64, 2_000i64);
    let mut counts: BTreeMap<i64, BTreeMap<u64, u64>> = BTreeMap::new();
    for b in bids(&all) {
        let last = b.date_time - b.date_time.rem_euclid(slide);
        let mut start = last;
        while start > b.date_time - size {
            *counts.entry(start).or_default().entry(b.auction).or_default() += 1;
            start -= slide;
        }
    }
    let mut expected = Vec::new();
    for (start, per_auction) in &counts {
        let top = per_auction.values().max().copied().unwrap_or(0);
        for (auction, _) in per_auction.iter().filter(|(_, n)| **n == top) {
            expected.push(json!({"auction": auction, "num": top, "window_start": start, "window_end": start + size}));
        }
    }
    assert!(counts.len() >= 15, "{} windows", counts.len());
    assert_rows("q5", &sorted(run_query("q5", WINDOWED)), &sorted(expected));
}

#[test]
fn q6_averages_each_sellers_last_ten_closing_prices() {
    let all = events(WINDOWED);
    let mut per_seller: BTreeMap<u64, Vec<(i64, u64, u64)>> = BTreeMap::new();
    for (a, price) in winning_prices(&all) {
        per_seller.entry(a.seller).or_default().push((a.expires, a.id, price));
    }
    let expected: BTreeMap<u64, (Value, usize)> = per_seller
        .into_iter()
        .map(|(seller, mut sold)| {
            let n = sold.len();
            sold.sort_unstable();
            let last: Vec<u64> = sold.iter().rev().take(10).map(|s| s.2).collect();
            let avg = last.iter().sum::<u64>() as f64 / last.len() as f64;
            (seller, (json!({"seller": seller, "avg": avg, "auctions": last.len()}), n))
        })
        .collect();
    assert!(expected.values().any(|(_, n)| *n > 10), "some seller closes more than 10 auctions");
    let expected: BTreeMap<u64, (Value, usize)> = expected.iter().map(|(k, (v, n))| (*k, (reparsed(v), *n))).collect();
    assert_eq!(last_per_key(&run_query("q6", WINDOWED), "seller"), expected);
}

#[test]
fn q7_finds_the_highest_bids_per_tumbling_window() {
    let all = events(WINDOWED);
    let size = 10_000i64;
    let mut windows: BTreeMap<i64, Vec<&Bid>> = BTreeMap::new();
    for b in bids(&all) {
        windows.entry(b.date_time - b.date_time.rem_euclid(size)).or_default().push(b);
    }
    let mut expected = Vec::new();
    for (start, in_window) in &windows {
        let top = in_window.iter().map(|b| b.price).max().unwrap_or(0);
        for b in in_window.iter().filter(|b| b.price == top) {
            expected.push(json!({"auction": b.auction, "bidder": b.bidder, "price": b.price, "date_time": b.date_time,
                "window_start": start, "window_end": start + size}));
        }
    }
    assert_eq!(windows.len(), 3);
    assert_rows("q7", &sorted(run_query("q7", WINDOWED)), &sorted(expected));
}

#[test]
fn q8_finds_people_who_open_an_auction_in_the_window_they_register_in() {
    let all = events(WINDOWED);
    let size = 10_000i64;
    let window = |t: i64| t - t.rem_euclid(size);
    let opened: BTreeSet<(u64, i64)> = auctions(&all).map(|a| (a.seller, window(a.date_time))).collect();
    let expected: Vec<Value> = people(&all)
        .filter(|p| opened.contains(&(p.id, window(p.date_time))))
        .map(|p| json!({"id": p.id, "name": p.name, "window_start": window(p.date_time), "window_end": window(p.date_time) + size}))
        .collect();
    assert!(expected.len() > 100, "{} new users", expected.len());
    let got = run_query("q8", WINDOWED);
    assert!(got.iter().all(|r| i(r, "window_end") - i(r, "window_start") == size));
    assert_rows("q8", &sorted(got), &sorted(expected));
}

#[test]
fn a_source_resumed_at_event_i_emits_what_a_run_from_zero_emits_from_i() {
    use weir::env::StreamEnvironment;

    let collect = |spec: NexmarkSpec| {
        let env = StreamEnvironment::new();
        env.set_batch_size(97);
        let rows = env.from_nexmark(spec).collect();
        env.execute("nexmark resume").expect("the job runs");
        rows.lock().expect("the collected rows").clone()
    };
    let spec = NexmarkSpec::new(5_000).seed(SEED);
    let from_zero = collect(spec.clone());
    assert_eq!(from_zero.len(), 5_000);
    for start in [1, 1_234, 4_999] {
        let resumed = collect(spec.clone().start_at(start));
        assert_eq!(resumed.as_slice(), &from_zero[start as usize..], "resumed at {start}");
    }
    // What the source emits is the generator's event i, whatever the batch size, encoded as
    // plugins decode it: serde's map encoding of the shared `weir-nexmark` event.
    let g = NexmarkGenerator::new(&spec).expect("a valid spec");
    for (i, row) in from_zero.iter().enumerate().step_by(37) {
        let expected = rmp_serde::to_vec_named(&g.event(i as u64)).expect("an event encodes");
        assert_eq!(row, &expected, "event {i}");
    }
    // Another seed, another stream.
    let other = collect(NexmarkSpec::new(100).seed(SEED + 1));
    assert_ne!(other.as_slice(), &from_zero[..100]);
}

fn check(dir: &Path, source: &str) -> String {
    let job: PathBuf =
        write_job(dir, &format!("name: bad\nsource:\n  connector: nexmark\n{source}sink:\n  connector: blackhole\n"));
    run(weir().arg("check").arg(&job)).assert_failed().to_string()
}

#[test]
fn a_bad_source_configuration_is_reported_at_its_key() {
    let dir = temp_dir();
    let err = check(dir.path(), "  rate: 1000\n");
    assert!(err.contains("job.yaml:2: source: the nexmark connector needs `events`"), "{err}");
    let err = check(dir.path(), "  events: 10\n  rate: 0\n");
    assert!(err.contains("job.yaml:5: source.rate: expected a whole number from 1"), "{err}");
    let err = check(dir.path(), "  events: 10\n  hot-auction-ratio: 0\n");
    assert!(err.contains("source.hot-auction-ratio: expected a whole number from 1"), "{err}");
    let err = check(dir.path(), "  events: 10\n  prob-delayed-event: 1.5\n");
    assert!(err.contains("source.prob-delayed-event: expected a share from 0 to 1"), "{err}");
    let err = check(dir.path(), "  events: ten\n");
    assert!(err.contains("source.events: expected a whole number"), "{err}");

    use weir::env::StreamEnvironment;
    let env = StreamEnvironment::new();
    env.from_nexmark(NexmarkSpec::new(10).rate(0)).discard();
    let err = env.execute("zero rate").expect_err("a rate of 0 cannot run").to_string();
    assert_eq!(err, "from_nexmark: `rate` must be at least 1 event per second (leave it out for no limit)");
}
