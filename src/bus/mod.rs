//! Topics across instances: publishes cross a broker (Redis pub/sub), so
//! the subscribers of a topic on every instance get them.
//!
//! Invariants:
//! * The loops never touch the network for the bus. A publish is
//!   delivered locally as before, and offered to the bus's outgoing queue
//!   (bounded in messages and bytes; a refused offer is counted and
//!   dropped, never waited for). Two threads of the bus's own hold the
//!   links: one publishes what the queue holds, one subscribes and hands
//!   what arrives to the loops through the [`Handle`], like any push.
//! * Each instance subscribes once per topic that has a local subscriber
//!   ([`interest`]), whatever the number of loops or subscribers.
//! * Each message reaches each subscriber once: the publishing instance
//!   delivers it itself when it is published, and drops the copy the
//!   broker sends back (the envelope names its origin, [`envelope`]).
//! * Delivery across instances is at most once, as Redis pub/sub's is;
//!   order is kept per publisher and topic (one queue, one link, one
//!   subscriber link per instance). While a link is down, publishes are
//!   counted and dropped, local delivery goes on, and the links reconnect
//!   with backoff and subscribe to everything again.

mod envelope;
mod interest;
#[cfg(feature = "redis")]
mod redis;
mod stats;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

pub(crate) use interest::Interest;
pub(crate) use stats::{Drop, Stats};

use crate::push::{Handle, Prepared, Topic};

/// Where and how an instance meets the others (see
/// [`Builder::bus`](crate::Builder::bus)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusConfig {
    /// The broker: `redis://host:port[/db]` (a password as
    /// `redis://:password@host:port`).
    pub url: String,
    /// Put before a topic's name to make its channel on the broker, so
    /// several applications can share one broker.
    pub prefix: String,
    /// Messages the outgoing queue holds; past it publishes are dropped
    /// and counted (`zerows_bus_dropped_total{reason="full"}`).
    pub queue_messages: usize,
    /// Payload bytes the outgoing queue holds; the same.
    pub queue_bytes: usize,
}

impl BusConfig {
    /// The broker at `url`, with the default prefix (`zerows:`) and queue.
    pub fn new(url: &str) -> BusConfig {
        BusConfig {
            url: url.to_owned(),
            prefix: "zerows:".to_owned(),
            queue_messages: 8192,
            queue_bytes: 16 << 20,
        }
    }

    /// Check the URL and the queue's bounds.
    pub fn validate(&self) -> Result<(), String> {
        if !self.url.starts_with("redis://") {
            return Err(format!(
                "bus URL {:?}: only redis://host:port[/db] is supported",
                self.url
            ));
        }
        if self.queue_messages == 0 || self.queue_bytes == 0 {
            return Err("the bus queue must hold at least one message".into());
        }
        Ok(())
    }
}

/// A publish waiting for the link to the broker.
pub(crate) struct Outgoing {
    topic: Topic,
    msg: Prepared,
}

impl Outgoing {
    /// What it counts against the queue's byte bound.
    fn cost(&self) -> usize {
        self.msg.payload().len() + self.topic.name().len() + envelope::HEAD
    }
}

