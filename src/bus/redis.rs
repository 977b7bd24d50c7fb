//! The links to a Redis broker: one thread publishes, one subscribes.
//!
//! Invariants: each thread owns its connection; neither is ever touched by
//! a loop. The subscriber reads with a short timeout (`TICK`), so it sees
//! changes of the wanted topics and a stop within a tick; it sets the long
//! timeout (`IO`) around a command it waits an answer for, because a reply
//! that timed out would leave the connection's framing unknown. A link
//! that fails is dropped whole and made again with backoff; the new
//! subscriber link subscribes to the whole wanted set, and the publisher
//! drops (and counts) what was queued while it was down.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redis::{Client, Connection, PubSub, RedisError};

use super::envelope;
use super::interest::diff;
use super::{Bus, Outgoing};
use crate::push::Handle;

/// How long to wait for a connection, and for an answer.
const CONNECT: Duration = Duration::from_secs(2);
const IO: Duration = Duration::from_secs(5);
/// The subscriber's read timeout: how soon it applies topic changes.
const TICK: Duration = Duration::from_millis(20);
/// A subscriber link silent this long is pinged, so a broker that went
/// away without closing the connection is noticed.
const KEEPALIVE: Duration = Duration::from_secs(5);
/// Reconnect waits: the first, then doubled up to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Publishes sent in one pipeline (one write, one read of the replies).
const BATCH: usize = 256;
/// An idle publishing link is pinged this often, and at once when the
/// subscribing link has just been lost: a dead link must be found before
/// a publish is lost on it, not by it.
const IDLE_PING: Duration = Duration::from_secs(1);

pub(super) fn spawn(
    bus: &Arc<Bus>,
    rx: Receiver<Outgoing>,
    handle: &Handle,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    let client = Client::open(&*bus.url)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    let (b, c) = (bus.clone(), client.clone());
    let publisher = std::thread::Builder::new()
        .name("zerows-bus-pub".into())
        .spawn(move || publisher(&b, &c, &rx))?;
    let (b, h) = (bus.clone(), handle.clone());
    let subscriber = std::thread::Builder::new()
        .name("zerows-bus-sub".into())
        .spawn(move || subscriber(&b, &client, &h))?;
    Ok(vec![publisher, subscriber])
}

struct Backoff(Duration);

impl Backoff {
    fn new() -> Backoff {
        Backoff(BACKOFF_FIRST)
    }

    fn reset(&mut self) {
        self.0 = BACKOFF_FIRST;
    }

