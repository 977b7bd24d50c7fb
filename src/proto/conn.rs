//! The per-connection protocol state machine: bytes in, ranges of the same
//! bytes out. It never touches a socket and never reads the clock; the
//! caller passes in the bytes and the time.
//!
//! Contract with the caller (see [`Conn::process`]): the caller owns the read
//! buffer and passes `buf[..end]` with unprocessed data from `start`; every
//! byte before `start` is free for the core to overwrite. The core decodes
//! and unmasks frames in place, writes each echo header over the tail of the
//! client header it answers (4 bytes shorter, always fits), and queues ranges
//! of `buf` in an [`Output`](crate::output::Output). It returns how far it consumed; the caller
//! keeps the rest (never more than a partial frame header, a partial control
//! frame or a partial request) for the next call, after writing or copying
//! out everything the `Output` points at.
//!
//! Data frames are streamed, never reassembled: whatever payload has arrived
//! is validated and echoed at once as a frame of its own (first piece with
//! the message's opcode, later ones as continuations), so a connection's
//! memory does not depend on message size. For text, up to 3 bytes of a code
//! point cut by a read boundary are held back in the connection (`carry`)
//! until the rest arrives, so no byte is echoed before it is known valid.
//!
//! States: `Handshake` (waiting for the request head), `Open`, `CloseSent`
//! (we sent a close and wait for the peer's close or the deadline), `Closed`
//! (done: flush the output, then close TCP).

use std::time::Duration;

use crate::buffer::MsgBuf;
use crate::conn_id::ConnId;
use crate::context::{self, Context, Tx};
use crate::error::{close_code, HandshakeError, ProtocolError};
use crate::events::Events;
use crate::frame::{self, opcode, Role};
use crate::handshake::{self, HandshakeConfig, Outcome};
use crate::service::{Delivery, Message, MessageKind};
use crate::{http, mask, utf8};

/// A point in time, in milliseconds on the caller's clock (the server counts
/// from its start, from 1). The core only compares and adds these; it never
/// reads a clock. Eight bytes, where an `Instant` takes sixteen: it is stored
/// in every connection.
pub type Millis = u64;

/// A duration in [`Millis`].
pub fn millis(d: Duration) -> Millis {
    d.as_millis().min(u128::from(u64::MAX / 2)) as Millis
}

/// Protocol settings shared by every connection of a server.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What the opening handshake accepts.
    pub handshake: HandshakeConfig,
    /// Longest message accepted, in bytes; longer ones fail with 1009.
    pub max_message: u64,
    /// Longest message a service collects whole ([`Delivery::Collect`]);
    /// longer ones fail with 1009.
    pub max_collected: u64,
    /// How long a client may take to send its request head.
    pub handshake_timeout: Duration,
    /// How long to wait for the peer's close after sending ours.
    pub close_timeout: Duration,
    /// Longest echo frame: longer frames go back in pieces of this size, cut
    /// at fixed offsets. It must fit in the read buffer.
    pub chunk_size: usize,
    /// Close (1001) a connection from which nothing has arrived for this
    /// long. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Ping a connection from which nothing has arrived for this long.
    /// `None`: never.
    pub ping_interval: Option<Duration>,
    /// After a ping, how long the peer has to send anything (its pong)
    /// before the connection is closed as dead.
    pub pong_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            handshake: HandshakeConfig::default(),
            max_message: 16 << 20,
            max_collected: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            chunk_size: 16 << 10,
            idle_timeout: None,
            ping_interval: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(30),
        }
    }
}

/// A plain HTTP request the core recognised but cannot answer itself:
/// the caller renders the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Metrics,
    Health,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Handshake,
    Open,
    CloseSent,
    Closed,
}

/// Where the reader is in the byte stream of an open connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// At a frame header.
    Header,
    /// Inside a data frame's payload (its header consumed); `fin`: the
    /// frame ends its message.
    Payload { fin: bool },
}

/// An HTTP answer the connection owes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Nothing,
    /// Refuse the request with this once its head is in (the server is
    /// full or shutting down); metrics and health are still answered.
    Refuse(HandshakeError),
    /// Requests for the caller to answer (see [`Route`]); unit variants,
    /// so the whole enum fits in one byte.
    Metrics,
    Health,
}

