//! Pushing from anywhere: the thread-safe [`Handle`], each loop's inbox,
//! prepared (encoded-once) messages, topics and timers.
//!
//! Invariants: all of a loop's push state ([`Local`]) belongs to that loop
//! and is touched only on its thread; other threads reach it only through
//! the loop's bounded inbox. What is kept per connection (a timer, topics)
//! is kept in maps by slot and only for connections that use it, so an
//! idle connection that uses none costs nothing more. Everything a loop
//! keeps for a connection is dropped when the connection is released.

mod handle;
mod inbox;
mod live;
mod prepared;
mod timers;
mod topics;

use std::time::Duration;

pub use handle::Handle;
pub(crate) use inbox::{Command, Inbox, Mailbox};
pub(crate) use live::Live;
pub use prepared::{Prepared, Topic};
pub(crate) use timers::{Tick, Timers};
pub(crate) use topics::Topics;

use crate::conn::{millis, Millis};

/// What a push does to a connection whose unsent bytes are past the push
/// limit ([`Config::push_backlog`](crate::Config::push_backlog)) when it
/// arrives: a slow subscriber. The publisher never waits either way, and
/// neither do the other subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowPolicy {
    /// Skip the message for that connection, and count it
    /// (`zerows_pushes_skipped_total`).
    #[default]
    Skip,
    /// Close the connection with this code: 1008 (policy violation) or
    /// 1013 (try again later) are the usual ones.
    Close(u16),
}

/// One loop's push state, lent to callbacks through their context.
pub struct Local {
    pub handle: Handle,
    pub(crate) topics: Topics,
    pub(crate) timers: Timers,
    /// A callback set or cancelled its connection's timer: the loop must
    /// look at that connection's deadline again.
    pub timer_touched: bool,
    pub(crate) tick: Tick,
    pub index: usize,
    /// Broadcasts from this loop's tick, applied when it returns.
    pub(crate) queued: Vec<Command>,
}

impl Local {
    pub(crate) fn new(handle: Handle) -> Local {
        Local {
            handle,
            topics: Topics::default(),
            timers: Timers::default(),
            timer_touched: false,
            tick: Tick::default(),
            index: 0,
            queued: Vec::new(),
        }
    }
}

impl Default for Local {
    fn default() -> Self {
        Local::new(Handle::new(1))
    }
}

/// A period in ms, at least 1.
pub(crate) fn period(d: Duration) -> Millis {
    millis(d).max(1)
}

/// One event loop, as [`Service::started`](crate::Service::started) and
/// [`Service::tick`](crate::Service::tick) see it.
pub struct Loop<'a> {
    pub(crate) local: &'a mut Local,
    pub(crate) now: Millis,
}

impl Loop<'_> {
    /// This loop's index (0 to the number of loops minus one).
    pub fn index(&self) -> usize {
        self.local.index
    }

    /// The loop's clock (see [`Context::now`](crate::Context::now)).
    pub fn now(&self) -> Millis {
        self.now
    }

    /// The handle of the server this loop belongs to.
    pub fn handle(&self) -> &Handle {
        &self.local.handle
    }

    /// Call [`Service::tick`](crate::Service::tick) every `period` from
    /// now on (replacing any tick already set).
    pub fn tick_every(&mut self, every: Duration) {
        let every = period(every);
        self.local.tick = Tick {
            at: self.now + every,
            every,
        };
    }

    /// Stop the tick.
    pub fn cancel_tick(&mut self) {
        self.local.tick = Tick::default();
    }

    /// Send `msg` to every open connection of this loop (the handle's
    /// [`broadcast`](Handle::broadcast) reaches every loop), once the
    /// callback returns.
    pub fn broadcast(&mut self, msg: &Prepared) {
        self.local.queued.push(Command::Broadcast(msg.clone()));
    }

    /// Send `msg` to the subscribers of `topic` on this loop, once the
    /// callback returns (and, with a [bus](crate::Builder::bus), to those
    /// of every other instance).
    pub fn publish(&mut self, topic: &Topic, msg: &Prepared) {
        if let Some(bus) = self.local.handle.bus() {
            bus.offer(topic, msg);
        }
        self.local
            .queued
            .push(Command::Publish(topic.clone(), msg.clone(), None));
    }
}
