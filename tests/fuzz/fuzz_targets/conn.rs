//! Arbitrary client bytes after a valid upgrade request, through the
//! connection state machine driven like the event loop drives it (the
//! `Driver` of src/conn/tests.rs).
//!
//! Input layout:
//! * byte 0: echo chunk size (`chunk_size`);
//! * byte 1: extra read buffer bytes beyond the minimum the server accepts;
//! * byte 2: `max_message`;
//! * byte 3: a second chunk size, for the differential run;
//! * byte 4: low 4 bits: how many piece-size bytes follow; bit 7: the
//!   request offers permessage-deflate, bits 6–5 how (see `OFFERS`: with or
//!   without `client_max_window_bits`, declined by the server's
//!   configuration, asking for a smaller server window); bit 4 unused;
//! * those bytes: sizes of the pieces the input arrives in (cycled);
//! * the rest: what the client sends after its upgrade request.
//!
//! Invariants: nothing panics and the read buffer never fills up without
//! progress; the output is a 101 (naming permessage-deflate exactly when
//! it was offered and enabled) followed by well-formed server frames
//! (unmasked, final short control frames, continuation sequencing, RSV1
//! only on the first frame of a message and only with permessage-deflate,
//! valid UTF-8 text once inflated, a close with a sendable code only at the
//! end and only if the connection left `Open`); the same bytes fed whole
//! give the same output bytes and state; the echoed messages are the
//! client's messages, in order, inflated when compressed (`common::model`,
//! a reference of its own, which also says how the conversation must end:
//! open, closed by the client, or failed with 1002, 1007 or 1009); a
//! compressed message is echoed compressed, its frames' payloads together
//! being exactly the client's compressed payload, and an echo under way is
//! a prefix of it; all messages and pings before the end are answered;
//! another chunk size gives the same messages, close code and state (the
//! close and state may differ only where the model allows several codes or
//! a fault in an unfinished compressed chunk); timeouts then always bring
//! the connection to `Closed`; once released, no inflater stays lent.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[path = "common/mod.rs"]
mod common;

use common::{model, request_offering, End, RefInflater, Sent, REQUEST, STEP_MARGIN};
use zerows::buffer::MsgPool;
use zerows::buffer::{ReadBuf, HEADROOM};
use zerows::conn::{pump, Conn, Millis, Settings, State, CHUNK_SLACK};
use zerows::context::Tx;
use zerows::deflate::Codec;
use zerows::frame::{self, opcode, Role};
use zerows::handshake::{find_header_end, HandshakeConfig};
use zerows::output::Output;
use zerows::ConnId;
use zerows::DeflateConfig;
use zerows::Echo;

const MAX_HEAD: usize = 1024;

fn chunk_size(b: u8) -> usize {
    match b >> 6 {
        0 => 1 + (b & 7) as usize,
        1 => 1 + (b & 0x3F) as usize,
        2 => 100 + (b & 0x3F) as usize, // around the 125/126 length forms
        _ => [256, 1000, 4096, 65530, 65535, 65536, 70000, 16384][(b & 7) as usize],
    }
}

/// A permessage-deflate offer, and whether the server's configuration
/// accepts one.
#[derive(Debug, Clone, Copy)]
struct Offer {
    value: &'static str,
    enabled: bool,
}

const OFFERS: [Offer; 4] = [
    Offer {
        value: "permessage-deflate",
        enabled: true,
    },
    Offer {
        value: "permessage-deflate; client_max_window_bits",
        enabled: true,
    },
    Offer {
        value: "permessage-deflate; client_max_window_bits",
        enabled: false,
    },
    // The client's inflater is smaller than its compressor's window: a
    // server that honours it cannot echo compressed messages as they came.
    Offer {
        value: "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
        enabled: true,
    },
];

fn settings(chunk: usize, max_msg: u8, offer: Option<Offer>) -> Settings {
    Settings {
        chunk_size: chunk,
        max_message: [16 << 20, 0, 1, 7, 100, 126, 1000, 65536][(max_msg & 7) as usize],
        handshake: HandshakeConfig {
            max_header_bytes: MAX_HEAD,
            deflate: DeflateConfig {
                enabled: offer.map_or(true, |o| o.enabled),
                ..DeflateConfig::default()
            },
            ..HandshakeConfig::default()
        },
        ..Settings::default()
    }
}

/// The smallest read buffer `server::Config::validate` accepts, plus `extra`.
fn buf_size(s: &Settings, extra: usize) -> usize {
    HEADROOM + (s.chunk_size + CHUNK_SLACK).max(s.handshake.max_header_bytes + 1) + extra
}

