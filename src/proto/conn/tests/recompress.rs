//! Compressed messages that cannot go back as the client sent them
//! (`Terms::echo_as_is` false): recompressed whole when the message came in
//! one chunk, inflated frame by frame otherwise.

use super::deflate::{json, pack, packed_frames, request_offering, KEYS};
use super::*;
use flate2::{Compress, Compression, FlushCompress};

/// A server that lets the client keep its compression context, with echo
/// chunks that fit `buf`.
fn takeover(buf: usize) -> Settings {
    let mut s = small(buf);
    s.handshake.deflate.client_context_takeover = true;
    s
}

/// A client that keeps its compression context: a message may refer
/// back into the ones before it.
struct Client(Compress);

impl Client {
    fn new() -> Client {
        Client(Compress::new(Compression::new(6), false))
    }

    /// `data` compressed (tail cut) in one frame.
    fn frame(&mut self, op: u8, data: &[u8], key: [u8; 4]) -> Vec<u8> {
        let before = self.0.total_in();
        let mut out = Vec::with_capacity(data.len() + 64);
        self.0
            .compress_vec(data, &mut out, FlushCompress::Sync)
            .unwrap();
        assert_eq!(self.0.total_in() - before, data.len() as u64);
        assert!(out.ends_with(&crate::deflate::TAIL));
        out.truncate(out.len() - 4);
        let mut f = client_frame(true, op, &out, key);
        f[0] |= frame::RSV1;
        f
    }
}

fn noise(n: usize, mut x: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn close_frame() -> Vec<u8> {
    client_frame(true, opcode::CLOSE, &1000u16.to_be_bytes(), KEYS[0])
}

/// A server frame as sent.
#[derive(Debug)]
struct Echoed {
    op: u8,
    fin: bool,
    rsv1: bool,
    payload: Vec<u8>,
}

/// The response head and every frame after it.
fn frames_of(wire: &[u8]) -> (String, Vec<Echoed>) {
    let head_end = handshake::find_header_end(wire, 0).unwrap();
    let head = std::str::from_utf8(&wire[..head_end]).unwrap().to_owned();
    let mut rest = &wire[head_end..];
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let h = frame::decode_with(rest, Role::FromServer, frame::RSV1)
            .unwrap()
            .unwrap();
        let end = h.header_len + h.len as usize;
        frames.push(Echoed {
            op: h.opcode,
            fin: h.fin,
            rsv1: h.compressed,
            payload: rest[h.header_len..end].to_vec(),
        });
        rest = &rest[end..];
    }
    (head, frames)
}

/// Assert `f` is a whole message in one compressed frame that inflates to
/// `data`, and is smaller than it.
fn assert_recompressed(f: &Echoed, op: u8, data: &[u8]) {
    assert!(f.op == op && f.fin && f.rsv1, "{f:?}");
    assert!(f.payload.len() < data.len(), "smaller than the message");
    assert_eq!(inflate_message(&f.payload).as_deref(), Some(data));
}

fn assert_plain(f: &Echoed, op: u8, data: &[u8]) {
    assert!(f.op == op && f.fin && !f.rsv1, "{f:?}");
    assert_eq!(f.payload, data);
}

