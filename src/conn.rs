//! The per-connection protocol state machine: bytes in, ranges of the same
//! bytes out. It never touches a socket and never reads the clock; the
//! caller passes in the bytes and the time.
//!
//! Contract with the caller (see [`Conn::process`]): the caller owns the read
//! buffer and passes `buf[..end]` with unprocessed data from `start`; every
//! byte before `start` is free for the core to overwrite. The core decodes
//! and unmasks frames in place, writes each echo header over the tail of the
//! client header it answers (4 bytes shorter, always fits), and queues ranges
//! of `buf` in an [`Output`]. It returns how far it consumed; the caller
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

use crate::error::{close_code, HandshakeError, ProtocolError};
use crate::frame::{self, opcode, Role};
use crate::handler::{Handler, MessageKind, Reply};
use crate::handshake::{self, HandshakeConfig, Outcome};
use crate::output::Output;
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
    pub handshake: HandshakeConfig,
    /// Longest message accepted, in bytes; longer ones fail with 1009.
    pub max_message: u64,
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

/// One connection's protocol state (about 64 bytes; no buffers).
#[derive(Debug)]
pub struct Conn {
    state: State,
    /// Inside a data frame (its header is consumed).
    in_frame: bool,
    /// Payload bytes of the current data frame not yet echoed or skipped.
    remaining: u64,
    /// Bytes of the current chunk already in the buffer, unmasked; during
    /// the handshake, bytes of the request head already searched.
    got: u32,
    /// Of those, bytes validated as UTF-8 (a text chunk).
    checked: u32,
    mask: [u8; 4],
    mask_phase: u8,
    fin: bool,
    /// The open data message, if any.
    msg: Option<MessageKind>,
    /// The handler wants the open message echoed.
    echo: bool,
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
    /// A request for the caller to answer (see [`Route`]).
    route: Option<Route>,
    /// Refuse the request with this once its head is in (the server is
    /// full or shutting down); metrics and health are still answered.
    refusal: Option<HandshakeError>,
}

impl Conn {
    pub fn new(now: Millis, s: &Settings) -> Conn {
        Conn {
            state: State::Handshake,
            in_frame: false,
            remaining: 0,
            got: 0,
            checked: 0,
            mask: [0; 4],
            mask_phase: 0,
            fin: false,
            msg: None,
            echo: false,
            started: false,
            msg_len: 0,
            carry: [0; 3],
            carry_len: 0,
            deadline: now + millis(s.handshake_timeout),
            last_rx: now,
            pinged: false,
            route: None,
            refusal: None,
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
    pub fn on_timeout<H: Handler>(
        &mut self,
        now: Millis,
        out: &mut Output,
        s: &Settings,
        h: &mut H,
    ) {
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
            self.send_close(close_code::GOING_AWAY, out, s, h, now);
            self.state = State::Closed;
            self.deadline = 0;
            return;
        }
        let idle_at = s.idle_timeout.map(|i| self.last_rx + millis(i));
        if idle_at.is_some_and(|t| now >= t) {
            log::debug!("idle timeout");
            self.send_close(close_code::GOING_AWAY, out, s, h, now);
            return;
        }
        if s.ping_interval
            .is_some_and(|p| now >= self.last_rx + millis(p))
        {
            out.push_bytes(&[0x80 | opcode::PING, 0]);
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
        self.route.take()
    }

    /// The peer closed its side of TCP.
    pub fn on_eof(&mut self) {
        self.state = State::Closed;
        self.deadline = 0;
    }

    /// Start a close from our side (shutdown, idle peer): send `code` and wait
    /// for the peer's close.
    pub fn close<H: Handler>(
        &mut self,
        code: u16,
        out: &mut Output,
        s: &Settings,
        h: &mut H,
        now: Millis,
    ) {
        match self.state {
            State::Open => self.send_close(code, out, s, h, now),
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
            self.refusal = Some(err);
        }
    }

    /// Refuse a request at the HTTP level (e.g. the server is full).
    pub fn refuse<H: Handler>(&mut self, err: HandshakeError, out: &mut Output, h: &mut H) {
        log::debug!("refusing request: {err}");
        h.on_refused(err);
        let n = http::write_error_response(out.scratch_space(), err);
        out.commit_scratch(n);
        self.state = State::Closed;
        self.deadline = 0;
    }

    /// Process `buf[start..]` in place, queueing output in `out` (which the
    /// caller has cleared). Returns the index up to which input is consumed.
    pub fn process<H: Handler>(
        &mut self,
        buf: &mut [u8],
        start: usize,
        out: &mut Output,
        s: &Settings,
        h: &mut H,
        now: Millis,
    ) -> usize {
        let mut pos = start;
        if self.state == State::Open {
            // Anything from the peer proves it alive.
            self.last_rx = now;
            self.pinged = false;
        }
        if self.state == State::Handshake {
            match self.handshake(buf, start, out, s, h, now) {
                Some(p) => pos = p,
                None if self.state == State::Handshake => return start,
                None => return buf.len(),
            }
        }
        match self.state {
            State::Open | State::CloseSent => self.frames(buf, pos, out, s, h, now),
            _ => buf.len(),
        }
    }

    /// Returns where the frames begin once the upgrade is accepted, `None`
    /// while the head is incomplete or after refusing it.
    fn handshake<H: Handler>(
        &mut self,
        buf: &[u8],
        start: usize,
        out: &mut Output,
        s: &Settings,
        h: &mut H,
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
                self.refuse(e, out, h);
                return None;
            }
        };
        let mut parsed = handshake::parse(&head[..end], &s.handshake);
        if let (Some(err), Ok(Outcome::Upgrade { .. } | Outcome::Page)) = (self.refusal, &parsed) {
            parsed = Err(err);
        }
        match parsed {
            Ok(Outcome::Upgrade { accept, protocol }) => {
                let protocol = protocol.map(|i| s.handshake.subprotocols[i].as_str());
                let n = handshake::write_upgrade_response(out.scratch_space(), &accept, protocol);
                out.commit_scratch(n);
                self.state = State::Open;
                self.got = 0;
                self.last_rx = now;
                self.deadline = self.next_check(s);
                h.on_open(protocol);
                Some(start + end)
            }
            Ok(Outcome::Page) => {
                let n = http::write_page_head(out.scratch_space());
                out.commit_scratch(n);
                out.push_static(http::PAGE);
                self.state = State::Closed;
                self.deadline = 0;
                None
            }
            Ok(Outcome::Metrics | Outcome::Health) => {
                self.route = Some(if matches!(parsed, Ok(Outcome::Metrics)) {
                    Route::Metrics
                } else {
                    Route::Health
                });
                self.state = State::Closed;
                self.deadline = 0;
                None
            }
            Err(e) => {
                self.refuse(e, out, h);
                None
            }
        }
    }

