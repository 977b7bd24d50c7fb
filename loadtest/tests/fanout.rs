//! End-to-end checks of `zerows-loadtest fanout` against the tokio-tungstenite
//! chat peer (through one URL, or two), and against a small chat server that
//! misbehaves on purpose.
//!
//! Invariants: every server started here listens on 127.0.0.1 only and is
//! stopped (or, for the in-process one, left with nothing to serve) when its
//! test returns; every generator run is small and bounded by a wall-clock
//! limit; a clean server must give zero errors and every delivery, a faulty
//! one must make the generator fail and name the fault.

use std::io::ErrorKind;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::Message;

mod common;

use common::{free_port, wait_listening, Killed};

/// Run `fanout` against the room `bench` on `port`; returns (exit code,
/// parsed --json summary).
fn fanout(port: u16, extra: &[&str]) -> (i32, Value) {
    common::run_generator(
        "fanout",
        &format!("ws://127.0.0.1:{port}/?room=bench"),
        extra,
    )
}

fn assert_clean(code: i32, v: &Value, n: u64, m: u64) {
    assert_eq!(
        v["error_total"], 0,
        "errors: {} ({})",
        v["errors"], v["first_error"]
    );
    assert_eq!(code, 0);
    assert_eq!(v["connections_made"], n);
    assert_eq!(v["messages_complete"], m);
    assert_eq!(v["delivered"], n * m);
    let l = &v["latency_last_us"];
    assert!(l["min"].as_f64().unwrap() > 0.0);
    assert!(l["min"].as_f64() <= l["median"].as_f64());
    assert!(l["median"].as_f64() <= l["max"].as_f64());
    assert!(v["latency_median_us"]["median"].as_f64() <= l["median"].as_f64());
    assert_eq!(v["closed_clean"], n);
}

/// The tokio-tungstenite chat peer on a free port, listening; its port, and
/// the process (killed on drop).
fn chat_peer() -> (u16, Killed) {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_peer-tokio-tungstenite"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--service", "chat", "--workers", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start peer");
    let server = Killed(child);
    wait_listening(port);
    (port, server)
}

#[test]
fn tokio_tungstenite_chat_delivers_everything() {
    let (port, server) = chat_peer();
    let pid = server.0.id().to_string();
    let (code, v) = fanout(port, &["-n", "60", "-m", "25", "--server-pid", &pid]);
    assert_clean(code, &v, 60, 25);
    assert!(v["server"]["cpu_seconds"].as_f64().is_some());
    // Binary messages of another size go through the same way.
    let (code, v) = fanout(port, &["-n", "7", "-m", "10", "--size", "3000", "--binary"]);
    assert_clean(code, &v, 7, 10);
}

/// Two targets on one chat server (the same room through two URLs): the
/// subscribers split between them round-robin, each target is reported
/// apart, and every delivery is still verified.
#[test]
fn two_targets_on_one_server_split_the_subscribers() {
    let (port, server) = chat_peer();
    let pid = server.0.id().to_string();
    let also = format!("ws://localhost:{port}/?room=bench");
    let (n, m) = (7u64, 10u64);
    let (code, v) = fanout(
        port,
        &[
            "-n",
            "7",
            "-m",
            "10",
            "--also",
            &also,
            "--server-pid",
            &pid,
            "--server-pid",
            &pid,
        ],
    );
    assert_clean(code, &v, n, m);
    let t = v["targets"].as_array().expect("targets");
    assert_eq!(t.len(), 2);
    assert_eq!(t[0]["url"], format!("ws://127.0.0.1:{port}/?room=bench"));
    assert_eq!(t[1]["url"], also);
    // Connections 0, 2, 4, 6 on the first target, 1, 3, 5 on the second.
    assert_eq!(
        (t[0]["subscribers"].clone(), t[1]["subscribers"].clone()),
        (4.into(), 3.into())
    );
    assert_eq!(t[0]["delivered"], 4 * m);
    assert_eq!(t[1]["delivered"], 3 * m);
    for x in t {
        let l = &x["latency_last_us"];
        assert!(l["min"].as_f64().unwrap() > 0.0);
        assert!(l["median"].as_f64() <= l["p99"].as_f64());
        assert!(l["p99"].as_f64() <= l["max"].as_f64());
        // No target's last subscriber comes after the run's last one.
        assert!(l["max"].as_f64() <= v["latency_last_us"]["max"].as_f64());
        assert_eq!(x["server"]["messages"], x["delivered"]);
        assert!(x["server_user_us_per_delivery"].as_f64().is_some());
    }
    // The top-level figures are the first pid's over every delivery.
    assert_eq!(v["server"]["messages"], n * m);
    assert!(v["server_system_us_per_delivery"].as_f64().is_some());
}

