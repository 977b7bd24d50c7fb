//! One client connection after the upgrade: the rules of RFC 6455 for the
//! client role, on bytes and time passed in.
//!
//! * Input: [`ClientConn::handle_input`] reads the server's frames (through
//!   the [`Reader`]), answers pings and the close, and reports each event.
//!   A frame that breaks a rule fails the connection: the close with the
//!   error's code is queued and the error returned.
//! * Output: every frame a client sends is masked with a fresh key (§5.3).
//!   Frames the core writes itself (pongs, closes) wait in `out` until the
//!   shell takes them; data frames are framed by [`frame_header`] and masked
//!   by the shell as it copies them out.
//! * Closing (§7.1.1): the client never ends TCP first. After both closes,
//!   or a failure, it waits for the server to end TCP until a deadline;
//!   only then does the shell close the socket.
//!
//! Stages: `Open`; `CloseSent` (our close is out, the server's awaited,
//! its data still delivered); `Closing` (both closes exchanged, or the
//! connection failed: input is discarded, TCP's end awaited until the
//! deadline); `Done` (the shell closes the socket).
//!
//! [`frame_header`]: ClientConn::frame_header

use crate::conn::{millis, Millis};
use crate::deflate::ClientTerms;
use crate::error::{close_code, ProtocolError};
use crate::frame::{self, opcode};
use crate::mask;
use crate::service::MessageKind;

use super::deflate::{self, Unpack};
use super::error::ClientError;
use super::keys::Keys;
use super::reader::{Event, Reader};

/// Where a client connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Open both ways.
    Open,
    /// Our close is out; the server's is awaited.
    CloseSent,
    /// Closes exchanged (or the connection failed); waiting for the server
    /// to end TCP.
    Closing,
    /// Over: the socket may be closed.
    Done,
}

/// Which frame of a message is being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A whole message in one frame.
    Whole(MessageKind),
    /// The first frame of a message sent in several.
    First(MessageKind),
    /// A frame in the middle of it.
    More,
    /// Its last frame.
    Last,
}

/// A data frame's header, ready to send, and the key its payload is
/// masked with.
#[derive(Debug, Clone, Copy)]
pub struct FrameHeader {
    bytes: [u8; frame::MAX_HEADER],
    len: u8,
    /// The masking key.
    pub key: [u8; 4],
}

impl FrameHeader {
    /// The header's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

/// What the server said when it closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// Its close code, if it gave one.
    pub code: Option<u16>,
    /// Its reason.
    pub reason: String,
}

/// One client connection's protocol state.
#[derive(Debug)]
pub struct ClientConn {
    reader: Reader,
    stage: Stage,
    /// A message sent in several frames is open.
    sending: bool,
    /// Masked control frames written by the core, not yet taken.
    out: Vec<u8>,
    /// When the close wait ends (CloseSent, Closing); 0: none.
    deadline: Millis,
    close_timeout: Millis,
    /// The server's close, once received.
    closed_by: Option<CloseFrame>,
    /// The error the connection failed with, if any.
    failed: Option<ProtocolError>,
    /// permessage-deflate, if agreed, and the shortest message compressed.
    deflate: Option<(ClientTerms, usize)>,
    /// The compressed message being inflated (see `deflate.rs`).
    unpack: Option<Box<Unpack>>,
    max_message: u64,
}

impl ClientConn {
    /// A connection just upgraded.
    pub fn new(max_message: u64, close_timeout: std::time::Duration) -> ClientConn {
        ClientConn {
            reader: Reader::new(max_message),
            stage: Stage::Open,
            sending: false,
            out: Vec::new(),
            deadline: 0,
            close_timeout: millis(close_timeout),
            closed_by: None,
            failed: None,
            deflate: None,
            unpack: None,
            max_message,
        }
    }

