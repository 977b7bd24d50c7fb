//! The I/O shell over an in-memory transport that can refuse writes, split
//! reads and report end of stream: backpressure, partial writes, half-close
//! and buffer return, without sockets.

use std::collections::VecDeque;

use super::*;
use crate::conn::millis;
use crate::conn_id::ConnId;
use crate::frame::{self, opcode, Role};
use crate::service::{Echo, Service};
use crate::testutil::{client_frame, request};
use std::io::IoSlice;

/// A fake socket. `accept` is how many more bytes writes may take (then
/// `WouldBlock`); reads hand out at most `read_chunk` bytes at a time.
struct Mem {
    input: VecDeque<u8>,
    eof: bool,
    read_chunk: usize,
    output: Vec<u8>,
    accept: usize,
    fin_sent: bool,
}

impl Mem {
    fn new() -> Mem {
        Mem {
            input: VecDeque::new(),
            eof: false,
            read_chunk: usize::MAX,
            output: Vec::new(),
            accept: usize::MAX,
            fin_sent: false,
        }
    }
}

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(self.read_chunk).min(self.input.len());
        for (d, s) in buf.iter_mut().zip(self.input.drain(..n)) {
            *d = s;
        }
        Ok(n)
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        assert!(!self.fin_sent, "write after FIN");
        if self.accept == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.accept);
        self.accept -= n;
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut total = 0;
        for b in bufs {
            match self.write(b) {
                Ok(n) => {
                    total += n;
                    if n < b.len() {
                        break;
                    }
                }
                Err(e) if total == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Mem {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.fin_sent = true;
        Ok(())
    }
}

fn shared(max_backlog: usize) -> Shared<Echo> {
    shared_with(max_backlog, Echo)
}

fn shared_with<S>(max_backlog: usize, service: S) -> Shared<S> {
    let settings = Settings {
        chunk_size: 1024,
        ..Settings::default()
    };
    Shared::new(
        settings,
        Pool::new(16 << 10, 8, 0),
        Pool::new(4096, 64, 0),
        max_backlog,
        service,
    )
}

/// Every data message in a server byte stream after the 101 head.
fn messages(wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let head = crate::handshake::find_header_end(wire, 0).expect("101 head");
    assert!(wire.starts_with(b"HTTP/1.1 101"));
    let mut rest = &wire[head..];
    let mut out = Vec::new();
    let mut cur: Option<(u8, Vec<u8>)> = None;
    while let Ok(Some(h)) = frame::decode(rest, Role::FromServer) {
        let end = h.header_len + h.len as usize;
        if rest.len() < end {
            break;
        }
        let p = &rest[h.header_len..end];
        match h.opcode {
            opcode::CONTINUATION => cur.as_mut().unwrap().1.extend_from_slice(p),
            op if !opcode::is_control(op) => cur = Some((op, p.to_vec())),
            _ => {}
        }
        if h.fin && !opcode::is_control(h.opcode) {
            out.push(cur.take().unwrap());
        }
        rest = &rest[end..];
    }
    out
}

/// Run the session the way an edge-triggered loop would until nothing is
/// left to do: readable while the fake socket has input (or its FIN is
/// unseen), writable whenever it takes bytes, again on `More`. A `refill`
/// hook reopens the peer's window each turn.
fn drive(
    s: &mut Session<()>,
    io: &mut Mem,
    sh: &mut Shared<Echo>,
    mut refill: impl FnMut(&mut Mem),
) -> Progress {
    for _ in 0..100_000 {
        refill(io);
        let mut p = s.on_writable(io, sh, 4);
        if p != Progress::Done && (!io.input.is_empty() || io.eof) {
            if io.eof {
                s.set_read_closed();
            }
            p = s.on_readable(io, sh, 4);
        }
        if p == Progress::Done {
            return p;
        }
        if io.input.is_empty() && s.pending_output() == 0 && p != Progress::More {
            return p;
        }
    }
    panic!("session did not settle");
}

fn upgraded<S: Service<State = ()>>(sh: &mut Shared<S>) -> (Session<()>, Mem) {
    let mut s = Session::new(sh.now, &sh.settings, ConnId::new(1, 1));
    let mut io = Mem::new();
    io.input.extend(request());
    assert_eq!(s.on_readable(&mut io, sh, 4), Progress::Idle);
    (s, io)
}

#[test]
fn idle_connection_holds_no_buffer() {
    let mut sh = shared(1 << 20);
    let (mut s, mut io) = upgraded(&mut sh);
    io.input
        .extend(client_frame(true, opcode::TEXT, b"hi", [1, 2, 3, 4]));
    assert_eq!(s.on_readable(&mut io, &mut sh, 4), Progress::Idle);
    assert_eq!(messages(&io.output), vec![(opcode::TEXT, b"hi".to_vec())]);
    assert_eq!(s.holds_buffers(), (false, false));
    assert_eq!(sh.read_pool.in_use() + sh.write_pool.in_use(), 0);
}

#[test]
fn a_partial_frame_waits_in_a_spill_buffer_not_a_read_buffer() {
    let mut sh = shared(1 << 20);
    let (mut s, mut io) = upgraded(&mut sh);
    let f = client_frame(true, opcode::BINARY, &[9; 100], [1, 2, 3, 4]);
    io.input.extend(&f[..50]);
    s.on_readable(&mut io, &mut sh, 4);
    assert_eq!(s.holds_buffers(), (true, false));
    assert_eq!((sh.read_pool.in_use(), sh.spill.in_use()), (0, 1));
    io.input.extend(&f[50..]);
    s.on_readable(&mut io, &mut sh, 4);
    assert_eq!(s.holds_buffers(), (false, false));
    assert_eq!((sh.read_pool.in_use(), sh.spill.in_use()), (0, 0));
    assert_eq!(messages(&io.output), vec![(opcode::BINARY, vec![9; 100])]);
}

#[test]
fn byte_by_byte_input_never_holds_a_read_buffer_between_reads() {
    let mut sh = shared(1 << 20);
    let (mut s, mut io) = upgraded(&mut sh);
    let text = "héllo wörld, ".repeat(40);
    let mut wire = client_frame(true, opcode::PING, b"are you there", [5, 6, 7, 8]);
    // Fragmented text with a code point cut by the fragment boundary.
    let (a, b) = text.as_bytes().split_at(12);
    wire.extend(client_frame(false, opcode::TEXT, a, [1, 2, 3, 4]));
    wire.extend(client_frame(true, opcode::CONTINUATION, b, [4, 3, 2, 1]));
    wire.extend(client_frame(true, opcode::BINARY, &[7; 300], [9, 9, 9, 9]));
    for &byte in &wire {
        io.input.push_back(byte);
        assert_ne!(s.on_readable(&mut io, &mut sh, 4), Progress::Done);
        assert_eq!(sh.read_pool.in_use(), 0, "a read buffer outlived a read");
        assert!(sh.spill.in_use() <= 1);
    }
    let got = messages(&io.output);
    assert_eq!(
        got,
        vec![
            (opcode::TEXT, text.as_bytes().to_vec()),
            (opcode::BINARY, vec![7; 300])
        ]
    );
    assert!(
        io.output.windows(15).any(|w| w == b"\x8a\x0dare you there"),
        "the ping was answered"
    );
    assert_eq!(s.holds_buffers(), (false, false));
    assert_eq!(sh.spill.in_use(), 0);
}

#[test]
fn a_peer_that_does_not_read_stops_being_read_and_loses_nothing() {
    let max_backlog = 64 << 10;
    let mut sh = shared(max_backlog);
    let (mut s, mut io) = upgraded(&mut sh);
    let msgs: Vec<Vec<u8>> = (0..400u32)
        .map(|i| {
            let mut m = i.to_be_bytes().to_vec();
            m.resize(500 + (i as usize % 300), i as u8);
            m
        })
        .collect();
    for m in &msgs {
        io.input
            .extend(client_frame(true, opcode::BINARY, m, [7, 7, 7, 7]));
    }
    let sent = io.input.len();
    io.accept = 0; // the peer's window is closed
    for _ in 0..100 {
        s.on_readable(&mut io, &mut sh, 4);
    }
    assert!(s.pending_output() <= max_backlog, "backlog bounded");
    assert!(s.read_blocked, "reading stopped");
    assert!(
        !io.input.is_empty(),
        "the rest waits in the kernel, not in us"
    );
    assert!(sent - io.input.len() < max_backlog + 20_000);
    // The peer reads again: a writable edge resumes everything.
    io.accept = usize::MAX;
    drive(&mut s, &mut io, &mut sh, |_| {});
    let got = messages(&io.output);
    assert_eq!(got.len(), msgs.len());
    assert!(
        got.iter().zip(&msgs).all(|(g, m)| &g.1 == m),
        "echoes differ"
    );
    assert_eq!(s.holds_buffers(), (false, false));
    assert_eq!(sh.write_pool.in_use(), 0);
}

#[test]
fn a_backlog_longer_than_one_writev_drains_on_one_writable_edge() {
    let mut sh = shared(4 << 20);
    let (mut s, mut io) = upgraded(&mut sh);
    let big = vec![0xAB; 1 << 20];
    io.input
        .extend(client_frame(true, opcode::BINARY, &big, [1, 2, 3, 4]));
    io.accept = 0;
    for _ in 0..200 {
        s.on_readable(&mut io, &mut sh, 4);
    }
    assert!(
        s.pending_output() > BACKLOG_IOV * 4096,
        "many blocks queued"
    );
    io.accept = usize::MAX;
    s.on_writable(&mut io, &mut sh, 4);
    assert_eq!(s.pending_output(), 0, "all of it went on this edge");
    assert_eq!(messages(&io.output), vec![(opcode::BINARY, big)]);
}

#[test]
fn writes_taken_a_few_bytes_at_a_time_keep_order() {
    let mut sh = shared(1 << 20);
    let (mut s, mut io) = upgraded(&mut sh);
    let msgs: Vec<Vec<u8>> = (0..50u8).map(|i| vec![i; 10 + i as usize * 37]).collect();
    for m in &msgs {
        io.input
            .extend(client_frame(true, opcode::BINARY, m, [3, 1, 4, 1]));
    }
    io.read_chunk = 333;
    drive(&mut s, &mut io, &mut sh, |io| io.accept = 7);
    let got: Vec<Vec<u8>> = messages(&io.output).into_iter().map(|m| m.1).collect();
    assert!(got == msgs, "echoes differ");
}

#[test]
fn half_close_still_gets_its_echo() {
    let mut sh = shared(1 << 20);
    let (mut s, mut io) = upgraded(&mut sh);
    io.input.extend(client_frame(
        true,
        opcode::TEXT,
        b"last words",
        [1, 1, 1, 1],
    ));
    io.eof = true;
    let p = drive(&mut s, &mut io, &mut sh, |io| io.accept = 3);
    assert_eq!(p, Progress::Done);
    assert_eq!(
        messages(&io.output),
        vec![(opcode::TEXT, b"last words".to_vec())]
    );
    s.release(&mut sh);
    assert_eq!(sh.read_pool.in_use() + sh.write_pool.in_use(), 0);
}

#[test]
fn close_handshake_sends_fin_then_waits_for_the_peer() {
    let mut sh = shared(1 << 20);
    let (mut s, mut io) = upgraded(&mut sh);
    io.input.extend(client_frame(
        true,
        opcode::CLOSE,
        &1000u16.to_be_bytes(),
        [5; 4],
    ));
    let p = s.on_readable(&mut io, &mut sh, 4);
    assert!(io.fin_sent, "server closes TCP first");
    assert_eq!(p, Progress::More);
    assert_eq!(s.deadline(sh.stall_timeout), Some(sh.now + millis(LINGER)));
    io.eof = true;
    assert_eq!(s.on_readable(&mut io, &mut sh, 4), Progress::Done);
    assert!(io.output.ends_with(&[0x88, 0x02, 0x03, 0xE8]));
}

#[test]
fn refused_request_gets_its_response_then_fin() {
    let mut sh = shared(1 << 20);
    let mut s = Session::new(sh.now, &sh.settings, ConnId::new(1, 1));
    let mut io = Mem::new();
    io.input.extend(b"POST / HTTP/1.1\r\nHost: x\r\n\r\n");
    s.on_readable(&mut io, &mut sh, 4);
    assert!(io.output.starts_with(b"HTTP/1.1 405"));
    assert!(io.fin_sent);
}

#[test]
fn stalled_handshake_times_out() {
    let mut sh = shared(1 << 20);
    let mut s = Session::new(sh.now, &sh.settings, ConnId::new(1, 1));
    let mut io = Mem::new();
    io.input.extend(b"GET / HTTP/1.1\r\nHost");
    s.on_readable(&mut io, &mut sh, 4);
    let d = s.deadline(sh.stall_timeout).expect("handshake deadline");
    sh.now = d - 1;
    assert_eq!(s.on_timeout(&mut io, &mut sh), Progress::Idle);
    sh.now = d;
    assert_eq!(s.on_timeout(&mut io, &mut sh), Progress::Done);
    s.release(&mut sh);
    assert_eq!(sh.read_pool.in_use(), 0);
}

#[test]
fn an_idle_session_is_small() {
    // Every connection pays this, buffers or not: keep it within the budget
    // that makes an idle connection cost under 256 bytes of heap with its
    // socket and slab slot (the connection id and the pooled message
    // buffer's pointer included).
    assert!(
        std::mem::size_of::<Session<()>>() <= 120,
        "{}",
        std::mem::size_of::<Session<()>>()
    );
}

#[test]
fn a_stalled_peer_is_dropped_after_the_stall_timeout() {
    let mut sh = shared(1 << 20);
    sh.stall_timeout = 5_000;
    sh.min_drain_rate = 0;
    let (mut s, mut io) = upgraded(&mut sh);
    io.input
        .extend(client_frame(true, opcode::BINARY, &[1; 1000], [1, 2, 3, 4]));
    io.accept = 10; // takes a little, then nothing
    s.on_readable(&mut io, &mut sh, 4);
    let t0 = sh.now;
    assert_eq!(s.deadline(sh.stall_timeout), Some(t0 + 5_000));
    // Progress does not move the window's end...
    sh.now = t0 + 4_000;
    io.accept = 100;
    s.on_writable(&mut io, &mut sh, 4);
    assert_eq!(s.deadline(sh.stall_timeout), Some(t0 + 5_000));
    sh.now = t0 + 4_999;
    assert_eq!(s.on_timeout(&mut io, &mut sh), Progress::Idle);
    // ...but with no minimum rate it earns another window.
    sh.now = t0 + 5_000;
    assert_eq!(s.on_timeout(&mut io, &mut sh), Progress::Idle);
    assert_eq!(s.deadline(sh.stall_timeout), Some(t0 + 10_000));
    assert_eq!(sh.metrics.slow_readers_dropped, 0);
    // A window with nothing taken at all ends it.
    sh.now = t0 + 10_000;
    assert_eq!(s.on_timeout(&mut io, &mut sh), Progress::Done);
    assert_eq!(sh.metrics.slow_readers_dropped, 1);
}

/// Answers each text message with a 10 KiB binary message, then says
/// "drained" when told its output has gone out. Logs send statuses.
struct Big(std::rc::Rc<std::cell::RefCell<Vec<String>>>);

impl Service for Big {
    type State = ();
    fn open(&mut self, _req: &crate::service::Request<'_>, _cx: &mut crate::Context<'_>) {}
    fn whole(&mut self, _st: &mut (), _msg: crate::Message<'_>, cx: &mut crate::Context<'_>) {
        let st = cx.send_binary(&[9u8; 10 << 10]);
        self.0.borrow_mut().push(format!("{st:?}"));
    }
    fn drain(&mut self, _st: &mut (), cx: &mut crate::Context<'_>) {
        let st = cx.send_text("drained");
        self.0.borrow_mut().push(format!("drain {st:?}"));
    }
}

#[test]
fn a_large_send_goes_out_at_once_and_drain_follows_its_backlog() {
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let mut sh = shared_with(1 << 20, Big(log.clone()));
    let (mut s, mut io) = upgraded(&mut sh);
    let head = io.output.len();
    // The socket takes 3000 bytes: the first reply is partly written, the
    // rest waits in the backlog.
    io.accept = 3000;
    io.input
        .extend(client_frame(true, opcode::TEXT, b"go", [1, 2, 3, 4]));
    assert_eq!(s.on_readable(&mut io, &mut sh, 4), Progress::Idle);
    assert_eq!(io.output.len(), head + 3000);
    assert_eq!(s.pending_output(), (10 << 10) + 4 - 3000);
    assert_eq!(*log.borrow(), ["Backpressure"]);
    // A second message while the first reply waits: queued behind it.
    io.input
        .extend(client_frame(true, opcode::TEXT, b"again", [1, 2, 3, 4]));
    assert_eq!(s.on_readable(&mut io, &mut sh, 4), Progress::Idle);
    assert_eq!(*log.borrow(), ["Backpressure", "Backpressure"]);
    // The socket drains: everything goes out in order, then `drain`.
    io.accept = usize::MAX;
    assert_eq!(s.on_writable(&mut io, &mut sh, 4), Progress::Idle);
    assert_eq!(
        *log.borrow(),
        ["Backpressure", "Backpressure", "drain Sent"]
    );
    let m = messages(&io.output);
    assert_eq!(m.len(), 3);
    assert_eq!(m[0], (opcode::BINARY, vec![9u8; 10 << 10]));
    assert_eq!(m[1], (opcode::BINARY, vec![9u8; 10 << 10]));
    assert_eq!(m[2], (opcode::TEXT, b"drained".to_vec()));
    assert_eq!(s.pending_output(), 0);
    assert_eq!(sh.metrics.messages_out, 3);
    assert_eq!(sh.write_pool.in_use(), 0);
}

#[test]
fn sends_past_the_backlog_limit_are_dropped_and_counted() {
    let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    // Room for two 10 KiB replies in the backlog, not three.
    let limit = (16 << 10) + Shared::<()>::extra();
    let mut sh = shared_with(limit, Big(log.clone()));
    let (mut s, mut io) = upgraded(&mut sh);
    io.accept = 0;
    for _ in 0..3 {
        io.input
            .extend(client_frame(true, opcode::TEXT, b"go", [1, 2, 3, 4]));
    }
    assert_eq!(s.on_readable(&mut io, &mut sh, 4), Progress::Idle);
    assert_eq!(*log.borrow(), ["Backpressure", "Backpressure", "Dropped"]);
    assert!(s.pending_output() <= limit);
    assert_eq!(sh.metrics.sends_dropped, 1);
    assert_eq!(sh.metrics.messages_out, 2);
    let mut text = Vec::new();
    sh.metrics.render(sh.gauges(), &mut text);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("\nzerows_sends_dropped_total 1\n"), "{text}");
}

