//! What an operator relies on: heartbeat and timeouts, the stall limit,
//! graceful shutdown on signals, metrics and health, and a full file table.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;

/// Slack for timers on a loaded machine.
const SLACK: Duration = Duration::from_millis(700);

#[test]
fn heartbeat_pings_silent_peers_and_closes_dead_ones() {
    let server = TestServer::start_with(|c| {
        c.settings.ping_interval = Some(Duration::from_millis(200));
        c.settings.pong_timeout = Duration::from_millis(300);
        c.settings.idle_timeout = None;
    });
    let mut c = Raw::open(server.addr);
    let t = Instant::now();
    let ping = c.read_frame_within(Duration::from_millis(200) + SLACK);
    assert_eq!(ping.opcode, op::PING);
    assert!(
        t.elapsed() >= Duration::from_millis(190),
        "pinged too early"
    );
    c.send_frame(true, op::PONG, &ping.payload);
    // Answered: the connection lives on, and is pinged again later.
    let again = c.read_frame_within(Duration::from_millis(200) + SLACK);
    assert_eq!(again.opcode, op::PING);
    // Not answered: closed with 1001, then TCP closed, within the pong
    // timeout (plus slack).
    let t = Instant::now();
    c.expect_close(Some(1001));
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "closed before the pong timeout"
    );
    assert!(t.elapsed() < Duration::from_millis(300) + SLACK);
    c.expect_eof();
}

#[test]
fn idle_timeout_closes_with_1001() {
    let server = TestServer::start_with(|c| {
        c.settings.ping_interval = None;
        c.settings.idle_timeout = Some(Duration::from_millis(400));
    });
    let mut c = Raw::open(server.addr);
    // Traffic keeps it open past the first check...
    std::thread::sleep(Duration::from_millis(250));
    c.send_frame(true, op::TEXT, b"still here");
    assert_eq!(c.read_message().1, b"still here");
    let t = Instant::now();
    // ...then silence closes it, 400 ms after the last message.
    c.expect_close(Some(1001));
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "closed too early"
    );
    c.send_frame(true, op::CLOSE, &1001u16.to_be_bytes());
    c.expect_eof();
}

#[test]
fn a_peer_that_stops_reading_is_dropped_after_the_stall_timeout() {
    let server = TestServer::start_with(|c| {
        c.stall_timeout = Duration::from_millis(500);
        c.max_backlog = 256 << 10;
    });
    let mut c = Raw::open(server.addr);
    c.stream.set_nonblocking(true).unwrap();
    // Send far more than the socket buffers and the backlog hold, reading
    // nothing.
    let msg = frame(true, op::BINARY, &vec![7u8; 60_000]);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut sent = 0usize;
    let mut dropped = false;
    while Instant::now() < deadline {
        match c.stream.write(&msg) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => {
                dropped = true;
                break;
            }
        }
        // A well-behaved peer on another connection is still served.
        if sent > 8 << 20 {
            break;
        }
    }
    assert!(!dropped || sent > 0);
    let t = Instant::now();
    // The server drops us: the connection count falls back to just the
    // metrics request itself.
    let gone = wait_until(Duration::from_secs(5), || {
        let (_, m) = http_get(server.addr, "/metrics");
        sample(&m, "zerows_connections") == Some(1.0)
    });
    assert!(gone, "stalled peer still connected after {:?}", t.elapsed());
    let mut other = Raw::open(server.addr);
    other.send_frame(true, op::TEXT, b"fine");
    assert_eq!(other.read_message().1, b"fine");
}

