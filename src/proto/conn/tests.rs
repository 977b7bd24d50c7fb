//! A deterministic in-memory client against the protocol core: every
//! conversation is fed whole, split at every byte, and byte by byte, and must
//! give the same messages and close code every time.

use super::*;
use crate::buffer::MsgPool;
use crate::buffer::ReadBuf;
use crate::output::Output;
use crate::service::Echo;

use crate::testutil::{client_frame, request, KEY};

fn msg(op: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(true, op, payload, [0x11, 0x22, 0x33, 0x44])
}

/// What a client saw: the HTTP status, whole messages, pongs, the close.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    status: u16,
    messages: Vec<(u8, Vec<u8>)>,
    pongs: Vec<Vec<u8>>,
    pings: Vec<Vec<u8>>,
    /// Outer None: no close frame; inner: its code.
    close: Option<Option<u16>>,
    /// Bytes of a message begun but not finished.
    partial: usize,
    /// Anything after a close frame, or a malformed server frame.
    junk: bool,
    /// Messages that came compressed (inflated in `messages`).
    packed: usize,
}

/// Inflate a server message (no server context takeover: a fresh window).
fn inflate_message(p: &[u8]) -> Option<Vec<u8>> {
    let mut z = flate2::Decompress::new(false);
    let mut input = p.to_vec();
    input.extend_from_slice(&crate::deflate::TAIL);
    let mut out = Vec::with_capacity(p.len() * 8 + 1024);
    loop {
        let before = z.total_in();
        z.decompress_vec(
            &input[z.total_in() as usize..],
            &mut out,
            flate2::FlushDecompress::Sync,
        )
        .ok()?;
        if z.total_in() as usize == input.len() {
            return Some(out);
        }
        if z.total_in() == before && out.len() < out.capacity() {
            return None;
        }
        out.reserve(out.capacity());
    }
}

fn observe(wire: &[u8]) -> Seen {
    let mut seen = Seen::default();
    let Some(head_end) = handshake::find_header_end(wire, 0) else {
        return seen;
    };
    let status_line = std::str::from_utf8(&wire[..head_end]).unwrap();
    seen.status = status_line[9..12].parse().unwrap();
    let mut rest = &wire[head_end..];
    let mut cur: Option<(u8, Vec<u8>)> = None;
    let mut compressed = false;
    while !rest.is_empty() {
        if seen.close.is_some() {
            seen.junk = true;
            break;
        }
        let h = match frame::decode_with(rest, Role::FromServer, frame::RSV1) {
            Ok(Some(h)) if rest.len() >= h.header_len + h.len as usize => h,
            _ => {
                seen.junk = true;
                break;
            }
        };
        let p = &rest[h.header_len..h.header_len + h.len as usize];
        match h.opcode {
            opcode::PONG => seen.pongs.push(p.to_vec()),
            opcode::PING => seen.pings.push(p.to_vec()),
            opcode::CLOSE => {
                seen.close = Some((p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])))
            }
            opcode::CONTINUATION => {
                let Some((_, data)) = cur.as_mut() else {
                    seen.junk = true;
                    break;
                };
                data.extend_from_slice(p);
            }
            op => {
                if cur.is_some() {
                    seen.junk = true;
                    break;
                }
                cur = Some((op, p.to_vec()));
                compressed = h.compressed;
            }
        }
        if h.fin && !opcode::is_control(h.opcode) {
            let (op, mut data) = cur.take().unwrap();
            if compressed {
                let Some(d) = inflate_message(&data) else {
                    seen.junk = true;
                    break;
                };
                data = d;
                seen.packed += 1;
            }
            seen.messages.push((op, data));
        }
        rest = &rest[h.header_len + h.len as usize..];
    }
    seen.partial = cur.map_or(0, |(_, d)| d.len());
    seen
}