/// The bus of one instance, shared by its handle, loops and bus threads.
pub(crate) struct Bus {
    /// This instance, in the envelopes it publishes.
    origin: u64,
    prefix: Box<str>,
    url: Box<str>,
    max_message: usize,
    pub interest: Interest,
    pub stats: Stats,
    tx: SyncSender<Outgoing>,
    queued_bytes: AtomicUsize,
    queue_bytes: usize,
    stop: AtomicBool,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Bus {
    fn new(c: &BusConfig, max_message: usize, origin: u64) -> (Bus, Receiver<Outgoing>) {
        let (tx, rx) = sync_channel(c.queue_messages);
        let bus = Bus {
            origin,
            prefix: c.prefix.as_str().into(),
            url: c.url.as_str().into(),
            max_message,
            interest: Interest::default(),
            stats: Stats::default(),
            tx,
            queued_bytes: AtomicUsize::new(0),
            queue_bytes: c.queue_bytes,
            stop: AtomicBool::new(false),
        };
        (bus, rx)
    }

    /// Queue a publish for the other instances; never waits.
    pub fn offer(&self, topic: &Topic, msg: &Prepared) {
        if msg.payload().len() > self.max_message {
            return self.stats.dropped(Drop::TooLarge);
        }
        if !self.stats.pub_up.load(Ordering::Relaxed) {
            return self.stats.dropped(Drop::Down);
        }
        let out = Outgoing {
            topic: topic.clone(),
            msg: msg.clone(),
        };
        let cost = out.cost();
        let before = self.queued_bytes.fetch_add(cost, Ordering::AcqRel);
        if before + cost > self.queue_bytes {
            self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
            return self.stats.dropped(Drop::Full);
        }
        if let Err(e) = self.tx.try_send(out) {
            self.queued_bytes.fetch_sub(cost, Ordering::AcqRel);
            self.stats.dropped(match e {
                TrySendError::Full(_) => Drop::Full,
                TrySendError::Disconnected(_) => Drop::Down,
            });
        }
    }

    /// The publisher took `out` off the queue.
    fn taken(&self, out: &Outgoing) {
        self.queued_bytes.fetch_sub(out.cost(), Ordering::AcqRel);
    }

    /// Drop what the queue holds (the link is down), counting it.
    fn discard(&self, rx: &Receiver<Outgoing>) {
        let mut n = 0;
        while let Ok(out) = rx.try_recv() {
            self.taken(&out);
            n += 1;
        }
        self.stats.dropped_n(Drop::Down, n);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The channel of `topic` on the broker.
    fn channel(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// The topic of a channel on the broker, if it is one of ours.
    fn topic_of<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel.strip_prefix(&*self.prefix)
    }

    /// Hand a message from the broker to the loops, or count why not (our
    /// own publishes coming back are skipped uncounted).
    fn arrived(&self, handle: &Handle, channel: &str, bytes: &[u8]) {
        let (Some(topic), Ok(e)) = (self.topic_of(channel), envelope::decode(bytes)) else {
            return self.stats.dropped(Drop::Malformed);
        };
        if e.origin == self.origin {
            // Delivered here when it was published.
            return;
        }
        if e.payload.len() > self.max_message {
            return self.stats.dropped(Drop::TooLarge);
        }
        let msg = Prepared::new(e.kind, e.payload);
        match handle.deliver(&Topic::new(topic), &msg) {
            Ok(()) => {
                self.stats.received.fetch_add(1, Ordering::Relaxed);
            }
            Err(crate::PushError::Full) => self.stats.dropped(Drop::Inbox),
            // Stopping: nobody to deliver to.
            Err(_) => {}
        }
    }
}

/// A running bus: its threads, stopped and joined after the loops.
#[derive(Debug)]
pub(crate) struct Running {
    bus: Arc<Bus>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    pub fn stop_and_join(self) {
        self.bus.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Start the bus of the server `handle` reaches: from now on its
/// publishes cross the broker. Call before the loops attach, so their
/// topics report to the bus.
pub(crate) fn start(c: &BusConfig, max_message: usize, handle: &Handle) -> io::Result<Running> {
    c.validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let origin = {
        use rand::Rng;
        rand::make_rng::<rand::rngs::StdRng>().next_u64()
    };
    let (bus, rx) = Bus::new(c, max_message, origin);
    let bus = Arc::new(bus);
    let threads = spawn(&bus, rx, handle)?;
    handle.set_bus(bus.clone());
    Ok(Running { bus, threads })
}

#[cfg(feature = "redis")]
fn spawn(
    bus: &Arc<Bus>,
    rx: Receiver<Outgoing>,
    handle: &Handle,
) -> io::Result<Vec<JoinHandle<()>>> {
    redis::spawn(bus, rx, handle)
}

#[cfg(not(feature = "redis"))]
fn spawn(_: &Arc<Bus>, _: Receiver<Outgoing>, _: &Handle) -> io::Result<Vec<JoinHandle<()>>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "zerows was built without the \"redis\" feature: no bus",
    ))
}

#[cfg(test)]
mod tests;