    fn frames<H: Handler>(
        &mut self,
        buf: &mut [u8],
        mut pos: usize,
        out: &mut Output,
        s: &Settings,
        h: &mut H,
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
            if self.in_frame {
                if !out.has_room() {
                    return pos;
                }
                match self.data_step(buf, pos, room, out, s, h) {
                    Ok(Step::Next(next)) => {
                        pos = next;
                        room = next;
                    }
                    Ok(Step::Wait(at)) => return at,
                    Err(e) => self.fail(e, out, s, h, now),
                }
                continue;
            }
            if pos == end || !out.has_room() {
                return pos;
            }
            let hdr = match frame::decode(&buf[pos..end], Role::FromClient) {
                Ok(Some(hdr)) => hdr,
                Ok(None) => return pos,
                Err(e) => {
                    // The frame boundaries are lost: nothing after this can
                    // be parsed, so there is no close to wait for either.
                    self.fail(e, out, s, h, now);
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
                self.control(buf, payload, fend, hdr.opcode, out, s, h, now);
                pos = fend;
                room = pos;
                continue;
            }
            if self.state == State::Open {
                if let Err(e) = self.begin_data(hdr.opcode, hdr.len, s, h) {
                    self.fail(e, out, s, h, now);
                }
            }
            self.in_frame = true;
            self.fin = hdr.fin;
            self.mask = key;
            self.mask_phase = 0;
            self.remaining = hdr.len;
            self.got = 0;
            self.checked = 0;
            room = pos;
            pos = payload;
        }
    }

