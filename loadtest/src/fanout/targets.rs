//! The targets of a fan-out run (the url and every `--also`), which
//! connection opens which, and what is counted per target.
//!
//! Invariants: connection `id` opens target `id mod T` ([`target_of`]), so
//! the publisher (connection 0) is on target 0 (the url) and the targets'
//! subscriber counts differ by at most one ([`subscribers_of`]); every
//! target has at least one subscriber (checked by the arguments). A
//! target's `count` and `at_last` describe the message in flight only and
//! are reset when the next one is published; `delivered` counts verified
//! deliveries over the whole run, and the targets' sum equals the run's.

use crate::target::Target;

/// The target connection `id` opens, of `targets`.
pub(super) fn target_of(id: u32, targets: usize) -> usize {
    id as usize % targets
}

/// How many of `n` connections open target `k` of `targets`.
pub(super) fn subscribers_of(n: u32, targets: usize, k: usize) -> u32 {
    let t = targets as u32;
    n / t + u32::from((k as u32) < n % t)
}

/// One target: where its connections go, and what they count.
pub(super) struct Dest {
    pub(super) target: Target,
    /// The URL its connections open with.
    pub(super) url: String,
}

impl Dest {
    pub(super) fn new(target: Target) -> Dest {
        let url = format!("ws://{}{}", target.host, target.path);
        Dest { target, url }
    }
}

/// The counts of one target's subscribers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct TargetTally {
    /// Its subscribers.
    pub(super) n: u32,
    /// How many of them have the message in flight, and when the last of
    /// them got it (ns; 0 until then).
    pub(super) count: u32,
    pub(super) at_last: u64,
    /// Verified deliveries to its subscribers over the whole run.
    pub(super) delivered: u64,
}

impl TargetTally {
    /// One per target, for `n` connections spread over `targets`.
    pub(super) fn all(n: u32, targets: usize) -> Vec<TargetTally> {
        (0..targets)
            .map(|k| TargetTally {
                n: subscribers_of(n, targets, k),
                ..TargetTally::default()
            })
            .collect()
    }

    /// A verified delivery; `current`: whether it is the message in flight.
    /// `now` is read only when this is the target's last subscriber.
    pub(super) fn deliver(&mut self, current: bool, now: impl FnOnce() -> u64) {
        self.delivered += 1;
        if current {
            self.count += 1;
            if self.count == self.n {
                self.at_last = now();
            }
        }
    }

    /// A new message is in flight.
    pub(super) fn reset(&mut self) {
        self.count = 0;
        self.at_last = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin() {
        assert_eq!(target_of(0, 3), 0, "the publisher is on the url");
        let ks: Vec<usize> = (0..7).map(|id| target_of(id, 3)).collect();
        assert_eq!(ks, [0, 1, 2, 0, 1, 2, 0]);
        assert!((0..100).all(|id| target_of(id, 1) == 0));
        for (n, t) in [
            (7u32, 3usize),
            (6, 3),
            (3, 3),
            (1000, 1),
            (1001, 64),
            (5, 2),
        ] {
            let counts: Vec<u32> = (0..t).map(|k| subscribers_of(n, t, k)).collect();
            assert_eq!(counts.iter().sum::<u32>(), n, "{n} over {t}");
            for (k, &c) in counts.iter().enumerate() {
                let by_id = (0..n).filter(|&id| target_of(id, t) == k).count() as u32;
                assert_eq!(c, by_id, "{n} over {t}, target {k}");
            }
            assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1);
        }
        assert_eq!(
            TargetTally::all(7, 3)
                .iter()
                .map(|t| t.n)
                .collect::<Vec<_>>(),
            [3, 2, 2]
        );
    }

    #[test]
    fn per_target_tally() {
        let mut t = TargetTally::all(5, 2);
        let mut clock = 100;
        let mut tick = || {
            clock += 1;
            clock
        };
        // Target 1 (two subscribers) completes first, target 0 (three) last.
        for k in [1, 0, 1, 0, 0] {
            t[k].deliver(true, &mut tick);
        }
        assert_eq!((t[0].count, t[1].count), (3, 2));
        assert_eq!((t[0].at_last, t[1].at_last), (102, 101));
        // A late readiness message counts as delivered, not toward the one
        // in flight.
        t[1].deliver(false, &mut tick);
        assert_eq!((t[1].count, t[1].delivered), (2, 3));
        for x in t.iter_mut() {
            x.reset();
        }
        assert_eq!((t[0].count, t[0].at_last, t[0].delivered), (0, 0, 3));
        t[0].deliver(true, &mut tick);
        assert_eq!(t[0].at_last, 0, "not complete with one of three");
    }
}