/// Drives a `Conn` the way the event loop does, with a small read buffer so
/// long payloads stream through in pieces.
struct Driver<E = Echo> {
    conn: Conn,
    rb: ReadBuf,
    out: Output,
    pool: MsgPool,
    codec: Codec,
    s: Settings,
    wire: Vec<u8>,
    now: Millis,
    svc: E,
    max_backlog: usize,
}

impl Driver {
    fn new(s: Settings, buf_size: usize) -> Driver {
        Driver::with(s, buf_size, Echo)
    }
}

/// Run `f` with a `Tx` over a fresh output whose bytes end up in `wire`.
fn run_tx<R>(wire: &mut Vec<u8>, f: impl FnOnce(&mut Tx<'_>) -> R) -> R {
    let mut out = Output::new();
    let mut pool = MsgPool::new(4, 1 << 20);
    let mut codec = Codec::default();
    let r = f(&mut Tx {
        out: &mut out,
        sink: wire,
        pool: &mut pool,
        max_backlog: usize::MAX,
        sent: Default::default(),
        local: None,
        codec: &mut codec,
    });
    out.extend_vec(&[], wire);
    r
}

impl<E: Events> Driver<E> {
    fn with(s: Settings, buf_size: usize, svc: E) -> Driver<E> {
        let now = 1_000;
        Driver {
            conn: Conn::new(now, &s, ConnId::new(7, 3)),
            rb: ReadBuf::new(vec![0xEE; buf_size].into_boxed_slice()),
            out: Output::new(),
            pool: MsgPool::new(4, 1 << 20),
            codec: Codec::default(),
            s,
            wire: Vec::new(),
            now,
            svc,
            max_backlog: usize::MAX,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let spare = self.rb.spare();
            let n = spare.len().min(bytes.len());
            assert!(n > 0, "read buffer full");
            spare[..n].copy_from_slice(&bytes[..n]);
            self.rb.filled(n);
            bytes = &bytes[n..];
            let mut tx = Tx {
                out: &mut self.out,
                sink: &mut self.wire,
                pool: &mut self.pool,
                max_backlog: self.max_backlog,
                sent: Default::default(),
                local: None,
                codec: &mut self.codec,
            };
            // A pass that left a compressed chunk for later (the inflate
            // budget) is followed by another, as the event loop does.
            loop {
                let ok = pump(
                    &mut self.conn,
                    &mut self.rb,
                    &mut tx,
                    &self.s,
                    &mut self.svc,
                    self.now,
                );
                assert!(ok, "a vector never breaks");
                if !tx.codec.take_yielded() {
                    break;
                }
            }
        }
    }
}

fn wire_of(input: &[u8], cuts: &[usize], s: &Settings, buf: usize) -> (Vec<u8>, State) {
    let mut d = Driver::new(s.clone(), buf);
    let mut prev = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        d.feed(&input[prev..c]);
        prev = c;
    }
    (d.wire, d.conn.state())
}

fn run_chunks(input: &[u8], cuts: &[usize], s: &Settings, buf: usize) -> (Seen, State) {
    let (wire, state) = wire_of(input, cuts, s, buf);
    (observe(&wire), state)
}

/// Settings whose echo chunks are small enough to stream through `buf`.
fn small(buf: usize) -> Settings {
    Settings {
        chunk_size: buf - CHUNK_SLACK - crate::buffer::HEADROOM,
        handshake: HandshakeConfig {
            max_header_bytes: 4096,
            ..HandshakeConfig::default()
        },
        ..Settings::default()
    }
}

