//! Proof of the allocation claims: with a warm pool, the server thread
//! allocates nothing per message, per handshake or per connection, whether
//! it echoes (plain, or permessage-deflate compressed messages, inflated
//! with a lent inflater and echoed as they came) or a service collects
//! each message and replies to it.
//!
//! A counting global allocator counts only on threads that opted in (the
//! server's), so the test client can allocate freely.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use zerows::frame::{self, opcode, Role};
use zerows::mask;
use zerows::server::Config;
use zerows::{Context, Message, Request, Service};

#[path = "common/counting.rs"]
mod counting;
#[path = "common/upgrade.rs"]
mod upgrade;

use counting::calls as allocs;

// A modest backlog bound caps how many output blocks a burst can need at
// once, so the warm-up surely reaches the peak the measured traffic will
// see (with 17 MiB the peak depends on how fast the client reads).
fn config() -> Config {
    Config {
        max_backlog: 256 << 10,
        ..Config::default()
    }
}

/// Collects every message whole and answers it: text with "Received: "
/// and the text, binary with the bytes reversed, built in a stack buffer
/// (messages are at most 64 KiB here).
struct Reply;

impl Service for Reply {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}
    fn whole(&mut self, _st: &mut (), msg: Message<'_>, cx: &mut Context<'_>) {
        let _ = match msg {
            Message::Text(t) => cx.send_text_parts(&["Received: ", t]),
            Message::Binary(b) => {
                let mut rev = [0u8; 64 << 10];
                for (r, x) in rev.iter_mut().zip(b.iter().rev()) {
                    *r = *x;
                }
                cx.send_binary(&rev[..b.len()])
            }
        };
    }
}

/// What [`Reply`] answers to `payload`.
fn reply_to(text: bool, payload: &[u8]) -> Vec<u8> {
    if text {
        [b"Received: ", payload].concat()
    } else {
        payload.iter().rev().copied().collect()
    }
}

/// How the test client talks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Echo,
    Replies,
    /// Echo, with permessage-deflate negotiated and every message
    /// compressed by the client.
    Deflate,
}

fn connect(addr: SocketAddr, mode: Mode) -> TcpStream {
    let request = match mode {
        Mode::Deflate => upgrade::REQUEST_DEFLATE,
        _ => upgrade::REQUEST,
    };
    upgrade::upgrade_with(addr, Duration::from_secs(20), request)
}

/// What a client compressing each message on its own sends: raw deflate,
/// sync-flushed, the 4-byte tail cut (RFC 7692 §7.2.1).
fn pack(data: &[u8]) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut z = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    z.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    out.truncate(out.len() - 4);
    out
}

fn push_frame(out: &mut Vec<u8>, fin: bool, op: u8, payload: &[u8], key: [u8; 4]) {
    let mut h = [0u8; frame::MAX_HEADER];
    let n = frame::encode(&mut h, fin, op, payload.len() as u64, Some(key));
    out.extend_from_slice(&h[..n]);
    let at = out.len();
    out.extend_from_slice(payload);
    mask::apply(&mut out[at..], key, 0);
}

/// A mixed batch: sizes from 0 B to 64 KiB, text and binary, whole and
/// fragmented with a ping between fragments. Returns the bytes to send and
/// the data bytes expected back (payloads in order) and the pong count.
fn batch(round: usize, mode: Mode) -> (Vec<u8>, Vec<u8>, usize) {
    const SIZES: [usize; 10] = [0, 1, 7, 125, 126, 1000, 4096, 16384, 16385, 65536];
    let mut wire = Vec::new();
    let mut expect = Vec::new();
    let mut pongs = 0;
    for (i, &size) in SIZES.iter().enumerate() {
        let key = [(round + i) as u8, 0x5A, 0xC3, (i * 7) as u8];
        let text = i % 2 == 0;
        let payload: Vec<u8> = if text {
            "zerø-cöpy ✓ ".bytes().cycle().take(size).collect()
        } else {
            (0..size).map(|j| (j * 31 + round) as u8).collect()
        };
        // Cut text on a char boundary so each message stays valid UTF-8.
        let payload = if text {
            let mut p = payload;
            while std::str::from_utf8(&p).is_err() {
                p.pop();
            }
            p
        } else {
            payload
        };
        let op = if text { opcode::TEXT } else { opcode::BINARY };
        // Compressed, the echo is the client's compressed bytes.
        let (sent, rsv) = match mode {
            Mode::Deflate => (pack(&payload), frame::RSV1),
            _ => (payload.clone(), 0),
        };
        let first = wire.len();
        if i % 3 == 0 && sent.len() > 2 {
            let cut = sent.len() / 2;
            push_frame(&mut wire, false, op, &sent[..cut], key);
            push_frame(&mut wire, true, opcode::PING, b"between", key);
            pongs += 1;
            push_frame(&mut wire, true, opcode::CONTINUATION, &sent[cut..], key);
        } else {
            push_frame(&mut wire, true, op, &sent, key);
        }
        wire[first] |= rsv;
        match mode {
            Mode::Replies => expect.extend_from_slice(&reply_to(text, &payload)),
            _ => expect.extend_from_slice(&sent),
        }
    }
    (wire, expect, pongs)
}

