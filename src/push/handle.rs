//! The handle: how any thread acts on connections of running loops.
//!
//! Invariants: a handle holds the mailbox of every loop of one server,
//! each filled in once, when its loop is made; a connection id names its
//! loop (serial modulo the number of loops, see `conn_id`), so a push to
//! one connection goes to that loop's inbox only, and a publish or
//! broadcast goes to every loop's. Nothing here blocks or grows without
//! bound: a full inbox is an error for the caller to handle.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use super::inbox::{Command, Mailbox};
use super::prepared::{Prepared, Topic};
use crate::bus::Bus;
use crate::conn_id::ConnId;
use crate::error::{close_code, PushError};
use crate::frame;

/// Acts on a running server from any thread: sends to one connection,
/// closes it, subscribes it to topics, publishes, broadcasts, stops.
///
/// `Clone + Send + Sync`; every clone reaches the same loops. Each call
/// queues a command for the loop that owns the connection (or for every
/// loop) and wakes it at once; the loop writes it in that same turn. Pushes
/// from one thread to one connection arrive in the order they were made.
/// No call blocks: a full inbox, an id with no open connection, or a
/// stopped server is an error ([`PushError`](crate::PushError)).
#[derive(Clone)]
pub struct Handle {
    hub: Arc<Hub>,
}

struct Hub {
    loops: Box<[OnceLock<Mailbox>]>,
    /// Set once, before the loops start, if publishes cross instances.
    bus: OnceLock<Arc<Bus>>,
}

impl Handle {
    /// A handle for `loops` loops, none of them there yet.
    pub(crate) fn new(loops: usize) -> Handle {
        Handle {
            hub: Arc::new(Hub {
                loops: (0..loops.max(1)).map(|_| OnceLock::new()).collect(),
                bus: OnceLock::new(),
            }),
        }
    }

    /// Loop `index` is ready to take commands.
    pub(crate) fn register(&self, index: usize, mailbox: Mailbox) {
        let _ = self.hub.loops[index].set(mailbox);
    }

    /// Publishes cross `bus` from now on.
    pub(crate) fn set_bus(&self, bus: Arc<Bus>) {
        let _ = self.hub.bus.set(bus);
    }

    /// The bus publishes cross, if any.
    pub(crate) fn bus(&self) -> Option<&Arc<Bus>> {
        self.hub.bus.get()
    }

    /// How many loops this handle reaches.
    pub fn loops(&self) -> usize {
        self.hub.loops.len()
    }

    fn mailbox(&self, id: ConnId) -> Result<&Mailbox, PushError> {
        let i = (id.serial() % self.hub.loops.len() as u64) as usize;
        let mb = self.hub.loops[i].get().ok_or(PushError::Closed)?;
        if mb.stop.load(Ordering::Relaxed) {
            return Err(PushError::Stopped);
        }
        if !mb.live.is_open(id) {
            return Err(PushError::Closed);
        }
        Ok(mb)
    }

    fn to_one(&self, id: ConnId, cmd: Command) -> Result<(), PushError> {
        self.mailbox(id)?.post(cmd)
    }

    /// `cmd()` to every loop; an error if any loop did not take it.
    fn to_all(&self, cmd: impl Fn() -> Command) -> Result<(), PushError> {
        let mut result = Ok(());
        let mut any = false;
        for mb in self.hub.loops.iter().filter_map(OnceLock::get) {
            any = true;
            if let Err(e) = mb.post(cmd()) {
                // Full outranks Stopped: the caller may retry.
                if result != Err(PushError::Full) {
                    result = Err(e);
                }
            }
        }
        if !any {
            return Err(PushError::Stopped);
        }
        result
    }

    /// Send `msg` to connection `id`. Cheap to repeat: the message's frame
    /// is shared, not copied.
    pub fn send(&self, id: ConnId, msg: &Prepared) -> Result<(), PushError> {
        self.to_one(id, Command::Send(id, msg.clone()))
    }

    /// Send a text message to connection `id`.
    pub fn send_text(&self, id: ConnId, text: &str) -> Result<(), PushError> {
        // Refuse before encoding: no allocation for a dead id.
        let mb = self.mailbox(id)?;
        mb.post(Command::Send(id, Prepared::text(text)))
    }