/// Feed `input` whole, split at every byte, and byte by byte: the bytes
/// sent back must be identical every time. Other chunk sizes may frame the
/// echoes differently, but the messages and the close must be the same.
fn conversation(input: &[u8], s: &Settings) -> (Seen, State) {
    let buf = s.chunk_size + CHUNK_SLACK + crate::buffer::HEADROOM;
    let whole = wire_of(input, &[], s, buf);
    for cut in 1..input.len() {
        let w = wire_of(input, &[cut], s, buf);
        assert!(w == whole, "split at {cut}: {:?} vs {:?}", w.1, whole.1);
    }
    let every: Vec<usize> = (1..input.len()).collect();
    assert!(wire_of(input, &every, s, buf) == whole, "byte by byte");
    let seen = (observe(&whole.0), whole.1);
    for chunk in [1, 2, 3, 5, 64, 1 << 16] {
        let other = Settings {
            chunk_size: chunk,
            ..s.clone()
        };
        let b = chunk + CHUNK_SLACK + crate::buffer::HEADROOM + 8192;
        let (o, st) = run_chunks(input, &[], &other, b);
        assert_eq!(o.messages, seen.0.messages, "chunk size {chunk}");
        assert_eq!((o.close, st), (seen.0.close, seen.1), "chunk size {chunk}");
    }
    seen
}