    /// permessage-deflate was agreed on these terms: the server may send
    /// compressed messages, and whole messages of `threshold` bytes or
    /// more go compressed.
    pub fn with_deflate(mut self, terms: ClientTerms, threshold: usize) -> ClientConn {
        self.reader.allow_compressed();
        self.deflate = Some((terms, threshold));
        self
    }

    /// The permessage-deflate terms agreed, if any.
    pub fn deflate(&self) -> Option<ClientTerms> {
        self.deflate.map(|(t, _)| t)
    }

    /// The inflated bytes of the last [`Event::Inflated`], valid until the
    /// next call to [`handle_input`](Self::handle_input).
    pub fn inflated(&self) -> &[u8] {
        self.unpack.as_ref().map_or(&[], |u| u.inflated())
    }

    /// Inflated output is waiting: [`handle_input`](Self::handle_input)
    /// has an event to give even with no new input.
    pub fn has_inflated(&self) -> bool {
        self.unpack.as_ref().is_some_and(|u| u.has_more())
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// The server's close, once it has arrived.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.closed_by.as_ref()
    }

    /// The rule the server broke, if the connection failed.
    pub fn failure(&self) -> Option<ProtocolError> {
        self.failed
    }

    /// When [`on_timeout`](Self::on_timeout) is due, if ever.
    pub fn deadline(&self) -> Option<Millis> {
        (self.deadline != 0).then_some(self.deadline)
    }

    /// Read `buf` (what was not consumed before, then what arrived since):
    /// how many bytes are consumed, and the next event. Pings are answered
    /// and the server's close is answered before they are reported. Once
    /// the connection is closing, input is consumed and dropped.
    pub fn handle_input(
        &mut self,
        buf: &mut [u8],
        whole: usize,
        keys: &mut Keys,
        now: Millis,
    ) -> Result<(usize, Option<Event>), ProtocolError> {
        if matches!(self.stage, Stage::Closing | Stage::Done) {
            return Ok((buf.len(), None));
        }
        let (n, ev) = match self.read(buf, whole) {
            Ok(x) => x,
            Err(e) => {
                self.fail(e, keys, now);
                return Err(e);
            }
        };
        match &ev {
            Some(Event::Ping(at)) if self.stage == Stage::Open => {
                self.control(opcode::PONG, &[&buf[at.clone()]], keys);
            }
            Some(Event::Close { code, reason }) => {
                let reason_bytes = &buf[reason.clone()];
                if self.stage == Stage::Open {
                    // Answer with the same code (none if none was given).
                    let c = code.map(u16::to_be_bytes);
                    self.control(opcode::CLOSE, &[c.as_ref().map_or(&[], |c| &c[..])], keys);
                }
                self.closed_by = Some(CloseFrame {
                    code: *code,
                    reason: String::from_utf8_lossy(reason_bytes).into_owned(),
                });
                self.stage = Stage::Closing;
                self.deadline = now + self.close_timeout;
            }
            _ => {}
        }
        Ok((n, ev))
    }

    /// The next event from the reader, with compressed messages inflated:
    /// a step still to make goes first; a compressed piece that makes no
    /// output yet is taken, and reading goes on.
    fn read(
        &mut self,
        buf: &mut [u8],
        whole: usize,
    ) -> Result<(usize, Option<Event>), ProtocolError> {
        if let Some(u) = &self.unpack {
            if u.has_more() {
                return Ok((0, self.unpack_step()?));
            }
            let server_takeover = self.deflate.is_some_and(|(t, _)| t.server_takeover);
            if !u.is_open() && !server_takeover {
                deflate::give_back(self.unpack.take().expect("checked"));
            }
        }
        let mut pos = 0;
        loop {
            let (n, ev) = self.reader.read(&mut buf[pos..], whole)?;
            let Some(Event::Packed { kind, at, last }) = ev else {
                return Ok((pos + n, ev.map(|e| e.shifted(pos))));
            };
            let u = self.unpack.get_or_insert_with(deflate::lend);
            if !u.is_open() {
                u.begin(kind);
            }
            u.push(&buf[pos + at.start..pos + at.end], last);
            pos += n;
            if let Some(ev) = self.unpack_step()? {
                return Ok((pos, Some(ev)));
            }
        }
    }

