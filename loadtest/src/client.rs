//! One client connection of `run` and `idle`: the library's non-blocking
//! client (`zerows::client::Connection`) does the handshake, framing,
//! masking, pongs and the closing handshake; this file decides what to send
//! and verifies every reply.
//!
//! Invariants: the library's read buffer is sized here (a window of replies
//! when that is small, at most 64 KiB) and its write queue is reserved once
//! and never let past [`Plan::write_capacity`], so the hot path never
//! allocates. Payloads are written straight into the write queue, masked
//! as they are generated (one pass). Every reply is checked (opcode,
//! length, content, sequence; an echo with `payload::Pieces`, a JSON reply
//! with `reply::JsonCheck`) piece by piece as the library hands it out, so
//! no message is ever held whole; a problem is counted once, in
//! `Stats::errors`, and only faults that leave the byte stream unusable end
//! the connection. A message has exactly one reply, matched to it by the
//! sequence number it carries. Frames are written in batches: everything a
//! turn queues leaves in one write.

use std::io::ErrorKind;

use mio::net::TcpStream;
use zerows::client::{ClientConfig, ClientError, Connection, Incoming, Keys, Part, Status};
use zerows::deflate::DeflateOffer;
use zerows::{MessageKind, Millis};

use crate::payload::{self, frame_len, Pattern, Pieces};
use crate::reply::{JsonCheck, ReplyMode};
use crate::stats::Stats;
use crate::target::Target;
use crate::window::Window;
use crate::worker::Clock;

/// What every connection of a worker shares: the target and the traffic.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    /// Payload sizes, used in turn by sequence number.
    pub sizes: Vec<usize>,
    pub kind: MessageKind,
    /// Messages in flight per connection.
    pub window: usize,
    /// What the server answers (json: `kind` is text).
    pub reply: ReplyMode,
    /// What follows each payload's header.
    pub payload: Pattern,
    /// Offer permessage-deflate.
    pub deflate: bool,
    /// Count a close reply other than 1000, or none, as an error (idle:
    /// the closing handshake is part of what it verifies).
    pub check_close: bool,
}

impl Plan {
    #[inline]
    pub fn size(&self, seq: u64) -> usize {
        // Asked three times per message: spare the division when there is
        // one size, the usual case.
        match self.sizes.as_slice() {
            [one] => *one,
            all => all[(seq % all.len() as u64) as usize],
        }
    }

    fn max_frame(&self) -> usize {
        frame_len(self.sizes.iter().copied().max().unwrap_or(0) as u64, true) as usize
    }

    /// The largest reply frame (for JSON, with every payload byte escaped),
    /// with room for the longest header. The slack matters: a read that
    /// fills the buffer exactly is not known to have emptied the socket, so
    /// a buffer just the size of a ping-pong reply costs a second read.
    fn max_reply_frame(&self) -> usize {
        let size = self.sizes.iter().copied().max().unwrap_or(0);
        match self.reply {
            ReplyMode::Echo => size,
            ReplyMode::Json => crate::reply::json_len(size, size),
        }
        .saturating_add(payload::MAX_HEADER)
    }

    /// Replies are checked as they arrive, so reads need not hold a whole
    /// frame: a window's worth when that is small, else 64 KiB, so pipelined
    /// replies come in with few reads. At least room for a control frame and
    /// the handshake response.
    pub fn read_capacity(&self) -> usize {
        self.window
            .saturating_mul(self.max_reply_frame())
            .clamp(1024, 64 << 10)
    }

    /// Frames are built whole: room for the largest, and for a window of
    /// frames when that stays small, so pipelined messages go out in one write.
    pub fn write_capacity(&self) -> usize {
        let f = self.max_frame();
        f.max((self.window * f).min(64 << 10)).max(256)
    }

    /// The URL as the library reads it.
    pub fn url(&self) -> String {
        format!("ws://{}{}", self.target.host, self.target.path)
    }

