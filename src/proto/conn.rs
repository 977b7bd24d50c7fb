//! The per-connection protocol state machine: bytes in, ranges of the same
//! bytes out. It never touches a socket and never reads the clock; the
//! caller passes in the bytes and the time.
//!
//! Contract with the caller (see [`Conn::process`] and [`pump`]): the
//! caller owns the read buffer and passes `buf[..end]` with unprocessed data
//! from `start`; every byte before `start` is free for the core to
//! overwrite. The core decodes and unmasks frames in place, writes each echo
//! header over the tail of the client header it answers (4 bytes shorter,
//! always fits), and queues ranges of `buf` in an
//! [`Output`](crate::output::Output). It returns how far it consumed; the
//! caller keeps the rest (never more than a partial frame header, a partial
//! control frame or a partial request) for the next call, after writing or
//! copying out everything the `Output` points at.
//!
//! This file holds the connection's life: the handshake, control frames,
//! closing, timers. Its receive half, data frames delivered to the service,
//! is in `conn/rx.rs`; the send half is `context` and `output`.
//!
//! Stages (`Stage`, each with its own data): `Handshake` (waiting for the
//! request head), `Open`, `CloseSent` (we sent a close and wait for the
//! peer's close or the deadline), `Closed` (done: flush the output, then
//! close TCP).
//!
//! Failing a connection (§7.1.7) waits in `CloseSent` for the peer's close
//! only while the reader can still follow the byte stream to it in
//! reasonable time: after an error inside a data payload (invalid UTF-8, a
//! bad inflate), and after a data frame refused at its header (for its
//! sequence or its length) whose payload is at most twice `max_message`,
//! skipped unread. It goes straight to `Closed` after a close frame it
//! cannot accept (the peer has closed already), after a header it cannot
//! decode (nothing after it can be parsed), and after a refused frame
//! declaring more than that (2^40 bytes, say): its peer's close, if any,
//! lies behind a payload no client would send to this server.

use std::time::Duration;

use crate::buffer::MsgBuf;
use crate::conn_id::ConnId;
use crate::context::{self, Context, Tx};
use crate::deflate::{Codec, Terms};
use crate::error::{close_code, HandshakeError, ProtocolError};
use crate::events::{Events, Plain};
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

/// The phase a connection is in, as the shell sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Handshake,
    Open,
    CloseSent,
    Closed,
}

/// Where a connection is, with what each stage needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the request head; `refusal`: answer with this once it is
    /// in (the server is full or shutting down; metrics and health are
    /// still answered).
    Handshake { refusal: Option<HandshakeError> },
    /// Upgraded; `pinged`: a heartbeat ping went out and nothing has
    /// arrived since.
    Open { pinged: bool },
    /// We sent a close and wait for the peer's, or the deadline.
    CloseSent,
    /// Done: flush the output, then close TCP; `answer`: a plain HTTP
    /// request the shell still has to answer (see [`Route`]).
    Closed { answer: Option<Route> },
}

const CLOSED: Stage = Stage::Closed { answer: None };

/// The open data message: its type, and whether it is compressed (then
/// the loop's codec holds its inflater under this connection's id, see
/// `deflate::Codec`). One byte, like `Option<MessageKind>` before it.
/// Bit 0 is the type as `MessageKind` numbers it, bit 1 the compression,
/// so the conversions are bit operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Open {
    Text = 0,
    Binary = 1,
    PackedText = 2,
    PackedBinary = 3,
}

impl Open {
    #[inline(always)]
    fn new(kind: MessageKind, packed: bool) -> Open {
        match (kind, packed) {
            (MessageKind::Text, false) => Open::Text,
            (MessageKind::Binary, false) => Open::Binary,
            (MessageKind::Text, true) => Open::PackedText,
            (MessageKind::Binary, true) => Open::PackedBinary,
        }
    }

    #[inline(always)]
    fn kind(self) -> MessageKind {
        match self {
            Open::Text | Open::PackedText => MessageKind::Text,
            Open::Binary | Open::PackedBinary => MessageKind::Binary,
        }
    }

