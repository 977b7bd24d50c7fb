//! The receive half for compressed messages (permessage-deflate).
//!
//! Each complete chunk of a compressed message is inflated in steps of at
//! most the loop's scratch size, and every step is validated, counted
//! against the limit as inflated bytes, and handed on as the service asked
//! before the next is made. The echo goes back as the client's own
//! compressed bytes when [`Agreed::echo_as_is`] holds (no recompression).
//! Otherwise a message of which nothing is echoed yet when its last chunk
//! comes (one that arrived in one chunk, the usual case) is gathered
//! inflated in a buffer from the loop's message pool and goes back in one
//! frame, recompressed by the loop's compressor for the client's window
//! as a service's whole message would be (so under the threshold, or when
//! that does not make it smaller, it goes back as it is). A message in
//! several chunks goes back as uncompressed frames, one per inflated step:
//! its first chunks cannot wait for the last without holding the message.
//!
//! Invariants: while the open message is compressed (`Open::PackedText`,
//! `Open::PackedBinary`) the loop's codec lends this connection an
//! inflater under its id (a client that keeps its context
//! keeps its own there between messages too); a chunk is echoed only once all of
//! it has inflated cleanly; what a service sends from `piece` while such an
//! echo is under way is held until the echo's last frame is out. A gathered
//! message lives only within `Conn::emit_compressed`'s call and goes back
//! to the pool there, and never grows past what the pool keeps
//! (`MsgPool::max_kept`): a longer one is sent as gathered so far, and the
//! rest streams as above, so neither the pooled buffer nor the codec's
//! `packed` grows with the message and neither is made anew per message.

use super::*;
use crate::buffer::MsgPool;
use crate::deflate::Inflate;

impl Conn {
    /// The open message is compressed.
    #[inline]
    pub(super) fn compressed(&self) -> bool {
        self.msg.is_some_and(Open::packed)
    }

    /// A compressed message begins: the loop lends an inflater.
    #[cold]
    pub(super) fn begin_compressed(&mut self, tx: &mut Tx<'_>) {
        debug_assert!(
            self.deflate.is_some(),
            "RSV1 is accepted only with permessage-deflate"
        );
        tx.codec.begin(self.id.as_u64());
    }

    /// The compressed message is over: the inflater goes back, or stays
    /// (at the message boundary) if the client keeps its context.
    fn end_compressed(&mut self, tx: &mut Tx<'_>) {
        let keep = self
            .deflate
            .is_some_and(|t| !t.client_no_context_takeover());
        tx.codec.end(self.id.as_u64(), keep);
    }

