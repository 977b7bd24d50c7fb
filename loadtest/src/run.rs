//! Running a load test: split the connections over workers, start them on a
//! common clock, watch them, and gather their results.
//!
//! Invariants: the main thread never touches a socket; it only coordinates
//! through `Shared` and samples CPU time (ours, and the server's when its pid
//! is given) at the start and end of the sending window, so those figures
//! cover the same interval as the message counts. Waiting is bounded: every
//! worker ends by its own deadlines, and the main loop only polls counters.
//! In a child of --procs the common start waits (boundedly) for the
//! parent's word, so every process starts sending together; this process
//! then only ever touches its own slice of the connection ids.

use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zerows::MessageKind;

use crate::args::{ConnectArgs, Mode, RunArgs};
use crate::child::Gate;
use crate::client::Plan;
use crate::procfs;
use crate::report::{ServerSample, Summary};
use crate::stats::Stats;
use crate::wire::{Report, GO};
use crate::worker::{self, Clock, Outcome, Shared, Task, WorkerConfig};

#[derive(Debug)]
pub enum RunError {
    Args(crate::args::ArgError),
    Spawn(std::io::Error),
    Worker(std::io::Error),
    WorkerPanicked,
    Output(std::path::PathBuf, std::io::Error),
    /// This process, as a child of --procs, lost its parent or its way.
    Child(String),
    /// A child of --procs failed or did not finish in time.
    Procs(String),
    /// strace could not attach or report (--strace).
    Strace(crate::strace::StraceError),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Args(e) => write!(f, "{e}"),
            RunError::Spawn(e) => write!(f, "cannot start a worker thread: {e}"),
            RunError::Worker(e) => write!(f, "worker failed: {e}"),
            RunError::WorkerPanicked => write!(f, "a worker thread panicked"),
            RunError::Output(p, e) => write!(f, "cannot write {}: {e}", p.display()),
            RunError::Child(e) => write!(f, "child process: {e}"),
            RunError::Procs(e) => write!(f, "--procs: {e}"),
            RunError::Strace(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Gap between the last worker connecting and the common start, so every
/// worker sees the start time before it passes.
pub const START_DELAY_NS: u64 = 20_000_000;
const TICK: Duration = Duration::from_millis(100);

/// Connection ids and per-connection quotas for worker `w` of `threads`,
/// within this process's slice. Quotas (and, in `launch`, rate and ramp
/// fractions) are reckoned over all the connections of the run, so the
/// slices of --procs add up to what one process would do.
fn share(conn: &ConnectArgs, messages: Option<u64>, w: u32) -> (Vec<u32>, Vec<u64>) {
    let slice = conn.slice();
    let ids: Vec<u32> = slice
        .clone()
        .filter(|i| (i - slice.start) % conn.threads == w)
        .collect();
    let n = u64::from(conn.connections);
    let quotas = ids
        .iter()
        .map(|&id| match messages {
            Some(m) => m / n + u64::from(u64::from(id) < m % n),
            None => u64::MAX,
        })
        .collect();
    (ids, quotas)
}

pub struct Launched {
    pub shared: Arc<Shared>,
    pub handles: Vec<std::thread::JoinHandle<std::io::Result<Outcome>>>,
    pub epoch: Instant,
    /// The epoch on the machine's monotonic clock, for other processes.
    pub epoch_mono: u64,
}

/// How the workers are set up, beyond the connection options.
pub struct Setup<T: Fn(f64) -> Task> {
    pub plan: Plan,
    pub messages: Option<u64>,
    /// The task for a worker with this fraction of the connections.
    pub task: T,
    pub timeline_secs: usize,
    pub spin: bool,
}

pub fn launch<T: Fn(f64) -> Task>(
    conn: &ConnectArgs,
    setup: Setup<T>,
) -> Result<Launched, RunError> {
    let mine = conn.slice().len() as u64;
    let limit = crate::limits::raise_nofile(mine);
    if limit < mine + 16 {
        // Not fatal: the connects that find no descriptor are counted and
        // reported as failed, which is the honest outcome.
        eprintln!(
            "warning: the open-file limit is {limit} (hard limit reached); {mine} connections will not all fit",
        );
    }
    let shared = Arc::new(Shared::new(conn.threads as usize));
    let epoch = Instant::now();
    let epoch_mono = crate::wire::mono_ns();
    let mut handles = Vec::new();
    for w in 0..conn.threads {
        let (ids, quotas) = share(conn, setup.messages, w);
        let fraction = ids.len() as f64 / f64::from(conn.connections);
        let cfg = WorkerConfig {
            index: w as usize,
            plan: setup.plan.clone(),
            ids,
            quotas,
            ramp: conn.ramp * fraction,
            connect_timeout_ns: (conn.connect_timeout * 1e9) as u64,
            spread: !conn.no_spread,
            ports: conn.ports,
            task: (setup.task)(fraction),
            timeline_secs: setup.timeline_secs,
            spin: setup.spin,
        };
        let shared = shared.clone();
        let h = std::thread::Builder::new()
            .name(format!("lt-worker-{w}"))
            .spawn(move || worker::run(cfg, Clock::new(epoch), shared))
            .map_err(RunError::Spawn)?;
        handles.push(h);
    }
    Ok(Launched {
        shared,
        handles,
        epoch,
        epoch_mono,
    })
}

pub fn progress_bar() -> Option<indicatif::ProgressBar> {
    std::io::stdout().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    })
}

