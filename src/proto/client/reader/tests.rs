use super::*;
use crate::error::ProtocolError::*;

/// A server frame (unmasked).
fn frame(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0; frame::MAX_HEADER];
    let n = frame::encode(&mut v, fin, op, payload.len() as u64, None);
    v.truncate(n);
    v.extend_from_slice(payload);
    v
}

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>, String),
}

/// Feed `stream` in pieces of `step` bytes to a reader the way a shell
/// does (keeping what is not consumed), and gather what it hands out,
/// checking every piece as it comes. Returns the events up to the first
/// error, and the error.
fn run(stream: &[u8], step: usize, whole: usize) -> (Vec<Got>, Option<ProtocolError>) {
    let mut r = Reader::new(1 << 20);
    let mut buf = Vec::new();
    let mut fed = 0;
    let mut got = Vec::new();
    let mut msg: Option<(MessageKind, Vec<u8>)> = None;
    loop {
        let (n, ev) = match r.read(&mut buf, whole) {
            Ok(x) => x,
            Err(e) => return (got, Some(e)),
        };
        assert!(n <= buf.len());
        match ev {
            Some(Event::Packed { .. } | Event::Inflated { .. }) => {
                unreachable!("permessage-deflate is not agreed")
            }
            Some(Event::Data {
                kind,
                at,
                first,
                last,
            }) => {
                assert!(at.end <= n, "a piece lies within what is consumed");
                let piece = &buf[at];
                if kind == MessageKind::Text {
                    std::str::from_utf8(piece).expect("every text piece is whole UTF-8");
                }
                assert_eq!(first, msg.is_none(), "first marks a new message");
                let m = msg.get_or_insert_with(|| (kind, Vec::new()));
                assert_eq!(m.0, kind);
                m.1.extend_from_slice(piece);
                if last {
                    let (k, bytes) = msg.take().unwrap();
                    got.push(match k {
                        MessageKind::Text => Got::Text(String::from_utf8(bytes).unwrap()),
                        MessageKind::Binary => Got::Binary(bytes),
                    });
                }
            }
            Some(Event::Ping(at)) => got.push(Got::Ping(buf[at].to_vec())),
            Some(Event::Pong(at)) => got.push(Got::Pong(buf[at].to_vec())),
            Some(Event::Close { code, reason }) => got.push(Got::Close(
                code,
                String::from_utf8(buf[reason].to_vec()).unwrap(),
            )),
            None => {
                buf.drain(..n);
                if fed == stream.len() {
                    assert!(msg.is_none() || !buf.is_empty() || n == 0);
                    return (got, None);
                }
                let next = (fed + step).min(stream.len());
                buf.extend_from_slice(&stream[fed..next]);
                fed = next;
                continue;
            }
        }
        buf.drain(..n);
    }
}

/// Every split size, with and without whole-frame delivery.
fn all_splits(stream: &[u8]) -> (Vec<Got>, Option<ProtocolError>) {
    let first = run(stream, stream.len().max(1), 1 << 16);
    for step in 1..=stream.len().clamp(1, 40) {
        for whole in [0, 8, 1 << 16] {
            assert_eq!(run(stream, step, whole), first, "step {step} whole {whole}");
        }
    }
    first
}

#[test]
fn whole_messages_of_every_length_form() {
    let mut s = Vec::new();
    s.extend(frame(true, opcode::TEXT, b"Hello world!"));
    s.extend(frame(true, opcode::BINARY, &[7u8; 300]));
    s.extend(frame(true, opcode::BINARY, &[9u8; 70_000]));
    s.extend(frame(true, opcode::TEXT, b""));
    let (got, err) = run(&s, 1000, 1 << 16);
    assert_eq!(err, None);
    assert_eq!(
        got,
        vec![
            Got::Text("Hello world!".into()),
            Got::Binary(vec![7; 300]),
            Got::Binary(vec![9; 70_000]),
            Got::Text(String::new()),
        ]
    );
}

