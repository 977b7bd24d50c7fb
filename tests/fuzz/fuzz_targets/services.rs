//! The services API under arbitrary client bytes and an arbitrary service:
//! each message is delivered as a script chooses (collect, stream, echo,
//! echo and stream, discard), and in each callback the service sends what
//! the script says (whole messages small and large, messages from parts,
//! streams, left-open streams, pings, closes), under a backlog limit.
//!
//! Input layout:
//! * byte 0: chunk size (as in the `conn` target);
//! * byte 1: `max_collected` and `max_message` (low and high nibble);
//! * byte 2: backlog limit;
//! * byte 3: low 4 bits: how many script bytes follow; high 4: how many
//!   piece-size bytes follow them;
//! * the script bytes (cycled), then the piece sizes (cycled);
//! * the rest: what the client sends after its upgrade request.
//!
//! A third run also calls the service outside input after every read (as a
//! drained backlog, a timer or a push does), sending what the script says.
//!
//! Invariants: nothing panics; the output is a 101 followed by well-formed
//! server frames (no data frame inside a fragmented message, valid UTF-8
//! text, nothing after a close); the same input fed whole and in pieces
//! gives the same deliveries, and with no backlog limit the same output; what the service was
//! given (whole or as pieces) is the client's messages in order; every
//! pooled message buffer is back once the connection is released.
#![no_main]

use libfuzzer_sys::fuzz_target;
#[path = "common/mod.rs"]
mod common;

use common::{reference, REQUEST};
use zerows::buffer::{MsgPool, ReadBuf, HEADROOM};
use zerows::conn::{pump, Conn, Settings, CHUNK_SLACK};
use zerows::context::Tx;
use zerows::deflate::Codec;
use zerows::frame::{self, opcode, Role};
use zerows::handshake::{find_header_end, HandshakeConfig};
use zerows::output::Output;
use zerows::{ConnId, Context, Delivery, Message, MessageKind, Request, Service};


/// Big enough for the direct (uncorked) path.
static BIG: [u8; 9000] = [b'z'; 9000];

/// A service whose every choice comes from the script.
struct Scripted {
    script: Vec<u8>,
    at: usize,
    /// What it was given: whole messages, or pieces joined per message.
    got: Vec<(u8, Vec<u8>)>,
    /// The message being streamed to it.
    cur: Option<(u8, Vec<u8>)>,
}

impl Scripted {
    fn next(&mut self) -> u8 {
        if self.script.is_empty() {
            return 0;
        }
        let b = self.script[self.at % self.script.len()];
        self.at += 1;
        b
    }

    /// Send what the script says next.
    fn act(&mut self, cx: &mut Context<'_>, data: &[u8]) {
        let b = self.next();
        let _ = match b % 10 {
            0 | 1 => zerows::SendStatus::Sent,
            2 => cx.send_binary(data),
            3 => cx.send_text_parts(&["re: ", "x", "☃"]),
            4 => cx.send_binary(&BIG[..(b as usize * 37) % BIG.len()]),
            5 => {
                let _ = cx.begin(MessageKind::Text);
                let _ = cx.piece("a".as_bytes());
                cx.finish("é".as_bytes())
            }
            6 => {
                // Left open: ended when the callback returns.
                let _ = cx.begin(MessageKind::Binary);
                cx.piece(data)
            }
            7 => cx.ping(&data[..data.len().min(125)]),
            8 if b > 200 => cx.close(4000 + b as u16, "script"),
            _ => cx.send_text("ok"),
        };
    }
}

