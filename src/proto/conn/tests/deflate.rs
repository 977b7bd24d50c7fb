//! permessage-deflate through the core: negotiation in the handshake,
//! compressed messages in (echoed as they came, or inflated for the
//! service) and out, and every rule of RFC 7692 §6–§8 on bad input.

use super::*;
use crate::testutil::KEY;
use flate2::{Compress, Compression, FlushCompress};

pub(super) const KEYS: [[u8; 4]; 3] = [[0x11, 0x22, 0x33, 0x44], [9, 8, 7, 6], [0xff, 0, 0x7f, 1]];

pub(super) fn request_offering(offer: &str) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: localhost:9001\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    )
    .into_bytes()
}

/// What a client's compressor sends for `data` (tail cut).
pub(super) fn pack(data: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    z.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    out.truncate(out.len() - 4);
    out
}

/// A compressed message as client frames: RSV1 on the first only, the
/// payload cut into `parts`.
pub(super) fn packed_frames(op: u8, data: &[u8], parts: usize) -> Vec<Vec<u8>> {
    let p = pack(data);
    let step = p.len().div_ceil(parts).max(1);
    let chunks: Vec<&[u8]> = if p.is_empty() {
        vec![&[]]
    } else {
        p.chunks(step).collect()
    };
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let op = if i == 0 { op } else { opcode::CONTINUATION };
            let mut f = client_frame(i + 1 == n, op, c, KEYS[i % 3]);
            if i == 0 {
                f[0] |= frame::RSV1;
            }
            f
        })
        .collect()
}

fn with_deflate(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = request_offering("permessage-deflate; client_max_window_bits");
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

pub(super) fn json(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("{{\"id\":{i},\"name\":\"zé→{i}\",\"ok\":true}},").into_bytes())
        .collect()
}

#[test]
fn the_offer_is_answered_and_compressed_echoes_go_back_as_they_came() {
    let text = json(30);
    let bin: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8).collect();
    let mut frames = packed_frames(opcode::TEXT, &text, 1);
    frames.extend(packed_frames(opcode::BINARY, &bin, 3));
    frames.push(msg(opcode::TEXT, b"plain in between"));
    frames.extend(packed_frames(opcode::TEXT, b"", 1));
    frames.push(client_frame(
        true,
        opcode::CLOSE,
        &1000u16.to_be_bytes(),
        KEYS[0],
    ));
    let input = with_deflate(&frames);
    let (seen, state) = conversation(&input, &small(4608));
    assert_eq!(
        seen.messages,
        vec![
            (opcode::TEXT, text.clone()),
            (opcode::BINARY, bin.clone()),
            (opcode::TEXT, b"plain in between".to_vec()),
            (opcode::TEXT, vec![]),
        ]
    );
    assert_eq!(seen.packed, 3, "compressed in, compressed out");
    assert_eq!(seen.close, Some(Some(1000)));
    assert_eq!(state, State::Closed);
    assert!(!seen.junk);

    // The response names the extension, and the first echo's payload is
    // the client's own compressed bytes.
    let buf = 4608;
    let (wire, _) = wire_of(&input, &[], &small(buf), buf);
    let head_end = handshake::find_header_end(&wire, 0).unwrap();
    let head = std::str::from_utf8(&wire[..head_end]).unwrap();
    assert!(
        head.contains("\r\nSec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n"),
        "{head}"
    );
    let h = frame::decode_with(&wire[head_end..], Role::FromServer, frame::RSV1)
        .unwrap()
        .unwrap();
    assert!(h.compressed && h.fin);
    let p = &wire[head_end + h.header_len..head_end + h.header_len + h.len as usize];
    assert_eq!(p, &pack(&text)[..]);
}

#[test]
fn a_long_compressed_message_streams_through_a_small_buffer() {
    // Incompressible enough to be longer than the read buffer on the wire.
    let mut x = 0x9E3779B97F4A7C15u64;
    let data: Vec<u8> = (0..200_000)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 3 == 0 {
                b'a'
            } else {
                (x % 64) as u8 + b' '
            }
        })
        .collect();
    let frames = packed_frames(opcode::TEXT, &data, 4);
    let (seen, _) = run_chunks(&with_deflate(&frames), &[], &small(4608), 4608);
    assert_eq!(seen.messages, vec![(opcode::TEXT, data)]);
    assert_eq!(seen.packed, 1);
}

fn fails_deflate(frames: &[Vec<u8>], code: u16, s: &Settings) -> Seen {
    let (seen, state) = conversation(&with_deflate(frames), s);
    assert_eq!(seen.close, Some(Some(code)), "{seen:?}");
    assert!(!seen.junk);
    assert!(matches!(state, State::CloseSent | State::Closed));
    seen
}