/// A message of `n` zeros compressed as a client would send it (raw
/// deflate, sync flush, tail cut), RSV1 set, masked.
fn packed_zeros(n: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let mut z = Compress::new(Compression::new(6), false);
    let mut p = Vec::with_capacity(n / 100 + 64);
    z.compress_vec(&vec![0u8; n], &mut p, FlushCompress::Sync)
        .unwrap();
    p.truncate(p.len() - 4);
    let mut f = client_frame(true, opcode::BINARY, &p, [3, 1, 4, 1]);
    f[0] |= frame::RSV1;
    f
}

#[test]
fn an_inflated_echo_to_a_peer_that_does_not_read_stays_within_the_backlog() {
    // The client asks for a 10-bit server window and does not let the
    // server cap its own: its compressed messages cannot go back as they
    // came, so the echo is the inflated bytes, far more than was read.
    let max_backlog = 256 << 10;
    let mut sh = shared(max_backlog);
    let mut s = Session::new(sh.now, &sh.settings, ConnId::new(1, 1));
    let mut io = Mem::new();
    let req = String::from_utf8(request()).unwrap().replace(
        "\r\n\r\n",
        "\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n\r\n",
    );
    io.input.extend(req.as_bytes());
    assert_eq!(s.on_readable(&mut io, &mut sh, 4), Progress::Idle);
    assert!(s.core().deflate().is_some_and(|t| !t.echo_as_is()));
    // 40 messages of 200 KiB each, about 8 MiB inflated from some 12 KiB.
    for _ in 0..40 {
        io.input.extend(packed_zeros(200 << 10));
    }
    io.accept = 0;
    for _ in 0..200 {
        s.on_readable(&mut io, &mut sh, 4);
    }
    let bound = max_backlog + crate::deflate::PASS_BUDGET as usize + (200 << 10);
    assert!(
        s.pending_output() <= bound,
        "{} unsent bytes, over {bound}",
        s.pending_output()
    );
    io.accept = usize::MAX;
    drive(&mut s, &mut io, &mut sh, |_| {});
    let got = messages(&io.output);
    assert_eq!(got.len(), 40);
    assert!(got
        .iter()
        .all(|(op, m)| *op == opcode::BINARY && m.len() == 200 << 10 && m.iter().all(|&b| b == 0)));
}

mod drain;
