//! The minimum drain rate: what happens when a drain window ends.
//!
//! Invariants: a window runs only while output waits (`Session::clock`
//! non-zero, the backlog non-empty); the bytes the socket took during it
//! are counted in the backlog's boxed queue (`Backlog::drained`), so the
//! count costs a connection nothing until its output first waits; a window
//! is judged on what the socket took by its end, room the kernel had not
//! yet announced included; a window that passes starts the next one from
//! zero, one that fails drops the connection.

use super::{Progress, Session, Shared, Transport};
use crate::service::Service;

impl<St> Session<St> {
    /// A drain window is over: judge how much the peer took in it, and
    /// drop it or start the next window.
    #[cold]
    pub(super) fn end_window<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
    ) -> Progress {
        // The kernel announces room only once a good part of its send
        // buffer has drained, so a slow reader may have made room that no
        // writable edge reported yet: offer the backlog first, as a
        // writable edge would (a failed write just clears `writable`
        // again), so that room counts in this window. Should that resume
        // reading, one read is enough here: `More` queues the rest.
        let p = self.on_writable(io, sh, 1);
        if p == Progress::Done || self.clock == 0 || self.lingering {
            return p;
        }
        let window = sh.now.saturating_sub(self.clock);
        let need = (sh.min_drain_rate.saturating_mul(window) / 1000).max(1);
        let took = self.backlog.drained();
        if took < need {
            log::debug!(
                "peer read {took} B in {window} ms (below the minimum drain rate); dropping it"
            );
            sh.metrics.slow_readers_dropped += 1;
            return Progress::Done;
        }
        self.clock = sh.now;
        self.backlog.new_window();
        p
    }
}
