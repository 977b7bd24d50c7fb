//! Pooled I/O buffers: a linear read buffer with headroom and a write ring.
//!
//! Ownership: a [`Pool`] owns every buffer that is not attached to a
//! connection. A connection takes a read buffer only while it has unprocessed
//! input (a partial frame or request) and a write buffer only while the socket
//! has not taken all its output; both go back to the pool as soon as they are
//! empty, so an idle connection holds no buffer at all. A warm pool makes the
//! steady state allocation-free.
//!
//! The read buffer's data always starts at or after [`HEADROOM`]: the bytes in
//! front of the data are free for the protocol core to write an echo header
//! (and up to 3 held-back bytes of a UTF-8 code point) before a payload that
//! continues a frame begun in an earlier read.

/// Free bytes kept in front of the data of a read buffer: room for a 10-byte
/// server header plus 3 carried bytes, rounded up.
pub const HEADROOM: usize = 16;

/// A stack of same-sized free buffers.
pub struct Pool {
    size: usize,
    free: Vec<Box<[u8]>>,
    max_free: usize,
    /// Buffers handed out and not yet returned.
    in_use: usize,
}

impl Pool {
    /// A pool of `size`-byte buffers keeping at most `max_free` idle ones,
    /// `prealloc` of them allocated up front.
    pub fn new(size: usize, max_free: usize, prealloc: usize) -> Pool {
        let mut free = Vec::with_capacity(max_free.min(1 << 16));
        for _ in 0..prealloc.min(max_free) {
            free.push(vec![0u8; size].into_boxed_slice());
        }
        Pool {
            size,
            free,
            max_free,
            in_use: 0,
        }
    }

    pub fn buffer_size(&self) -> usize {
        self.size
    }

    /// Buffers currently attached to connections.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Idle buffers held by the pool.
    pub fn idle(&self) -> usize {
        self.free.len()
    }

    pub fn take(&mut self) -> Box<[u8]> {
        self.in_use += 1;
        self.free
            .pop()
            .unwrap_or_else(|| vec![0u8; self.size].into_boxed_slice())
    }

    pub fn give(&mut self, buf: Box<[u8]>) {
        self.in_use -= 1;
        if self.free.len() < self.max_free {
            self.free.push(buf);
        }
    }
}

/// Received bytes waiting to be processed: `buf[start..end]`.
pub struct ReadBuf {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ReadBuf {
    pub fn new(buf: Box<[u8]>) -> ReadBuf {
        assert!(buf.len() > HEADROOM + crate::frame::MAX_HEADER + 125);
        ReadBuf {
            buf,
            start: HEADROOM,
            end: HEADROOM,
        }
    }

    pub fn into_inner(self) -> Box<[u8]> {
        self.buf
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn len(&self) -> usize {
        self.end - self.start
    }

    pub fn start(&self) -> usize {
        self.start
    }

    /// The free space after the data, where the next read goes.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    /// Record `n` bytes read into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        debug_assert!(self.end + n <= self.buf.len());
        self.end += n;
    }

    /// The whole buffer up to the end of the data, for the protocol core,
    /// which works in place and may write into the headroom.
    pub fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.end]
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.buf[..self.end]
    }

    /// Everything before `start` has been processed.
    pub fn consume_to(&mut self, start: usize) {
        debug_assert!(start >= self.start && start <= self.end);
        self.start = start;
    }

    /// Make room for the next read once everything before `start` is done
    /// with (every output pointing into the buffer written or copied).
    ///
    /// Empty: start over at [`HEADROOM`]. Otherwise the leftover (a partial
    /// header, control frame, request or echo chunk) moves back to
    /// `HEADROOM` only when it is a few bytes, or when fewer than
    /// `min_spare` bytes are free behind it; so a partial chunk is copied at
    /// most once, and only when it could not be completed in place.
    pub fn compact(&mut self, min_spare: usize) {
        if self.start == self.end {
            self.start = HEADROOM;
            self.end = HEADROOM;
        } else if self.start > HEADROOM
            && (self.end - self.start <= 64 || self.buf.len() - self.end < min_spare)
        {
            self.buf.copy_within(self.start..self.end, HEADROOM);
            self.end = HEADROOM + (self.end - self.start);
            self.start = HEADROOM;
        }
    }
}

/// Bytes the socket has not taken yet, in a ring: `len` bytes from `head`.
pub struct Ring {
    buf: Box<[u8]>,
    head: usize,
    len: usize,
}