struct Driver {
    conn: Conn,
    rb: ReadBuf,
    out: Output,
    pool: MsgPool,
    codec: Codec,
    s: Settings,
    wire: Vec<u8>,
    now: Millis,
}

impl Driver {
    fn new(s: Settings, buf: usize) -> Driver {
        let now = 1_000;
        Driver {
            conn: Conn::new(now, &s, ConnId::new(1, 1)),
            rb: ReadBuf::new(vec![0xEE; buf].into_boxed_slice()),
            out: Output::new(),
            pool: MsgPool::new(4, 1 << 20),
            codec: Codec::default(),
            s,
            wire: Vec::new(),
            now,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.conn.is_closed() {
                // The server stops reading a closed connection.
                return;
            }
            let spare = self.rb.spare();
            let n = spare.len().min(bytes.len());
            assert!(
                n > 0,
                "read buffer full with no progress (state {:?})",
                self.conn.state()
            );
            spare[..n].copy_from_slice(&bytes[..n]);
            self.rb.filled(n);
            bytes = &bytes[n..];
            let mut tx = Tx {
                out: &mut self.out,
                sink: &mut self.wire,
                pool: &mut self.pool,
                max_backlog: usize::MAX,
                sent: Default::default(),
                local: None,
                codec: &mut self.codec,
            };
            // A pass that left a compressed chunk for later (the inflate
            // budget) is followed by another, as the event loop does.
            loop {
                assert!(
                    pump(
                        &mut self.conn,
                        &mut self.rb,
                        &mut tx,
                        &self.s,
                        &mut Echo,
                        self.now
                    ),
                    "a vector never breaks"
                );
                if !tx.codec.take_yielded() {
                    break;
                }
            }
            assert!(
                self.codec.lent() <= 1,
                "one connection, at most one inflater"
            );
        }
    }

    /// Let time pass until the connection gives up; returns the states seen.
    fn expire(&mut self) {
        for _ in 0..4 {
            let Some(at) = self.conn.deadline() else {
                break;
            };
            self.now = self.now.max(at);
            self.out.clear();
            let mut tx = Tx {
                out: &mut self.out,
                sink: &mut self.wire,
                pool: &mut self.pool,
                max_backlog: usize::MAX,
                sent: Default::default(),
                local: None,
                codec: &mut self.codec,
            };
            self.conn.on_timeout(self.now, &mut tx, &self.s, &mut Echo);
            self.out.extend_vec(&[], &mut self.wire);
        }
    }

    /// The connection is gone: nothing it borrowed stays lent.
    fn release(mut self) {
        self.conn.release(&mut self.pool, &mut self.codec);
        assert_eq!(self.codec.lent(), 0, "an inflater still lent after release");
    }
}

fn run(input: &[u8], pieces: &[u8], s: &Settings, buf: usize) -> Driver {
    let mut d = Driver::new(s.clone(), buf);
    let mut at = 0;
    let mut i = 0;
    while at < input.len() {
        let n = if pieces.is_empty() {
            input.len()
        } else {
            let p = pieces[i % pieces.len()] as usize;
            i += 1;
            // Small pieces mostly, some large.
            if p >= 0xF0 {
                (p - 0xEF) * 1000
            } else {
                p + 1
            }
        };
        let end = (at + n).min(input.len());
        d.feed(&input[at..end]);
        at = end;
    }
    d
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    /// Whole messages, inflated if they came compressed.
    messages: Vec<(u8, Vec<u8>)>,
    /// Per message: its payload as sent (frames concatenated) if it came
    /// compressed.
    packed: Vec<Option<Vec<u8>>>,
    pongs: Vec<Vec<u8>>,
    pings: usize,
    close: Option<Option<u16>>,
    /// The message still under way at the end: opcode, payload so far,
    /// compressed.
    open: Option<(u8, Vec<u8>, bool)>,
    /// permessage-deflate was agreed, and compressed messages may go back
    /// as they came (the response's parameters allow it).
    deflate: Option<bool>,
}

