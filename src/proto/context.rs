//! The send half of a connection, as a service sees it in a callback.
//!
//! Invariants:
//! * Order: everything a connection sends goes through one [`Output`] (the
//!   pass's list of segments) and then the connection's backlog, in call
//!   order, so what a service sends while handling message N follows N's
//!   echo and precedes anything for message N+1.
//! * Small sends are corked: copied into the output's scratch area and
//!   written with the rest of the pass in one `writev`. A payload of
//!   [`DIRECT_MIN`] bytes or more is not copied: the pass's output so far and
//!   the new frame go to the socket at once (one `writev`), and only what
//!   the socket does not take is copied into pooled backlog blocks.
//! * Frames never interleave inside a fragmented message going out: sends
//!   made while an echo is half out are held in a pooled per-connection
//!   buffer until the echo's last frame is queued; a whole message sent
//!   while the callback's own stream is open is refused ([`SendStatus::Refused`]).
//!   Control frames (ping, close) may interleave (RFC 6455 §5.4).
//! * Bounds: a send that would take the connection's unsent bytes past
//!   `max_backlog` is not queued and reports [`SendStatus::Dropped`].

use crate::buffer::{MsgBuf, MsgPool};
use crate::conn::Millis;
use crate::conn_id::ConnId;
use crate::deflate::{Codec, Terms};
use crate::error::close_code;
use crate::frame::{self, opcode};
use crate::output::Output;
use crate::push::{Local, Prepared};
use crate::service::{Message, MessageKind};

mod push;

/// Payloads at least this long are written without being copied first.
pub const DIRECT_MIN: usize = 4096;
/// Most parts one message can be sent from.
pub const MAX_PARTS: usize = 8;

/// Where output goes when a send cannot wait for the end of the pass: the
/// connection's socket and backlog.
#[doc(hidden)]
pub trait Sink {
    /// Bytes accepted for this connection and not yet taken by the socket.
    fn unsent(&self) -> usize;
    /// Write `out` (over `input`, the read buffer its segments point into)
    /// followed by `tail`, keeping whatever the socket does not take, in
    /// order; then clear `out`.
    fn flush(&mut self, out: &mut Output, input: &[u8], tail: &[&[u8]]);
    /// The way out failed: nothing more will leave.
    fn is_broken(&self) -> bool {
        false
    }
}

/// A sink that takes everything into a vector (tests, fuzzing, benches).
impl Sink for Vec<u8> {
    fn unsent(&self) -> usize {
        0
    }
    fn flush(&mut self, out: &mut Output, input: &[u8], tail: &[&[u8]]) {
        out.extend_vec(input, self);
        for t in tail {
            self.extend_from_slice(t);
        }
        out.clear();
    }
}

/// What became of a send.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Queued with nothing unsent ahead of it.
    Sent,
    /// Queued, but the peer has not read everything sent before: wait for
    /// [`Service::drain`](crate::Service::drain) before sending much more.
    Backpressure,
    /// Not sent: it would take the connection's unsent bytes past the
    /// backlog limit.
    Dropped,
    /// Not sent: the connection is closing.
    Closed,
    /// Not sent: a whole message while this callback's own stream is open,
    /// more than [`MAX_PARTS`] parts, a piece with no stream begun, a text piece that is not UTF-8 on its
    /// own, a ping over 125 bytes, or a close code or reason that may not be
    /// sent.
    Refused,
}

/// A streamed message this callback is sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    /// Begun, no frame out yet.
    Begun(MessageKind),
    /// Frames are out; the rest are continuations.
    Going(MessageKind),
}

/// What a service's sends came to in one pass, for the loop's counters.
#[doc(hidden)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Messages queued.
    pub messages: u64,
    /// Their payload bytes.
    pub bytes: u64,
    /// Messages refused as [`SendStatus::Dropped`].
    pub dropped: u64,
}

/// Whether a data frame is subject to the backlog limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    Limited,
    /// The empty final frame that ends a streamed message cut short.
    Exempt,
}

