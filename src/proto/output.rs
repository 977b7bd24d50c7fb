//! The bytes one pass of the protocol core wants sent, without copying them.
//!
//! An [`Output`] is a list of segments in send order. Most point into the
//! caller's read buffer (an echo laid over the frame it answers); the few
//! bytes the core makes up itself (an HTTP response, a close frame, a header
//! that had no room in front of its payload) go into a small scratch area;
//! the HTML page is a static slice. One `Output` is reused for every pass of
//! every connection of a loop, so it costs nothing per connection. It is only
//! valid together with the read buffer it was produced from, until the caller
//! has written or copied it.

use std::io::IoSlice;

/// Most segments one pass produces before the core stops to let the caller
/// write them out.
pub const MAX_SEGS: usize = 64;
/// Scratch bytes: the largest HTTP response head the core writes, and the
/// small frames services send in one pass (see `context`).
pub const SCRATCH: usize = 16 << 10;
/// Scratch kept free of service sends for the core's own frames.
const RESERVE: usize = 256;
/// Scratch the core itself may fill in one pass (an HTTP response head,
/// close and header frames); service sends are bounded when they are made.
pub const CORE_SCRATCH: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seg {
    /// `input[start..end]` of the read buffer.
    Input(usize, usize),
    /// `scratch[start..end]`.
    Scratch(usize, usize),
    /// A static slice (the HTML page).
    Static(&'static [u8]),
}

pub struct Output {
    segs: [Seg; MAX_SEGS],
    n: usize,
    scratch: [u8; SCRATCH],
    scratch_len: usize,
}

impl Default for Output {
    fn default() -> Self {
        Self::new()
    }
}

impl Output {
    pub fn new() -> Output {
        Output {
            segs: [Seg::Static(&[]); MAX_SEGS],
            n: 0,
            scratch: [0; SCRATCH],
            scratch_len: 0,
        }
    }

    pub fn clear(&mut self) {
        self.n = 0;
        self.scratch_len = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn segs(&self) -> &[Seg] {
        &self.segs[..self.n]
    }

    /// Whether one more frame's worth of output surely fits.
    pub fn has_room(&self) -> bool {
        self.n + 4 <= MAX_SEGS && self.scratch_len + 32 <= SCRATCH
    }

    fn push(&mut self, seg: Seg) {
        assert!(self.n < MAX_SEGS, "output segments overflow");
        self.segs[self.n] = seg;
        self.n += 1;
    }

    /// Scratch bytes in use.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// Whether `n` more scratch bytes (a corked send, in at most two
    /// segments) fit and still leave the core its room for one more frame.
    pub fn cork_fits(&self, n: usize) -> bool {
        self.n + 2 + 4 <= MAX_SEGS && self.scratch_len + n + RESERVE <= SCRATCH
    }

    /// Queue `input[start..end]`; joins the previous segment when adjacent.
    pub fn push_input(&mut self, start: usize, end: usize) {
        if let Some(Seg::Input(_, e)) = self.segs[..self.n].last_mut() {
            if *e == start {
                *e = end;
                return;
            }
        }
        self.push(Seg::Input(start, end));
    }

    /// Queue a static slice.
    pub fn push_static(&mut self, bytes: &'static [u8]) {
        self.push(Seg::Static(bytes));
    }

    /// Free scratch space to write into; follow with [`commit_scratch`].
    ///
    /// [`commit_scratch`]: Self::commit_scratch
    pub fn scratch_space(&mut self) -> &mut [u8] {
        &mut self.scratch[self.scratch_len..]
    }

    /// Queue the first `n` bytes of [`scratch_space`](Self::scratch_space).
    pub fn commit_scratch(&mut self, n: usize) {
        let start = self.scratch_len;
        self.scratch_len += n;
        if let Some(Seg::Scratch(_, e)) = self.segs[..self.n].last_mut() {
            if *e == start {
                *e = start + n;
                return;
            }
        }
        self.push(Seg::Scratch(start, start + n));
    }

    /// Queue copies of `head` and `parts`, in order, as one segment (a
    /// corked frame; the caller checked [`cork_fits`](Self::cork_fits)).
    #[inline]
    pub fn push_frame(&mut self, head: &[u8], parts: &[&[u8]]) {
        let start = self.scratch_len;
        let mut at = start;
        for p in std::iter::once(head).chain(parts.iter().copied()) {
            self.scratch[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.commit_scratch(at - start);
    }

    /// Queue a copy of `bytes` (a few bytes the core made up).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        self.scratch_space()[..bytes.len()].copy_from_slice(bytes);
        self.commit_scratch(bytes.len());
    }

    /// The bytes of a segment.
    pub fn bytes<'a>(&'a self, seg: Seg, input: &'a [u8]) -> &'a [u8] {
        match seg {
            Seg::Input(s, e) => &input[s..e],
            Seg::Scratch(s, e) => &self.scratch[s..e],
            Seg::Static(b) => b,
        }
    }

    /// Total bytes queued.
    pub fn len(&self, input: &[u8]) -> usize {
        self.segs()
            .iter()
            .map(|&s| self.bytes(s, input).len())
            .sum()
    }

    /// Fill `iov` with the segments, returning how many slots were used.
    pub fn io_slices<'a>(&'a self, input: &'a [u8], iov: &mut [IoSlice<'a>]) -> usize {
        let mut i = 0;
        for &s in self.segs() {
            let b = self.bytes(s, input);
            if !b.is_empty() {
                iov[i] = IoSlice::new(b);
                i += 1;
            }
        }
        i
    }

    /// Append every segment's bytes to `v` (tests and simple callers).
    pub fn extend_vec(&self, input: &[u8], v: &mut Vec<u8>) {
        for &s in self.segs() {
            v.extend_from_slice(self.bytes(s, input));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_segments_join() {
        let mut o = Output::new();
        o.push_input(0, 4);
        o.push_input(4, 9);
        o.push_bytes(b"ab");
        o.push_bytes(b"cd");
        o.push_input(20, 22);
        assert_eq!(o.segs().len(), 3);
        let input: Vec<u8> = (0..32).collect();
        let mut v = Vec::new();
        o.extend_vec(&input, &mut v);
        assert_eq!(
            v,
            [0, 1, 2, 3, 4, 5, 6, 7, 8, b'a', b'b', b'c', b'd', 20, 21]
        );
        assert_eq!(o.len(&input), 15);
        o.clear();
        assert!(o.is_empty());
    }
}