impl Pending {
    fn refusal(self) -> Option<HandshakeError> {
        match self {
            Pending::Refuse(e) => Some(e),
            _ => None,
        }
    }
}

/// One connection's protocol state (72 bytes; no buffers).
#[derive(Debug)]
pub struct Conn {
    state: State,
    reading: Reading,
    /// Payload bytes of the current data frame not yet echoed or skipped.
    remaining: u64,
    /// Bytes of the current chunk already in the buffer, unmasked; during
    /// the handshake, bytes of the request head already searched.
    got: u32,
    /// Of those, bytes validated as UTF-8 (a text chunk).
    checked: u32,
    /// The frame's masking key, turned so that `mask[0]` applies to the
    /// first byte of the current chunk.
    mask: [u8; 4],
    /// The open data message, if any.
    msg: Option<MessageKind>,
    /// How the service takes the open message.
    delivery: Delivery,
    /// An echo frame of the open message has been queued already.
    started: bool,
    /// Bytes of the open message so far, for the size limit.
    msg_len: u64,
    carry: [u8; 3],
    carry_len: u8,
    /// When `on_timeout` is due; 0: never. While open it is the next
    /// heartbeat or idle check, moved only when it fires (so traffic costs
    /// a store of `last_rx`, not a timer update).
    deadline: Millis,
    /// When bytes last arrived (open connections).
    last_rx: Millis,
    /// A heartbeat ping went out and nothing has arrived since.
    pinged: bool,
    /// An HTTP answer owed: see [`Pending`].
    pending: Pending,
    /// The subprotocol chosen, as its index in the settings plus one (0:
    /// none).
    protocol: u8,
    /// Attached from a pool only while needed: the collected part of a
    /// message ([`Delivery::Collect`]), or the service's sends held back
    /// behind a half-sent echo ([`Delivery::EchoAndStream`]).
    msgbuf: Option<MsgBuf>,
    id: ConnId,
}