/// The permessage-deflate response header, if any: whether the client's
/// compressed messages may be echoed as they came (no client context, and
/// the client's window no larger than its inflater's for ours).
fn agreed(head: &[u8]) -> Option<bool> {
    let head = std::str::from_utf8(head).expect("ASCII response head");
    let mut found = None;
    for line in head.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.eq_ignore_ascii_case("sec-websocket-extensions") {
            continue;
        }
        assert!(found.is_none(), "two extension headers");
        let mut params = value.split(';').map(str::trim);
        assert_eq!(params.next(), Some("permessage-deflate"), "{line}");
        let (mut no_context, mut client, mut server) = (false, 15u8, 15u8);
        for p in params {
            match p.split_once('=') {
                None if p == "client_no_context_takeover" => no_context = true,
                None if p == "server_no_context_takeover" => {}
                Some(("client_max_window_bits", v)) => client = v.parse().expect("window bits"),
                Some(("server_max_window_bits", v)) => server = v.parse().expect("window bits"),
                _ => panic!("unknown parameter in {line}"),
            }
        }
        assert!(
            (8..=15).contains(&client) && (8..=15).contains(&server),
            "{line}"
        );
        found = Some(no_context && client <= server);
    }
    found
}

/// Inflate a whole compressed server message (the server never takes its
/// context over: a fresh window each time).
fn inflate(p: &[u8]) -> Vec<u8> {
    let mut z = RefInflater::new((16 << 20) + STEP_MARGIN);
    z.feed(p);
    z.finish();
    assert!(
        !z.broken && !z.capped,
        "a compressed message echoed that does not inflate"
    );
    z.out
}

/// Parse the server's output strictly.
fn observe(wire: &[u8]) -> Seen {
    let head = find_header_end(wire, 0).expect("response head");
    assert!(wire.starts_with(b"HTTP/1.1 101 "), "not a 101");
    let mut seen = Seen {
        deflate: agreed(&wire[..head]),
        ..Seen::default()
    };
    let rsv = if seen.deflate.is_some() {
        frame::RSV1
    } else {
        0
    };
    let mut rest = &wire[head..];
    let mut cur: Option<(u8, Vec<u8>, bool)> = None;
    while !rest.is_empty() {
        assert!(seen.close.is_none(), "bytes after the close frame");
        let h = match frame::decode_with(rest, Role::FromServer, rsv) {
            Ok(Some(h)) => h,
            other => panic!(
                "bad server frame header: {other:?} at {:02x?}",
                &rest[..rest.len().min(16)]
            ),
        };
        assert_eq!(
            frame::header_len(h.len, false),
            h.header_len,
            "length not minimally encoded"
        );
        let total = h.header_len + h.len as usize;
        assert!(rest.len() >= total, "truncated server frame");
        let p = &rest[h.header_len..total];
        match h.opcode {
            opcode::PONG => seen.pongs.push(p.to_vec()),
            opcode::PING => {
                assert!(p.is_empty());
                seen.pings += 1;
            }
            opcode::CLOSE => {
                assert!(p.len() == 0 || p.len() == 2, "close payload {p:?}");
                let code = (p.len() == 2).then(|| u16::from_be_bytes([p[0], p[1]]));
                if let Some(c) = code {
                    assert!(
                        zerows::error::close_code::is_valid_received(c),
                        "close code {c}"
                    );
                }
                seen.close = Some(code);
            }
            opcode::CONTINUATION => {
                let (_, data, _) = cur.as_mut().expect("continuation outside a message");
                data.extend_from_slice(p);
            }
            op => {
                assert!(cur.is_none(), "new message inside a message");
                cur = Some((op, p.to_vec(), h.compressed));
            }
        }
        if h.fin && !opcode::is_control(h.opcode) {
            let (op, data, compressed) = cur.take().expect("a message");
            let (data, packed) = match compressed {
                true => (inflate(&data), Some(data)),
                false => (data, None),
            };
            if op == opcode::TEXT {
                assert!(std::str::from_utf8(&data).is_ok(), "invalid UTF-8 echoed");
            }
            seen.messages.push((op, data));
            seen.packed.push(packed);
        }
        rest = &rest[total..];
    }
    if let Some((op, data, compressed)) = &cur {
        if *op == opcode::TEXT && !compressed {
            // A partial text message is valid so far (never cuts a code point).
            assert!(
                std::str::from_utf8(data).is_ok(),
                "partial text not valid UTF-8"
            );
        }
    }
    seen.open = cur;
    seen
}