impl Service for Scripted {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) {
        self.act(cx, b"open");
    }
    fn message(&mut self, _st: &mut (), kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        let op = if kind == MessageKind::Text { opcode::TEXT } else { opcode::BINARY };
        let d = match self.next() % 5 {
            0 => Delivery::Collect,
            1 => Delivery::Stream,
            2 => Delivery::Echo,
            3 => Delivery::EchoAndStream,
            _ => Delivery::Discard,
        };
        if matches!(d, Delivery::Stream | Delivery::EchoAndStream) {
            self.cur = Some((op, Vec::new()));
        }
        d
    }
    fn whole(&mut self, _st: &mut (), msg: Message<'_>, cx: &mut Context<'_>) {
        let op = if msg.kind() == MessageKind::Text { opcode::TEXT } else { opcode::BINARY };
        self.got.push((op, msg.as_bytes().to_vec()));
        self.act(cx, msg.as_bytes());
    }
    fn piece(&mut self, _st: &mut (), data: &[u8], cx: &mut Context<'_>) {
        self.cur.as_mut().expect("pieces of a streamed message").1.extend_from_slice(data);
        self.act(cx, data);
    }
    fn drain(&mut self, _st: &mut (), cx: &mut Context<'_>) {
        self.act(cx, b"drain");
    }
    fn end(&mut self, _st: &mut (), cx: &mut Context<'_>) {
        let m = self.cur.take().expect("end of a streamed message");
        if m.0 == opcode::TEXT {
            assert!(std::str::from_utf8(&m.1).is_ok(), "streamed text not UTF-8");
        }
        self.got.push(m);
        self.act(cx, b"end");
    }
}

struct Run {
    conn: Conn,
    rb: ReadBuf,
    out: Output,
    pool: MsgPool,
    codec: Codec,
    wire: Vec<u8>,
    svc: Scripted,
}

/// Feed `input` cut by `pieces`; with `between`, the service also runs a
/// callback outside input (as on a drained backlog, a timer or a push)
/// after every read, which must never put a frame inside an echo.
fn run(input: &[u8], pieces: &[u8], s: &Settings, script: &[u8], backlog: usize, between: bool) -> Run {
    let buf = HEADROOM + (s.chunk_size + CHUNK_SLACK).max(s.handshake.max_header_bytes + 1);
    let mut r = Run {
        conn: Conn::new(1_000, s, ConnId::new(1, 1)),
        rb: ReadBuf::new(vec![0xEE; buf].into_boxed_slice()),
        out: Output::new(),
        pool: MsgPool::new(4, 1 << 20),
            codec: Codec::default(),
        wire: Vec::new(),
        svc: Scripted { script: script.to_vec(), at: 0, got: Vec::new(), cur: None },
    };
    let mut at = 0;
    let mut i = 0;
    while at < input.len() && !r.conn.is_closed() {
        let n = if pieces.is_empty() {
            input.len()
        } else {
            i += 1;
            pieces[i % pieces.len()] as usize + 1
        };
        let mut bytes = &input[at..(at + n).min(input.len())];
        at += bytes.len();
        while !bytes.is_empty() && !r.conn.is_closed() {
            let spare = r.rb.spare();
            let k = spare.len().min(bytes.len());
            assert!(k > 0, "read buffer full with no progress");
            spare[..k].copy_from_slice(&bytes[..k]);
            r.rb.filled(k);
            bytes = &bytes[k..];
            let mut tx = Tx {
                out: &mut r.out,
                sink: &mut r.wire,
                pool: &mut r.pool,
                max_backlog: backlog,
                sent: Default::default(),
                local: None,
                codec: &mut r.codec,
            };
            // Passes left short by the inflate budget are run again.
            assert!(pump(&mut r.conn, &mut r.rb, &mut tx, s, &mut r.svc, 1_000));
            while tx.codec.take_yielded() {
                assert!(pump(&mut r.conn, &mut r.rb, &mut tx, s, &mut r.svc, 1_000));
            }
            if between {
                r.conn.callback(&mut tx, s, &mut r.svc, 1_000, |h, cx| {
                    zerows::events::Events::drain(h, cx)
                });
            }
        }
    }
    r
}

