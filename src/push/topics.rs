//! One loop's topics: which of its connections subscribe to what.
//!
//! Invariants: a topic exists while it has subscribers (an emptied topic is
//! dropped, so a chat's rooms do not pile up). Its members are a dense list
//! of slots, iterated as they are on every publish, with each slot's
//! position kept beside it so unsubscribing is O(1) (swap-remove). Only
//! connections that subscribe appear here: the others pay nothing, and a
//! connection's topics are left when it is released. Nothing is allocated
//! per publish.

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

use crate::bus::Interest;

struct Members {
    name: Arc<str>,
    slots: Vec<u32>,
    /// Slot to its index in `slots`.
    at: HashMap<u32, u32>,
}

/// The subscriptions of one loop's connections.
#[derive(Default)]
pub(crate) struct Topics {
    by_name: HashMap<Arc<str>, usize>,
    topics: Slab<Members>,
    /// Slot to the topics it subscribes to.
    of_slot: HashMap<u32, Vec<usize>>,
    /// Told when a topic appears on this loop or goes, if there is a bus.
    bus: Option<Arc<crate::bus::Bus>>,
}

impl Topics {
    /// Report topics to `bus` from now on (set before any subscribes).
    pub fn report_to(&mut self, bus: Arc<crate::bus::Bus>) {
        self.bus = Some(bus);
    }

    fn interest(&self) -> Option<&Interest> {
        self.bus.as_deref().map(|b| &b.interest)
    }

    /// Subscribe `slot` to the topic `name` (made from `shared` if given,
    /// so a handle's name is not copied). Returns false if it already was.
    pub fn subscribe(&mut self, name: &str, shared: Option<&Arc<str>>, slot: usize) -> bool {
        let slot = slot as u32;
        let t = match self.by_name.get(name) {
            Some(&t) => t,
            None => {
                let name: Arc<str> = shared.cloned().unwrap_or_else(|| Arc::from(name));
                let t = self.topics.insert(Members {
                    name: name.clone(),
                    slots: Vec::new(),
                    at: HashMap::new(),
                });
                if let Some(i) = self.interest() {
                    i.join(&name);
                }
                self.by_name.insert(name, t);
                t
            }
        };
        let m = &mut self.topics[t];
        if m.at.contains_key(&slot) {
            return false;
        }
        m.at.insert(slot, m.slots.len() as u32);
        m.slots.push(slot);
        self.of_slot.entry(slot).or_default().push(t);
        true
    }

    /// Unsubscribe `slot` from `name`. Returns false if it was not.
    pub fn unsubscribe(&mut self, name: &str, slot: usize) -> bool {
        let Some(&t) = self.by_name.get(name) else {
            return false;
        };
        let slot = slot as u32;
        if !self.leave(t, slot) {
            return false;
        }
        if let Some(list) = self.of_slot.get_mut(&slot) {
            list.retain(|&x| x != t);
            if list.is_empty() {
                self.of_slot.remove(&slot);
            }
        }
        true
    }

    /// Remove `slot` from topic `t`; drop the topic once empty.
    fn leave(&mut self, t: usize, slot: u32) -> bool {
        let m = &mut self.topics[t];
        let Some(i) = m.at.remove(&slot) else {
            return false;
        };
        m.slots.swap_remove(i as usize);
        if let Some(&moved) = m.slots.get(i as usize) {
            m.at.insert(moved, i);
        }
        if m.slots.is_empty() {
            let m = self.topics.remove(t);
            self.by_name.remove(&m.name);
            if let Some(i) = self.interest() {
                i.leave(&m.name);
            }
        }
        true
    }

    /// The connection in `slot` is gone: leave all its topics.
    pub fn release(&mut self, slot: usize) {
        if self.of_slot.is_empty() {
            return;
        }
        let slot = slot as u32;
        if let Some(list) = self.of_slot.remove(&slot) {
            for t in list {
                self.leave(t, slot);
            }
        }
    }

    /// The slots subscribed to `name` on this loop.
    pub fn members(&self, name: &str) -> &[u32] {
        self.by_name
            .get(name)
            .map_or(&[], |&t| &self.topics[t].slots)
    }

    /// Subscribers of `name` on this loop.
    #[cfg(test)]
    pub fn count(&self, name: &str) -> usize {
        self.by_name
            .get(name)
            .map_or(0, |&t| self.topics[t].slots.len())
    }

    /// Topics with subscribers on this loop.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.topics.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_unsubscribe_release() {
        let mut t = Topics::default();
        assert!(t.subscribe("a", None, 1));
        assert!(!t.subscribe("a", None, 1), "twice is once");
        assert!(t.subscribe("a", None, 2));
        assert!(t.subscribe("a", None, 3));
        assert!(t.subscribe("b", None, 2));
        assert_eq!((t.count("a"), t.count("b")), (3, 1));
        assert!(t.unsubscribe("a", 1));
        assert!(!t.unsubscribe("a", 1));
        assert!(!t.unsubscribe("zzz", 1));
        assert_eq!(t.count("a"), 2);
        t.release(2);
        assert_eq!((t.count("a"), t.count("b")), (1, 0));
        assert_eq!(t.len(), 1, "an emptied topic is dropped");
        assert_eq!(t.members("a"), &[3]);
        t.release(3);
        assert_eq!(t.len(), 0);
        assert!(t.members("a").is_empty());
        assert!(t.of_slot.is_empty());
    }

    #[test]
    fn positions_survive_swap_removes() {
        let mut t = Topics::default();
        for s in 0..100 {
            t.subscribe("x", None, s);
        }
        for s in (0..100).step_by(3) {
            assert!(t.unsubscribe("x", s));
        }
        let mut got = t.members("x").to_vec();
        got.sort();
        let want: Vec<u32> = (0..100).filter(|s| s % 3 != 0).collect();
        assert_eq!(got, want);
        for s in want {
            assert!(t.unsubscribe("x", s as usize));
        }
        assert_eq!(t.len(), 0);
    }
}
