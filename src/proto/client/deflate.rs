//! permessage-deflate for the client role: the server's compressed
//! messages inflated in steps, and whole messages sent compressed.
//!
//! Invariants:
//! * A connection holds an [`Unpack`] (inflater, the compressed input not
//!   yet inflated, and the step handed out) from the first piece of a
//!   compressed message until the call after its last step, when it goes
//!   back to the thread's pool; when the server keeps its context
//!   (no `server_no_context_takeover`), it keeps it for life instead.
//! * A step hands out at most [`STEP`] inflated bytes, from `out`, which
//!   stays as it is until the connection's next input call. Compressed
//!   input is copied into `input` as the reader hands it out (a copy of the
//!   compressed bytes, cheap beside inflating them), so that a step that
//!   fills `out` can resume where it stopped whatever the caller's buffer
//!   does meanwhile; `input` never holds more than one piece and its tail.
//! * Compressors, the pool and the plain/packed scratch of outgoing
//!   messages are per thread, shared by every connection of an event loop:
//!   a client resets its compressor for every message (it always announces
//!   `client_no_context_takeover`), so nothing of it outlives a message.

use std::cell::RefCell;

use crate::deflate::{ClientTerms, Codec, DeflateConfig, Inflater, TAIL};
use crate::error::ProtocolError;
use crate::service::MessageKind;

/// Inflated bytes handed out per step at most.
pub const STEP: usize = 64 << 10;
/// Unpacks kept idle per thread.
const IDLE: usize = 32;
/// Scratch for outgoing messages larger than this is released after use.
const KEEP: usize = 1 << 20;

/// A compressed message being inflated.
#[derive(Debug)]
pub struct Unpack {
    inf: Box<Inflater>,
    kind: MessageKind,
    /// Compressed bytes of the current piece (and the tail after the
    /// last); `input[at..]` is not inflated yet.
    input: Vec<u8>,
    at: usize,
    /// Where the tail appended after the last piece starts (`usize::MAX`:
    /// not appended).
    tail_at: usize,
    /// The last piece is in `input`.
    last: bool,
    /// A message is open on it.
    open: bool,
    /// Nothing of the message has been handed out yet.
    first: bool,
    /// The last step filled `out`: more may come with no more input.
    full: bool,
    /// The step handed out: `out[..ready]`.
    out: Vec<u8>,
    ready: usize,
}

impl Unpack {
    fn new() -> Unpack {
        Unpack {
            inf: Box::default(),
            kind: MessageKind::Binary,
            input: Vec::new(),
            at: 0,
            tail_at: usize::MAX,
            last: false,
            open: false,
            first: true,
            full: false,
            out: Vec::new(),
            ready: 0,
        }
    }

    /// Text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// A compressed message is open on it.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// A step can be made now, with no more input.
    pub fn has_more(&self) -> bool {
        self.open && (self.full || self.at < self.input.len())
    }

    /// The inflated bytes handed out last.
    pub fn inflated(&self) -> &[u8] {
        &self.out[..self.ready]
    }

    /// A compressed message opens with this piece.
    pub fn begin(&mut self, kind: MessageKind) {
        self.inf.begin();
        self.kind = kind;
        self.open = true;
        self.first = true;
        self.full = false;
    }

    /// The next piece of the open message (`last`: its last).
    pub fn push(&mut self, piece: &[u8], last: bool) {
        self.input.clear();
        self.input.extend_from_slice(piece);
        self.at = 0;
        self.last = last;
        self.tail_at = usize::MAX;
        if last {
            self.tail_at = self.input.len();
            self.input.extend_from_slice(&TAIL);
        }
    }

