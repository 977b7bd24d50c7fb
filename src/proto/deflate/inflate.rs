//! Inflating one compressed message, in bounded steps.
//!
//! Invariants: an [`Inflater`] is attached to a connection from the first
//! frame of a compressed message to its last (lent by the loop's
//! [`Codec`](super::Codec)), or for the connection's life when the client
//! keeps its compression context. Output is produced into the caller's
//! scratch buffer at most one buffer at a time and handed on before more is
//! made, so nothing grows with the inflated size; the size limit is checked
//! on inflated bytes as they come out, so a bomb is cut at the limit.
//! Text pieces handed on are whole code points: up to 3 bytes of a code
//! point cut by the end of the scratch buffer wait in `carry`.

use flate2::{Decompress, FlushDecompress, Status};

use crate::error::ProtocolError;
use crate::utf8;

/// The 4 bytes a sender strips from the end of every compressed message
/// and a receiver appends before inflating it (RFC 7692 §7.2.2).
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The most wire bytes a compressed message of `max` inflated bytes may
/// take: deflate can make data longer (stored blocks add 5 bytes in 64 KiB,
/// fixed codes up to an eighth), and it is the inflated size that is
/// limited.
pub fn packed_limit(max: u64) -> u64 {
    max.saturating_add(max / 8).saturating_add(1024)
}

/// The inflate state of one compressed message (or, with client context
/// takeover, of one connection).
pub struct Inflater {
    z: Decompress,
    /// A compressed message is open.
    active: bool,
    /// The deflate stream ended with a final block inside this message.
    ended: bool,
    /// Inflated bytes of the open message, for the size limit.
    total: u64,
    carry: [u8; 3],
    carry_len: u8,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("active", &self.active)
            .field("total", &self.total)
            .finish()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater::new()
    }
}

impl Inflater {
    /// A raw-deflate inflater with a 32 KiB window, which reads streams of
    /// any window size. (zlib-rs keeps a 32 KiB window whatever it is told,
    /// and resets a smaller one by making it anew: 15 bits is both the
    /// smallest and the cheapest to reuse; docs/benchmarks.md.)
    pub fn new() -> Inflater {
        Inflater {
            z: Decompress::new(false),
            active: false,
            ended: false,
            total: 0,
            carry: [0; 3],
            carry_len: 0,
        }
    }

    /// A compressed message is open on it.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The stream ended with a final block: no input may follow in this
    /// message.
    #[inline]
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// A compressed message begins.
    pub fn begin(&mut self) {
        self.active = true;
        self.total = 0;
        self.carry_len = 0;
    }

    /// The message is over (or failed): forget it. `keep_context`: the
    /// client keeps its compression context, so the window is kept too
    /// (unless the stream ended with a final block, after which there is
    /// no context to keep).
    pub fn end(&mut self, keep_context: bool) {
        self.active = false;
        self.total = 0;
        self.carry_len = 0;
        if !keep_context || self.ended {
            self.z.reset(false);
            self.ended = false;
        }
    }

    /// Inflate all of `input`, then, if `last`, the tail the sender
    /// stripped. Each piece of output (at most `scratch.len() - 3` bytes;
    /// for `text` only whole, validated code points) goes to `piece` as it
    /// is made. Fails on a broken stream, on invalid text, or once the
    /// message's inflated size passes `limit`; `piece` errors stop it too.
    pub fn inflate<E>(
        &mut self,
        input: &[u8],
        last: bool,
        text: bool,
        limit: u64,
        scratch: &mut [u8],
        mut piece: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Inflate<E>> {
        self.run(input, text, limit, scratch, &mut piece)?;
        if last {
            if !self.ended {
                self.run(&TAIL, text, limit, scratch, &mut piece)?;
            }
            if self.cut_code_point() {
                return Err(Inflate::Protocol(ProtocolError::InvalidUtf8));
            }
        }
        Ok(())
    }

    fn run<E>(
        &mut self,
        mut input: &[u8],
        text: bool,
        limit: u64,
        scratch: &mut [u8],
        piece: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), Inflate<E>> {
        loop {
            let at_end = self.ended;
            let s = self
                .step(input, text, limit, scratch)
                .map_err(Inflate::Protocol)?;
            input = &input[s.used..];
            if s.ready > 0 {
                piece(&scratch[..s.ready]).map_err(Inflate::Piece)?;
            }
            if at_end || input.is_empty() && !s.full {
                return Ok(());
            }
            if !s.full && s.used == 0 && !self.ended {
                // Input left that it will not take: never so for a valid
                // stream.
                return Err(Inflate::Protocol(ProtocolError::BadDeflate));
            }
        }
    }

    /// One step: inflate from `input` into `out` (more than 3 bytes), as
    /// far as either goes. `out[..ready]` is then whole output (for `text`,
    /// whole validated code points); a code point cut by the end of `out`
    /// waits for the next step. Fails on a broken stream, invalid text, or
    /// once the message's inflated size passes `limit`. After the stream's
    /// final block, any further input is an error.
    pub fn step(
        &mut self,
        input: &[u8],
        text: bool,
        limit: u64,
        out: &mut [u8],
    ) -> Result<Step, ProtocolError> {
        debug_assert!(out.len() > 3);
        if self.ended {
            // Bytes after the final block belong to no stream.
            return match input.is_empty() {
                true => Ok(Step::default()),
                false => Err(ProtocolError::BadDeflate),
            };
        }
        let cl = self.carry_len as usize;
        out[..cl].copy_from_slice(&self.carry[..cl]);
        let room = out.len() - cl;
        let (in0, out0) = (self.z.total_in(), self.z.total_out());
        let result = self
            .z
            .decompress(input, &mut out[cl..], FlushDecompress::None);
        let used = (self.z.total_in() - in0) as usize;
        let made = (self.z.total_out() - out0) as usize;
        // What came out before a broken block counts first: past the limit,
        // the message is too big however its bytes were split.
        if self.total + made as u64 > limit {
            return Err(ProtocolError::MessageTooBig);
        }
        let status = result.map_err(|_| ProtocolError::BadDeflate)?;
        let mut ready = 0;
        if made > 0 {
            self.total += made as u64;
            let n = cl + made;
            ready = if text {
                utf8::complete_prefix(&out[..n]).map_err(|_| ProtocolError::InvalidUtf8)?
            } else {
                n
            };
            self.carry_len = (n - ready) as u8;
            self.carry[..n - ready].copy_from_slice(&out[ready..n]);
        }
        if status == Status::StreamEnd {
            self.ended = true;
        }
        Ok(Step {
            used,
            ready,
            // A full output may have more behind it.
            full: made == room,
        })
    }

    /// Whether a code point is left cut at the end of what was inflated:
    /// at the message's end, invalid text.
    pub fn cut_code_point(&self) -> bool {
        self.carry_len != 0
    }
}

/// What one [`Inflater::step`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes taken.
    pub used: usize,
    /// Output bytes ready at the front of `out`.
    pub ready: usize,
    /// The output was filled: more may come without more input.
    pub full: bool,
}

/// Why [`Inflater::inflate`] stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Inflate<E> {
    /// The message breaks a rule.
    Protocol(ProtocolError),
    /// The piece callback failed.
    Piece(E),
}

#[cfg(test)]
mod tests;