pub fn live_line(shared: &Shared, phase: &str, since: Option<(Instant, u64)>) -> String {
    let sum = |f: fn(&worker::Live) -> &std::sync::atomic::AtomicU64| -> u64 {
        shared.live.iter().map(|l| f(l).load(Relaxed)).sum()
    };
    let recv = sum(|l| &l.received);
    let rate = since
        .map(|(t, r0)| (recv - r0) as f64 / t.elapsed().as_secs_f64().max(1e-3))
        .unwrap_or(0.0);
    format!(
        "{phase}: {} connected, {} sent, {} echoed ({:.0}/s), {} errors",
        sum(|l| &l.connected),
        sum(|l| &l.sent),
        recv,
        rate,
        sum(|l| &l.errors)
    )
}

fn received(shared: &Shared) -> u64 {
    shared.live.iter().map(|l| l.received.load(Relaxed)).sum()
}

/// Wait until every worker is connected, then set the common start; a
/// child of --procs first reports and waits for the parent's word.
pub fn start_when_connected(
    l: &Launched,
    pb: &Option<indicatif::ProgressBar>,
    gate: Option<(&Gate, &ConnectArgs)>,
) -> Result<u64, RunError> {
    let workers = l.handles.len();
    // Bounded: each worker reaches this point by its connect timeout, or
    // has exited (a panicked or failed worker is caught at join).
    while l.shared.connected_workers.load(Relaxed) < workers
        && !l.handles.iter().any(|h| h.is_finished())
    {
        if let Some(pb) = pb {
            pb.set_message(live_line(&l.shared, "connecting", None));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some((g, conn)) = gate {
        let sum = |f: fn(&worker::Live) -> &std::sync::atomic::AtomicU64| -> u64 {
            l.shared.live.iter().map(|w| f(w).load(Relaxed)).sum()
        };
        g.report(&Report::Connected {
            connected: sum(|w| &w.connected),
            errors: sum(|w| &w.errors),
        })?;
        // The slowest child may still be connecting: the parent's bound on
        // that phase, with slack for starting processes.
        g.wait(GO, conn.connect_bound() + 30.0)?;
    }
    let start = l.epoch.elapsed().as_nanos() as u64 + START_DELAY_NS;
    l.shared.start_ns.store(start, Relaxed);
    Ok(start)
}

/// Every worker's outcome, summed: (stats, held, at once).
pub fn join(l: Launched) -> Result<(Stats, u64, u64), RunError> {
    let mut total: Option<Stats> = None;
    let (mut held, mut at_once) = (0, 0);
    for h in l.handles {
        let out = h
            .join()
            .map_err(|_| RunError::WorkerPanicked)?
            .map_err(RunError::Worker)?;
        held += out.held;
        at_once += out.at_once;
        match total.as_mut() {
            None => total = Some(out.stats),
            Some(t) => t.merge(&out.stats),
        }
    }
    Ok((total.expect("at least one worker"), held, at_once))
}

fn sleep_until(epoch: Instant, ns: u64) {
    let now = epoch.elapsed().as_nanos() as u64;
    if ns > now {
        std::thread::sleep(Duration::from_nanos(ns - now));
    }
}

/// What every connection of a run sends and expects.
fn plan(args: &RunArgs) -> Plan {
    Plan {
        target: args.conn.url.clone(),
        sizes: args.sizes.clone(),
        kind: if args.sends_text() {
            MessageKind::Text
        } else {
            MessageKind::Binary
        },
        window: args.window() as usize,
        reply: args.reply,
        payload: args.payload,
        deflate: args.deflate,
        check_close: false,
    }
}

pub fn run(args: &RunArgs) -> Result<Summary, RunError> {
    args.validate().map_err(RunError::Args)?;
    if args.conn.is_parent() {
        return crate::procs::run(args);
    }
    let t = traffic(args, None)?;
    Ok(Summary::new(args, &t.stats, t.cpu, t.wall, t.server))
}

/// One process's share of a `run`.
pub struct Traffic {
    pub stats: Stats,
    /// Our CPU seconds over the measured window, and its length.
    pub cpu: f64,
    pub wall: f64,
    pub server: Option<ServerSample>,
    pub epoch_mono: u64,
}

/// Connect, send and verify this process's connections; in a child of
/// --procs (`gate`), start sending when the parent says so.
pub fn traffic(args: &RunArgs, gate: Option<&Gate>) -> Result<Traffic, RunError> {
    let plan = plan(args);
    let duration = args.duration();
    let timeline_secs = (duration + args.drain).ceil() as usize + 2;
    let task = |fraction: f64| Task::Traffic {
        duration_ns: (duration * 1e9) as u64,
        warmup_ns: (args.warmup * 1e9) as u64,
        drain_ns: (args.drain * 1e9) as u64,
        rate: match args.mode {
            Mode::Rate => args.rate.map(|r| r * fraction),
            _ => None,
        },
    };
    let setup = Setup {
        plan,
        messages: args.messages,
        task,
        timeline_secs,
        spin: !args.no_spin,
    };
    let l = launch(&args.conn, setup)?;
    let pb = if gate.is_none() { progress_bar() } else { None };
    let start = start_when_connected(&l, &pb, gate.map(|g| (g, &args.conn)))?;

    // Sample CPU at the edges of the measured window.
    let warm = start + (args.warmup * 1e9) as u64;
    let end = start + (duration * 1e9) as u64;
    // Attached before the window opens; the calls are divided by the
    // echoes from just before strace starts to just after it has let go,
    // so no call it counted lacks its echo (strace counts from its first
    // attachment, which `attach` reports only after settling).
    let tracer = match (args.strace && gate.is_none(), args.server_pid) {
        (true, Some(pid)) => {
            let traced0 = received(&l.shared);
            Some((
                crate::strace::attach(pid).map_err(RunError::Strace)?,
                traced0,
            ))
        }
        _ => None,
    };
    sleep_until(l.epoch, warm);
    // In a child the parent samples the server.
    let mut server = args
        .server_pid
        .filter(|_| gate.is_none())
        .map(|pid| ServerSample::begin(pid, received(&l.shared)));
    let cpu0 = procfs::self_cpu_seconds();
    let t0 = Instant::now();
    let r0 = received(&l.shared);
    let mut last = (t0, r0);
    while (l.epoch.elapsed().as_nanos() as u64) < end && !l.handles.iter().all(|h| h.is_finished())
    {
        if let Some(pb) = &pb {
            pb.set_message(live_line(&l.shared, "running", Some(last)));
        }
        last = (Instant::now(), received(&l.shared));
        std::thread::sleep(TICK.min(Duration::from_nanos(
            end.saturating_sub(l.epoch.elapsed().as_nanos() as u64),
        )));
    }
    let cpu_secs = procfs::self_cpu_seconds() - cpu0;
    let wall = t0.elapsed().as_secs_f64();
    if let Some(s) = server.as_mut() {
        s.end(received(&l.shared), wall);
    }
    if let Some((t, traced0)) = tracer {
        // Counted after strace has let go: it counts until then.
        let counts = t.detach().map_err(RunError::Strace)?;
        let traced = received(&l.shared) - traced0;
        if let Some(s) = server.as_mut() {
            s.set_syscalls(&counts, traced);
        }
    }
    if let Some(pb) = &pb {
        pb.set_message(live_line(&l.shared, "draining", None));
    }
    let epoch_mono = l.epoch_mono;
    let (stats, _, _) = join(l)?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(Traffic {
        stats,
        cpu: cpu_secs,
        wall,
        server,
        epoch_mono,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_everything_once() {
        let c = ConnectArgs {
            url: "ws://127.0.0.1:1/".parse().unwrap(),
            connections: 10,
            ramp: 0.0,
            threads: 3,
            connect_timeout: 1.0,
            no_spread: false,
            procs: None,
            ports: 1,
            child: None,
        };
        let mut ids = Vec::new();
        let mut total = 0;
        for w in 0..3 {
            let (i, q) = share(&c, Some(25), w);
            ids.extend(i);
            total += q.iter().sum::<u64>();
        }
        ids.sort();
        assert_eq!(ids, (0..10).collect::<Vec<_>>());
        assert_eq!(total, 25);
    }

    #[test]
    fn deflate_offer_follows_the_flag() {
        use clap::Parser;
        let args = |extra: &[&str]| {
            let mut argv = vec!["x", "run", "ws://127.0.0.1:9/"];
            argv.extend_from_slice(extra);
            match crate::args::Cli::try_parse_from(argv).unwrap().command {
                crate::args::Command::Run(r) => r,
                _ => unreachable!(),
            }
        };
        assert_eq!(plan(&args(&[])).client_config().deflate, None);
        let p = plan(&args(&["--deflate", "--payload", "json"]));
        assert_eq!(p.payload, crate::payload::Pattern::Json);
        let offer = p.client_config().deflate.unwrap();
        assert!(offer.server_no_context_takeover);
        assert_eq!(offer.server_max_window_bits, 15);
        assert_eq!(offer.threshold, 0);
    }
}
