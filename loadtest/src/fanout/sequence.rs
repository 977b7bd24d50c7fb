//! Sequence checking per subscriber: which message it may receive next,
//! given what was published.
//!
//! Invariants: a check only moves forward, and only when a message is
//! accepted (`InOrder` or `Skipped`); from `strict_from` on every message
//! must arrive exactly once and in order, while readiness messages before
//! it may be missed but never repeated or reordered; a sequence number not
//! yet published is refused without moving the check.

/// What a subscriber may receive next, given what was published.
///
/// Sequence numbers are published in increasing order; those from
/// `strict_from` on must reach the subscriber exactly once and in order,
/// earlier ones (readiness messages) may be missed but never repeated or
/// reordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct SeqCheck {
    /// The lowest sequence number still acceptable.
    next: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// The next message in order (or a later readiness message).
    InOrder,
    /// A later message: this many strict messages before it were skipped.
    Skipped(u64),
    /// Not after the last one received: a duplicate, or one out of order.
    Repeated,
    /// A sequence number never published.
    NeverSent,
}

impl SeqCheck {
    /// Judge message `seq`; `published`: every number below it has been
    /// sent. Only `InOrder` and `Skipped` move the check forward.
    pub(super) fn accept(&mut self, seq: u64, published: u64, strict_from: u64) -> Verdict {
        if seq >= published {
            return Verdict::NeverSent;
        }
        if seq < self.next {
            return Verdict::Repeated;
        }
        let first_owed = self.next.max(strict_from);
        self.next = seq + 1;
        if seq > first_owed {
            Verdict::Skipped(seq - first_owed)
        } else {
            Verdict::InOrder
        }
    }

    /// How many strict messages below `published` were never received.
    pub(super) fn missing(&self, published: u64, strict_from: u64) -> u64 {
        published.saturating_sub(self.next.max(strict_from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_strict_messages_pass() {
        let mut c = SeqCheck::default();
        for s in 0..5 {
            assert_eq!(c.accept(s, 5, 0), Verdict::InOrder);
        }
        assert_eq!(c.missing(5, 0), 0);
        assert_eq!(c.missing(7, 0), 2);
    }

    #[test]
    fn readiness_messages_may_be_missed() {
        let mut c = SeqCheck::default();
        // Rounds 0 and 1 missed, 2 received; strict from 3.
        assert_eq!(c.accept(2, 3, u64::MAX), Verdict::InOrder);
        assert_eq!(c.accept(3, 4, 3), Verdict::InOrder);
        // Another subscriber got only the last round before strict ones.
        let mut d = SeqCheck::default();
        assert_eq!(d.accept(2, 3, 3), Verdict::InOrder);
        assert_eq!(d.missing(3, 3), 0);
        // A late readiness message is fine before the strict ones arrive.
        let mut e = SeqCheck::default();
        assert_eq!(e.accept(0, 5, 3), Verdict::InOrder);
        assert_eq!(e.accept(2, 5, 3), Verdict::InOrder);
        assert_eq!(e.accept(3, 5, 3), Verdict::InOrder);
    }

    #[test]
    fn gaps_repeats_and_inventions_are_caught() {
        let mut c = SeqCheck::default();
        assert_eq!(c.accept(0, 10, 0), Verdict::InOrder);
        assert_eq!(c.accept(3, 10, 0), Verdict::Skipped(2));
        assert_eq!(c.accept(3, 10, 0), Verdict::Repeated);
        assert_eq!(c.accept(2, 10, 0), Verdict::Repeated);
        assert_eq!(c.accept(10, 10, 0), Verdict::NeverSent);
        assert_eq!(c.accept(4, 10, 0), Verdict::InOrder);
        // Skipping readiness messages and the first strict one: only the
        // strict one counts as lost.
        let mut d = SeqCheck::default();
        assert_eq!(d.accept(6, 7, 5), Verdict::Skipped(1));
        let e = SeqCheck::default();
        assert_eq!(e.missing(7, 5), 2);
    }
}