impl Ring {
    pub fn new(buf: Box<[u8]>) -> Ring {
        Ring {
            buf,
            head: 0,
            len: 0,
        }
    }

    pub fn into_inner(self) -> Box<[u8]> {
        self.buf
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn free(&self) -> usize {
        self.buf.len() - self.len
    }

    /// The pending bytes as at most two slices, oldest first.
    pub fn as_slices(&self) -> (&[u8], &[u8]) {
        let cap = self.buf.len();
        if self.head + self.len <= cap {
            (&self.buf[self.head..self.head + self.len], &[])
        } else {
            let first = cap - self.head;
            (&self.buf[self.head..], &self.buf[..self.len - first])
        }
    }

    /// Append as much of `data` as fits; returns how much did.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let cap = self.buf.len();
        let n = data.len().min(self.free());
        let tail = (self.head + self.len) % cap.max(1);
        let first = n.min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&data[..first]);
        self.buf[..n - first].copy_from_slice(&data[first..n]);
        self.len += n;
        n
    }

    /// Drop `n` bytes from the front (the socket took them).
    pub fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n;
        // An empty ring restarts at 0 so the next output is one slice.
        self.head = if self.len == 0 {
            0
        } else {
            (self.head + n) % self.buf.len()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_reuses_buffers() {
        let mut p = Pool::new(64, 2, 1);
        assert_eq!(p.idle(), 1);
        let a = p.take();
        let b = p.take();
        let c = p.take();
        assert_eq!(p.in_use(), 3);
        let pa = a.as_ptr();
        p.give(a);
        p.give(b);
        p.give(c); // over max_free: freed
        assert_eq!(p.idle(), 2);
        assert_eq!(p.in_use(), 0);
        let again = p.take();
        assert!(again.len() == 64);
        let _ = pa;
    }

    #[test]
    fn read_buf_compacts_leftover_to_headroom() {
        let mut r = ReadBuf::new(vec![0u8; 256].into_boxed_slice());
        let spare = r.spare();
        spare[..10].copy_from_slice(b"0123456789");
        r.filled(10);
        r.consume_to(HEADROOM + 7);
        r.compact(0);
        assert_eq!(r.start(), HEADROOM);
        assert_eq!(&r.as_slice()[HEADROOM..], b"789");
        r.consume_to(HEADROOM + 3);
        r.compact(0);
        assert!(r.is_empty());
        assert_eq!(r.spare().len(), 256 - HEADROOM);
    }

    #[test]
    fn large_leftover_stays_in_place_while_it_can_grow() {
        let mut r = ReadBuf::new(vec![0u8; 1024].into_boxed_slice());
        r.filled(500);
        r.consume_to(HEADROOM + 300);
        r.compact(300);
        assert_eq!(
            r.start(),
            HEADROOM + 300,
            "200 bytes left, 508 free: no copy"
        );
        r.compact(600);
        assert_eq!(r.start(), HEADROOM, "not enough room behind: moved");
        assert_eq!(r.len(), 200);
    }

    #[test]
    fn ring_wraps_and_preserves_order() {
        let mut r = Ring::new(vec![0u8; 8].into_boxed_slice());
        let mut model: std::collections::VecDeque<u8> = Default::default();
        let mut next = 0u8;
        // A fixed pseudo-random schedule of pushes and consumes.
        let mut x = 12345u32;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x % 2 == 0 {
                let want = (x % 6) as usize;
                let data: Vec<u8> = (0..want)
                    .map(|_| {
                        next = next.wrapping_add(1);
                        next
                    })
                    .collect();
                let n = r.push(&data);
                assert_eq!(n, want.min(8 - model.len()));
                model.extend(&data[..n]);
                // Bytes that did not fit are "lost" here; restore the counter.
                next = next.wrapping_sub((want - n) as u8);
            } else {
                let n = (x as usize / 7) % (r.len() + 1);
                r.consume(n);
                model.drain(..n);
            }
            let (a, b) = r.as_slices();
            let got: Vec<u8> = a.iter().chain(b).copied().collect();
            assert_eq!(got, model.iter().copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn empty_ring_restarts_at_zero() {
        let mut r = Ring::new(vec![0u8; 8].into_boxed_slice());
        r.push(b"abcdef");
        r.consume(6);
        r.push(b"1234567");
        let (a, b) = r.as_slices();
        assert_eq!(a, b"1234567");
        assert!(b.is_empty());
    }
}