fn open_with(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = request();
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

#[test]
fn echoes_text_and_binary_with_first_frame_in_the_request_packet() {
    let input = open_with(&[
        msg(opcode::TEXT, b"hello"),
        msg(opcode::BINARY, &[0, 1, 2, 255]),
        msg(opcode::TEXT, b""),
        msg(opcode::CLOSE, &1000u16.to_be_bytes()),
    ]);
    let (seen, state) = conversation(&input, &small(4608));
    assert_eq!(seen.status, 101);
    assert_eq!(
        seen.messages,
        vec![
            (opcode::TEXT, b"hello".to_vec()),
            (opcode::BINARY, vec![0, 1, 2, 255]),
            (opcode::TEXT, vec![]),
        ]
    );
    assert_eq!(seen.close, Some(Some(1000)));
    assert!(!seen.junk);
    assert_eq!(state, State::Closed);
}

#[test]
fn fragmented_utf8_with_pings_between_fragments() {
    // "€" (e2 82 ac) and "𝄞" (f0 9d 84 9e) cut across fragment boundaries.
    let text = "a€b𝄞c".as_bytes();
    let input = open_with(&[
        client_frame(false, opcode::TEXT, &text[..2], [1, 2, 3, 4]),
        msg(opcode::PING, b"p1"),
        client_frame(false, opcode::CONTINUATION, &text[2..6], [5, 6, 7, 8]),
        client_frame(false, opcode::CONTINUATION, &[], [5, 6, 7, 8]),
        msg(opcode::PING, b""),
        client_frame(true, opcode::CONTINUATION, &text[6..], [9, 9, 9, 9]),
        msg(opcode::PONG, b"unsolicited"),
    ]);
    let (seen, state) = conversation(&input, &small(4608));
    assert_eq!(seen.messages, vec![(opcode::TEXT, text.to_vec())]);
    assert_eq!(seen.pongs, vec![b"p1".to_vec(), vec![]]);
    assert_eq!(seen.close, None);
    assert_eq!(state, State::Open);
}

#[test]
fn long_messages_stream_through_a_small_buffer() {
    let text: String = "ünïcödé ✓ 𝄞 ".repeat(200);
    let bin: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
    let input = open_with(&[
        msg(opcode::TEXT, text.as_bytes()),
        msg(opcode::BINARY, &bin),
    ]);
    for buf in [300, 512, 1000, 4608] {
        let (seen, _) = run_chunks(&input, &[], &small(buf), buf);
        assert_eq!(seen.messages.len(), 2, "buffer {buf}");
        assert_eq!(seen.messages[0], (opcode::TEXT, text.as_bytes().to_vec()));
        assert_eq!(seen.messages[1], (opcode::BINARY, bin.clone()));
    }
}

#[test]
fn carried_code_point_before_a_payload_with_no_header_room() {
    // A fragment ending in 3 bytes of a 4-byte code point, then fragments of
    // 123–125 and 65533–65535 bytes: the carried bytes plus the fragment need
    // a longer echo header than the client header leaves room for.
    let cp = "𝄞".as_bytes();
    for len in [122usize, 123, 124, 125, 65532, 65533, 65534, 65535] {
        let mut second = vec![cp[3]];
        second.extend(std::iter::repeat(b'x').take(len - 1));
        let input = open_with(&[
            client_frame(false, opcode::TEXT, &cp[..3], [1, 2, 3, 4]),
            client_frame(true, opcode::CONTINUATION, &second, [4, 3, 2, 1]),
        ]);
        let mut expect = cp.to_vec();
        expect.extend(std::iter::repeat(b'x').take(len - 1));
        let (seen, _) = run_chunks(&input, &[], &Settings::default(), 1 << 17);
        assert_eq!(seen.messages, vec![(opcode::TEXT, expect)], "len {len}");
        assert!(!seen.junk);
    }
}

/// The connection fails with `code`. After a framing error nothing more
/// can be parsed, so the core is done at once; otherwise it waits for the
/// peer's close.
fn fails_with(frames: &[Vec<u8>], code: u16) -> Seen {
    let (seen, state) = conversation(&open_with(frames), &small(4608));
    assert_eq!(seen.close, Some(Some(code)), "{seen:?}");
    assert!(!seen.junk);
    assert!(matches!(state, State::CloseSent | State::Closed));
    seen
}

#[test]
fn protocol_violations_close_with_1002() {
    let unmasked = vec![0x81, 0x02, b'h', b'i'];
    fails_with(&[unmasked], 1002);
    for rsv in [0x40u8, 0x20, 0x10] {
        let mut f = msg(opcode::TEXT, b"x");
        f[0] |= rsv;
        fails_with(&[f], 1002);
    }
    for op in [3u8, 7, 0xB, 0xF] {
        fails_with(&[msg(op, b"")], 1002);
    }
    fails_with(&[msg(opcode::PING, &[0; 126])], 1002);
    fails_with(&[client_frame(false, opcode::PING, b"", [1; 4])], 1002);
    fails_with(&[msg(opcode::CONTINUATION, b"x")], 1002);
    fails_with(
        &[
            client_frame(false, opcode::TEXT, b"a", [1; 4]),
            msg(opcode::BINARY, b"b"),
        ],
        1002,
    );
    let mut huge = vec![0x82, 0xFF];
    huge.extend_from_slice(&(1u64 << 63).to_be_bytes());
    huge.extend_from_slice(&[1, 2, 3, 4]);
    fails_with(&[huge], 1002);
}

#[test]
fn messages_before_a_violation_are_still_echoed() {
    let seen = fails_with(&[msg(opcode::TEXT, b"ok"), msg(3, b"")], 1002);
    assert_eq!(seen.messages, vec![(opcode::TEXT, b"ok".to_vec())]);
}

#[test]
fn invalid_utf8_fails_fast_with_1007_and_is_never_echoed() {
    fails_with(&[msg(opcode::TEXT, b"ab\xff")], 1007);
    // The message never ends, yet the server fails at the bad byte.
    let seen = fails_with(
        &[
            client_frame(false, opcode::TEXT, "κόσμε".as_bytes(), [1; 4]),
            client_frame(false, opcode::CONTINUATION, b"\xed\xa0\x80", [2; 4]),
        ],
        1007,
    );
    assert_eq!(seen.messages, vec![]);
    assert_eq!(
        seen.partial,
        "κόσμε".len(),
        "only the valid prefix went out"
    );
    // Incomplete code point at the end of the message.
    fails_with(&[msg(opcode::TEXT, b"ab\xe2\x82")], 1007);
    fails_with(
        &[
            client_frame(false, opcode::TEXT, b"\xf0\x9d", [1; 4]),
            client_frame(true, opcode::CONTINUATION, b"\x84", [1; 4]),
        ],
        1007,
    );
}

#[test]
fn close_codes() {
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        let mut p = code.to_be_bytes().to_vec();
        p.extend_from_slice("bye ✓".as_bytes());
        let (seen, state) =
            conversation(&open_with(&[msg(opcode::CLOSE, &p)]), &Settings::default());
        assert_eq!(seen.close, Some(Some(code)));
        assert_eq!(state, State::Closed);
    }
    for code in [
        0u16, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2000, 2999, 5000, 65535,
    ] {
        fails_with(&[msg(opcode::CLOSE, &code.to_be_bytes())], 1002);
    }
    fails_with(&[msg(opcode::CLOSE, &[0x03])], 1002);
    fails_with(&[msg(opcode::CLOSE, b"\x03\xe8\xff\xfe")], 1002);
    let (seen, state) = conversation(&open_with(&[msg(opcode::CLOSE, b"")]), &Settings::default());
    assert_eq!(seen.close, Some(None));
    assert_eq!(state, State::Closed);
}

