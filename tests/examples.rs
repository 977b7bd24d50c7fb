//! The programs under examples/, each served in-process on 127.0.0.1 and
//! checked with tungstenite as the client (and, where the exact frames
//! matter, with a raw socket).
//!
//! Every socket has read and write timeouts, so a server that stops
//! answering fails a test instead of hanging it. Servers run one event loop,
//! so clients that interleave their messages share it: a per-loop buffer
//! that leaked one connection's message into another's would show here.

#[path = "../examples/echo.rs"]
#[allow(dead_code)]
mod echo;
#[path = "../examples/json_reply.rs"]
#[allow(dead_code)]
mod json_reply;
#[path = "../examples/per_connection.rs"]
#[allow(dead_code)]
mod per_connection;
#[path = "../examples/received.rs"]
#[allow(dead_code)]
mod received;

// Counts the allocations of the threads that opt in (a server's), for the
// claim that a warm server allocates nothing per message.
#[path = "common/counting.rs"]
mod counting;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::{Bytes, Message, WebSocket};
use zerows::{Builder, Running, Service};

/// Longest any socket operation may block before the test fails.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Two-, three- and four-byte code points.
const SAMPLE: &str = "héllo 很厉害 🎉";

type Client = WebSocket<TcpStream>;

// ---------------------------------------------------------------------------
// Harness

/// A server on an ephemeral port of 127.0.0.1. Tests end with
/// [`stop`](Self::stop); a test that panics first still stops it on drop.
struct TestServer {
    addr: SocketAddr,
    running: Option<Running>,
}

fn serve<S, F>(make: F) -> TestServer
where
    S: Service + 'static,
    F: Fn(usize) -> S + Send + Sync + 'static,
{
    let running = Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .start(make)
        .expect("start the server");
    TestServer {
        addr: running.local_addrs()[0],
        running: Some(running),
    }
}

impl TestServer {
    fn connect(&self) -> Client {
        connect(self.addr)
    }

    /// Stop every loop and wait for them; a loop's error fails the test.
    fn stop(mut self) {
        let running = self.running.take().unwrap();
        running.stopper().stop();
        running.join().expect("the server stopped cleanly");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stopper().stop();
            let _ = running.join();
        }
    }
}

