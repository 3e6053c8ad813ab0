//! Joins of two streams as users write them in job files and the builder: interval, window,
//! regular and temporal joins with hand-worked results, a late record on each side, an idle
//! input holding the join's event time back, and the errors of a bad join.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{read_json_lines, run, run_job, temp_dir, weir, write_file, write_job};
use serde_json::{Value, json};

/// `(left ts, right ts)` of each output pair `{<left>: {.., ts}, <right>: {.., ts}}`, sorted.
fn pairs(rows: &[Value], left: &str, right: &str) -> Vec<(i64, i64)> {
    let mut pairs: Vec<(i64, i64)> = rows
        .iter()
        .map(|r| (r[left]["ts"].as_i64().expect("left ts"), r[right]["ts"].as_i64().expect("right ts")))
        .collect();
    pairs.sort_unstable();
    pairs
}

/// A job over `clicks.jsonl` and `buys.jsonl` (event time from `ts`, 5 s out of order
/// allowed), with `joined` defined by `join` and written to out.jsonl.
fn file_job(dir: &Path, clicks: &str, buys: &str, join: &str) -> PathBuf {
    write_file(dir, "clicks.jsonl", clicks);
    write_file(dir, "buys.jsonl", buys);
    write_job(
        dir,
        &format!(
            "name: joins\nparallelism: 2\n\
             streams:\n\
             \x20 clicks:\n    source: {{connector: file, path: clicks.jsonl, format: json}}\n    pipeline: [assign_timestamps: {{field: ts, max_out_of_orderness: 5 s}}]\n\
             \x20 buys:\n    source: {{connector: file, path: buys.jsonl, format: json}}\n    pipeline: [assign_timestamps: {{field: ts, max_out_of_orderness: 5 s}}]\n\
             \x20 joined:\n    {join}\n\
             sinks:\n  out: {{input: joined, connector: file, path: out.jsonl, format: json}}\n\
             late_data: {{connector: file, path: late.jsonl}}\n\
             dead_letter: {{connector: file, path: dead.jsonl}}\n"
        ),
    )
}

/// Clicks of a and b, out of order within the 5 s bound.
const CLICKS: &str = "{\"user\":\"a\",\"ts\":10000}\n{\"user\":\"b\",\"ts\":15000}\n{\"user\":\"a\",\"ts\":20000}\n{\"user\":\"a\",\"ts\":17000}\n";
/// Buys of a and b, out of order within the 5 s bound.
const BUYS: &str = "{\"user\":\"b\",\"ts\":11000}\n{\"user\":\"a\",\"ts\":12000}\n{\"user\":\"b\",\"ts\":26000}\n{\"user\":\"a\",\"ts\":29000}\n{\"user\":\"a\",\"ts\":24000}\n";

#[test]
fn an_interval_join_pairs_each_click_with_the_buys_from_5_s_before_to_10_s_after() {
    // R.ts - L.ts within [-5 s, +10 s], both bounds inclusive:
    // a: click 10000 with buy 12000 (+2 s); click 17000 with 12000 (-5 s, the lower bound)
    //    and 24000 (+7 s); click 20000 with 24000 (+4 s) and 29000 (+9 s). 10000/24000 is
    //    +14 s and 20000/12000 is -8 s: no.
    // b: click 15000 with buy 11000 (-4 s); 26000 is +11 s: no.
    let dir = temp_dir();
    let join =
        "interval_join: {left: clicks, right: buys, where: user, equal_to: user, between: {lower: -5 s, upper: 10 s}}";
    let out = run_job(&file_job(dir.path(), CLICKS, BUYS, join));
    out.assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(
        pairs(&rows, "clicks", "buys"),
        [(10000, 12000), (15000, 11000), (17000, 12000), (17000, 24000), (20000, 24000), (20000, 29000)]
    );
    assert_eq!(out.summary().late, 0);
    let check = run(weir().arg("check").arg(dir.path().join("job.yaml")));
    assert!(
        check.assert_ok().stdout.contains(
            "from stage 1 (first input) and stage 2 (second input), by key group: join[4] interval -5000..=10000 ms"
        ),
        "{}",
        check.stdout
    );
}