    #[inline(always)]
    fn packed(self) -> bool {
        matches!(self, Open::PackedText | Open::PackedBinary)
    }
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

/// One connection's protocol state (72 bytes; no buffers).
#[derive(Debug)]
pub struct Conn {
    stage: Stage,
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
    msg: Option<Open>,
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
    /// The subprotocol chosen, as its index in the settings plus one (0:
    /// none).
    protocol: u8,
    /// Attached from a pool only while needed: the collected part of a
    /// message ([`Delivery::Collect`]), or the service's sends held back
    /// behind a half-sent echo ([`Delivery::EchoAndStream`]).
    msgbuf: Option<MsgBuf>,
    /// permessage-deflate as negotiated in the handshake, if it was.
    deflate: Option<Terms>,
    id: ConnId,
}

impl Conn {
    pub fn new(now: Millis, s: &Settings, id: ConnId) -> Conn {
        Conn {
            stage: Stage::Handshake { refusal: None },
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
            protocol: 0,
            msgbuf: None,
            deflate: None,
            id,
        }
    }

    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Give back pooled buffers and an inflater still attached (the
    /// connection ends).
    pub fn release(&mut self, pool: &mut crate::buffer::MsgPool, codec: &mut Codec) {
        if let Some(b) = self.msgbuf.take() {
            pool.give(b);
        }
        if self.deflate.is_some() {
            codec.release(self.id.as_u64());
        }
    }

    /// permessage-deflate as negotiated, if it was.
    pub fn deflate(&self) -> Option<Terms> {
        self.deflate
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
            self.is_open(),
            self.deflate,
        )
    }

    /// Run a service callback outside of input (the backlog drained, a
    /// timer, a push): with a context, on an open connection only. While
    /// an echo is half out its sends are held, as in
    /// [`Delivery::EchoAndStream`], so they never land inside the echo.
    pub fn callback<E: Events>(
        &mut self,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
        f: impl FnOnce(&mut E, &mut Context<'_>),
    ) {
        if !self.is_open() {
            return;
        }
        let mut cx = self.cx(tx, &[], s, now);
        if self.started {
            cx.hold = Some(&mut self.msgbuf);
        }
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
            if self.is_open() {
                self.stage = Stage::CloseSent;
                self.deadline = now + millis(s.close_timeout);
            }
        }
    }

    pub fn state(&self) -> State {
        match self.stage {
            Stage::Handshake { .. } => State::Handshake,
            Stage::Open { .. } => State::Open,
            Stage::CloseSent => State::CloseSent,
            Stage::Closed { .. } => State::Closed,
        }
    }

    /// An echoed message is half out: a data frame sent now must wait for
    /// its last frame (see [`callback`](Self::callback)).
    pub fn is_echoing(&self) -> bool {
        self.started
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.stage, Stage::Closed { .. })
    }

    fn is_open(&self) -> bool {
        matches!(self.stage, Stage::Open { .. })
    }