#[test]
fn nothing_is_echoed_after_a_close() {
    let (seen, _) = conversation(
        &open_with(&[
            msg(opcode::CLOSE, &1000u16.to_be_bytes()),
            msg(opcode::TEXT, b"late"),
            msg(opcode::PING, b"late"),
        ]),
        &Settings::default(),
    );
    assert_eq!(seen.messages, vec![]);
    assert!(seen.pongs.is_empty());
    assert!(!seen.junk);
}

#[test]
fn after_our_close_the_peer_close_completes_the_handshake() {
    let input = open_with(&[
        msg(opcode::TEXT, b"\xff"),
        msg(opcode::TEXT, b"ignored"),
        msg(opcode::PING, b"ignored"),
        msg(opcode::CLOSE, &1007u16.to_be_bytes()),
    ]);
    let (seen, state) = conversation(&input, &small(4608));
    assert_eq!(seen.close, Some(Some(1007)));
    assert!(seen.messages.is_empty() && seen.pongs.is_empty());
    assert_eq!(state, State::Closed);
}

#[test]
fn message_size_limit_1009() {
    let s = Settings {
        max_message: 1000,
        ..small(4608)
    };
    let (seen, _) = conversation(&open_with(&[msg(opcode::BINARY, &[7; 1000])]), &s);
    assert_eq!(seen.messages.len(), 1);
    // Refused at the header, before any payload arrives.
    let (seen, _) = run_chunks(
        &open_with(&[msg(opcode::BINARY, &[7; 1001])]),
        &[],
        &s,
        4608,
    );
    assert_eq!(seen.close, Some(Some(1009)));
    assert_eq!(seen.partial, 0);
    // Counted across fragments.
    let (seen, _) = run_chunks(
        &open_with(&[
            client_frame(false, opcode::BINARY, &[1; 600], [1; 4]),
            client_frame(true, opcode::CONTINUATION, &[1; 401], [1; 4]),
        ]),
        &[],
        &s,
        4096,
    );
    assert_eq!(seen.close, Some(Some(1009)));
}

fn http_status(req: &str, s: &Settings) -> (u16, Vec<u8>) {
    let (seen, state) = run_chunks(req.as_bytes(), &[], s, 16384);
    assert_eq!(state, State::Closed);
    let mut d = Driver::new(s.clone(), 16384);
    d.feed(req.as_bytes());
    (seen.status, d.wire)
}

#[test]
fn handshake_refusals_are_http_responses() {
    let s = Settings::default();
    let ok = String::from_utf8(request()).unwrap();
    assert_eq!(http_status(&ok.replace("GET", "POST"), &s).0, 405);
    assert_eq!(http_status(&ok.replace("13", "8"), &s).0, 426);
    assert!(String::from_utf8(http_status(&ok.replace("13", "8"), &s).1)
        .unwrap()
        .contains("Sec-WebSocket-Version: 13"));
    assert_eq!(http_status(&ok.replace(KEY, "short"), &s).0, 400);
    assert_eq!(http_status(&ok.replace("GET / ", "GET /nope "), &s).0, 404);
    assert_eq!(http_status(&ok.replace("HTTP/1.1", "HTTP/1.0"), &s).0, 400);
    let with_origin = ok.replace("Host:", "Origin: http://evil.example\r\nHost:");
    assert_eq!(http_status(&with_origin, &s).0, 403);
    assert_eq!(http_status("\x16\x03\x01garbage\r\n\r\n", &s).0, 400);
    let page = http_status("GET / HTTP/1.1\r\nHost: x\r\n\r\n", &s);
    assert_eq!(page.0, 200);
    assert!(page.1.ends_with(http::PAGE));
}

