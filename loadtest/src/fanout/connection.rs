//! One connection of a fan-out run, a subscriber (connection 0 publishes
//! as well): its state, its socket I/O, the frames it receives and the
//! check of every message delivered to it.
//!
//! Invariants:
//! - States only move forward (Connecting → Handshaking → Open → Closing →
//!   Done; any of them may end in Done). A Done connection is not read
//!   again and its socket is shut down.
//! - Reads go into one buffer shared by all connections and allocate
//!   nothing; what is left of a partial frame (or handshake response) is
//!   carried for its connection only, at most one frame, bounded by
//!   [`MAX_RESPONSE`] or a message plus its header.
//! - A data frame longer than a published message, or a fragmented message
//!   growing past that length, is refused, so the memory per connection is
//!   bounded.
//! - Every whole message is checked (publisher tag, sequence number through
//!   [`SeqCheck`], length, pattern, opcode) before it counts as delivered;
//!   every fault is counted in the [`Tally`] and the first one described.

use std::io::{ErrorKind, Read, Write};

use mio::net::TcpStream;
use zerows::frame::{self, opcode, Role, MAX_HEADER};
use zerows::mask;

use super::sequence::{SeqCheck, Verdict};
use super::tally::Tally;
use super::PUBLISHER;
use crate::handshake::{self, Key};
use crate::payload;
use crate::rng::Rng;
use crate::target::Target;
use crate::worker::Clock;

/// A handshake response longer than this is refused.
pub(super) const MAX_RESPONSE: usize = 8 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Connecting,
    Handshaking,
    Open,
    /// Our close frame is out; waiting for the server's.
    Closing,
    Done,
}

impl State {
    pub(super) fn pending(self) -> bool {
        matches!(self, State::Connecting | State::Handshaking)
    }
}

/// One connection: a subscriber (connection 0 publishes as well).
pub(super) struct Sub {
    pub(super) id: u32,
    pub(super) stream: TcpStream,
    pub(super) state: State,
    pub(super) key: Key,
    pub(super) started_ns: u64,
    /// The start of a frame (or of the handshake response) that has not
    /// arrived whole.
    pub(super) carry: Vec<u8>,
    /// Bytes not yet written (the request, pongs, publications, close).
    pub(super) out: Vec<u8>,
    /// A fragmented message being gathered: its opcode and payload.
    pub(super) frag: Option<u8>,
    pub(super) frag_buf: Vec<u8>,
    pub(super) seq: SeqCheck,
}

/// The start of a payload, printable, for error messages.
fn snippet(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(48)]).into_owned();
    if b.len() > 48 {
        s + "…"
    } else {
        s
    }
}

impl Sub {
    fn done(&mut self, t: &mut Tally) {
        if self.state.pending() {
            t.pending -= 1;
        }
        if matches!(self.state, State::Open | State::Closing) {
            t.open -= 1;
        }
        self.state = State::Done;
        self.stream.shutdown(std::net::Shutdown::Both).ok();
    }

    pub(super) fn fail(&mut self, t: &mut Tally) {
        let (id, state) = (self.id, self.state);
        match state {
            State::Connecting => t.errors.connect_failed += 1,
            State::Handshaking => t.errors.handshake_failed += 1,
            State::Open => t.errors.connection_lost += 1,
            State::Closing | State::Done => {}
        }
        if state != State::Closing && state != State::Done {
            t.note(|| format!("connection {id}: closed or reset while {state:?}"));
        }
        self.done(t);
    }

    pub(super) fn flush(&mut self, t: &mut Tally) {
        let mut at = 0;
        while at < self.out.len() {
            match self.stream.write(&self.out[at..]) {
                Ok(0) => return self.fail(t),
                Ok(n) => at += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.fail(t),
            }
        }
        self.out.drain(..at);
    }

