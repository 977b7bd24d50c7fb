//! The client against the zerows server, and against scripted servers
//! that send what a well-behaved server never would: frames in the packet
//! of the 101, refusals, bad accepts, broken frames, closes with and
//! without TCP's end.
//!
//! Every socket has timeouts and every scripted server a bounded script, so
//! a client that hangs fails the test.

mod common;
#[path = "../examples/client.rs"]
#[allow(dead_code)]
mod example_client;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{op, TestServer, TIMEOUT};
use zerows::frame::{self, Role};
use zerows::{
    Client, ClientConfig, ClientError, DeflateOffer, Incoming, Message, MessageKind, Part,
    ResponseError,
};

// ---------------------------------------------------------------------------
// Against the zerows echo server

fn config() -> ClientConfig {
    let mut c = ClientConfig::new();
    c.connect_timeout = TIMEOUT;
    c.handshake_timeout = TIMEOUT;
    c.close_timeout = Duration::from_secs(2);
    c
}

fn connect(server: &TestServer) -> Client {
    let mut ws = Client::connect_with(&server.url(), &config()).expect("connect");
    ws.set_read_timeout(Some(TIMEOUT));
    ws.set_write_timeout(Some(TIMEOUT)).unwrap();
    ws
}

/// A payload where every byte depends on its offset and on `seed`.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect()
}

#[test]
fn echoes_every_size_and_kind() {
    let server = TestServer::start();
    let mut ws = connect(&server);
    for len in [0, 1, 125, 126, 65_535, 65_536, 200_000] {
        let data = pattern(len, len as u8);
        ws.send_binary(&data).unwrap();
        match ws.recv().unwrap() {
            Some(Message::Binary(b)) => assert!(b == data, "binary of {len} bytes"),
            other => panic!("{other:?}"),
        }
    }
    let text = "héllo 很厉害 🎉".repeat(5000);
    ws.send_text(&text).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text(&text)));
    ws.close(1000, "bye").unwrap();
    assert!(ws.is_closed());
    assert_eq!(ws.close_frame().unwrap().code, Some(1000));
    assert!(matches!(ws.send_text("late"), Err(ClientError::Closed)));
}

#[test]
fn the_example_client_gets_its_hello_back() {
    let server = TestServer::start();
    assert_eq!(
        example_client::hello(&server.url()).unwrap().as_deref(),
        Some("Hello world!")
    );
}

#[test]
fn sixteen_mib_round_trip() {
    let server = TestServer::start();
    let mut ws = connect(&server);
    let data = pattern(16 << 20, 7);
    ws.send_binary(&data).unwrap();
    match ws.recv().unwrap() {
        Some(Message::Binary(b)) => assert!(b == &data[..]),
        other => panic!("{other:?}"),
    }
    ws.close(1000, "").unwrap();
}