#[test]
fn oversized_head_is_431_even_byte_by_byte() {
    let s = Settings::default();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(s.handshake.max_header_bytes)
    );
    let mut d = Driver::new(s.clone(), 16384);
    for b in big.as_bytes() {
        d.feed(std::slice::from_ref(b));
        if d.conn.is_closed() {
            break;
        }
    }
    assert!(d.conn.is_closed());
    assert!(d.wire.starts_with(b"HTTP/1.1 431"));
}

#[test]
fn deadlines() {
    let s = Settings::default();
    let t0 = 1_000;
    let hs = millis(s.handshake_timeout);
    let mut c = Conn::new(t0, &s, ConnId::new(1, 1));
    assert_eq!(c.deadline(), Some(t0 + hs));
    let mut w = Vec::new();
    run_tx(&mut w, |tx| c.on_timeout(t0 + hs / 2, tx, &s, &mut Echo));
    assert_eq!(c.state(), State::Handshake);
    run_tx(&mut w, |tx| c.on_timeout(t0 + hs, tx, &s, &mut Echo));
    assert!(c.is_closed());

    let mut d = Driver::new(s.clone(), 16384);
    d.feed(&open_with(&[msg(opcode::TEXT, b"\xff")]));
    assert_eq!(d.conn.state(), State::CloseSent);
    let dl = d.conn.deadline().unwrap();
    assert_eq!(dl, d.now + millis(s.close_timeout));
    run_tx(&mut w, |tx| d.conn.on_timeout(dl, tx, &s, &mut Echo));
    assert!(d.conn.is_closed());
}

#[test]
fn server_initiated_close() {
    let s = Settings::default();
    let mut d = Driver::new(s.clone(), 4096);
    d.feed(&request());
    let now = d.now;
    run_tx(&mut d.wire, |tx| d.conn.close(1001, tx, &s, &mut Echo, now));
    assert_eq!(d.conn.state(), State::CloseSent);
    d.feed(&msg(opcode::CLOSE, &1001u16.to_be_bytes()));
    assert!(d.conn.is_closed());
    assert_eq!(observe(&d.wire).close, Some(Some(1001)));
}

/// Run `on_timeout` at `at` and return what it sent.
fn tick(d: &mut Driver, at: Millis) -> Vec<u8> {
    let mut v = Vec::new();
    run_tx(&mut v, |tx| d.conn.on_timeout(at, tx, &d.s, &mut Echo));
    v
}

#[test]
fn heartbeat_pings_a_silent_peer_and_closes_a_dead_one() {
    let s = Settings {
        ping_interval: Some(Duration::from_secs(30)),
        pong_timeout: Duration::from_secs(10),
        idle_timeout: None,
        ..Settings::default()
    };
    let mut d = Driver::new(s, 16384);
    d.feed(&request());
    let t0 = d.now;
    assert_eq!(d.conn.deadline(), Some(t0 + 30_000));
    assert!(tick(&mut d, t0 + 29_999).is_empty(), "nothing due yet");
    assert_eq!(tick(&mut d, t0 + 30_000), [0x89, 0x00], "a ping");
    assert_eq!(d.conn.deadline(), Some(t0 + 40_000));
    // The pong (any frame) proves the peer alive: the next ping is 30 s
    // after it.
    d.now = t0 + 35_000;
    d.feed(&msg(opcode::PONG, b""));
    assert_eq!(
        tick(&mut d, t0 + 40_000),
        b"",
        "no close: the peer answered"
    );
    assert_eq!(d.conn.deadline(), Some(t0 + 65_000));
    assert_eq!(tick(&mut d, t0 + 65_000), [0x89, 0x00]);
    // Silence after the ping: closed with 1001, without waiting for the
    // dead peer's close.
    assert_eq!(tick(&mut d, t0 + 75_000), [0x88, 0x02, 0x03, 0xE9]);
    assert!(d.conn.is_closed());
}