/// Parse the server's output strictly; returns the data messages.
fn observe(wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let head = find_header_end(wire, 0).expect("response head");
    assert!(wire.starts_with(b"HTTP/1.1 101 "), "not a 101");
    let mut rest = &wire[head..];
    let mut msgs = Vec::new();
    let mut cur: Option<(u8, Vec<u8>)> = None;
    let mut closed = false;
    while !rest.is_empty() {
        assert!(!closed, "bytes after the close frame");
        let h = match frame::decode(rest, Role::FromServer) {
            Ok(Some(h)) => h,
            other => panic!("bad server frame: {other:?}"),
        };
        let total = h.header_len + h.len as usize;
        assert!(rest.len() >= total, "truncated server frame");
        let p = &rest[h.header_len..total];
        match h.opcode {
            opcode::PING | opcode::PONG => assert!(p.len() <= 125),
            opcode::CLOSE => closed = true,
            opcode::CONTINUATION => cur.as_mut().expect("continuation outside a message").1.extend_from_slice(p),
            op => {
                assert!(cur.is_none(), "a data frame inside a fragmented message");
                cur = Some((op, p.to_vec()));
            }
        }
        if h.fin && !opcode::is_control(h.opcode) {
            let m = cur.take().expect("a message");
            if m.0 == opcode::TEXT {
                assert!(std::str::from_utf8(&m.1).is_ok(), "invalid UTF-8 sent");
            }
            msgs.push(m);
        }
        rest = &rest[total..];
    }
    msgs
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let chunk = match data[0] >> 6 {
        0 => 1 + (data[0] & 7) as usize,
        1 => 100 + (data[0] & 0x3F) as usize,
        _ => [256, 1000, 4096, 16384][(data[0] & 3) as usize],
    };
    let limits = [0u64, 1, 7, 126, 1000, 5000, 65536, 1 << 20];
    let s = Settings {
        chunk_size: chunk,
        max_collected: limits[(data[1] & 7) as usize],
        max_message: limits[((data[1] >> 4) & 7) as usize].max(1000),
        handshake: HandshakeConfig {
            max_header_bytes: 1024,
            ..HandshakeConfig::default()
        },
        ..Settings::default()
    };
    let backlog = [usize::MAX, 0, 64, 1000, 10_000, 100_000, 20, 5000][(data[2] & 7) as usize];
    let nscript = (data[3] & 0x0F) as usize;
    let npieces = (data[3] >> 4) as usize;
    let rest = &data[4..];
    let (script, rest) = rest.split_at(nscript.min(rest.len()));
    let (pieces, body) = rest.split_at(npieces.min(rest.len()));
    let mut input = REQUEST.to_vec();
    input.extend_from_slice(body);

    let whole = run(&input, &[], &s, script, backlog, false);
    let mut cut = run(&input, pieces, &s, script, backlog, false);
    // Whether a send fits under a backlog limit depends on what is still
    // corked in the pass, so on the cuts; with no limit the bytes are the
    // same however the input arrived.
    if backlog == usize::MAX {
        assert!(whole.wire == cut.wire, "the cuts changed the output");
    }
    observe(&cut.wire);
    assert!(whole.svc.got == cut.svc.got, "the cuts changed what the service was given");
    observe(&whole.wire);

    // What the service was given is the client's messages, in order
    // (discarded and echo-only messages are not given to it).
    let (sent, _pings) = reference(body);
    let mut i = 0;
    for m in &whole.svc.got {
        while i < sent.len() && sent[i] != *m {
            i += 1;
        }
        assert!(i < sent.len(), "the service was given a message the client did not send");
        i += 1;
    }

    // Every pooled buffer goes back.
    cut.conn.release(&mut cut.pool, &mut cut.codec);
    assert_eq!(cut.pool.in_use(), 0, "a message buffer was not returned");

    // Sends from outside input, between reads: the output stays well
    // formed (none lands inside an echo under way) and buffers come back.
    let mut between = run(&input, pieces, &s, script, backlog, true);
    observe(&between.wire);
    between.conn.release(&mut between.pool, &mut between.codec);
    assert_eq!(between.pool.in_use(), 0, "a held-send buffer was not returned");
});
