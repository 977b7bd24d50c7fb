//! The receive half of a client: frames from a server in, events out, as
//! ranges of the caller's buffer (server frames are not masked, so nothing
//! is copied or changed but for the rare move described below).
//!
//! Invariants:
//! * `read` never consumes part of a frame header, a control frame, or a
//!   code point: what it leaves unconsumed the caller keeps at the front of
//!   the next call's buffer.
//! * The up to 3 bytes of a code point cut by the end of the input are left
//!   unconsumed (`carry`): at the next call they are `buf[..carry]`. When a
//!   frame header follows them (a code point split across frames), header
//!   and carried bytes swap places, so the carried bytes lead the next
//!   frame's payload and every text piece handed out is whole UTF-8. A
//!   control frame between them is swapped the same way.
//! * A data frame that opens and ends a message and fits in `whole` bytes
//!   is handed out only once all of it is in the buffer: one range, no
//!   copy. Any other frame is handed out as its bytes arrive.
//! * A compressed message (RSV1 on its first frame, accepted only once
//!   permessage-deflate is agreed) is handed out as [`Event::Packed`]
//!   pieces, as they come (never held whole), for the connection to
//!   inflate: its text is
//!   validated once inflated, and its size is limited on the wire only
//!   loosely ([`packed_limit`]), since its inflated size is what counts.

use std::ops::Range;

use crate::deflate::packed_limit;
use crate::error::ProtocolError;
use crate::frame::{self, opcode, Role};
use crate::service::MessageKind;
use crate::utf8;

/// What the server sent, as ranges of the buffer given to [`Reader::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The next piece of a data message. `first` opens the message and
    /// `last` ends it; a text piece is whole UTF-8.
    Data {
        /// Text or binary.
        kind: MessageKind,
        /// Where the piece is.
        at: Range<usize>,
        /// This is the message's first piece.
        first: bool,
        /// This is the message's last piece.
        last: bool,
    },
    /// The next piece of a compressed message, as it came (the reader's
    /// own event: the connection inflates it and never reports it).
    Packed {
        /// Text or binary.
        kind: MessageKind,
        /// Where the piece is.
        at: Range<usize>,
        /// This is the message's last piece.
        last: bool,
    },
    /// Inflated bytes of a compressed message, handed out by the
    /// connection from its own buffer ([`ClientConn::inflated`]).
    ///
    /// [`ClientConn::inflated`]: super::conn::ClientConn::inflated
    Inflated {
        /// Text or binary.
        kind: MessageKind,
        /// This is the message's first piece.
        first: bool,
        /// This is the message's last piece.
        last: bool,
    },
    /// A ping and its payload.
    Ping(Range<usize>),
    /// A pong and its payload.
    Pong(Range<usize>),
    /// A close frame: its code, if any, and its reason (valid UTF-8).
    Close {
        /// The close code (validated: one a peer may send).
        code: Option<u16>,
        /// The reason.
        reason: Range<usize>,
    },
}