/// The server's output against the reference model of the client's bytes.
fn check(seen: &Seen, state: State, sent: &Sent) {
    // A close goes out exactly when the connection leaves Open.
    assert_eq!(
        seen.close.is_some(),
        state != State::Open,
        "close {:?} in state {state:?}",
        seen.close
    );
    assert_eq!(seen.pings, 0);
    match &sent.end {
        End::Open => assert_eq!(
            state,
            State::Open,
            "closed ({:?}) though nothing sent was at fault",
            seen.close
        ),
        End::Closed => assert_ne!(
            state,
            State::Open,
            "the client's close left the connection open"
        ),
        End::Fault(codes) => {
            let code = seen.close.flatten();
            assert!(
                code.is_some_and(|c| codes.contains(&c)),
                "closed with {code:?}, expected one of {codes:?}"
            );
        }
        End::Maybe(codes) => {
            if state != State::Open {
                let code = seen.close.flatten();
                assert!(
                    code.is_some_and(|c| codes.contains(&c)),
                    "closed with {code:?}, expected one of {codes:?} or none yet"
                );
            }
        }
    }
    // Every message and ping before the end is answered, in order.
    assert!(
        seen.messages.len() <= sent.msgs.len(),
        "more messages echoed than sent"
    );
    assert!(
        seen.messages[..] == sent.msgs[..seen.messages.len()],
        "echo differs from the message sent"
    );
    assert_eq!(
        seen.messages.len(),
        sent.msgs.len(),
        "a complete message was not echoed"
    );
    assert!(seen.pongs == sent.pings, "pongs differ from the pings");
    // A compressed echo is the client's compressed payload itself.
    let as_is = seen.deflate == Some(true);
    for (echo, client) in seen.packed.iter().zip(&sent.packed) {
        match (echo, client) {
            (Some(e), Some(c)) => {
                assert!(e == c, "a compressed echo's payload is not the client's")
            }
            (Some(_), None) => panic!("an uncompressed message echoed compressed"),
            (None, Some(_)) => assert!(!as_is, "a compressed message not echoed as it came"),
            (None, None) => {}
        }
    }
    // What is out of the message under way is a prefix of it.
    if let Some((_, bytes, compressed)) = &seen.open {
        let (data, raw) = sent
            .open
            .as_ref()
            .expect("an echo under way with no message under way");
        match compressed {
            true => {
                let raw = raw
                    .as_ref()
                    .expect("a compressed echo of a message not compressed");
                assert!(
                    raw.starts_with(bytes),
                    "a compressed echo under way is not a prefix of the client's payload"
                );
            }
            false => assert!(
                data.starts_with(bytes),
                "an echo under way is not a prefix of the message"
            ),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let offer = (data[4] & 0x80 != 0).then(|| OFFERS[(data[4] >> 5 & 3) as usize]);
    let s = settings(chunk_size(data[0]), data[2], offer);
    let buf = buf_size(&s, data[1] as usize * 3);
    let npieces = (data[4] & 0x0F) as usize;
    let rest = &data[5..];
    let (pieces, body) = rest.split_at(npieces.min(rest.len()));
    let mut input = match offer {
        Some(o) => request_offering(o.value),
        None => REQUEST.to_vec(),
    };
    input.extend_from_slice(body);

    let mut chunked = run(&input, pieces, &s, buf);
    let whole = run(&input, &[], &s, buf);
    assert!(
        chunked.wire == whole.wire,
        "chunking changed the output ({} vs {} bytes)",
        chunked.wire.len(),
        whole.wire.len()
    );
    assert_eq!(chunked.conn.state(), whole.conn.state());

    let seen = observe(&whole.wire);
    let state = whole.conn.state();
    let deflate = offer.is_some_and(|o| o.enabled);
    assert_eq!(
        seen.deflate.is_some(),
        deflate,
        "permessage-deflate agreed: {:?}, offer {offer:?}",
        seen.deflate
    );
    let sent = model(body, deflate, s.max_message);
    check(&seen, state, &sent);

    // Another chunk size frames echoes differently, with the same content.
    let s2 = Settings {
        chunk_size: chunk_size(data[3]),
        ..s.clone()
    };
    let other = run(&input, &[], &s2, buf_size(&s2, 0));
    let seen2 = observe(&other.wire);
    check(&seen2, other.conn.state(), &sent);
    assert!(
        seen2.messages == seen.messages,
        "chunk size changed the messages"
    );
    let one_way = match &sent.end {
        End::Maybe(_) => false,
        End::Fault(codes) => codes.len() == 1,
        End::Open | End::Closed => true,
    };
    if one_way {
        assert_eq!(seen2.close, seen.close, "chunk size changed the close");
        assert_eq!(other.conn.state(), state, "chunk size changed the state");
    }
    whole.release();
    other.release();

    // Then time passes: every connection ends.
    chunked.expire();
    assert!(
        chunked.conn.is_closed(),
        "not closed after its deadlines: {:?}",
        chunked.conn.state()
    );
    let after = observe(&chunked.wire);
    assert!(after.pings <= 1);
    assert!(after.close.is_some());
    chunked.release();
});