impl Conn {
    pub fn new(now: Millis, s: &Settings, id: ConnId) -> Conn {
        Conn {
            state: State::Handshake,
            reading: Reading::Header,
            remaining: 0,
            got: 0,
            checked: 0,
            mask: [0; 4],

            msg: None,
            delivery: Delivery::Discard,
            started: false,
            msg_len: 0,
            carry: [0; 3],
            carry_len: 0,
            deadline: now + millis(s.handshake_timeout),
            last_rx: now,
            pinged: false,
            pending: Pending::Nothing,
            protocol: 0,
            msgbuf: None,
            id,
        }
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Give back a pooled buffer still attached (the connection ends).
    pub fn release(&mut self, pool: &mut crate::buffer::MsgPool) {
        if let Some(b) = self.msgbuf.take() {
            pool.give(b);
        }
    }

    /// The subprotocol negotiated, if any.
    pub fn protocol<'s>(&self, s: &'s Settings) -> Option<&'s str> {
        (self.protocol > 0).then(|| s.handshake.subprotocols[self.protocol as usize - 1].as_str())
    }

    /// A context for one callback.
    #[inline]
    fn cx<'c>(
        &self,
        tx: &'c mut Tx<'_>,
        input: &'c [u8],
        s: &'c Settings,
        now: Millis,
    ) -> Context<'c> {
        Context::new(
            tx,
            input,
            self.id,
            now,
            &s.handshake.subprotocols,
            self.protocol,
            self.state == State::Open,
        )
    }

    /// Run a service callback outside of input (the backlog drained): with
    /// a context, on an open connection only.
    pub fn callback<E: Events>(
        &mut self,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
        f: impl FnOnce(&mut E, &mut Context<'_>),
    ) {
        if self.state != State::Open {
            return;
        }
        let mut cx = self.cx(tx, &[], s, now);
        f(h, &mut cx);
        let close = cx.finish_callback();
        self.closed_by_service(close, s, h, now);
    }

    /// After a callback: a close the service asked for (its frame is
    /// queued) turns the connection to `CloseSent`.
    #[inline]
    fn closed_by_service<E: Events>(
        &mut self,
        code: Option<u16>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) {
        if let Some(code) = code {
            h.close_sent(code);
            if self.state == State::Open {
                self.state = State::CloseSent;
                self.deadline = now + millis(s.close_timeout);
            }
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// When [`on_timeout`](Self::on_timeout) should next be called.
    pub fn deadline(&self) -> Option<Millis> {
        (self.deadline != 0).then_some(self.deadline)
    }

    /// Time passed; act on whatever is due. A handshake that took too long
    /// or a peer that never answered our close ends the connection. An open
    /// connection silent for `ping_interval` gets a ping; silent for
    /// `pong_timeout` more, or for `idle_timeout`, it is closed with 1001.
    pub fn on_timeout<E: Events>(&mut self, now: Millis, tx: &mut Tx<'_>, s: &Settings, h: &mut E) {
        if self.deadline == 0 || now < self.deadline {
            return;
        }
        if self.state != State::Open {
            self.deadline = 0;
            self.state = State::Closed;
            return;
        }
        if self.pinged {
            // Nothing has arrived since our ping, and the pong deadline (or
            // the idle deadline, if sooner) passed. Say so, but do not wait
            // for a close from a peer that has stopped talking.
            log::debug!("no answer to a ping");
            self.send_close(close_code::GOING_AWAY, tx, s, h, now);
            self.state = State::Closed;
            self.deadline = 0;
            return;
        }
        let idle_at = s.idle_timeout.map(|i| self.last_rx + millis(i));
        if idle_at.is_some_and(|t| now >= t) {
            log::debug!("idle timeout");
            self.send_close(close_code::GOING_AWAY, tx, s, h, now);
            return;
        }
        if s.ping_interval
            .is_some_and(|p| now >= self.last_rx + millis(p))
        {
            tx.out.push_bytes(&[0x80 | opcode::PING, 0]);
            self.pinged = true;
            // The peer has pong_timeout from now, whenever the (lazily
            // checked) ping actually went out.
            let pong_by = now + millis(s.pong_timeout);
            self.deadline = idle_at.map_or(pong_by, |t| t.min(pong_by));
            return;
        }
        self.deadline = self.next_check(s);
    }

    /// The next heartbeat or idle check of an open connection that is not
    /// waiting for a pong (0: none).
    fn next_check(&self, s: &Settings) -> Millis {
        let idle = s.idle_timeout.map(|i| self.last_rx + millis(i));
        let ping = s.ping_interval.map(|p| self.last_rx + millis(p));
        match (idle, ping) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(0),
        }
    }

    /// A plain HTTP request for the caller to answer; the connection is
    /// closed once the answer is out.
    pub fn take_route(&mut self) -> Option<Route> {
        match std::mem::replace(&mut self.pending, Pending::Nothing) {
            Pending::Metrics => Some(Route::Metrics),
            Pending::Health => Some(Route::Health),
            other => {
                self.pending = other;
                None
            }
        }
    }

    /// The peer closed its side of TCP.
    pub fn on_eof(&mut self) {
        self.state = State::Closed;
        self.deadline = 0;
    }

    /// Start a close from our side (shutdown, idle peer): send `code` and wait
    /// for the peer's close.
    pub fn close<E: Events>(
        &mut self,
        code: u16,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) {
        match self.state {
            State::Open => self.send_close(code, tx, s, h, now),
            // A request under way still gets an answer (503) once its head
            // is in, rather than a connection closed under it.
            State::Handshake => self.refuse_when_read(HandshakeError::Unavailable),
            State::CloseSent | State::Closed => {}
        }
    }

    /// Answer the request with `err` once its head has arrived: an HTTP
    /// client only reads a response after sending its request, and a proxy
    /// may take a response that comes earlier for a broken one. Requests for
    /// metrics and health are still answered, so a full or draining server
    /// can be observed.
    pub fn refuse_when_read(&mut self, err: HandshakeError) {
        if self.state == State::Handshake {
            self.pending = Pending::Refuse(err);
        }
    }

    /// Refuse a request at the HTTP level (e.g. the server is full).
    pub fn refuse<E: Events>(&mut self, err: HandshakeError, tx: &mut Tx<'_>, h: &mut E) {
        log::debug!("refusing request: {err}");
        h.refused(err);
        let n = http::write_error_response(tx.out.scratch_space(), err);
        tx.out.commit_scratch(n);
        self.state = State::Closed;
        self.deadline = 0;
    }

    /// Process `buf[start..]` in place, queueing output in `out` (which the
    /// caller has cleared). Returns the index up to which input is consumed.
    pub fn process<E: Events>(
        &mut self,
        buf: &mut [u8],
        start: usize,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) -> usize {
        let mut pos = start;
        if self.state == State::Open {
            // Anything from the peer proves it alive.
            self.last_rx = now;
            self.pinged = false;
        }
        if self.state == State::Handshake {
            match self.handshake(buf, start, tx, s, h, now) {
                Some(p) => pos = p,
                None if self.state == State::Handshake => return start,
                None => return buf.len(),
            }
        }
        match self.state {
            State::Open | State::CloseSent => self.frames(buf, pos, tx, s, h, now),
            _ => buf.len(),
        }
    }

    /// Returns where the frames begin once the upgrade is accepted, `None`
    /// while the head is incomplete or after refusing it.
    fn handshake<E: Events>(
        &mut self,
        buf: &[u8],
        start: usize,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) -> Option<usize> {
        let head = &buf[start..];
        let end = match handshake::scan_head(head, self.got as usize, &s.handshake) {
            Ok(Some(end)) => end,
            Ok(None) => {
                self.got = head.len() as u32;
                return None;
            }
            Err(e) => {
                self.refuse(e, tx, h);
                return None;
            }
        };
        let mut headers = [httparse::EMPTY_HEADER; handshake::MAX_HEADERS];
        let mut parsed = handshake::parse_request(&head[..end], &s.handshake, &mut headers);
        if let (Some(err), Ok((Outcome::Upgrade { .. } | Outcome::Page, _))) =
            (self.pending.refusal(), &parsed)
        {
            parsed = Err(err);
        }
        match parsed {
            Ok((Outcome::Upgrade { accept, protocol }, req)) => {
                self.protocol = protocol.map_or(0, |i| i as u8 + 1);
                let n = handshake::write_upgrade_response(
                    tx.out.scratch_space(),
                    &accept,
                    self.protocol(s),
                );
                tx.out.commit_scratch(n);
                self.state = State::Open;
                self.got = 0;
                self.last_rx = now;
                self.deadline = self.next_check(s);
                let mut cx = self.cx(tx, buf, s, now);
                h.open(&req, &mut cx);
                let close = cx.finish_callback();
                self.closed_by_service(close, s, h, now);
                Some(start + end)
            }
            Ok((Outcome::Page, _)) => {
                let Some(page) = h.page() else {
                    self.refuse(HandshakeError::NotWebSocket, tx, h);
                    return None;
                };
                let n = http::write_page_head(tx.out.scratch_space(), page.len());
                tx.out.commit_scratch(n);
                tx.out.push_static(page);
                self.state = State::Closed;
                self.deadline = 0;
                None
            }
            Ok((route @ (Outcome::Metrics | Outcome::Health), _)) => {
                self.pending = if route == Outcome::Metrics {
                    Pending::Metrics
                } else {
                    Pending::Health
                };
                self.state = State::Closed;
                self.deadline = 0;
                None
            }
            Err(e) => {
                self.refuse(e, tx, h);
                None
            }
        }
    }

    fn frames<E: Events>(
        &mut self,
        buf: &mut [u8],
        mut pos: usize,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) -> usize {
        let end = buf.len();
        // Bytes in buf[room..pos] may be overwritten: everything before the
        // first unprocessed byte at entry, then each frame's own header.
        let mut room = 0;
        loop {
            if self.state == State::Closed {
                return end;
            }
            if let Reading::Payload { .. } = self.reading {
                if !tx.out.has_room() {
                    return pos;
                }
                match self.data_step(buf, pos, room, tx, s, h, now) {
                    Ok(Step::Next(next)) => {
                        pos = next;
                        room = next;
                    }
                    Ok(Step::Wait(at)) => return at,
                    Err(e) => self.fail(e, tx, s, h, now),
                }
                continue;
            }
            if pos == end || !tx.out.has_room() {
                return pos;
            }
            let hdr = match frame::decode(&buf[pos..end], Role::FromClient) {
                Ok(Some(hdr)) => hdr,
                Ok(None) => return pos,
                Err(e) => {
                    // The frame boundaries are lost: nothing after this can
                    // be parsed, so there is no close to wait for either.
                    self.fail(e, tx, s, h, now);
                    self.state = State::Closed;
                    self.deadline = 0;
                    return end;
                }
            };
            let key = hdr.mask.expect("decode requires masked client frames");
            let payload = pos + hdr.header_len;
            if opcode::is_control(hdr.opcode) {
                // Control frames are at most 131 bytes: wait for all of it.
                let fend = payload + hdr.len as usize;
                if fend > end {
                    return pos;
                }
                mask::apply(&mut buf[payload..fend], key, 0);
                self.control(buf, payload, fend, hdr.opcode, tx, s, h, now);
                pos = fend;
                room = pos;
                continue;
            }
            if self.state == State::Open {
                if let Err(e) = self.begin_data(hdr.opcode, hdr.len, buf, tx, s, h, now) {
                    self.fail(e, tx, s, h, now);
                }
            }
            self.reading = Reading::Payload { fin: hdr.fin };
            self.mask = key;
            self.remaining = hdr.len;
            self.got = 0;
            self.checked = 0;
            room = pos;
            pos = payload;
        }
    }

    /// Sequencing and size rules for a new data frame (§5.4); asks the
    /// service how a new message is delivered.
    #[allow(clippy::too_many_arguments)]
    fn begin_data<E: Events>(
        &mut self,
        op: u8,
        len: u64,
        buf: &[u8],
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) -> Result<(), ProtocolError> {
        let kind = match (op, self.msg) {
            (opcode::CONTINUATION, None) => return Err(ProtocolError::UnexpectedContinuation),
            (opcode::CONTINUATION, Some(_)) => None,
            (_, Some(_)) => return Err(ProtocolError::ExpectedContinuation),
            (opcode::TEXT, None) => Some(MessageKind::Text),
            (_, None) => Some(MessageKind::Binary),
        };
        // Both terms are below 2^63 (decode rejects the top bit; msg_len is
        // bounded by max_message), so the sum cannot overflow.
        let total = self.msg_len + len;
        if total > s.max_message {
            return Err(ProtocolError::MessageTooBig);
        }
        self.msg_len = total;
        if let Some(kind) = kind {
            self.msg = Some(kind);
            self.started = false;
            let mut cx = self.cx(tx, buf, s, now);
            self.delivery = h.message(kind, &mut cx);
            let close = cx.finish_callback();
            self.closed_by_service(close, s, h, now);
        }
        if self.delivery == Delivery::Collect && total > s.max_collected {
            return Err(ProtocolError::MessageTooBig);
        }
        Ok(())
    }

    /// Advance the current data frame with the bytes at `buf[pos..]`.
    ///
    /// A frame is echoed in chunks of at most `chunk_size` bytes, cut at
    /// fixed offsets from its start, so the frames sent depend only on the
    /// frames received, never on how the bytes arrived. Bytes of a chunk are
    /// unmasked and validated as they arrive (`got`, `checked`), so invalid
    /// text fails at once; the chunk is echoed when complete. Returns where
    /// the next unprocessed byte is, or where to resume once more input has
    /// arrived (a partial chunk stays in the buffer, already unmasked).
    #[allow(clippy::too_many_arguments)]
    fn data_step<E: Events>(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        room: usize,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) -> Result<Step, ProtocolError> {
        let avail_all = buf.len() - pos;
        if self.state != State::Open {
            // Our close is out: skip the peer's data unread.
            let n = avail_all.min(self.remaining.min(usize::MAX as u64) as usize);
            self.remaining -= n as u64;
            if self.remaining > 0 {
                return Ok(Step::Wait(pos + n));
            }
            self.reading = Reading::Header;
            return Ok(Step::Next(pos + n));
        }
        let chunk = self.remaining.min(s.chunk_size as u64) as usize;
        let avail = avail_all.min(chunk);
        let got = self.got as usize;
        if avail > got {
            mask::apply(&mut buf[pos + got..pos + avail], self.mask, got % 4);
            self.got = avail as u32;
            if self.msg == Some(MessageKind::Text) {
                self.check_text(&buf[pos..pos + avail])?;
            }
        }
        if avail < chunk {
            return Ok(Step::Wait(pos));
        }
        let last = matches!(self.reading, Reading::Payload { fin: true })
            && self.remaining == chunk as u64;
        self.emit_chunk(buf, room, pos, pos + chunk, last, tx, s, h, now)?;
        self.remaining -= chunk as u64;
        self.mask.rotate_left(chunk % 4);
        self.got = 0;
        self.checked = 0;
        if self.remaining == 0 {
            self.reading = Reading::Header;
        }
        Ok(Step::Next(pos + chunk))
    }

    /// Validate the new bytes of the chunk `piece` (all of it that has
    /// arrived) from `checked` on, completing a carried code point first.
    #[inline]
    fn check_text(&mut self, piece: &[u8]) -> Result<(), ProtocolError> {
        let carry_len = self.carry_len as usize;
        let mut checked = self.checked as usize;
        if carry_len > 0 && checked == 0 {
            let width = utf8_width(self.carry[0]);
            let need = width - carry_len;
            let mut cp = [0u8; 4];
            cp[..carry_len].copy_from_slice(&self.carry[..carry_len]);
            if piece.len() < need {
                let t = carry_len + piece.len();
                cp[carry_len..t].copy_from_slice(piece);
                return match utf8::complete_prefix(&cp[..t]) {
                    Ok(0) => Ok(()),
                    _ => Err(ProtocolError::InvalidUtf8),
                };
            }
            cp[carry_len..width].copy_from_slice(&piece[..need]);
            utf8::complete(&cp[..width]).map_err(|_| ProtocolError::InvalidUtf8)?;
            checked = need;
        }
        checked +=
            utf8::complete_prefix(&piece[checked..]).map_err(|_| ProtocolError::InvalidUtf8)?;
        self.checked = checked as u32;
        Ok(())
    }

    /// Hand the complete chunk `buf[a..b]` (unmasked and, for text,
    /// validated up to `checked`) to the service as it asked, queueing its
    /// echo first if it asked for one; `buf[room..a]` is free.
    #[allow(clippy::too_many_arguments)]
    fn emit_chunk<E: Events>(
        &mut self,
        buf: &mut [u8],
        room: usize,
        a: usize,
        b: usize,
        last: bool,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) -> Result<(), ProtocolError> {
        let kind = self.msg.expect("begin_data opened a message");
        let carry = self.carry;
        let carry_len = self.carry_len as usize;
        let (valid_end, new_carry) = if kind == MessageKind::Text {
            if carry_len > 0 && self.checked == 0 {
                // The chunk did not even complete the carried code point.
                if last {
                    return Err(ProtocolError::InvalidUtf8);
                }
                let t = carry_len + (b - a);
                self.carry[carry_len..t].copy_from_slice(&buf[a..b]);
                self.carry_len = t as u8;
                return Ok(());
            }
            let v = a + self.checked as usize;
            if last && v != b {
                return Err(ProtocolError::InvalidUtf8);
            }
            (v, b - v)
        } else {
            (b, 0)
        };
        let len = carry_len + (valid_end - a);
        match self.delivery {
            Delivery::Echo | Delivery::EchoAndStream => {
                h.payload(len, true);
                if len > 0 || last {
                    self.echo_frame(buf, room, a, valid_end, &carry[..carry_len], last, tx);
                }
                if last {
                    self.release_held(buf, tx);
                }
                if self.delivery == Delivery::EchoAndStream {
                    self.pieces(buf, &carry[..carry_len], a, valid_end, last, tx, s, h, now);
                }
            }
            Delivery::Stream => {
                h.payload(len, false);
                self.pieces(buf, &carry[..carry_len], a, valid_end, last, tx, s, h, now)
            }
            Delivery::Collect => {
                h.payload(len, false);
                self.collect(buf, &carry[..carry_len], a, valid_end, last, tx, s, h, now)
            }
            Delivery::Discard => h.payload(len, false),
        }
        self.carry[..new_carry].copy_from_slice(&buf[valid_end..b]);
        self.carry_len = new_carry as u8;
        if last {
            self.msg = None;
            self.msg_len = 0;
            self.started = false;
            if matches!(self.delivery, Delivery::EchoAndStream | Delivery::Stream)
                && self.state == State::Open
            {
                let mut cx = self.cx(tx, buf, s, now);
                h.end(&mut cx);
                let close = cx.finish_callback();
                self.closed_by_service(close, s, h, now);
            }
        }
        Ok(())
    }

    /// Queue the echo of `carry` + `buf[a..v]` as one frame.
    // One call site, on the echo path: always inlined, or the call and
    // its argument shuffling cost more than the frame header it writes.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn echo_frame(
        &mut self,
        buf: &mut [u8],
        room: usize,
        a: usize,
        v: usize,
        carry: &[u8],
        last: bool,
        tx: &mut Tx<'_>,
    ) {
        let kind = self.msg.expect("an open message");
        let len = carry.len() + (v - a);
        let op = if self.started {
            opcode::CONTINUATION
        } else if kind == MessageKind::Text {
            opcode::TEXT
        } else {
            opcode::BINARY
        };
        let hl = frame::header_len(len as u64, false);
        if a - room >= hl + carry.len() {
            buf[a - carry.len()..a].copy_from_slice(carry);
            let hs = frame::encode_before(buf, a - carry.len(), last, op, len as u64);
            tx.out.push_input(hs, v);
        } else {
            // No room in front (a later chunk of a long frame, or a
            // carried code point in front of a payload whose length
            // needs a longer header): the header and the carried bytes
            // go out from scratch, the payload still from the buffer.
            let mut tmp = [0u8; frame::MAX_HEADER + 3];
            let n = frame::encode(&mut tmp, last, op, len as u64, None);
            tmp[n..n + carry.len()].copy_from_slice(carry);
            tx.out.push_bytes(&tmp[..n + carry.len()]);
            tx.out.push_input(a, v);
        }
        self.started = true;
    }

    /// The echo's last frame is queued: what the service sent while it was
    /// half out follows it now.
    #[inline]
    fn release_held(&mut self, buf: &[u8], tx: &mut Tx<'_>) {
        if let Some(held) = self.msgbuf.take() {
            Self::queue_held(held, buf, tx);
        }
    }

    #[cold]
    fn queue_held(held: MsgBuf, buf: &[u8], tx: &mut Tx<'_>) {
        let _ = context::queue(tx.out, buf, tx.sink, &[], &[&held]);
        tx.pool.give(held);
    }

    /// Give `carry` + `buf[a..v]` to the service as pieces.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn pieces<E: Events>(
        &mut self,
        buf: &[u8],
        carry: &[u8],
        a: usize,
        v: usize,
        last: bool,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) {
        if self.state != State::Open {
            return;
        }
        // Sends wait while this message's echo is half out.
        let hold = self.delivery == Delivery::EchoAndStream && self.started && !last;
        let mut cx = self.cx(tx, buf, s, now);
        if hold {
            cx.hold = Some(&mut self.msgbuf);
        }
        if !carry.is_empty() {
            h.piece(carry, &mut cx);
        }
        h.piece(&buf[a..v], &mut cx);
        let close = cx.finish_callback();
        self.closed_by_service(close, s, h, now);
    }

    /// Gather `carry` + `buf[a..v]`; at the last piece hand the whole
    /// message over, straight from the read buffer when it is all there.
    #[allow(clippy::too_many_arguments)]
    fn collect<E: Events>(
        &mut self,
        buf: &[u8],
        carry: &[u8],
        a: usize,
        v: usize,
        last: bool,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) {
        if self.state != State::Open {
            return;
        }
        let kind = self.msg.expect("an open message");
        let gathered = self.msgbuf.is_some() || !carry.is_empty();
        if !last || gathered {
            let m = self.msgbuf.get_or_insert_with(|| tx.pool.take());
            m.extend_from_slice(carry);
            m.extend_from_slice(&buf[a..v]);
            if !last {
                return;
            }
        }
        let held = self.msgbuf.take();
        let bytes = held.as_deref().map_or(&buf[a..v], |m| &m[..]);
        let msg = match kind {
            // SAFETY: text is validated as it arrives (`check_text`), and
            // `emit_chunk` fails a message whose last piece does not end a
            // code point before anything is collected from it: the whole
            // is valid UTF-8.
            MessageKind::Text => Message::Text(unsafe { utf8::assume_valid(bytes) }),
            MessageKind::Binary => Message::Binary(bytes),
        };
        let mut cx = self.cx(tx, buf, s, now);
        h.whole(msg, &mut cx);
        let close = cx.finish_callback();
        if let Some(m) = held {
            tx.pool.give(m);
        }
        self.closed_by_service(close, s, h, now);
    }

    /// A whole, unmasked control frame with payload `buf[p..e]`.
    #[allow(clippy::too_many_arguments)]
    fn control<E: Events>(
        &mut self,
        buf: &mut [u8],
        p: usize,
        e: usize,
        op: u8,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) {
        match (op, self.state) {
            (opcode::PING, State::Open) => {
                let hs = frame::encode_before(buf, p, true, opcode::PONG, (e - p) as u64);
                tx.out.push_input(hs, e);
            }
            (opcode::CLOSE, State::Open) => match close_payload(&buf[p..e]) {
                Ok(code) => {
                    h.peer_closed(code);
                    // Answer with the same code (none if the peer gave none).
                    if let Some(c) = code {
                        h.close_sent(c);
                    }
                    let n = if code.is_some() { 2 } else { 0 };
                    let hs = frame::encode_before(buf, p, true, opcode::CLOSE, n as u64);
                    tx.out.push_input(hs, p + n);
                    self.state = State::Closed;
                    self.deadline = 0;
                }
                Err(err) => {
                    // The peer has already closed its side of the
                    // conversation: there is no close left to wait for.
                    self.fail(err, tx, s, h, now);
                    self.state = State::Closed;
                    self.deadline = 0;
                }
            },
            (opcode::CLOSE, State::CloseSent) => {
                h.peer_closed(close_payload(&buf[p..e]).ok().flatten());
                self.state = State::Closed;
                self.deadline = 0;
            }
            // Unsolicited pongs are ignored (§5.5.3); after our close, so
            // are pings.
            _ => {}
        }
    }

    /// Fail the connection (§7.1.7): send a close with the error's code.
    fn fail<E: Events>(
        &mut self,
        e: ProtocolError,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) {
        log::debug!("failing connection: {e}");
        if self.state == State::Open {
            self.send_close(e.close_code(), tx, s, h, now);
        }
        self.carry_len = 0;
        self.got = 0;
        self.checked = 0;
        if let Some(b) = self.msgbuf.take() {
            tx.pool.give(b);
        }
    }

    fn send_close<E: Events>(
        &mut self,
        code: u16,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) {
        h.close_sent(code);
        let c = code.to_be_bytes();
        tx.out.push_bytes(&[0x88, 0x02, c[0], c[1]]);
        self.state = State::CloseSent;
        self.deadline = now + millis(s.close_timeout);
    }
}

