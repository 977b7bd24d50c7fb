//! End-to-end checks of the generator against real and deliberately faulty
//! echo (and JSON reply) servers on loopback.
//!
//! Invariants: every server started here listens on 127.0.0.1 only and is
//! stopped before its test returns; every generator run is short and bounded
//! by a wall-clock limit; a clean server must give zero errors and some
//! messages, a faulty one must make the generator fail and name the fault.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::Message;

mod common;

use common::{free_port, wait_listening, Killed, GENERATOR};

fn start_server(program: &str, extra: &[&str]) -> (Killed, u16) {
    start_server_with(program, &["--listen"], extra)
}

/// Start `program BEFORE… 127.0.0.1:PORT EXTRA…` on a free port.
fn start_server_with(program: &str, before: &[&str], extra: &[&str]) -> (Killed, u16) {
    let port = free_port();
    let child = Command::new(program)
        .args(before)
        .arg(format!("127.0.0.1:{port}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let guard = Killed(child);
    wait_listening(port);
    (guard, port)
}

/// Run the generator; returns (exit code, parsed --json summary).
fn generate(port: u16, extra: &[&str]) -> (i32, Value) {
    common::run_generator("run", &format!("ws://127.0.0.1:{port}/"), extra)
}

fn assert_clean(code: i32, v: &Value) {
    assert_eq!(v["error_total"], 0, "errors: {}", v["errors"]);
    assert_eq!(code, 0);
    assert!(v["messages"].as_u64().unwrap() > 0);
    assert!(v["messages_per_sec"].as_f64().unwrap() > 0.0);
    assert_eq!(v["connections_made"], v["connections_requested"]);
}

#[test]
fn tungstenite_threads_pingpong_and_pipelined() {
    let (_server, port) = start_server(env!("CARGO_BIN_EXE_peer-tungstenite-threads"), &[]);
    let (code, v) = generate(
        port,
        &[
            "-c",
            "8",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--size",
            "32",
            "--size",
            "3000",
        ],
    );
    assert_clean(code, &v);
    assert_eq!(v["closed_clean"], 8);
    let (code, v) = generate(
        port,
        &[
            "-c",
            "4",
            "--duration",
            "1",
            "--mode",
            "pipelined",
            "--inflight",
            "8",
            "--text",
            "--size",
            "70000",
            "--threads",
            "2",
        ],
    );
    assert_clean(code, &v);
    // JSON-like payloads, echoes cut across reads.
    let (code, v) = generate(
        port,
        &[
            "-c",
            "2",
            "--duration",
            "0.5",
            "--mode",
            "pipelined",
            "--payload",
            "json",
            "--size",
            "100",
            "--size",
            "20000",
        ],
    );
    assert_clean(code, &v);
    assert_eq!(v["payload"], "json");
}

/// `--server-pid` splits the server's CPU into user and system time, and
/// `--strace` counts its system calls per echo: at least a read and a
/// write each (strace from Debian's package, which .ci/run installs).
#[test]
fn server_cpu_split_and_syscalls_per_message() {
    let (server, port) = start_server(env!("CARGO_BIN_EXE_peer-fastwebsockets"), &[]);
    let pid = server.0.id().to_string();
    let args = [
        "-c",
        "10",
        "--duration",
        "1.5",
        "--warmup",
        "0.3",
        "--size",
        "32",
    ];
    let (code, v) = generate(port, &[&args[..], &["--server-pid", &pid]].concat());
    assert_clean(code, &v);
    let s = &v["server"];
    let (cpu, user, system) = (
        s["cpu_us_per_message"].as_f64().unwrap(),
        s["user_us_per_message"].as_f64().unwrap(),
        s["system_us_per_message"].as_f64().unwrap(),
    );
    // Both are read from /proc in clock ticks, at the same two moments.
    let tick_us = 1e6 / 100.0 / s["messages"].as_f64().unwrap();
    assert!(user >= 0.0 && system > 0.0, "{s}");
    assert!((user + system - cpu).abs() <= 2.0 * tick_us, "{s}");
    assert!(
        s.get("syscalls_per_message").is_none(),
        "only with --strace"
    );

    let (code, v) = generate(
        port,
        &[&args[..], &["--server-pid", &pid, "--strace"]].concat(),
    );
    assert_clean(code, &v);
    let s = &v["server"];
    let per = s["syscalls_per_message"]
        .as_f64()
        .expect("syscalls counted");
    assert!(per >= 1.9, "a read and a write per echo at least: {s}");
    let names: Vec<&str> = s["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_str().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.contains("recv") || n.contains("read")),
        "{names:?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n.contains("send") || n.contains("write")),
        "{names:?}"
    );
}

/// Optional: the zerows server itself, when `ZEROWS_BIN` names its binary.
#[test]
fn zerows_server_if_built() {
    let Ok(bin) = std::env::var("ZEROWS_BIN") else {
        eprintln!("ZEROWS_BIN not set; skipping the zerows smoke run");
        return;
    };
    let (_server, port) = start_server(&bin, &[]);
    let (code, v) = generate(
        port,
        &[
            "-c",
            "8",
            "--duration",
            "2",
            "--size",
            "32",
            "--size",
            "3000",
        ],
    );
    assert_clean(code, &v);
    let (code, v) = generate(
        port,
        &[
            "-c",
            "4",
            "--duration",
            "1",
            "--payload",
            "json",
            "--text",
            "--size",
            "32",
            "--size",
            "3000",
        ],
    );
    assert_clean(code, &v);
    assert_eq!(v["payload"], "json");
    assert_eq!(v["deflate"], false);
}

/// JSON replies from the tokio-tungstenite peer: payloads of 3000 bytes
/// hold dozens of backslashes, so escaping is exercised, and the pipelined
/// run gets replies cut across reads.
#[test]
fn json_replies_from_tokio_tungstenite() {
    let (_server, port) = start_server(
        env!("CARGO_BIN_EXE_peer-tokio-tungstenite"),
        &["--runtime", "current", "--service", "json"],
    );
    let (code, v) = generate(
        port,
        &[
            "--reply",
            "json",
            "-c",
            "8",
            "--duration",
            "1",
            "--size",
            "32",
            "--size",
            "3000",
        ],
    );
    assert_clean(code, &v);
    assert_eq!(v["reply"], "json");
    assert_eq!(v["text"], true);
    assert_eq!(v["closed_clean"], 8);
    let (code, v) = generate(
        port,
        &[
            "--reply",
            "json",
            "-c",
            "2",
            "--duration",
            "0.5",
            "--mode",
            "pipelined",
            "--inflight",
            "8",
            "--size",
            "20000",
        ],
    );
    assert_clean(code, &v);
    // JSON-like payloads are full of quotes, each escaped in both strings.
    let (code, v) = generate(
        port,
        &[
            "--reply",
            "json",
            "--payload",
            "json",
            "-c",
            "4",
            "--duration",
            "1",
            "--size",
            "32",
            "--size",
            "3000",
        ],
    );
    assert_clean(code, &v);
    assert_eq!(v["payload"], "json");
}

/// An echo is not the JSON reply: in json mode every one of them must be
/// caught, and the run must fail.
#[test]
fn json_mode_rejects_echoes() {
    let (_server, port) = start_server(
        env!("CARGO_BIN_EXE_peer-tokio-tungstenite"),
        &["--runtime", "current"],
    );
    let (code, v) = generate(
        port,
        &[
            "--reply",
            "json",
            "-c",
            "2",
            "--mode",
            "pipelined",
            "--inflight",
            "4",
            "--duration",
            "1",
            "--drain",
            "1",
        ],
    );
    assert_eq!(code, 1);
    let e = &v["errors"];
    // 4 in flight on each of 2 connections, each answered wrongly; as a
    // wrong reply names no message, the window then stays full.
    assert_eq!(v["sent"], 8, "{v}");
    assert_eq!(e["corrupted"], 8, "{e}");
    assert_eq!(e["unanswered"], 8, "{e}");
    assert_eq!(v["received"], 0);
    assert_eq!(v["messages"], 0);
    let first = v["first_error"].as_str().unwrap();
    assert!(first.contains("not the expected JSON"), "{first}");
}

#[derive(Clone, Copy)]
enum Fault {
    /// Flip one payload byte of every 50th message.
    Corrupt,
    /// Send every 20th message after the one that follows it.
    Swap,
    /// Drop every 30th message.
    Drop,
    /// Answer binary messages as text.
    Opcode,
    /// No fault: echo each message as several fragments cut at odd places
    /// (as zerows does when a payload arrives in pieces).
    Fragment,
}

/// A tiny echo server that misbehaves on purpose, on a thread.
fn faulty_server(fault: Fault) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(stream) = stream else { continue };
            std::thread::spawn(move || {
                stream.set_nodelay(true).ok();
                stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
                let Ok(mut ws) = tungstenite::accept(stream) else {
                    return;
                };
                let mut n = 0u64;
                let mut held: Option<Message> = None;
                loop {
                    let msg = match ws.read() {
                        Ok(m) => m,
                        Err(tungstenite::Error::Io(e)) if e.kind() == ErrorKind::WouldBlock => {
                            return
                        }
                        Err(_) => return,
                    };
                    let data = match msg {
                        Message::Binary(b) => b.to_vec(),
                        Message::Text(t) => t.as_bytes().to_vec(),
                        Message::Close(_) => {
                            ws.flush().ok();
                            return;
                        }
                        _ => continue,
                    };
                    n += 1;
                    let out = match fault {
                        Fault::Corrupt if n.is_multiple_of(50) => {
                            let mut d = data;
                            let at = d.len() - 1;
                            d[at] ^= 0x01;
                            Some(Message::binary(d))
                        }
                        Fault::Swap if n.is_multiple_of(20) => {
                            held = Some(Message::binary(data));
                            None
                        }
                        Fault::Drop if n.is_multiple_of(30) => None,
                        Fault::Opcode => Some(Message::text(String::from_utf8(data).unwrap())),
                        Fault::Fragment => {
                            use tungstenite::protocol::frame::{
                                coding::Data, coding::OpCode, Frame,
                            };
                            let cuts = [
                                0,
                                1.min(data.len()),
                                11.min(data.len()),
                                30.min(data.len()),
                                data.len(),
                            ];
                            for (i, w) in cuts.windows(2).enumerate() {
                                let op = if i == 0 { Data::Binary } else { Data::Continue };
                                let last = i == cuts.len() - 2;
                                let f = Frame::message(
                                    data[w[0]..w[1]].to_vec(),
                                    OpCode::Data(op),
                                    last,
                                );
                                if ws.write(Message::Frame(f)).is_err() {
                                    return;
                                }
                            }
                            if ws.flush().is_err() {
                                return;
                            }
                            None
                        }
                        _ => Some(Message::binary(data)),
                    };
                    if let Some(m) = out {
                        if ws.send(m).is_err() {
                            return;
                        }
                        if let Some(h) = held.take() {
                            if ws.send(h).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

fn faulty_run(fault: Fault) -> (i32, Value) {
    let port = faulty_server(fault);
    wait_listening(port);
    generate(
        port,
        &[
            "-c",
            "3",
            "--mode",
            "pipelined",
            "--inflight",
            "4",
            "--messages",
            "600",
            "--duration",
            "3",
            "--drain",
            "1",
            "--connect-timeout",
            "5",
        ],
    )
}

#[test]
fn detects_corruption() {
    let (code, v) = faulty_run(Fault::Corrupt);
    assert_eq!(code, 1);
    assert!(
        v["errors"]["corrupted"].as_u64().unwrap() >= 3,
        "{}",
        v["errors"]
    );
}

#[test]
fn detects_reordering() {
    let (code, v) = faulty_run(Fault::Swap);
    assert_eq!(code, 1);
    assert!(
        v["errors"]["reordered"].as_u64().unwrap() >= 3,
        "{}",
        v["errors"]
    );
    assert_eq!(v["errors"]["corrupted"], 0);
}

#[test]
fn detects_loss() {
    let (code, v) = faulty_run(Fault::Drop);
    assert_eq!(code, 1);
    let e = &v["errors"];
    // Every dropped message but possibly each connection's last is "lost"
    // (a later one came back); the rest are "unanswered".
    assert!(e["lost"].as_u64().unwrap() >= 3, "{e}");
}

/// A lossy server stalls pipelined connections; a `--messages` run must
/// notice and end long before its 300 s default limit.
#[test]
fn stalled_run_ends_early() {
    let port = faulty_server(Fault::Drop);
    wait_listening(port);
    let t = Instant::now();
    let (code, v) = generate(
        port,
        &[
            "-c",
            "2",
            "--mode",
            "pipelined",
            "--inflight",
            "4",
            "--messages",
            "100000",
            "--drain",
            "1",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
    assert!(
        v["errors"]["lost"].as_u64().unwrap() >= 2,
        "{}",
        v["errors"]
    );
    assert!(v["first_error"].is_string());
}

#[test]
fn detects_wrong_opcode() {
    let (code, v) = faulty_run(Fault::Opcode);
    assert_eq!(code, 1);
    assert!(
        v["errors"]["wrong_opcode"].as_u64().unwrap() >= 600,
        "{}",
        v["errors"]
    );
}

#[test]
fn accepts_fragmented_echoes() {
    let (code, v) = faulty_run(Fault::Fragment);
    assert_clean(code, &v);
    assert_eq!(v["received"], 600);
}

#[test]
fn refuses_non_loopback_targets() {
    let out = Command::new(GENERATOR)
        .args(["run", "ws://10.0.0.1:80/", "--duration", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

/// Run `compare` with `args`; returns (success, markdown table).
fn compare(args: &[&str]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!(
        "zerows-lt-compare-{}-{}",
        std::process::id(),
        free_port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let md = dir.join("table.md");
    let mut child = Command::new(GENERATOR)
        .arg("compare")
        .args(args)
        .arg("--markdown")
        .arg(&md)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "compare did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    let table = std::fs::read_to_string(&md).unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();
    (status.success(), table)
}

/// The comparison harness end to end, on the smallest possible matrix.
#[test]
fn compare_runs_a_tiny_matrix() {
    let (ok, table) = compare(&[
        "--servers",
        "tungstenite-threads,tokio-tungstenite-current",
        "--connections",
        "4",
        "--sizes",
        "32",
        "--modes",
        "pingpong,pipelined",
        "--repetitions",
        "1",
        "--duration",
        "0.5",
        "--warmup",
        "0.1",
    ]);
    assert!(ok, "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| 4 |")).collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows.iter().all(|r| r.ends_with("| 0 |")), "{table}");
}

/// `--reply json` runs the JSON variants and skips servers without one; a
/// `NAME=PATH` entry runs that binary under its own label, and ratios are to
/// the first server.
#[test]
fn compare_json_and_named_servers() {
    let tiny = [
        "--connections",
        "2",
        "--sizes",
        "32",
        "--modes",
        "pingpong",
        "--quick",
        "--duration",
        "0.3",
        "--warmup",
        "0.1",
    ];
    let mut json = vec![
        "--reply",
        "json",
        "--servers",
        "tokio-tungstenite-current,tungstenite-threads",
    ];
    json.extend(tiny);
    let (ok, table) = compare(&json);
    assert!(ok, "{table}");
    assert!(table.starts_with("JSON reply servers"), "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| 2 |")).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(rows[0].contains("| tokio-tungstenite-current |"), "{table}");
    assert!(rows[0].ends_with("| 0 |"), "{table}");

    let servers = format!(
        "tungstenite-threads,copy={}",
        env!("CARGO_BIN_EXE_peer-tungstenite-threads")
    );
    let mut ab = vec!["--servers", servers.as_str()];
    ab.extend(tiny);
    let (ok, table) = compare(&ab);
    assert!(ok, "{table}");
    assert!(table.contains("| vs tungstenite-threads |"), "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("| 2 |")).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].contains("| tungstenite-threads |") && rows[0].contains("| 1.00× |"));
    assert!(rows[1].contains("| copy |"), "{table}");
}