    /// The refusal owed to a request still being read, if any.
    fn refusal(&self) -> Option<HandshakeError> {
        match self.stage {
            Stage::Handshake { refusal } => refusal,
            _ => None,
        }
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
        if !self.is_open() {
            self.deadline = 0;
            self.stage = CLOSED;
            return;
        }
        if self.stage == (Stage::Open { pinged: true }) {
            // Nothing has arrived since our ping, and the pong deadline (or
            // the idle deadline, if sooner) passed. Say so, but do not wait
            // for a close from a peer that has stopped talking.
            log::debug!("no answer to a ping");
            self.send_close(close_code::GOING_AWAY, tx, s, h, now);
            self.stage = CLOSED;
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
            self.stage = Stage::Open { pinged: true };
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
        match &mut self.stage {
            Stage::Closed { answer } => answer.take(),
            _ => None,
        }
    }

    /// The peer closed its side of TCP.
    pub fn on_eof(&mut self) {
        self.stage = CLOSED;
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
        match self.state() {
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
        if let Stage::Handshake { refusal } = &mut self.stage {
            *refusal = Some(err);
        }
    }

    /// Refuse a request at the HTTP level (e.g. the server is full).
    pub fn refuse<E: Events>(&mut self, err: HandshakeError, tx: &mut Tx<'_>, h: &mut E) {
        log::debug!("refusing request: {err}");
        h.refused(err);
        let n = http::write_error_response(tx.out.scratch_space(), err);
        tx.out.commit_scratch(n);
        self.stage = CLOSED;
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
        if self.is_open() {
            // Anything from the peer proves it alive.
            self.last_rx = now;
            self.stage = Stage::Open { pinged: false };
        }
        if matches!(self.stage, Stage::Handshake { .. }) {
            match self.handshake(buf, start, tx, s, h, now) {
                Some(p) => pos = p,
                None if matches!(self.stage, Stage::Handshake { .. }) => return start,
                None => return buf.len(),
            }
        }
        match self.state() {
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
            (self.refusal(), &parsed)
        {
            parsed = Err(err);
        }
        match parsed {
            Ok((
                Outcome::Upgrade {
                    accept,
                    protocol,
                    deflate,
                },
                req,
            )) => {
                if let Err(e) = h.accept(&req) {
                    self.refuse(e, tx, h);
                    return None;
                }
                self.protocol = protocol.map_or(0, |i| i as u8 + 1);
                self.deflate = deflate.as_ref().map(Terms::from);
                let n = handshake::write_upgrade_response(
                    tx.out.scratch_space(),
                    &accept,
                    self.protocol(s),
                    deflate.as_ref(),
                );
                tx.out.commit_scratch(n);
                self.stage = Stage::Open { pinged: false };
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
                h.plain(Plain::Page);
                let n = http::write_page_head(tx.out.scratch_space(), page.len());
                tx.out.commit_scratch(n);
                tx.out.push_static(page);
                self.stage = CLOSED;
                self.deadline = 0;
                None
            }
            Ok((Outcome::NotFound, _)) => {
                h.plain(Plain::NotFound);
                let n =
                    http::write_error_response(tx.out.scratch_space(), HandshakeError::NotFound);
                tx.out.commit_scratch(n);
                self.stage = CLOSED;
                self.deadline = 0;
                None
            }
            Ok((route @ (Outcome::Metrics | Outcome::Health), _)) => {
                let answer = if route == Outcome::Metrics {
                    h.plain(Plain::Metrics);
                    Route::Metrics
                } else {
                    h.plain(Plain::Health);
                    Route::Health
                };
                self.stage = Stage::Closed {
                    answer: Some(answer),
                };
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
            if self.is_closed() {
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
            let allowed = if self.deflate.is_some() {
                frame::RSV1
            } else {
                0
            };
            let hdr = match frame::decode_with(&buf[pos..end], Role::FromClient, allowed) {
                Ok(Some(hdr)) => hdr,
                Ok(None) => return pos,
                Err(e) => {
                    // The frame boundaries are lost: nothing after this can
                    // be parsed, so there is no close to wait for either.
                    self.fail(e, tx, s, h, now);
                    self.stage = CLOSED;
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
            if self.is_open() {
                let begun =
                    self.begin_data(hdr.opcode, hdr.len, hdr.compressed, buf, tx, s, h, now);
                if let Err(e) = begun {
                    self.fail(e, tx, s, h, now);
                    // Its payload is skipped unread. A client a little
                    // over the limit sends its close right behind it:
                    // wait for that. A length far past anything this
                    // server takes (up to 2^63: the sequence check comes
                    // before the size check) puts the close out of reach
                    // before the deadline: §7.1.7 lets us close TCP now.
                    if hdr.len > s.max_message.saturating_mul(2) {
                        self.stage = CLOSED;
                        self.deadline = 0;
                        return end;
                    }
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
        match (op, self.state()) {
            (opcode::PING, State::Open) => {
                let hs = frame::encode_before(buf, p, true, opcode::PONG, (e - p) as u64);
                tx.out.push_input(hs, e);
            }
            (opcode::CLOSE, State::Open) => match frame::close_payload(&buf[p..e]) {
                Ok(code) => {
                    h.peer_closed(code);
                    // Answer with the same code (none if the peer gave none).
                    if let Some(c) = code {
                        h.close_sent(c);
                    }
                    let n = if code.is_some() { 2 } else { 0 };
                    let hs = frame::encode_before(buf, p, true, opcode::CLOSE, n as u64);
                    tx.out.push_input(hs, p + n);
                    self.stage = CLOSED;
                    self.deadline = 0;
                }
                Err(err) => {
                    // The peer has already closed its side of the
                    // conversation: there is no close left to wait for.
                    self.fail(err, tx, s, h, now);
                    self.stage = CLOSED;
                    self.deadline = 0;
                }
            },
            (opcode::CLOSE, State::CloseSent) => {
                h.peer_closed(frame::close_payload(&buf[p..e]).ok().flatten());
                self.stage = CLOSED;
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
        if self.is_open() {
            self.send_close(e.close_code(), tx, s, h, now);
        }
        self.carry_len = 0;
        self.got = 0;
        self.checked = 0;
        if let Some(b) = self.msgbuf.take() {
            tx.pool.give(b);
        }
        if self.compressed()
            || self
                .deflate
                .is_some_and(|t| !t.client_no_context_takeover())
        {
            tx.codec.release(self.id.as_u64());
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
        self.stage = Stage::CloseSent;
        self.deadline = now + millis(s.close_timeout);
    }
}

/// Spare room a read buffer keeps past one echo chunk (a frame header and
/// a control frame), so a chunk always fits once compacted.
pub const CHUNK_SLACK: usize = 256;

/// The one loop between a read buffer and the core: process what is
/// buffered, consume it, send each pass's output through `tx.sink`, and
/// compact what is left (a partial frame or request) to the front. Returns
/// false once the sink is broken. When `tx.codec.take_yielded()` is then
/// true, a compressed chunk was left for later although it is all there:
/// call again (after serving other connections) without new input.
pub fn pump<E: Events>(
    conn: &mut Conn,
    rbuf: &mut crate::buffer::ReadBuf,
    tx: &mut Tx<'_>,
    s: &Settings,
    h: &mut E,
    now: Millis,
) -> bool {
    tx.codec.new_pass();
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

mod inflate;
mod rx;

use rx::Step;

#[cfg(test)]
mod tests;
