//! What reaches a session from outside its socket's events: pushes (a
//! handle's sends, publishes, broadcasts), a handle's close, and the
//! connection's timer.
//!
//! Invariants: a pushed message goes out whole and in order, after what
//! the connection already owes and never inside an echo under way (held
//! by the core until the echo's last frame); a connection is slow, and
//! meets the slow policy, only when its backlog is past the push limit as
//! a message comes to be written.

use super::{Progress, Session, Shared, Transport, Wire};
use crate::conn::State;
use crate::context::{Sink, MAX_PARTS};
use crate::events::Events;
use crate::push::{Prepared, SlowPolicy};
use crate::service::Service;

impl<St> Session<St> {
    /// Close from our side with `code` and `reason`, as a service would
    /// (a handle's close).
    pub fn close_with<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
        code: u16,
        reason: &str,
    ) -> Progress {
        self.act(io, sh, |c, tx, s, h, now| {
            c.callback(tx, s, h, now, |_, cx| {
                let _ = cx.close(code, reason);
            })
        })
    }

    /// The connection's timer is due: run the service's callback.
    pub fn on_timer<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
    ) -> Progress {
        self.act(io, sh, |c, tx, s, h, now| {
            c.callback(tx, s, h, now, |h, cx| h.timer(cx))
        })
    }

    /// Write messages pushed from outside the connection's callbacks (a
    /// handle's sends, publishes, broadcasts; `get` finds each one's
    /// prepared frame), in order, straight from their shared bytes: the
    /// backlog and up to `MAX_PARTS + 1` frames per `writev`, and only what
    /// the socket does not take is copied. A connection not open takes
    /// nothing. The messages that would take its unsent bytes past the push
    /// limit (or the backlog limit) meet the slow policy.
    pub fn push_all<T: Transport, S: Service<State = St>, M>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
        msgs: &[M],
        get: impl Fn(&M) -> &Prepared,
    ) -> Progress {
        if self.state.is_none() || self.core.state() != State::Open {
            return Progress::Idle;
        }
        // A connection is slow when its backlog is past the push limit as
        // a message comes to be written: messages of the same batch that
        // the socket takes do not make it slow. The backlog limit bounds
        // its memory in every case.
        let mut taken = 0;
        if self.core.is_echoing() {
            // Held behind the echo by the core, like a callback's sends
            // (which the backlog limit bounds).
            if self.backlog.len() <= sh.push_limit {
                taken = msgs.len();
            }
            let r = self.run_core(io, sh, |c, tx, s, h, now| {
                c.callback(tx, s, h, now, |_, cx| {
                    for m in &msgs[..taken] {
                        let _ = cx.send_prepared(get(m));
                    }
                })
            });
            if r.is_err() {
                return Progress::Done;
            }
        } else {
            sh.out.clear();
            let mut wire = Wire::new(
                io,
                &mut self.backlog,
                &mut sh.write_pool,
                &mut self.writable,
                &mut self.clock,
                sh.now,
            );
            let mut sent = crate::context::Sent::default();
            let mut r = Ok(());
            while taken < msgs.len() && r.is_ok() {
                let mut unsent = wire.unsent();
                if unsent > sh.push_limit {
                    break;
                }
                let mut frames: [&[u8]; MAX_PARTS + 1] = [&[]; MAX_PARTS + 1];
                let mut k = 0;
                for m in &msgs[taken..(taken + frames.len()).min(msgs.len())] {
                    let msg = get(m);
                    let n = msg.frame().len();
                    if unsent + n > sh.max_backlog {
                        break;
                    }
                    unsent += n;
                    frames[k] = msg.frame();
                    sent.messages += 1;
                    sent.bytes += msg.payload().len() as u64;
                    k += 1;
                }
                if k == 0 {
                    break;
                }
                r = wire.send(&sh.out, &[], &frames[..k]);
                taken += k;
            }
            wire.account(&mut sh.metrics, sent);
            if r.is_err() {
                return Progress::Done;
            }
        }
        sh.metrics.pushes += taken as u64;
        let over = &msgs[taken..];
        if !over.is_empty() {
            match sh.slow {
                SlowPolicy::Skip => sh.metrics.pushes_skipped += over.len() as u64,
                SlowPolicy::Close(code) => return self.close(io, sh, code),
            }
        }
        self.after_io(io, sh, Progress::Idle)
    }
}
