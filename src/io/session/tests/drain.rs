//! The minimum drain rate: while output waits, a peer must take at least
//! `min_drain_rate` bytes per second over each window of `stall_timeout`.
//! Time is an argument (`Shared::now`), so these run without sleeping.

use super::*;

/// Window and rate of these tests: 10 s windows, 1000 B/s, so a window
/// needs 10,000 bytes taken.
const WINDOW: Millis = 10_000;
const RATE: u64 = 1000;

/// A session whose echo of a 200 KB message waits whole in the backlog
/// (the peer takes nothing yet); returns it with the time its wait began.
fn waiting() -> (Session<()>, Mem, Shared<Echo>, Millis) {
    let mut sh = shared(1 << 20);
    sh.stall_timeout = WINDOW;
    sh.min_drain_rate = RATE;
    let (mut s, mut io) = upgraded(&mut sh);
    io.accept = 0;
    io.input.extend(client_frame(
        true,
        opcode::BINARY,
        &[5; 200_000],
        [1, 2, 3, 4],
    ));
    while !io.input.is_empty() {
        assert_ne!(s.on_readable(&mut io, &mut sh, 4), Progress::Done);
    }
    assert!(s.pending_output() > 200_000, "the echo waits");
    let t0 = sh.now;
    assert_eq!(s.deadline(sh.stall_timeout), Some(t0 + WINDOW));
    (s, io, sh, t0)
}

/// The peer reads `per_sec` bytes each second for `secs` seconds, the
/// loop acting on every writable edge and due deadline. Returns the first
/// `Done`'s time, if any.
fn trickle(
    s: &mut Session<()>,
    io: &mut Mem,
    sh: &mut Shared<Echo>,
    t0: Millis,
    per_sec: usize,
    secs: u64,
) -> Option<Millis> {
    for sec in 1..=secs {
        sh.now = t0 + sec * 1000;
        io.accept = per_sec;
        if s.on_writable(io, sh, 4) == Progress::Done {
            return Some(sh.now);
        }
        if s.deadline(sh.stall_timeout).is_some_and(|d| d <= sh.now)
            && s.on_timeout(io, sh) == Progress::Done
        {
            return Some(sh.now);
        }
    }
    None
}

#[test]
fn a_peer_reading_above_the_rate_keeps_its_connection_window_after_window() {
    let (mut s, mut io, mut sh, t0) = waiting();
    // 2000 B/s for five windows: 100 KB of the 200 KB taken.
    assert_eq!(trickle(&mut s, &mut io, &mut sh, t0, 2000, 50), None);
    assert!(s.pending_output() > 0, "output waited throughout");
    assert_eq!(io.output.len() - head_len(&io.output), 100_000);
    assert_eq!(s.deadline(sh.stall_timeout), Some(t0 + 6 * WINDOW));
    assert_eq!(sh.metrics.slow_readers_dropped, 0);
}

#[test]
fn a_peer_reading_below_the_rate_is_dropped_when_its_window_ends() {
    let (mut s, mut io, mut sh, t0) = waiting();
    // 500 B/s: it moves every second, yet only 5,000 of 10,000 bytes.
    assert_eq!(
        trickle(&mut s, &mut io, &mut sh, t0, 500, 50),
        Some(t0 + WINDOW)
    );
    assert_eq!(io.output.len() - head_len(&io.output), 5_000);
    assert_eq!(sh.metrics.slow_readers_dropped, 1);
    let mut text = Vec::new();
    sh.metrics.render(sh.gauges(), &mut text);
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("\nzerows_slow_readers_dropped_total 1\n"),
        "{text}"
    );
}

#[test]
fn room_no_writable_edge_announced_counts_at_the_window_end() {
    let (mut s, mut io, mut sh, t0) = waiting();
    // The peer read enough during the window, but the kernel's threshold
    // for a writable edge was never crossed: only the window's end finds
    // the room.
    sh.now = t0 + WINDOW;
    io.accept = 12_000;
    assert_eq!(s.on_timeout(&mut io, &mut sh), Progress::Idle);
    assert_eq!(io.output.len() - head_len(&io.output), 12_000);
    assert_eq!(s.deadline(sh.stall_timeout), Some(t0 + 2 * WINDOW));
    // The next window starts from nothing.
    sh.now = t0 + 2 * WINDOW;
    assert_eq!(s.on_timeout(&mut io, &mut sh), Progress::Done);
}

#[test]
fn an_emptied_backlog_stops_the_clock_and_a_new_wait_counts_afresh() {
    let (mut s, mut io, mut sh, t0) = waiting();
    sh.now = t0 + 1000;
    io.accept = usize::MAX;
    assert_eq!(s.on_writable(&mut io, &mut sh, 4), Progress::Idle);
    assert_eq!(s.pending_output(), 0);
    let core = s.core().deadline();
    assert_eq!(s.deadline(sh.stall_timeout), core, "no drain window");
    // Output waits again: the 200 KB taken before do not count for it.
    io.accept = 0;
    io.input.extend(client_frame(
        true,
        opcode::BINARY,
        &[6; 50_000],
        [4, 3, 2, 1],
    ));
    while !io.input.is_empty() {
        assert_ne!(s.on_readable(&mut io, &mut sh, 4), Progress::Done);
    }
    let t1 = sh.now;
    assert_eq!(s.deadline(sh.stall_timeout), Some(t1 + WINDOW));
    sh.now = t1 + WINDOW;
    assert_eq!(s.on_timeout(&mut io, &mut sh), Progress::Done);
    assert_eq!(sh.metrics.slow_readers_dropped, 1);
}

/// Length of the 101 response head at the start of `wire`.
fn head_len(wire: &[u8]) -> usize {
    crate::handshake::find_header_end(wire, 0).expect("101 head")
}