    /// Queue a masked frame.
    pub(super) fn queue(&mut self, op: u8, body: &[u8], key: [u8; 4]) {
        let mut head = [0u8; MAX_HEADER];
        let h = frame::encode(&mut head, true, op, body.len() as u64, Some(key));
        self.out.extend_from_slice(&head[..h]);
        let at = self.out.len();
        self.out.extend_from_slice(body);
        mask::apply(&mut self.out[at..], key, 0);
    }

    pub(super) fn on_writable(&mut self, t: &mut Tally, target: &Target) {
        if self.state == State::Connecting {
            match self.stream.take_error() {
                Ok(None) => {}
                _ => return self.fail(t),
            }
            match self.stream.peer_addr() {
                Ok(_) => {}
                // Spurious wake-up: the connect is still in progress.
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(_) => return self.fail(t),
            }
            self.state = State::Handshaking;
            let mut req = [0u8; 1024];
            match handshake::write_request(&mut req, target, &self.key) {
                Some(n) => self.out.extend_from_slice(&req[..n]),
                None => return self.fail(t),
            }
        }
        if self.state != State::Done {
            self.flush(t);
        }
    }

    /// Read until a read comes back short or would block (the socket is
    /// edge-triggered), handling what arrived after each read.
    pub(super) fn on_readable(
        &mut self,
        buf: &mut [u8],
        t: &mut Tally,
        clock: &Clock,
        rng: &mut Rng,
    ) {
        loop {
            if matches!(self.state, State::Done | State::Connecting) {
                return;
            }
            let carried = self.carry.len();
            buf[..carried].copy_from_slice(&self.carry);
            let space = buf.len() - carried;
            match self.stream.read(&mut buf[carried..]) {
                Ok(0) => return self.fail(t),
                Ok(n) => {
                    self.carry.clear();
                    let data = &buf[..carried + n];
                    let used = self.consume(data, t, clock, rng);
                    if self.state == State::Done {
                        return;
                    }
                    let rest = &data[used..];
                    if rest.len() > MAX_RESPONSE.max(t.size + MAX_HEADER) {
                        // Cannot happen with frames no longer than a
                        // message (checked in `consume`).
                        t.errors.protocol += 1;
                        let id = self.id;
                        t.note(|| format!("connection {id}: a frame too long to hold"));
                        return self.done(t);
                    }
                    self.carry.extend_from_slice(rest);
                    self.flush(t);
                    if n < space || self.state == State::Done {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.fail(t),
            }
        }
    }

    /// Handle the handshake response and whole frames at the start of
    /// `data`; returns how many bytes were used (the rest is an incomplete
    /// frame).
    fn consume(&mut self, data: &[u8], t: &mut Tally, clock: &Clock, rng: &mut Rng) -> usize {
        let id = self.id;
        let mut at = 0;
        if self.state == State::Handshaking {
            match handshake::check_response(data, &self.key) {
                Ok(None) if data.len() > MAX_RESPONSE => {
                    t.errors.handshake_failed += 1;
                    t.note(|| format!("connection {id}: handshake response too long"));
                    self.done(t);
                    return 0;
                }
                Ok(None) => return 0,
                Ok(Some(n)) => {
                    at = n;
                    t.pending -= 1;
                    t.open += 1;
                    self.state = State::Open;
                }
                Err(e) => {
                    t.errors.handshake_failed += 1;
                    t.note(|| format!("connection {id}: handshake: {e}"));
                    self.done(t);
                    return 0;
                }
            }
        }
        while at < data.len() {
            let h = match frame::decode(&data[at..], Role::FromServer) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    t.errors.protocol += 1;
                    t.note(|| format!("connection {id}: bad frame from the server: {e}"));
                    self.done(t);
                    return at;
                }
            };
            if h.len > t.size as u64 && !opcode::is_control(h.opcode) {
                t.errors.corrupted += 1;
                let (len, size) = (h.len, t.size);
                t.note(|| {
                    format!("connection {id}: a frame of {len} bytes; every message published has {size}")
                });
                self.done(t);
                return at;
            }
            let total = h.header_len + h.len as usize;
            if data.len() - at < total {
                break;
            }
            let body = &data[at + h.header_len..at + total];
            at += total;
            match h.opcode {
                opcode::PING => {
                    if matches!(self.state, State::Open) {
                        self.queue(opcode::PONG, body, rng.mask_key());
                    }
                }
                opcode::PONG => {}
                opcode::CLOSE => {
                    if self.state == State::Closing {
                        t.closed_clean += 1;
                    } else {
                        t.errors.connection_lost += 1;
                        t.note(|| format!("connection {id}: closed by the server mid-run"));
                        self.queue(opcode::CLOSE, &1000u16.to_be_bytes(), rng.mask_key());
                        self.flush(t);
                    }
                    self.done(t);
                    return at;
                }
                opcode::CONTINUATION => {
                    let Some(op) = self.frag else {
                        t.errors.protocol += 1;
                        t.note(|| {
                            format!("connection {id}: a continuation frame out of a message")
                        });
                        self.done(t);
                        return at;
                    };
                    if self.frag_buf.len() + body.len() > t.size {
                        t.errors.corrupted += 1;
                        let size = t.size;
                        t.note(|| {
                            format!("connection {id}: a fragmented message longer than the {size} bytes published")
                        });
                        self.done(t);
                        return at;
                    }
                    self.frag_buf.extend_from_slice(body);
                    if h.fin {
                        self.frag = None;
                        let whole = std::mem::take(&mut self.frag_buf);
                        self.deliver(op, &whole, t, clock);
                        self.frag_buf = whole;
                        self.frag_buf.clear();
                    }
                }
                op if self.frag.is_some() => {
                    t.errors.protocol += 1;
                    t.note(|| {
                        format!(
                            "connection {id}: a frame with opcode {op} inside a fragmented message"
                        )
                    });
                    self.done(t);
                    return at;
                }
                op if !h.fin => {
                    self.frag = Some(op);
                    self.frag_buf.clear();
                    self.frag_buf.extend_from_slice(body);
                }
                op => self.deliver(op, body, t, clock),
            }
        }
        at
    }

