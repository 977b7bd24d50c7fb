//! Which topics this instance needs from the bus: the topics that have a
//! subscriber on at least one of its loops.
//!
//! Invariants: a loop reports a topic here when the topic appears on that
//! loop (its first local subscriber) and when it goes (its last one
//! leaves), never per message or per subscriber, so the lock is taken
//! rarely and never on a publish. The count of a topic is the number of
//! loops holding it; a topic is in the set while its count is above zero.
//! Every change to the set bumps `version`, which the bus thread compares
//! with what it last applied: it subscribes and unsubscribes by the
//! difference, and after a reconnect it applies the whole set again. The
//! state is the set itself, not a queue of changes, so it stays bounded
//! by the number of topics however long the bus is away.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Counts {
    loops: HashMap<Arc<str>, u32>,
    version: u64,
}

/// The topics wanted from the bus, shared by the loops and the bus thread.
#[derive(Default)]
pub(crate) struct Interest {
    counts: Mutex<Counts>,
}

impl Interest {
    /// A loop has its first subscriber to `name`.
    pub fn join(&self, name: &Arc<str>) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = c.loops.entry(name.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            c.version += 1;
        }
    }

    /// A loop's last subscriber to `name` has left.
    pub fn leave(&self, name: &str) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(n) = c.loops.get_mut(name) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            c.loops.remove(name);
            c.version += 1;
        }
    }

    /// The set and its version, if the version is not `seen`.
    pub fn changed_since(&self, seen: Option<u64>) -> Option<(u64, HashSet<Arc<str>>)> {
        let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if seen == Some(c.version) {
            return None;
        }
        Some((c.version, c.loops.keys().cloned().collect()))
    }

    /// Topics in the set.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.counts.lock().unwrap().loops.len()
    }
}

/// What to subscribe to and unsubscribe from to go from `have` to `want`.
pub(crate) fn diff(
    have: &HashSet<Arc<str>>,
    want: &HashSet<Arc<str>>,
) -> (Vec<Arc<str>>, Vec<Arc<str>>) {
    let mut add: Vec<Arc<str>> = want.difference(have).cloned().collect();
    let mut drop: Vec<Arc<str>> = have.difference(want).cloned().collect();
    // Sorted, so the commands sent are the same for the same sets.
    add.sort();
    drop.sort();
    (add, drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> HashSet<Arc<str>> {
        names.iter().map(|&n| Arc::from(n)).collect()
    }

    #[test]
    fn counts_loops_and_versions_only_real_changes() {
        let i = Interest::default();
        let (v0, s) = i.changed_since(None).unwrap();
        assert!(s.is_empty());
        assert!(i.changed_since(Some(v0)).is_none(), "nothing changed");
        let a: Arc<str> = Arc::from("a");
        i.join(&a);
        let (v1, s) = i.changed_since(Some(v0)).unwrap();
        assert_eq!(s, set(&["a"]));
        // A second loop joining, then leaving, changes nothing on the bus.
        i.join(&a);
        i.leave("a");
        assert!(i.changed_since(Some(v1)).is_none());
        i.leave("a");
        let (_, s) = i.changed_since(Some(v1)).unwrap();
        assert!(s.is_empty());
        assert_eq!(i.len(), 0);
        // A leave for a topic never joined is ignored.
        i.leave("zzz");
        assert_eq!(i.len(), 0);
    }

    #[test]
    fn diff_goes_from_have_to_want() {
        let (add, drop) = diff(&set(&["a", "b", "c"]), &set(&["b", "d", "e"]));
        assert_eq!(add, vec![Arc::from("d"), Arc::from("e")]);
        assert_eq!(drop, vec![Arc::from("a"), Arc::from("c")]);
        let (add, drop) = diff(&HashSet::new(), &set(&["x"]));
        assert_eq!((add.len(), drop.len()), (1, 0), "after a reconnect: all");
    }
}
