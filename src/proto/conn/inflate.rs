//! The receive half for compressed messages (permessage-deflate).
//!
//! Each complete chunk of a compressed message is inflated in steps of at
//! most the loop's scratch size, and every step is validated, counted
//! against the limit as inflated bytes, and handed on as the service asked
//! before the next is made. The echo goes back as the client's own
//! compressed bytes when [`Agreed::echo_as_is`] holds (no recompression);
//! otherwise the inflated steps go back as uncompressed frames.
//!
//! Invariants: while the open message is compressed (`Open::PackedText`,
//! `Open::PackedBinary`) the loop's codec lends this connection an
//! inflater under its id (a client that keeps its context
//! keeps its own there between messages too); a chunk is echoed only once all of
//! it has inflated cleanly; what a service sends from `piece` while such an
//! echo is under way is held until the echo's last frame is out.

use super::*;
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
                self.take_inflated(piece, input, echo && !as_is, tx, s, h, now);
                Ok::<(), std::convert::Infallible>(())
            },
        );
        tx.codec.put_scratch(scratch);
        tx.codec.put(id, inf);
        match r {
            Ok(()) => {}
            Err(Inflate::Protocol(e)) => return Err(e),
            Err(Inflate::Piece(never)) => match never {},
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
            return Ok(());
        }
        if echo && !as_is {
            self.echo_inflated(&[], true, buf, tx);
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
    /// asked; `echo`: it also goes back, uncompressed.
    #[allow(clippy::too_many_arguments)]
    fn take_inflated<E: Events>(
        &mut self,
        piece: &[u8],
        input: &[u8],
        echo: bool,
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
            self.echo_inflated(piece, false, input, tx);
        }
        match self.delivery {
            Delivery::Stream | Delivery::EchoAndStream => {
                let mut cx = self.cx(tx, input, s, now);
                if self.delivery == Delivery::EchoAndStream {
                    // Behind an echo still under way (or, echoed as it
                    // came, not yet begun): held until its last frame.
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

    /// Echo inflated bytes as a frame of their own (`fin`: the last).
    fn echo_inflated(&mut self, piece: &[u8], fin: bool, input: &[u8], tx: &mut Tx<'_>) {
        let kind = self.msg.expect("an open message").kind();
        let op = match (self.started, kind) {
            (true, _) => opcode::CONTINUATION,
            (false, MessageKind::Text) => opcode::TEXT,
            (false, MessageKind::Binary) => opcode::BINARY,
        };
        let mut head = [0u8; frame::MAX_HEADER];
        let hl = frame::encode(&mut head, fin, op, piece.len() as u64, None);
        let _ = context::queue(tx.out, input, tx.sink, &head[..hl], &[piece]);
        self.started = true;
    }
}
