//! The event loop: one thread, one `mio::Poll`, connections in a slab.
//!
//! The loop only moves readiness and time; everything a connection does is
//! in [`Session`] and the protocol core. Invariants:
//! * A connection's token is its slab key. Sockets are registered once for
//!   readable and writable, edge-triggered, and never re-registered.
//! * Fairness: a connection gets at most `read_budget` reads per event; if
//!   it may have more input it goes on the `ready` list, served after the
//!   current batch of events, and the next poll does not block.
//! * Deadlines live in a min-heap of `(when, key)`, at most one live entry
//!   per connection; entries are never removed early, a popped entry that
//!   no longer matches its connection is ignored, and a session treats a
//!   timeout that is not due yet as a no-op.
//!   A connection's own timer (see `push::timers`) is folded into that
//!   same entry: `timed` says it has one, so others never look it up.
//! * A full file table (EMFILE) pauses accepting for a moment instead of
//!   spinning on a listener that stays readable.
//! * Pushes: the inbox is emptied at the end of every turn, after the
//!   turn's I/O, so a push is written in the turn that woke for it (see
//!   `server/inbox.rs`).
//! * Stopping keeps the listeners and answers newcomers 503, unless they
//!   share the port with other processes (`reuse_port`): then they close
//!   at once (see `server/listen.rs`).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::buffer::Pool;
use crate::conn::{millis, Millis};
use crate::conn_id::{ConnId, MAX_SLOTS};
use crate::error::HandshakeError;
use crate::push::{Command, Handle, Inbox, Live, Loop, Mailbox};
use crate::service::Service;
use crate::session::{Progress, Session, Shared};

mod backend;
#[cfg(feature = "uring")]
mod completions;
mod config;
mod inbox;
mod listen;

pub use backend::Backend;
use backend::{io, Uring};
pub use config::Config;
use inbox::Staged;
pub(crate) use listen::check_migration;
pub use listen::listener;

const WAKER: Token = Token(usize::MAX);
const LISTENER_BASE: usize = usize::MAX - 1024;
/// Most connections accepted per listener per loop turn.
const ACCEPT_BATCH: usize = 256;
/// How long accepting pauses when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One connection's slab slot. Every byte here is paid by every idle
/// connection (and twice over by the slab's growth), hence the 32-bit timer.
struct Entry<St> {
    stream: TcpStream,
    session: Session<St>,
    /// The low 32 bits of the deadline this connection has in the timer
    /// heap, when `armed`.
    timer: u32,
    armed: bool,
    /// On the ready list.
    queued: bool,
    /// Has a timer of its own (in `Local::timers`).
    timed: bool,
}

/// Stops running event loops from any thread: each closes its connections
/// gracefully (see [`Server::run`]) and returns.
#[derive(Clone, Debug)]
pub struct Stopper {
    loops: Vec<(Arc<AtomicBool>, Arc<Waker>)>,
}

impl Stopper {
    /// Ask every loop to stop; returns at once.
    pub fn stop(&self) {
        for (flag, waker) in &self.loops {
            flag.store(true, Ordering::SeqCst);
            let _ = waker.wake();
        }
    }

    /// One stopper for the loops of all of `stoppers`.
    pub fn all(stoppers: &[Stopper]) -> Stopper {
        Stopper {
            loops: stoppers.iter().flat_map(|s| s.loops.clone()).collect(),
        }
    }
}

/// One event loop serving one service on its listeners (see
/// [`Builder`](crate::Builder) for several).
pub struct Server<S: Service> {
    poll: Poll,
    listeners: Vec<(TcpListener, bool)>,
    conns: Slab<Entry<S::State>>,
    shared: Shared<S>,
    /// The serial of the next connection, and the step between two (the
    /// number of loops): see `conn_id`.
    serial: u64,
    serial_step: u64,
    config: Config,
    timers: BinaryHeap<Reverse<(Millis, u32)>>,
    ready: Vec<usize>,
    ready_next: Vec<usize>,
    accept_paused_until: Option<Millis>,
    /// The loop's clock starts here; `Millis` count from it.
    epoch: Instant,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    shutting_down: bool,
    /// When the counters were last copied onto the shared board.
    published_at: Millis,
    /// Turns have counted things since.
    publish_owed: bool,
    inbox: Inbox,
    /// Kept to make the mailbox of the handle this loop joins.
    inbox_tx: std::sync::mpsc::SyncSender<Command>,
    live: Arc<Live>,
    /// The inbox had more than one turn's budget.
    inbox_more: bool,
    /// Pushes of this turn, written one `writev` per connection (see
    /// `inbox`).
    staged: Vec<Staged>,
    /// Handing over: connections still in their handshake, closed once
    /// upgraded (see `listen`).
    awaiting_upgrade: Vec<usize>,
    /// Epoll, or io_uring where it was asked for and can be set up.
    backend: Backend,
    /// The io_uring backend, when this loop runs on it (`poll` then only
    /// holds the waker, and io_uring watches `poll`); set up by `run`, on
    /// the loop's thread, which alone may use it.
    uring: Option<Box<Uring>>,
}