    fn unpack_step(&mut self) -> Result<Option<Event>, ProtocolError> {
        let server_takeover = self.deflate.is_some_and(|(t, _)| t.server_takeover);
        let u = self.unpack.as_mut().expect("a compressed message is open");
        let kind = u.kind();
        Ok(u.step(self.max_message, server_takeover)?
            .map(|(first, last)| Event::Inflated { kind, first, last }))
    }

    /// Fail the connection (§7.1.7): send the error's close code, then wait
    /// for TCP's end; nothing more is read.
    fn fail(&mut self, e: ProtocolError, keys: &mut Keys, now: Millis) {
        self.failed = Some(e);
        if self.stage == Stage::Open {
            self.control(opcode::CLOSE, &[&e.close_code().to_be_bytes()], keys);
        }
        self.stage = Stage::Closing;
        self.deadline = now + self.close_timeout;
    }

    /// The server ended TCP.
    pub fn on_eof(&mut self) {
        self.stage = Stage::Done;
        self.deadline = 0;
    }

    /// Time passed: a close wait past its deadline is over.
    pub fn on_timeout(&mut self, now: Millis) {
        if self.deadline != 0 && now >= self.deadline {
            self.stage = Stage::Done;
            self.deadline = 0;
        }
    }

    /// Give up on the connection at once (a write failed: what the server
    /// got of the frame is unknown).
    pub fn abort(&mut self) {
        self.stage = Stage::Done;
        self.deadline = 0;
    }

    /// Start our close: `code` (one a client may send) and `reason` (at
    /// most 123 bytes).
    pub fn close(
        &mut self,
        code: u16,
        reason: &str,
        keys: &mut Keys,
        now: Millis,
    ) -> Result<(), ClientError> {
        if !close_code::is_sendable(code) {
            return Err(ClientError::Invalid("a close code that may not be sent"));
        }
        if reason.len() > frame::MAX_CONTROL_PAYLOAD - 2 {
            return Err(ClientError::Invalid("a close reason over 123 bytes"));
        }
        if self.stage != Stage::Open {
            return Err(ClientError::Closed);
        }
        self.control(
            opcode::CLOSE,
            &[&code.to_be_bytes(), reason.as_bytes()],
            keys,
        );
        self.stage = Stage::CloseSent;
        self.deadline = now + self.close_timeout;
        Ok(())
    }

    /// Queue a ping (at most 125 bytes of payload).
    pub fn ping(&mut self, payload: &[u8], keys: &mut Keys) -> Result<(), ClientError> {
        self.user_control(opcode::PING, payload, keys)
    }

    /// Queue an unsolicited pong (a heartbeat the server need not answer).
    pub fn pong(&mut self, payload: &[u8], keys: &mut Keys) -> Result<(), ClientError> {
        self.user_control(opcode::PONG, payload, keys)
    }

    fn user_control(&mut self, op: u8, payload: &[u8], keys: &mut Keys) -> Result<(), ClientError> {
        if payload.len() > frame::MAX_CONTROL_PAYLOAD {
            return Err(ClientError::Invalid("a control payload over 125 bytes"));
        }
        if self.stage != Stage::Open {
            return Err(ClientError::Closed);
        }
        self.control(op, &[payload], keys);
        Ok(())
    }