    /// A whole message arrived: verify it and count it.
    fn deliver(&mut self, op: u8, msg: &[u8], t: &mut Tally, clock: &Clock) {
        let id = self.id;
        let seq = match payload::sequence(msg, PUBLISHER) {
            Ok(s) => s,
            Err(e) => {
                t.errors.corrupted += 1;
                let (len, start) = (msg.len(), snippet(msg));
                t.note(|| {
                    format!("connection {id}: a message of {len} bytes that was not published ({e}): {start:?}")
                });
                return;
            }
        };
        match self.seq.accept(seq, t.published, t.strict_from) {
            Verdict::InOrder => {}
            Verdict::Skipped(k) => {
                t.errors.lost += k;
                t.note(|| {
                    format!("connection {id}: message {seq} came, but {k} before it never did")
                });
            }
            Verdict::Repeated => {
                t.errors.unexpected += 1;
                t.note(|| format!("connection {id}: message {seq} again, or after a later one"));
                return;
            }
            Verdict::NeverSent => {
                t.errors.unexpected += 1;
                t.note(|| format!("connection {id}: message {seq}, which was never published"));
                return;
            }
        }
        if msg.len() != t.size
            || payload::check_range(&msg[payload::HEADER..], PUBLISHER, seq, 0).is_err()
        {
            t.errors.corrupted += 1;
            let (len, size) = (msg.len(), t.size);
            t.note(|| {
                format!(
                    "connection {id}: message {seq} ({size} bytes) arrived altered ({len} bytes)"
                )
            });
            return;
        }
        if op != t.opcode {
            t.errors.wrong_opcode += 1;
            t.note(|| format!("connection {id}: message {seq} arrived with opcode {op}"));
            return;
        }
        t.delivered += 1;
        if seq == t.current {
            t.count += 1;
            if t.count == t.n.div_ceil(2) {
                t.at_median = clock.now_ns();
            }
            if t.count == t.n {
                t.at_last = clock.now_ns();
            }
        }
    }
}
