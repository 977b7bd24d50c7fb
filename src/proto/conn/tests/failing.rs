//! Failing a connection (§7.1.7): when the core can still follow the byte
//! stream to the peer's close it waits for it; when the error is at a frame
//! header declaring more than twice `max_message`, whose payload would be
//! skipped unread, it is done at once, so the shell closes TCP without
//! waiting out `close_timeout`.

use super::*;

/// A masked data frame header declaring `len` payload bytes, none sent.
fn header_only(fin: bool, op: u8, len: u64) -> Vec<u8> {
    let mut v = vec![0u8; frame::MAX_HEADER];
    let n = frame::encode(&mut v, fin, op, len, Some([9, 8, 7, 6]));
    v.truncate(n);
    v
}

fn close_frame(code: u16) -> Vec<u8> {
    msg(opcode::CLOSE, &code.to_be_bytes())
}

#[test]
fn a_frame_too_long_to_follow_is_refused_and_the_connection_ends_at_once() {
    let huge = header_only(true, opcode::BINARY, 1 << 40);
    let mut d = Driver::new(small(4608), 4608);
    d.feed(&open_with(std::slice::from_ref(&huge)));
    assert_eq!(d.conn.state(), State::Closed);
    assert_eq!(d.conn.deadline(), None, "no close deadline to wait out");
    let seen = observe(&d.wire);
    assert_eq!(seen.close, Some(Some(1009)));
    assert!(!seen.junk);

    // The peer's close right behind it changes nothing, however it is cut.
    let (seen, state) = conversation(&open_with(&[huge, close_frame(1000)]), &small(4608));
    assert_eq!(seen.close, Some(Some(1009)));
    assert!(!seen.junk && seen.messages.is_empty());
    assert_eq!(state, State::Closed);
}

#[test]
fn a_frame_a_little_over_the_limit_is_skipped_and_the_close_awaited() {
    let s = Settings {
        max_message: 1000,
        ..small(4608)
    };
    // Just over, and as far over as still waits (twice the limit).
    for len in [1001usize, 2000] {
        let over = msg(opcode::BINARY, &vec![7; len]);
        let (seen, state) = conversation(&open_with(std::slice::from_ref(&over)), &s);
        assert_eq!(seen.close, Some(Some(1009)), "len {len}");
        assert_eq!(state, State::CloseSent, "len {len}: waits for the close");
        let (seen, state) = conversation(&open_with(&[over, close_frame(1009)]), &s);
        assert_eq!(seen.close, Some(Some(1009)), "len {len}");
        assert!(!seen.junk && seen.messages.is_empty(), "len {len}");
        assert_eq!(
            state,
            State::Closed,
            "len {len}: the close behind it is read"
        );
    }
    // One byte more: done at once.
    let (seen, state) = conversation(&open_with(&[header_only(true, opcode::BINARY, 2001)]), &s);
    assert_eq!(seen.close, Some(Some(1009)));
    assert_eq!(state, State::Closed);
    // Over the limit only with an earlier fragment counted: still waits.
    let (seen, state) = conversation(
        &open_with(&[
            client_frame(false, opcode::BINARY, &[1; 600], [1; 4]),
            client_frame(true, opcode::CONTINUATION, &[1; 401], [1; 4]),
            close_frame(1009),
        ]),
        &s,
    );
    assert_eq!(seen.close, Some(Some(1009)));
    assert_eq!(state, State::Closed);
}

#[test]
fn out_of_sequence_frames_wait_unless_their_length_is_out_of_reach() {
    for (len, end) in [(1u64, State::CloseSent), (1 << 40, State::Closed)] {
        let stray = header_only(true, opcode::CONTINUATION, len);
        let (seen, state) = conversation(&open_with(&[stray]), &small(4608));
        assert_eq!(seen.close, Some(Some(1002)), "len {len}");
        assert_eq!(state, end, "len {len}");

        let open = client_frame(false, opcode::TEXT, b"a", [1; 4]);
        let intruder = header_only(true, opcode::BINARY, len);
        let (seen, state) = conversation(&open_with(&[open, intruder]), &small(4608));
        assert_eq!(seen.close, Some(Some(1002)), "len {len}");
        assert_eq!(seen.partial, 1, "the first fragment was echoed");
        assert_eq!(state, end, "len {len}");
    }
}

#[test]
fn invalid_utf8_in_a_payload_waits_for_the_peer_close() {
    let s = small(4608);
    // The bad byte comes first; the rest of the frame is still in flight.
    let mut bad = vec![0xFF];
    bad.extend_from_slice(&[b'x'; 3000]);
    let frame = msg(opcode::TEXT, &bad);
    let mut d = Driver::new(s.clone(), 4608);
    d.feed(&open_with(&[frame[..100].to_vec()]));
    assert_eq!(d.conn.state(), State::CloseSent);
    assert_eq!(d.conn.deadline(), Some(d.now + millis(s.close_timeout)));
    assert_eq!(observe(&d.wire).close, Some(Some(1007)));
    // The rest of the frame is skipped, and the peer's close behind it is
    // still recognised: the closing handshake completes.
    d.feed(&frame[100..]);
    assert_eq!(d.conn.state(), State::CloseSent);
    d.feed(&close_frame(1007));
    assert_eq!(d.conn.state(), State::Closed);
    let seen = observe(&d.wire);
    assert_eq!(seen.close, Some(Some(1007)));
    assert!(!seen.junk && seen.messages.is_empty());
}