#[test]
fn a_window_join_pairs_the_clicks_and_buys_of_each_key_in_each_10_s_window() {
    // [10 s, 20 s): a: clicks 10000, 17000 x buy 12000; b: click 15000 x buy 11000.
    // [20 s, 30 s): a: click 20000 x buys 29000, 24000; b: buy 26000 alone, no pair.
    let dir = temp_dir();
    let join = "join: {left: clicks, right: buys, where: user, equal_to: user, window: {tumbling: 10 s}}";
    run_job(&file_job(dir.path(), CLICKS, BUYS, join)).assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(
        pairs(&rows, "clicks", "buys"),
        [(10000, 12000), (15000, 11000), (17000, 12000), (20000, 24000), (20000, 29000)]
    );
}

#[test]
fn a_regular_join_pairs_every_click_with_every_buy_of_its_user() {
    // a: 3 clicks x 3 buys; b: 1 click x 2 buys.
    let dir = temp_dir();
    let join = "join: {left: clicks, right: buys, where: user, equal_to: user, ttl: 1 h}";
    run_job(&file_job(dir.path(), CLICKS, BUYS, join)).assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(rows.len(), 3 * 3 + 2);
    assert!(rows.iter().all(|r| r["clicks"]["user"] == r["buys"]["user"]), "{rows:?}");
}

#[test]
fn a_temporal_join_gives_each_order_the_rate_in_force_at_its_time() {
    // Rates: EUR 1.1 from 1 s, 1.2 from 5 s; USD 1.0 from 0 s. Orders: EUR at 3 s (1.1) and
    // 6 s (1.2), USD at 2 s (1.0); GBP at 4 s has no rate: an inner join drops it.
    let dir = temp_dir();
    write_file(
        dir.path(),
        "rates.jsonl",
        "{\"cur\":\"USD\",\"ts\":0,\"rate\":1.0}\n{\"cur\":\"EUR\",\"ts\":1000,\"rate\":1.1}\n{\"cur\":\"EUR\",\"ts\":5000,\"rate\":1.2}\n",
    );
    write_file(
        dir.path(),
        "orders.jsonl",
        "{\"cur\":\"EUR\",\"ts\":3000,\"id\":1}\n{\"cur\":\"USD\",\"ts\":2000,\"id\":2}\n{\"cur\":\"GBP\",\"ts\":4000,\"id\":3}\n{\"cur\":\"EUR\",\"ts\":6000,\"id\":4}\n",
    );
    let job = write_job(
        dir.path(),
        "name: rates\n\
         streams:\n\
         \x20 orders:\n    source: {connector: file, path: orders.jsonl, format: json}\n    pipeline: [assign_timestamps: {field: ts, max_out_of_orderness: 2 s}]\n\
         \x20 rates:\n    source: {connector: file, path: rates.jsonl, format: json}\n    pipeline: [assign_timestamps: {field: ts, max_out_of_orderness: 0 s}]\n\
         \x20 priced:\n    temporal_join: {left: orders, right: rates, where: cur, equal_to: cur}\n\
         sinks:\n  out: {input: priced, connector: file, path: out.jsonl, format: json}\n",
    );
    run_job(&job).assert_ok();
    let mut got: Vec<(i64, f64)> = read_json_lines(&dir.path().join("out.jsonl"))
        .iter()
        .map(|r| (r["orders"]["id"].as_i64().unwrap(), r["rates"]["rate"].as_f64().unwrap()))
        .collect();
    got.sort_by_key(|(id, _)| *id);
    assert_eq!(got, [(1, 1.1), (2, 1.0), (4, 1.2)]);
}

/// A server that accepts one connection and writes each phase's lines, `gap` apart, then
/// closes it.
fn scripted(phases: Vec<Vec<&'static str>>, gap: Duration) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut conn = common::accept_within(&listener, Duration::from_secs(60)).expect("the job connects");
        for (i, phase) in phases.iter().enumerate() {
            if i > 0 {
                std::thread::sleep(gap);
            }
            for line in phase {
                conn.write_all(line.as_bytes()).unwrap();
                conn.write_all(b"\n").unwrap();
            }
            conn.flush().unwrap();
        }
    });
    (port, handle)
}

