//! The services API through the protocol core: how messages reach a
//! service for each delivery, what its sends look like on the wire and in
//! which order, and the limits on them. Every conversation is also fed
//! split at every byte where it is short enough.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::context::SendStatus;
use crate::events::Bound;
use crate::metrics::Metrics;
use crate::service::{Request, Service};

/// What a test service saw, shared with the test.
type Log = Rc<RefCell<Vec<String>>>;

/// A service with per-connection state, driven the way the loop drives it.
struct Stateful<S: Service> {
    svc: S,
    state: Option<S::State>,
    metrics: Metrics,
}

impl<S: Service> Stateful<S> {
    fn new(svc: S) -> Self {
        Stateful {
            svc,
            state: None,
            metrics: Metrics::default(),
        }
    }
    fn bound(&mut self) -> Bound<'_, S> {
        Bound {
            service: &mut self.svc,
            state: &mut self.state,
            metrics: &mut self.metrics,
        }
    }
}

impl<S: Service> Events for Stateful<S> {
    fn accept(&mut self, req: &Request<'_>) -> Result<(), HandshakeError> {
        self.bound().accept(req)
    }
    fn open(&mut self, req: &Request<'_>, cx: &mut Context<'_>) {
        self.bound().open(req, cx)
    }
    fn refused(&mut self, err: HandshakeError) {
        self.bound().refused(err)
    }
    fn message(&mut self, kind: MessageKind, cx: &mut Context<'_>) -> Delivery {
        self.bound().message(kind, cx)
    }
    fn payload(&mut self, n: usize, echoed: bool) {
        self.bound().payload(n, echoed)
    }
    fn piece(&mut self, data: &[u8], cx: &mut Context<'_>) {
        self.bound().piece(data, cx)
    }
    fn end(&mut self, cx: &mut Context<'_>) {
        self.bound().end(cx)
    }
    fn whole(&mut self, msg: Message<'_>, cx: &mut Context<'_>) {
        self.bound().whole(msg, cx)
    }
    fn drain(&mut self, cx: &mut Context<'_>) {
        self.bound().drain(cx)
    }
    fn timer(&mut self, cx: &mut Context<'_>) {
        self.bound().timer(cx)
    }
    fn peer_closed(&mut self, code: Option<u16>) {
        self.bound().peer_closed(code)
    }
    fn close_sent(&mut self, code: u16) {
        self.bound().close_sent(code)
    }
    fn page(&self) -> Option<&'static [u8]> {
        self.svc.page()
    }
}

fn frag(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(fin, op, payload, [0x5a, 0x01, 0xc3, 0x7e])
}

/// Feed `input` whole, then split at every byte (when short), to a fresh
/// driver made by `make`; every run must put the same bytes on the wire.
fn wire_every_split<E: Events>(input: &[u8], make: impl Fn() -> Driver<E>) -> Vec<u8> {
    let mut d = make();
    d.feed(input);
    let whole = d.wire;
    if input.len() <= 600 {
        for cut in 1..input.len() {
            let mut d = make();
            d.feed(&input[..cut]);
            d.feed(&input[cut..]);
            assert_eq!(d.wire, whole, "output differs when split at {cut}");
        }
    }
    whole
}

/// "Received: " + each text message, collected whole.
struct Received;

impl Service for Received {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}
    fn whole(&mut self, _st: &mut (), msg: Message<'_>, cx: &mut Context<'_>) {
        let st = match msg {
            Message::Text(t) => cx.send_text_parts(&["Received: ", t]),
            Message::Binary(b) => cx.send_binary(b),
        };
        assert_eq!(st, SendStatus::Sent);
    }
}

#[test]
fn collected_messages_arrive_whole_in_one_frame_or_many() {
    let snow = "snow ☃ and 很厉害 🎉";
    let b = snow.as_bytes();
    // The snowman (3 bytes) is cut between the first two frames.
    let cut = snow.find('☃').unwrap() + 1;
    let input = open_with(&[
        msg(opcode::TEXT, "héllo".as_bytes()),
        frag(false, opcode::TEXT, &b[..cut]),
        msg(opcode::PING, b"p"),
        frag(false, opcode::CONTINUATION, &b[cut..cut + 5]),
        frag(true, opcode::CONTINUATION, &b[cut + 5..]),
        msg(opcode::BINARY, &[0, 1, 2, 0xff]),
        msg(opcode::TEXT, b""),
    ]);
    let wire = wire_every_split(&input, || Driver::with(small(4608), 4608, Received));
    let seen = observe(&wire);
    assert_eq!(seen.status, 101);
    assert!(!seen.junk);
    assert_eq!(
        seen.messages,
        vec![
            (opcode::TEXT, "Received: héllo".as_bytes().to_vec()),
            (opcode::TEXT, format!("Received: {snow}").into_bytes()),
            (opcode::BINARY, vec![0, 1, 2, 0xff]),
            (opcode::TEXT, b"Received: ".to_vec()),
        ]
    );
    assert_eq!(seen.pongs, vec![b"p".to_vec()]);
}