    /// The library's options for these connections. Its read buffer is
    /// [`read_capacity`](Self::read_capacity), and a handshake response must
    /// fit in it, as before. Lengths are checked here (an overlong reply
    /// is `corrupted`, not a protocol error), so the library's limit is
    /// off. Connect, handshake and close times are bounded by the worker.
    /// With deflate, the server is asked not to keep its compression
    /// context, so no connection holds an inflater between messages, and
    /// every message is compressed, whatever its size.
    pub fn client_config(&self) -> ClientConfig {
        let rbuf = self.read_capacity();
        ClientConfig {
            read_buffer: rbuf,
            max_head: rbuf - 1,
            max_message: u64::MAX,
            handshake_timeout: std::time::Duration::from_secs(3600),
            close_timeout: std::time::Duration::from_secs(2),
            deflate: self.deflate.then_some(DeflateOffer {
                server_no_context_takeover: true,
                server_max_window_bits: 15,
                threshold: 0,
            }),
            ..ClientConfig::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Handshaking,
    Open,
    /// Our close frame is out (or the server's came first); waiting for
    /// the server to end TCP.
    Closing,
    Done,
}

/// The reply being received, checked piece by piece.
struct Rx {
    kind: MessageKind,
    /// Bytes of the reply so far.
    len: u64,
    /// Echo mode's check.
    echo: Pieces,
    /// JSON mode's check.
    json: JsonCheck,
}

impl Rx {
    #[inline]
    fn start(&mut self, kind: MessageKind, plan: &Plan) {
        self.kind = kind;
        self.len = 0;
        match plan.reply {
            ReplyMode::Echo => self.echo.start(),
            ReplyMode::Json => self.json.start(),
        }
    }

    #[inline]
    fn feed(&mut self, plan: &Plan, id: u32, bytes: &[u8]) {
        self.len += bytes.len() as u64;
        match plan.reply {
            ReplyMode::Echo => self.echo.feed(bytes, id, |seq| plan.size(seq)),
            ReplyMode::Json => self.json.feed(bytes, id, |seq| plan.size(seq)),
        }
    }

    /// The reply is complete: classify it.
    fn end(&mut self, plan: &Plan, id: u32, window: &mut Window, now: u64, stats: &mut Stats) {
        let len = self.len;
        let (seq, json_fault) = match plan.reply {
            ReplyMode::Echo => (self.echo.sequence().ok(), None),
            ReplyMode::Json => {
                let v = self.json.finish();
                (v.seq, v.fault)
            }
        };
        let Some(seq) = seq else {
            // Too short to carry a header, or an unreadable header.
            stats.errors.corrupted += 1;
            stats.note(|| match json_fault {
                None => format!(
                    "connection {id}: echo of {len} bytes without a readable payload header"
                ),
                Some(f) => format!(
                    "connection {id}: reply of {len} bytes is not the expected JSON ({f}), so it answers no known message"
                ),
            });
            return;
        };
        let Some(ans) = window.answer(seq) else {
            stats.errors.unexpected += 1;
            stats.note(|| {
                format!("connection {id}: reply to message {seq}, which is not in flight")
            });
            return;
        };
        if ans.reordered {
            stats.errors.reordered += 1;
            stats.note(|| format!("connection {id}: message {seq} came back after a later one"));
        }
        let size = plan.size(seq);
        let altered = match plan.reply {
            ReplyMode::Echo => !self.echo.intact(size),
            ReplyMode::Json => json_fault.is_some(),
        };
        if altered {
            stats.errors.corrupted += 1;
            stats.note(|| match json_fault {
                None => format!(
                    "connection {id}: message {seq} ({size} bytes) came back altered ({len} bytes)"
                ),
                Some(f) => format!(
                    "connection {id}: the reply to message {seq} ({size} bytes) is not the expected JSON ({len} bytes; {f})"
                ),
            });
        } else if self.kind != plan.kind {
            stats.errors.wrong_opcode += 1;
            let k = self.kind;
            stats.note(|| format!("connection {id}: message {seq} came back as {k:?}"));
        }
        // The library hands out payloads, not frames: a reply is counted
        // as one frame. A fragmented reply's further headers (2 to 10
        // bytes each) are not seen, so bytes in are a slight undercount
        // for those.
        let out = frame_len(size as u64, true);
        stats.echo(
            ans.sent_at,
            now,
            out as usize,
            frame_len(len, false) as usize,
        );
    }
}

pub struct Client {
    pub id: u32,
    conn: Connection,
    pub state: State,
    pub window: Window,
    /// Messages this connection may still send.
    pub quota: u64,
    /// Messages due so far (rate mode); `u64::MAX` when unpaced.
    pub allowed: u64,
    /// Rate mode: message `seq` is due at `base + seq * interval` ns.
    pub schedule: Option<(f64, f64)>,
    pub started_ns: u64,
    pings_out: u64,
    /// The server's close has been seen (and answered by the library).
    heard_close: bool,
    /// Our close (1000) is out.
    close_sent: bool,
    check_close: bool,
    /// The most the write queue may hold.
    write_capacity: usize,
    rx: Rx,
}

impl Client {
    /// A connection on `stream`, whose connect is under way; the upgrade
    /// request is queued for when it completes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: u32,
        stream: TcpStream,
        plan: &Plan,
        url: &str,
        cfg: &ClientConfig,
        keys: &mut Keys,
        now: u64,
        quota: u64,
    ) -> Result<Self, ClientError> {
        let mut conn = Connection::new(stream, url, cfg, keys, millis(now))?;
        let write_capacity = plan.write_capacity();
        conn.reserve(write_capacity);
        Ok(Client {
            id,
            conn,
            state: State::Connecting,
            window: Window::new(plan.window),
            quota,
            allowed: u64::MAX,
            schedule: None,
            started_ns: now,
            pings_out: 0,
            heard_close: false,
            close_sent: false,
            check_close: plan.check_close,
            write_capacity,
            rx: Rx {
                kind: plan.kind,
                len: 0,
                echo: Pieces::new(plan.payload),
                json: JsonCheck::new(plan.payload),
            },
        })
    }

    /// The socket, to register with the poll.
    pub fn source(&mut self) -> &mut TcpStream {
        self.conn.source()
    }

    /// Nothing of ours is waiting for an answer.
    pub fn idle(&self) -> bool {
        self.window.outstanding() == 0 && self.pings_out == 0
    }

    fn done(&mut self) {
        self.state = State::Done;
        self.conn.source().shutdown(std::net::Shutdown::Both).ok();
    }

    fn fail_connection(&mut self, stats: &mut Stats) {
        let (id, state) = (self.id, self.state);
        if state != State::Closing {
            stats.note(|| format!("connection {id}: closed or reset while {state:?}"));
        }
        match self.state {
            State::Connecting => stats.errors.connect_failed += 1,
            State::Handshaking => stats.errors.handshake_failed += 1,
            State::Open => stats.errors.connection_lost += 1,
            // Torn down before the close reply: the close was not clean, but
            // every echo has been accounted for by then.
            State::Closing | State::Done => {}
        }
        self.done();
    }

    /// The socket became writable.
    pub fn on_writable(
        &mut self,
        plan: &Plan,
        now: u64,
        stats: &mut Stats,
        keys: &mut Keys,
        sending: bool,
    ) {
        if self.state == State::Connecting {
            // Told apart from a failed handshake by the socket itself.
            match self.conn.source().take_error() {
                Ok(None) => {}
                _ => return self.fail_connection(stats),
            }
            match self.conn.source().peer_addr() {
                Ok(_) => {}
                // Spurious wake-up: the connect is still in progress.
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(_) => return self.fail_connection(stats),
            }
            self.state = State::Handshaking;
        }
        self.pump(plan, now, stats, keys, sending);
    }

    /// The socket became readable: the library reads until a read comes
    /// back short or would block, and hands over each piece of a reply.
    /// `turn`: the library's time, read once per loop turn.
    pub fn on_readable(
        &mut self,
        plan: &Plan,
        clock: &Clock,
        stats: &mut Stats,
        keys: &mut Keys,
        turn: Millis,
        read_closed: bool,
    ) {
        if matches!(self.state, State::Done | State::Connecting) {
            return;
        }
        let id = self.id;
        // Taken once the first reply is complete, after the read that
        // brought it, as a reply's arrival time.
        let mut now = 0u64;
        let (rx, window, pings_out) = (&mut self.rx, &mut self.window, &mut self.pings_out);
        // The library's clock only times close waits: the loop turn's time
        // is precise enough and saves reading the clock per event.
        let r = self
            .conn
            .on_readable(keys, turn, read_closed, |inc| match inc {
                Incoming::Piece(p) => {
                    if p.first {
                        rx.start(p.kind, plan);
                    }
                    rx.feed(plan, id, p.data);
                    if p.last {
                        if now == 0 {
                            now = clock.now_ns();
                        }
                        rx.end(plan, id, window, now, stats);
                    }
                }
                // Already answered by the library.
                Incoming::Ping(_) => stats.pings_in += 1,
                Incoming::Pong(_) => {
                    stats.pongs += 1;
                    *pings_out = pings_out.saturating_sub(1);
                }
            });
        match r {
            Ok(status) => {
                if self.state == State::Handshaking && status != Status::Upgrading {
                    let now = clock.now_ns();
                    self.state = State::Open;
                    stats.connected += 1;
                    stats.last_handshake_ns = stats.last_handshake_ns.max(now);
                    stats
                        .handshake_latency
                        .saturating_record(now.saturating_sub(self.started_ns).max(1));
                }
                if !self.heard_close && self.conn.close_frame().is_some() {
                    self.heard_close = true;
                    if self.state == State::Closing {
                        let code = self.conn.close_frame().and_then(|f| f.code);
                        if self.check_close && code != Some(1000) {
                            stats.errors.bad_close += 1;
                            stats.note(|| {
                                format!("connection {id}: close 1000 answered with {code:?}")
                            });
                        } else {
                            stats.closed_clean += 1;
                        }
                    } else {
                        // The server hung up mid-run; the library answered
                        // its close as the RFC asks.
                        stats.errors.connection_lost += 1;
                        stats.note(|| format!("connection {id}: closed by the server mid-run"));
                        self.state = State::Closing;
                    }
                }
                if status == Status::Closed {
                    self.done();
                }
            }
            Err(e) => self.on_error(e, stats),
        }
    }

    #[cold]
    fn on_error(&mut self, e: ClientError, stats: &mut Stats) {
        let id = self.id;
        match (self.state, &e) {
            (State::Handshaking, _) => {
                stats.errors.handshake_failed += 1;
                stats.note(|| format!("connection {id}: handshake: {e}"));
                self.done();
            }
            (State::Open | State::Closing, ClientError::Protocol(_)) => {
                stats.errors.protocol += 1;
                stats.note(|| format!("connection {id}: bad frame from the server: {e}"));
                self.done();
            }
            _ => self.fail_connection(stats),
        }
    }

    /// Queue as many messages as the window, quota and pacing allow, then
    /// write out what is queued.
    pub fn pump(
        &mut self,
        plan: &Plan,
        now: u64,
        stats: &mut Stats,
        keys: &mut Keys,
        sending: bool,
    ) {
        if self.state == State::Open {
            let (id, pattern) = (self.id, plan.payload);
            while sending
                && self.quota > 0
                && self.window.has_room()
                && self.window.next_seq() < self.allowed
            {
                let seq = self.window.next_seq();
                let size = plan.size(seq);
                let need = frame_len(size as u64, true) as usize;
                // The queue stays within its fixed capacity; an empty one
                // always has room for the largest frame.
                if self.conn.queued() > 0 && self.conn.queued() + need > self.write_capacity {
                    break;
                }
                let part = Part::Whole(plan.kind);
                let queued = self.conn.queue_with(part, size, keys, |body| {
                    pattern.fill(body, id, seq, payload::NO_MASK)
                });
                if queued.is_err() {
                    break;
                }
                let due = match self.schedule {
                    Some((base, interval)) => (base + seq as f64 * interval) as u64,
                    None => now,
                };
                self.window.send(due);
                self.quota -= 1;
                stats.sent += 1;
            }
        }
        if self.state != State::Done && self.conn.flush().is_err() {
            self.fail_connection(stats);
        }
    }

    /// Send a ping (idle mode).
    pub fn ping(&mut self, stats: &mut Stats, keys: &mut Keys) {
        if self.state != State::Open {
            return;
        }
        match self.conn.ping(b"zerows-lt", keys) {
            Ok(()) => {
                self.pings_out += 1;
                stats.pings += 1;
            }
            Err(ClientError::Io(_)) => self.fail_connection(stats),
            Err(_) => {}
        }
    }

    /// Start the closing handshake with status 1000.
    pub fn close(&mut self, stats: &mut Stats, keys: &mut Keys, now: u64) {
        if self.state == State::Open {
            match self.conn.close(1000, "", keys, millis(now)) {
                Ok(()) => {
                    self.state = State::Closing;
                    self.close_sent = true;
                }
                Err(ClientError::Io(_)) => self.fail_connection(stats),
                Err(_) => self.done(),
            }
        }
    }

    /// Account for whatever is still open at the end of the run.
    pub fn finish(&mut self, stats: &mut Stats) {
        let (lost, unanswered) = self.window.tally();
        if lost + unanswered > 0 {
            let id = self.id;
            stats.note(|| {
                format!("connection {id}: {lost} lost, {unanswered} unanswered at the end")
            });
        }
        stats.errors.lost += lost;
        stats.errors.unanswered += unanswered;
        stats.errors.ping_unanswered += self.pings_out;
        self.pings_out = 0;
        if self.check_close && self.close_sent && !self.heard_close {
            stats.errors.close_unanswered += 1;
            let id = self.id;
            stats.note(|| format!("connection {id}: our close was never answered"));
        }
        if matches!(self.state, State::Connecting | State::Handshaking) {
            let (id, state) = (self.id, self.state);
            stats.note(|| format!("connection {id}: timed out while {state:?}"));
        }
        match self.state {
            State::Connecting => stats.errors.connect_failed += 1,
            State::Handshaking => stats.errors.handshake_failed += 1,
            _ => {}
        }
        if self.state != State::Done {
            self.done();
        }
    }
}

/// The library's clock: milliseconds on the worker's, never 0.
#[inline]
pub fn millis(ns: u64) -> Millis {
    ns / 1_000_000 + 1
}
