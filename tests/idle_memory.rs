//! Proof of the memory claims: an idle upgraded connection costs the server
//! at most 256 bytes of heap, with permessage-deflate negotiated (the
//! default policy: no context takeover either way, so an idle connection
//! holds no compression state) or not; and a peer that stops inside a
//! frame header holds a few hundred bytes, not a read buffer.
//!
//! The server runs in this process on a thread whose allocations are
//! counted (alloc minus dealloc: live bytes). The 10,000 clients cannot
//! live in this process too (the fd limit is 20,000 and the server needs
//! one per connection as well), so this test binary re-runs itself as a
//! child in client mode (the `idle_client` test with
//! `ZEROWS_IDLE_CLIENT` set): it opens and upgrades every connection,
//! prints a readiness line, and holds the sockets until its stdin closes.
//! Everything is on loopback and bounded in time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zerows::server::Config;

/// Idle connections held open while the server's heap is measured.
const CONNS: usize = 10_000;
/// The claim under test.
const MAX_BYTES_PER_CONN: i64 = 256;
/// Longest the client side may take to open all connections, and the
/// longest a client child lives at all.
const CLIENT_LIMIT: Duration = Duration::from_secs(60);
/// Set in the child's environment to the server's address.
const CLIENT_ENV: &str = "ZEROWS_IDLE_CLIENT";
const READY: &str = "IDLE-CLIENT READY";

#[path = "common/counting.rs"]
mod counting;

use counting::live;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// The same, offering permessage-deflate as Chromium does.
const REQUEST_DEFLATE: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n";

/// Set in the child's environment when it offers permessage-deflate.
const DEFLATE_ENV: &str = "ZEROWS_IDLE_DEFLATE";
/// Set in the child's environment when each connection, once upgraded,
/// echoes one `PIN_MESSAGE`-byte message and then sends the first byte of
/// another frame header and stops there.
const PIN_ENV: &str = "ZEROWS_IDLE_PIN";
const PIN_MESSAGE: usize = 60_000;
/// The claim for such a connection: its few bytes wait in a 256-byte spill
/// buffer, not in a 64 KiB read buffer (plus the backlog's queue, kept
/// once output had to wait).
const MAX_PINNED_BYTES_PER_CONN: i64 = 768;

/// Open a connection and complete the upgrade, within `deadline`; with
/// `deflate`, offer permessage-deflate and check it was accepted.
fn upgrade(addr: SocketAddr, deadline: Instant, deflate: bool) -> TcpStream {
    let left = deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .expect("client time limit reached");
    let mut s = TcpStream::connect_timeout(&addr, left).expect("connect");
    s.set_read_timeout(Some(left)).unwrap();
    s.write_all(if deflate { REQUEST_DEFLATE } else { REQUEST })
        .unwrap();
    // The 101 is one short write; read until its blank line, bounded by
    // the buffer (a longer answer is not a 101 of ours anyway).
    let mut head = [0u8; 512];
    let mut n = 0;
    while !head[..n].ends_with(b"\r\n\r\n") {
        assert!(n < head.len(), "response head too long");
        let k = s.read(&mut head[n..]).expect("read 101");
        assert!(k > 0, "server closed during the handshake");
        n += k;
    }
    assert!(head.starts_with(b"HTTP/1.1 101 "), "not upgraded");
    let negotiated = head[..n].windows(18).any(|w| w == b"permessage-deflate");
    assert_eq!(negotiated, deflate, "permessage-deflate negotiated");
    s
}

/// One masked binary message of `len` bytes, then its echo read back whole
/// and checked; then the first byte of the next frame's header.
fn echo_then_stall(s: &mut TcpStream, len: usize) {
    let key = [0x11, 0x22, 0x33, 0x44];
    let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let mut frame = vec![0x82, 0xfe];
    frame.extend_from_slice(&(len as u16).to_be_bytes());
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    s.write_all(&frame).unwrap();
    // The echo, however the server framed it: data frames until FIN.
    let mut got = Vec::with_capacity(len);
    loop {
        let mut h = [0u8; 2];
        s.read_exact(&mut h).expect("echo header");
        assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
        let n = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).unwrap();
                u16::from_be_bytes(l) as usize
            }
            127 => panic!("echo frame too long"),
            n => n as usize,
        };
        let at = got.len();
        got.resize(at + n, 0);
        s.read_exact(&mut got[at..]).expect("echo payload");
        if h[0] & 0x80 != 0 {
            break;
        }
    }
    assert!(got == payload, "echo differs");
    s.write_all(&[0x82]).unwrap();
}

