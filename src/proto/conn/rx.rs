//! The receive half of a connection: data frames in, each message handed
//! to the service the way it chose (echoed, streamed, collected or
//! discarded).
//!
//! Invariants: a data frame is consumed in chunks of at most `chunk_size`
//! bytes cut at fixed offsets from its start, so what is delivered and
//! echoed depends only on the frames received, never on how the bytes were
//! split; each chunk is unmasked and validated as its bytes arrive (`got`,
//! `checked`), and handed over only when complete; up to 3 bytes of a code
//! point cut by a chunk boundary wait in `carry`; `msgbuf` holds a
//! collected message's bytes, or sends held behind a half-sent echo, and
//! only while it does.

use super::*;

impl Conn {
    /// Sequencing and size rules for a new data frame (§5.4); asks the
    /// service how a new message is delivered.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn begin_data<E: Events>(
        &mut self,
        op: u8,
        len: u64,
        compressed: bool,
        buf: &[u8],
        tx: &mut Tx<'_>,
        s: &Settings,
        h: &mut E,
        now: Millis,
    ) -> Result<(), ProtocolError> {
        let kind = frame::sequence(op, self.msg.map(Open::kind))?;
        // Both terms are below 2^63 (decode rejects the top bit; msg_len is
        // bounded by max_message), so the sum cannot overflow.
        let total = self.msg_len + len;
        if total > s.max_message {
            self.packed_within(compressed, total, s)?;
        }
        self.msg_len = total;
        if let Some(kind) = kind {
            self.msg = Some(Open::new(kind, compressed));
            self.started = false;
            if compressed {
                self.begin_compressed(tx);
            }
            let mut cx = self.cx(tx, buf, s, now);
            self.delivery = h.message(kind, &mut cx);
            let close = cx.finish_callback();
            self.closed_by_service(close, s, h, now);
        }
        if self.delivery == Delivery::Collect && total > s.max_collected && !self.compressed() {
            return Err(ProtocolError::MessageTooBig);
        }
        Ok(())
    }

    /// A message past `max_message` on the wire may still be a compressed
    /// one within it (its inflated size is what is limited): `compressed`
    /// for a new message's first frame.
    #[cold]
    fn packed_within(
        &self,
        compressed: bool,
        total: u64,
        s: &Settings,
    ) -> Result<(), ProtocolError> {
        let packed = compressed || (self.msg.is_some() && self.compressed());
        if packed && total <= crate::deflate::packed_limit(s.max_message) {
            Ok(())
        } else {
            Err(ProtocolError::MessageTooBig)
        }
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
    pub(super) fn data_step<E: Events>(
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
        if !self.is_open() {
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
            // A compressed message's text is checked once inflated.
            if self.msg == Some(Open::Text) {
                self.check_text(&buf[pos..pos + avail])?;
            }
        }
        if avail < chunk {
            return Ok(Step::Wait(pos));
        }
        let last = matches!(self.reading, Reading::Payload { fin: true })
            && self.remaining == chunk as u64;
        if self.compressed() {
            if tx.codec.spent_pass() {
                // This pass has inflated its share: the chunk (unmasked,
                // counted in `got`) waits for the next pass.
                return Ok(Step::Wait(pos));
            }
            self.emit_compressed(buf, room, pos, pos + chunk, last, tx, s, h, now)?;
        } else {
            self.emit_chunk(buf, room, pos, pos + chunk, last, tx, s, h, now)?;
        }
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

    /// Hand the complete chunk `buf[a..b]` of an uncompressed message
    /// (unmasked and, for text, validated up to `checked`) to the service
    /// as it asked, queueing its
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
        let kind = self.msg.expect("begin_data opened a message").kind();
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
            if matches!(self.delivery, Delivery::EchoAndStream | Delivery::Stream) && self.is_open()
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
    pub(super) fn echo_frame(
        &mut self,
        buf: &mut [u8],
        room: usize,
        a: usize,
        v: usize,
        carry: &[u8],
        last: bool,
        tx: &mut Tx<'_>,
    ) {
        self.echo_frame_with(buf, room, a, v, carry, last, 0, tx)
    }

    /// [`echo_frame`](Self::echo_frame), with `rsv` set in the first
    /// frame's header (a compressed message echoed as it came).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(super) fn echo_frame_with(
        &mut self,
        buf: &mut [u8],
        room: usize,
        a: usize,
        v: usize,
        carry: &[u8],
        last: bool,
        rsv: u8,
        tx: &mut Tx<'_>,
    ) {
        let kind = self.msg.expect("an open message").kind();
        let len = carry.len() + (v - a);
        let op = if self.started {
            opcode::CONTINUATION
        } else if kind == MessageKind::Text {
            opcode::TEXT
        } else {
            opcode::BINARY
        };
        let rsv = if self.started { 0 } else { rsv };
        let hl = frame::header_len(len as u64, false);
        if a - room >= hl + carry.len() {
            buf[a - carry.len()..a].copy_from_slice(carry);
            let hs = frame::encode_before(buf, a - carry.len(), last, op, len as u64);
            buf[hs] |= rsv;
            tx.out.push_input(hs, v);
        } else {
            // No room in front (a later chunk of a long frame, or a
            // carried code point in front of a payload whose length
            // needs a longer header): the header and the carried bytes
            // go out from scratch, the payload still from the buffer.
            let mut tmp = [0u8; frame::MAX_HEADER + 3];
            let n = frame::encode(&mut tmp, last, op, len as u64, None);
            tmp[0] |= rsv;
            tmp[n..n + carry.len()].copy_from_slice(carry);
            tx.out.push_bytes(&tmp[..n + carry.len()]);
            tx.out.push_input(a, v);
        }
        self.started = true;
    }

    /// The echo's last frame is queued: what the service sent while it was
    /// half out follows it now.
    #[inline]
    pub(super) fn release_held(&mut self, buf: &[u8], tx: &mut Tx<'_>) {
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
        if !self.is_open() {
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
        if !self.is_open() {
            return;
        }
        let kind = self.msg.expect("an open message").kind();
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
}

/// How far [`Conn::data_step`] got.
pub(super) enum Step {
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
