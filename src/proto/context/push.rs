//! What a callback can do beyond its own connection's output: topics,
//! publishing, timers, and the handle that reaches every loop. All of it
//! needs the loop around the core; with none (the core driven alone, as in
//! unit tests) these report that nothing was done.

use std::time::Duration;

use super::Context;
use crate::error::PushError;
use crate::push::{period, Handle, Prepared, Topic};
use crate::service::Message;

impl Context<'_> {
    /// The handle of the server, to keep (a clone) and push from anywhere.
    pub fn handle(&self) -> Option<&Handle> {
        self.local.as_deref().map(|l| &l.handle)
    }

    /// Subscribe this connection to `topic`. Returns false if it already
    /// was (or there is no loop). Subscriptions end with the connection.
    pub fn subscribe(&mut self, topic: &str) -> bool {
        let slot = self.id.slot();
        self.local
            .as_deref_mut()
            .is_some_and(|l| l.topics.subscribe(topic, None, slot))
    }

    /// Unsubscribe this connection from `topic`. Returns false if it was
    /// not subscribed.
    pub fn unsubscribe(&mut self, topic: &str) -> bool {
        let slot = self.id.slot();
        self.local
            .as_deref_mut()
            .is_some_and(|l| l.topics.unsubscribe(topic, slot))
    }

    /// Publish `msg` to every subscriber of `topic` on every loop (this
    /// connection too, if it subscribes). It goes out once this loop turn's
    /// events are handled. Encodes the frame once (one allocation); use
    /// [`publish_prepared`](Self::publish_prepared) to reuse one.
    pub fn publish(&mut self, topic: &str, msg: Message<'_>) -> Result<(), PushError> {
        let msg = match msg {
            Message::Text(t) => Prepared::text(t),
            Message::Binary(b) => Prepared::binary(b),
        };
        self.publish_prepared(&Topic::new(topic), &msg)
    }

    /// [`publish`](Self::publish) a prepared message to a prepared topic:
    /// nothing is allocated.
    pub fn publish_prepared(&mut self, topic: &Topic, msg: &Prepared) -> Result<(), PushError> {
        match self.handle() {
            Some(h) => h.publish(topic, msg),
            None => Err(PushError::Stopped),
        }
    }

    /// Publish `msg` to every subscriber of `topic` on every loop but this
    /// connection (as uWebSockets' `ws.publish` does).
    pub fn publish_others(&mut self, topic: &Topic, msg: &Prepared) -> Result<(), PushError> {
        let id = self.id;
        match self.handle() {
            Some(h) => h.publish_except(topic, msg, id),
            None => Err(PushError::Stopped),
        }
    }

    /// Call [`Service::timer`](crate::Service::timer) for this connection
    /// once, `after` from now. A connection has one timer: this replaces
    /// any set before. Returns false if there is no loop.
    pub fn timer_after(&mut self, after: Duration) -> bool {
        self.set_timer(crate::conn::millis(after), 0)
    }

    /// Call [`Service::timer`](crate::Service::timer) for this connection
    /// every `every` (at least 1 ms), first `every` from now. Replaces any
    /// timer set before.
    pub fn timer_every(&mut self, every: Duration) -> bool {
        let p = period(every);
        self.set_timer(p, p)
    }

    /// Cancel this connection's timer, if any.
    pub fn cancel_timer(&mut self) {
        let id = self.id;
        if let Some(l) = self.local.as_deref_mut() {
            l.timers.cancel(id);
            l.timer_touched = true;
        }
    }

    fn set_timer(&mut self, after: crate::conn::Millis, every: crate::conn::Millis) -> bool {
        let (id, now) = (self.id, self.now);
        let Some(l) = self.local.as_deref_mut() else {
            return false;
        };
        l.timers.set(id, now + after, every);
        l.timer_touched = true;
        true
    }
}
