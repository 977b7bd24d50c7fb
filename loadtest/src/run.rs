//! Running a load test: split the connections over workers, start them on a
//! common clock, watch them, and gather their results.
//!
//! Invariants: the main thread never touches a socket; it only coordinates
//! through `Shared` and samples CPU time (ours, and the server's when its pid
//! is given) at the start and end of the sending window, so those figures
//! cover the same interval as the message counts. Waiting is bounded: every
//! worker ends by its own deadlines, and the main loop only polls counters.

use std::io::IsTerminal;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use zerows::MessageKind;

use crate::args::{ConnectArgs, IdleArgs, Mode, RunArgs};
use crate::client::Plan;
use crate::procfs;
use crate::report::{IdleSummary, ServerSample, Summary};
use crate::stats::Stats;
use crate::worker::{self, Clock, Outcome, Shared, Task, WorkerConfig};

#[derive(Debug)]
pub enum RunError {
    Args(crate::args::ArgError),
    Spawn(std::io::Error),
    Worker(std::io::Error),
    WorkerPanicked,
    Output(std::path::PathBuf, std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Args(e) => write!(f, "{e}"),
            RunError::Spawn(e) => write!(f, "cannot start a worker thread: {e}"),
            RunError::Worker(e) => write!(f, "worker failed: {e}"),
            RunError::WorkerPanicked => write!(f, "a worker thread panicked"),
            RunError::Output(p, e) => write!(f, "cannot write {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for RunError {}

/// Gap between the last worker connecting and the common start, so every
/// worker sees the start time before it passes.
const START_DELAY_NS: u64 = 20_000_000;
const TICK: Duration = Duration::from_millis(100);

/// Connection ids and per-connection quotas for worker `w` of `threads`.
fn share(conn: &ConnectArgs, messages: Option<u64>, w: u32) -> (Vec<u32>, Vec<u64>) {
    let ids: Vec<u32> = (0..conn.connections)
        .filter(|i| i % conn.threads == w)
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

struct Launched {
    shared: Arc<Shared>,
    handles: Vec<std::thread::JoinHandle<std::io::Result<Outcome>>>,
    epoch: Instant,
}

/// How the workers are set up, beyond the connection options.
struct Setup<T: Fn(f64) -> Task> {
    plan: Plan,
    messages: Option<u64>,
    /// The task for a worker with this fraction of the connections.
    task: T,
    timeline_secs: usize,
    spin: bool,
}

fn launch<T: Fn(f64) -> Task>(conn: &ConnectArgs, setup: Setup<T>) -> Result<Launched, RunError> {
    let limit = crate::limits::raise_nofile(u64::from(conn.connections));
    if limit < u64::from(conn.connections) + 16 {
        // Not fatal: the connects that find no descriptor are counted and
        // reported as failed, which is the honest outcome.
        eprintln!(
            "warning: the open-file limit is {limit} (hard limit reached); {} connections will not all fit",
            conn.connections
        );
    }
    let shared = Arc::new(Shared::new(conn.threads as usize));
    let epoch = Instant::now();
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
    })
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    std::io::stdout().is_terminal().then(|| {
        let pb = indicatif::ProgressBar::new_spinner();
        pb.enable_steady_tick(Duration::from_millis(200));
        pb
    })
}

fn live_line(shared: &Shared, phase: &str, since: Option<(Instant, u64)>) -> String {
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

/// Wait until every worker is connected, then set the common start.
fn start_when_connected(l: &Launched, pb: &Option<indicatif::ProgressBar>) -> u64 {
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
    let start = l.epoch.elapsed().as_nanos() as u64 + START_DELAY_NS;
    l.shared.start_ns.store(start, Relaxed);
    start
}

fn join(l: Launched) -> Result<(Stats, u64), RunError> {
    let mut total: Option<Stats> = None;
    let mut held = 0;
    for h in l.handles {
        let out = h
            .join()
            .map_err(|_| RunError::WorkerPanicked)?
            .map_err(RunError::Worker)?;
        held += out.held;
        match total.as_mut() {
            None => total = Some(out.stats),
            Some(t) => t.merge(&out.stats),
        }
    }
    Ok((total.expect("at least one worker"), held))
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
    }
}

pub fn run(args: &RunArgs) -> Result<Summary, RunError> {
    args.validate().map_err(RunError::Args)?;
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
    let pb = progress_bar();
    let start = start_when_connected(&l, &pb);

    // Sample CPU at the edges of the measured window.
    let warm = start + (args.warmup * 1e9) as u64;
    let end = start + (duration * 1e9) as u64;
    sleep_until(l.epoch, warm);
    let mut server = args
        .server_pid
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
    if let Some(pb) = &pb {
        pb.set_message(live_line(&l.shared, "draining", None));
    }
    let (stats, _) = join(l)?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(Summary::new(args, &stats, cpu_secs, wall, server))
}

pub fn idle(args: &IdleArgs) -> Result<IdleSummary, RunError> {
    args.validate().map_err(RunError::Args)?;
    let plan = Plan {
        target: args.conn.url.clone(),
        sizes: vec![crate::payload::MIN_SIZE],
        kind: MessageKind::Binary,
        window: 1,
        reply: crate::reply::ReplyMode::Echo,
        payload: crate::payload::Pattern::Random,
        deflate: false,
    };
    let rss_before = args.pid.and_then(|p| procfs::status_bytes(p, "VmRSS"));
    let conns = f64::from(args.conn.connections);
    let interval = args.ping_interval;
    let task = |fraction: f64| Task::Idle {
        hold_ns: (args.hold * 1e9) as u64,
        ping_rate: if interval > 0.0 {
            conns * fraction / interval
        } else {
            0.0
        },
    };
    let setup = Setup {
        plan,
        messages: Some(0),
        task,
        timeline_secs: args.hold.ceil() as usize + 2,
        spin: false,
    };
    let l = launch(&args.conn, setup)?;
    let pb = progress_bar();
    start_when_connected(&l, &pb);
    let workers = l.handles.len();
    while l.shared.held_workers.load(Relaxed) < workers
        && !l.handles.iter().any(|h| h.is_finished())
    {
        if let Some(pb) = &pb {
            pb.set_message(live_line(&l.shared, "holding", None));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss_after = args.pid.and_then(|p| procfs::status_bytes(p, "VmRSS"));
    l.shared.release.store(true, Relaxed);
    let (stats, held) = join(l)?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(IdleSummary::new(args, &stats, held, rss_before, rss_after))
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