#[test]
fn a_whole_frame_is_one_range_when_it_fits() {
    let s = frame(true, opcode::TEXT, b"abcdef");
    let mut r = Reader::new(100);
    let mut buf = s[..5].to_vec();
    assert_eq!(
        r.read(&mut buf, 64),
        Ok((2, None)),
        "header consumed, payload awaited"
    );
    let mut buf = s[2..].to_vec();
    match r.read(&mut buf, 64) {
        Ok((
            6,
            Some(Event::Data {
                at,
                first: true,
                last: true,
                ..
            }),
        )) => assert_eq!(at, 0..6),
        other => panic!("{other:?}"),
    }
    // Too long for the buffer: handed out as it arrives.
    let mut r = Reader::new(100);
    let mut buf = s[..5].to_vec();
    match r.read(&mut buf, 4) {
        Ok((
            5,
            Some(Event::Data {
                at,
                first: true,
                last: false,
                ..
            }),
        )) => assert_eq!(at, 2..5),
        other => panic!("{other:?}"),
    }
}

#[test]
fn fragments_with_code_points_cut_across_frames_and_controls() {
    // "é€𝄞" cut inside every code point, a ping and a pong in between.
    let text = "aé€𝄞z".as_bytes();
    let mut s = Vec::new();
    s.extend(frame(false, opcode::TEXT, &text[..2]));
    s.extend(frame(true, opcode::PING, b"p"));
    s.extend(frame(false, opcode::CONTINUATION, &text[2..4]));
    s.extend(frame(false, opcode::CONTINUATION, &text[4..5]));
    s.extend(frame(true, opcode::PONG, b""));
    s.extend(frame(false, opcode::CONTINUATION, &text[5..7]));
    s.extend(frame(false, opcode::CONTINUATION, b""));
    s.extend(frame(true, opcode::CONTINUATION, &text[7..]));
    s.extend(frame(true, opcode::CLOSE, &[0x03, 0xE8, b'b', b'y', b'e']));
    let (got, err) = all_splits(&s);
    assert_eq!(err, None);
    assert_eq!(
        got,
        vec![
            Got::Ping(b"p".to_vec()),
            Got::Pong(vec![]),
            Got::Text("aé€𝄞z".into()),
            Got::Close(Some(1000), "bye".into()),
        ]
    );
}

#[test]
fn one_byte_frames() {
    let text = "𝄞é!".as_bytes();
    let mut s = frame(false, opcode::TEXT, &text[..1]);
    for (i, b) in text[1..].iter().enumerate() {
        s.extend(frame(i + 2 == text.len(), opcode::CONTINUATION, &[*b]));
    }
    let (got, err) = all_splits(&s);
    assert_eq!((got, err), (vec![Got::Text("𝄞é!".into())], None));
}

#[test]
fn close_without_code() {
    let (got, err) = all_splits(&frame(true, opcode::CLOSE, b""));
    assert_eq!((got, err), (vec![Got::Close(None, String::new())], None));
}

/// The error, seen at every split, after the events before it.
fn fails(stream: &[u8], before: Vec<Got>, e: ProtocolError) {
    assert_eq!(all_splits(stream), (before, Some(e)));
}

#[test]
fn frame_rule_violations() {
    // Masked server frame (§5.1).
    fails(&[0x81, 0x81, 1, 2, 3, 4, b'x'], vec![], MaskedFrame);
    // Reserved bits, reserved opcodes.
    fails(&[0xC1, 0x00], vec![], ReservedBits);
    fails(&[0x83, 0x00], vec![], UnknownOpcode);
    fails(&[0x8B, 0x00], vec![], UnknownOpcode);
    // Control frames: fragmented, too long.
    fails(&[0x09, 0x00], vec![], ControlFragmented);
    fails(&[0x89, 126, 0, 126], vec![], ControlTooLong);
    // Sequencing.
    fails(
        &frame(true, opcode::CONTINUATION, b"x"),
        vec![],
        UnexpectedContinuation,
    );
    let mut s = frame(false, opcode::TEXT, b"a");
    s.extend(frame(true, opcode::TEXT, b"b"));
    fails(&s, vec![], ExpectedContinuation);
    // A 64-bit length with its top bit set.
    fails(
        &[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0],
        vec![],
        LengthOverflow,
    );
}

#[test]
fn close_payload_rules() {
    fails(
        &frame(true, opcode::CLOSE, &[0x03]),
        vec![],
        CloseFrameTooShort,
    );
    fails(
        &frame(true, opcode::CLOSE, &[0x03, 0xED]),
        vec![],
        InvalidCloseCode,
    ); // 1005
    fails(
        &frame(true, opcode::CLOSE, &[0x03, 0xE8, 0xFF]),
        vec![],
        InvalidCloseReason,
    );
}