/// Send `wire` and read back until `expect.len()` data bytes and `pongs`
/// pongs have arrived, checking the data. Writing happens on a second
/// thread so neither side waits on the other.
fn round_trip(
    s: &mut TcpStream,
    wire: Vec<u8>,
    expect: &[u8],
    pongs: usize,
    read_after: Duration,
) -> usize {
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&wire).unwrap());
    std::thread::sleep(read_after);
    let mut got = Vec::with_capacity(expect.len());
    let mut pong_count = 0;
    let mut frames = 0;
    let mut buf = Vec::new();
    let mut tmp = vec![0u8; 1 << 16];
    while got.len() < expect.len() || pong_count < pongs {
        let n = s.read(&mut tmp).unwrap();
        assert!(n > 0, "server closed");
        buf.extend_from_slice(&tmp[..n]);
        let mut at = 0;
        while let Ok(Some(h)) = frame::decode_with(&buf[at..], Role::FromServer, frame::RSV1) {
            let end = at + h.header_len + h.len as usize;
            if end > buf.len() {
                break;
            }
            frames += 1;
            match h.opcode {
                opcode::PONG => pong_count += 1,
                opcode::CLOSE => panic!("server closed: {:?}", &buf[at..end]),
                _ => got.extend_from_slice(&buf[at + h.header_len..end]),
            }
            at = end;
        }
        buf.drain(..at);
    }
    writer.join().unwrap();
    assert!(got == expect, "echo differs");
    frames
}

/// The count is global to the process and the tests of this file run in
/// parallel: each holds this while it counts, or one test's server would
/// count in the other's window.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn warm_server_allocates_nothing_per_message_handshake_or_connection() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, stop, t) = counting::start_server(config());
    warm_and_measure(addr, Mode::Echo);
    stop.stop();
    t.join().unwrap();
}

#[test]
fn warm_server_allocates_nothing_per_compressed_message() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, stop, t) = counting::start_server(config());
    warm_and_measure(addr, Mode::Deflate);
    stop.stop();
    t.join().unwrap();
}

#[test]
fn warm_server_allocates_nothing_per_collected_message_and_reply() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (addr, stop, t) = counting::start_service(config(), Reply);
    warm_and_measure(addr, Mode::Replies);
    stop.stop();
    t.join().unwrap();
}

/// Warm the server up, then count its allocations for 64 handshakes and
/// 100,000 messages (echoed, or answered by [`Reply`]).
fn warm_and_measure(addr: SocketAddr, mode: Mode) {
    // Warm-up: a few connections and batches fill the pools and the slab.
    let mut warm: Vec<TcpStream> = (0..8).map(|_| connect(addr, mode)).collect();
    for (i, s) in warm.iter_mut().enumerate() {
        let (wire, expect, pongs) = batch(i, mode);
        round_trip(s, wire, &expect, pongs, Duration::ZERO);
    }
    drop(warm);
    std::thread::sleep(Duration::from_millis(200));

    // Handshakes and connections on a warm server.
    let before = allocs();
    let conns: Vec<TcpStream> = (0..64).map(|_| connect(addr, mode)).collect();
    let per_handshake = allocs() - before;
    assert_eq!(per_handshake, 0, "allocations for 64 handshakes");

    // 100,000 messages through one live connection, after a warm-up on that
    // same connection whose client waits before reading each burst: the
    // server's backlog fills to its bound, which grows the pool to the
    // most blocks any burst can need and gives the connection's backlog
    // queue its (retained) capacity.
    let mut s = conns.into_iter().next().unwrap();
    echo_messages(&mut s, 2_000, Duration::from_millis(300), mode);
    let before = allocs();
    let messages = echo_messages(&mut s, 100_000, Duration::ZERO, mode);
    let during = allocs() - before;
    assert_eq!(during, 0, "allocations for {messages} messages");
}

/// Echo at least `count` messages in bursts of 500, reading each burst's
/// echo after `read_after`; returns how many.
fn echo_messages(s: &mut TcpStream, count: usize, read_after: Duration, mode: Mode) -> usize {
    let mut messages = 0;
    let mut round = 0;
    while messages < count {
        let mut wire = Vec::new();
        let mut expect = Vec::new();
        let mut pongs = 0;
        // Several batches per write: many messages in flight at once.
        for _ in 0..50 {
            let (w, e, p) = batch(round, mode);
            round += 1;
            wire.extend_from_slice(&w);
            expect.extend_from_slice(&e);
            pongs += p;
            messages += 10;
        }
        round_trip(s, wire, &expect, pongs, read_after);
    }
    messages
}
