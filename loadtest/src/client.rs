//! One client connection: a state machine from TCP connect through the
//! handshake, verified traffic and the closing handshake.
//!
//! Invariants: the read and write buffers are allocated once, with the
//! connection (the write buffer holds the largest frame), so the hot path
//! never allocates. Every frame we send is masked with a fresh key. Every
//! reply is checked (opcode, length, content, sequence; an echo against the
//! payload, a JSON reply with `reply::JsonCheck`) before it counts; a problem is
//! counted once, in `Stats::errors`, and only faults that leave the byte
//! stream unusable end the connection. The socket is edge-triggered, so
//! reads go on until one comes back short (the queue is then empty) and
//! writes until everything is written or one would block. Echo payloads are
//! checked piece by piece as they arrive, fragmented or not, so a read
//! buffer never has to hold a whole message. Either way a message has
//! exactly one reply, matched to it by the sequence number it carries.

use std::io::{ErrorKind, Read, Write};

use mio::net::TcpStream;
use zerows::frame::{self, opcode, Role, MAX_HEADER};
use zerows::mask;

use crate::handshake::{self, Key};
use crate::payload;
use crate::reply::{JsonCheck, ReplyMode};
use crate::rng::Rng;
use crate::stats::Stats;
use crate::target::Target;
use crate::window::Window;

/// What every connection of a worker shares: the target and the traffic.
#[derive(Debug, Clone)]
pub struct Plan {
    pub target: Target,
    /// Payload sizes, used in turn by sequence number.
    pub sizes: Vec<usize>,
    pub opcode: u8,
    /// Messages in flight per connection.
    pub window: usize,
    /// What the server answers (json: `opcode` is TEXT).
    pub reply: ReplyMode,
}

impl Plan {
    #[inline]
    pub fn size(&self, seq: u64) -> usize {
        self.sizes[(seq % self.sizes.len() as u64) as usize]
    }

    fn max_frame(&self) -> usize {
        self.sizes.iter().copied().max().unwrap_or(0) + MAX_HEADER
    }

    /// The largest reply frame (for JSON, with every payload byte escaped).
    fn max_reply_frame(&self) -> usize {
        let size = self.sizes.iter().copied().max().unwrap_or(0);
        match self.reply {
            ReplyMode::Echo => size,
            ReplyMode::Json => crate::reply::json_len(size, size),
        }
        .saturating_add(MAX_HEADER)
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    Handshaking,
    Open,
    /// Our close frame is out; waiting for the server's.
    Closing,
    Done,
}

pub struct Client {
    pub id: u32,
    stream: TcpStream,
    pub state: State,
    key: Key,
    rbuf: Box<[u8]>,
    rstart: usize,
    rend: usize,
    wbuf: Box<[u8]>,
    wstart: usize,
    wend: usize,
    pub window: Window,
    /// Messages this connection may still send.
    pub quota: u64,
    /// Messages due so far (rate mode); `u64::MAX` when unpaced.
    pub allowed: u64,
    /// Rate mode: message `seq` is due at `base + seq * interval` ns.
    pub schedule: Option<(f64, f64)>,
    pub started_ns: u64,
    /// A ping's payload, to be answered with a pong.
    pong: [u8; 125],
    pong_len: Option<u8>,
    pings_out: u64,
    /// Payload bytes of the current data frame not yet read.
    frame_left: u64,
    frame_fin: bool,
    /// A message (one or more data frames) is being received.
    msg_active: bool,
    msg_opcode: u8,
    /// Payload bytes of the message so far, and bytes on the wire.
    msg_len: u64,
    msg_wire: u64,
    /// The payload header, gathered across fragments.
    msg_head: [u8; payload::HEADER],
    msg_seq: Option<u64>,
    msg_bad: bool,
    /// The check of the current reply in JSON mode.
    json: JsonCheck,
}

impl Client {
    pub fn new(
        id: u32,
        stream: TcpStream,
        plan: &Plan,
        rng: &mut Rng,
        now: u64,
        quota: u64,
    ) -> Self {
        let mut nonce = [0u8; 16];
        rng.fill(&mut nonce);
        Client {
            id,
            stream,
            state: State::Connecting,
            key: Key::new(nonce),
            rbuf: vec![0; plan.read_capacity()].into_boxed_slice(),
            rstart: 0,
            rend: 0,
            wbuf: vec![0; plan.write_capacity()].into_boxed_slice(),
            wstart: 0,
            wend: 0,
            window: Window::new(plan.window),
            quota,
            allowed: u64::MAX,
            schedule: None,
            started_ns: now,
            pong: [0; 125],
            pong_len: None,
            pings_out: 0,
            frame_left: 0,
            frame_fin: false,
            msg_active: false,
            msg_opcode: 0,
            msg_len: 0,
            msg_wire: 0,
            msg_head: [0; payload::HEADER],
            msg_seq: None,
            msg_bad: false,
            json: JsonCheck::default(),
        }
    }

