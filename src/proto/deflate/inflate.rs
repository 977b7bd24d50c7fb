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
            if self.carry_len != 0 {
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
        use Inflate::Protocol;
        debug_assert!(scratch.len() > 3);
        loop {
            if self.ended {
                // Bytes after the final block belong to no stream.
                return match input.is_empty() {
                    true => Ok(()),
                    false => Err(Protocol(ProtocolError::BadDeflate)),
                };
            }
            let cl = self.carry_len as usize;
            scratch[..cl].copy_from_slice(&self.carry[..cl]);
            let room = scratch.len() - cl;
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress(input, &mut scratch[cl..], FlushDecompress::None)
                .map_err(|_| Protocol(ProtocolError::BadDeflate))?;
            let used = (self.z.total_in() - in0) as usize;
            let made = (self.z.total_out() - out0) as usize;
            input = &input[used..];
            if made > 0 {
                self.total += made as u64;
                if self.total > limit {
                    return Err(Protocol(ProtocolError::MessageTooBig));
                }
                let n = cl + made;
                let valid = if text {
                    utf8::complete_prefix(&scratch[..n])
                        .map_err(|_| Protocol(ProtocolError::InvalidUtf8))?
                } else {
                    n
                };
                self.carry_len = (n - valid) as u8;
                self.carry[..n - valid].copy_from_slice(&scratch[valid..n]);
                if valid > 0 {
                    piece(&scratch[..valid]).map_err(Inflate::Piece)?;
                }
            }
            if status == Status::StreamEnd {
                self.ended = true;
                continue;
            }
            // A full output may have more behind it; otherwise zlib took
            // all the input it could.
            if made == room || (used > 0 && !input.is_empty()) {
                continue;
            }
            if input.is_empty() {
                return Ok(());
            }
            // Input left that it will not take: never so for a valid stream.
            return Err(Protocol(ProtocolError::BadDeflate));
        }
    }
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