#[test]
fn fragments_sent_and_streamed_back() {
    let server = TestServer::start();
    let mut ws = connect(&server);
    // "€" cut across the frames: only the message as a whole is UTF-8.
    let euro = "€".as_bytes();
    ws.send_part(Part::First(MessageKind::Text), &[b'a', euro[0]])
        .unwrap();
    ws.send_part(Part::More, &euro[1..2]).unwrap();
    assert!(matches!(ws.send_text("no"), Err(ClientError::Invalid(_))));
    ws.send_part(Part::Last, &[euro[2], b'z']).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("a€z")));
    // A long message, streamed back in pieces: nothing is gathered.
    let data = pattern(1 << 20, 3);
    ws.send_binary(&data).unwrap();
    let mut got = Vec::new();
    let mut pieces = 0;
    loop {
        match ws.recv_event().unwrap() {
            Some(Incoming::Piece(p)) => {
                assert_eq!((p.kind, p.first), (MessageKind::Binary, got.is_empty()));
                got.extend_from_slice(p.data);
                pieces += 1;
                if p.last {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(got == data);
    assert!(pieces > 1, "a 1 MiB message arrives in several pieces");
    ws.close(1000, "").unwrap();
}

#[test]
fn ping_gets_its_pong() {
    let server = TestServer::start();
    let mut ws = connect(&server);
    ws.ping(b"hello?").unwrap();
    assert_eq!(ws.recv_event().unwrap(), Some(Incoming::Pong(b"hello?")));
    assert!(matches!(ws.ping(&[0; 126]), Err(ClientError::Invalid(_))));
    ws.close(1000, "").unwrap();
}

#[test]
fn subprotocol_negotiated() {
    let server =
        TestServer::start_with(|c| c.settings.handshake.subprotocols = vec!["chat".into()]);
    let cfg = config().subprotocol("superchat").subprotocol("chat");
    let ws = Client::connect_with(&server.url(), &cfg).unwrap();
    assert_eq!(ws.protocol(), Some("chat"));
}

#[test]
fn refusal_of_our_server_is_reported_with_status_and_body() {
    let server = TestServer::start();
    let url = format!("ws://{}/elsewhere", server.addr);
    match Client::connect_with(&url, &config()) {
        Err(ClientError::Handshake(ResponseError::Status { code, body, .. })) => {
            assert_eq!(code, 404);
            assert!(body.contains("404"), "{body:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_urls_and_options_fail_before_dialling() {
    assert!(matches!(
        Client::connect("wss://127.0.0.1:1/"),
        Err(ClientError::Url(_))
    ));
    assert!(matches!(
        Client::connect("ws://h/#x"),
        Err(ClientError::Url(_))
    ));
    let server = TestServer::start();
    let cfg = config().header("Sec-WebSocket-Key", "x");
    assert!(matches!(
        Client::connect_with(&server.url(), &cfg),
        Err(ClientError::Request(_))
    ));
}

// ---------------------------------------------------------------------------
// Scripted servers

/// A one-connection server on 127.0.0.1 that runs `script` on the socket.
struct Scripted {
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Scripted {
    fn start(script: impl FnOnce(TcpStream) + Send + 'static) -> Scripted {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.set_write_timeout(Some(TIMEOUT)).unwrap();
            script(s)
        });
        Scripted {
            addr,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Wait for the script; its assertions fail the test.
    fn join(mut self) {
        if let Err(e) = self.thread.take().unwrap().join() {
            std::panic::resume_unwind(e);
        }
    }
}

/// Read the request head; returns the accept for its key.
fn read_request(s: &mut TcpStream) -> String {
    read_request_head(s).1
}

/// Read the request head; returns it and the accept for its key.
fn read_request_head(s: &mut TcpStream) -> (String, String) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "request head cut short");
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let key = head
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .expect("a key");
    let accept = String::from_utf8(zerows::handshake::accept_key(key.as_bytes()).to_vec()).unwrap();
    (head, accept)
}

fn upgrade_response(accept: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    )
}

/// An unmasked server frame.
fn server_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    common::encode_raw(if fin { 0x80 } else { 0 } | opcode, payload, None)
}

/// Read one client frame, exactly its bytes; check it is masked and unmask
/// it.
fn read_client_frame(s: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if let Some(h) = frame::decode(&buf, Role::FromClient).expect("a masked client frame") {
            let mut p = vec![0u8; h.len as usize];
            s.read_exact(&mut p).expect("the frame's payload");
            zerows::mask::apply(&mut p, h.mask.unwrap(), 0);
            return (h.fin, h.opcode, p);
        }
        // Byte by byte: the header ends where decode says, and what
        // follows it is left in the socket for the next call.
        assert_eq!(s.read(&mut b).unwrap(), 1, "client ended TCP mid-frame");
        buf.push(b[0]);
    }
}

/// TCP is still open from the client's side: nothing arrives, and no EOF.
fn still_open(s: &mut TcpStream, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 1];
    match s.read(&mut b) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the client closed TCP or sent more: {other:?}"),
    }
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
}