fn connect(addr: SocketAddr) -> Client {
    let (ws, resp) = tungstenite::client(format!("ws://{addr}/"), tcp(addr)).expect("handshake");
    assert_eq!(resp.status(), 101);
    ws
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Queue one data frame (not flushed).
fn frame(ws: &mut Client, op: Data, fin: bool, payload: &[u8]) {
    let f = Frame::message(payload.to_vec(), OpCode::Data(op), fin);
    ws.write(Message::Frame(f)).expect("write a frame");
}

/// Send one message of kind `op` as one frame per part.
fn send_fragmented(ws: &mut Client, op: Data, parts: &[&[u8]]) {
    for (i, part) in parts.iter().enumerate() {
        let op = if i == 0 { op } else { Data::Continue };
        frame(ws, op, i + 1 == parts.len(), part);
    }
    ws.flush().expect("flush");
}

/// Ping and wait for the pong: once it is back, the server has read
/// everything sent before it. Nothing else may arrive meanwhile.
fn sync(ws: &mut Client) {
    ws.send(Message::Ping(Bytes::from_static(b"sync")))
        .expect("ping");
    match ws.read() {
        Ok(Message::Pong(p)) if p == b"sync"[..] => {}
        other => panic!("expected the pong, got {other:?}"),
    }
}

fn read_text(ws: &mut Client) -> String {
    match ws.read() {
        Ok(Message::Text(t)) => t.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

fn read_binary(ws: &mut Client) -> Vec<u8> {
    match ws.read() {
        Ok(Message::Binary(b)) => b.to_vec(),
        other => panic!("expected a binary message, got {other:?}"),
    }
}

/// The next message is a close frame with `code` and `reason`; after our
/// answer, the server ends the connection.
fn expect_close(mut ws: Client, code: u16, reason: &str) {
    match ws.read() {
        Ok(Message::Close(Some(cf))) => {
            assert_eq!(u16::from(cf.code), code);
            assert_eq!(cf.reason.as_str(), reason);
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    expect_end(&mut ws);
}

/// Nothing more arrives: tungstenite answers a close, then sees the
/// server's FIN.
fn expect_end(ws: &mut Client) {
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("expected the connection to end, got {other:?}"),
    }
}

/// Close from the client's side and see the handshake through.
fn hang_up(mut ws: Client) {
    ws.close(None).expect("send close");
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => {}
            Err(tungstenite::Error::ConnectionClosed) => return,
            other => panic!("expected the close handshake, got {other:?}"),
        }
    }
}

/// `s` cut at byte offsets `cuts`, each of which must fall inside a code
/// point: the pieces are not valid UTF-8 on their own.
fn split_inside_code_points<'a>(s: &'a str, cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut from = 0;
    for &c in cuts {
        assert!(!s.is_char_boundary(c), "cut {c} is on a char boundary");
        parts.push(&s.as_bytes()[from..c]);
        from = c;
    }
    parts.push(&s.as_bytes()[from..]);
    parts
}

/// Offsets in [`SAMPLE`] inside "é", "很" and "🎉".
const SAMPLE_CUTS: [usize; 3] = [2, 8, 19];

/// Two clients on one loop send fragmented text messages, the fragments
/// of one arriving between those of the other (each step waits for a
/// pong, so the server has read it before the other client goes on); one
/// of them splits a code point across fragments. Each client must get the
/// answer `reply` gives for its own message, and nothing else.
fn interleave(server: &TestServer, reply: impl Fn(&str) -> String) {
    let mut a = server.connect();
    let mut b = server.connect();
    let b_text = "BBB-first-half 很BBB-second-half";
    let cut = "BBB-first-half ".len() + 1;
    let b_parts = split_inside_code_points(b_text, &[cut]);

    frame(&mut a, Data::Text, false, b"AAA-first-half ");
    sync(&mut a);
    frame(&mut b, Data::Text, false, b_parts[0]);
    sync(&mut b);
    frame(&mut a, Data::Continue, false, b"AAA-middle ");
    sync(&mut a);
    // B finishes first although A began first.
    frame(&mut b, Data::Continue, true, b_parts[1]);
    b.flush().unwrap();
    assert_eq!(read_text(&mut b), reply(b_text));
    frame(&mut a, Data::Continue, true, b"AAA-second-half");
    a.flush().unwrap();
    assert_eq!(
        read_text(&mut a),
        reply("AAA-first-half AAA-middle AAA-second-half")
    );

    // And again, whole messages now, to see neither connection was left
    // with a fragment of the other's.
    a.send(Message::text("a2")).unwrap();
    b.send(Message::text("b2")).unwrap();
    assert_eq!(read_text(&mut b), reply("b2"));
    assert_eq!(read_text(&mut a), reply("a2"));
    hang_up(a);
    hang_up(b);
}

/// A raw connection after a standard upgrade: for tests of the exact bytes
/// the server writes.
fn raw_upgrade(addr: SocketAddr) -> TcpStream {
    let mut s = tcp(addr);
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
          Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).expect("read the response head");
        head.push(byte[0]);
        assert!(head.len() < 4096, "response head too long");
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    // The accept value for this key, from RFC 6455 §1.3.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    s
}

/// A masked client frame of at most 125 bytes; `first` is FIN and opcode.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= 125);
    let key = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = vec![first, 0x80 | payload.len() as u8];
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

// ---------------------------------------------------------------------------
// echo

#[test]
fn echo_returns_messages_unchanged() {
    let server = serve(|_| zerows::Echo);
    let mut ws = server.connect();
    for text in [SAMPLE, "", "a"] {
        ws.send(Message::text(text)).unwrap();
        assert_eq!(read_text(&mut ws), text);
    }
    let bytes: Vec<u8> = (0..=255).collect();
    ws.send(Message::binary(bytes.clone())).unwrap();
    assert_eq!(read_binary(&mut ws), bytes);
    // Longer than one echo chunk (16 KiB), whose boundaries fall inside
    // three-byte code points.
    let long = "很".repeat(40_000);
    ws.send(Message::text(long.clone())).unwrap();
    assert!(read_text(&mut ws) == long, "long text differs");
    hang_up(ws);
    server.stop();
}