impl Event {
    /// The same event with its ranges moved `by` bytes on.
    pub fn shifted(self, by: usize) -> Event {
        let m = |r: Range<usize>| r.start + by..r.end + by;
        match self {
            Event::Data {
                kind,
                at,
                first,
                last,
            } => Event::Data {
                kind,
                at: m(at),
                first,
                last,
            },
            Event::Packed { kind, at, last } => Event::Packed {
                kind,
                at: m(at),
                last,
            },
            Event::Ping(at) => Event::Ping(m(at)),
            Event::Pong(at) => Event::Pong(m(at)),
            Event::Close { code, reason } => Event::Close {
                code,
                reason: m(reason),
            },
            ev @ Event::Inflated { .. } => ev,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// At a frame header (after any carried bytes).
    Header,
    /// Inside a data frame's payload; `fin`: it ends its message; `whole`:
    /// hand it out only once all of it is buffered.
    Payload { fin: bool, whole: bool },
}

/// The frame reader of one client connection.
#[derive(Debug)]
pub struct Reader {
    /// RSV bits the server may set: RSV1 once permessage-deflate is agreed.
    rsv: u8,
    /// The open message is compressed.
    packed: bool,
    reading: Reading,
    /// Payload bytes of the current data frame not yet handed out.
    remaining: u64,
    /// Bytes of the open message so far, for the size limit.
    msg_len: u64,
    max_message: u64,
    /// The open message, if any.
    msg: Option<MessageKind>,
    /// No piece of the open message has been handed out yet.
    first: bool,
    /// Bytes of a cut code point at the front of the next input.
    carry: u8,
    /// Of a text frame held whole, the payload bytes already validated:
    /// held or not, invalid text fails as soon as it arrives.
    checked: u32,
}

impl Reader {
    /// A reader that fails messages longer than `max_message` with 1009.
    pub fn new(max_message: u64) -> Reader {
        Reader {
            rsv: 0,
            packed: false,
            reading: Reading::Header,
            remaining: 0,
            msg_len: 0,
            max_message,
            msg: None,
            first: true,
            carry: 0,
            checked: 0,
        }
    }

    /// permessage-deflate was agreed: the server may compress messages.
    pub fn allow_compressed(&mut self) {
        self.rsv = frame::RSV1;
    }

    /// Read the next event from `buf` (everything not consumed before,
    /// then what arrived since). Returns how many bytes are consumed and
    /// the event, if one is complete; ranges index `buf`. `whole`: the
    /// size of the caller's buffer, up to which a one-frame message is
    /// handed out whole.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        whole: usize,
    ) -> Result<(usize, Option<Event>), ProtocolError> {
        let mut pos = 0;
        loop {
            let c = self.carry as usize;
            match self.reading {
                Reading::Header => {
                    let Some(h) = frame::decode_with(&buf[pos + c..], Role::FromServer, self.rsv)?
                    else {
                        return Ok((pos, None));
                    };
                    let hl = h.header_len;
                    if opcode::is_control(h.opcode) {
                        let end = pos + c + hl + h.len as usize;
                        if end > buf.len() {
                            return Ok((pos, None));
                        }
                        if c > 0 {
                            buf[pos..end].rotate_left(c);
                        }
                        let (p, e) = (pos + hl, end - c);
                        let ev = match h.opcode {
                            opcode::PING => Event::Ping(p..e),
                            opcode::PONG => Event::Pong(p..e),
                            _ => {
                                let code = frame::close_payload(&buf[p..e])?;
                                let skip = if code.is_some() { 2 } else { 0 };
                                Event::Close {
                                    code,
                                    reason: p + skip..e,
                                }
                            }
                        };
                        return Ok((e, Some(ev)));
                    }
                    let opens = frame::sequence(h.opcode, self.msg)?;
                    // Both below 2^63 (decode refuses the top bit; msg_len
                    // is bounded by max_message): no overflow.
                    let total = self.msg_len + h.len;
                    if opens.is_some() {
                        self.packed = h.compressed;
                    }
                    let limit = match self.packed {
                        true => packed_limit(self.max_message),
                        false => self.max_message,
                    };
                    if total > limit {
                        return Err(ProtocolError::MessageTooBig);
                    }
                    self.msg_len = total;
                    if let Some(kind) = opens {
                        self.msg = Some(kind);
                        self.first = true;
                    }
                    if c > 0 {
                        // Header first, then the carried bytes, which now
                        // lead this frame's payload.
                        buf[pos..pos + c + hl].rotate_left(c);
                    }
                    pos += hl;
                    self.remaining = h.len;
                    self.reading = Reading::Payload {
                        fin: h.fin,
                        // A compressed frame is copied to be inflated anyway,
                        // and inflating what has come fails a bomb fast.
                        whole: h.fin
                            && opens.is_some()
                            && !self.packed
                            && hl as u64 + h.len <= whole as u64,
                    };
                }
                Reading::Payload { fin, whole } => {
                    let have = (buf.len() - pos - c) as u64;
                    let avail = have.min(self.remaining) as usize;
                    let kind = self.msg.expect("a data frame opened a message");
                    // Compressed text is checked once inflated.
                    let text = kind == MessageKind::Text && !self.packed;
                    // A held frame has no carried bytes: it opens its message.
                    let from = pos + self.checked as usize;
                    if whole && (avail as u64) < self.remaining {
                        if text {
                            let ok = utf8::complete_prefix(&buf[from..pos + avail])
                                .map_err(|_| ProtocolError::InvalidUtf8)?;
                            self.checked = (from + ok - pos) as u32;
                        }
                        return Ok((pos, None));
                    }
                    let frame_ends = avail as u64 == self.remaining;
                    let last = fin && frame_ends;
                    let end = pos + c + avail;
                    self.checked = 0;
                    let n = if text {
                        let n = from - pos
                            + utf8::complete_prefix(&buf[from..end])
                                .map_err(|_| ProtocolError::InvalidUtf8)?;
                        if last && pos + n != end {
                            return Err(ProtocolError::InvalidUtf8);
                        }
                        n
                    } else {
                        end - pos
                    };
                    self.remaining -= avail as u64;
                    self.carry = (end - pos - n) as u8;
                    if frame_ends {
                        self.reading = Reading::Header;
                    }
                    if self.packed {
                        if last {
                            self.msg = None;
                            self.msg_len = 0;
                        }
                        if n == 0 && !last && !frame_ends {
                            return Ok((pos, None));
                        }
                        if n == 0 && !last {
                            continue;
                        }
                        let at = pos..pos + n;
                        return Ok((pos + n, Some(Event::Packed { kind, at, last })));
                    }
                    if n == 0 && !last {
                        if !frame_ends {
                            // Nothing whole yet: wait for more bytes.
                            return Ok((pos, None));
                        }
                        // An empty frame, or one that only cut a code
                        // point: on to the next header.
                        continue;
                    }
                    let first = self.first;
                    self.first = false;
                    if last {
                        self.msg = None;
                        self.msg_len = 0;
                    }
                    return Ok((
                        pos + n,
                        Some(Event::Data {
                            kind,
                            at: pos..pos + n,
                            first,
                            last,
                        }),
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
