use super::*;
use std::time::Duration;

fn conn() -> (ClientConn, Keys) {
    (
        ClientConn::new(1 << 20, Duration::from_secs(5)),
        Keys::seeded(1),
    )
}

/// Decode the masked frames a client wrote, as a server would.
fn frames(mut bytes: &[u8]) -> Vec<(bool, u8, Vec<u8>)> {
    let mut v = Vec::new();
    while !bytes.is_empty() {
        let h = frame::decode(bytes, frame::Role::FromClient)
            .expect("a valid client frame")
            .expect("a whole frame");
        let mut p = bytes[h.header_len..h.header_len + h.len as usize].to_vec();
        mask::apply(&mut p, h.mask.expect("masked"), 0);
        v.push((h.fin, h.opcode, p));
        bytes = &bytes[h.header_len + h.len as usize..];
    }
    v
}

fn server(fin: bool, op: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0; frame::MAX_HEADER];
    let n = frame::encode(&mut v, fin, op, payload.len() as u64, None);
    v.truncate(n);
    v.extend_from_slice(payload);
    v
}

#[test]
fn data_frames_are_masked_with_fresh_keys() {
    let (mut c, mut k) = conn();
    let mut out = Vec::new();
    let h1 = c
        .frame_header(Part::Whole(MessageKind::Text), 5, &mut k)
        .unwrap();
    write_masked(&mut out, &h1, &[b"he", b"llo"]);
    let h2 = c
        .frame_header(Part::Whole(MessageKind::Binary), 3, &mut k)
        .unwrap();
    write_masked(&mut out, &h2, &[&[1, 2, 3]]);
    assert_ne!(h1.key, h2.key);
    assert_ne!(&out[6..11], b"hello", "the payload goes out masked");
    assert_eq!(
        frames(&out),
        vec![
            (true, opcode::TEXT, b"hello".to_vec()),
            (true, opcode::BINARY, vec![1, 2, 3])
        ]
    );
}

#[test]
fn fragments_must_follow_in_order() {
    let (mut c, mut k) = conn();
    assert!(matches!(
        c.frame_header(Part::More, 1, &mut k),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        c.frame_header(Part::Last, 1, &mut k),
        Err(ClientError::Invalid(_))
    ));
    let mut out = Vec::new();
    for part in [Part::First(MessageKind::Text), Part::More, Part::Last] {
        let h = c.frame_header(part, 1, &mut k).unwrap();
        write_masked(&mut out, &h, &[b"x"]);
        if part != Part::Last {
            assert!(matches!(
                c.frame_header(Part::Whole(MessageKind::Binary), 1, &mut k),
                Err(ClientError::Invalid(_))
            ));
        }
    }
    let f = frames(&out);
    assert_eq!(
        f.iter().map(|(fin, op, _)| (*fin, *op)).collect::<Vec<_>>(),
        vec![(false, opcode::TEXT), (false, 0), (true, 0)]
    );
}

#[test]
fn pings_are_answered_with_their_payload() {
    let (mut c, mut k) = conn();
    let mut buf = server(true, opcode::PING, b"are you there");
    let (n, ev) = c.handle_input(&mut buf, 1 << 16, &mut k, 1).unwrap();
    assert_eq!(n, buf.len());
    assert_eq!(ev, Some(Event::Ping(2..15)));
    assert_eq!(
        frames(c.pending()),
        vec![(true, opcode::PONG, b"are you there".to_vec())]
    );
    let all = c.pending().len();
    c.sent(all);
    assert!(c.pending().is_empty());
}

#[test]
fn control_payloads_are_bounded() {
    let (mut c, mut k) = conn();
    assert!(matches!(
        c.ping(&[0; 126], &mut k),
        Err(ClientError::Invalid(_))
    ));
    c.ping(&[0; 125], &mut k).unwrap();
    c.pong(b"beat", &mut k).unwrap();
    assert_eq!(
        frames(c.pending())[1],
        (true, opcode::PONG, b"beat".to_vec())
    );
}

