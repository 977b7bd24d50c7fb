//! One connection of a fan-out run, a subscriber (connection 0 publishes
//! as well): its state, and the check of every message delivered to it.
//! The library's non-blocking client (`zerows::client::Connection`) does
//! the handshake, the framing, pongs and the closing handshake.
//!
//! Invariants:
//! - States only move forward (Connecting → Handshaking → Open → Closing →
//!   Done; any of them may end in Done). A Done connection is not read
//!   again and its socket is shut down.
//! - Each connection reads into its own fixed buffer (the library's, sized
//!   for one message), and messages are checked piece by piece as they
//!   arrive, fragmented or not, so nothing is gathered or allocated per
//!   delivery. A message growing past the published length is refused and
//!   ends the connection.
//! - Every whole message is checked (publisher tag, sequence number through
//!   [`SeqCheck`], length, pattern, opcode) before it counts as delivered;
//!   every fault is counted in the [`Tally`] and the first one described.

use std::io::ErrorKind;

use mio::net::TcpStream;
use zerows::client::{ClientConfig, ClientError, Connection, Incoming, Keys, Part, Status};
use zerows::{MessageKind, Millis};

use super::sequence::{SeqCheck, Verdict};
use super::tally::Tally;
use super::PUBLISHER;
use crate::client::millis;
use crate::payload::{self, frame_len, Pieces};
use crate::worker::Clock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Connecting,
    Handshaking,
    Open,
    /// Our close frame is out (or the server's came first); waiting for
    /// the server to end TCP.
    Closing,
    Done,
}

impl State {
    pub(super) fn pending(self) -> bool {
        matches!(self, State::Connecting | State::Handshaking)
    }
}

/// The library's options for a run publishing `size`-byte messages: a read
/// buffer that holds one of them (and a handshake response), lengths
/// checked here rather than by the library (a long message is `corrupted`),
/// and time bounds left to the event loop.
pub(super) fn client_config(size: usize) -> ClientConfig {
    // Room for the longest header, as a read that fills the buffer exactly
    // costs a second read to learn that the socket is empty.
    let rbuf = (size + payload::MAX_HEADER).max(1024);
    ClientConfig {
        read_buffer: rbuf,
        max_head: rbuf - 1,
        max_message: u64::MAX,
        handshake_timeout: std::time::Duration::from_secs(3600),
        close_timeout: std::time::Duration::from_secs(2),
        ..ClientConfig::default()
    }
}

/// The message being received.
struct Rx {
    kind: MessageKind,
    pieces: Pieces,
    /// It grew past the published length: the connection ends.
    overlong: bool,
}

/// One connection: a subscriber (connection 0 publishes as well).
pub(super) struct Sub {
    pub(super) id: u32,
    /// The target it opened (an index into the run's targets).
    target: usize,
    conn: Connection,
    pub(super) state: State,
    pub(super) started_ns: u64,
    /// The server's close has been seen (and answered by the library).
    heard_close: bool,
    rx: Rx,
    pub(super) seq: SeqCheck,
}

impl Sub {
    /// A subscriber on `stream`, whose connect is under way.
    pub(super) fn new(
        id: u32,
        target: usize,
        stream: TcpStream,
        url: &str,
        cfg: &ClientConfig,
        keys: &mut Keys,
        now: u64,
    ) -> Result<Sub, ClientError> {
        Ok(Sub {
            id,
            target,
            conn: Connection::new(stream, url, cfg, keys, millis(now))?,
            state: State::Connecting,
            started_ns: now,
            heard_close: false,
            rx: Rx {
                kind: MessageKind::Text,
                pieces: Pieces::default(),
                overlong: false,
            },
            seq: SeqCheck::default(),
        })
    }

    /// The socket, to register with the poll.
    pub(super) fn source(&mut self) -> &mut TcpStream {
        self.conn.source()
    }

    /// Room for a publication of `size` bytes, made once.
    pub(super) fn reserve(&mut self, size: usize) {
        self.conn.reserve(frame_len(size as u64, true) as usize);
    }

