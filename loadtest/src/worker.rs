//! One worker thread: its own mio event loop driving its share of the
//! connections through the phases of a run.
//!
//! Invariants: phases only move forward (connect → wait for the common start
//! → send or hold → drain → [idle: one echo per connection] → close → done),
//! and each one ends by a condition or its deadline, whichever comes first,
//! so the loop always terminates.
//! The only shared state is the `Shared` atomics: the main thread starts the
//! common clock when every worker is connected and (for `idle`) releases the
//! workers after sampling the server's memory; workers publish live counts.
//! Rate-mode sends and idle-mode pings are paced by one cursor per worker
//! that visits connections in a fixed order, so pacing costs O(1) per event
//! rather than a scan of all connections.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use zerows::client::Keys;

use crate::client::{Client, Plan, State};
use crate::socket;
use crate::stats::Stats;

/// Connects in progress per worker at once, so a fast ramp does not
/// overflow the server's accept queue.
const MAX_PENDING: usize = 512;
/// How often deadlines and whole-set conditions are checked.
const HOUSEKEEPING: Duration = Duration::from_millis(20);
/// Time allowed for close replies.
const CLOSE_TIMEOUT_NS: u64 = 2_000_000_000;
/// Paced events handled per loop turn, so sockets are still served when a
/// worker falls behind its schedule.
const MAX_PACED_PER_TURN: u64 = 65_536;

/// Nanoseconds since one instant shared by all workers.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn new(epoch: Instant) -> Self {
        Clock { epoch }
    }

    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// What the connections do once connected.
#[derive(Debug, Clone, Copy)]
pub enum Task {
    Traffic {
        duration_ns: u64,
        warmup_ns: u64,
        drain_ns: u64,
        /// Total messages per second for this worker, when paced.
        rate: Option<f64>,
    },
    Idle {
        hold_ns: u64,
        /// Pings per second for this worker (0: none).
        ping_rate: f64,
        /// Once released, send one message per connection and await its echo.
        echo_once: bool,
        /// Time allowed for that round, and for the close replies after it.
        echo_timeout_ns: u64,
    },
}

impl Task {
    fn close_timeout_ns(&self) -> u64 {
        match *self {
            Task::Traffic { .. } => CLOSE_TIMEOUT_NS,
            // Every connection closes at once; hundreds of thousands of
            // close handshakes take longer than a run's few.
            Task::Idle {
                echo_timeout_ns, ..
            } => echo_timeout_ns.max(CLOSE_TIMEOUT_NS),
        }
    }
}

pub struct WorkerConfig {
    pub index: usize,
    pub plan: Plan,
    /// Connection ids handled here.
    pub ids: Vec<u32>,
    /// Messages each connection may send (`u64::MAX`: unlimited).
    pub quotas: Vec<u64>,
    /// New connections per second for this worker (0: no pacing).
    pub ramp: f64,
    pub connect_timeout_ns: u64,
    pub spread: bool,
    /// Consecutive ports the connections spread over (1: the URL's only).
    pub ports: u16,
    pub task: Task,
    pub timeline_secs: usize,
    /// Busy-poll instead of sleeping when a paced send is less than 1 ms away.
    pub spin: bool,
}

/// Counters a worker publishes for the live line.
#[derive(Default)]
pub struct Live {
    pub connected: AtomicU64,
    pub sent: AtomicU64,
    pub received: AtomicU64,
    pub errors: AtomicU64,
}

#[derive(Default)]
pub struct Shared {
    /// Workers whose connections are all up or failed.
    pub connected_workers: AtomicUsize,
    /// The common start of sending, ns since the epoch (0: not yet).
    pub start_ns: AtomicU64,
    /// Workers that finished holding (idle).
    pub held_workers: AtomicUsize,
    /// Connections open when their worker finished holding (idle).
    pub held: AtomicU64,
    /// The main thread is done sampling; close now (idle).
    pub release: AtomicBool,
    pub live: Vec<Live>,
}

impl Shared {
    pub fn new(workers: usize) -> Self {
        Shared {
            live: (0..workers).map(|_| Live::default()).collect(),
            ..Default::default()
        }
    }
}

pub struct Outcome {
    pub stats: Stats,
    /// Connections still open when holding ended (idle).
    pub held: u64,
    /// Connections still open when released (idle): open since before
    /// every worker (and every process) reported its hold done.
    pub at_once: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connecting,
    WaitStart,
    Sending,
    Holding,
    Draining,
    Echoing,
    Closing,
}

fn pending(s: State) -> bool {
    matches!(s, State::Connecting | State::Handshaking)
}