#[test]
fn a_message_longer_than_a_read_buffer_is_collected_whole() {
    let big: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mut d = Driver::with(small(4608), 4608, Received);
    d.feed(&open_with(&[msg(opcode::TEXT, &big)]));
    let seen = observe(&d.wire);
    let mut want = b"Received: ".to_vec();
    want.extend_from_slice(&big);
    assert_eq!(seen.messages, vec![(opcode::TEXT, want)]);
    assert_eq!(d.pool.in_use(), 0, "the gathering buffer went back");
}

#[test]
fn a_collected_message_over_its_limit_closes_with_1009_from_the_header() {
    let s = Settings {
        max_collected: 10,
        ..small(4608)
    };
    // Ten bytes pass; one more, even split over frames, does not.
    let input = open_with(&[
        msg(opcode::TEXT, b"0123456789"),
        frag(false, opcode::TEXT, b"01234"),
        frag(true, opcode::CONTINUATION, b"567890"),
    ]);
    let mut d = Driver::with(s, 4608, Received);
    d.feed(&input);
    let seen = observe(&d.wire);
    assert_eq!(
        seen.messages,
        vec![(opcode::TEXT, b"Received: 0123456789".to_vec())]
    );
    assert_eq!(seen.close, Some(Some(1009)));
    assert_eq!(d.pool.in_use(), 0);
}

/// Streams every message to its log: pieces, then "end".
struct Streamer(Log);

impl Service for Streamer {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}
    fn message(&mut self, _st: &mut (), kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        self.0.borrow_mut().push(format!("{kind:?}"));
        Delivery::Stream
    }
    fn piece(&mut self, _st: &mut (), data: &[u8], _cx: &mut Context<'_>) {
        self.0
            .borrow_mut()
            .push(String::from_utf8_lossy(data).into_owned());
    }
    fn end(&mut self, _st: &mut (), _cx: &mut Context<'_>) {
        self.0.borrow_mut().push("end".into());
    }
}

#[test]
fn streamed_messages_arrive_in_validated_pieces_and_nothing_is_sent() {
    let log = Log::default();
    let mut d = Driver::with(small(4608), 4608, Streamer(log.clone()));
    d.feed(&open_with(&[
        frag(false, opcode::TEXT, b"ab"),
        frag(true, opcode::CONTINUATION, b"cd"),
        msg(opcode::BINARY, b"xyz"),
    ]));
    let seen = observe(&d.wire);
    assert!(seen.messages.is_empty());
    let got: String = log.borrow().join("|");
    assert_eq!(got, "Text|ab|cd|end|Binary|xyz|end");
}

/// Echoes, and in every piece of a message sends a note.
pub(super) struct EchoNotes;

impl Service for EchoNotes {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}
    fn message(&mut self, _st: &mut (), _kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        Delivery::EchoAndStream
    }
    fn piece(&mut self, _st: &mut (), data: &[u8], cx: &mut Context<'_>) {
        let _ = cx.send_binary_parts(&[b"note:", data]);
    }
    fn end(&mut self, _st: &mut (), cx: &mut Context<'_>) {
        let _ = cx.send_text("end");
    }
}

#[test]
fn sends_during_a_half_sent_echo_wait_for_its_last_frame() {
    let input = open_with(&[
        frag(false, opcode::TEXT, b"one"),
        frag(false, opcode::CONTINUATION, b"two"),
        frag(true, opcode::CONTINUATION, b"three"),
        msg(opcode::TEXT, b"solo"),
    ]);
    let wire = wire_every_split(&input, || Driver::with(small(4608), 4608, EchoNotes));
    let seen = observe(&wire);
    // `observe` flags a data frame inside a fragmented message as junk.
    assert!(!seen.junk);
    let m: Vec<(u8, &[u8])> = seen.messages.iter().map(|(o, p)| (*o, &p[..])).collect();
    assert_eq!(
        m,
        vec![
            (opcode::TEXT, &b"onetwothree"[..]),
            (opcode::BINARY, b"note:one"),
            (opcode::BINARY, b"note:two"),
            (opcode::BINARY, b"note:three"),
            (opcode::TEXT, b"end"),
            (opcode::TEXT, b"solo"),
            (opcode::BINARY, b"note:solo"),
            (opcode::TEXT, b"end"),
        ]
    );
}

/// Exercises the rest of the context on each text message: "stream"
/// streams three pieces, "big" sends a 10 KiB binary message, "ping",
/// "close", "misuse" tries what is refused. Records statuses.
struct Tools(Log);

