//! Arbitrary client bytes after a valid upgrade request, through the
//! connection state machine driven like the event loop drives it (the
//! `Driver` of src/conn/tests.rs).
//!
//! Input layout:
//! * byte 0: echo chunk size (`chunk_size`);
//! * byte 1: extra read buffer bytes beyond the minimum the server accepts;
//! * byte 2: `max_message`;
//! * byte 3: a second chunk size, for the differential run;
//! * byte 4: low 4 bits: how many piece-size bytes follow;
//! * those bytes: sizes of the pieces the input arrives in (cycled);
//! * the rest: what the client sends after its upgrade request.
//!
//! Invariants: nothing panics and the read buffer never fills up without
//! progress; the output is a 101 followed by well-formed server frames
//! (unmasked, final short control frames, continuation sequencing, valid
//! UTF-8 text, a close with a sendable code only at the end and only if the
//! connection left `Open`); the same bytes fed whole give the same output
//! bytes and state; the echoed messages are the client's messages, in
//! order (all of them while the connection stays open); another chunk size
//! gives the same messages, close code and state; and timeouts then always
//! bring the connection to `Closed`.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[path = "common/mod.rs"]
mod common;

use common::{reference, REQUEST};
use zerows::buffer::{ReadBuf, HEADROOM};
use zerows::buffer::MsgPool;
use zerows::conn::{pump, Conn, Millis, Settings, State, CHUNK_SLACK};
use zerows::context::Tx;
use zerows::ConnId;
use zerows::frame::{self, opcode, Role};
use zerows::Echo;
use zerows::handshake::{find_header_end, HandshakeConfig};
use zerows::output::Output;


const MAX_HEAD: usize = 1024;

fn chunk_size(b: u8) -> usize {
    match b >> 6 {
        0 => 1 + (b & 7) as usize,
        1 => 1 + (b & 0x3F) as usize,
        2 => 100 + (b & 0x3F) as usize, // around the 125/126 length forms
        _ => [256, 1000, 4096, 65530, 65535, 65536, 70000, 16384][(b & 7) as usize],
    }
}

fn settings(chunk: usize, max_msg: u8) -> Settings {
    Settings {
        chunk_size: chunk,
        max_message: [16 << 20, 0, 1, 7, 100, 126, 1000, 65536][(max_msg & 7) as usize],
        handshake: HandshakeConfig {
            max_header_bytes: MAX_HEAD,
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
            assert!(n > 0, "read buffer full with no progress (state {:?})", self.conn.state());
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
            };
            assert!(
                pump(&mut self.conn, &mut self.rb, &mut tx, &self.s, &mut Echo, self.now),
                "a vector never breaks"
            );
        }
    }

    /// Let time pass until the connection gives up; returns the states seen.
    fn expire(&mut self) {
        for _ in 0..4 {
            let Some(at) = self.conn.deadline() else { break };
            self.now = self.now.max(at);
            self.out.clear();
            let mut tx = Tx {
                out: &mut self.out,
                sink: &mut self.wire,
                pool: &mut self.pool,
                max_backlog: usize::MAX,
                sent: Default::default(),
                local: None,
            };
            self.conn.on_timeout(self.now, &mut tx, &self.s, &mut Echo);
            self.out.extend_vec(&[], &mut self.wire);
        }
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
            if p >= 0xF0 { (p - 0xEF) * 1000 } else { p + 1 }
        };
        let end = (at + n).min(input.len());
        d.feed(&input[at..end]);
        at = end;
    }
    d
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    messages: Vec<(u8, Vec<u8>)>,
    pongs: Vec<Vec<u8>>,
    pings: usize,
    close: Option<Option<u16>>,
}

/// Parse the server's output strictly.
fn observe(wire: &[u8]) -> Seen {
    let head = find_header_end(wire, 0).expect("response head");
    assert!(wire.starts_with(b"HTTP/1.1 101 "), "not a 101");
    let mut seen = Seen::default();
    let mut rest = &wire[head..];
    let mut cur: Option<(u8, Vec<u8>)> = None;
    while !rest.is_empty() {
        assert!(seen.close.is_none(), "bytes after the close frame");
        let h = match frame::decode(rest, Role::FromServer) {
            Ok(Some(h)) => h,
            other => panic!("bad server frame header: {other:?} at {:02x?}", &rest[..rest.len().min(16)]),
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
                    assert!(zerows::error::close_code::is_valid_received(c), "close code {c}");
                }
                seen.close = Some(code);
            }
            opcode::CONTINUATION => {
                let (_, data) = cur.as_mut().expect("continuation outside a message");
                data.extend_from_slice(p);
            }
            op => {
                assert!(cur.is_none(), "new message inside a message");
                cur = Some((op, p.to_vec()));
            }
        }
        if h.fin && !opcode::is_control(h.opcode) {
            let m = cur.take().expect("a message");
            if m.0 == opcode::TEXT {
                assert!(std::str::from_utf8(&m.1).is_ok(), "invalid UTF-8 echoed");
            }
            seen.messages.push(m);
        }
        rest = &rest[total..];
    }
    if let Some((op, data)) = &cur {
        if *op == opcode::TEXT {
            // A partial text message is valid so far (never cuts a code point).
            assert!(std::str::from_utf8(data).is_ok(), "partial text not valid UTF-8");
        }
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let s = settings(chunk_size(data[0]), data[2]);
    let buf = buf_size(&s, data[1] as usize * 3);
    let npieces = (data[4] & 0x0F) as usize;
    let rest = &data[5..];
    let (pieces, body) = rest.split_at(npieces.min(rest.len()));
    let mut input = REQUEST.to_vec();
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
    // A close goes out exactly when the connection leaves Open.
    assert_eq!(seen.close.is_some(), state != State::Open, "close {:?} in state {state:?}", seen.close);
    assert_eq!(seen.pings, 0);

    let (msgs, pings) = reference(body);
    assert!(seen.messages.len() <= msgs.len(), "more messages echoed than sent");
    assert!(seen.messages[..] == msgs[..seen.messages.len()], "echo differs from the message sent");
    assert!(seen.pongs.len() <= pings.len());
    assert!(seen.pongs[..] == pings[..seen.pongs.len()], "pong differs from the ping");
    if state == State::Open {
        assert_eq!(seen.messages.len(), msgs.len(), "a complete message was not echoed");
        assert_eq!(seen.pongs.len(), pings.len(), "a ping was not answered");
    }

    // Another chunk size frames echoes differently, with the same content.
    let s2 = Settings {
        chunk_size: chunk_size(data[3]),
        ..s.clone()
    };
    let other = run(&input, &[], &s2, buf_size(&s2, 0));
    let seen2 = observe(&other.wire);
    assert!(seen2.messages == seen.messages, "chunk size changed the messages");
    assert_eq!(seen2.close, seen.close, "chunk size changed the close");
    assert_eq!(other.conn.state(), state, "chunk size changed the state");

    // Then time passes: every connection ends.
    chunked.expire();
    assert!(chunked.conn.is_closed(), "not closed after its deadlines: {:?}", chunked.conn.state());
    let after = observe(&chunked.wire);
    assert!(after.pings <= 1);
    assert!(after.close.is_some());
});
