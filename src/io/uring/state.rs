//! One connection's io_uring state, packed in 4 bytes: every connection
//! pays for it, idle or not (the idle budget is about 250 bytes).
//!
//! The low 12 bits are flags, the high 20 a generation that changes each
//! time the slab slot is given to a new connection, so that a completion
//! that outlived its connection is recognised.

/// The slot holds a live connection.
pub const OPEN: u32 = 1;
/// A receive is live (its last completion, without `MORE`, has not come).
pub const ARMED: u32 = 1 << 1;
/// The live receive's cancellation is asked.
pub const CANCELLING: u32 = 1 << 2;
/// The peer's FIN came: reads return 0 once the input before it is read.
pub const EOF: u32 = 1 << 3;
/// The socket failed.
pub const FAILED: u32 = 1 << 4;
/// A write was refused or short: the session waits to be told.
pub const OWED: u32 = 1 << 5;
/// Shut the write side once the send in flight is complete.
pub const FIN: u32 = 1 << 6;
/// A send is in flight.
pub const SENDING: u32 = 1 << 7;
/// Input the session left waits in the overflow map.
pub const OVERFLOW: u32 = 1 << 8;
/// Its send was queued since the last submit.
pub const QUEUED: u32 = 1 << 9;

const FLAGS: u32 = (1 << 12) - 1;
/// Generations wrap at 2^20.
pub const GEN_MASK: u32 = (1 << 20) - 1;

#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConnState(u32);

impl ConnState {
    /// A new connection in this slot: the next generation, open, receiving.
    pub fn reopen(self) -> ConnState {
        let gen = (self.gen() + 1) & GEN_MASK;
        ConnState((gen << 12) | OPEN | ARMED)
    }

    /// The connection is gone; the generation stays, for the next.
    pub fn closed(self) -> ConnState {
        ConnState(self.0 & !FLAGS)
    }

    pub fn gen(self) -> u32 {
        self.0 >> 12
    }

    pub fn has(self, flags: u32) -> bool {
        self.0 & flags != 0
    }

    pub fn set(&mut self, flags: u32) {
        self.0 |= flags & FLAGS;
    }

    pub fn clear(&mut self, flags: u32) {
        self.0 &= !(flags & FLAGS);
    }

    /// Open, of generation `gen`.
    pub fn is(self, gen: u32) -> bool {
        self.has(OPEN) && self.gen() == gen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_generation_stay_apart() {
        let mut s = ConnState::default().reopen();
        assert_eq!(s.gen(), 1);
        assert!(s.has(OPEN) && s.has(ARMED) && !s.has(SENDING));
        s.set(SENDING | OVERFLOW);
        s.clear(ARMED);
        assert!(s.has(SENDING) && s.has(OVERFLOW) && !s.has(ARMED) && s.is(1));
        s.clear(OPEN);
        assert!(!s.is(1));
        let mut w = ConnState(GEN_MASK << 12);
        w = w.reopen();
        assert_eq!(w.gen(), 0, "generations wrap");
        assert!(w.has(OPEN) && !w.has(SENDING));
    }
}