    fn control(&mut self, op: u8, parts: &[&[u8]], keys: &mut Keys) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        debug_assert!(len <= frame::MAX_CONTROL_PAYLOAD);
        let hdr = header(true, op, len as u64, keys.mask());
        write_masked(&mut self.out, &hdr, parts);
    }

    /// Frames the core wrote (pongs, closes), masked, to send before
    /// anything else the shell writes next.
    pub fn pending(&self) -> &[u8] {
        &self.out
    }

    /// `n` bytes of [`pending`](Self::pending) were sent.
    pub fn sent(&mut self, n: usize) {
        self.out.drain(..n);
    }

    /// A whole message of `len` bytes goes compressed: permessage-deflate
    /// is agreed and the message is long enough to be worth it.
    pub fn compresses(&self, len: usize) -> bool {
        self.deflate.is_some_and(|(_, threshold)| len >= threshold)
    }

    /// Send a whole message compressed: `fill` writes its `len` bytes, and
    /// `emit` gets the frame's header and payload, unmasked (the caller
    /// masks the payload with `hdr.key` as it copies it out): compressed,
    /// with RSV1, or as it is when compressing would not shrink it (unless
    /// the threshold is 0: then every message goes compressed, as browsers
    /// send them).
    pub fn send_compressed(
        &mut self,
        kind: MessageKind,
        len: usize,
        keys: &mut Keys,
        fill: impl FnOnce(&mut [u8]),
        emit: impl FnOnce(&FrameHeader, &[u8]),
    ) -> Result<(), ClientError> {
        let Some((terms, threshold)) = self.deflate else {
            return Err(ClientError::Invalid("permessage-deflate is not agreed"));
        };
        // The frame's checks, before anything is compressed.
        self.frame_header(Part::Whole(kind), 0, keys)?;
        deflate::compress(terms, threshold == 0, len, fill, |payload, packed| {
            let mut hdr = header(true, kind_opcode(kind), payload.len() as u64, keys.mask());
            if packed {
                hdr.bytes[0] |= frame::RSV1;
            }
            emit(&hdr, payload)
        });
        Ok(())
    }

    /// The header of the next data frame, with `len` payload bytes: checks
    /// that the connection is open (§5.5.1: no data after our close) and
    /// that frames follow in order (§5.4).
    pub fn frame_header(
        &mut self,
        part: Part,
        len: u64,
        keys: &mut Keys,
    ) -> Result<FrameHeader, ClientError> {
        if self.stage != Stage::Open {
            return Err(ClientError::Closed);
        }
        let (fin, op) = match (part, self.sending) {
            (Part::Whole(k), false) => (true, kind_opcode(k)),
            (Part::First(k), false) => (false, kind_opcode(k)),
            (Part::More, true) => (false, opcode::CONTINUATION),
            (Part::Last, true) => (true, opcode::CONTINUATION),
            (Part::Whole(_) | Part::First(_), true) => {
                return Err(ClientError::Invalid(
                    "a message while a streamed one is open",
                ))
            }
            (Part::More | Part::Last, false) => {
                return Err(ClientError::Invalid("a continuation with no message open"))
            }
        };
        self.sending = !fin;
        Ok(header(fin, op, len, keys.mask()))
    }
}

fn kind_opcode(k: MessageKind) -> u8 {
    match k {
        MessageKind::Text => opcode::TEXT,
        MessageKind::Binary => opcode::BINARY,
    }
}

fn header(fin: bool, op: u8, len: u64, key: [u8; 4]) -> FrameHeader {
    let mut bytes = [0u8; frame::MAX_HEADER];
    let n = frame::encode(&mut bytes, fin, op, len, Some(key));
    FrameHeader {
        bytes,
        len: n as u8,
        key,
    }
}

/// Append the frame `hdr` with the payload `parts` to `out`, masked: the
/// one copy a client's payload takes.
pub fn write_masked(out: &mut Vec<u8>, hdr: &FrameHeader, parts: &[&[u8]]) {
    out.extend_from_slice(hdr.bytes());
    let start = out.len();
    for p in parts {
        out.extend_from_slice(p);
    }
    mask::apply(&mut out[start..], hdr.key, 0);
}

#[cfg(test)]
mod tests;
