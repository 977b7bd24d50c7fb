//! A loop's inbox: what other threads (and the loop's own callbacks) ask
//! of its connections.
//!
//! Invariants: the inbox is a bounded channel, so a loop that falls behind
//! makes pushes fail with `Full` rather than grow a queue. `pending` says
//! a wake-up is already owed: a sender wakes the loop (a `Waker` write,
//! one syscall) only when it sets `pending` from false, and the loop holds
//! it true for the whole of a turn and clears it just before it empties
//! the inbox, so a command sent at any moment is seen in the current turn
//! or wakes the next. One channel per loop keeps every sender's commands
//! to one connection in order.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use mio::Waker;

use super::live::Live;
use super::prepared::{Prepared, Topic};
use crate::conn_id::ConnId;
use crate::error::PushError;

/// One request to a loop.
pub(crate) enum Command {
    /// Send a message to one connection.
    Send(ConnId, Prepared),
    /// Close one connection with a code and reason.
    Close(ConnId, u16, Box<str>),
    Subscribe(ConnId, Topic),
    Unsubscribe(ConnId, Topic),
    /// Send to every subscriber of the topic on this loop, but the
    /// connection named (the publisher, when it asks not to hear itself).
    Publish(Topic, Prepared, Option<ConnId>),
    /// Send to every open connection of this loop.
    Broadcast(Prepared),
}

/// The sending side of one loop's inbox, shared by every handle.
pub(crate) struct Mailbox {
    pub tx: SyncSender<Command>,
    pub waker: Arc<Waker>,
    pub pending: Arc<AtomicBool>,
    pub stop: Arc<AtomicBool>,
    pub live: Arc<Live>,
}

impl Mailbox {
    /// Queue `cmd` and make sure the loop will see it.
    pub fn post(&self, cmd: Command) -> Result<(), PushError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(PushError::Stopped);
        }
        match self.tx.try_send(cmd) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(PushError::Full),
            Err(TrySendError::Disconnected(_)) => return Err(PushError::Stopped),
        }
        if !self.pending.swap(true, Ordering::AcqRel) {
            // A failed wake means the loop is gone; the command is then
            // dropped with the channel, as it would be by a stopped loop.
            let _ = self.waker.wake();
        }
        Ok(())
    }
}

/// The loop's side.
pub(crate) struct Inbox {
    pub rx: Receiver<Command>,
    pub pending: Arc<AtomicBool>,
}

impl Inbox {
    /// The loop is in a turn: senders need not wake it.
    pub fn turn_begins(&self) {
        self.pending.store(true, Ordering::Relaxed);
    }

    /// Called before the inbox is emptied at the end of a turn: from now
    /// on a sender must wake the loop.
    pub fn turn_ends(&self) {
        self.pending.store(false, Ordering::SeqCst);
    }

    pub fn next(&self) -> Option<Command> {
        self.rx.try_recv().ok()
    }
}
