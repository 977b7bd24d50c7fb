//! Timers a service sets on its connections, and the loop's tick.
//!
//! Invariants: a connection has at most one timer, kept here by slot and
//! only while set, so connections without one pay nothing; the event loop
//! folds its due time into the connection's single entry in the loop's
//! deadline heap (see `server`). An entry names the full connection id, so
//! a timer can never fire on a later connection in the same slot. A
//! repeating timer is moved forward by whole periods past now, so a late
//! loop fires it once, not once per missed period.

use std::collections::HashMap;

use crate::conn::Millis;
use crate::conn_id::ConnId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timer {
    id: ConnId,
    at: Millis,
    /// 0: once.
    every: Millis,
}

/// The timers of one loop's connections.
#[derive(Default)]
pub(crate) struct Timers {
    by_slot: HashMap<u32, Timer>,
}

impl Timers {
    /// Fire for `id` at `at`, then every `every` ms (0: once). Replaces
    /// the connection's timer.
    pub fn set(&mut self, id: ConnId, at: Millis, every: Millis) {
        self.by_slot
            .insert(id.slot() as u32, Timer { id, at, every });
    }

    /// Cancel `id`'s timer, if any.
    pub fn cancel(&mut self, id: ConnId) {
        if self.when(id).is_some() {
            self.by_slot.remove(&(id.slot() as u32));
        }
    }

    /// When `id`'s timer is due.
    pub fn when(&self, id: ConnId) -> Option<Millis> {
        self.by_slot
            .get(&(id.slot() as u32))
            .filter(|t| t.id == id)
            .map(|t| t.at)
    }

    /// If `id`'s timer is due at `now`, take the firing: a repeating timer
    /// moves to its next time past `now`, a one-shot one is removed.
    pub fn fire(&mut self, id: ConnId, now: Millis) -> bool {
        let slot = id.slot() as u32;
        let Some(t) = self.by_slot.get_mut(&slot) else {
            return false;
        };
        if t.id != id || t.at > now {
            return false;
        }
        match (now - t.at).checked_div(t.every) {
            Some(missed) => t.at += (missed + 1) * t.every,
            None => {
                self.by_slot.remove(&slot);
            }
        }
        true
    }

    /// The connection in `slot` is gone.
    pub fn release(&mut self, slot: usize) {
        if !self.by_slot.is_empty() {
            self.by_slot.remove(&(slot as u32));
        }
    }
}

/// The loop-wide repeating tick of a service (see
/// [`Service::tick`](crate::Service::tick)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Tick {
    /// Next due time; 0: not set.
    pub at: Millis,
    pub every: Millis,
}

impl Tick {
    /// Whether the tick is due at `now`; if so, move it to its next time.
    pub fn fire(&mut self, now: Millis) -> bool {
        if self.at == 0 || now < self.at {
            return false;
        }
        let behind = (now - self.at) / self.every + 1;
        self.at += behind * self.every;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_timer_per_connection() {
        let mut t = Timers::default();
        let a = ConnId::new(1, 4);
        t.set(a, 100, 0);
        t.set(a, 50, 0);
        assert_eq!(t.when(a), Some(50), "setting replaces");
        assert!(!t.fire(a, 49));
        assert!(t.fire(a, 50));
        assert_eq!(t.when(a), None, "a one-shot timer is gone once fired");
        assert!(!t.fire(a, 60));
    }

    #[test]
    fn repeating_timers_skip_missed_periods() {
        let mut t = Timers::default();
        let a = ConnId::new(1, 4);
        t.set(a, 100, 10);
        assert!(t.fire(a, 100));
        assert_eq!(t.when(a), Some(110));
        assert!(t.fire(a, 175), "late: fires once");
        assert_eq!(t.when(a), Some(180));
        t.cancel(a);
        assert!(!t.fire(a, 1000));
    }

    #[test]
    fn a_later_connection_in_the_slot_is_not_fired() {
        let mut t = Timers::default();
        let old = ConnId::new(1, 4);
        let new = ConnId::new(2, 4);
        t.set(old, 10, 0);
        assert_eq!(t.when(new), None);
        assert!(!t.fire(new, 20));
        t.cancel(new);
        assert_eq!(t.when(old), Some(10), "cancel by another id is ignored");
        t.release(4);
        assert_eq!(t.when(old), None);
    }

    #[test]
    fn ticks() {
        let mut k = Tick::default();
        assert!(!k.fire(5));
        k = Tick { at: 10, every: 5 };
        assert!(!k.fire(9));
        assert!(k.fire(10));
        assert_eq!(k.at, 15);
        assert!(k.fire(31));
        assert_eq!(k.at, 35);
    }
}