/// Spare room a read buffer keeps past one echo chunk (a frame header and
/// a control frame), so a chunk always fits once compacted.
pub const CHUNK_SLACK: usize = 256;

/// The one loop between a read buffer and the core: process what is
/// buffered, consume it, send each pass's output through `tx.sink`, and
/// compact what is left (a partial frame or request) to the front. Returns
/// false once the sink is broken.
pub fn pump<E: Events>(
    conn: &mut Conn,
    rbuf: &mut crate::buffer::ReadBuf,
    tx: &mut Tx<'_>,
    s: &Settings,
    h: &mut E,
    now: Millis,
) -> bool {
    let ok = loop {
        let start = rbuf.start();
        tx.out.clear();
        let next = conn.process(rbuf.data_mut(), start, tx, s, h, now);
        debug_assert!(next >= start && next <= rbuf.data().len());
        rbuf.consume_to(next);
        tx.sink.flush(tx.out, rbuf.data(), &[]);
        if tx.sink.is_broken() {
            break false;
        }
        if next == start || rbuf.is_empty() || conn.is_closed() {
            break true;
        }
    };
    rbuf.compact(s.chunk_size + CHUNK_SLACK);
    ok
}

/// How far [`Conn::data_step`] got.
enum Step {
    /// Continue at this index.
    Next(usize),
    /// Input consumed up to this index; wait for more.
    Wait(usize),
}

/// The byte length of the code point a valid lead byte starts.
fn utf8_width(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Validate a close frame's payload (§5.5.1, §7.4): returns its code.
fn close_payload(p: &[u8]) -> Result<Option<u16>, ProtocolError> {
    match p.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::CloseFrameTooShort),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            if !close_code::is_valid_received(code) {
                return Err(ProtocolError::InvalidCloseCode);
            }
            utf8::complete(&p[2..]).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some(code))
        }
    }
}

#[cfg(test)]
mod tests;