    fn done(&mut self, t: &mut Tally) {
        if self.state.pending() {
            t.pending -= 1;
        }
        if matches!(self.state, State::Open | State::Closing) {
            t.open -= 1;
        }
        self.state = State::Done;
        self.conn.source().shutdown(std::net::Shutdown::Both).ok();
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

    pub(super) fn on_writable(&mut self, t: &mut Tally) {
        if self.state == State::Connecting {
            // Told apart from a failed handshake by the socket itself.
            match self.conn.source().take_error() {
                Ok(None) => {}
                _ => return self.fail(t),
            }
            match self.conn.source().peer_addr() {
                Ok(_) => {}
                // Spurious wake-up: the connect is still in progress.
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(_) => return self.fail(t),
            }
            self.state = State::Handshaking;
        }
        if self.state != State::Done && self.conn.on_writable().is_err() {
            self.fail(t);
        }
    }

    /// The library reads until a read comes back short or would block (the
    /// socket is edge-triggered) and hands over each piece of a message.
    /// `turn`: the library's time (it only times close waits), read once
    /// per loop turn.
    pub(super) fn on_readable(
        &mut self,
        t: &mut Tally,
        clock: &Clock,
        keys: &mut Keys,
        turn: Millis,
        read_closed: bool,
    ) {
        if matches!(self.state, State::Done | State::Connecting) {
            return;
        }
        let (id, target) = (self.id, self.target);
        let (rx, seq) = (&mut self.rx, &mut self.seq);
        let r = self.conn.on_readable(keys, turn, read_closed, |inc| {
            let Incoming::Piece(p) = inc else {
                // Pings are answered by the library; pongs are not asked for.
                return;
            };
            if p.first {
                rx.kind = p.kind;
                rx.pieces.start();
            }
            if rx.overlong {
                return;
            }
            rx.pieces.feed(p.data, PUBLISHER, |_| t.size);
            if rx.pieces.len() > t.size as u64 {
                rx.overlong = true;
            } else if p.last {
                deliver((id, target), rx, seq, t, clock);
            }
        });
        if self.rx.overlong {
            t.errors.corrupted += 1;
            let size = t.size;
            t.note(|| format!("connection {id}: a message longer than the {size} bytes published"));
            return self.done(t);
        }
        match r {
            Ok(status) => {
                if self.state == State::Handshaking && status != Status::Upgrading {
                    t.pending -= 1;
                    t.open += 1;
                    self.state = State::Open;
                }
                if !self.heard_close && self.conn.close_frame().is_some() {
                    self.heard_close = true;
                    if self.state == State::Closing {
                        t.closed_clean += 1;
                    } else {
                        t.errors.connection_lost += 1;
                        t.note(|| format!("connection {id}: closed by the server mid-run"));
                        self.state = State::Closing;
                    }
                }
                if status == Status::Closed {
                    self.done(t);
                }
            }
            Err(e) => self.on_error(e, t),
        }
    }

    #[cold]
    fn on_error(&mut self, e: ClientError, t: &mut Tally) {
        let id = self.id;
        match (self.state, &e) {
            (State::Handshaking, _) => {
                t.errors.handshake_failed += 1;
                t.note(|| format!("connection {id}: handshake: {e}"));
                self.done(t);
            }
            (State::Open | State::Closing, ClientError::Protocol(_)) => {
                t.errors.protocol += 1;
                t.note(|| format!("connection {id}: bad frame from the server: {e}"));
                self.done(t);
            }
            _ => self.fail(t),
        }
    }

    /// Queue publication `seq`; [`flush`](Self::flush) sends it.
    pub(super) fn queue(&mut self, seq: u64, t: &mut Tally, keys: &mut Keys) {
        let part = Part::Whole(t.kind);
        let r = self.conn.queue_with(part, t.size, keys, |body| {
            payload::fill(body, PUBLISHER, seq, payload::NO_MASK)
        });
        if r.is_err() && self.state == State::Open {
            self.fail(t);
        }
    }

    pub(super) fn flush(&mut self, t: &mut Tally) {
        if self.state != State::Done && self.conn.flush().is_err() {
            self.fail(t);
        }
    }

    /// Start the closing handshake with status 1000.
    pub(super) fn close(&mut self, t: &mut Tally, keys: &mut Keys, now: u64) {
        if self.state == State::Open {
            match self.conn.close(1000, "", keys, millis(now)) {
                Ok(()) => self.state = State::Closing,
                Err(_) => self.fail(t),
            }
        }
    }
}

/// A whole message arrived at connection `id` of `target`: verify it and
/// count it.
fn deliver(
    (id, target): (u32, usize),
    rx: &Rx,
    check: &mut SeqCheck,
    t: &mut Tally,
    clock: &Clock,
) {
    let msg = &rx.pieces;
    let seq = match msg.sequence() {
        Ok(s) => s,
        Err(e) => {
            t.errors.corrupted += 1;
            let (len, start) = (msg.len(), msg.snippet());
            t.note(|| {
                format!("connection {id}: a message of {len} bytes that was not published ({e}): {start:?}")
            });
            return;
        }
    };
    match check.accept(seq, t.published, t.strict_from) {
        Verdict::InOrder => {}
        Verdict::Skipped(k) => {
            t.errors.lost += k;
            t.note(|| format!("connection {id}: message {seq} came, but {k} before it never did"));
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
    if !msg.intact(t.size) {
        t.errors.corrupted += 1;
        let (len, size) = (msg.len(), t.size);
        t.note(|| {
            format!("connection {id}: message {seq} ({size} bytes) arrived altered ({len} bytes)")
        });
        return;
    }
    if rx.kind != t.kind {
        t.errors.wrong_opcode += 1;
        let k = rx.kind;
        t.note(|| format!("connection {id}: message {seq} arrived as {k:?}"));
        return;
    }
    t.delivered += 1;
    t.targets[target].deliver(seq == t.current, || clock.now_ns());
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