    /// Sequencing and size rules for a new data frame (§5.4).
    fn begin_data<H: Handler>(
        &mut self,
        op: u8,
        len: u64,
        s: &Settings,
        h: &mut H,
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
            self.echo = h.on_message(kind) == Reply::Echo;
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
    fn data_step<H: Handler>(
        &mut self,
        buf: &mut [u8],
        pos: usize,
        room: usize,
        out: &mut Output,
        s: &Settings,
        h: &mut H,
    ) -> Result<Step, ProtocolError> {
        let avail_all = buf.len() - pos;
        if self.state != State::Open {
            // Our close is out: skip the peer's data unread.
            let n = avail_all.min(self.remaining.min(usize::MAX as u64) as usize);
            self.remaining -= n as u64;
            if self.remaining > 0 {
                return Ok(Step::Wait(pos + n));
            }
            self.in_frame = false;
            return Ok(Step::Next(pos + n));
        }
        let chunk = self.remaining.min(s.chunk_size as u64) as usize;
        let avail = avail_all.min(chunk);
        let got = self.got as usize;
        if avail > got {
            self.mask_phase = mask::apply(
                &mut buf[pos + got..pos + avail],
                self.mask,
                self.mask_phase as usize,
            ) as u8;
            self.got = avail as u32;
            if self.msg == Some(MessageKind::Text) {
                self.check_text(&buf[pos..pos + avail])?;
            }
        }
        if avail < chunk {
            return Ok(Step::Wait(pos));
        }
        let last = self.fin && self.remaining == chunk as u64;
        self.emit_chunk(buf, room, pos, pos + chunk, last, out, h)?;
        self.remaining -= chunk as u64;
        self.got = 0;
        self.checked = 0;
        if self.remaining == 0 {
            self.in_frame = false;
        }
        Ok(Step::Next(pos + chunk))
    }

    /// Validate the new bytes of the chunk `piece` (all of it that has
    /// arrived) from `checked` on, completing a carried code point first.
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

    /// Queue the echo of the complete chunk `buf[a..b]` (unmasked and, for
    /// text, validated up to `checked`); `buf[room..a]` is free.
    #[allow(clippy::too_many_arguments)]
    fn emit_chunk<H: Handler>(
        &mut self,
        buf: &mut [u8],
        room: usize,
        a: usize,
        b: usize,
        last: bool,
        out: &mut Output,
        h: &mut H,
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
        if self.echo && (len > 0 || last) {
            let op = if self.started {
                opcode::CONTINUATION
            } else if kind == MessageKind::Text {
                opcode::TEXT
            } else {
                opcode::BINARY
            };
            let hl = frame::header_len(len as u64, false);
            if a - room >= hl + carry_len {
                buf[a - carry_len..a].copy_from_slice(&carry[..carry_len]);
                let hs = frame::encode_before(buf, a - carry_len, last, op, len as u64);
                out.push_input(hs, valid_end);
            } else {
                // No room in front (a later chunk of a long frame, or a
                // carried code point in front of a payload whose length
                // needs a longer header): the header and the carried bytes
                // go out from scratch, the payload still from the buffer.
                let mut tmp = [0u8; frame::MAX_HEADER + 3];
                let n = frame::encode(&mut tmp, last, op, len as u64, None);
                tmp[n..n + carry_len].copy_from_slice(&carry[..carry_len]);
                out.push_bytes(&tmp[..n + carry_len]);
                out.push_input(a, valid_end);
            }
            self.started = true;
        }
        if carry_len > 0 {
            h.on_data(&carry[..carry_len]);
        }
        h.on_data(&buf[a..valid_end]);
        self.carry[..new_carry].copy_from_slice(&buf[valid_end..b]);
        self.carry_len = new_carry as u8;
        if last {
            self.msg = None;
            self.msg_len = 0;
            self.started = false;
            h.on_message_end();
        }
        Ok(())
    }

    /// A whole, unmasked control frame with payload `buf[p..e]`.
    #[allow(clippy::too_many_arguments)]
    fn control<H: Handler>(
        &mut self,
        buf: &mut [u8],
        p: usize,
        e: usize,
        op: u8,
        out: &mut Output,
        s: &Settings,
        h: &mut H,
        now: Millis,
    ) {
        match (op, self.state) {
            (opcode::PING, State::Open) => {
                let hs = frame::encode_before(buf, p, true, opcode::PONG, (e - p) as u64);
                out.push_input(hs, e);
            }
            (opcode::CLOSE, State::Open) => match close_payload(&buf[p..e]) {
                Ok(code) => {
                    h.on_close(code);
                    // Answer with the same code (none if the peer gave none).
                    if let Some(c) = code {
                        h.on_close_sent(c);
                    }
                    let n = if code.is_some() { 2 } else { 0 };
                    let hs = frame::encode_before(buf, p, true, opcode::CLOSE, n as u64);
                    out.push_input(hs, p + n);
                    self.state = State::Closed;
                    self.deadline = 0;
                }
                Err(err) => {
                    // The peer has already closed its side of the
                    // conversation: there is no close left to wait for.
                    self.fail(err, out, s, h, now);
                    self.state = State::Closed;
                    self.deadline = 0;
                }
            },
            (opcode::CLOSE, State::CloseSent) => {
                h.on_close(close_payload(&buf[p..e]).ok().flatten());
                self.state = State::Closed;
                self.deadline = 0;
            }
            // Unsolicited pongs are ignored (§5.5.3); after our close, so
            // are pings.
            _ => {}
        }
    }

    /// Fail the connection (§7.1.7): send a close with the error's code.
    fn fail<H: Handler>(
        &mut self,
        e: ProtocolError,
        out: &mut Output,
        s: &Settings,
        h: &mut H,
        now: Millis,
    ) {
        log::debug!("failing connection: {e}");
        if self.state == State::Open {
            self.send_close(e.close_code(), out, s, h, now);
        }
        self.carry_len = 0;
        self.got = 0;
        self.checked = 0;
    }

    fn send_close<H: Handler>(
        &mut self,
        code: u16,
        out: &mut Output,
        s: &Settings,
        h: &mut H,
        now: Millis,
    ) {
        h.on_close_sent(code);
        let c = code.to_be_bytes();
        out.push_bytes(&[0x88, 0x02, c[0], c[1]]);
        self.state = State::CloseSent;
        self.deadline = now + millis(s.close_timeout);
    }
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
