//! The tally of a fan-out run: the expectations, progress and counts that
//! every connection reads and updates.
//!
//! Invariants: one thread (the event loop's) owns the tally; `pending` and
//! `open` count the connections in those states, updated once on each
//! change of state; `first_error` is the first fault noted and is never
//! replaced; the run has failed as soon as one error is counted; every
//! verified delivery counts in `delivered` and in its target's tally.

use zerows::MessageKind;

use super::targets::TargetTally;
use crate::stats::Errors;

/// What all connections share while running: what is expected of the
/// messages, where publishing stands, and what went wrong.
pub(super) struct Tally {
    pub(super) n: u32,
    pub(super) size: usize,
    pub(super) kind: MessageKind,
    /// Every sequence number below this has been published.
    pub(super) published: u64,
    /// Messages from this one on must reach everyone (`u64::MAX` until the
    /// readiness check has passed).
    pub(super) strict_from: u64,
    /// The message in flight, and how many subscribers have it.
    pub(super) current: u64,
    pub(super) count: u32,
    /// When the median subscriber and the last one got it (ns).
    pub(super) at_median: u64,
    pub(super) at_last: u64,
    /// Messages received, verified, over the whole run.
    pub(super) delivered: u64,
    /// The same per target, in the order of the targets.
    pub(super) targets: Vec<TargetTally>,
    /// Connects or handshakes in progress, connections open.
    pub(super) pending: usize,
    pub(super) open: usize,
    pub(super) closed_clean: u64,
    pub(super) errors: Errors,
    pub(super) first_error: Option<String>,
}

impl Tally {
    #[cold]
    pub(super) fn note(&mut self, what: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }

    pub(super) fn failed(&self) -> bool {
        self.errors.total() > 0
    }
}