fn socket_job(dir: &Path, clicks: u16, buys: u16, join: &str) -> PathBuf {
    write_job(
        dir,
        &format!(
            "name: live\nbatch_size: 1\n\
             streams:\n\
             \x20 clicks:\n    source: {{connector: socket, hostname: 127.0.0.1, port: {clicks}, format: json}}\n    pipeline: [assign_timestamps: {{field: ts, max_out_of_orderness: 0 s}}]\n\
             \x20 buys:\n    source: {{connector: socket, hostname: 127.0.0.1, port: {buys}, format: json}}\n    pipeline: [assign_timestamps: {{field: ts, max_out_of_orderness: 0 s}}]\n\
             \x20 joined:\n    {join}\n\
             sinks:\n  out: {{input: joined, connector: file, path: out.jsonl, format: json}}\n\
             late_data: {{connector: file, path: late.jsonl}}\n"
        ),
    )
}

#[test]
fn a_record_behind_the_joins_event_time_is_late_on_either_side() {
    // Phase 1: click 10 s, buy 12 s: a pair. Phase 2: click 30 s, buy 35 s: a pair, and the
    // join's event time is min(30 s, 35 s) = 30 s. Phase 3: a click at 20 s and a buy at
    // 25 s, both behind it: late, though the buy is within 5 s of the 30 s click. They go to
    // the late-data output, one from each side.
    let dir = temp_dir();
    let gap = Duration::from_millis(600);
    let (clicks, c) = scripted(
        vec![
            vec![r#"{"user":"a","ts":10000}"#],
            vec![r#"{"user":"a","ts":30000}"#],
            vec![r#"{"user":"a","ts":20000}"#],
        ],
        gap,
    );
    let (buys, b) = scripted(
        vec![
            vec![r#"{"user":"a","ts":12000}"#],
            vec![r#"{"user":"a","ts":35000}"#],
            vec![r#"{"user":"a","ts":25000}"#],
        ],
        gap,
    );
    let join =
        "interval_join: {left: clicks, right: buys, where: user, equal_to: user, between: {lower: -5 s, upper: 10 s}}";
    let out = run_job(&socket_job(dir.path(), clicks, buys, join));
    c.join().unwrap();
    b.join().unwrap();
    out.assert_ok();
    let rows = read_json_lines(&dir.path().join("out.jsonl"));
    assert_eq!(pairs(&rows, "clicks", "buys"), [(10000, 12000), (30000, 35000)]);
    let mut late: Vec<i64> =
        read_json_lines(&dir.path().join("late.jsonl")).iter().map(|l| l["ts"].as_i64().unwrap()).collect();
    late.sort_unstable();
    assert_eq!(late, [20000, 25000], "one late record from each side");
    assert_eq!(out.summary().late, 2);
}

#[test]
fn an_idle_input_holds_the_joins_event_time_back() {
    // The clicks run ahead to 50 s while the buys say nothing; the buy at 2 s that comes
    // then is not late, since the join's event time is the least of both inputs', and the
    // [0 s, 10 s) window pairs it with the click at 1 s.
    let dir = temp_dir();
    let gap = Duration::from_millis(600);
    let (clicks, c) = scripted(vec![vec![r#"{"user":"a","ts":1000}"#, r#"{"user":"a","ts":50000}"#]], gap);
    let (buys, b) = scripted(vec![vec![], vec![r#"{"user":"a","ts":2000}"#]], gap);
    let join = "join: {left: clicks, right: buys, where: user, equal_to: user, window: {tumbling: 10 s}}";
    let out = run_job(&socket_job(dir.path(), clicks, buys, join));
    c.join().unwrap();
    b.join().unwrap();
    out.assert_ok();
    assert_eq!(pairs(&read_json_lines(&dir.path().join("out.jsonl")), "clicks", "buys"), [(1000, 2000)]);
    assert_eq!(out.summary().late, 0);
}

#[test]
fn a_bad_join_is_an_error_at_its_key() {
    let dir = temp_dir();
    let err = |join: &str| -> String {
        run(weir().arg("check").arg(file_job(dir.path(), CLICKS, BUYS, join))).assert_failed().to_string()
    };
    let e = err(
        "interval_join: {left: clicks, right: buys, where: user, equal_to: user, between: {lower: 10 s, upper: -5 s}}",
    );
    assert!(e.contains("streams.joined.interval_join.between: `lower` (10000 ms) is after `upper` (-5000 ms)"), "{e}");
    let e = err("interval_join: {left: clicks, right: buys, where: user, between: {lower: 0 s, upper: 1 s}}");
    assert!(
        e.contains("streams.joined.interval_join: stream `buys` is not keyed: give its key with `equal_to: <field>`"),
        "{e}"
    );
    let e = err("join: {left: clicks, right: buyz, where: user, equal_to: user}");
    assert!(e.contains("streams.joined.join: there is no stream `buyz`"), "{e}");
    let e = err("join: {left: clicks, right: buys, where: user, equal_to: user, window: {tumbling: 10 s}, ttl: 1 h}");
    assert!(e.contains("streams.joined.join.ttl: a window join forgets each window"), "{e}");
    // An event-time join of a stream without event time.
    write_file(dir.path(), "plain.jsonl", "{\"user\":\"a\"}\n");
    let job = write_job(
        dir.path(),
        "name: j\nstreams:\n  a: {source: {connector: file, path: plain.jsonl, format: json}}\n  b: {source: {connector: file, path: plain.jsonl, format: json}}\n  j: {interval_join: {left: a, right: b, where: user, equal_to: user, between: {lower: 0 s, upper: 1 s}}}\nsinks:\n  out: {input: j, connector: print}\n",
    );
    let e = run(weir().arg("check").arg(&job)).assert_failed().to_string();
    assert!(
        e.contains("streams.j.interval_join: this join matches by event time, which stream `a` does not have"),
        "{e}"
    );
}

#[test]
fn the_builder_joins_two_keyed_streams_as_the_job_file_does() {
    use weir::env::StreamEnvironment;

    let dir = temp_dir();
    write_file(dir.path(), "clicks.jsonl", CLICKS);
    write_file(dir.path(), "buys.jsonl", BUYS);
    let env = StreamEnvironment::new();
    env.set_parallelism(2);
    let bound = Duration::from_secs(5);
    let clicks = env.read_json_lines(dir.path().join("clicks.jsonl")).assign_timestamps("ts", bound);
    let buys = env.read_json_lines(dir.path().join("buys.jsonl")).assign_timestamps("ts", bound);
    let collected =
        clicks.key_by("user").join(buys.key_by("user")).sides("click", "buy").between(-5_000, 10_000).collect();
    env.execute("joins").unwrap();
    let rows: Vec<Value> = collected.lock().unwrap().iter().map(|v| weir::record::json_of(v)).collect();
    assert_eq!(pairs(&rows, "click", "buy").len(), 6);
    assert!(rows.iter().all(|r| r["click"]["user"] == r["buy"]["user"]), "{:?}", json!(rows));
    let env = StreamEnvironment::new();
    let a = env.from_elements([1]).key_by("x");
    let b = env.from_elements([2]).key_by("x");
    a.join(b).between(10, -5).discard();
    let e = env.execute("bad").unwrap_err().to_string();
    assert!(e.contains("lower <= upper"), "{e}");
}

/// A two-source interval join with checkpoints into the exactly-once file sink: two
/// rate-limited datagen streams of users' events, 5 ms of event time per row.
fn exactly_once_join(dir: &Path) -> PathBuf {
    let side = |seed: u32| {
        format!(
            "    source:\n      connector: datagen\n      number-of-rows: 9000\n      rows-per-second: 3000\n      seed: {seed}\n      fields:\n        \
             seq: {{kind: sequence, start: 0}}\n        user: {{kind: random, min: 1, max: 20}}\n        \
             ts: {{kind: event-time, start: 2026-01-01T00:00:00Z, step: 5 ms}}\n    \
             pipeline: [assign_timestamps: {{field: ts, max_out_of_orderness: 0 s}}]\n"
        )
    };
    write_job(
        dir,
        &format!(
            "name: join-exactly-once\nparallelism: 2\n\
             streams:\n  a:\n{}  b:\n{}\
             \x20 pairs: {{interval_join: {{left: a, right: b, where: user, equal_to: user, between: {{lower: -100 ms, upper: 100 ms}}}}}}\n\
             sinks:\n  out: {{input: pairs, connector: file, path: out, format: json}}\n\
             checkpoints: {{interval: 100 ms, dir: ckpt, restart_attempts: 0}}\n",
            side(1),
            side(2)
        ),
    )
}

#[test]
fn killed_at_random_moments_a_two_source_join_commits_exactly_a_crash_free_runs_output() {
    use common::kill::{checkpoint_ids, committed, kill_repeatedly};

    let clean = temp_dir();
    run_job(&exactly_once_join(clean.path())).assert_ok();
    let want = committed(clean.path());
    assert!(want.len() > 5_000, "the join matched: {} pairs", want.len());
    let mut unique = want.clone();
    unique.dedup();
    assert_eq!(unique.len(), want.len(), "each pair once in a crash-free run");

    let crashed = temp_dir();
    let job = exactly_once_join(crashed.path());
    let kills = std::env::var("WEIR_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(12);
    let seed = std::env::var("WEIR_KILL_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261208);
    let landed = kill_repeatedly(crashed.path(), &job, kills, seed);
    assert!(landed >= kills / 2, "most kills hit the running job ({landed} of {kills}, seed {seed})");
    assert!(checkpoint_ids(crashed.path()).last().copied().unwrap_or(0) > 3, "the killed runs made progress");
    run_job(&job).assert_ok();
    let got = committed(crashed.path());
    let mut seen = got.clone();
    seen.dedup();
    assert_eq!(seen.len(), got.len(), "duplicated pairs after {landed} kills (seed {seed})");
    let missing = want.iter().filter(|l| got.binary_search(l).is_err()).count();
    assert_eq!(missing, 0, "lost pairs after {landed} kills (seed {seed})");
    assert_eq!(got, want);
}

#[test]
fn the_user_profile_example_joins_each_purchase_with_the_events_of_the_10_minutes_before_it() {
    // u1 bought at 09:04:30 after events at 09:00, 09:02 and 09:04; u2 at 09:08:10 after
    // 09:01, 09:05, 09:07 and 09:08; u3's purchase at 09:30 is 21 minutes after its last
    // event. The profiles still come out, one per good event.
    let example = common::repo_root().join("examples/user-profile");
    let out = run_job(&example.join("with-purchases.yaml"));
    out.assert_ok();
    let mut got: Vec<(String, String)> = read_json_lines(&example.join("out/journeys.jsonl"))
        .iter()
        .map(|r| {
            assert_eq!(r["events"]["user_id"], r["purchases"]["user_id"]);
            (
                r["purchases"]["order"].as_str().unwrap().to_string(),
                r["events"]["ts"].as_str().unwrap()[11..16].to_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String)> = [
        ("o-1", "09:00"),
        ("o-1", "09:02"),
        ("o-1", "09:04"),
        ("o-2", "09:01"),
        ("o-2", "09:05"),
        ("o-2", "09:07"),
        ("o-2", "09:08"),
    ]
    .iter()
    .map(|(o, t)| (o.to_string(), t.to_string()))
    .collect();
    assert_eq!(got, want);
    assert_eq!(out.stdout.lines().count(), 9, "the profiles: {}", out.stdout);
}

#[test]
fn keys_of_different_kinds_on_the_two_sides_log_one_warning() {
    // The clicks' users are numbers, the buys' strings: 1 never meets "1".
    let dir = temp_dir();
    let clicks = "{\"user\":1,\"ts\":1000}\n{\"user\":2,\"ts\":2000}\n";
    let buys = "{\"user\":\"1\",\"ts\":1500}\n{\"user\":\"2\",\"ts\":2500}\n";
    let join = "join: {left: clicks, right: buys, where: user, equal_to: user, window: {tumbling: 10 s}}";
    let out = run_job(&file_job(dir.path(), clicks, buys, join));
    out.assert_ok();
    assert_eq!(out.summary().records_out, 0);
    let warnings = out.stderr.matches("the left side's keys are an integer and the right side's a string").count();
    assert!((1..=2).contains(&warnings), "one warning per parallel instance that saw both: {}", out.stderr);
}