    /// Inflate the next step: `Some((first, last))` once there is a piece
    /// to hand out (`last`: the message is whole, perhaps with nothing
    /// more), `None` when the input is used up short of that.
    pub fn step(
        &mut self,
        limit: u64,
        server_takeover: bool,
    ) -> Result<Option<(bool, bool)>, ProtocolError> {
        if self.out.len() < STEP {
            self.out.resize(STEP, 0);
        }
        let text = self.kind == MessageKind::Text;
        loop {
            // After a final block only the tail appended may be left.
            let end = match self.inf.is_ended() {
                true => self.tail_at.min(self.input.len()).max(self.at),
                false => self.input.len(),
            };
            let s = self
                .inf
                .step(&self.input[self.at..end], text, limit, &mut self.out)?;
            self.at += s.used;
            self.full = s.full;
            let drained = self.at >= end;
            if !drained && !s.full && s.used == 0 && !self.inf.is_ended() {
                // Input left that it will not take: never so for a valid
                // stream.
                return Err(ProtocolError::BadDeflate);
            }
            let done = self.last && drained && !s.full;
            if done && self.inf.cut_code_point() {
                return Err(ProtocolError::InvalidUtf8);
            }
            self.ready = s.ready;
            if s.ready > 0 || done {
                let first = std::mem::replace(&mut self.first, false);
                if done {
                    self.open = false;
                    self.inf.end(server_takeover);
                }
                return Ok(Some((first, done)));
            }
            if drained && !s.full {
                return Ok(None);
            }
        }
    }
}

/// What one thread's client connections share.
struct Shared {
    codec: Codec,
    // Boxed: an unpack moves between the pool and its connection by pointer.
    #[allow(clippy::vec_box)]
    idle: Vec<Box<Unpack>>,
    plain: Vec<u8>,
    packed: Vec<u8>,
}

thread_local! {
    static SHARED: RefCell<Shared> = RefCell::new(Shared {
        codec: Codec::new(&DeflateConfig::default(), 0),
        idle: Vec::new(),
        plain: Vec::new(),
        packed: Vec::new(),
    });
}

/// An unpack from this thread's pool, or a new one.
pub fn lend() -> Box<Unpack> {
    SHARED
        .with(|s| s.borrow_mut().idle.pop())
        .unwrap_or_else(|| Box::new(Unpack::new()))
}

/// An unpack back to this thread's pool (dropped if it is full).
pub fn give_back(mut u: Box<Unpack>) {
    u.inf.end(false);
    u.open = false;
    u.ready = 0;
    SHARED.with(|s| {
        let mut s = s.borrow_mut();
        if s.idle.len() < IDLE {
            s.idle.push(u);
        }
    });
}

/// A whole message of `len` bytes that `fill` writes, compressed for a
/// server whose inflater has the window of `terms`: `emit` gets the
/// payload and whether it is compressed (not, when compressing would not
/// shrink it, unless `always`).
pub fn compress(
    terms: ClientTerms,
    always: bool,
    len: usize,
    fill: impl FnOnce(&mut [u8]),
    emit: impl FnOnce(&[u8], bool),
) {
    // Taken out while in use: `fill` and `emit` are the caller's code.
    let (mut plain, mut packed) = SHARED.with(|s| {
        let mut s = s.borrow_mut();
        (std::mem::take(&mut s.plain), std::mem::take(&mut s.packed))
    });
    plain.clear();
    plain.resize(len, 0);
    fill(&mut plain);
    let window = terms.compress_window();
    let smaller = SHARED.with(|s| {
        let codec = &mut s.borrow_mut().codec;
        match always {
            true => {
                codec.compress_any(&[&plain], window, &mut packed);
                true
            }
            false => codec.compress(&[&plain], window, &mut packed),
        }
    });
    match smaller {
        true => emit(&packed, true),
        false => emit(&plain, false),
    }
    if plain.capacity() > KEEP {
        (plain, packed) = (Vec::new(), Vec::new());
    }
    SHARED.with(|s| {
        let mut s = s.borrow_mut();
        s.plain = plain;
        s.packed = packed;
    });
}

#[cfg(test)]
mod tests;
