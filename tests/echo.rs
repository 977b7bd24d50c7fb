//! Echo over loopback: every message comes back byte-identical with its
//! type, whatever its size, fragmentation, or how its bytes arrive.

mod common;

use std::time::{Duration, Instant};

use common::{op, pattern, text_pattern, upgrade_request, ChildServer, Raw, TestServer};
use tungstenite::Message;

/// Sizes around each payload-length encoding boundary (7-bit, 16-bit,
/// 64-bit) and well past the server's 16 KiB echo chunk.
const SIZES: &[usize] = &[0, 1, 125, 126, 127, 65535, 65536, 1 << 20];

#[test]
fn text_and_binary_echo_at_boundary_sizes() {
    let server = TestServer::start();
    let mut ws = common::ws_client(server.addr);
    for (i, &n) in SIZES.iter().enumerate() {
        let text = text_pattern(n);
        assert_eq!(text.len(), n);
        ws.send(Message::text(text.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Text(t) => assert!(t.as_str() == text, "text of {n} bytes differs"),
            other => panic!("text of {n} bytes came back as {other:?}"),
        }
        let bin = pattern(n, i as u64);
        ws.send(Message::binary(bin.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Binary(b) => assert!(b[..] == bin[..], "binary of {n} bytes differs"),
            other => panic!("binary of {n} bytes came back as {other:?}"),
        }
    }
    ws.close(None).unwrap();
}

/// The largest message the default configuration accepts, written whole
/// before anything is read: the server must keep echoing into its backlog
/// while the client is not reading, or both sides stall.
#[test]
fn sixteen_mib_written_whole_before_reading() {
    let server = TestServer::start();
    let mut ws = common::ws_client(server.addr);
    let n = 16 << 20;
    let bin = pattern(n, 16);
    ws.send(Message::binary(bin.clone())).unwrap();
    match ws.read().unwrap() {
        Message::Binary(b) => {
            assert_eq!(b.len(), n);
            assert!(b[..] == bin[..], "16 MiB binary differs");
        }
        other => panic!("unexpected {other:?}"),
    }
    let text = text_pattern(n);
    ws.send(Message::text(text.clone())).unwrap();
    match ws.read().unwrap() {
        Message::Text(t) => assert!(t.as_str() == text, "16 MiB text differs"),
        other => panic!("unexpected {other:?}"),
    }
}

/// Several messages in flight at once come back complete and in order.
#[test]
fn pipelined_messages_keep_order() {
    let server = TestServer::start();
    let mut ws = common::ws_client(server.addr);
    let msgs: Vec<Vec<u8>> = (0..50).map(|i| pattern(1000 * i + 1, i as u64)).collect();
    for m in &msgs {
        ws.write(Message::binary(m.clone())).unwrap();
    }
    ws.flush().unwrap();
    for (i, m) in msgs.iter().enumerate() {
        match ws.read().unwrap() {
            Message::Binary(b) => assert!(b[..] == m[..], "message {i} differs"),
            other => panic!("message {i}: unexpected {other:?}"),
        }
    }
}

/// A long frame goes back as 16 KiB frames: first with the message's
/// opcode, then continuations, FIN only on the last.
#[test]
fn long_frame_is_echoed_in_16k_chunks() {
    let server = TestServer::start();
    let mut c = Raw::open(server.addr);
    let data = pattern(40_000, 7);
    c.send_frame(true, op::BINARY, &data);
    let sizes = [16384, 16384, 40_000 - 2 * 16384];
    let mut got = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        let f = c.read_frame();
        let opcode = if i == 0 { op::BINARY } else { op::CONT };
        assert_eq!(
            (f.fin, f.opcode, f.payload.len()),
            (i == 2, opcode, len),
            "echo frame {i}"
        );
        got.extend_from_slice(&f.payload);
    }
    assert!(got == data);
}

/// Text cut into fragments in the middle of code points comes back as the
/// same text (the server holds back partial code points, so frame
/// boundaries may move; the message may not change).
#[test]
fn fragmented_text_split_inside_code_points() {
    let server = TestServer::start();
    let mut c = Raw::open(server.addr);
    let text = "a€b𝄞c😀d".as_bytes();
    // Cut after every byte: one fragment per byte, so every code point is
    // split across fragments.
    for (i, b) in text.iter().enumerate() {
        let opcode = if i == 0 { op::TEXT } else { op::CONT };
        c.send_frame(i == text.len() - 1, opcode, &[*b]);
    }
    let (kind, data, controls) = c.read_message();
    assert_eq!(kind, op::TEXT);
    assert_eq!(data, text);
    assert!(controls.is_empty());
}

/// Pings between the fragments of a message are answered with pongs of
/// the same payload, and the message still comes back whole.
#[test]
fn fragmented_messages_with_pings_between_fragments() {
    let server = TestServer::start();
    let mut c = Raw::open(server.addr);

    c.send_frame(false, op::TEXT, b"Hello, ");
    c.send_frame(true, op::PING, b"p1");
    c.send_frame(false, op::CONT, b"wor");
    c.send_frame(true, op::PING, b"");
    c.send_frame(true, op::CONT, b"ld!");
    let (kind, data, controls) = c.read_message();
    assert_eq!(kind, op::TEXT);
    assert_eq!(data, b"Hello, world!");
    let pongs: Vec<_> = controls
        .iter()
        .map(|f| (f.opcode, &f.payload[..]))
        .collect();
    assert_eq!(pongs, [(op::PONG, &b"p1"[..]), (op::PONG, &b""[..])]);

    // Binary, with fragments longer than an echo chunk and a 125-byte ping
    // (the longest allowed) between them.
    let parts: Vec<Vec<u8>> = (0..3).map(|i| pattern(20_000 + i, i as u64)).collect();
    let ping = pattern(125, 99);
    for (i, p) in parts.iter().enumerate() {
        let opcode = if i == 0 { op::BINARY } else { op::CONT };
        c.send_frame(i == parts.len() - 1, opcode, p);
        if i < parts.len() - 1 {
            c.send_frame(true, op::PING, &ping);
        }
    }
    let (kind, data, controls) = c.read_message();
    assert_eq!(kind, op::BINARY);
    assert!(data == parts.concat(), "binary message differs");
    assert_eq!(controls.len(), 2);
    for f in &controls {
        assert_eq!((f.opcode, &f.payload), (op::PONG, &ping));
    }
}

/// A ping inside an open message is answered at once, not when the message
/// ends (the final fragment is never sent here).
#[test]
fn ping_inside_open_message_is_answered_immediately() {
    let server = TestServer::start();
    let mut c = Raw::open(server.addr);
    c.send_frame(false, op::BINARY, b"part");
    c.send_frame(true, op::PING, b"now");
    let f = c.read_frame_within(Duration::from_secs(2));
    assert_eq!(
        (f.fin, f.opcode, &f.payload[..]),
        (false, op::BINARY, &b"part"[..])
    );
    let f = c.read_frame_within(Duration::from_secs(2));
    assert_eq!((f.opcode, &f.payload[..]), (op::PONG, &b"now"[..]));
}

/// Unsolicited pongs get no answer: the next thing back is the echo.
#[test]
fn unsolicited_pong_is_ignored() {
    let server = TestServer::start();
    let mut c = Raw::open(server.addr);
    c.send_frame(true, op::PONG, b"unasked");
    c.send_frame(true, op::TEXT, b"after");
    let (kind, data, controls) = c.read_message();
    assert_eq!((kind, &data[..]), (op::TEXT, &b"after"[..]));
    assert!(controls.is_empty(), "pong was answered: {controls:?}");
}

/// The upgrade request and the first frames in one write (as a client that
/// does not wait for the 101 sends them): all are handled.
#[test]
fn request_and_first_frames_in_one_write() {
    let server = TestServer::start();
    let mut c = Raw::connect(server.addr);
    let mut bytes = upgrade_request("/", &[]).into_bytes();
    bytes.extend(common::frame(true, op::TEXT, b"first"));
    bytes.extend(common::frame(true, op::PING, b"ping"));
    bytes.extend(common::frame(true, op::BINARY, &[0, 1, 2]));
    bytes.extend(common::frame(
        true,
        op::CLOSE,
        &common::close_payload(1000, b""),
    ));
    c.send(&bytes);
    let r = c.read_response_head();
    assert_eq!(r.status, 101);
    assert_eq!(r.header("Sec-WebSocket-Accept"), Some(common::KEY_ACCEPT));
    let (kind, data, _) = c.read_message();
    assert_eq!((kind, &data[..]), (op::TEXT, &b"first"[..]));
    let (kind, data, controls) = c.read_message();
    assert_eq!((kind, &data[..]), (op::BINARY, &[0u8, 1, 2][..]));
    assert_eq!(controls.len(), 1);
    assert_eq!(
        (controls[0].opcode, &controls[0].payload[..]),
        (op::PONG, &b"ping"[..])
    );
    c.expect_close(Some(1000));
    c.expect_eof();
}

/// Frames dribbled in one byte at a time are reassembled and echoed.
#[test]
fn frame_split_into_single_bytes() {
    let server = TestServer::start();
    let mut c = Raw::open(server.addr);
    let data = pattern(300, 3);
    for b in common::frame(true, op::BINARY, &data) {
        c.send(&[b]);
    }
    let (kind, got, _) = c.read_message();
    assert_eq!(kind, op::BINARY);
    assert_eq!(got, data);
}

/// 10,000 connections open at the same time, each sending one unique
/// message before any echo is read: every echo arrives on its own
/// connection, intact. The server runs as a separate process because the
/// machine caps a process at 20,000 open files.
#[test]
fn ten_thousand_concurrent_connections() {
    const N: usize = 10_000;
    const LIMIT: Duration = Duration::from_secs(60);
    let server = ChildServer::spawn(&[]);
    let start = Instant::now();
    let request = upgrade_request("/", &[]);

    // Connect everything, each connection sending its request at once.
    // Responses are read WINDOW connections behind: the listen backlog is
    // 128 (mio's default), and running further ahead of a busy server would
    // overflow it and stall connects for a second per dropped SYN.
    const WINDOW: usize = 64;
    let mut conns: Vec<Raw> = Vec::with_capacity(N);
    let read_upgrade = |c: &mut Raw, i: usize| {
        let r = c.read_response_head();
        assert_eq!(r.status, 101, "connection {i}");
    };
    for i in 0..N {
        let mut c = Raw::connect(server.addr);
        c.send(request.as_bytes());
        conns.push(c);
        if i >= WINDOW {
            read_upgrade(&mut conns[i - WINDOW], i - WINDOW);
        }
        assert!(
            start.elapsed() < LIMIT,
            "only {i} connections after {LIMIT:?}"
        );
    }
    for (i, c) in conns.iter_mut().enumerate().skip(N - WINDOW) {
        read_upgrade(c, i);
    }
    eprintln!("{N} connections open after {:?}", start.elapsed());
    let message = |i: usize| {
        let mut m = format!("connection {i}: ").into_bytes();
        m.extend(pattern(64, i as u64).iter().map(|b| b'a' + b % 26));
        m
    };
    // Every connection has a message in flight before any echo is read.
    for (i, c) in conns.iter_mut().enumerate() {
        let opcode = if i % 2 == 0 { op::TEXT } else { op::BINARY };
        c.send_frame(true, opcode, &message(i));
    }
    for (i, c) in conns.iter_mut().enumerate() {
        let (kind, data, controls) = c.read_message();
        let opcode = if i % 2 == 0 { op::TEXT } else { op::BINARY };
        assert_eq!(kind, opcode, "connection {i}");
        assert!(data == message(i), "connection {i} got {data:?}");
        assert!(controls.is_empty());
        assert!(c.buffered().is_empty(), "connection {i}: extra bytes");
    }
    // And all of them close cleanly.
    for c in conns.iter_mut() {
        c.send_frame(true, op::CLOSE, &common::close_payload(1000, b""));
    }
    for c in conns.iter_mut() {
        c.expect_close(Some(1000));
        c.expect_eof();
    }
    let elapsed = start.elapsed();
    assert!(elapsed < LIMIT, "took {elapsed:?}");
    eprintln!("{N} connections echoed and closed in {elapsed:?}");
}
