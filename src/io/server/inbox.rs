//! Carrying out pushes: the inbox, the loop's own queued commands, the
//! tick, and fan-out.
//!
//! Invariants:
//! * The inbox is emptied at the end of every turn, after the turn's I/O,
//!   at most `INBOX_BUDGET` commands a turn (then the next poll does not
//!   block), so a push is written in the turn that woke for it.
//! * A command names a connection by its full id and is dropped if that
//!   connection is gone.
//! * Messages for connections (sends, publishes, broadcasts) are staged,
//!   not written at once: at the end of the drain (or when `STAGE_LIMIT`
//!   entries are waiting, or before a close) they are sorted by
//!   connection, keeping their order, and each connection gets one
//!   `writev` of its backlog and all its frames, straight from the shared
//!   bytes. Many pushes to one connection in a turn cost one system call.
//! * Nothing is written to a connection between staging and flushing
//!   (session I/O happens before the drain), so a staged slot still names
//!   the connection it was staged for; a close flushes first, so it
//!   follows what was pushed before it.

use super::Server;
use crate::conn_id::ConnId;
use crate::push::{Command, Loop, Prepared};
use crate::service::Service;

/// Most inbox commands one turn carries out.
const INBOX_BUDGET: usize = 4096;
/// Staged messages that make a flush before the drain ends: bounds the
/// stage's memory whatever the fan-out.
const STAGE_LIMIT: usize = 1 << 16;

/// A message for one connection, waiting for the end of the drain.
pub(super) struct Staged {
    key: u32,
    /// Staging order, to keep each connection's messages in order.
    seq: u32,
    msg: Prepared,
}

impl<S: Service> Server<S> {
    /// The service's loop-wide tick, when due.
    pub(super) fn run_tick(&mut self) {
        let now = self.shared.now;
        if !self.shared.local.tick.fire(now) {
            return;
        }
        let mut lp = Loop {
            local: &mut self.shared.local,
            now,
        };
        self.shared.service.tick(&mut lp);
        self.run_queued();
    }

    /// Carry out what a tick (or `started`) queued for this loop.
    pub(super) fn run_queued(&mut self) {
        if self.shared.local.queued.is_empty() {
            return;
        }
        let mut queued = std::mem::take(&mut self.shared.local.queued);
        for cmd in queued.drain(..) {
            self.apply(cmd);
        }
        self.shared.local.queued = queued;
        self.flush_staged();
    }

    /// Carry out what the inbox holds, up to the turn's budget.
    pub(super) fn run_inbox(&mut self) {
        self.inbox.turn_ends();
        self.inbox_more = true;
        for _ in 0..INBOX_BUDGET {
            let Some(cmd) = self.inbox.next() else {
                self.inbox_more = false;
                break;
            };
            self.apply(cmd);
        }
        self.flush_staged();
    }

    /// The slot of the connection `id` names, if it is still there.
    fn slot_of(&self, id: ConnId) -> Option<usize> {
        let key = id.slot();
        let e = self.conns.get(key)?;
        (e.session.core().id() == id).then_some(key)
    }

    fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Send(id, msg) => {
                if let Some(key) = self.slot_of(id) {
                    self.stage(key, msg);
                }
            }
            Command::Close(id, code, reason) => {
                if let Some(key) = self.slot_of(id) {
                    self.flush_staged();
                    let e = &mut self.conns[key];
                    let p = e.session.close_with(
                        &mut super::io(&mut self.uring, key, &mut e.stream),
                        &mut self.shared,
                        code,
                        &reason,
                    );
                    self.schedule(key, p);
                }
            }
            Command::Subscribe(id, topic) => {
                if let Some(key) = self.slot_of(id) {
                    let t = &mut self.shared.local.topics;
                    t.subscribe(topic.name(), Some(topic.shared()), key);
                }
            }
            Command::Unsubscribe(id, topic) => {
                if let Some(key) = self.slot_of(id) {
                    self.shared.local.topics.unsubscribe(topic.name(), key);
                }
            }
            Command::Publish(topic, msg, except) => {
                let skip = except.and_then(|id| self.slot_of(id)).map(|k| k as u32);
                let members = self.shared.local.topics.members(topic.name());
                for &slot in members.iter().filter(|&&s| Some(s) != skip) {
                    let seq = self.staged.len() as u32;
                    self.staged.push(Staged {
                        key: slot,
                        seq,
                        msg: msg.clone(),
                    });
                }
                self.flush_if_full();
            }
            Command::Broadcast(msg) => {
                for key in 0..self.conns.capacity() {
                    if self.conns.contains(key) {
                        self.stage(key, msg.clone());
                    }
                }
                self.flush_if_full();
            }
        }
    }

    fn stage(&mut self, key: usize, msg: Prepared) {
        let seq = self.staged.len() as u32;
        self.staged.push(Staged {
            key: key as u32,
            seq,
            msg,
        });
        self.flush_if_full();
    }

    fn flush_if_full(&mut self) {
        if self.staged.len() >= STAGE_LIMIT {
            self.flush_staged();
        }
    }

    /// Write every staged message: one `writev` per connection (or a few,
    /// for many messages), in staging order.
    fn flush_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let mut staged = std::mem::take(&mut self.staged);
        // Unstable sort on (connection, order): no allocation, and each
        // connection's messages stay in the order they were staged.
        staged.sort_unstable_by_key(|s| (s.key, s.seq));
        for group in staged.chunk_by(|a, b| a.key == b.key) {
            let key = group[0].key as usize;
            let Some(e) = self.conns.get_mut(key) else {
                continue;
            };
            let p = e.session.push_all(
                &mut super::io(&mut self.uring, key, &mut e.stream),
                &mut self.shared,
                group,
                |s| &s.msg,
            );
            self.schedule(key, p);
        }
        staged.clear();
        self.staged = staged;
    }
}