#[test]
fn frames_in_the_packet_of_the_101_are_kept() {
    let srv = Scripted::start(|mut s| {
        let accept = read_request(&mut s);
        let mut bytes = upgrade_response(&accept).into_bytes();
        bytes.extend(server_frame(true, op::TEXT, b"first"));
        bytes.extend(server_frame(true, op::PING, b"p"));
        s.write_all(&bytes).unwrap();
        assert_eq!(read_client_frame(&mut s), (true, op::PONG, b"p".to_vec()));
        assert_eq!(
            read_client_frame(&mut s),
            (true, op::CLOSE, vec![0x03, 0xE8])
        );
        s.write_all(&server_frame(true, op::CLOSE, &[0x03, 0xE8]))
            .unwrap();
    });
    let mut ws = Client::connect_with(&srv.url(), &config()).unwrap();
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("first")));
    // A blocking client reads only when asked: the ping is answered as it
    // is read.
    assert_eq!(ws.recv_event().unwrap(), Some(Incoming::Ping(b"p")));
    ws.close(1000, "").unwrap();
    srv.join();
}

fn refused_with(response: &'static str) -> ClientError {
    let srv = Scripted::start(move |mut s| {
        read_request(&mut s);
        let _ = s.write_all(response.as_bytes());
    });
    let err = Client::connect_with(&srv.url(), &config()).unwrap_err();
    srv.join();
    err
}

#[test]
fn a_200_or_302_is_refused_with_its_status_and_body() {
    match refused_with("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world") {
        ClientError::Handshake(ResponseError::Status { code, reason, body }) => {
            assert_eq!(
                (code, reason.as_str(), body.as_str()),
                (200, "OK", "hello world")
            );
        }
        other => panic!("{other:?}"),
    }
    match refused_with("HTTP/1.1 302 Found\r\nLocation: /x\r\n\r\nmoved") {
        ClientError::Handshake(ResponseError::Status { code, body, .. }) => {
            assert_eq!((code, body.as_str()), (302, "moved"));
        }
        other => panic!("{other:?}"),
    }
    let msg = refused_with("HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope").to_string();
    assert!(
        msg.contains("403 Forbidden") && msg.contains("nope"),
        "{msg}"
    );
}

#[test]
fn wrong_accept_or_missing_upgrade_is_refused() {
    let bad = refused_with(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\r\n",
    );
    assert!(
        matches!(bad, ClientError::Handshake(ResponseError::BadAccept)),
        "{bad:?}"
    );
    let srv = Scripted::start(|mut s| {
        let accept = read_request(&mut s);
        let r = format!(
            "HTTP/1.1 101 OK\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        let _ = s.write_all(r.as_bytes());
    });
    let err = Client::connect_with(&srv.url(), &config()).unwrap_err();
    assert!(
        matches!(err, ClientError::Handshake(ResponseError::NoUpgrade)),
        "{err:?}"
    );
    srv.join();
}

#[test]
fn unrequested_subprotocol_or_extension_is_refused() {
    for (extra, want) in [
        (
            "Sec-WebSocket-Protocol: chat\r\n",
            ResponseError::UnrequestedProtocol,
        ),
        (
            "Sec-WebSocket-Extensions: permessage-deflate\r\n",
            ResponseError::UnrequestedExtension,
        ),
    ] {
        let srv = Scripted::start(move |mut s| {
            let accept = read_request(&mut s);
            let r = upgrade_response(&accept).replace("\r\n\r\n", &format!("\r\n{extra}\r\n"));
            let _ = s.write_all(r.as_bytes());
        });
        match Client::connect_with(&srv.url(), &config()) {
            Err(ClientError::Handshake(e)) => assert_eq!(e, want),
            other => panic!("{other:?}"),
        }
        srv.join();
    }
}

#[test]
fn a_response_head_over_the_limit_is_refused() {
    let srv = Scripted::start(|mut s| {
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 101 Switching Protocols\r\n");
        let filler = format!("X-Filler: {}\r\n", "a".repeat(100));
        for _ in 0..100 {
            if s.write_all(filler.as_bytes()).is_err() {
                break;
            }
        }
    });
    let err = Client::connect_with(&srv.url(), &config()).unwrap_err();
    assert!(
        matches!(err, ClientError::Handshake(ResponseError::TooLarge)),
        "{err:?}"
    );
    srv.join();
}

#[test]
fn a_silent_server_times_the_handshake_out() {
    let srv = Scripted::start(|mut s| {
        read_request(&mut s);
        std::thread::sleep(Duration::from_millis(600));
    });
    let mut cfg = config();
    cfg.handshake_timeout = Duration::from_millis(200);
    let t = Instant::now();
    let err = Client::connect_with(&srv.url(), &cfg).unwrap_err();
    assert!(
        matches!(&err, ClientError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut),
        "{err:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(550),
        "{:?}",
        t.elapsed()
    );
    srv.join();
}

#[test]
fn server_close_is_answered_and_tcp_left_to_the_server() {
    let srv = Scripted::start(|mut s| {
        let accept = read_request(&mut s);
        s.write_all(upgrade_response(&accept).as_bytes()).unwrap();
        let mut close = vec![0x0F, 0xA1];
        close.extend_from_slice(b"done here");
        s.write_all(&server_frame(true, op::CLOSE, &close)).unwrap();
        assert_eq!(
            read_client_frame(&mut s),
            (true, op::CLOSE, vec![0x0F, 0xA1])
        );
        // The client must not end TCP first (RFC 6455 §7.1.1).
        still_open(&mut s, Duration::from_millis(300));
    });
    let mut ws = Client::connect_with(&srv.url(), &config()).unwrap();
    assert_eq!(ws.recv().unwrap(), None);
    let close = ws.close_frame().unwrap();
    assert_eq!(
        (close.code, close.reason.as_str()),
        (Some(4001), "done here")
    );
    srv.join();
}

#[test]
fn a_server_that_never_ends_tcp_is_given_up_on_after_the_close_timeout() {
    let srv = Scripted::start(|mut s| {
        let accept = read_request(&mut s);
        s.write_all(upgrade_response(&accept).as_bytes()).unwrap();
        assert_eq!(read_client_frame(&mut s).1, op::CLOSE);
        s.write_all(&server_frame(true, op::CLOSE, &[0x03, 0xE8]))
            .unwrap();
        // Hold TCP open until the client gives up.
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).unwrap(), 0, "the client ends TCP itself");
    });
    let mut cfg = config();
    cfg.close_timeout = Duration::from_millis(300);
    let mut ws = Client::connect_with(&srv.url(), &cfg).unwrap();
    let t = Instant::now();
    ws.close(1000, "").unwrap();
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "{took:?}"
    );
    srv.join();
}