#[test]
fn invalid_utf8_fails_fast() {
    // The bad byte is in the first fragment: the error comes before the
    // message ends, whatever the split.
    let mut s = frame(false, opcode::TEXT, &[b'o', b'k', 0xFF]);
    let before = run(&s, 1, 0);
    assert_eq!(before.1, Some(InvalidUtf8));
    s.extend(frame(true, opcode::CONTINUATION, b"more"));
    fails(&s, vec![], InvalidUtf8);
    // A message that ends inside a code point.
    fails(
        &frame(true, opcode::TEXT, &[b'a', 0xE2, 0x82]),
        vec![],
        InvalidUtf8,
    );
    let mut s = frame(false, opcode::TEXT, &[0xE2]);
    s.extend(frame(true, opcode::CONTINUATION, &[]));
    fails(&s, vec![], InvalidUtf8);
    // Surrogates are not UTF-8.
    fails(
        &frame(true, opcode::TEXT, &[0xED, 0xA0, 0x80]),
        vec![],
        InvalidUtf8,
    );
}

#[test]
fn size_limit_counts_the_whole_message() {
    let mut r = Reader::new(10);
    let mut s = frame(false, opcode::BINARY, &[0; 6]);
    s.extend(frame(true, opcode::CONTINUATION, &[0; 5]));
    let mut buf = s.clone();
    let (n, ev) = r.read(&mut buf, 1 << 16).unwrap();
    assert!(matches!(ev, Some(Event::Data { last: false, .. })));
    assert_eq!(r.read(&mut buf[n..], 1 << 16), Err(MessageTooBig));
    // The limit is checked on the header, before any payload arrives.
    let mut r = Reader::new(10);
    assert_eq!(r.read(&mut [0x82, 11], 1 << 16), Err(MessageTooBig));
}

#[test]
fn binary_is_never_held_back() {
    let s = frame(true, opcode::BINARY, &[0xFF, 0xFE, 0xE2]);
    assert_eq!(
        all_splits(&s),
        (vec![Got::Binary(vec![0xFF, 0xFE, 0xE2])], None)
    );
}

#[test]
fn invalid_text_in_a_held_frame_fails_before_the_frame_is_in() {
    // A one-frame message held whole: its bad byte still fails at once.
    let mut payload = b"ok".to_vec();
    payload.push(0xFF);
    payload.extend_from_slice(&[b'x'; 100]);
    let s = frame(true, opcode::TEXT, &payload);
    let mut r = Reader::new(1 << 20);
    let mut buf = s[..4].to_vec();
    assert_eq!(
        r.read(&mut buf, 1 << 16),
        Ok((2, None)),
        "valid so far: held"
    );
    let mut buf = s[2..8].to_vec();
    assert_eq!(r.read(&mut buf, 1 << 16), Err(InvalidUtf8));
    // Valid text cut inside a code point while held is fine.
    let s = frame(true, opcode::TEXT, "aé€".as_bytes());
    let mut r = Reader::new(1 << 20);
    let mut buf = s[..4].to_vec();
    assert_eq!(r.read(&mut buf, 1 << 16), Ok((2, None)));
    let mut buf = s[2..].to_vec();
    assert!(matches!(
        r.read(&mut buf, 1 << 16),
        Ok((6, Some(Event::Data { last: true, .. })))
    ));
}

#[test]
fn a_held_back_frame_fails_fast_on_invalid_utf8() {
    // One text frame that fits the buffer, so it is held back until whole;
    // its bytes are still checked as they arrive: the frame's end never
    // comes, yet the error does, at every split.
    let text: &[u8] = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80edited";
    let s = frame(true, opcode::TEXT, text);
    // Header (2) + the 11 valid bytes + 0xF4 0x90, which no code point
    // starts with.
    let bad = 2 + 13;
    for cut in bad..s.len() {
        for step in 1..=cut {
            assert_eq!(
                run(&s[..cut], step, 1 << 16),
                (vec![], Some(InvalidUtf8)),
                "cut {cut} step {step}"
            );
        }
    }
    // Before the bad byte, nothing is wrong yet.
    assert_eq!(run(&s[..bad - 1], 1, 1 << 16), (vec![], None));
}
