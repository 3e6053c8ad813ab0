//! The socket source (Flink's `socketTextStream`): Weir connects to a TCP server, reads
//! lines until the server closes the connection, and the job ends with the stream.

mod common;

use common::{LineServer, plugin_yaml, run_job, temp_dir, write_job};

fn socket_job(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    write_job(
        dir,
        &format!(
            "name: socket\nbatch_size: 64\nplugins:\n  upper: {}\nsource:\n  connector: socket\n  hostname: 127.0.0.1\n  port: {port}\npipeline:\n  - map: upper.upper\nsink:\n  connector: print\n",
            plugin_yaml("upper-rust")
        ),
    )
}

#[test]
fn every_line_comes_out_upper_cased_in_order_and_the_job_ends_when_the_server_closes() {
    let lines: Vec<String> = (0..1000).map(|i| format!("line {i} from the socket")).collect();
    let server = LineServer::start(lines.clone());
    let dir = temp_dir();
    let out = run_job(&socket_job(dir.path(), server.port));
    server.join();
    out.assert_ok();
    let expected: Vec<String> = lines.iter().map(|l| l.to_uppercase()).collect();
    let got: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(got.len(), expected.len(), "stderr:\n{}", out.stderr);
    assert_eq!(got, expected);
    let summary = out.summary();
    assert_eq!((summary.records_in, summary.records_out, summary.dead_letters), (1000, 1000, 0));
}

#[test]
fn a_server_that_sends_nothing_ends_the_job_with_no_records() {
    let server = LineServer::start(Vec::<String>::new());
    let dir = temp_dir();
    let out = run_job(&socket_job(dir.path(), server.port));
    server.join();
    out.assert_ok();
    assert_eq!(out.stdout, "");
    assert_eq!(out.summary().records_in, 0);
}

#[test]
fn no_server_is_an_error_that_names_the_address() {
    // Bind a port, then free it, so nothing listens there.
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
    let dir = temp_dir();
    let out = run_job(&socket_job(dir.path(), port));
    let err = out.assert_failed();
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

#[test]
fn a_line_that_is_not_utf8_is_a_dead_letter_and_the_stream_goes_on() {
    let lines: Vec<Vec<u8>> =
        vec![b"one".to_vec(), b"caf\xe9".to_vec(), b"two".to_vec(), b"\xff".to_vec(), b"three".to_vec()];
    let server = LineServer::start(lines);
    let port = server.port;
    let dir = temp_dir();
    let dead = dir.path().join("dead.jsonl");
    let job = socket_job(dir.path(), server.port);
    let yaml =
        common::read_file(&job) + &format!("dead_letter:\n  connector: file\n  path: {}\n", common::yaml_path(&dead));
    let job = write_job(dir.path(), &yaml);
    let out = run_job(&job);
    server.join();
    out.assert_ok();
    assert_eq!(out.stdout, "ONE\nTWO\nTHREE\n");
    let letters = common::read_json_lines(&dead);
    let origins: Vec<&str> = letters.iter().map(|d| d["origin"].as_str().unwrap_or_default()).collect();
    assert_eq!(origins, [format!("127.0.0.1:{port} line 2"), format!("127.0.0.1:{port} line 4")]);
    for d in &letters {
        assert_eq!(d["kind"], "malformed-input", "{d}");
        assert_eq!(d["operator"], "source socket", "{d}");
    }
}