fn fails_with(bytes: Vec<u8>, code: u16) -> ClientError {
    let srv = Scripted::start(move |mut s| {
        let accept = read_request(&mut s);
        s.write_all(upgrade_response(&accept).as_bytes()).unwrap();
        s.write_all(&bytes).unwrap();
        let (_, opcode, payload) = read_client_frame(&mut s);
        assert_eq!(opcode, op::CLOSE);
        assert_eq!(payload, code.to_be_bytes().to_vec());
        // The server ends TCP; the client was waiting for it.
    });
    let mut ws = Client::connect_with(&srv.url(), &config()).unwrap();
    let err = loop {
        match ws.recv() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("closed without an error"),
            Err(e) => break e,
        }
    };
    srv.join();
    assert!(ws.is_closed());
    err
}

#[test]
fn broken_server_frames_fail_with_their_close_code() {
    let masked = common::encode_raw(0x81, b"x", Some([1, 2, 3, 4]));
    assert!(matches!(fails_with(masked, 1002), ClientError::Protocol(_)));
    let bad_utf8 = server_frame(true, op::TEXT, &[b'o', b'k', 0xFF]);
    assert!(matches!(
        fails_with(bad_utf8, 1007),
        ClientError::Protocol(_)
    ));
    let reserved = common::encode_raw(0xC1, b"x", None);
    assert!(matches!(
        fails_with(reserved, 1002),
        ClientError::Protocol(_)
    ));
}

