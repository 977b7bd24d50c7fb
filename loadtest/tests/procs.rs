//! `--procs`: the generator split over child processes, end to end against
//! echo servers on loopback, and the `idle` phases (hold, one verified echo
//! per connection, closes answered with 1000).
//!
//! Invariants: servers listen on 127.0.0.1 only and are killed when their
//! guard drops; every generator run is bounded (60 s by `run_generator`);
//! the sums across children must match what was asked exactly, and a run
//! whose connections fail must fail.

use std::process::{Command, Stdio};

mod common;

use common::{free_port, run_generator, wait_listening, Killed, GENERATOR};

fn peer() -> (Killed, u16) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_peer-tungstenite-threads"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start peer");
    let guard = Killed(child);
    wait_listening(port);
    (guard, port)
}

#[test]
fn idle_over_processes_holds_echoes_and_closes_everything() {
    let (_server, port) = peer();
    let url = format!("ws://127.0.0.1:{port}/");
    let (code, v) = run_generator(
        "idle",
        &url,
        &["-c", "301", "--procs", "3", "--hold", "1", "--echo-once"],
    );
    assert_eq!(
        v["error_total"], 0,
        "errors: {} ({})",
        v["errors"], v["first_error"]
    );
    assert_eq!(code, 0);
    assert_eq!(v["procs"], 3);
    assert_eq!(v["connections_made"], 301);
    assert_eq!(v["held"], 301);
    assert_eq!(v["held_at_once"], 301);
    assert_eq!(v["echoed"], 301);
    assert_eq!(v["closed_clean"], 301);
    assert!(v["echo_round_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["handshakes_per_sec"].as_f64().unwrap() > 0.0);
    assert!(v["echo_latency_us"]["max"].as_f64().unwrap() > 0.0);
}

#[test]
fn run_over_processes_sums_to_the_messages_asked() {
    let (_server, port) = peer();
    let url = format!("ws://127.0.0.1:{port}/");
    let (code, v) = run_generator(
        "run",
        &url,
        &[
            "-c",
            "20",
            "--procs",
            "2",
            "--messages",
            "999",
            "--size",
            "100",
        ],
    );
    assert_eq!(v["error_total"], 0, "errors: {}", v["errors"]);
    assert_eq!(code, 0);
    assert_eq!(v["procs"], 2);
    assert_eq!(v["connections_made"], 20);
    assert_eq!(v["sent"], 999);
    assert_eq!(v["received"], 999);
    // The children's latency histograms are merged, not sampled.
    assert!(v["latency_us"]["p50"].as_f64().unwrap() > 0.0);
    let total: u64 = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(total, 999);
}

#[test]
fn failed_connections_fail_the_run() {
    // Nothing listens there: every connect is refused.
    let url = format!("ws://127.0.0.1:{}/", free_port());
    let (code, v) = run_generator("idle", &url, &["-c", "10", "--procs", "2", "--hold", "0"]);
    assert_eq!(code, 1);
    assert_eq!(v["connections_made"], 0);
    assert_eq!(v["errors"]["connect_failed"], 10);
    assert_eq!(v["held_at_once"], 0);
}

#[test]
fn crowded_processes_are_refused() {
    let out = Command::new(GENERATOR)
        .args(["idle", "ws://127.0.0.1:9/", "-c", "40000", "--procs", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("use --procs 3 or more"), "{err}");
}

/// With ZEROWS_BIN set: zerows' heartbeat pings every held connection, and
/// the client's pongs keep them all open.
#[test]
fn zerows_heartbeat_is_answered_if_built() {
    let Ok(bin) = std::env::var("ZEROWS_BIN") else {
        return;
    };
    let port = free_port();
    let child = Command::new(bin)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--ping-interval", "1", "--pong-timeout", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start zerows");
    let _server = Killed(child);
    wait_listening(port);
    let url = format!("ws://127.0.0.1:{port}/");
    let (code, v) = run_generator(
        "idle",
        &url,
        &["-c", "200", "--procs", "2", "--hold", "3.5", "--echo-once"],
    );
    assert_eq!(
        v["error_total"], 0,
        "errors: {} ({})",
        v["errors"], v["first_error"]
    );
    assert_eq!(code, 0);
    assert_eq!(v["held_at_once"], 200);
    assert!(
        v["server_pings"].as_u64().unwrap() >= 200,
        "{}",
        v["server_pings"]
    );
    assert_eq!(v["closed_clean"], 200);
}