#[test]
fn whole_messages_go_back_recompressed_when_the_client_keeps_its_context() {
    let s = takeover(8192);
    // More than one inflate step (16 KiB): gathered over several.
    let text = json(480);
    assert!(text.len() > crate::deflate::INFLATE_STEP);
    let bin: Vec<u8> = (0..20_000u32).map(|i| (i % 251 % 7) as u8).collect();
    let rand = noise(1500, 0x2545F4914F6CDD1D);
    let mut c = Client::new();
    let frames = [
        c.frame(opcode::TEXT, &text, KEYS[0]),
        c.frame(opcode::BINARY, &bin, KEYS[1]),
        // Mostly references into the first message.
        c.frame(opcode::TEXT, &text, KEYS[2]),
        c.frame(opcode::BINARY, &rand, KEYS[0]),
        // Under the threshold (128 bytes).
        c.frame(opcode::TEXT, b"short and plain", KEYS[1]),
        close_frame(),
    ];
    assert!(
        frames.iter().all(|f| f.len() < s.chunk_size),
        "one chunk each"
    );
    let mut input = request_offering("permessage-deflate; client_max_window_bits");
    input.extend(frames.concat());
    // The same bytes back however the input is split.
    let (seen, state) = conversation(&input, &s);
    assert_eq!(seen.packed, 3);
    assert_eq!(seen.messages.len(), 5);
    assert_eq!(seen.close, Some(Some(1000)));
    assert_eq!(state, State::Closed);

    let buf = s.chunk_size + CHUNK_SLACK + crate::buffer::HEADROOM;
    let (head, sent) = frames_of(&wire_of(&input, &[], &s, buf).0);
    assert!(
        head.contains(
            "\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
        ),
        "{head}"
    );
    assert_eq!(sent.len(), 6, "{sent:?}");
    assert_recompressed(&sent[0], opcode::TEXT, &text);
    assert_recompressed(&sent[1], opcode::BINARY, &bin);
    assert_recompressed(&sent[2], opcode::TEXT, &text);
    assert_plain(&sent[3], opcode::BINARY, &rand);
    assert_plain(&sent[4], opcode::TEXT, b"short and plain");
    assert_eq!(sent[5].op, opcode::CLOSE);
}

#[test]
fn a_message_in_several_frames_goes_back_inflated() {
    let s = takeover(4608);
    let text = json(120);
    let bin: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8).collect();
    let mut frames = packed_frames(opcode::TEXT, &text, 3);
    frames.extend(packed_frames(opcode::BINARY, &bin, 1));
    frames.push(close_frame());
    let mut input = request_offering("permessage-deflate; client_max_window_bits");
    input.extend(frames.concat());
    let (seen, _) = conversation(&input, &s);
    assert_eq!(
        seen.messages,
        vec![(opcode::TEXT, text.clone()), (opcode::BINARY, bin.clone())]
    );
    assert_eq!(seen.packed, 1);

    let buf = s.chunk_size + CHUNK_SLACK + crate::buffer::HEADROOM;
    let (_, sent) = frames_of(&wire_of(&input, &[], &s, buf).0);
    let n = sent.iter().position(|f| f.fin).unwrap() + 1;
    assert!(n > 1, "streamed in frames");
    assert!(sent[..n].iter().all(|f| !f.rsv1));
    assert_eq!(sent[0].op, opcode::TEXT);
    assert!(sent[1..n].iter().all(|f| f.op == opcode::CONTINUATION));
    let echoed: Vec<u8> = sent[..n].iter().flat_map(|f| f.payload.clone()).collect();
    assert_eq!(echoed, text);
    assert_recompressed(&sent[n], opcode::BINARY, &bin);
}

/// Inflate a raw deflate stream (RFC 1951) that ends without a final
/// block, as a server message does once its tail is back, noting the
/// farthest back-reference in it. zlib-rs inflates a stream that reaches
/// past a smaller window than 15 bits as long as its own (32 KiB) window
/// holds the bytes, so the distance is read here instead.
fn inflate_noting_reach(p: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut input = p.to_vec();
    input.extend_from_slice(&crate::deflate::TAIL);
    let mut b = Bits { p: &input, at: 0 };
    let (mut out, mut reach) = (Vec::new(), 0);
    while b.at < input.len() * 8 {
        let last = b.get(1)? == 1;
        match b.get(2)? {
            0 => {
                b.at = b.at.div_ceil(8) * 8;
                let len = b.get(16)? as usize;
                if b.get(16)? as usize != !len & 0xffff {
                    return None;
                }
                let at = b.at / 8;
                out.extend_from_slice(input.get(at..at + len)?);
                b.at += len * 8;
            }
            kind @ (1 | 2) => {
                let (lit, dist) = if kind == 1 {
                    let mut l = [8u8; 288];
                    l[144..256].fill(9);
                    l[256..280].fill(7);
                    (Code::new(&l), Code::new(&[5; 30]))
                } else {
                    let (nlit, ndist) = (b.get(5)? as usize + 257, b.get(5)? as usize + 1);
                    let mut cl = [0u8; 19];
                    for &i in &ORDER[..b.get(4)? as usize + 4] {
                        cl[i] = b.get(3)? as u8;
                    }
                    let cl = Code::new(&cl);
                    let mut l = Vec::new();
                    while l.len() < nlit + ndist {
                        let (v, n) = match cl.read(&mut b)? {
                            s @ 0..=15 => (s as u8, 1),
                            16 => (*l.last()?, 3 + b.get(2)?),
                            17 => (0, 3 + b.get(3)?),
                            _ => (0, 11 + b.get(7)?),
                        };
                        l.extend(std::iter::repeat_n(v, n as usize));
                    }
                    (Code::new(&l[..nlit]), Code::new(&l[nlit..]))
                };
                loop {
                    let s = lit.read(&mut b)? as usize;
                    if s < 256 {
                        out.push(s as u8);
                        continue;
                    }
                    if s == 256 {
                        break;
                    }
                    let len = match s - 257 {
                        28 => 258,
                        i if i < 8 => i + 3,
                        i => {
                            let e = i as u32 / 4 - 1;
                            ((4 + i % 4) << e) + 3 + b.get(e)? as usize
                        }
                    };
                    let d = dist.read(&mut b)? as u32;
                    let far = match d {
                        0..=3 => d as usize + 1,
                        _ => {
                            let e = d / 2 - 1;
                            (((2 + (d & 1)) << e) + 1 + b.get(e)?) as usize
                        }
                    };
                    reach = reach.max(far);
                    let from = out.len().checked_sub(far)?;
                    for k in 0..len {
                        out.push(out[from + k]);
                    }
                }
            }
            _ => return None,
        }
        if last {
            return None;
        }
    }
    Some((out, reach))
}

