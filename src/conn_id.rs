//! Connection ids: unique for the lifetime of a server, cheap to compare.
//!
//! A [`ConnId`] packs the connection's slab slot (low 24 bits) with a serial
//! number (high 40 bits) that its event loop counts up for every
//! connection it accepts. Loop `i` of `n` hands out serials `i`, `i + n`,
//! `i + 2n`, …, so serials never repeat across loops either, and the serial
//! says which loop owns the connection. A slot is reused by later
//! connections, a serial never is (2^40 connections), so an id kept after
//! its connection ended can never name a newer one.

use std::fmt;

/// Slots per event loop an id can name.
pub(crate) const MAX_SLOTS: usize = 1 << SLOT_BITS;
const SLOT_BITS: u32 = 24;

/// A connection's id, unique for the server's lifetime.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    #[doc(hidden)]
    pub fn new(serial: u64, slot: usize) -> ConnId {
        debug_assert!(slot < MAX_SLOTS);
        ConnId((serial << SLOT_BITS) | slot as u64)
    }

    /// The slab slot of the connection in its loop.
    pub(crate) fn slot(self) -> usize {
        (self.0 & (MAX_SLOTS as u64 - 1)) as usize
    }

    /// The number its loop gave this connection.
    pub fn serial(self) -> u64 {
        self.0 >> SLOT_BITS
    }

    /// The id as one number (for logs, maps, and passing it around).
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The id [`as_u64`](Self::as_u64) gave. A number that names no
    /// connection is simply an id no push can reach.
    pub fn from_u64(n: u64) -> ConnId {
        ConnId(n)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnId({}@{})", self.serial(), self.slot())
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.serial())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_and_serial_round_trip() {
        let id = ConnId::new(0xAB_CDEF_0123, MAX_SLOTS - 1);
        assert_eq!(id.slot(), MAX_SLOTS - 1);
        assert_eq!(id.serial(), 0xAB_CDEF_0123);
        assert_ne!(ConnId::new(1, 5), ConnId::new(2, 5));
        assert_eq!(format!("{:?}", ConnId::new(7, 3)), "ConnId(7@3)");
    }
}
