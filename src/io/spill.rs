//! Where a connection keeps the few bytes left over between reads, so that
//! a peer that stops in the middle of a frame does not pin a whole read
//! buffer.
//!
//! Invariants:
//! * A read buffer (`Pool` of the loop, 64 KiB by default) is attached to a
//!   connection only while bytes are being read and processed. When the
//!   socket is drained and a few unprocessed bytes remain (a partial frame
//!   header, at most 13 bytes; a partial control frame, at most 130; the
//!   start of an echo chunk; a partial request head), they move to the
//!   smallest spill buffer that holds them and the read buffer goes back to
//!   its pool. A peer that sends one byte of a header and stops holds 256
//!   bytes, not 64 KiB.
//! * Before the next read the bytes move back into a full read buffer, at
//!   its headroom, so the protocol core only ever sees full read buffers:
//!   it keeps no offsets into the buffer between passes, and its headroom
//!   rule holds.
//! * Every buffer goes back to the pool its size names (see
//!   [`Spill::give`]); the tiers are always smaller than a read buffer, so
//!   sizes never collide.
//! * Leftovers larger than the largest tier (a partial echo chunk of more
//!   than 4,080 bytes) stay in the read buffer: the peer has then sent at
//!   least a sixteenth of what it holds.

use crate::buffer::{Pool, ReadBuf, HEADROOM};

/// Sizes of the spill buffers, smallest first: one for headers and control
/// frames, one for the start of a data chunk.
const TIERS: [usize; 2] = [256, 4096];

/// The spill pools of one event loop.
pub struct Spill {
    tiers: Vec<Pool>,
}

impl Spill {
    /// Spill pools for a loop whose read buffers are `read_size` bytes,
    /// keeping at most `max_free` idle buffers of each size. Tiers that are
    /// not smaller than half a read buffer would save little and are left
    /// out.
    pub fn new(read_size: usize, max_free: usize) -> Spill {
        let tiers = TIERS
            .iter()
            .filter(|&&t| t * 2 <= read_size)
            // A few ready from the start, as the read and write pools have:
            // the first partial frame a loop keeps then costs no allocation.
            .map(|&t| Pool::new(t, max_free, 4))
            .collect();
        Spill { tiers }
    }

    /// Spill buffers attached to connections.
    pub fn in_use(&self) -> usize {
        self.tiers.iter().map(Pool::in_use).sum()
    }

    /// Idle spill buffers kept by the pools.
    pub fn idle(&self) -> usize {
        self.tiers.iter().map(Pool::idle).sum()
    }

    /// `rbuf`, moved to the smallest spill buffer that holds its data if it
    /// is in a full read buffer and one does; its read buffer goes back to
    /// `read_pool`.
    #[cold]
    #[inline(never)]
    pub fn shrink(&mut self, rbuf: ReadBuf, read_pool: &mut Pool) -> ReadBuf {
        if rbuf.capacity() != read_pool.buffer_size() {
            return rbuf;
        }
        let need = HEADROOM + rbuf.len();
        match self.tiers.iter_mut().find(|t| t.buffer_size() >= need) {
            Some(tier) => {
                let (small, big) = rbuf.move_into(tier.take());
                read_pool.give(big);
                small
            }
            None => rbuf,
        }
    }

    /// `rbuf` in a full read buffer from `read_pool`, ready for a read;
    /// a spill buffer it was in goes back to its tier.
    #[cold]
    #[inline(never)]
    pub fn grow(&mut self, rbuf: ReadBuf, read_pool: &mut Pool) -> ReadBuf {
        if rbuf.capacity() == read_pool.buffer_size() {
            return rbuf;
        }
        let (full, small) = rbuf.move_into(read_pool.take());
        self.give_spill(small);
        full
    }

    /// Return a buffer that held input, read buffer or spill buffer, to
    /// its pool.
    pub fn give(&mut self, rbuf: ReadBuf, read_pool: &mut Pool) {
        let buf = rbuf.into_inner();
        if buf.len() == read_pool.buffer_size() {
            read_pool.give(buf);
        } else {
            self.give_spill(buf);
        }
    }

    #[cold]
    fn give_spill(&mut self, buf: Box<[u8]>) {
        let tier = self
            .tiers
            .iter_mut()
            .find(|t| t.buffer_size() == buf.len())
            .expect("a spill buffer comes from a tier");
        tier.give(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(pool: &mut Pool, data: &[u8]) -> ReadBuf {
        let mut r = ReadBuf::new(pool.take());
        r.spare()[..data.len()].copy_from_slice(data);
        r.filled(data.len());
        r
    }

    #[test]
    fn a_few_bytes_leave_the_read_buffer_and_come_back_intact() {
        let mut read = Pool::new(64 << 10, 4, 0);
        let mut spill = Spill::new(64 << 10, 4);
        let mut r = filled(&mut read, &[0x81, 0xfe, 0x40]);
        r.consume_to(HEADROOM + 1);
        let r = spill.shrink(r, &mut read);
        assert_eq!(r.capacity(), 256);
        assert_eq!((read.in_use(), spill.in_use()), (0, 1));
        assert_eq!(r.data()[r.start()..], [0xfe, 0x40]);

        let r = spill.grow(r, &mut read);
        assert_eq!(r.capacity(), 64 << 10);
        assert_eq!(r.start(), HEADROOM, "back at the headroom");
        assert_eq!(r.data()[r.start()..], [0xfe, 0x40]);
        assert_eq!((read.in_use(), spill.in_use()), (1, 0));
        spill.give(r, &mut read);
        assert_eq!((read.in_use(), spill.in_use()), (0, 0));
    }

    #[test]
    fn the_smallest_tier_that_holds_the_data_is_chosen() {
        let mut read = Pool::new(64 << 10, 4, 0);
        let mut spill = Spill::new(64 << 10, 4);
        for (len, cap) in [
            (1, 256),
            (240, 256),
            (241, 4096),
            (4080, 4096),
            (4081, 64 << 10),
        ] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let r = spill.shrink(filled(&mut read, &data), &mut read);
            assert_eq!(r.capacity(), cap, "{len} bytes");
            assert_eq!(&r.data()[r.start()..], &data[..]);
            let r = spill.grow(r, &mut read);
            assert_eq!(&r.data()[r.start()..], &data[..]);
            spill.give(r, &mut read);
        }
        assert_eq!((read.in_use(), spill.in_use()), (0, 0));
    }

    #[test]
    fn tiers_not_well_below_a_read_buffer_are_not_used() {
        let mut read = Pool::new(4096, 4, 0);
        let mut spill = Spill::new(4096, 4);
        let r = spill.shrink(filled(&mut read, &[1; 300]), &mut read);
        assert_eq!(r.capacity(), 4096, "no 4 KiB tier beside 4 KiB reads");
        spill.give(r, &mut read);
        let r = spill.shrink(filled(&mut read, &[1; 3]), &mut read);
        assert_eq!(r.capacity(), 256);
        spill.give(r, &mut read);
        assert_eq!((read.in_use(), spill.in_use()), (0, 0));
    }
}