#[test]
fn a_failure_inside_a_long_message_drains_it_rather_than_resetting() {
    // The message is over the client's limit (1009), and its bytes fill
    // the client's read buffer at the moment it fails.
    const LEN: usize = 300_000;
    let srv = Scripted::start(|mut s| {
        let accept = read_request(&mut s);
        s.write_all(upgrade_response(&accept).as_bytes()).unwrap();
        let mut m = common::encode_raw(0x82, &[], None);
        m.truncate(1);
        m.push(127);
        m.extend_from_slice(&(LEN as u64).to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, LEN));
        // All of it goes out: the client reads what follows its failure.
        s.write_all(&m)
            .expect("the client drains the message, no reset");
        assert_eq!(
            read_client_frame(&mut s),
            (true, op::CLOSE, 1009u16.to_be_bytes().to_vec())
        );
        s.write_all(&server_frame(true, op::CLOSE, &[0x03, 0xF1]))
            .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).expect("a FIN, not a reset"), 0);
    });
    let mut cfg = config().max_message(1000);
    cfg.read_buffer = 4096;
    let mut ws = Client::connect_with(&srv.url(), &cfg).unwrap();
    match ws.recv() {
        Err(ClientError::Protocol(e)) => assert_eq!(e.close_code(), 1009),
        other => panic!("{other:?}"),
    }
    srv.join();
}

#[test]
fn tcp_ending_without_a_close_is_an_error() {
    let srv = Scripted::start(|mut s| {
        let accept = read_request(&mut s);
        s.write_all(upgrade_response(&accept).as_bytes()).unwrap();
    });
    let mut ws = Client::connect_with(&srv.url(), &config()).unwrap();
    srv.join();
    match ws.recv() {
        Err(ClientError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof),
        other => panic!("{other:?}"),
    }
    assert!(ws.is_closed());
}

#[test]
fn a_read_timeout_mid_message_leaves_the_connection_usable() {
    let srv = Scripted::start(|mut s| {
        let accept = read_request(&mut s);
        s.write_all(upgrade_response(&accept).as_bytes()).unwrap();
        let mut f = server_frame(false, op::TEXT, "ab€".as_bytes());
        f.extend(server_frame(true, op::CONT, b"cd"));
        // Stop inside the euro sign, then send the rest later.
        s.write_all(&f[..5]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        s.write_all(&f[5..]).unwrap();
        assert_eq!(read_client_frame(&mut s).1, op::CLOSE);
        s.write_all(&server_frame(true, op::CLOSE, &[0x03, 0xE8]))
            .unwrap();
    });
    let mut ws = Client::connect_with(&srv.url(), &config()).unwrap();
    ws.set_read_timeout(Some(Duration::from_millis(50)));
    match ws.recv() {
        Err(ClientError::Io(e)) => assert!(matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )),
        other => panic!("{other:?}"),
    }
    ws.set_read_timeout(Some(TIMEOUT));
    assert_eq!(ws.recv().unwrap(), Some(Message::Text("ab€cd")));
    ws.close(1000, "").unwrap();
    srv.join();
}

// ---------------------------------------------------------------------------
// `zerows client`