    /// Nothing of ours is waiting for an answer.
    pub fn idle(&self) -> bool {
        self.window.outstanding() == 0 && self.pings_out == 0
    }

    fn done(&mut self) {
        self.state = State::Done;
        self.stream.shutdown(std::net::Shutdown::Both).ok();
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
        rng: &mut Rng,
        sending: bool,
    ) {
        if self.state == State::Connecting {
            match self.stream.take_error() {
                Ok(None) => {}
                _ => return self.fail_connection(stats),
            }
            match self.stream.peer_addr() {
                Ok(_) => {}
                // Spurious wake-up: the connect is still in progress.
                Err(e) if e.kind() == ErrorKind::NotConnected => return,
                Err(_) => return self.fail_connection(stats),
            }
            self.state = State::Handshaking;
            match handshake::write_request(&mut self.wbuf, &plan.target, &self.key) {
                Some(n) => self.wend = n,
                None => return self.fail_connection(stats),
            }
        }
        self.pump(plan, now, stats, rng, sending);
    }

    /// The socket became readable. Reads until a read comes back short or
    /// would block.
    pub fn on_readable(&mut self, plan: &Plan, clock: &crate::worker::Clock, stats: &mut Stats) {
        loop {
            if matches!(self.state, State::Done | State::Connecting) {
                return;
            }
            if self.rend == self.rbuf.len() {
                if self.rstart == 0 {
                    // Only a handshake response longer than the buffer can
                    // get here (frames are consumed piece by piece).
                    match self.state {
                        State::Handshaking => stats.errors.handshake_failed += 1,
                        _ => stats.errors.protocol += 1,
                    }
                    return self.done();
                }
                self.compact();
            }
            let space = self.rbuf.len() - self.rend;
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => return self.fail_connection(stats),
                Ok(n) => {
                    self.rend += n;
                    let now = clock.now_ns();
                    if self.state == State::Handshaking {
                        self.on_handshake_bytes(now, stats);
                    }
                    if matches!(self.state, State::Open | State::Closing) {
                        self.on_frames(plan, now, stats);
                    }
                    // A short read emptied the socket's queue; anything that
                    // arrives later raises a new edge. Stopping here saves
                    // the read that would only say "would block": a third of
                    // the system calls of a ping-pong round trip.
                    if n < space {
                        return;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.fail_connection(stats),
            }
        }
    }

    fn compact(&mut self) {
        self.rbuf.copy_within(self.rstart..self.rend, 0);
        self.rend -= self.rstart;
        self.rstart = 0;
    }

    fn on_handshake_bytes(&mut self, now: u64, stats: &mut Stats) {
        match handshake::check_response(&self.rbuf[..self.rend], &self.key) {
            Ok(None) if self.rend == self.rbuf.len() => {
                stats.errors.handshake_failed += 1;
                self.done();
            }
            Ok(None) => {}
            Ok(Some(n)) => {
                self.rstart = n;
                self.state = State::Open;
                stats.connected += 1;
                stats.last_handshake_ns = stats.last_handshake_ns.max(now);
                stats
                    .handshake_latency
                    .saturating_record(now.saturating_sub(self.started_ns).max(1));
            }
            Err(e) => {
                stats.errors.handshake_failed += 1;
                let id = self.id;
                stats.note(|| format!("connection {id}: handshake: {e}"));
                self.done();
            }
        }
    }

    /// Consume what the read buffer holds: frame headers, data payloads as
    /// far as they have arrived (checked in place, piece by piece), and
    /// whole control frames.
    fn on_frames(&mut self, plan: &Plan, now: u64, stats: &mut Stats) {
        while self.rstart < self.rend {
            if self.frame_left > 0 {
                let n =
                    (self.rend - self.rstart).min(self.frame_left.min(usize::MAX as u64) as usize);
                let piece = self.rstart..self.rstart + n;
                self.rstart += n;
                self.frame_left -= n as u64;
                self.feed(plan, piece);
                if self.frame_left == 0 && self.frame_fin {
                    self.end_message(plan, now, stats);
                }
                continue;
            }
            let avail = &self.rbuf[self.rstart..self.rend];
            let h = match frame::decode(avail, Role::FromServer) {
                Ok(Some(h)) => h,
                Ok(None) => break,
                Err(e) => {
                    stats.errors.protocol += 1;
                    let id = self.id;
                    stats.note(|| format!("connection {id}: bad frame from the server: {e}"));
                    return self.done();
                }
            };
            if opcode::is_control(h.opcode) {
                // At most 125 bytes (checked by decode): handled whole.
                let total = h.header_len + h.len as usize;
                if avail.len() < total {
                    break;
                }
                let body = self.rstart + h.header_len..self.rstart + total;
                self.rstart += total;
                if self.on_control(h.opcode, body, stats) {
                    return;
                }
                continue;
            }
            // A data frame: a message starts with TEXT or BINARY and goes on
            // with CONTINUATION frames until FIN.
            let starts = h.opcode != opcode::CONTINUATION;
            if starts == self.msg_active {
                stats.errors.protocol += 1;
                let (id, op) = (self.id, h.opcode);
                stats.note(|| {
                    format!(
                        "connection {id}: data frame with opcode {op} breaks the fragment sequence"
                    )
                });
                return self.done();
            }
            if starts {
                self.msg_active = true;
                self.msg_opcode = h.opcode;
                self.msg_len = 0;
                self.msg_wire = 0;
                self.msg_seq = None;
                self.msg_bad = false;
                self.json.start();
            }
            self.msg_wire += h.header_len as u64 + h.len;
            self.rstart += h.header_len;
            self.frame_left = h.len;
            self.frame_fin = h.fin;
            if h.len == 0 && h.fin {
                self.end_message(plan, now, stats);
            }
        }
        if self.rstart == self.rend {
            self.rstart = 0;
            self.rend = 0;
        }
    }

    /// Handle a control frame; true if the connection is finished.
    fn on_control(&mut self, op: u8, body: std::ops::Range<usize>, stats: &mut Stats) -> bool {
        match op {
            opcode::PING => {
                let n = body.len();
                self.pong[..n].copy_from_slice(&self.rbuf[body]);
                self.pong_len = Some(n as u8);
                false
            }
            opcode::PONG => {
                stats.pongs += 1;
                self.pings_out = self.pings_out.saturating_sub(1);
                false
            }
            _ => {
                if self.state == State::Closing {
                    stats.closed_clean += 1;
                } else {
                    // The server hung up mid-run; answer as the RFC asks.
                    stats.errors.connection_lost += 1;
                    let id = self.id;
                    stats.note(|| format!("connection {id}: closed by the server mid-run"));
                    let mut rng = Rng::new(u64::from(self.id));
                    self.write_control(opcode::CLOSE, &1000u16.to_be_bytes(), &mut rng);
                    self.flush(stats);
                }
                self.done();
                true
            }
        }
    }

    /// Check the next piece of the current reply.
    #[inline]
    fn feed(&mut self, plan: &Plan, piece: std::ops::Range<usize>) {
        if plan.reply == ReplyMode::Json {
            self.msg_len += piece.len() as u64;
            self.json
                .feed(&self.rbuf[piece], self.id, |seq| plan.size(seq));
            return;
        }
        let mut bytes = &self.rbuf[piece];
        let head = self.msg_len as usize;
        if head == 0 && bytes.len() >= payload::HEADER {
            // The usual case: the whole header in one piece, read in place.
            match payload::sequence(bytes, self.id) {
                Ok(seq) => self.msg_seq = Some(seq),
                Err(_) => self.msg_bad = true,
            }
            self.msg_len = payload::HEADER as u64;
            bytes = &bytes[payload::HEADER..];
        } else if head < payload::HEADER {
            let k = (payload::HEADER - head).min(bytes.len());
            self.msg_head[head..head + k].copy_from_slice(&bytes[..k]);
            self.msg_len += k as u64;
            bytes = &bytes[k..];
            if self.msg_len as usize == payload::HEADER {
                match payload::sequence(&self.msg_head, self.id) {
                    Ok(seq) => self.msg_seq = Some(seq),
                    Err(_) => self.msg_bad = true,
                }
            }
        }
        if bytes.is_empty() {
            return;
        }
        let offset = self.msg_len as usize - payload::HEADER;
        self.msg_len += bytes.len() as u64;
        if let (Some(seq), false) = (self.msg_seq, self.msg_bad) {
            if self.msg_len > plan.size(seq) as u64
                || payload::check_range(bytes, self.id, seq, offset).is_err()
            {
                self.msg_bad = true;
            }
        }
    }

    /// The current reply is complete: classify it.
    fn end_message(&mut self, plan: &Plan, now: u64, stats: &mut Stats) {
        self.msg_active = false;
        let (id, len) = (self.id, self.msg_len);
        let (seq, json_fault) = match plan.reply {
            ReplyMode::Echo => (self.msg_seq, None),
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
        let Some(ans) = self.window.answer(seq) else {
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
            ReplyMode::Echo => self.msg_bad || self.msg_len != size as u64,
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
        } else if self.msg_opcode != plan.opcode {
            stats.errors.wrong_opcode += 1;
            let op = self.msg_opcode;
            stats.note(|| format!("connection {id}: message {seq} came back with opcode {op}"));
        }
        let out = frame::header_len(size as u64, true) + size;
        stats.echo(ans.sent_at, now, out, self.msg_wire as usize);
    }

    /// Room for `n` more bytes at the end of the write buffer.
    fn make_room(&mut self, n: usize) -> bool {
        if self.wstart == self.wend {
            self.wstart = 0;
            self.wend = 0;
        }
        // Moving a large unsent tail costs more than waiting for the socket
        // to drain it; only small tails are moved to the front.
        if self.wend + n > self.wbuf.len()
            && self.wstart > 0
            && self.wend - self.wstart <= self.wbuf.len() / 4
        {
            self.wbuf.copy_within(self.wstart..self.wend, 0);
            self.wend -= self.wstart;
            self.wstart = 0;
        }
        self.wend + n <= self.wbuf.len()
    }

    fn write_control(&mut self, op: u8, payload: &[u8], rng: &mut Rng) -> bool {
        if !self.make_room(MAX_HEADER + payload.len()) {
            return false;
        }
        let key = rng.mask_key();
        let at = self.wend;
        let h = frame::encode(
            &mut self.wbuf[at..],
            true,
            op,
            payload.len() as u64,
            Some(key),
        );
        let body = &mut self.wbuf[at + h..at + h + payload.len()];
        body.copy_from_slice(payload);
        mask::apply(body, key, 0);
        self.wend = at + h + payload.len();
        true
    }

    /// Queue as many messages as the window, quota and pacing allow, then
    /// write out what is queued.
    pub fn pump(&mut self, plan: &Plan, now: u64, stats: &mut Stats, rng: &mut Rng, sending: bool) {
        if self.state == State::Open {
            if let Some(n) = self.pong_len {
                let pong = self.pong;
                if self.write_control(opcode::PONG, &pong[..n as usize], rng) {
                    self.pong_len = None;
                }
            }
            while sending
                && self.quota > 0
                && self.window.has_room()
                && self.window.next_seq() < self.allowed
            {
                let seq = self.window.next_seq();
                let size = plan.size(seq);
                let need = frame::header_len(size as u64, true) + size;
                if !self.make_room(need) {
                    break;
                }
                let key = rng.mask_key();
                let at = self.wend;
                let h = frame::encode(
                    &mut self.wbuf[at..],
                    true,
                    plan.opcode,
                    size as u64,
                    Some(key),
                );
                let body = &mut self.wbuf[at + h..at + h + size];
                payload::fill(body, self.id, seq, key);
                self.wend = at + h + size;
                let due = match self.schedule {
                    Some((base, interval)) => (base + seq as f64 * interval) as u64,
                    None => now,
                };
                self.window.send(due);
                self.quota -= 1;
                stats.sent += 1;
            }
        }
        self.flush(stats);
    }

    fn flush(&mut self, stats: &mut Stats) {
        while self.wstart < self.wend {
            match self.stream.write(&self.wbuf[self.wstart..self.wend]) {
                Ok(0) => return self.fail_connection(stats),
                Ok(n) => self.wstart += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return self.fail_connection(stats),
            }
        }
        self.wstart = 0;
        self.wend = 0;
    }

    /// Send a ping (idle mode).
    pub fn ping(&mut self, stats: &mut Stats, rng: &mut Rng) {
        if self.state == State::Open && self.write_control(opcode::PING, b"zerows-lt", rng) {
            self.pings_out += 1;
            stats.pings += 1;
            self.flush(stats);
        }
    }

    /// Start the closing handshake with status 1000.
    pub fn close(&mut self, stats: &mut Stats, rng: &mut Rng) {
        if self.state == State::Open {
            if self.write_control(opcode::CLOSE, &1000u16.to_be_bytes(), rng) {
                self.state = State::Closing;
                self.flush(stats);
            } else {
                self.done();
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