impl Service for Tools {
    type State = ();
    fn open(&mut self, req: &Request<'_>, cx: &mut Context<'_>) {
        self.0.borrow_mut().push(format!(
            "open {} {:?} {:?} {:?} {}",
            req.path(),
            req.query(),
            req.header("host")
                .map(|h| String::from_utf8_lossy(h).into_owned()),
            cx.protocol(),
            cx.id().serial(),
        ));
    }
    fn whole(&mut self, _st: &mut (), msg: Message<'_>, cx: &mut Context<'_>) {
        let Message::Text(t) = msg else { return };
        let log = &mut *self.0.borrow_mut();
        match t {
            "stream" => {
                log.push(format!("{:?}", cx.begin(MessageKind::Text)));
                log.push(format!("{:?}", cx.piece("a☃".as_bytes())));
                log.push(format!("{:?}", cx.send_text("no")));
                log.push(format!("{:?}", cx.piece(b"b")));
                log.push(format!("{:?}", cx.finish(b"c")));
                // Left open: ended when the callback returns.
                let _ = cx.begin(MessageKind::Binary);
                let _ = cx.piece(b"open");
            }
            "big" => {
                let big = vec![7u8; 10 * 1024];
                log.push(format!("{:?}", cx.send_binary(&big)));
            }
            "ping" => log.push(format!("{:?}", cx.ping(b"hi"))),
            "close" => {
                log.push(format!("{:?}", cx.close(4000, "bye")));
                log.push(format!("{:?}", cx.send_text("after")));
                log.push(format!("{:?}", cx.is_open()));
            }
            "misuse" => {
                log.push(format!("{:?}", cx.piece(b"no stream")));
                log.push(format!("{:?}", cx.ping(&[0; 126])));
                log.push(format!("{:?}", cx.close(1005, "")));
                log.push(format!("{:?}", cx.close(1000, &"x".repeat(124))));
                let _ = cx.begin(MessageKind::Text);
                log.push(format!("{:?}", cx.piece(b"\xff")));
                log.push(format!("{:?}", cx.finish(b"ok")));
            }
            _ => log.push(format!("{:?}", cx.send_text(t))),
        }
    }
}

fn tools_input(texts: &[&str]) -> Vec<u8> {
    let req = String::from_utf8(request())
        .unwrap()
        .replacen("GET / ", "GET /?room=7&x ", 1);
    let mut v = req.into_bytes();
    for t in texts {
        v.extend_from_slice(&msg(opcode::TEXT, t.as_bytes()));
    }
    v
}

#[test]
fn a_context_streams_pings_closes_and_refuses_misuse() {
    let log = Log::default();
    let input = tools_input(&["stream", "misuse", "ping", "big", "close", "ignored"]);
    let mut d = Driver::with(small(16384), 16384, Tools(log.clone()));
    d.feed(&input);
    let seen = observe(&d.wire);
    assert!(!seen.junk);
    let m: Vec<(u8, Vec<u8>)> = seen.messages.clone();
    assert_eq!(m[0], (opcode::TEXT, "a☃bc".as_bytes().to_vec()));
    assert_eq!(m[1], (opcode::BINARY, b"open".to_vec()));
    assert_eq!(m[2], (opcode::TEXT, b"ok".to_vec()));
    assert_eq!(m[3], (opcode::BINARY, vec![7u8; 10 * 1024]));
    assert_eq!(m.len(), 4);
    assert_eq!(seen.pings, vec![b"hi".to_vec()]);
    assert_eq!(seen.close, Some(Some(4000)));
    assert_eq!(d.conn.state(), State::CloseSent);
    let log = log.borrow();
    assert_eq!(
        log[0],
        "open / Some(\"room=7&x\") Some(\"localhost:9001\") None 7"
    );
    assert_eq!(
        &log[1..],
        [
            "Sent", "Sent", "Refused", "Sent", "Sent", // stream
            "Refused", "Refused", "Refused", "Refused", "Refused", "Sent", // misuse
            "Sent", // ping
            "Sent", // big
            "Sent", "Closed", "false", // close
        ]
    );
    // The peer's close completes the handshake.
    d.feed(&msg(opcode::CLOSE, &4000u16.to_be_bytes()));
    assert!(d.conn.is_closed());
}

#[test]
fn a_send_over_the_backlog_limit_is_dropped_not_queued() {
    let log = Log::default();
    let mut d = Driver::with(small(16384), 16384, Tools(log.clone()));
    d.max_backlog = 4096;
    d.feed(&tools_input(&["big", "small"]));
    let seen = observe(&d.wire);
    assert_eq!(seen.messages, vec![(opcode::TEXT, b"small".to_vec())]);
    assert_eq!(log.borrow()[1..], ["Dropped", "Sent"]);
}

/// Counts messages per connection and closes after three.
struct Counter;