#[test]
fn idle_timeout_closes_with_1001_and_waits_for_the_close() {
    let s = Settings {
        ping_interval: None,
        idle_timeout: Some(Duration::from_secs(60)),
        ..Settings::default()
    };
    let mut d = Driver::new(s, 16384);
    d.feed(&request());
    let t0 = d.now;
    d.now = t0 + 50_000;
    d.feed(&msg(opcode::TEXT, b"still here"));
    // The check armed at open fires at t0+60 s, finds traffic at t0+50 s,
    // and re-arms for t0+110 s.
    assert!(tick(&mut d, t0 + 60_000).is_empty());
    assert_eq!(d.conn.deadline(), Some(t0 + 110_000));
    assert_eq!(tick(&mut d, t0 + 110_000), [0x88, 0x02, 0x03, 0xE9]);
    assert_eq!(d.conn.state(), State::CloseSent);
}

#[test]
fn no_heartbeat_no_deadline() {
    let s = Settings {
        ping_interval: None,
        idle_timeout: None,
        ..Settings::default()
    };
    let mut d = Driver::new(s, 16384);
    d.feed(&request());
    assert_eq!(d.conn.deadline(), None);
}

mod properties {
    //! Random conversations, random packet boundaries: the bytes sent back
    //! never depend on how the input was cut, and every message comes back.

    use super::*;
    use proptest::prelude::*;