    /// Send a binary message to connection `id`.
    pub fn send_binary(&self, id: ConnId, data: &[u8]) -> Result<(), PushError> {
        let mb = self.mailbox(id)?;
        mb.post(Command::Send(id, Prepared::binary(data)))
    }

    /// Close connection `id` with `code` and `reason` (at most 123 bytes;
    /// codes as for [`Context::close`](crate::Context::close)).
    pub fn close(&self, id: ConnId, code: u16, reason: &str) -> Result<(), PushError> {
        if !close_code::is_sendable(code) || reason.len() > frame::MAX_CONTROL_PAYLOAD - 2 {
            return Err(PushError::Refused);
        }
        let mb = self.mailbox(id)?;
        mb.post(Command::Close(id, code, reason.into()))
    }

    /// Subscribe connection `id` to `topic`.
    pub fn subscribe(&self, id: ConnId, topic: &Topic) -> Result<(), PushError> {
        self.to_one(id, Command::Subscribe(id, topic.clone()))
    }

    /// Unsubscribe connection `id` from `topic`.
    pub fn unsubscribe(&self, id: ConnId, topic: &Topic) -> Result<(), PushError> {
        self.to_one(id, Command::Unsubscribe(id, topic.clone()))
    }

    /// Send `msg` to every connection subscribed to `topic`, on every loop
    /// (and, with a [bus](crate::Builder::bus), on every instance). The
    /// frame is encoded once and shared by all of them. `Err(Full)`: at
    /// least one loop's inbox was full and its subscribers miss it. What
    /// the bus does not take is counted in its metrics, not reported here.
    pub fn publish(&self, topic: &Topic, msg: &Prepared) -> Result<(), PushError> {
        if let Some(bus) = self.bus() {
            bus.offer(topic, msg);
        }
        self.deliver(topic, msg)
    }

    /// Send `msg` to the subscribers of `topic` on this instance only.
    pub(crate) fn deliver(&self, topic: &Topic, msg: &Prepared) -> Result<(), PushError> {
        self.to_all(|| Command::Publish(topic.clone(), msg.clone(), None))
    }

    /// [`publish`](Self::publish) to every subscriber but connection
    /// `except` (as uWebSockets' `ws.publish` leaves out its sender).
    pub fn publish_except(
        &self,
        topic: &Topic,
        msg: &Prepared,
        except: ConnId,
    ) -> Result<(), PushError> {
        if let Some(bus) = self.bus() {
            bus.offer(topic, msg);
        }
        self.to_all(|| Command::Publish(topic.clone(), msg.clone(), Some(except)))
    }

    /// [`publish`](Self::publish) a text message (allocates the topic
    /// name and the frame once).
    pub fn publish_text(&self, topic: &str, text: &str) -> Result<(), PushError> {
        self.publish(&Topic::new(topic), &Prepared::text(text))
    }

    /// Send `msg` to every open connection, on every loop of this
    /// instance (a broadcast does not cross the bus: publish to a topic
    /// every connection subscribes to for that).
    pub fn broadcast(&self, msg: &Prepared) -> Result<(), PushError> {
        self.to_all(|| Command::Broadcast(msg.clone()))
    }

    /// [`broadcast`](Self::broadcast) a text message.
    pub fn broadcast_text(&self, text: &str) -> Result<(), PushError> {
        self.broadcast(&Prepared::text(text))
    }

    /// Ask every loop to stop (gracefully, as [`Stopper::stop`](crate::Stopper::stop));
    /// returns at once. Later pushes fail with `Stopped`.
    pub fn stop(&self) {
        for mb in self.hub.loops.iter().filter_map(OnceLock::get) {
            mb.stop.store(true, Ordering::SeqCst);
            let _ = mb.waker.wake();
        }
    }

    /// Whether every loop has been asked to stop.
    pub fn is_stopped(&self) -> bool {
        self.hub
            .loops
            .iter()
            .filter_map(OnceLock::get)
            .all(|mb| mb.stop.load(Ordering::Relaxed))
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("loops", &self.hub.loops.len())
            .finish()
    }
}
