//! Pooled I/O buffers: a linear read buffer with headroom, and a backlog of
//! blocks for output the socket has not taken.
//!
//! Ownership: a [`Pool`] owns every buffer that is not attached to a
//! connection. A connection takes a read buffer only while it has unprocessed
//! input (a partial frame or request) and backlog blocks only while the socket
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

use std::collections::VecDeque;
use std::io::IoSlice;

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

    /// Most idle buffers kept.
    pub fn max_idle(&self) -> usize {
        self.max_free
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

/// Received bytes waiting to be processed: `buf[start..end]`. Offsets are
/// 32-bit: this sits in every connection (buffers are far below 4 GiB).
pub struct ReadBuf {
    buf: Box<[u8]>,
    start: u32,
    end: u32,
}

impl ReadBuf {
    pub fn new(buf: Box<[u8]>) -> ReadBuf {
        assert!(buf.len() > HEADROOM + crate::frame::MAX_HEADER + 125);
        assert!(buf.len() <= u32::MAX as usize);
        ReadBuf {
            buf,
            start: HEADROOM as u32,
            end: HEADROOM as u32,
        }
    }

    pub fn into_inner(self) -> Box<[u8]> {
        self.buf
    }

    /// Bytes of the buffer itself (data, headroom and spare room).
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Move the data into `to`, at [`HEADROOM`], and hand back the buffer
    /// it was in. `to` must hold the data after the headroom.
    pub fn move_into(self, mut to: Box<[u8]>) -> (ReadBuf, Box<[u8]>) {
        let n = self.len();
        to[HEADROOM..HEADROOM + n].copy_from_slice(&self.buf[self.start()..self.end()]);
        let moved = ReadBuf {
            buf: to,
            start: HEADROOM as u32,
            end: (HEADROOM + n) as u32,
        };
        (moved, self.buf)
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn start(&self) -> usize {
        self.start as usize
    }

    fn end(&self) -> usize {
        self.end as usize
    }

    /// The free space after the data, where the next read goes.
    pub fn spare(&mut self) -> &mut [u8] {
        let end = self.end();
        &mut self.buf[end..]
    }

    /// Record `n` bytes read into [`spare`](Self::spare).
    pub fn filled(&mut self, n: usize) {
        debug_assert!(self.end() + n <= self.buf.len());
        self.end += n as u32;
    }

    /// The whole buffer up to the end of the data, for the protocol core,
    /// which works in place and may write into the headroom.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = self.end();
        &mut self.buf[..end]
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[..self.end()]
    }

    /// Everything before `start` has been processed.
    pub fn consume_to(&mut self, start: usize) {
        debug_assert!(start >= self.start() && start <= self.end());
        self.start = start as u32;
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
        let (start, end) = (self.start(), self.end());
        if start == end {
            self.start = HEADROOM as u32;
            self.end = HEADROOM as u32;
        } else if start > HEADROOM && (end - start <= 64 || self.buf.len() - end < min_spare) {
            self.buf.copy_within(start..end, HEADROOM);
            self.end = (HEADROOM + (end - start)) as u32;
            self.start = HEADROOM as u32;
        }
    }
}

/// Bytes the socket has not taken yet: a queue of pooled blocks, filled at
/// the back and drained from the front. A block goes back to the pool as soon
/// as it is drained, so a connection holds only as many blocks as its unsent
/// bytes need; the caller bounds that total.
///
/// A connection that never had to wait for its socket pays one pointer for
/// this; the queue itself is allocated the first time output waits, and kept
/// (empty) after that so a connection that waits often allocates once.
///
/// It also counts the bytes the socket took while output waited (see
/// [`count_drained`](Self::count_drained)), for the shell's minimum drain
/// rate: the count lives in the boxed queue, so it costs nothing to a
/// connection whose output never waits.
#[derive(Default)]
pub struct Backlog {
    q: Option<Box<Blocks>>,
}

#[derive(Default)]
struct Blocks {
    blocks: VecDeque<Box<[u8]>>,
    /// Bytes already written from the front block.
    head: usize,
    /// Bytes filled in the back block.
    tail: usize,
    len: usize,
    /// Bytes written since the current drain window began.
    drained: u64,
}

impl Backlog {
    pub fn len(&self) -> usize {
        self.q.as_ref().map_or(0, |q| q.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the socket took since [`new_window`](Self::new_window).
    pub fn drained(&self) -> u64 {
        self.q.as_ref().map_or(0, |q| q.drained)
    }

    /// Count `n` more bytes taken by the socket. Only meaningful while
    /// bytes wait (then the queue exists); otherwise there is no window
    /// to count them in.
    pub fn count_drained(&mut self, n: usize) {
        if let Some(q) = self.q.as_deref_mut() {
            q.drained += n as u64;
        }
    }

    /// Start counting from zero.
    pub fn new_window(&mut self) {
        if let Some(q) = self.q.as_deref_mut() {
            q.drained = 0;
        }
    }

    /// Blocks held.
    pub fn blocks(&self) -> usize {
        self.q.as_ref().map_or(0, |q| q.blocks.len())
    }

    /// Up to `iov.len()` slices of pending bytes, oldest first; returns how
    /// many were filled.
    pub fn io_slices<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> usize {
        let Some(q) = self.q.as_deref() else {
            return 0;
        };
        let last = q.blocks.len().saturating_sub(1);
        let mut n = 0;
        for (i, b) in q.blocks.iter().enumerate() {
            if n == iov.len() {
                break;
            }
            let from = if i == 0 { q.head } else { 0 };
            let to = if i == last { q.tail } else { b.len() };
            if to > from {
                iov[n] = IoSlice::new(&b[from..to]);
                n += 1;
            }
        }
        n
    }

    /// Append all of `data`, taking blocks from `pool` as needed.
    pub fn push(&mut self, mut data: &[u8], pool: &mut Pool) {
        if data.is_empty() {
            return;
        }
        let q = self.q.get_or_insert_with(Box::default);
        q.len += data.len();
        while !data.is_empty() {
            if q.blocks.is_empty() || q.tail == pool.buffer_size() {
                q.blocks.push_back(pool.take());
                q.tail = 0;
            }
            let b = q.blocks.back_mut().expect("a block was just ensured");
            let n = data.len().min(b.len() - q.tail);
            b[q.tail..q.tail + n].copy_from_slice(&data[..n]);
            q.tail += n;
            data = &data[n..];
        }
    }

    /// Drop `n` bytes from the front (the socket took them), returning
    /// drained blocks to `pool`.
    pub fn consume(&mut self, mut n: usize, pool: &mut Pool) {
        let Some(q) = self.q.as_deref_mut() else {
            debug_assert_eq!(n, 0);
            return;
        };
        debug_assert!(n <= q.len);
        q.len -= n;
        while n > 0 {
            let single = q.blocks.len() == 1;
            let end = if single { q.tail } else { q.blocks[0].len() };
            let k = n.min(end - q.head);
            q.head += k;
            n -= k;
            if q.head == end && !single {
                pool.give(q.blocks.pop_front().expect("front block"));
                q.head = 0;
            }
        }
        if q.len == 0 {
            self.release(pool);
        }
    }

    /// Return every block to `pool`.
    pub fn release(&mut self, pool: &mut Pool) {
        if let Some(q) = self.q.as_deref_mut() {
            for b in q.blocks.drain(..) {
                pool.give(b);
            }
            q.head = 0;
            q.tail = 0;
            q.len = 0;
        }
    }
}

/// A pooled growable buffer, boxed so that the slot where a connection
/// attaches one costs a pointer (8 bytes, not a `Vec`'s 24) while empty.
#[allow(clippy::box_collection)]
pub type MsgBuf = Box<Vec<u8>>;

/// Growable buffers for whole messages a service collects and for sends
/// held back behind a half-sent echo. A connection takes one only while it
/// has such bytes; a buffer that grew past `max_kept` is freed rather than
/// kept, so one large message does not pin its memory in the pool.
pub struct MsgPool {
    free: Vec<MsgBuf>,
    max_free: usize,
    max_kept: usize,
    in_use: usize,
}

impl MsgPool {
    /// A pool keeping at most `max_free` idle buffers of at most `max_kept`
    /// bytes of capacity each.
    pub fn new(max_free: usize, max_kept: usize) -> MsgPool {
        MsgPool {
            free: Vec::new(),
            max_free,
            max_kept,
            in_use: 0,
        }
    }

    /// An empty buffer.
    pub fn take(&mut self) -> MsgBuf {
        self.in_use += 1;
        self.free.pop().unwrap_or_default()
    }

    /// Return a buffer.
    pub fn give(&mut self, mut v: MsgBuf) {
        self.in_use -= 1;
        if self.free.len() < self.max_free && v.capacity() <= self.max_kept {
            v.clear();
            self.free.push(v);
        }
    }

    /// The most capacity a returned buffer may have and still be kept.
    pub fn max_kept(&self) -> usize {
        self.max_kept
    }

    /// Buffers attached to connections.
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Idle buffers held.
    pub fn idle(&self) -> usize {
        self.free.len()
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
        let mut m = MsgPool::new(1, 1024);
        let mut v = m.take();
        v.extend_from_slice(b"abc");
        let pv = v.as_ptr();
        m.give(v);
        let v = m.take();
        assert!(v.is_empty());
        assert_eq!(v.as_ptr(), pv, "reused, capacity kept");
        let mut big = m.take();
        big.resize(2048, 0);
        m.give(v);
        m.give(big); // grew past max_kept: freed
        assert_eq!((m.idle(), m.in_use()), (1, 0));
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
        assert_eq!(&r.data()[HEADROOM..], b"789");
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
    fn backlog_preserves_order_across_blocks_and_returns_them() {
        let mut pool = Pool::new(8, 16, 0);
        let mut q = Backlog::default();
        let mut model: std::collections::VecDeque<u8> = Default::default();
        let mut next = 0u8;
        let mut x = 12345u32;
        for _ in 0..3000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if x % 2 == 0 {
                let data: Vec<u8> = (0..(x % 20) as usize)
                    .map(|_| {
                        next = next.wrapping_add(1);
                        next
                    })
                    .collect();
                q.push(&data, &mut pool);
                model.extend(&data);
            } else {
                let n = (x as usize / 7) % (q.len() + 1);
                q.consume(n, &mut pool);
                model.drain(..n);
            }
            let mut iov = [IoSlice::new(&[]); 64];
            let k = q.io_slices(&mut iov);
            let got: Vec<u8> = iov[..k].iter().flat_map(|s| s.iter().copied()).collect();
            assert_eq!(got, model.iter().copied().collect::<Vec<_>>());
            assert_eq!(q.len(), model.len());
            assert_eq!(pool.in_use(), q.blocks());
            assert!(q.blocks() <= q.len().div_ceil(8) + 1);
        }
        q.release(&mut pool);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn drained_backlog_holds_no_block() {
        let mut pool = Pool::new(8, 4, 0);
        let mut q = Backlog::default();
        q.push(b"abcdefghijkl", &mut pool);
        assert_eq!(q.blocks(), 2);
        q.consume(12, &mut pool);
        assert_eq!(q.blocks(), 0);
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.idle(), 2);
    }
}