fn cli(args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_zerows"))
        .arg("client")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        assert!(Instant::now() < deadline, "zerows client did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn cli_scripted_echo_and_errors() {
    let server = TestServer::start();
    let out = cli(&[&server.url()], "hi\nthere é\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "hi\nthere é\n");

    let out = cli(&["--binary", &server.url()], "bin\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"bin\n");

    let url = format!("ws://{}/missing", server.addr);
    let out = cli(&[&url], "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("404"),
        "{out:?}"
    );

    let out = cli(&["wss://127.0.0.1:1/"], "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TLS"),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------
// permessage-deflate

fn deflate_config() -> ClientConfig {
    config().deflate(DeflateOffer::default())
}

/// JSON-like text, compressible, different for every `seed`.
fn records(n: usize, seed: usize) -> String {
    (0..n)
        .map(|i| format!("{{\"id\":{i},\"seed\":{seed},\"name\":\"caf\u{e9} \u{1F600}\"}},"))
        .collect()
}

#[test]
fn compressed_echo_with_our_server() {
    let server = TestServer::start();
    let mut ws = Client::connect_with(&server.url(), &deflate_config()).unwrap();
    ws.set_read_timeout(Some(TIMEOUT));
    let terms = ws.deflate().expect("agreed");
    assert!(!terms.server_takeover, "our server never keeps its context");
    for (i, n) in [0, 1, 3, 4, 50, 5_000].into_iter().enumerate() {
        let text = records(n, i);
        ws.send_text(&text).unwrap();
        assert_eq!(ws.recv().unwrap(), Some(Message::Text(&text[..])));
    }
    for data in [pattern(200_000, 7), vec![7u8; 16 << 20]] {
        ws.send_binary(&data).unwrap();
        match ws.recv().unwrap() {
            Some(Message::Binary(b)) => assert!(b == data, "{} bytes", data.len()),
            other => panic!("{other:?}"),
        }
    }
    // Streamed, a large compressed echo comes in bounded pieces.
    let big = records(100_000, 9);
    ws.send_text(&big).unwrap();
    let mut got = String::new();
    let mut pieces = 0;
    loop {
        match ws.recv_event().unwrap() {
            Some(Incoming::Piece(p)) => {
                assert!(p.data.len() <= 64 << 10, "a piece of {}", p.data.len());
                got.push_str(p.text().expect("whole UTF-8"));
                pieces += 1;
                if p.last {
                    break;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(got == big && pieces > 10, "{pieces} pieces");
    ws.close(1000, "").unwrap();
}

/// Read one client frame whose first may carry RSV1; unmasked.
fn read_compressed_frame(s: &mut TcpStream) -> (bool, bool, u8, Vec<u8>) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    loop {
        if let Some(h) = frame::decode_with(&buf, Role::FromClient, frame::RSV1).unwrap() {
            let mut p = vec![0u8; h.len as usize];
            s.read_exact(&mut p).unwrap();
            zerows::mask::apply(&mut p, h.mask.unwrap(), 0);
            return (h.compressed, h.fin, h.opcode, p);
        }
        assert_eq!(s.read(&mut b).unwrap(), 1, "client ended TCP mid-frame");
        buf.push(b[0]);
    }
}

/// A server that keeps its context and limits ours to 10 bits: its
/// messages refer back into earlier ones, and what we compress reads with
/// a 10-bit window.
#[test]
fn a_scripted_server_with_context_takeover_and_a_small_client_window() {
    use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
    let text = records(40, 1);
    let sent = text.clone();
    let srv = Scripted::start(move |mut s| {
        let (head, accept) = read_request_head(&mut s);
        assert!(
            head.contains(
                "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
            ),
            "{head}"
        );
        let r = upgrade_response(&accept).replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=10\r\n\r\n",
        );
        s.write_all(r.as_bytes()).unwrap();
        let mut z = Compress::new(Compression::new(6), false);
        for i in 0..3 {
            let mut out = Vec::with_capacity(sent.len() + 64);
            z.compress_vec(sent.as_bytes(), &mut out, FlushCompress::Sync)
                .unwrap();
            out.truncate(out.len() - 4);
            if i > 0 {
                assert!(out.len() < 40, "refers back: {} bytes", out.len());
            }
            let mut f = server_frame(true, op::TEXT, &out);
            f[0] |= frame::RSV1;
            s.write_all(&f).unwrap();
        }
        // The client's own message, compressed for a 10-bit window.
        let (rsv1, fin, opcode, p) = read_compressed_frame(&mut s);
        assert!(rsv1 && fin && opcode == op::TEXT);
        let mut d = Decompress::new_with_window_bits(false, 10);
        let mut input = p.clone();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(sent.len() * 2);
        d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(out, sent.as_bytes());
        assert!(p.len() < sent.len() / 3);
        let (_, _, opcode, _) = read_compressed_frame(&mut s);
        assert_eq!(opcode, op::CLOSE);
        s.write_all(&server_frame(true, op::CLOSE, &[0x03, 0xE8]))
            .unwrap();
    });
    let mut ws = Client::connect_with(&srv.url(), &deflate_config()).unwrap();
    ws.set_read_timeout(Some(TIMEOUT));
    let terms = ws.deflate().expect("agreed");
    assert!(
        terms.server_takeover && terms.client_window == 10,
        "{terms:?}"
    );
    for _ in 0..3 {
        assert_eq!(ws.recv().unwrap(), Some(Message::Text(&text[..])));
    }
    ws.send_text(&text).unwrap();
    ws.close(1000, "").unwrap();
    srv.join();
}