/// The bytes and sinks one pass of the core sends through.
#[doc(hidden)]
pub struct Tx<'a> {
    pub out: &'a mut Output,
    pub sink: &'a mut dyn Sink,
    pub pool: &'a mut MsgPool,
    pub max_backlog: usize,
    /// What the service sent (for metrics).
    pub sent: Sent,
    /// The loop's push state (topics, timers, the handle); `None` when
    /// the core runs with no loop around it.
    pub local: Option<&'a mut Local>,
    /// The loop's compression state (permessage-deflate).
    pub codec: &'a mut Codec,
}

/// A connection, as a callback sees it: who it is, and how to send to it.
pub struct Context<'a> {
    pub(crate) id: ConnId,
    pub(crate) now: Millis,
    /// The server's subprotocols, and the index plus one of the one
    /// negotiated (0: none); resolved only when asked for.
    pub(crate) subprotocols: &'a [String],
    pub(crate) protocol: u8,
    pub(crate) out: &'a mut Output,
    pub(crate) input: &'a [u8],
    pub(crate) sink: &'a mut dyn Sink,
    pub(crate) pool: &'a mut MsgPool,
    pub(crate) max_backlog: usize,
    pub(crate) sent: &'a mut Sent,
    /// Where sends wait while an echo is half out.
    pub(crate) hold: Option<&'a mut Option<MsgBuf>>,
    /// The connection takes data frames (it is open and no close was sent).
    pub(crate) open: bool,
    pub(crate) stream: Option<Stream>,
    /// A close the service asked for.
    /// (Close codes are never 0; two bytes keep `Context` within the
    /// 128 bytes a move copies inline rather than through `memcpy`.)
    pub(crate) close: Option<std::num::NonZeroU16>,
    pub(crate) local: Option<&'a mut Local>,
    pub(crate) codec: &'a mut Codec,
    /// permessage-deflate as negotiated, if it was.
    pub(crate) deflate: Option<Terms>,
}