/// Optional: zerows' chat example, when `ZEROWS_CHAT_BIN` names its binary
/// (`cargo build --release --example chat`).
#[test]
fn zerows_chat_if_built() {
    let Ok(bin) = std::env::var("ZEROWS_CHAT_BIN") else {
        eprintln!("ZEROWS_CHAT_BIN not set; skipping the zerows chat run");
        return;
    };
    let port = free_port();
    let child = Command::new(bin)
        .args([format!("127.0.0.1:{port}"), "2".into()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chat");
    let _server = Killed(child);
    wait_listening(port);
    let (code, v) = fanout(port, &["-n", "100", "-m", "20"]);
    assert_clean(code, &v, 100, 20);
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// One subscriber misses message `FAULTY`.
    Drop,
    /// One subscriber gets message `FAULTY` twice.
    Duplicate,
    /// One subscriber gets message `FAULTY` with a byte flipped.
    Corrupt,
    /// One subscriber never joins the room.
    NeverJoins,
    /// No fault: one subscriber gets every message in fragments cut at
    /// odd places.
    Fragment,
    /// No fault.
    None,
}

/// The sequence number that the faults hit: past the readiness message
/// (this server subscribes during the handshake, so one is enough).
const FAULTY: u64 = 8;
/// The member that suffers the fault.
const VICTIM: usize = 3;

/// The sequence number of a generator payload (nibbles 8..24 of its
/// header, one per byte); `None` for anything else.
fn seq_of(data: &[u8]) -> Option<u64> {
    let head = data.get(8..24)?;
    Some(
        head.iter()
            .fold(0, |acc, &b| (acc << 4) | u64::from(b & 0xF)),
    )
}

type Members = Arc<Mutex<Vec<(usize, mpsc::Sender<Message>)>>>;

/// A chat with one room on threads: every message goes to every member
/// (the sender too), except as `fault` says.
// The handshake callback's error type is tungstenite's `ErrorResponse`.
#[allow(clippy::result_large_err)]
fn chat_server(fault: Fault) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let members: Members = Arc::default();
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().take(64).enumerate() {
            let Ok(stream) = stream else { continue };
            let members = members.clone();
            std::thread::spawn(move || {
                stream.set_nodelay(true).ok();
                // Reads give way every few ms to send what others published.
                stream.set_read_timeout(Some(Duration::from_millis(2))).ok();
                let (tx, rx) = mpsc::channel();
                let join = |_: &Request, resp: Response| {
                    if !(fault == Fault::NeverJoins && index == VICTIM) {
                        members.lock().unwrap().push((index, tx));
                    }
                    Ok(resp)
                };
                let Ok(mut ws) = tungstenite::accept_hdr(stream, join) else {
                    return;
                };
                let deadline = Instant::now() + Duration::from_secs(60);
                while Instant::now() < deadline {
                    match ws.read() {
                        Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                            publish(&members, fault, m)
                        }
                        Ok(Message::Close(_)) => {
                            ws.flush().ok();
                            return;
                        }
                        Ok(_) => {}
                        Err(tungstenite::Error::Io(e))
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => return,
                    }
                    while let Ok(m) = rx.try_recv() {
                        if ws.send(m).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    port
}

fn publish(members: &Members, fault: Fault, m: Message) {
    let seq = seq_of(&m.clone().into_data());
    for (index, tx) in members.lock().unwrap().iter() {
        if *index == VICTIM && fault == Fault::Fragment {
            use tungstenite::protocol::frame::{coding::Data, coding::OpCode, Frame};
            let data = m.clone().into_data();
            let cuts = [0, 1, 11, 30, data.len()];
            for (i, w) in cuts.windows(2).enumerate() {
                let op = if i == 0 { Data::Text } else { Data::Continue };
                let fin = i == cuts.len() - 2;
                let f = Frame::message(data[w[0]..w[1]].to_vec(), OpCode::Data(op), fin);
                tx.send(Message::Frame(f)).ok();
            }
            continue;
        }
        if *index != VICTIM || seq != Some(FAULTY) {
            tx.send(m.clone()).ok();
            continue;
        }
        match fault {
            Fault::Drop => {}
            Fault::Duplicate => {
                tx.send(m.clone()).ok();
                tx.send(m.clone()).ok();
            }
            Fault::Corrupt => {
                let mut d = m.clone().into_data().to_vec();
                let at = d.len() - 1;
                d[at] ^= 0x01;
                tx.send(Message::text(String::from_utf8(d).unwrap())).ok();
            }
            Fault::NeverJoins | Fault::Fragment | Fault::None => {
                tx.send(m.clone()).ok();
            }
        }
    }
}

fn faulty_run(fault: Fault) -> (i32, Value) {
    let port = chat_server(fault);
    wait_listening(port);
    fanout(
        port,
        &[
            "-n",
            "6",
            "-m",
            "12",
            "--warmup",
            "2",
            // Long enough for a loaded machine; a lost delivery is still
            // found by this wait running out.
            "--timeout",
            "3",
            "--ready-rounds",
            "3",
        ],
    )
}

#[test]
fn a_clean_chat_passes() {
    let (code, v) = faulty_run(Fault::None);
    assert_clean(code, &v, 6, 12);
    assert_eq!(v["ready_rounds"], 1);
}

#[test]
fn fragmented_deliveries_pass() {
    let (code, v) = faulty_run(Fault::Fragment);
    assert_clean(code, &v, 6, 12);
}

#[test]
fn detects_a_lost_delivery() {
    let (code, v) = faulty_run(Fault::Drop);
    assert_eq!(code, 1);
    assert_eq!(v["errors"]["unanswered"], 1, "{}", v["errors"]);
    let first = v["first_error"].as_str().unwrap();
    assert!(first.contains("reached 5 of 6"), "{first}");
}

#[test]
fn detects_a_duplicate() {
    let (code, v) = faulty_run(Fault::Duplicate);
    assert_eq!(code, 1);
    assert_eq!(v["errors"]["unexpected"], 1, "{}", v["errors"]);
    let first = v["first_error"].as_str().unwrap();
    assert!(
        first.contains(&format!("message {FAULTY} again")),
        "{first}"
    );
}

#[test]
fn detects_corruption() {
    let (code, v) = faulty_run(Fault::Corrupt);
    assert_eq!(code, 1);
    assert_eq!(v["errors"]["corrupted"], 1, "{}", v["errors"]);
}

#[test]
fn detects_a_subscriber_that_never_joins() {
    let (code, v) = faulty_run(Fault::NeverJoins);
    assert_eq!(code, 1);
    assert_eq!(v["ready_rounds"], 3);
    assert_eq!(v["errors"]["unanswered"], 1, "{}", v["errors"]);
    assert_eq!(v["delivered"], 0);
}
