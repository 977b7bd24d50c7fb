//! Which connection ids are live, readable from any thread: what lets a
//! [`Handle`](crate::Handle) refuse a push to a closed id at once.
//!
//! Invariants: only the owning loop writes, at accept (the id's tag) and at
//! release (0). A slot's tag is the low 32 bits of the serial, plus one
//! (never 0). A reader may see a connection that closes a moment later: the
//! loop checks the whole id again before it delivers, so a stale id can
//! only ever be refused, never reach a newer connection. Slots are kept in
//! chunks allocated on first use, so the table costs 4 bytes per slot in
//! use, not per possible slot.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use crate::conn_id::{ConnId, MAX_SLOTS};

const CHUNK: usize = 4096;

/// Slots of one loop, by id tag.
pub(crate) struct Live {
    chunks: Box<[OnceLock<Box<[AtomicU32]>>]>,
}

fn tag(id: ConnId) -> u32 {
    (id.serial() as u32).wrapping_add(1).max(1)
}

impl Live {
    pub fn new() -> Live {
        Live {
            chunks: (0..MAX_SLOTS / CHUNK).map(|_| OnceLock::new()).collect(),
        }
    }

    /// The loop accepted `id` (in its slot).
    pub fn open(&self, id: ConnId) {
        let slot = id.slot();
        let chunk = self.chunks[slot / CHUNK]
            .get_or_init(|| (0..CHUNK).map(|_| AtomicU32::new(0)).collect());
        chunk[slot % CHUNK].store(tag(id), Ordering::Release);
    }

    /// The connection in `slot` is gone.
    pub fn close(&self, slot: usize) {
        if let Some(chunk) = self.chunks[slot / CHUNK].get() {
            chunk[slot % CHUNK].store(0, Ordering::Release);
        }
    }

    /// Whether `id` may still be open.
    pub fn is_open(&self, id: ConnId) -> bool {
        let slot = id.slot();
        self.chunks[slot / CHUNK]
            .get()
            .is_some_and(|c| c[slot % CHUNK].load(Ordering::Acquire) == tag(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_close_and_reuse() {
        let live = Live::new();
        let a = ConnId::new(5, 3);
        let b = ConnId::new(9, 3);
        assert!(!live.is_open(a));
        live.open(a);
        assert!(live.is_open(a));
        assert!(!live.is_open(b), "another serial in the same slot");
        live.close(3);
        assert!(!live.is_open(a));
        live.open(b);
        assert!(!live.is_open(a) && live.is_open(b));
        let far = ConnId::new(1, MAX_SLOTS - 1);
        live.open(far);
        assert!(live.is_open(far));
        // Serial 2^32 - 1 wraps to tag 0, which means "free": it is
        // stored as 1 instead.
        let wrap = ConnId::new(u32::MAX as u64, 8);
        live.open(wrap);
        assert!(live.is_open(wrap));
    }
}