    /// [`emit_chunk`](Self::emit_chunk) for a compressed message: the chunk
    /// `buf[a..b]` is unmasked and complete; `buf[room..a]` is free. What
    /// it inflates counts against the pass's budget (`Codec::spent_pass`).
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    pub(super) fn emit_compressed<E: Events>(
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
        let kind = self.msg.expect("begin_data opened a message").kind();
        let terms = self.deflate.expect("a compressed message needs deflate");
        let echo = matches!(self.delivery, Delivery::Echo | Delivery::EchoAndStream);
        let as_is = echo && terms.echo_as_is();
        let inflated = echo && !as_is;
        // Nothing of the echo is out and this chunk ends the message: it
        // can go back whole, and so recompressed.
        let mut whole = (inflated && last && !self.started).then(|| tx.pool.take());
        let limit = match self.delivery {
            Delivery::Collect => s.max_collected,
            _ => s.max_message,
        };
        let id = self.id.as_u64();
        let mut inf = tx.codec.take(id).expect("the codec lends an inflater");
        let mut scratch = tx.codec.take_scratch();
        let input: &[u8] = buf;
        let r = inf.inflate(
            &input[a..b],
            last,
            kind == MessageKind::Text,
            limit,
            &mut scratch,
            |piece| {
                tx.codec.spend(piece.len());
                self.take_inflated(piece, input, inflated, &mut whole, tx, s, h, now);
                Ok::<(), std::convert::Infallible>(())
            },
        );
        tx.codec.put_scratch(scratch);
        tx.codec.put(id, inf);
        let failed = match r {
            Ok(()) => None,
            Err(Inflate::Protocol(e)) => Some(e),
            Err(Inflate::Piece(never)) => match never {},
        };
        if failed.is_some() || !self.is_open() {
            if let Some(w) = whole.take() {
                tx.pool.give(w);
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if !self.is_open() {
            // The service closed while taking a piece: nothing more of
            // this message goes out or in.
            self.end_compressed(tx);
            return Ok(());
        }
        if as_is {
            self.echo_frame_with(buf, room, a, b, &[], last, frame::RSV1, tx);
        }
        if !last {
            debug_assert!(whole.is_none(), "gathered only from a last chunk");
            return Ok(());
        }
        if inflated {
            match whole {
                Some(w) => self.echo_whole(w, terms, buf, tx),
                None => self.echo_inflated(&[], true, 0, buf, tx),
            }
        }
        if echo {
            self.release_held(buf, tx);
        }
        self.msg = None;
        self.msg_len = 0;
        self.started = false;
        self.end_compressed(tx);
        let mut cx = self.cx(tx, buf, s, now);
        match self.delivery {
            Delivery::Stream | Delivery::EchoAndStream => h.end(&mut cx),
            Delivery::Collect => {
                let held = self.msgbuf.take();
                let bytes = held.as_deref().map_or(&[][..], |m| &m[..]);
                let msg = match kind {
                    // Inflated text is validated as it comes out.
                    MessageKind::Text => Message::Text(
                        std::str::from_utf8(bytes).map_err(|_| ProtocolError::InvalidUtf8)?,
                    ),
                    MessageKind::Binary => Message::Binary(bytes),
                };
                h.whole(msg, &mut cx);
                if let Some(m) = held {
                    cx.pool.give(m);
                }
            }
            Delivery::Echo | Delivery::Discard => {}
        }
        let close = cx.finish_callback();
        self.closed_by_service(close, s, h, now);
        Ok(())
    }

    /// One inflated step of the open message, handed on as the service
    /// asked; `echo`: it also goes back inflated (into `whole` while that
    /// gathers the message).
    #[allow(clippy::too_many_arguments)]
    fn take_inflated<E: Events>(
        &mut self,
        piece: &[u8],
        input: &[u8],
        echo: bool,
        whole: &mut Option<MsgBuf>,
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) {
        let echoed = matches!(self.delivery, Delivery::Echo | Delivery::EchoAndStream);
        h.payload(piece.len(), echoed);
        if !self.is_open() {
            return;
        }
        if echo {
            self.echo_step(piece, whole, input, tx);
        }
        match self.delivery {
            Delivery::Stream | Delivery::EchoAndStream => {
                let mut cx = self.cx(tx, input, s, now);
                if self.delivery == Delivery::EchoAndStream {
                    // Behind an echo still under way (or not yet begun:
                    // echoed as it came, or gathered to go back whole):
                    // held until its last frame.
                    cx.hold = Some(&mut self.msgbuf);
                }
                h.piece(piece, &mut cx);
                let close = cx.finish_callback();
                self.closed_by_service(close, s, h, now);
            }
            Delivery::Collect => {
                let m = self.msgbuf.get_or_insert_with(|| tx.pool.take());
                m.extend_from_slice(piece);
            }
            Delivery::Echo | Delivery::Discard => {}
        }
    }

    /// One inflated step of an echo that goes back inflated: gathered into
    /// `whole` while it gathers and there is room, otherwise a frame.
    fn echo_step(
        &mut self,
        piece: &[u8],
        whole: &mut Option<MsgBuf>,
        input: &[u8],
        tx: &mut Tx<'_>,
    ) {
        if let Some(w) = whole.as_mut() {
            if gather(w, piece, tx.pool) {
                return;
            }
        }
        if let Some(w) = whole.take() {
            if !w.is_empty() {
                self.echo_inflated(&w, false, 0, input, tx);
            }
            tx.pool.give(w);
        }
        self.echo_inflated(piece, false, 0, input, tx);
    }

    /// Echo a message gathered whole in one frame: compressed, as a
    /// service's whole message would be, when that is worth it and makes
    /// it smaller; otherwise as it is. `w` goes back to the pool.
    fn echo_whole(&mut self, w: MsgBuf, terms: Terms, input: &[u8], tx: &mut Tx<'_>) {
        // Taken out only here, with no callback in between: a service
        // sending while the message inflated used it and put it back.
        let mut packed = std::mem::take(&mut tx.codec.packed);
        if tx.codec.worth(w.len())
            && tx
                .codec
                .compress(&[&w], terms.compress_window(), &mut packed)
        {
            self.echo_inflated(&packed, true, frame::RSV1, input, tx);
        } else {
            self.echo_inflated(&w, true, 0, input, tx);
        }
        tx.codec.packed = packed;
        tx.pool.give(w);
    }

    /// Echo `piece` as a frame of its own (`fin`: the last; `rsv` set in
    /// its header).
    fn echo_inflated(&mut self, piece: &[u8], fin: bool, rsv: u8, input: &[u8], tx: &mut Tx<'_>) {
        let kind = self.msg.expect("an open message").kind();
        let op = match (self.started, kind) {
            (true, _) => opcode::CONTINUATION,
            (false, MessageKind::Text) => opcode::TEXT,
            (false, MessageKind::Binary) => opcode::BINARY,
        };
        let mut head = [0u8; frame::MAX_HEADER];
        let hl = frame::encode(&mut head, fin, op, piece.len() as u64, None);
        head[0] |= rsv;
        let _ = context::queue(tx.out, input, tx.sink, &head[..hl], &[piece]);
        self.started = true;
    }
}

/// Append `piece` to `w` if the whole stays within what `pool` keeps,
/// growing it no further than that, so that it is kept when given back.
fn gather(w: &mut MsgBuf, piece: &[u8], pool: &MsgPool) -> bool {
    let max = pool.max_kept();
    let need = w.len() + piece.len();
    if need > max {
        return false;
    }
    if need > w.capacity() {
        // Doubling as `Vec` would, but capped: a buffer grown past what
        // the pool keeps would be freed and made anew for every message.
        let cap = need.max(w.capacity() * 2).min(max);
        w.reserve_exact(cap - w.len());
    }
    w.extend_from_slice(piece);
    true
}