#[test]
fn echo_reassembles_fragments_split_inside_code_points() {
    let server = serve(|_| zerows::Echo);
    let mut ws = server.connect();
    send_fragmented(
        &mut ws,
        Data::Text,
        &split_inside_code_points(SAMPLE, &SAMPLE_CUTS),
    );
    assert_eq!(read_text(&mut ws), SAMPLE);
    // One byte per frame.
    let bytes: Vec<&[u8]> = SAMPLE.as_bytes().chunks(1).collect();
    send_fragmented(&mut ws, Data::Text, &bytes);
    assert_eq!(read_text(&mut ws), SAMPLE);
    hang_up(ws);
    server.stop();
}

#[test]
fn echo_keeps_interleaved_clients_apart() {
    let server = serve(|_| zerows::Echo);
    interleave(&server, |m| m.to_owned());
    server.stop();
}

// ---------------------------------------------------------------------------
// received

fn received(m: &str) -> String {
    format!("Received: {m}")
}

#[test]
fn received_prefixes_text_and_ignores_binary() {
    let server = serve(|_| received::Received);
    let mut ws = server.connect();
    for text in [SAMPLE, "", "hello"] {
        ws.send(Message::text(text)).unwrap();
        assert_eq!(read_text(&mut ws), received(text));
    }
    // No answer to binary: the next message read answers the text after it.
    ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    ws.send(Message::text("after binary")).unwrap();
    assert_eq!(read_text(&mut ws), received("after binary"));
    hang_up(ws);
    server.stop();
}

/// The exact bytes: the reply to a message sent as three frames (in one
/// write) is one unfragmented, unmasked text frame; a close gets its
/// answer, then FIN.
#[test]
fn received_reply_bytes_on_the_wire() {
    let server = serve(|_| received::Received);
    let mut s = raw_upgrade(server.addr);
    let parts = split_inside_code_points(SAMPLE, &SAMPLE_CUTS[..2]);
    let mut wire = masked(0x01, parts[0]);
    wire.extend(masked(0x00, parts[1]));
    wire.extend(masked(0x80, parts[2]));
    s.write_all(&wire).unwrap();

    let reply = received(SAMPLE);
    let mut want = vec![0x81, reply.len() as u8];
    want.extend_from_slice(reply.as_bytes());
    let mut got = vec![0; want.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, want);

    s.write_all(&masked(0x88, &1000u16.to_be_bytes())).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest)
        .expect("the server ends the connection");
    assert_eq!(rest, [0x88, 0x02, 0x03, 0xe8]);
    // Our FIN ends the server's side too; without it, stopping would wait
    // out the server's linger for it.
    drop(s);
    server.stop();
}

#[test]
fn received_fragments_split_inside_code_points() {
    let server = serve(|_| received::Received);
    let mut ws = server.connect();
    send_fragmented(
        &mut ws,
        Data::Text,
        &split_inside_code_points(SAMPLE, &SAMPLE_CUTS),
    );
    assert_eq!(read_text(&mut ws), received(SAMPLE));
    let bytes: Vec<&[u8]> = SAMPLE.as_bytes().chunks(1).collect();
    send_fragmented(&mut ws, Data::Text, &bytes);
    assert_eq!(read_text(&mut ws), received(SAMPLE));
    // Empty fragments around a non-empty one.
    send_fragmented(&mut ws, Data::Text, &[b"", b"x", b""]);
    assert_eq!(read_text(&mut ws), received("x"));
    hang_up(ws);
    server.stop();
}

#[test]
fn received_keeps_interleaved_clients_apart() {
    let server = serve(|_| received::Received);
    interleave(&server, received);
    server.stop();
}

/// A message collected across several 16 KiB chunks of one frame, with
/// code points split at the chunk boundaries, and one of several frames.
#[test]
fn received_long_messages_collected_whole() {
    let server = serve(|_| received::Received);
    let mut ws = server.connect();
    let long = "很".repeat(100_000);
    ws.send(Message::text(long.clone())).unwrap();
    assert!(read_text(&mut ws) == received(&long), "long reply differs");
    // 300 000 bytes in 20 frames, each cut one or two bytes into a "很".
    let cuts: Vec<usize> = (1..20).map(|i| i * 15_000 + 1 + i % 2).collect();
    send_fragmented(&mut ws, Data::Text, &split_inside_code_points(&long, &cuts));
    assert!(read_text(&mut ws) == received(&long), "long reply differs");
    hang_up(ws);
    server.stop();
}