/// The order code length code lengths come in (RFC 1951 §3.2.7).
const ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// A deflate stream's bits, least significant first.
struct Bits<'a> {
    p: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn get(&mut self, n: u32) -> Option<u32> {
        let mut v = 0;
        for i in 0..n {
            let byte = *self.p.get(self.at / 8)?;
            v |= u32::from(byte >> (self.at % 8) & 1) << i;
            self.at += 1;
        }
        Some(v)
    }
}

/// A canonical Huffman code (RFC 1951 §3.2.2), by (length, code).
struct Code(std::collections::HashMap<(u8, u16), u16>);

impl Code {
    fn new(lengths: &[u8]) -> Code {
        let mut count = [0u16; 16];
        for &l in lengths.iter().filter(|&&l| l > 0) {
            count[usize::from(l)] += 1;
        }
        // The first code of each length: after all shorter ones, doubled.
        let mut code = 0u16;
        let mut next: [u16; 16] = std::array::from_fn(|len| {
            if len > 0 {
                code = (code + count[len - 1]) << 1;
            }
            code
        });
        let mut map = std::collections::HashMap::new();
        for (sym, &len) in lengths.iter().enumerate() {
            if len > 0 {
                map.insert((len, next[len as usize]), sym as u16);
                next[len as usize] += 1;
            }
        }
        Code(map)
    }

    fn read(&self, b: &mut Bits<'_>) -> Option<u16> {
        let mut code = 0u16;
        for len in 1..16u8 {
            code = code << 1 | b.get(1)? as u16;
            if let Some(&s) = self.0.get(&(len, code)) {
                return Some(s);
            }
        }
        None
    }
}

#[test]
fn a_client_window_wider_than_ours_gets_echoes_within_ours() {
    // Compressible close by, and 1500 bytes that repeat 3 KiB later: a
    // 15-bit compressor reaches back past 1024 bytes for them.
    let block: Vec<u8> = noise(1500, 0x9E3779B97F4A7C15)
        .iter()
        .map(|b| b'a' + b % 26)
        .collect();
    let data = [&block[..], &json(40), &block, &json(40)].concat();
    let (inflated, reach) = inflate_noting_reach(&pack(&data)).unwrap();
    assert_eq!(inflated, data);
    assert!(reach > 1 << 10, "the client's own reaches past 10 bits");

    let s = small(8192);
    let mut frames = packed_frames(opcode::BINARY, &data, 1);
    frames.push(close_frame());
    let mut input = request_offering("permessage-deflate; server_max_window_bits=10");
    input.extend(frames.concat());
    let (seen, _) = conversation(&input, &s);
    assert_eq!(seen.messages, vec![(opcode::BINARY, data.clone())]);

    let buf = s.chunk_size + CHUNK_SLACK + crate::buffer::HEADROOM;
    let (head, sent) = frames_of(&wire_of(&input, &[], &s, buf).0);
    assert!(head.contains("server_max_window_bits=10"), "{head}");
    assert!(head.contains("client_no_context_takeover"), "{head}");
    assert_recompressed(&sent[0], opcode::BINARY, &data);
    let (inflated, reach) = inflate_noting_reach(&sent[0].payload).unwrap();
    assert_eq!(inflated, data);
    assert!((1..=1 << 10).contains(&reach), "{reach}");
}