impl<S: Service> Server<S> {
    /// Bind every listen address. Nothing runs until [`run`](Self::run).
    pub fn bind(config: Config, service: S) -> io::Result<Server<S>> {
        if config.listen.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no listen address",
            ));
        }
        let mut listeners = Vec::new();
        for &addr in &config.listen {
            listeners.push(listener(addr, config.reuse_port, config.listen_backlog)?);
        }
        check_migration(&config);
        Self::with_listeners(config, listeners, service)
    }

    /// Serve on listeners bound by the caller (with socket options of its
    /// choosing, such as `SO_REUSEPORT` for one loop per core, or handed
    /// over by a service manager). `config.listen` is not used.
    pub fn with_listeners(
        config: Config,
        std_listeners: Vec<std::net::TcpListener>,
        service: S,
    ) -> io::Result<Server<S>> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let backend = config.io.effective();
        let mut listeners = Vec::new();
        for (i, l) in std_listeners.into_iter().enumerate() {
            l.set_nonblocking(true)?;
            let mut l = TcpListener::from_std(l);
            if backend == Backend::Epoll {
                poll.registry()
                    .register(&mut l, Token(LISTENER_BASE + i), Interest::READABLE)?;
            }
            listeners.push((l, true));
        }
        let read_pool = Pool::new(config.read_buffer, config.pool_idle, 4);
        let write_pool = Pool::new(config.write_buffer, config.pool_idle, 4);
        let mut shared = Shared::new(
            config.settings.clone(),
            read_pool,
            write_pool,
            config.max_backlog,
            service,
        );
        shared.stall_timeout = millis(config.stall_timeout);
        shared.min_drain_rate = config.min_drain_rate;
        shared.push_limit = config.push_backlog;
        shared.slow = config.slow;
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::sync_channel(config.inbox);
        let pending = Arc::new(AtomicBool::new(false));
        let live = Arc::new(Live::new());
        let mut server = Server {
            poll,
            listeners,
            conns: Slab::with_capacity(1024),
            shared,
            serial: 0,
            serial_step: 1,
            config,
            timers: BinaryHeap::with_capacity(1024),
            ready: Vec::with_capacity(1024),
            ready_next: Vec::with_capacity(1024),
            accept_paused_until: None,
            epoch: Instant::now(),
            stop,
            waker,
            shutting_down: false,
            published_at: 0,
            publish_owed: false,
            inbox: Inbox { rx, pending },
            inbox_tx: tx,
            live,
            inbox_more: false,
            staged: Vec::new(),
            awaiting_upgrade: Vec::new(),
            backend,
            uring: None,
        };
        let handle = Handle::new(1);
        handle.register(0, server.mailbox());
        server.shared.local.handle = handle;
        Ok(server)
    }

    /// Make this loop `index` of `loops` sharing the listening addresses,
    /// so that connection ids are unique across all of them.
    pub fn set_loop(&mut self, index: usize, loops: usize) {
        self.serial = index as u64;
        self.serial_step = loops.max(1) as u64;
    }

    /// Make this loop number `index` of the server `handle` reaches (see
    /// [`Builder`](crate::Builder)), in place of its own handle.
    pub(crate) fn attach(&mut self, handle: &Handle, index: usize) {
        handle.register(index, self.mailbox());
        if let Some(bus) = handle.bus() {
            self.shared.local.topics.report_to(bus.clone());
        }
        self.shared.local.handle = handle.clone();
        self.shared.local.index = index;
    }

    /// The way into this loop's inbox.
    fn mailbox(&self) -> Mailbox {
        Mailbox {
            tx: self.inbox_tx.clone(),
            waker: self.waker.clone(),
            pending: self.inbox.pending.clone(),
            stop: self.stop.clone(),
            live: self.live.clone(),
        }
    }

    /// A handle that pushes to this loop's connections from any thread.
    pub fn handle(&self) -> Handle {
        self.shared.local.handle.clone()
    }

    /// The service.
    pub fn service(&self) -> &S {
        &self.shared.service
    }

    /// The bound addresses (with the real port when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }

    /// A handle that stops this loop from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            loops: vec![(self.stop.clone(), self.waker.clone())],
        }
    }

    /// This loop's counters.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.shared.metrics
    }

    /// Connections open on this loop.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The backend this loop runs on (epoll when io_uring was asked for
    /// but could not be set up).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Run until stopped, then shut down gracefully: every connection gets
    /// a close (1001), new ones get 503 (with `reuse_port`, the listeners
    /// close instead, after the queued connections are taken in), and the
    /// loop returns once all are gone or `shutdown_timeout` has passed.
    pub fn run(&mut self) -> io::Result<()> {
        self.uring = start_uring(self.backend, &self.config, &self.poll)?;
        let mut events = Events::with_capacity(1024);
        let mut drain_until: Option<Millis> = None;
        self.shared.now = self.clock();
        let mut lp = Loop {
            local: &mut self.shared.local,
            now: self.shared.now,
        };
        self.shared.service.started(&mut lp);
        self.run_queued();
        loop {
            if drain_until.is_none() && self.stop.load(Ordering::Relaxed) {
                self.shared.now = self.clock();
                drain_until = Some(self.shared.now + millis(self.config.shutdown_timeout));
                self.begin_shutdown();
            }
            if let Some(until) = drain_until {
                // A connection that is only lingering for its peer's FIN
                // owes nothing more: it does not hold up the exit.
                let done = self.conns.iter().all(|(_, e)| e.session.is_lingering());
                if done || self.clock() >= until {
                    log::info!("shut down with {} connections left", self.conns.len());
                    return Ok(());
                }
            }
            let mut timeout = self.poll_timeout();
            let mut wake_at = drain_until;
            if self.publish_owed {
                // Wake to publish what the last turns counted, or a scrape
                // of another loop would miss it for as long as this one idles.
                let at = self.published_at + 100;
                wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
            }
            if let Some(until) = wake_at {
                let left = Duration::from_millis(until.saturating_sub(self.clock()) + 1);
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            #[cfg(feature = "uring")]
            if self.uring.is_some() {
                let (turn_start, busy) = self.wait_completions(timeout)?;
                self.end_turn(turn_start, busy);
                continue;
            }
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let turn_start = self.begin_turn();
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    Token(t) if t >= LISTENER_BASE => {
                        if let Some(l) = self.listeners.get_mut(t - LISTENER_BASE) {
                            l.1 = true;
                        }
                    }
                    Token(k) => {
                        if ev.is_read_closed() || ev.is_error() {
                            if let Some(e) = self.conns.get_mut(k) {
                                e.session.set_read_closed();
                            }
                        }
                        let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
                        self.conn_event(k, readable, ev.is_writable());
                    }
                }
            }
            self.end_turn(turn_start, !events.is_empty());
        }
    }

    /// A turn begins: its time, read once for the turn and its duration.
    fn begin_turn(&mut self) -> Instant {
        self.inbox.turn_begins();
        let turn_start = Instant::now();
        self.shared.now = (turn_start - self.epoch).as_millis() as Millis + 1;
        turn_start
    }

    /// The rest of a turn, after its I/O events.
    fn end_turn(&mut self, turn_start: Instant, busy: bool) {
        self.accept_all();
        self.run_ready();
        self.expire_timers();
        if !self.awaiting_upgrade.is_empty() {
            self.close_upgraded();
        }
        self.run_tick();
        self.run_inbox();
        if busy {
            let us = turn_start.elapsed().as_micros() as u64;
            self.shared.metrics.turn(us);
        }
        self.publish_metrics(false);
    }

    fn begin_shutdown(&mut self) {
        let hand_over = self.config.reuse_port;
        if hand_over {
            self.hand_over();
        }
        log::info!("shutting down: closing {} connections", self.conns.len());
        self.shutting_down = true;
        self.shared.accepting = false;
        self.publish_metrics(true);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let e = &mut self.conns[key];
            if hand_over && e.session.core().state() == crate::conn::State::Handshake {
                self.awaiting_upgrade.push(key);
                continue;
            }
            let p = e.session.close(
                &mut io(&mut self.uring, key, &mut e.stream),
                &mut self.shared,
                crate::error::close_code::GOING_AWAY,
            );
            self.schedule(key, p);
        }
    }

    /// Share this loop's counters on `board`, in slot `index`, so that a
    /// scrape answered by any loop covers all of them.
    pub fn share_metrics(&mut self, board: Arc<crate::metrics::Board>, index: usize) {
        self.shared.board = Some((board, index));
        self.publish_metrics(true);
    }

    /// Copy the counters onto the board, at most ten times a second unless
    /// `now`.
    fn publish_metrics(&mut self, now: bool) {
        let t = self.shared.now;
        if let Some((board, i)) = &self.shared.board {
            if now || t >= self.published_at + 100 {
                board.publish(*i, &self.shared.metrics, self.shared.gauges());
                self.published_at = t;
                self.publish_owed = false;
            } else {
                self.publish_owed = true;
            }
        }
    }

    /// Whether the loop is shutting down (see [`run`](Self::run)).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Milliseconds since the loop started, from 1 (0 means "no deadline").
    fn clock(&self) -> Millis {
        self.epoch.elapsed().as_millis() as Millis + 1
    }

    fn poll_timeout(&self) -> Option<Duration> {
        let now = self.clock();
        let accept_waiting = self.listeners.iter().any(|l| l.1);
        if !self.ready.is_empty()
            || self.inbox_more
            || (accept_waiting && self.accept_paused_until.is_none())
        {
            return Some(Duration::ZERO);
        }
        let mut next = self.timers.peek().map(|Reverse((t, _))| *t);
        let tick = self.shared.local.tick.at;
        if tick != 0 {
            next = Some(next.map_or(tick, |n| n.min(tick)));
        }
        if let Some(p) = self.accept_paused_until {
            next = Some(next.map_or(p, |n| n.min(p)));
        }
        next.map(|t| Duration::from_millis(t.saturating_sub(now) + 1))
    }

    fn accept_all(&mut self) {
        if let Some(until) = self.accept_paused_until {
            if self.shared.now < until {
                return;
            }
            self.accept_paused_until = None;
        }
        for i in 0..self.listeners.len() {
            if self.listeners[i].1 {
                #[cfg(feature = "uring")]
                if let Some(u) = &mut self.uring {
                    // Multishot: armed once, again only if it stopped.
                    use std::os::fd::AsRawFd;
                    match u.arm_accept(i, self.listeners[i].0.as_raw_fd()) {
                        Ok(()) => self.listeners[i].1 = false,
                        Err(e) => log::warn!("io_uring accept: {e}"),
                    }
                    continue;
                }
                self.accept(i);
            }
        }
    }

    fn accept(&mut self, i: usize) {
        for _ in 0..ACCEPT_BATCH {
            match self.listeners[i].0.accept() {
                Ok((stream, _addr)) => self.add(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listeners[i].1 = false;
                    return;
                }
                Err(e) if is_out_of_descriptors(&e) => {
                    log::warn!("accept: {e}; pausing accepts for {ACCEPT_BACKOFF:?}");
                    self.accept_paused_until = Some(self.shared.now + millis(ACCEPT_BACKOFF));
                    return;
                }
                Err(e) => log::debug!("accept: {e}"),
            }
        }
        // Batch used up: more may be waiting; `listeners[i].1` stays set.
    }

    fn add(&mut self, mut stream: TcpStream) {
        self.shared.metrics.connections_total += 1;
        let _ = stream.set_nodelay(true);
        let full = self.conns.len() >= self.config.max_connections || self.shutting_down;
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if key >= MAX_SLOTS {
            log::warn!("no connection id left for slot {key}; dropping the connection");
            return;
        }
        let registered = match &mut self.uring {
            None => self.poll.registry().register(
                &mut stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ),
            #[cfg(feature = "uring")]
            Some(u) => u.open(key, &stream),
            #[cfg(not(feature = "uring"))]
            Some(u) => match **u {},
        };
        if let Err(e) = registered {
            log::debug!("register: {e}");
            return;
        }
        let id = ConnId::new(self.serial, key);
        self.serial += self.serial_step;
        self.live.open(id);
        let e = entry.insert(Entry {
            stream,
            session: Session::new(self.shared.now, &self.shared.settings, id),
            timer: 0,
            armed: false,
            queued: false,
            timed: false,
        });
        self.shared.metrics.connections += 1;
        if full {
            e.session.refuse_when_read(HandshakeError::Unavailable);
        }
        self.schedule(key, Progress::Idle);
    }

    fn conn_event(&mut self, key: usize, readable: bool, writable: bool) {
        let budget = self.config.read_budget;
        let Some(e) = self.conns.get_mut(key) else {
            return;
        };
        let mut p = Progress::Idle;
        let io = &mut io(&mut self.uring, key, &mut e.stream);
        if writable {
            p = e.session.on_writable(io, &mut self.shared, budget);
        }
        if readable && p != Progress::Done {
            let r = e.session.on_readable(io, &mut self.shared, budget);
            p = if r == Progress::Idle { p } else { r };
        }
        self.schedule(key, p);
    }

    /// Act on what a session said: drop it, queue it, and keep its deadline
    /// in the heap.
    fn schedule(&mut self, key: usize, p: Progress) {
        if p == Progress::Done {
            let mut e = self.conns.remove(key);
            #[cfg(feature = "uring")]
            let abort = e.session.pending_output() > 0;
            e.session.release(&mut self.shared);
            #[cfg(feature = "uring")]
            if let Some(u) = &mut self.uring {
                let until = self.shared.now + self.shared.stall_timeout;
                u.close(key, e.stream, abort, until);
            }
            self.live.close(key);
            self.shared.local.topics.release(key);
            self.shared.local.timers.release(key);
            self.shared.local.timer_touched = false;
            self.shared.metrics.connections = self.conns.len() as u64;
            return;
        }
        let e = &mut self.conns[key];
        if p == Progress::More && !e.queued {
            e.queued = true;
            self.ready.push(key);
        }
        let stall = self.shared.stall_timeout;
        let mut deadline = e.session.deadline(stall);
        let local = &mut self.shared.local;
        if e.timed || local.timer_touched {
            local.timer_touched = false;
            let own = local.timers.when(e.session.core().id());
            e.timed = own.is_some();
            deadline = match (deadline, own) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        // One heap entry per connection: a deadline that moved later is left
        // to the entry already there, which fires early (a harmless no-op for
        // the session) and re-arms; only an earlier one needs a new entry.
        if let Some(when) = deadline {
            let earlier = ((when as u32).wrapping_sub(e.timer) as i32) < 0;
            if !e.armed || earlier {
                e.timer = when as u32;
                e.armed = true;
                self.timers.push(Reverse((when, key as u32)));
            }
        }
    }

    fn run_ready(&mut self) {
        // Two lists alternate so that sessions queued while this batch runs
        // wait for the next turn, and neither list reallocates.
        let mut batch = std::mem::take(&mut self.ready);
        std::mem::swap(&mut self.ready, &mut self.ready_next);
        let budget = self.config.read_budget;
        for &key in &batch {
            let Some(e) = self.conns.get_mut(key) else {
                continue;
            };
            if !e.queued {
                continue;
            }
            e.queued = false;
            let io = &mut io(&mut self.uring, key, &mut e.stream);
            let p = e.session.on_readable(io, &mut self.shared, budget);
            self.schedule(key, p);
        }
        batch.clear();
        self.ready_next = batch;
    }

    fn expire_timers(&mut self) {
        let now = self.shared.now;
        while let Some(&Reverse((when, key))) = self.timers.peek() {
            if when > now {
                break;
            }
            self.timers.pop();
            let key = key as usize;
            // A superseded entry, or one left by a closed connection whose
            // slot was reused, is skipped; should one match by chance, the
            // session treats a timeout that is not due as a no-op.
            let Some(e) = self.conns.get_mut(key) else {
                continue;
            };
            if !e.armed || e.timer != when as u32 {
                continue;
            }
            e.armed = false;
            let mut p = Progress::Idle;
            let io = &mut io(&mut self.uring, key, &mut e.stream);
            if e.timed && self.shared.local.timers.fire(e.session.core().id(), now) {
                // Whatever the callback does to the timer, `schedule`
                // looks at it again.
                self.shared.local.timer_touched = true;
                p = e.session.on_timer(io, &mut self.shared);
            }
            if p != Progress::Done {
                let q = e.session.on_timeout(io, &mut self.shared);
                p = if q == Progress::Idle { p } else { q };
            }
            self.schedule(key, p);
        }
    }
}

/// The loop's io_uring, when its configuration asks for one and the
/// system can set it up; it then watches `poll`, which holds the waker.
fn start_uring(backend: Backend, config: &Config, poll: &Poll) -> io::Result<Option<Box<Uring>>> {
    if backend != Backend::Uring {
        return Ok(None);
    }
    #[cfg(feature = "uring")]
    {
        use std::os::fd::AsRawFd;
        let mut u = Box::new(Uring::new(config.write_buffer, config.pool_idle)?);
        u.start()?;
        u.arm_waker(poll.as_raw_fd())?;
        Ok(Some(u))
    }
    #[cfg(not(feature = "uring"))]
    {
        let _ = (config, poll);
        Ok(None)
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    // EMFILE (24) and ENFILE (23) on Linux; ENOBUFS/ENOMEM (105/12) are the
    // same kind of exhaustion.
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12))
}