    /// One client action.
    #[derive(Debug, Clone)]
    enum Act {
        /// A message: text or binary, payload, cut into this many fragments,
        /// with pings between fragments if set.
        Msg {
            text: bool,
            body: Vec<u8>,
            parts: usize,
            pings: bool,
        },
        Ping(Vec<u8>),
        Pong(Vec<u8>),
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            6 => (any::<bool>(), prop::collection::vec(any::<char>(), 0..300), prop::collection::vec(any::<u8>(), 0..3000), 1usize..5, any::<bool>())
                .prop_map(|(text, chars, bytes, parts, pings)| Act::Msg {
                    text,
                    body: if text { chars.into_iter().collect::<String>().into_bytes() } else { bytes },
                    parts,
                    pings,
                }),
            1 => prop::collection::vec(any::<u8>(), 0..126).prop_map(Act::Ping),
            1 => prop::collection::vec(any::<u8>(), 0..126).prop_map(Act::Pong),
        ]
    }

    /// Messages (opcode, payload) a client expects back.
    type Messages = Vec<(u8, Vec<u8>)>;

    /// The client bytes for `acts`, and the messages and pongs expected.
    fn encode(acts: &[Act], key: [u8; 4]) -> (Vec<u8>, Messages, Vec<Vec<u8>>) {
        let mut wire = request();
        let mut msgs = Vec::new();
        let mut pongs = Vec::new();
        for a in acts {
            match a {
                Act::Msg {
                    text,
                    body,
                    parts,
                    pings,
                } => {
                    let op = if *text { opcode::TEXT } else { opcode::BINARY };
                    // Fragment boundaries anywhere, even inside a code point.
                    let step = body.len() / parts + 1;
                    let pieces: Vec<&[u8]> = if body.is_empty() {
                        vec![&[][..]]
                    } else {
                        body.chunks(step).collect()
                    };
                    for (i, p) in pieces.iter().enumerate() {
                        let first = i == 0;
                        let last = i + 1 == pieces.len();
                        let o = if first { op } else { opcode::CONTINUATION };
                        wire.extend(client_frame(last, o, p, key));
                        if *pings && !last {
                            wire.extend(client_frame(true, opcode::PING, b"mid", key));
                            pongs.push(b"mid".to_vec());
                        }
                    }
                    msgs.push((op, body.clone()));
                }
                Act::Ping(p) => {
                    wire.extend(client_frame(true, opcode::PING, p, key));
                    pongs.push(p.clone());
                }
                Act::Pong(p) => wire.extend(client_frame(true, opcode::PONG, p, key)),
            }
        }
        (wire, msgs, pongs)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_cut_gives_the_same_bytes_and_every_message(
            acts in prop::collection::vec(act(), 1..12),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..40),
            key in any::<[u8; 4]>(),
            chunk in prop::sample::select(vec![1usize, 7, 64, 1000, 4336]),
        ) {
            let (wire, msgs, pongs) = encode(&acts, key);
            let s = Settings { chunk_size: chunk, ..small(4608) };
            let buf = s.chunk_size + CHUNK_SLACK + crate::buffer::HEADROOM + 4096;
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len())).collect();
            points.sort_unstable();
            points.dedup();
            let whole = wire_of(&wire, &[], &s, buf);
            let cut = wire_of(&wire, &points, &s, buf);
            prop_assert!(whole == cut, "output depends on the cuts");
            let seen = observe(&whole.0);
            prop_assert_eq!(seen.status, 101);
            prop_assert_eq!(&seen.messages, &msgs);
            prop_assert_eq!(&seen.pongs, &pongs);
            prop_assert_eq!(seen.close, None);
            prop_assert!(!seen.junk);
        }

        #[test]
        fn garbage_never_panics_and_always_ends_cleanly(
            junk in prop::collection::vec(any::<u8>(), 0..2000),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..20),
        ) {
            // An upgrade followed by arbitrary bytes: whatever happens, the
            // server's output parses as frames and ends at most at a close.
            let mut input = request();
            input.extend_from_slice(&junk);
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(input.len())).collect();
            points.sort_unstable();
            points.dedup();
            let s = small(4608);
            let whole = wire_of(&input, &[], &s, 4608 + 4096);
            let cut = wire_of(&input, &points, &s, 4608 + 4096);
            prop_assert!(whole == cut, "output depends on the cuts");
            let seen = observe(&whole.0);
            prop_assert!(!seen.junk);
        }
    }
}

#[test]
fn binary_without_a_line_end_is_refused_at_once() {
    let mut d = Driver::new(small(4608), 4608);
    d.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03");
    assert!(d.conn.is_closed());
    assert!(d.wire.starts_with(b"HTTP/1.1 400"));
}

#[test]
fn a_full_server_answers_503_after_the_request_but_still_reports() {
    for (req, status, route) in [
        (request(), 503, None),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 503, None),
        (
            b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            0,
            Some(Route::Metrics),
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            0,
            Some(Route::Health),
        ),
    ] {
        let mut d = Driver::new(small(4608), 4608);
        d.conn.refuse_when_read(HandshakeError::Unavailable);
        // Nothing is said before the request is in.
        d.feed(&req[..req.len() - 1]);
        assert!(d.wire.is_empty());
        d.feed(&req[req.len() - 1..]);
        assert!(d.conn.is_closed());
        assert_eq!(d.conn.take_route(), route);
        if status != 0 {
            assert!(d.wire.starts_with(format!("HTTP/1.1 {status}").as_bytes()));
        }
    }
}

#[test]
fn connection_state_is_small() {
    // Paid by every idle connection (and more by the slab's growth).
    assert!(
        std::mem::size_of::<Conn>() <= 72,
        "{}",
        std::mem::size_of::<Conn>()
    );
}

mod deflate;
mod failing;
mod recompress;
mod services;