#[test]
fn metrics_count_known_traffic() {
    let server = TestServer::start();
    for _ in 0..3 {
        let mut c = Raw::open(server.addr);
        for _ in 0..5 {
            c.send_frame(true, op::TEXT, b"0123456789");
            assert_eq!(c.read_message().1, b"0123456789");
        }
        c.send_frame(true, op::CLOSE, &1000u16.to_be_bytes());
        c.expect_close(Some(1000));
        c.expect_eof();
    }
    let mut refused = Raw::connect(server.addr);
    refused.send(request(&["POST / HTTP/1.1", "Host: x"]).as_bytes());
    assert_eq!(refused.read_response_and_eof().status, 405);
    // A plain request for another path is answered 404 but is no refused
    // handshake; an upgrade attempt there is.
    let mut plain = Raw::connect(server.addr);
    plain.send(request(&["GET /other HTTP/1.1", "Host: x"]).as_bytes());
    assert_eq!(plain.read_response_and_eof().status, 404);
    let mut attempt = Raw::connect(server.addr);
    attempt.send(upgrade_request("/other", &[]).as_bytes());
    assert_eq!(attempt.read_response_and_eof().status, 404);
    assert_eq!(http_get(server.addr, "/").0, 200);
    let (status, m) = http_get(server.addr, "/metrics");
    assert_eq!(status, 200);
    let want = [
        ("zerows_handshakes_total{result=\"accepted\"}", 3.0),
        (
            "zerows_handshakes_total{result=\"refused\",reason=\"method\"}",
            1.0,
        ),
        ("zerows_messages_total{direction=\"in\"}", 15.0),
        ("zerows_messages_total{direction=\"out\"}", 15.0),
        ("zerows_payload_bytes_total{direction=\"in\"}", 150.0),
        ("zerows_payload_bytes_total{direction=\"out\"}", 150.0),
        (
            "zerows_close_frames_total{direction=\"received\",code=\"1000\"}",
            3.0,
        ),
        (
            "zerows_close_frames_total{direction=\"sent\",code=\"1000\"}",
            3.0,
        ),
        (
            "zerows_handshakes_total{result=\"refused\",reason=\"not_found\"}",
            1.0,
        ),
        ("zerows_http_requests_total{route=\"not_found\"}", 1.0),
        ("zerows_http_requests_total{route=\"page\"}", 1.0),
        ("zerows_http_requests_total{route=\"metrics\"}", 1.0),
        ("zerows_connections_total", 8.0),
        ("zerows_accepting", 1.0),
    ];
    for (name, v) in want {
        assert_eq!(sample(&m, name), Some(v), "{name} in\n{m}");
    }
    // Wire bytes include handshakes and headers: more than the payload.
    assert!(sample(&m, "zerows_wire_bytes_total{direction=\"in\"}").unwrap() > 150.0);
    // The histogram is cumulative and counts every turn once.
    let count = sample(&m, "zerows_loop_turn_seconds_count").unwrap();
    assert_eq!(
        sample(&m, "zerows_loop_turn_seconds_bucket{le=\"+Inf\"}"),
        Some(count)
    );
    assert!(count > 0.0);
    assert_eq!(http_get(server.addr, "/healthz"), (200, "ok\n".into()));
}

#[test]
fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    let mut server = ChildServer::spawn(&["--shutdown-timeout", "10", "--ping-interval", "0"]);
    let mut c = Raw::open(server.addr);
    c.send_frame(true, op::TEXT, b"before the signal");
    // Signal only once the server has taken the message (its echo is then
    // queued); a signal handled before the read would rightly discard it.
    let taken = wait_until(Duration::from_secs(5), || {
        let (_, m) = http_get(server.addr, "/metrics");
        sample(&m, "zerows_messages_total{direction=\"in\"}") == Some(1.0)
    });
    assert!(taken, "the server never read the message");
    server.signal("TERM");
    // The message sent before the signal still comes back, then the close.
    assert_eq!(c.read_message().1, b"before the signal");
    c.expect_close(Some(1001));
    // While draining, newcomers (and health checks) get 503.
    let mut late = Raw::connect(server.addr);
    late.send(request(&["GET /healthz HTTP/1.1", "Host: x"]).as_bytes());
    assert_eq!(late.read_response_and_eof().status, 503);
    // Our close completes the handshake; the last connection gone, the
    // process exits 0.
    c.send_frame(true, op::CLOSE, &1001u16.to_be_bytes());
    c.expect_eof();
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn shutdown_gives_up_after_its_timeout() {
    let mut server = ChildServer::spawn(&["--shutdown-timeout", "0.5", "--close-timeout", "30"]);
    let mut c = Raw::open(server.addr);
    let t = Instant::now();
    server.signal("INT");
    c.expect_close(Some(1001));
    // We never answer: the server stops waiting at its shutdown timeout.
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(t.elapsed() < Duration::from_millis(500) + SLACK * 2);
}

#[test]
fn a_second_signal_exits_at_once() {
    let mut server = ChildServer::spawn(&["--shutdown-timeout", "30", "--close-timeout", "30"]);
    let mut c = Raw::open(server.addr);
    server.signal("TERM");
    c.expect_close(Some(1001));
    let t = Instant::now();
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(3)), Some(128 + 15));
    assert!(t.elapsed() < Duration::from_secs(2));
}