impl<'a> Context<'a> {
    /// A context over `tx` for one callback.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        tx: &'a mut Tx<'_>,
        input: &'a [u8],
        id: ConnId,
        now: Millis,
        subprotocols: &'a [String],
        protocol: u8,
        open: bool,
        deflate: Option<Terms>,
    ) -> Context<'a> {
        Context {
            id,
            now,
            subprotocols,
            protocol,
            out: &mut *tx.out,
            input,
            sink: &mut *tx.sink,
            pool: &mut *tx.pool,
            max_backlog: tx.max_backlog,
            sent: &mut tx.sent,
            hold: None,
            open,
            stream: None,
            close: None,
            local: tx.local.as_deref_mut(),
            codec: &mut *tx.codec,
            deflate,
        }
    }

    /// This connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The loop's clock, in milliseconds since the loop started (the time
    /// of this loop turn).
    pub fn now(&self) -> Millis {
        self.now
    }

    /// The subprotocol negotiated in the handshake, if any.
    pub fn protocol(&self) -> Option<&str> {
        let i = usize::from(self.protocol).checked_sub(1)?;
        self.subprotocols.get(i).map(String::as_str)
    }

    /// Bytes accepted for this connection that the peer has not yet taken.
    pub fn unsent(&self) -> usize {
        self.sink.unsent()
    }

    /// Whether data can still be sent (no close has been sent or asked for).
    pub fn is_open(&self) -> bool {
        self.open && self.close.is_none()
    }

    /// Send a whole text message.
    #[inline]
    pub fn send_text(&mut self, text: &str) -> SendStatus {
        self.send(Message::Text(text))
    }

    /// Send a whole binary message.
    #[inline]
    pub fn send_binary(&mut self, data: &[u8]) -> SendStatus {
        self.send(Message::Binary(data))
    }

    /// Send a whole message.
    #[inline]
    pub fn send(&mut self, msg: Message<'_>) -> SendStatus {
        let op = match msg {
            Message::Text(_) => opcode::TEXT,
            Message::Binary(_) => opcode::BINARY,
        };
        self.whole(op, &[msg.as_bytes()])
    }

    /// Send one text message made of `parts` in order (at most
    /// [`MAX_PARTS`]), with no copy to join them first.
    #[inline]
    pub fn send_text_parts(&mut self, parts: &[&str]) -> SendStatus {
        let mut bytes: [&[u8]; MAX_PARTS] = [&[]; MAX_PARTS];
        if parts.len() > MAX_PARTS {
            return SendStatus::Refused;
        }
        for (b, p) in bytes.iter_mut().zip(parts) {
            *b = p.as_bytes();
        }
        self.whole(opcode::TEXT, &bytes[..parts.len()])
    }

    /// Send one binary message made of `parts` in order (at most
    /// [`MAX_PARTS`]), with no copy to join them first.
    #[inline]
    pub fn send_binary_parts(&mut self, parts: &[&[u8]]) -> SendStatus {
        if parts.len() > MAX_PARTS {
            return SendStatus::Refused;
        }
        self.whole(opcode::BINARY, parts)
    }

    #[inline]
    fn whole(&mut self, op: u8, parts: &[&[u8]]) -> SendStatus {
        if self.stream.is_some() {
            return SendStatus::Refused;
        }
        // One test on the common path: the compressed one is out of line,
        // so `whole` still inlines into the `send_*` calls.
        let st = match self.deflate {
            Some(t) => self.maybe_compressed(op, parts, t),
            None => self.data_frame(true, op, parts, Bound::Limited),
        };
        if st_queued(st) {
            self.sent.messages += 1;
        }
        st
    }

    /// Begin a message sent in pieces ([`piece`](Self::piece), then
    /// [`finish`](Self::finish)). It must be finished in the same callback:
    /// one left open is ended (with an empty final frame) when the callback
    /// returns.
    pub fn begin(&mut self, kind: MessageKind) -> SendStatus {
        if !self.is_open() {
            return SendStatus::Closed;
        }
        if self.stream.is_some() {
            return SendStatus::Refused;
        }
        self.stream = Some(Stream::Begun(kind));
        SendStatus::Sent
    }

    /// Send the next piece of the streamed message as a frame of its own.
    /// A piece of a text message must be valid UTF-8 by itself. A piece
    /// [`Dropped`](SendStatus::Dropped) at the backlog limit after the
    /// message has begun on the wire ends the message there, short, so the
    /// connection is never left inside a half-sent message.
    pub fn piece(&mut self, data: &[u8]) -> SendStatus {
        self.stream_frame(false, data)
    }

    /// Send the last piece (may be empty) and end the streamed message.
    pub fn finish(&mut self, data: &[u8]) -> SendStatus {
        self.stream_frame(true, data)
    }

    fn stream_frame(&mut self, fin: bool, data: &[u8]) -> SendStatus {
        let (op, kind) = match self.stream {
            None => return SendStatus::Refused,
            Some(Stream::Begun(k @ MessageKind::Text)) => (opcode::TEXT, k),
            Some(Stream::Begun(k @ MessageKind::Binary)) => (opcode::BINARY, k),
            Some(Stream::Going(k)) => (opcode::CONTINUATION, k),
        };
        if kind == MessageKind::Text && crate::utf8::complete(data).is_err() {
            return SendStatus::Refused;
        }
        let st = self.data_frame(fin, op, &[data], Bound::Limited);
        if st_queued(st) {
            if fin {
                self.stream = None;
                self.sent.messages += 1;
            } else {
                self.stream = Some(Stream::Going(kind));
            }
        } else if st == SendStatus::Dropped && op == opcode::CONTINUATION {
            // The message is begun on the wire and must not be left open:
            // end it here, short, with an empty final frame that the limit
            // does not refuse (two bytes). The service is told `Dropped`.
            let _ = self.data_frame(true, opcode::CONTINUATION, &[], Bound::Exempt);
            self.stream = None;
            self.sent.messages += 1;
        }
        st
    }

    /// Send a ping with `payload` (at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> SendStatus {
        if payload.len() > frame::MAX_CONTROL_PAYLOAD {
            return SendStatus::Refused;
        }
        if !self.is_open() {
            return SendStatus::Closed;
        }
        self.control(opcode::PING, &[], payload)
    }

    /// Start the closing handshake with `code` and `reason` (at most 123
    /// bytes). Codes that may be sent: 1000–1003, 1007–1014, 3000–4999.
    /// Nothing more can be sent after it.
    pub fn close(&mut self, code: u16, reason: &str) -> SendStatus {
        if !close_code::is_sendable(code) || reason.len() > frame::MAX_CONTROL_PAYLOAD - 2 {
            return SendStatus::Refused;
        }
        if !self.is_open() {
            return SendStatus::Closed;
        }
        self.stream = None;
        let st = self.control(opcode::CLOSE, &code.to_be_bytes(), reason.as_bytes());
        self.close = std::num::NonZeroU16::new(code);
        st
    }

    /// A control frame: never held back (it may interleave), never dropped
    /// for the backlog limit (it is small and bounded by the peer's pace).
    fn control(&mut self, op: u8, a: &[u8], b: &[u8]) -> SendStatus {
        let mut f = [0u8; 2 + frame::MAX_CONTROL_PAYLOAD];
        f[0] = 0x80 | op;
        f[1] = (a.len() + b.len()) as u8;
        f[2..2 + a.len()].copy_from_slice(a);
        f[2 + a.len()..2 + a.len() + b.len()].copy_from_slice(b);
        let unsent = self.sink.unsent();
        let n = 2 + a.len() + b.len();
        let flushed = queue(self.out, self.input, self.sink, &f[..n], &[]);
        self.status(unsent, flushed)
    }

    /// Send a message encoded once for many connections (see
    /// [`Prepared`]): its frame is written from the shared bytes.
    pub fn send_prepared(&mut self, msg: &Prepared) -> SendStatus {
        if !self.is_open() {
            return SendStatus::Closed;
        }
        if self.stream.is_some() {
            return SendStatus::Refused;
        }
        let frame = msg.frame();
        let st = self.enqueue(
            &[],
            &[frame],
            frame.len(),
            msg.payload().len(),
            Bound::Limited,
        );
        if st_queued(st) {
            self.sent.messages += 1;
        }
        st
    }

    /// Queue a whole message compressed (RFC 7692 §7.2.1) if it is long
    /// enough to be worth it and compressing makes it smaller; otherwise as
    /// it is.
    #[inline(never)]
    fn maybe_compressed(&mut self, op: u8, parts: &[&[u8]], t: Terms) -> SendStatus {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if !self.codec.worth(len) {
            return self.data_frame(true, op, parts, Bound::Limited);
        }
        if !self.is_open() {
            return SendStatus::Closed;
        }
        let window = t.compress_window();
        let mut packed = std::mem::take(&mut self.codec.packed);
        let st = if self.codec.compress(parts, window, &mut packed) {
            let mut head = [0u8; frame::MAX_HEADER];
            let hl = frame::encode(&mut head, true, op, packed.len() as u64, None);
            head[0] |= frame::RSV1;
            // The backlog counts wire bytes; the metrics count what the
            // service sent.
            self.enqueue(
                &head[..hl],
                &[&packed],
                hl + packed.len(),
                len,
                Bound::Limited,
            )
        } else {
            self.data_frame(true, op, parts, Bound::Limited)
        };
        self.codec.packed = packed;
        st
    }

    /// Queue one data frame, held back if an echo is half out.
    #[inline(never)]
    fn data_frame(&mut self, fin: bool, op: u8, parts: &[&[u8]], bound: Bound) -> SendStatus {
        if !self.is_open() {
            return SendStatus::Closed;
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut head = [0u8; frame::MAX_HEADER];
        let hl = frame::encode(&mut head, fin, op, len as u64, None);
        self.enqueue(&head[..hl], parts, hl + len, len, bound)
    }

    /// Queue `head` then `parts` (`n` bytes in all, `len` of them
    /// payload), held back if an echo is half out, unless they would pass
    /// the backlog limit.
    #[inline]
    fn enqueue(
        &mut self,
        head: &[u8],
        parts: &[&[u8]],
        n: usize,
        len: usize,
        bound: Bound,
    ) -> SendStatus {
        let unsent = self.sink.unsent();
        let waiting = unsent + self.out.scratch_len();
        if let Some(hold) = self.hold.as_deref_mut() {
            let held = hold.as_ref().map_or(0, |v| v.len());
            if bound == Bound::Limited && waiting + held + n > self.max_backlog {
                self.sent.dropped += 1;
                return SendStatus::Dropped;
            }
            let v = hold.get_or_insert_with(|| self.pool.take());
            v.extend_from_slice(head);
            for p in parts {
                v.extend_from_slice(p);
            }
            self.sent.bytes += len as u64;
            return SendStatus::Sent;
        }
        if bound == Bound::Limited && waiting + n > self.max_backlog {
            self.sent.dropped += 1;
            return SendStatus::Dropped;
        }
        let flushed = queue(self.out, self.input, self.sink, head, parts);
        self.sent.bytes += len as u64;
        self.status(unsent, flushed)
    }

    /// The status of a queued send, given the unsent bytes before it and
    /// whether it went to the socket at once.
    #[inline]
    fn status(&self, unsent_before: usize, flushed: bool) -> SendStatus {
        let unsent = if flushed {
            self.sink.unsent()
        } else {
            unsent_before
        };
        if unsent > 0 {
            SendStatus::Backpressure
        } else {
            SendStatus::Sent
        }
    }

    /// End a stream the callback left open, and report what it asked for.
    #[inline]
    pub(crate) fn finish_callback(mut self) -> Option<u16> {
        if self.stream.is_some() {
            self.end_open_stream();
        }
        self.close.map(std::num::NonZeroU16::get)
    }

    #[cold]
    fn end_open_stream(&mut self) {
        let _ = self.finish(&[]);
    }
}