    /// Wait the current delay (in short steps, to see a stop); false if
    /// the bus is stopping.
    fn wait(&mut self, bus: &Bus) -> bool {
        let until = Instant::now() + self.0;
        self.0 = (self.0 * 2).min(BACKOFF_MAX);
        while Instant::now() < until {
            if bus.stopping() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        !bus.stopping()
    }
}

/// Connect, retrying with backoff; `None` once the bus is stopping.
fn connect(bus: &Bus, client: &Client, what: &str, backoff: &mut Backoff) -> Option<Connection> {
    let mut logged = false;
    loop {
        if bus.stopping() {
            return None;
        }
        match client.get_connection_with_timeout(CONNECT) {
            Ok(c) => {
                backoff.reset();
                return Some(c);
            }
            Err(e) => {
                if !logged {
                    log::warn!(
                        "bus: cannot connect the {what} link to {}: {e}; retrying",
                        bus.url
                    );
                    logged = true;
                }
                if !backoff.wait(bus) {
                    return None;
                }
            }
        }
    }
}

fn publisher(bus: &Bus, client: &Client, rx: &Receiver<Outgoing>) {
    let mut backoff = Backoff::new();
    while let Some(mut con) = connect(bus, client, "publishing", &mut backoff) {
        let _ = con.set_write_timeout(Some(IO));
        let _ = con.set_read_timeout(Some(IO));
        bus.stats.pub_up.store(true, Ordering::Relaxed);
        log::info!("bus: publishing to {}", bus.url);
        let failed = publish(bus, rx, &mut con);
        bus.stats.pub_up.store(false, Ordering::Relaxed);
        match failed {
            Some(e) => {
                bus.stats.outages.fetch_add(1, Ordering::Relaxed);
                log::warn!("bus: publishing link lost: {e}");
                bus.discard(rx);
            }
            None => break,
        }
    }
    bus.discard(rx);
}

/// Send what the queue holds until the link fails (the error) or the bus
/// stops (`None`).
fn publish(bus: &Bus, rx: &Receiver<Outgoing>, con: &mut Connection) -> Option<RedisError> {
    let mut batch: Vec<Outgoing> = Vec::with_capacity(BATCH);
    let mut env = Vec::new();
    let mut used = Instant::now();
    let mut outages = bus.stats.outages.load(Ordering::Relaxed);
    loop {
        if bus.stopping() {
            return None;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(out) => batch.push(out),
            Err(RecvTimeoutError::Timeout) => {
                let now = bus.stats.outages.load(Ordering::Relaxed);
                if now != outages || used.elapsed() >= IDLE_PING {
                    outages = now;
                    used = Instant::now();
                    if let Err(e) = redis::cmd("PING").query::<()>(con) {
                        return Some(e);
                    }
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return None,
        }
        used = Instant::now();
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(out) => batch.push(out),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        for out in &batch {
            bus.taken(out);
            envelope::encode(bus.origin, out.msg.kind(), out.msg.payload(), &mut env);
            pipe.cmd("PUBLISH")
                .arg(bus.channel(out.topic.name()))
                .arg(&env[..])
                .ignore();
        }
        let n = batch.len() as u64;
        batch.clear();
        if let Err(e) = pipe.query::<()>(con) {
            bus.stats.dropped_n(super::Drop::Down, n);
            return Some(e);
        }
        bus.stats.published.fetch_add(n, Ordering::Relaxed);
    }
}

fn subscriber(bus: &Bus, client: &Client, handle: &Handle) {
    let mut backoff = Backoff::new();
    while let Some(mut con) = connect(bus, client, "subscribing", &mut backoff) {
        let failed = listen(bus, handle, &mut con);
        bus.stats.sub_up.store(false, Ordering::Relaxed);
        bus.stats.subscriptions.store(0, Ordering::Relaxed);
        match failed {
            Some(e) => {
                bus.stats.outages.fetch_add(1, Ordering::Relaxed);
                log::warn!("bus: subscribing link lost: {e}");
            }
            None => break,
        }
    }
}

/// Run one answered command with the long timeout.
fn answered<T>(
    ps: &mut PubSub<'_>,
    f: impl FnOnce(&mut PubSub<'_>) -> Result<T, RedisError>,
) -> Result<T, RedisError> {
    ps.set_read_timeout(Some(IO))?;
    let r = f(ps);
    ps.set_read_timeout(Some(TICK))?;
    r
}

/// Keep the wanted topics subscribed and deliver what arrives, until the
/// link fails (the error) or the bus stops (`None`).
fn listen(bus: &Bus, handle: &Handle, con: &mut Connection) -> Option<RedisError> {
    if let Err(e) = con.set_write_timeout(Some(IO)) {
        return Some(e);
    }
    let mut ps = con.as_pubsub();
    if let Err(e) = ps.set_read_timeout(Some(TICK)) {
        return Some(e);
    }
    let mut have: HashSet<Arc<str>> = HashSet::new();
    let mut seen = None;
    let mut heard = Instant::now();
    loop {
        if bus.stopping() {
            return None;
        }
        if let Some((version, want)) = bus.interest.changed_since(seen) {
            let (add, drop) = diff(&have, &want);
            let channels = |t: &[Arc<str>]| t.iter().map(|t| bus.channel(t)).collect::<Vec<_>>();
            if !add.is_empty() {
                if let Err(e) = answered(&mut ps, |ps| ps.subscribe(channels(&add))) {
                    return Some(e);
                }
            }
            if !drop.is_empty() {
                if let Err(e) = answered(&mut ps, |ps| ps.unsubscribe(channels(&drop))) {
                    return Some(e);
                }
            }
            have = want;
            seen = Some(version);
            let subs = &bus.stats.subscriptions;
            subs.store(have.len() as u64, Ordering::Relaxed);
            if !bus.stats.sub_up.swap(true, Ordering::Relaxed) {
                log::info!("bus: subscribed on {} ({} topics)", bus.url, have.len());
            }
        }
        match ps.get_message() {
            Ok(msg) => {
                heard = Instant::now();
                bus.arrived(handle, msg.get_channel_name(), msg.get_payload_bytes());
            }
            Err(e) if e.is_timeout() => {
                if heard.elapsed() >= KEEPALIVE {
                    if let Err(e) = answered(&mut ps, |ps| ps.ping::<redis::Value>()) {
                        return Some(e);
                    }
                    heard = Instant::now();
                }
            }
            Err(e) => return Some(e),
        }
    }
}