#[test]
fn server_close_is_answered_then_tcp_left_to_the_server() {
    let (mut c, mut k) = conn();
    let mut buf = server(true, opcode::CLOSE, &[0x0F, 0xA0, b'b', b'y', b'e']); // 4000
    let (_, ev) = c.handle_input(&mut buf, 1 << 16, &mut k, 10).unwrap();
    assert!(matches!(
        ev,
        Some(Event::Close {
            code: Some(4000),
            ..
        })
    ));
    assert_eq!(
        frames(c.pending()),
        vec![(true, opcode::CLOSE, vec![0x0F, 0xA0])]
    );
    assert_eq!(c.stage(), Stage::Closing);
    assert_eq!(
        c.close_frame(),
        Some(&CloseFrame {
            code: Some(4000),
            reason: "bye".into()
        })
    );
    // Nothing more may be sent; what arrives now is dropped.
    assert!(matches!(
        c.frame_header(Part::Whole(MessageKind::Text), 1, &mut k),
        Err(ClientError::Closed)
    ));
    assert!(matches!(c.ping(b"", &mut k), Err(ClientError::Closed)));
    let mut more = server(true, opcode::TEXT, b"late");
    assert_eq!(
        c.handle_input(&mut more, 1 << 16, &mut k, 11),
        Ok((6, None))
    );
    // The client waits for the server to end TCP...
    assert_eq!(c.deadline(), Some(5010));
    c.on_timeout(5009);
    assert_eq!(c.stage(), Stage::Closing);
    c.on_eof();
    assert_eq!(c.stage(), Stage::Done);
    // ...or for the deadline, and only then ends it itself.
    let (mut c, mut k) = conn();
    let mut buf = server(true, opcode::CLOSE, b"");
    c.handle_input(&mut buf, 1 << 16, &mut k, 10).unwrap();
    assert_eq!(frames(c.pending()), vec![(true, opcode::CLOSE, vec![])]);
    c.on_timeout(5010);
    assert_eq!(c.stage(), Stage::Done);
}

#[test]
fn our_close_then_the_servers() {
    let (mut c, mut k) = conn();
    assert!(matches!(
        c.close(1005, "", &mut k, 0),
        Err(ClientError::Invalid(_))
    ));
    assert!(matches!(
        c.close(1000, &"x".repeat(124), &mut k, 0),
        Err(ClientError::Invalid(_))
    ));
    c.close(1000, "done", &mut k, 100).unwrap();
    assert_eq!(
        frames(c.pending()),
        vec![(true, opcode::CLOSE, b"\x03\xe8done".to_vec())]
    );
    assert_eq!(c.stage(), Stage::CloseSent);
    assert!(matches!(
        c.close(1000, "", &mut k, 0),
        Err(ClientError::Closed)
    ));
    // Data the server sent before its close still arrives; its pings are
    // not answered any more.
    let mut buf = server(true, opcode::TEXT, b"still");
    buf.extend(server(true, opcode::PING, b""));
    buf.extend(server(true, opcode::CLOSE, &[0x03, 0xE8]));
    let all = c.pending().len();
    c.sent(all);
    let (n, ev) = c.handle_input(&mut buf, 1 << 16, &mut k, 101).unwrap();
    assert!(matches!(ev, Some(Event::Data { .. })));
    let (m, ev) = c.handle_input(&mut buf[n..], 1 << 16, &mut k, 101).unwrap();
    assert_eq!(ev, Some(Event::Ping(2..2)));
    let (_, ev) = c
        .handle_input(&mut buf[n + m..], 1 << 16, &mut k, 101)
        .unwrap();
    assert!(matches!(
        ev,
        Some(Event::Close {
            code: Some(1000),
            ..
        })
    ));
    assert!(c.pending().is_empty(), "no pong and no second close");
    assert_eq!(c.stage(), Stage::Closing);
    // A server that never answers our close: the deadline ends it.
    let (mut c, mut k) = conn();
    c.close(1000, "", &mut k, 100).unwrap();
    c.on_timeout(5099);
    assert_eq!(c.stage(), Stage::CloseSent);
    c.on_timeout(5100);
    assert_eq!(c.stage(), Stage::Done);
}

#[test]
fn broken_rules_fail_with_their_close_code() {
    for (bytes, code) in [
        (vec![0x81, 0x81, 1, 2, 3, 4, 0], 1002), // masked server frame
        (server(true, opcode::TEXT, &[0xC0]), 1007), // not UTF-8
        (vec![0x82, 127, 0, 0, 0, 0, 0, 0x20, 0, 0], 1009), // 2 MiB
        (vec![0xF1, 0], 1002),                   // reserved bits
    ] {
        let (mut c, mut k) = conn();
        let mut buf = bytes.clone();
        let e = c.handle_input(&mut buf, 1 << 16, &mut k, 7).unwrap_err();
        assert_eq!(e.close_code(), code);
        assert_eq!(c.failure(), Some(e));
        assert_eq!(
            frames(c.pending()),
            vec![(true, opcode::CLOSE, code.to_be_bytes().to_vec())]
        );
        assert_eq!(c.stage(), Stage::Closing);
        assert_eq!(c.deadline(), Some(5007));
        let mut more = server(true, opcode::TEXT, b"x");
        assert_eq!(c.handle_input(&mut more, 1 << 16, &mut k, 8), Ok((3, None)));
    }
}