#[test]
fn a_message_past_what_the_pool_keeps_streams_and_buffers_are_reused() {
    let s = takeover(16384);
    let mut d = Driver::new(s.clone(), 16384);
    d.pool = MsgPool::new(4, 20 << 10);
    let short = json(100);
    let long = json(1500);
    assert!(short.len() < 20 << 10 && long.len() > 2 * (20 << 10));
    let mut frames = packed_frames(opcode::TEXT, &short, 1);
    frames.extend(packed_frames(opcode::TEXT, &long, 1));
    frames.extend(packed_frames(opcode::TEXT, &short, 1));
    assert!(
        frames.iter().all(|f| f.len() < s.chunk_size),
        "one chunk each"
    );
    // Invalid once inflated: the connection fails with nothing echoed.
    frames.extend(packed_frames(opcode::TEXT, b"ok \xff no", 1));
    let mut input = request_offering("permessage-deflate; client_max_window_bits");
    input.extend(frames.concat());
    d.feed(&input);

    let seen = observe(&d.wire);
    assert_eq!(
        seen.messages,
        vec![
            (opcode::TEXT, short.clone()),
            (opcode::TEXT, long.clone()),
            (opcode::TEXT, short.clone())
        ]
    );
    assert_eq!(seen.close, Some(Some(1007)));
    let (_, sent) = frames_of(&d.wire);
    assert_recompressed(&sent[0], opcode::TEXT, &short);
    let n = 1 + sent[1..].iter().position(|f| f.fin).unwrap();
    assert!(sent[1..=n].iter().all(|f| !f.rsv1));
    assert!(
        n > 2 && sent[1].payload.len() <= 20 << 10,
        "sent as gathered so far"
    );
    assert_recompressed(&sent[n + 1], opcode::TEXT, &short);
    // Every gathered buffer went back, small enough to be kept, and the
    // codec's output buffer did not grow with the long message.
    assert_eq!(d.pool.in_use(), 0);
    assert_eq!(d.pool.idle(), 1);
    assert!(d.codec.packed.capacity() < 32 << 10);
}

#[test]
fn sends_while_a_message_is_gathered_follow_its_echo() {
    let text = json(480);
    let mut c = Client::new();
    let mut input = request_offering("permessage-deflate; client_max_window_bits");
    input.extend(c.frame(opcode::TEXT, &text, KEYS[0]));
    input.extend(c.frame(opcode::TEXT, b"solo", KEYS[1]));
    let mut d = Driver::with(takeover(8192), 8192, super::services::EchoNotes);
    d.feed(&input);
    let (_, sent) = frames_of(&d.wire);
    assert_recompressed(&sent[0], opcode::TEXT, &text);
    let seen = observe(&d.wire);
    assert!(!seen.junk);
    let m = &seen.messages;
    let k = m
        .iter()
        .position(|(op, p)| *op == opcode::TEXT && p == b"end");
    let k = k.unwrap();
    assert!(k > 2, "a note for each inflated step");
    let mut notes = Vec::new();
    for (op, p) in &m[1..k] {
        assert_eq!(*op, opcode::BINARY);
        notes.extend_from_slice(p.strip_prefix(b"note:").unwrap());
    }
    assert_eq!(notes, text);
    let rest: Vec<(u8, &[u8])> = m[k..].iter().map(|(o, p)| (*o, &p[..])).collect();
    assert_eq!(
        rest,
        vec![
            (opcode::TEXT, &b"end"[..]),
            (opcode::TEXT, b"solo"),
            (opcode::BINARY, b"note:solo"),
            (opcode::TEXT, b"end"),
        ]
    );
}