fn st_queued(st: SendStatus) -> bool {
    matches!(st, SendStatus::Sent | SendStatus::Backpressure)
}

/// Queue `head` then `parts` after everything already in `out`: copied
/// into the scratch area when small and it fits, otherwise written at once
/// with the output before it. Returns whether anything was written.
#[inline]
pub(crate) fn queue(
    out: &mut Output,
    input: &[u8],
    sink: &mut dyn Sink,
    head: &[u8],
    parts: &[&[u8]],
) -> bool {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    if len < DIRECT_MIN && out.cork_fits(head.len() + len) {
        out.push_frame(head, parts);
        return false;
    }
    flush_then_queue(out, input, sink, head, parts, len);
    true
}

/// The slow half of [`queue`]: the scratch area is full, or the payload
/// (`len` bytes) is large.
#[cold]
fn flush_then_queue(
    out: &mut Output,
    input: &[u8],
    sink: &mut dyn Sink,
    head: &[u8],
    parts: &[&[u8]],
    len: usize,
) {
    if len < DIRECT_MIN {
        sink.flush(out, input, &[]);
        if out.cork_fits(head.len() + len) {
            out.push_frame(head, parts);
            return;
        }
    }
    let mut tail: [&[u8]; MAX_PARTS + 1] = [&[]; MAX_PARTS + 1];
    tail[0] = head;
    tail[1..=parts.len()].copy_from_slice(parts);
    sink.flush(out, input, &tail[..=parts.len()]);
}

#[cfg(test)]
#[test]
fn a_context_is_moved_without_memcpy() {
    // Built and moved for every callback: past 128 bytes the compiler
    // moves it with a `memcpy` call (about 30 instructions a message in
    // benches/tools/callgrind.sh).
    assert!(std::mem::size_of::<Context<'_>>() <= 128);
}