/// Collecting is bounded by `Settings::max_collected` (1 MiB by default):
/// past it the connection is closed with 1009.
#[test]
fn received_over_max_collected_closes_with_1009() {
    let server = serve(|_| received::Received);
    let mut ws = server.connect();
    let limit = zerows::Settings::default().max_collected as usize;
    ws.send(Message::text("a".repeat(limit))).unwrap();
    assert_eq!(read_text(&mut ws).len(), "Received: ".len() + limit);
    ws.send(Message::text("a".repeat(limit + 1))).unwrap();
    match ws.read() {
        Ok(Message::Close(Some(cf))) => assert_eq!(u16::from(cf.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    expect_end(&mut ws);
    drop(ws);
    server.stop();
}

// ---------------------------------------------------------------------------
// json_reply

/// What the reply must parse as: these fields and no others.
#[derive(Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Person {
    name: String,
    age: u64,
    description: String,
}

fn person(p: &str) -> Person {
    Person {
        name: p.to_owned(),
        age: 18,
        description: format!("{p}{}", json_reply::SUFFIX),
    }
}

/// The reply's exact text, for a `p` that JSON need not escape.
fn json_text(p: &str) -> String {
    format!(r#"{{"name":"{p}","age":18,"description":"{p}很厉害!!!!"}}"#)
}

fn read_person(ws: &mut Client) -> Person {
    let text = read_text(ws);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not the JSON wanted ({e}): {text}"))
}

#[test]
fn json_reply_is_the_exact_object() {
    let server = serve(|_| json_reply::JsonReply::default());
    let mut ws = server.connect();
    for p in ["小明", SAMPLE, ""] {
        ws.send(Message::text(p)).unwrap();
        let text = read_text(&mut ws);
        assert_eq!(text, json_text(p));
        assert_eq!(serde_json::from_str::<Person>(&text).unwrap(), person(p));
    }
    // Binary gets no answer.
    ws.send(Message::binary(vec![0xff])).unwrap();
    ws.send(Message::text("next")).unwrap();
    assert_eq!(read_person(&mut ws), person("next"));
    hang_up(ws);
    server.stop();
}

#[test]
fn json_reply_escapes_what_json_must() {
    let server = serve(|_| json_reply::JsonReply::default());
    let mut ws = server.connect();
    let p = "quote\" backslash\\ newline\n tab\t nul\u{0} bell\u{7} slash/ 🎉";
    ws.send(Message::text(p)).unwrap();
    assert_eq!(read_person(&mut ws), person(p));
    hang_up(ws);
    server.stop();
}

#[test]
fn json_reply_fragments_split_inside_code_points() {
    let server = serve(|_| json_reply::JsonReply::default());
    let mut ws = server.connect();
    send_fragmented(
        &mut ws,
        Data::Text,
        &split_inside_code_points(SAMPLE, &SAMPLE_CUTS),
    );
    assert_eq!(read_text(&mut ws), json_text(SAMPLE));
    hang_up(ws);
    server.stop();
}

/// The service reuses one output buffer: a short reply after a long one
/// carries nothing of it.
#[test]
fn json_reply_buffer_reused_long_then_short() {
    let server = serve(|_| json_reply::JsonReply::default());
    let mut ws = server.connect();
    let long = "长".repeat(50_000);
    ws.send(Message::text(long.clone())).unwrap();
    assert_eq!(read_person(&mut ws), person(&long));
    ws.send(Message::text("x")).unwrap();
    assert_eq!(read_text(&mut ws), json_text("x"));
    hang_up(ws);
    server.stop();
}

#[test]
fn json_reply_keeps_interleaved_clients_apart() {
    let server = serve(|_| json_reply::JsonReply::default());
    interleave(&server, json_text);
    server.stop();
}

// ---------------------------------------------------------------------------
// per_connection

#[test]
fn per_connection_numbers_replies_then_closes() {
    assert_eq!(per_connection::LIMIT, 3);
    let server = serve(|_| per_connection::Counter);
    let mut ws = server.connect();
    ws.send(Message::text("first")).unwrap();
    assert_eq!(read_text(&mut ws), "1: first");
    send_fragmented(
        &mut ws,
        Data::Text,
        &split_inside_code_points(SAMPLE, &SAMPLE_CUTS),
    );
    assert_eq!(read_text(&mut ws), format!("2: {SAMPLE}"));
    // Binary is not counted.
    ws.send(Message::binary(vec![1, 2])).unwrap();
    ws.send(Message::text("third")).unwrap();
    assert_eq!(read_text(&mut ws), "3: third");
    expect_close(ws, 1000, per_connection::REASON);
    server.stop();
}

/// Messages the client sends past the limit, before it has seen the
/// close, get no answer.
#[test]
fn per_connection_answers_nothing_past_the_limit() {
    let server = serve(|_| per_connection::Counter);
    let mut ws = server.connect();
    for m in ["a", "b", "c", "d", "e"] {
        ws.write(Message::text(m)).unwrap();
    }
    ws.flush().unwrap();
    assert_eq!(read_text(&mut ws), "1: a");
    assert_eq!(read_text(&mut ws), "2: b");
    assert_eq!(read_text(&mut ws), "3: c");
    expect_close(ws, 1000, per_connection::REASON);
    server.stop();
}

#[test]
fn per_connection_counts_each_connection_separately() {
    let server = serve(|_| per_connection::Counter);
    // Fragments interleaved, as for the other services: each client's
    // first message is its 1, and its second ("a2", "b2") its 2.
    interleave(&server, |m| {
        let n = if m.ends_with('2') { 2 } else { 1 };
        format!("{n}: {m}")
    });

    let mut a = server.connect();
    let mut b = server.connect();
    a.send(Message::text("a")).unwrap();
    assert_eq!(read_text(&mut a), "1: a");
    a.send(Message::text("a")).unwrap();
    assert_eq!(read_text(&mut a), "2: a");
    b.send(Message::text("b")).unwrap();
    assert_eq!(read_text(&mut b), "1: b");
    a.send(Message::text("a")).unwrap();
    assert_eq!(read_text(&mut a), "3: a");
    expect_close(a, 1000, per_connection::REASON);
    // B is still open, on its own count.
    b.send(Message::text("b")).unwrap();
    assert_eq!(read_text(&mut b), "2: b");
    // A new connection starts from one.
    let mut c = server.connect();
    c.send(Message::text("c")).unwrap();
    assert_eq!(read_text(&mut c), "1: c");
    b.send(Message::text("b")).unwrap();
    assert_eq!(read_text(&mut b), "3: b");
    expect_close(b, 1000, per_connection::REASON);
    hang_up(c);
    server.stop();
}

// ---------------------------------------------------------------------------
// Allocations

/// Once warm, `received` and `json_reply` allocate nothing per message: the
/// reply to "Received: " is sent from two parts, and the JSON is written
/// into the buffer the service keeps. (These servers run on a thread of
/// their own whose allocations are counted, not through `Builder`.)
#[test]
fn warm_received_and_json_reply_allocate_nothing_per_message() {
    fn measure<S: Service + Send + 'static>(service: S, reply: fn(&str) -> String)
    where
        S::State: Send,
    {
        let (addr, stop, thread) = counting::start_service(Default::default(), service);
        let mut ws = connect(addr);
        let messages = ["小明", SAMPLE, "", "hello"];
        let round = |ws: &mut Client| {
            for m in messages {
                ws.send(Message::text(m)).unwrap();
                assert_eq!(read_text(ws), reply(m));
            }
        };
        for _ in 0..50 {
            round(&mut ws);
        }
        let before = counting::calls();
        for _ in 0..250 {
            round(&mut ws);
        }
        let during = counting::calls() - before;
        assert_eq!(during, 0, "allocations for 1000 messages");
        hang_up(ws);
        stop.stop();
        thread.join().unwrap();
    }
    measure(received::Received, received);
    measure(json_reply::JsonReply::default(), json_text);
}