impl Service for Counter {
    type State = u32;
    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) -> u32 {
        0
    }
    fn whole(&mut self, n: &mut u32, _msg: Message<'_>, cx: &mut Context<'_>) {
        *n += 1;
        let mut b = [0u8; 1];
        b[0] = b'0' + *n as u8;
        let _ = cx.send_text(std::str::from_utf8(&b).unwrap());
        if *n == 3 {
            let _ = cx.close(1000, "three");
        }
    }
}

#[test]
fn per_connection_state_lives_from_open_to_close() {
    let mut d = Driver::with(small(4608), 4608, Stateful::new(Counter));
    let m = msg(opcode::TEXT, b"x");
    d.feed(&open_with(&[m.clone(), m.clone(), m.clone(), m]));
    let seen = observe(&d.wire);
    let texts: Vec<&[u8]> = seen.messages.iter().map(|(_, p)| &p[..]).collect();
    assert_eq!(texts, [b"1", b"2", b"3"]);
    assert_eq!(seen.close, Some(Some(1000)));
    assert_eq!(d.svc.state, Some(3));
    assert_eq!(
        d.svc.metrics.messages_in, 3,
        "the fourth, after our close, is skipped"
    );
    assert_eq!(
        d.svc.metrics.close_sent[crate::metrics::code_index(Some(1000))],
        1
    );
}

#[test]
fn a_plain_get_gets_the_page_only_from_a_service_that_has_one() {
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut d = Driver::with(small(4608), 4608, Received);
    d.feed(get);
    assert!(
        d.wire.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&d.wire)
    );
    let mut d = Driver::new(small(4608), 4608);
    d.feed(get);
    assert!(d.wire.starts_with(b"HTTP/1.1 200 OK"));
    assert!(d.wire.ends_with(crate::http::PAGE));
}

/// Takes every path under /chat/, refuses the rest.
struct Rooms(Log);

impl Service for Rooms {
    type State = ();
    fn accept(&mut self, req: &Request<'_>) -> Result<(), HandshakeError> {
        match req.path().strip_prefix("/chat/") {
            Some(room) if !room.is_empty() => Ok(()),
            _ => Err(HandshakeError::NotFound),
        }
    }
    fn open(&mut self, req: &Request<'_>, _cx: &mut Context<'_>) {
        self.0.borrow_mut().push(req.path().to_owned());
    }
}

#[test]
fn with_any_path_the_service_chooses_which_paths_upgrade() {
    let s = Settings {
        handshake: HandshakeConfig {
            path: crate::handshake::ANY_PATH.into(),
            ..small(4608).handshake
        },
        ..small(4608)
    };
    let upgrade = |path: &str| {
        String::from_utf8(request())
            .unwrap()
            .replacen("GET / ", &format!("GET {path} "), 1)
            .into_bytes()
    };
    let log = Log::default();
    for (path, status) in [("/chat/rust", 101), ("/chat/", 404), ("/other", 404)] {
        let mut d = Driver::with(s.clone(), 4608, Rooms(log.clone()));
        d.feed(&upgrade(path));
        assert_eq!(observe(&d.wire).status, status, "{path}");
    }
    assert_eq!(*log.borrow(), ["/chat/rust"]);
    // Metrics are still the shell's to answer.
    let mut d = Driver::with(s, 4608, Rooms(log.clone()));
    d.feed(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(d.conn.take_route(), Some(Route::Metrics));
}

/// Streams a message whose second piece is too large for the backlog
/// limit, then sends a whole message.
struct Overflow(Log);

impl Service for Overflow {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}
    fn whole(&mut self, _st: &mut (), _msg: Message<'_>, cx: &mut Context<'_>) {
        let big = [b'x'; 3000];
        let log = &mut *self.0.borrow_mut();
        log.push(format!("{:?}", cx.begin(MessageKind::Binary)));
        log.push(format!("{:?}", cx.piece(b"first")));
        log.push(format!("{:?}", cx.piece(&big)));
        log.push(format!("{:?}", cx.finish(b"never")));
        log.push(format!("{:?}", cx.send_text("after")));
    }
}

#[test]
fn a_stream_cut_short_by_the_backlog_limit_still_ends_on_the_wire() {
    let log = Log::default();
    let mut d = Driver::with(small(4608), 4608, Overflow(log.clone()));
    d.max_backlog = 1000;
    d.feed(&open_with(&[msg(opcode::TEXT, b"go")]));
    let seen = observe(&d.wire);
    assert!(!seen.junk, "a frame landed inside the cut stream");
    assert_eq!(
        seen.messages,
        vec![
            (opcode::BINARY, b"first".to_vec()),
            (opcode::TEXT, b"after".to_vec()),
        ]
    );
    assert_eq!(
        *log.borrow(),
        ["Sent", "Sent", "Dropped", "Refused", "Sent"]
    );
}