/// Run one worker to completion.
pub fn run(cfg: WorkerConfig, clock: Clock, shared: Arc<Shared>) -> std::io::Result<Outcome> {
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(1024);
    // Masking keys and nonces for every connection of this loop.
    let mut keys = Keys::new();
    let mut stats = Stats::new(cfg.timeline_secs);
    let plan = &cfg.plan;
    let url = plan.url();
    let client_cfg = plan.client_config();
    let n = cfg.ids.len();
    let mut clients: Vec<Client> = Vec::with_capacity(n);
    let live = &shared.live[cfg.index];

    let mut phase = Phase::Connecting;
    let connect_start = clock.now_ns();
    stats.first_connect_ns = connect_start;
    let mut opened = 0usize;
    let mut in_progress = 0usize;
    let mut start = 0u64;
    let mut deadline = u64::MAX;
    let mut next_housekeeping = 0u64;
    // Pacing cursor: event k is due at start + k * 1e9 / pace.
    let mut pace = 0.0f64;
    let mut paced = 0u64;
    let mut held = 0u64;
    let mut at_once = 0u64;
    // (echoes received, when that count last moved or nothing was owed)
    let mut progress = (0u64, 0u64);
    let stall_ns = match cfg.task {
        Task::Traffic { drain_ns, .. } => drain_ns.max(1_000_000_000),
        Task::Idle { .. } => u64::MAX,
    };

    loop {
        let now = clock.now_ns();
        let housekeeping = now >= next_housekeeping;
        if housekeeping {
            next_housekeeping = now + HOUSEKEEPING.as_nanos() as u64;
        }
        match phase {
            Phase::Connecting => {
                let by_ramp = if cfg.ramp > 0.0 {
                    ((now - connect_start) as f64 / 1e9 * cfg.ramp) as usize + 1
                } else {
                    n
                };
                while opened < n.min(by_ramp) && in_progress < MAX_PENDING {
                    let id = cfg.ids[opened];
                    let mut addr = plan.target.addr;
                    addr.set_port(addr.port() + (id % u32::from(cfg.ports)) as u16);
                    let src = socket::source_for(id, addr, cfg.spread);
                    let made = socket::connect(addr, src).and_then(|stream| {
                        Client::new(
                            id,
                            stream,
                            plan,
                            &url,
                            &client_cfg,
                            &mut keys,
                            clock.now_ns(),
                            cfg.quotas[opened],
                        )
                        .map_err(std::io::Error::other)
                    });
                    match made {
                        Ok(mut c) => {
                            // Tokens index `clients`, which skips failed sockets.
                            poll.registry().register(
                                c.source(),
                                Token(clients.len()),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            clients.push(c);
                            in_progress += 1;
                        }
                        Err(e) => {
                            stats.errors.connect_failed += 1;
                            stats.note(|| format!("connection {id}: connect: {e}"));
                            opened += 1;
                            continue;
                        }
                    }
                    opened += 1;
                }
                if housekeeping {
                    for c in clients.iter_mut() {
                        if pending(c.state)
                            && now.saturating_sub(c.started_ns) > cfg.connect_timeout_ns
                        {
                            c.finish(&mut stats);
                            in_progress -= 1;
                        }
                    }
                }
                if opened == n && in_progress == 0 {
                    shared.connected_workers.fetch_add(1, Relaxed);
                    phase = Phase::WaitStart;
                }
            }
            Phase::WaitStart => {
                let s = shared.start_ns.load(Relaxed);
                if s != 0 && now >= s {
                    start = s;
                    stats.send_start_ns = s;
                    progress = (stats.received, now);
                    phase = Phase::Sending;
                    match cfg.task {
                        Task::Traffic {
                            duration_ns,
                            warmup_ns,
                            rate,
                            ..
                        } => {
                            stats.window = (s + warmup_ns, s + duration_ns);
                            deadline = s + duration_ns;
                            if let Some(r) = rate {
                                pace = r;
                                let count = clients.len().max(1) as f64;
                                for (i, c) in clients.iter_mut().enumerate() {
                                    c.allowed = 0;
                                    c.schedule =
                                        Some((s as f64 + i as f64 * 1e9 / r, count * 1e9 / r));
                                }
                            }
                        }
                        Task::Idle {
                            hold_ns, ping_rate, ..
                        } => {
                            deadline = s + hold_ns;
                            pace = ping_rate;
                            phase = Phase::Holding;
                        }
                    }
                    let sending = phase == Phase::Sending;
                    for c in clients.iter_mut() {
                        c.pump(plan, now, &mut stats, &mut keys, sending);
                    }
                }
            }
            Phase::Sending | Phase::Holding => {
                if pace > 0.0 && !clients.is_empty() {
                    let count = clients.len() as u64;
                    let mut turn = 0;
                    while turn < MAX_PACED_PER_TURN
                        && start as f64 + paced as f64 * 1e9 / pace <= now as f64
                    {
                        let c = &mut clients[(paced % count) as usize];
                        if phase == Phase::Sending {
                            c.allowed = paced / count + 1;
                            c.pump(plan, now, &mut stats, &mut keys, true);
                        } else {
                            c.ping(&mut stats, &mut keys);
                        }
                        paced += 1;
                        turn += 1;
                    }
                }
                let all_sent = housekeeping
                    && phase == Phase::Sending
                    && clients
                        .iter()
                        .all(|c| c.quota == 0 || c.state != State::Open);
                // Echoes owed but none for a drain period: the server has
                // stopped answering, and waiting out a long --messages limit
                // would only delay the verdict.
                if stats.received != progress.0 || stats.sent == stats.received {
                    progress = (stats.received, now);
                }
                let stalled = phase == Phase::Sending && now - progress.1 > stall_ns;
                if stalled {
                    let secs = stall_ns as f64 / 1e9;
                    stats.note(|| {
                        format!("no echo for {secs:.1} s with messages in flight; stopped sending")
                    });
                }
                if now >= deadline || all_sent || stalled {
                    if phase == Phase::Holding {
                        held = clients.iter().filter(|c| c.state == State::Open).count() as u64;
                        shared.held.fetch_add(held, Relaxed);
                        shared.held_workers.fetch_add(1, Relaxed);
                        // Keep serving pongs until the main thread releases us.
                        pace = 0.0;
                        phase = Phase::Draining;
                        deadline = u64::MAX;
                    } else {
                        stats.window.1 = stats.window.1.min(now);
                        let drain = match cfg.task {
                            Task::Traffic { drain_ns, .. } => drain_ns,
                            Task::Idle { .. } => 0,
                        };
                        phase = Phase::Draining;
                        deadline = now + drain;
                    }
                }
            }
            Phase::Draining => {
                let released = match cfg.task {
                    Task::Idle { .. } => shared.release.load(Relaxed),
                    Task::Traffic { .. } => {
                        now >= deadline
                            || (housekeeping
                                && clients.iter().all(|c| c.idle() || c.state != State::Open))
                    }
                };
                if released {
                    if let Task::Idle {
                        echo_once,
                        echo_timeout_ns,
                        ..
                    } = cfg.task
                    {
                        at_once = clients.iter().filter(|c| c.state == State::Open).count() as u64;
                        if echo_once {
                            stats.echo_start_ns = now;
                            for c in clients.iter_mut().filter(|c| c.state == State::Open) {
                                c.quota = 1;
                                c.pump(plan, now, &mut stats, &mut keys, true);
                            }
                            phase = Phase::Echoing;
                            deadline = now + echo_timeout_ns;
                        }
                    }
                    if phase == Phase::Draining {
                        for c in clients.iter_mut() {
                            c.close(&mut stats, &mut keys, now);
                        }
                        phase = Phase::Closing;
                        deadline = now + cfg.task.close_timeout_ns();
                    }
                }
            }
            Phase::Echoing => {
                let answered =
                    housekeeping && clients.iter().all(|c| c.idle() || c.state != State::Open);
                if answered || now >= deadline {
                    // Echoes still owed are counted as unanswered at the end.
                    for c in clients.iter_mut() {
                        c.close(&mut stats, &mut keys, now);
                    }
                    phase = Phase::Closing;
                    deadline = now + cfg.task.close_timeout_ns();
                }
            }
            Phase::Closing => {
                if now >= deadline
                    || (housekeeping && clients.iter().all(|c| c.state == State::Done))
                {
                    break;
                }
            }
        }

        live.sent.store(stats.sent, Relaxed);
        live.received.store(stats.received, Relaxed);
        live.connected.store(stats.connected, Relaxed);
        live.errors.store(stats.errors.total(), Relaxed);

        let timeout = match phase {
            Phase::Connecting => Duration::from_millis(2),
            Phase::WaitStart => Duration::from_millis(1),
            Phase::Sending | Phase::Holding if pace > 0.0 => {
                let next = start as f64 + paced as f64 * 1e9 / pace;
                let wait = Duration::from_nanos((next - clock.now_ns() as f64).max(0.0) as u64);
                if cfg.spin && wait < Duration::from_millis(1) {
                    // epoll's timeout has 1 ms steps; polling without waiting
                    // sends on time at the price of a busy core.
                    Duration::ZERO
                } else {
                    wait.min(Duration::from_millis(10))
                }
            }
            _ => Duration::from_millis(10),
        };
        match poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let sending = phase == Phase::Sending;
        let turn = crate::client::millis(clock.now_ns());
        for ev in events.iter() {
            let Some(c) = clients.get_mut(ev.token().0) else {
                continue;
            };
            let before = c.state;
            if ev.is_writable() {
                c.on_writable(plan, clock.now_ns(), &mut stats, &mut keys, sending);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.on_readable(
                    plan,
                    &clock,
                    &mut stats,
                    &mut keys,
                    turn,
                    ev.is_read_closed(),
                );
                c.pump(plan, clock.now_ns(), &mut stats, &mut keys, sending);
            }
            if pending(before) && !pending(c.state) {
                in_progress = in_progress.saturating_sub(1);
            }
        }
    }

    for c in clients.iter_mut() {
        c.finish(&mut stats);
    }
    live.errors.store(stats.errors.total(), Relaxed);
    Ok(Outcome {
        stats,
        held,
        at_once,
    })
}
