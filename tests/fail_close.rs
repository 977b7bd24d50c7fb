//! Failing a connection over a real socket (RFC 6455 §7.1.7): when the
//! refused frame's payload would have to be skipped unread, the server
//! sends its close and then closes TCP at once; when the byte stream can
//! still be followed, it waits for the client's close and completes the
//! handshake with it. The close timeout is set far above what the tests
//! allow, so only the behaviour under test can pass them.

mod common;

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use common::{close_payload, frame, header_only, op, Raw, TestServer};

/// Far longer than any wait below.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// How soon TCP must be closed when there is no close to wait for.
const PROMPT_EOF: Duration = Duration::from_secs(3);

fn server() -> TestServer {
    TestServer::start_with(|c| c.settings.close_timeout = CLOSE_TIMEOUT)
}

#[test]
fn a_frame_refused_at_its_header_ends_tcp_at_once() {
    let server = server();
    for (what, header, code) in [
        ("binary 2^40", header_only(true, op::BINARY, 1 << 40), 1009),
        ("text 2^40", header_only(true, op::TEXT, 1 << 40), 1009),
        (
            "continuation 2^40 with no message",
            header_only(true, op::CONT, 1 << 40),
            1002,
        ),
    ] {
        let mut c = Raw::open(server.addr);
        c.send(&header);
        // The client's close: inside the announced payload, as far as the
        // server can tell.
        c.send(&frame(true, op::CLOSE, &close_payload(1000, b"")));
        let t = Instant::now();
        c.stream.set_read_timeout(Some(PROMPT_EOF)).unwrap();
        c.expect_close(Some(code));
        c.expect_eof();
        assert!(
            t.elapsed() < PROMPT_EOF,
            "{what}: TCP closed after {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn invalid_utf8_waits_for_the_client_close_and_completes_the_handshake() {
    let server = server();
    let mut c = Raw::open(server.addr);
    c.send_frame(true, op::TEXT, b"caf\xc3(");
    c.expect_close(Some(1007));
    // The server waits: no end of stream while our close is not sent.
    c.stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut b = [0u8; 16];
    match c.stream.read(&mut b) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("the server did not wait for our close: {other:?}"),
    }
    // Our close completes the handshake: TCP ends well before the close
    // timeout, so the server read it.
    let t = Instant::now();
    c.send(&frame(true, op::CLOSE, &close_payload(1007, b"")));
    c.stream.set_read_timeout(Some(PROMPT_EOF)).unwrap();
    c.expect_eof();
    assert!(
        t.elapsed() < PROMPT_EOF,
        "TCP closed after {:?}",
        t.elapsed()
    );
}