/// Client mode: a no-op unless the parent test started this binary with
/// `ZEROWS_IDLE_CLIENT=<addr>` and `ZEROWS_IDLE_CONNS=<n>`.
#[test]
fn idle_client() {
    let Ok(addr) = std::env::var(CLIENT_ENV) else {
        return;
    };
    let addr: SocketAddr = addr.parse().expect("address");
    let n: usize = std::env::var("ZEROWS_IDLE_CONNS")
        .expect("connection count")
        .parse()
        .expect("a number");
    // Whatever the parent does, this process ends within the limit.
    std::thread::spawn(|| {
        std::thread::sleep(CLIENT_LIMIT);
        std::process::exit(3);
    });
    let deadline = Instant::now() + CLIENT_LIMIT;
    let deflate = std::env::var_os(DEFLATE_ENV).is_some();
    let mut conns: Vec<TcpStream> = (0..n).map(|_| upgrade(addr, deadline, deflate)).collect();
    if std::env::var_os(PIN_ENV).is_some() {
        for s in &mut conns {
            echo_then_stall(s, PIN_MESSAGE);
        }
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{READY} {}", conns.len()).unwrap();
    out.flush().unwrap();
    drop(out);
    // Hold the connections until the parent closes our stdin.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(conns);
}

#[test]
fn idle_connections_cost_at_most_256_heap_bytes_each() {
    if std::env::var_os(CLIENT_ENV).is_some() {
        return; // We are the child: only `idle_client` runs.
    }
    // One after the other: the counter is the process's.
    measure(false, false);
    measure(true, false);
}

/// A peer that stops inside a frame header pins a few bytes, not a read
/// buffer: 10,000 of them, each after a 60 KB echo.
#[test]
fn a_peer_stalled_in_a_frame_header_pins_no_read_buffer() {
    if std::env::var_os(CLIENT_ENV).is_some() {
        return;
    }
    measure(false, true);
}

/// Hold `CONNS` idle connections (offering permessage-deflate with
/// `deflate`; with `pin`, each stalled inside a frame header after one
/// echo) and check the server's heap per connection.
fn measure(deflate: bool, pin: bool) {
    // The counters are the process's: one measurement at a time, whichever
    // test runs it.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // Few idle buffers kept, so what the pools hold after the echoes does
    // not hide (or stand in for) what the connections hold.
    let config = Config {
        pool_idle: 8,
        ..Config::default()
    };
    let (addr, stop, t) = counting::start_server(config);
    let rss_before = rss_bytes();

    // Warm-up: one connection through the whole life cycle, so the loop
    // has started and made its one-time allocations (event list, first
    // pool buffers) before the baseline.
    {
        let s = upgrade(addr, Instant::now() + Duration::from_secs(10), deflate);
        drop(s);
        std::thread::sleep(Duration::from_millis(300));
    }
    let base = live();
    let base_calls = counting::calls();

    let mut child = Command::new(std::env::current_exe().unwrap());
    if deflate {
        child.env(DEFLATE_ENV, "1");
    }
    if pin {
        child.env(PIN_ENV, "1");
    }
    let mut child = child
        .args(["--exact", "idle_client", "--nocapture", "--test-threads=1"])
        .env(CLIENT_ENV, addr.to_string())
        .env("ZEROWS_IDLE_CONNS", CONNS.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the client child");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may have printed `test idle_client ... ` first.
            if let Some(at) = line.find(READY) {
                let n = line[at + READY.len()..].trim().parse::<usize>();
                let _ = tx.send(n.unwrap_or(0));
            }
        }
    });
    let opened = rx.recv_timeout(CLIENT_LIMIT);

    // Every client has its 101, so the server has accepted and upgraded
    // every connection; let the loop settle before reading the counter.
    std::thread::sleep(Duration::from_millis(500));
    let held = live() - base;
    let calls = counting::calls() - base_calls;
    let rss = rss_bytes() - rss_before;

    // Release the clients (closing stdin), then wait for the child, bounded.
    drop(child.stdin.take());
    let waited = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if waited.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.stop();
    t.join().unwrap();

    let opened = opened.expect("the client child did not report readiness in time");
    assert_eq!(opened, CONNS, "connections opened");
    let per_conn = held / CONNS as i64;
    // The session is the only per-connection state besides the server's
    // slab slot and timer entries; its size helps read a failure.
    println!(
        "{CONNS} idle connections (permessage-deflate: {deflate}, stalled in a header: {pin}): \
         {held} live heap bytes on the server thread \
         ({per_conn} B per connection, {calls} allocation calls; \
         size_of::<Session>() = {} B); process RSS grew by {rss} B ({} B per connection)",
        std::mem::size_of::<zerows::session::Session<()>>(),
        rss / CONNS as i64
    );
    let limit = if pin {
        MAX_PINNED_BYTES_PER_CONN
    } else {
        MAX_BYTES_PER_CONN
    };
    assert!(
        per_conn <= limit,
        "{per_conn} B of heap per connection, over {limit} B"
    );
    if pin {
        // The same from outside the allocator: a 64 KiB buffer per peer
        // would be 640 MB here.
        assert!(
            rss / (CONNS as i64) < 4096,
            "RSS grew by {rss} B over {CONNS} stalled peers"
        );
    }
}

/// This process's resident set, from /proc/self/status.
fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kb * 1024
}