#[test]
fn rsv1_is_refused_on_control_frames_and_continuations() {
    let s = small(4608);
    for op in [opcode::PING, opcode::PONG, opcode::CLOSE] {
        let mut f = client_frame(true, op, b"", KEYS[0]);
        f[0] |= frame::RSV1;
        fails_deflate(&[f], 1002, &s);
    }
    let mut frames = vec![client_frame(false, opcode::TEXT, b"ab", KEYS[0])];
    let mut cont = client_frame(true, opcode::CONTINUATION, b"c", KEYS[1]);
    cont[0] |= frame::RSV1;
    frames.push(cont);
    fails_deflate(&frames, 1002, &s);
    // RSV2 and RSV3 stay reserved.
    for rsv in [0x20u8, 0x10] {
        let mut f = packed_frames(opcode::TEXT, b"hello", 1).remove(0);
        f[0] |= rsv;
        fails_deflate(&[f], 1002, &s);
    }
}

#[test]
fn broken_deflate_and_bad_inflated_text_fail_with_1007() {
    let s = small(4608);
    // Block type 3 is reserved.
    let mut f = client_frame(true, opcode::BINARY, &[0xff, 0xff, 0xff], KEYS[0]);
    f[0] |= frame::RSV1;
    let seen = fails_deflate(&[f], 1007, &s);
    assert!(seen.messages.is_empty());
    // Valid deflate, invalid UTF-8 once inflated: never echoed.
    let seen = fails_deflate(&packed_frames(opcode::TEXT, b"ok \xff no", 1), 1007, &s);
    assert!(seen.messages.is_empty());
    // The same bytes as binary are fine.
    let (seen, _) = conversation(
        &with_deflate(&packed_frames(opcode::BINARY, b"ok \xff no", 1)),
        &s,
    );
    assert_eq!(
        seen.messages,
        vec![(opcode::BINARY, b"ok \xff no".to_vec())]
    );
}

#[test]
fn a_bomb_is_cut_at_the_inflated_limit_with_1009() {
    let s = Settings {
        max_message: 1 << 20,
        ..small(1 << 16)
    };
    // 64 MiB of zeros in about 64 KiB.
    let frames = packed_frames(opcode::BINARY, &vec![0u8; 64 << 20], 1);
    assert!(frames[0].len() < 80 << 10);
    let (seen, state) = run_chunks(&with_deflate(&frames), &[], &s, 1 << 17);
    assert_eq!(seen.close, Some(Some(1009)));
    assert!(matches!(state, State::CloseSent | State::Closed));
    assert!(seen.messages.is_empty());
    // Just under the limit passes.
    let frames = packed_frames(opcode::BINARY, &vec![0u8; 1 << 20], 1);
    let (seen, _) = run_chunks(&with_deflate(&frames), &[], &s, 1 << 17);
    assert_eq!(seen.messages, vec![(opcode::BINARY, vec![0u8; 1 << 20])]);
}

#[test]
fn without_the_offer_rsv1_stays_a_protocol_error() {
    let mut input = request();
    input.extend(packed_frames(opcode::TEXT, b"hello", 1).remove(0));
    let (seen, _) = conversation(&input, &small(4608));
    assert_eq!(seen.close, Some(Some(1002)));
    let off = Settings {
        handshake: HandshakeConfig {
            deflate: crate::deflate::DeflateConfig {
                enabled: false,
                ..Default::default()
            },
            ..small(4608).handshake
        },
        ..small(4608)
    };
    let (seen, _) = conversation(
        &with_deflate(&packed_frames(opcode::TEXT, b"hello", 1)),
        &off,
    );
    assert_eq!(
        seen.close,
        Some(Some(1002)),
        "declined: RSV1 is not ours to accept"
    );
}

#[test]
fn a_pass_inflates_within_its_budget_and_leaves_the_rest_for_the_next() {
    // Three messages of 64 KiB each once inflated, all in the buffer at
    // once; a budget of 100 KiB a pass.
    let text = json(2000);
    assert!(text.len() > 64 << 10);
    let text = &text[..64 << 10];
    let mut frames = Vec::new();
    for _ in 0..3 {
        frames.extend(packed_frames(opcode::TEXT, text, 1));
    }
    let input = with_deflate(&frames);
    let s = Settings::default();
    let mut d = Driver::new(s.clone(), 1 << 17);
    d.codec = Codec::default().with_budget(100 << 10);
    let spare = d.rb.spare();
    spare[..input.len()].copy_from_slice(&input);
    d.rb.filled(input.len());
    let mut passes = 0;
    let mut echoed = Vec::new();
    loop {
        let mut tx = Tx {
            out: &mut d.out,
            sink: &mut d.wire,
            pool: &mut d.pool,
            max_backlog: usize::MAX,
            sent: Default::default(),
            local: None,
            codec: &mut d.codec,
        };
        assert!(pump(
            &mut d.conn,
            &mut d.rb,
            &mut tx,
            &d.s,
            &mut d.svc,
            d.now
        ));
        let more = tx.codec.take_yielded();
        passes += 1;
        echoed.push(observe(&d.wire).messages.len());
        if !more {
            break;
        }
        assert!(passes < 10, "the passes end");
    }
    // 64 KiB, then 128 KiB (past the budget: the third waits), then the
    // third: two passes, each within budget plus one message.
    assert_eq!(echoed, vec![2, 3]);
    let seen = observe(&d.wire);
    assert_eq!(seen.packed, 3);
    assert!(seen
        .messages
        .iter()
        .all(|(op, m)| *op == opcode::TEXT && m == text));
}
