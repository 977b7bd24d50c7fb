//! Arbitrary server bytes through the client core, fed the way the
//! blocking client feeds it (unconsumed bytes kept at the front).
//!
//! Input layout:
//! * byte 0: `whole`, the buffer size up to which a one-frame message is
//!   held until complete (times 16);
//! * byte 1: low 4 bits: how many piece-size bytes follow; bit 4:
//!   permessage-deflate agreed (RSV1 messages are inflated), bit 5: with
//!   the server keeping its context;
//! * those bytes: sizes of the pieces the input arrives in (cycled);
//! * the rest: what the server sends after its 101.
//!
//! Invariants: nothing panics; every range lies in what was consumed; every
//! text piece (inflated or not) is UTF-8 and pieces follow first/last
//! order; everything the
//! client writes is a masked client frame (pongs echoing the ping, one
//! close with a valid code, nothing after it); after an error a close with
//! that error's code is queued and input is dropped; and the same bytes
//! fed whole with whole-frame delivery give the same messages, controls
//! and error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerows::deflate::ClientTerms;
use zerows::frame::{self, opcode, Role};
use zerows::proto::client::conn::{ClientConn, Stage};
use zerows::proto::client::keys::Keys;
use zerows::proto::client::reader::Event;
use zerows::MessageKind;

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Message(MessageKind, Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, Vec<u8>),
}

struct Run {
    got: Vec<Got>,
    error: Option<u16>,
    out: Vec<u8>,
}

fn run(stream: &[u8], pieces: &[usize], whole: usize, deflate: Option<ClientTerms>) -> Run {
    let mut c = ClientConn::new(1 << 16, std::time::Duration::from_secs(1));
    if let Some(terms) = deflate {
        c = c.with_deflate(terms, 128);
    }
    let mut keys = Keys::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut fed = 0;
    let mut turn = 0;
    let mut got = Vec::new();
    let mut msg: Option<(MessageKind, Vec<u8>)> = None;
    let mut error = None;
    let mut out = Vec::new();
    // Bounded: every pass consumes input, feeds more, or hands out an
    // inflated step (at most two per piece within the 64 KiB limit), and
    // input is finite.
    for _ in 0..stream.len() * 8 + 64 {
        let r = c.handle_input(&mut buf, whole.max(256), &mut keys, 1);
        out.extend_from_slice(c.pending());
        let n = c.pending().len();
        c.sent(n);
        let (n, ev) = match r {
            Ok(x) => x,
            Err(e) => {
                error = Some(e.close_code());
                assert_eq!(c.stage(), Stage::Closing);
                break;
            }
        };
        assert!(n <= buf.len());
        match ev {
            Some(Event::Data { kind, at, first, last }) => {
                assert!(at.end <= n);
                if kind == MessageKind::Text {
                    std::str::from_utf8(&buf[at.clone()]).expect("text pieces are UTF-8");
                }
                assert_eq!(first, msg.is_none());
                let m = msg.get_or_insert_with(|| (kind, Vec::new()));
                assert_eq!(m.0, kind);
                m.1.extend_from_slice(&buf[at]);
                if last {
                    let (k, b) = msg.take().unwrap();
                    got.push(Got::Message(k, b));
                }
            }
            Some(Event::Inflated { kind, first, last }) => {
                assert!(deflate.is_some(), "inflated only when agreed");
                let piece = c.inflated();
                assert!(piece.len() <= 1 << 16);
                if kind == MessageKind::Text {
                    std::str::from_utf8(piece).expect("inflated text pieces are UTF-8");
                }
                assert_eq!(first, msg.is_none());
                let m = msg.get_or_insert_with(|| (kind, Vec::new()));
                assert_eq!(m.0, kind);
                m.1.extend_from_slice(piece);
                if last {
                    let (k, b) = msg.take().unwrap();
                    got.push(Got::Message(k, b));
                }
            }
            Some(Event::Packed { .. }) => unreachable!("the connection inflates what is packed"),
            Some(Event::Ping(at)) => got.push(Got::Ping(buf[at].to_vec())),
            Some(Event::Pong(at)) => got.push(Got::Pong(buf[at].to_vec())),
            Some(Event::Close { code, reason }) => {
                got.push(Got::Close(code, buf[reason].to_vec()));
            }
            None => {
                buf.drain(..n);
                if fed == stream.len() || c.stage() == Stage::Closing {
                    break;
                }
                let step = pieces[turn % pieces.len()].max(1);
                turn += 1;
                let next = (fed + step).min(stream.len());
                buf.extend_from_slice(&stream[fed..next]);
                fed = next;
                assert!(buf.len() <= 3 + 14 + 125 + stream.len());
                continue;
            }
        }
        buf.drain(..n);
        if c.stage() == Stage::Closing {
            break;
        }
    }
    Run { got, error, out }
}

/// The client's output: masked frames, pongs for the pings answered, at
/// most one close, last.
fn check_output(r: &Run) {
    let mut rest = &r.out[..];
    let mut closes = 0;
    let mut pings = r.got.iter().filter_map(|g| match g {
        Got::Ping(p) => Some(p),
        _ => None,
    });
    while !rest.is_empty() {
        let h = frame::decode(rest, Role::FromClient).unwrap().unwrap();
        let end = h.header_len + h.len as usize;
        let mut p = rest[h.header_len..end].to_vec();
        zerows::mask::apply(&mut p, h.mask.unwrap(), 0);
        assert_eq!(closes, 0, "nothing after the close");
        match h.opcode {
            opcode::PONG => assert_eq!(Some(&p), pings.next()),
            opcode::CLOSE => {
                closes += 1;
                if let Some(code) = r.error {
                    assert_eq!(p, code.to_be_bytes());
                } else {
                    match r.got.last() {
                        Some(Got::Close(Some(c), _)) => assert_eq!(p, c.to_be_bytes()),
                        Some(Got::Close(None, _)) => assert!(p.is_empty()),
                        other => panic!("a close with no cause: {other:?}"),
                    }
                }
            }
            op => panic!("unexpected opcode {op}"),
        }
        rest = &rest[end..];
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let whole = data[0] as usize * 16;
    let n = (data[1] & 0x0F) as usize;
    if data.len() < 2 + n {
        return;
    }
    let pieces: Vec<usize> = if n == 0 {
        vec![usize::MAX]
    } else {
        data[2..2 + n].iter().map(|&b| b as usize).collect()
    };
    let deflate = (data[1] & 0x10 != 0).then_some(ClientTerms {
        server_takeover: data[1] & 0x20 != 0,
        client_window: 15,
    });
    let stream = &data[2 + n..];
    let a = run(stream, &pieces, whole, deflate);
    check_output(&a);
    let b = run(stream, &[usize::MAX], 1 << 20, deflate);
    assert_eq!(a.got, b.got, "the split changed what was received");
    assert_eq!(a.error, b.error);
});