/// CPU time (user + system) of a process so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may contain spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn a_full_file_table_pauses_accepting_without_spinning() {
    // 40 descriptors: a few for the process itself, the rest for
    // connections. prlimit (util-linux) sets it for the child only.
    let mut server = ChildServer::spawn_with_prefix(&["prlimit", "--nofile=40:40", "--"], &[]);
    let pid = server.pid();
    let mut held: Vec<Raw> = Vec::new();
    for _ in 0..30 {
        held.push(Raw::open(server.addr));
    }
    // More connections than descriptors: they wait in the accept queue.
    let mut waiting: Vec<std::net::TcpStream> = (0..20).map(|_| tcp(server.addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    // Ticks are 10 ms: a spinning loop would burn ~100 in that second.
    assert!(
        used < 30,
        "server used {used} ticks of CPU while out of descriptors"
    );
    // Free descriptors: the waiting connections are accepted and served.
    held.clear();
    let w = &mut waiting[0];
    w.write_all(upgrade_request("/", &[]).as_bytes()).unwrap();
    let mut head = [0u8; 12];
    w.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
    let _ = server.wait_exit(Duration::ZERO);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn many_stalled_peers_stay_within_configured_memory_and_others_are_served() {
    const PEERS: usize = 1_000;
    // Small buffers so the bound is tight: per connection at most one read
    // buffer and max-backlog bytes of output.
    let read_buffer = 16 << 10;
    let max_backlog = 24 << 10;
    let server = ChildServer::spawn(&[
        "--read-buffer",
        &read_buffer.to_string(),
        "--chunk-size",
        "1024",
        "--write-buffer",
        "4096",
        "--max-backlog",
        &max_backlog.to_string(),
        "--stall-timeout",
        "3",
        "--ping-interval",
        "0",
    ]);
    let pid = server.pid();
    let mut probe = Raw::open(server.addr);
    let base = rss_kib(pid);
    let msg = frame(true, op::BINARY, &vec![5u8; 8000]);
    // Small receive windows: a peer that does not read soon blocks the
    // server's writes, so its output really waits.
    let mut peers: Vec<Raw> = (0..PEERS)
        .map(|_| Raw::open_small_window(server.addr, 4096))
        .collect();
    // Each peer writes until its socket is full, and never reads.
    for p in &mut peers {
        p.stream.set_nonblocking(true).unwrap();
        let mut n = 0;
        while n < 64 {
            match p.stream.write(&msg) {
                Ok(_) => n += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("peer write failed early: {e}"),
            }
        }
    }
    // While they are stalled, a well-behaved client is served promptly.
    for i in 0..5 {
        let t = Instant::now();
        probe.send_frame(true, op::TEXT, format!("probe {i}").as_bytes());
        assert_eq!(probe.read_message().1, format!("probe {i}").as_bytes());
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "probe took {:?}",
            t.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let grown = rss_kib(pid).saturating_sub(base) * 1024;
    let bound = (PEERS * (read_buffer + max_backlog + 4096)) as u64;
    assert!(
        grown <= bound,
        "RSS grew {grown} B for {PEERS} stalled peers, bound {bound} B"
    );
    // Those peers' echoes still fit in kernel buffers, so the server has
    // nothing waiting on them: they are merely idle. A few peers that send
    // far more than the kernel holds make the server's output wait: it
    // stops reading them and drops them at the stall timeout.
    const HEAVY: usize = 8;
    let big = frame(true, op::BINARY, &vec![6u8; 1 << 20]);
    let mut heavy: Vec<Raw> = (0..HEAVY)
        .map(|_| Raw::open_small_window(server.addr, 4096))
        .collect();
    for h in &mut heavy {
        h.stream.set_nonblocking(true).unwrap();
        let mut sent = 0usize;
        let mut blocked_since: Option<Instant> = None;
        while sent < 64 << 20 {
            match h.stream.write(&big[sent % big.len()..]) {
                Ok(n) => {
                    sent += n;
                    blocked_since = None;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let since = *blocked_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > Duration::from_millis(300) {
                        break; // the server stopped reading us
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
        assert!(
            sent < 64 << 20,
            "the server never stopped reading a peer that reads nothing"
        );
    }
    let t = Instant::now();
    probe.send_frame(true, op::TEXT, b"during");
    assert_eq!(probe.read_message().1, b"during");
    assert!(t.elapsed() < Duration::from_secs(1));
    let gone = wait_until(Duration::from_secs(10), || {
        let (_, m) = http_get(server.addr, "/metrics");
        // The light peers, the probe and the metrics request itself.
        sample(&m, "zerows_connections") == Some((PEERS + 2) as f64)
    });
    let (_, m) = http_get(server.addr, "/metrics");
    assert!(gone, "stalled peers still connected:\n{m}");
    probe.send_frame(true, op::TEXT, b"still served");
    assert_eq!(probe.read_message().1, b"still served");
    drop(peers);
    drop(heavy);
}

#[test]
fn with_several_loops_metrics_count_every_loop() {
    let server = ChildServer::spawn(&["--threads", "3"]);
    // Enough connections that the kernel spreads them over the loops.
    let mut conns: Vec<Raw> = (0..24).map(|_| Raw::open(server.addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        for _ in 0..=i % 3 {
            c.send_frame(true, op::TEXT, b"counted");
            assert_eq!(c.read_message().1, b"counted");
        }
    }
    let want = (0..24).map(|i| i % 3 + 1).sum::<usize>() as f64;
    // Loops publish within 100 ms of counting; every scrape, whichever loop
    // answers it, sees all of them.
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..6 {
        let (status, m) = http_get(server.addr, "/metrics");
        assert_eq!(status, 200);
        assert_eq!(
            sample(&m, "zerows_messages_total{direction=\"in\"}"),
            Some(want),
            "{m}"
        );
        assert_eq!(
            sample(&m, "zerows_handshakes_total{result=\"accepted\"}"),
            Some(24.0)
        );
    }
}
