//! The joins against brute-force models of their semantics, on random rows of both sides
//! in random order with random watermarks; and every join restored from a checkpoint into
//! two instances that split the keys, which together must give what one instance gives.

use proptest::prelude::*;

use super::testing::{batch, show};
use super::*;
use crate::task::{DeadLetters, Operator};
use crate::time::END_OF_TIME;
use crate::window::{WindowAssigner, trigger};

#[derive(Debug, Clone, Copy)]
enum Event {
    Left(u8, i64),
    Right(u8, i64),
    /// The watermark moves on by this much (0: stays).
    Watermark(i64),
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let event = prop_oneof![
        4 => (0u8..3, 0i64..80).prop_map(|(k, t)| Event::Left(k, t)),
        4 => (0u8..3, 0i64..80).prop_map(|(k, t)| Event::Right(k, t)),
        1 => (0i64..12).prop_map(Event::Watermark),
    ];
    prop::collection::vec(event, 0..60)
}

fn key(k: u8) -> String {
    format!("k{k}")
}

/// An output row as [`show`] writes it.
fn row(k: u8, ts: i64, l: usize, r: usize) -> String {
    format!(r#"{} @ {ts}: {{"l":{l},"r":{r}}}"#, key(k))
}

fn sides() -> JoinSides {
    JoinSides::new("l", "r")
}

/// What a run gave: output rows with the watermark before and at the step that emitted
/// them (`None` for a row step), and the ids of the late rows.
#[derive(Default)]
struct Run {
    out: Vec<(String, Option<(i64, i64)>)>,
    late: Vec<usize>,
}

/// Feed `events` (row ids are their indexes plus `first_id`) to the instance of each row's
/// key (`pick`), watermarks to all; the watermark so far is `watermark` (`i64::MIN` before
/// the first).
fn feed(
    ops: &mut [&mut dyn Operator],
    pick: impl Fn(u8) -> usize,
    events: &[Event],
    first_id: usize,
    watermark: &mut i64,
    run: &mut Run,
) {
    for (i, e) in events.iter().enumerate() {
        let id = first_id + i;
        let (mut out, mut dead) = (Batch::new(), DeadLetters::default());
        let step = match *e {
            Event::Left(k, t) | Event::Right(k, t) => {
                let input = batch(&[(&key(k), Some(t), &id.to_string())]);
                let op = &mut ops[pick(k)];
                match e {
                    Event::Left(..) => op.process(input, &mut out, &mut dead).unwrap(),
                    _ => op.process_second(input, &mut out, &mut dead).unwrap(),
                }
                None
            }
            Event::Watermark(by) => {
                let before = *watermark;
                *watermark = if by == i64::MAX { END_OF_TIME } else { (*watermark).max(0) + by };
                for op in ops.iter_mut() {
                    op.on_watermark(*watermark, &mut out, &mut dead).unwrap();
                }
                Some((before, *watermark))
            }
        };
        run.out.extend(show(&out).into_iter().map(|r| (r, step)));
        run.late.extend(dead.0.iter().filter(|d| d.kind == crate::task::LATE).map(|_| id));
    }
}

/// All output rows of one instance fed `events` and the final watermark, sorted.
fn run_one(op: &mut dyn Operator, events: &[Event]) -> Run {
    let mut run = Run::default();
    let mut watermark = i64::MIN;
    feed(&mut [&mut *op], |_| 0, events, 0, &mut watermark, &mut run);
    feed(&mut [&mut *op], |_| 0, &[Event::Watermark(i64::MAX)], events.len(), &mut watermark, &mut run);
    run
}

fn sorted(run: &Run) -> Vec<String> {
    let mut rows: Vec<String> = run.out.iter().map(|(r, _)| r.clone()).collect();
    rows.sort();
    rows
}

/// The rows of one instance fed `events`, and of one fed `events[..split]`, checkpointed,
/// and restored into two instances (key `k0`, the other keys) fed the rest: both sorted.
fn split_run(make: &dyn Fn() -> Box<dyn Operator>, events: &[Event], split: usize) -> (Vec<String>, Vec<String>) {
    let whole = sorted(&run_one(&mut *make(), events));
    let split = split.min(events.len());
    let (mut first, mut run, mut watermark) = (make(), Run::default(), i64::MIN);
    feed(&mut [&mut *first], |_| 0, &events[..split], 0, &mut watermark, &mut run);
    let blob = first.snapshot(1).unwrap().unwrap();
    let (mut a, mut b) = (make(), make());
    let k0 = crate::record::encode_str("k0");
    a.restore(&[&blob], &|k| k == k0.as_slice()).unwrap();
    b.restore(&[&blob], &|k| k != k0.as_slice()).unwrap();
    let pick = |k: u8| usize::from(k != 0);
    feed(&mut [&mut *a, &mut *b], pick, &events[split..], split, &mut watermark, &mut run);
    feed(&mut [&mut *a, &mut *b], pick, &[Event::Watermark(i64::MAX)], events.len(), &mut watermark, &mut run);
    (whole, sorted(&run))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every pair of rows accepted on arrival (not below the watermark) whose times are
    /// within the bounds comes out exactly once, and nothing else does: no row is dropped
    /// while it can still match.
    #[test]
    fn interval_join_emits_every_pair_within_the_bounds(
        events in events(), lower in -10i64..10, width in 0i64..15, split in 0usize..60,
    ) {
        let upper = lower + width;
        let make = || IntervalJoin::new("j".into(), IntervalJoinConfig { sides: sides(), lower, upper }).unwrap();
        let run = run_one(&mut make(), &events);
        let (mut watermark, mut lefts, mut rights, mut late) = (i64::MIN, vec![], vec![], vec![]);
        for (id, e) in events.iter().enumerate() {
            match *e {
                Event::Left(_, t) | Event::Right(_, t) if watermark != i64::MIN && t < watermark => late.push(id),
                Event::Left(k, t) => lefts.push((k, t, id)),
                Event::Right(k, t) => rights.push((k, t, id)),
                Event::Watermark(by) => watermark = watermark.max(0) + by,
            }
        }
        let mut want = vec![];
        for &(k, lt, l) in &lefts {
            for &(rk, rt, r) in &rights {
                if k == rk && lt + lower <= rt && rt <= lt + upper {
                    want.push(row(k, lt.max(rt), l, r));
                }
            }
        }
        want.sort();
        prop_assert_eq!(sorted(&run), want);
        prop_assert_eq!(&run.late, &late);
        prop_assert!(run.out.iter().all(|(_, step)| step.is_none()), "pairs come out when their second row does");
        let (whole, split) = split_run(&|| Box::new(make()), &events, split);
        prop_assert_eq!(whole, split);
    }

    /// Tumbling and sliding windows: each window's pairs are those of the rows that came
    /// before it fired, and come out at the watermark that reaches its end - 1.
    #[test]
    fn window_join_pairs_the_rows_of_each_window_when_it_fires(
        events in events(), size in 1i64..20, slide in 1i64..25, tumbling in any::<bool>(), split in 0usize..60,
    ) {
        let assigner = if tumbling {
            WindowAssigner::tumbling(size, 0).unwrap()
        } else {
            WindowAssigner::sliding(size, slide, 0).unwrap()
        };
        let make = || WindowJoin::new("j".into(), WindowJoinConfig { sides: sides(), assigner }).unwrap();
        let run = run_one(&mut make(), &events);
        let mut watermark = i64::MIN;
        let mut windows: std::collections::BTreeMap<(u8, TimeWindowKey), (Vec<usize>, Vec<usize>)> = Default::default();
        let mut late = vec![];
        for (id, e) in events.iter().enumerate() {
            let (k, t, left) = match *e {
                Event::Left(k, t) => (k, t, true),
                Event::Right(k, t) => (k, t, false),
                Event::Watermark(by) => { watermark = watermark.max(0) + by; continue }
            };
            let all = assigner.assign(t);
            if trigger::is_record_late(t, &all, watermark, 0) {
                late.push(id);
                continue;
            }
            for w in all.iter().filter(|w| !trigger::is_window_late(w, watermark, 0)) {
                let e = windows.entry((k, (w.start, w.end))).or_default();
                if left { e.0.push(id) } else { e.1.push(id) }
            }
        }
        let mut want = vec![];
        for ((k, (_, end)), (ls, rs)) in &windows {
            for &l in ls {
                for &r in rs {
                    want.push(row(*k, end - 1, l, r));
                }
            }
        }
        want.sort();
        prop_assert_eq!(sorted(&run), want);
        prop_assert_eq!(&run.late, &late);
        for (r, step) in &run.out {
            let ts: i64 = r.split(' ').nth(2).and_then(|t| t.trim_end_matches(':').parse().ok()).unwrap();
            let Some((before, at)) = step else { panic!("{r} came out on a row") };
            prop_assert!(*before < ts && ts <= *at, "{} fired at watermark {} (before: {})", r, at, before);
        }
        let (whole, split) = split_run(&|| Box::new(make()), &events, split);
        prop_assert_eq!(whole, split);
    }

    /// A left row comes out at the first watermark at or past its time, with the right row
    /// of the latest time at or before its own among those that came before that watermark
    /// (the last of them at the same time); without one it is dropped.
    #[test]
    fn temporal_join_picks_the_version_in_force(events in events(), split in 0usize..60) {
        let make = || TemporalJoin::new("j".into(), TemporalJoinConfig { sides: sides() }).unwrap();
        let run = run_one(&mut make(), &events);
        let mut all = events.clone();
        all.push(Event::Watermark(i64::MAX));
        let (mut watermark, mut held, mut versions, mut want, mut late) = (i64::MIN, vec![], vec![], vec![], vec![]);
        for (id, e) in all.iter().enumerate() {
            match *e {
                Event::Left(_, t) if watermark != i64::MIN && t < watermark => late.push(id),
                Event::Left(k, t) => held.push((k, t, id)),
                Event::Right(k, t) => versions.push((k, t, id)),
                Event::Watermark(by) => {
                    let next = if by == i64::MAX { END_OF_TIME } else { watermark.max(0) + by };
                    if next <= watermark {
                        continue;
                    }
                    watermark = next;
                    for &(k, t, l) in held.iter().filter(|h| h.1 <= watermark) {
                        // The latest time, then the latest arrival.
                        let version = versions.iter().filter(|v| v.0 == k && v.1 <= t).max_by_key(|v| (v.1, v.2));
                        if let Some(&(_, _, r)) = version {
                            want.push(row(k, t, l, r));
                        }
                    }
                    held.retain(|h| h.1 > watermark);
                }
            }
        }
        want.sort();
        prop_assert_eq!(sorted(&run), want);
        prop_assert_eq!(&run.late, &late);
        let (whole, split) = split_run(&|| Box::new(make()), &events, split);
        prop_assert_eq!(whole, split);
    }

    /// Without a TTL, every pair of a key comes out once, whatever the times.
    #[test]
    fn regular_join_emits_every_pair_of_a_key(events in events(), split in 0usize..60) {
        let make = || RegularJoin::new("j".into(), RegularJoinConfig::new(sides())).unwrap();
        let run = run_one(&mut make(), &events);
        let rows: Vec<(bool, u8, i64, usize)> = events.iter().enumerate().filter_map(|(id, e)| match *e {
            Event::Left(k, t) => Some((true, k, t, id)),
            Event::Right(k, t) => Some((false, k, t, id)),
            Event::Watermark(_) => None,
        }).collect();
        let mut want = vec![];
        for &(_, k, lt, l) in rows.iter().filter(|r| r.0) {
            for &(_, rk, rt, r) in rows.iter().filter(|r| !r.0) {
                if k == rk {
                    want.push(row(k, lt.max(rt), l, r));
                }
            }
        }
        want.sort();
        prop_assert_eq!(sorted(&run), want);
        prop_assert!(run.late.is_empty());
        let (whole, split) = split_run(&|| Box::new(make()), &events, split);
        prop_assert_eq!(whole, split);
    }

    /// Session windows have no model here (see the hand-worked tests), but a restore into two
    /// instances must not change what comes out.
    #[test]
    fn session_window_join_survives_a_split_restore(events in events(), gap in 1i64..15, split in 0usize..60) {
        let assigner = WindowAssigner::session(gap).unwrap();
        let make = || WindowJoin::new("j".into(), WindowJoinConfig { sides: sides(), assigner }).unwrap();
        let (whole, split) = split_run(&|| Box::new(make()), &events, split);
        prop_assert_eq!(whole, split);
    }
}

/// A window as `(start, end)`, ordered, for the model's map.
type TimeWindowKey = (i64, i64);
