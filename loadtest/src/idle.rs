//! `idle`: open every connection, hold them all, optionally echo one message
//! on each, then close them all with 1000 — in this process, or split over
//! the children of --procs.
//!
//! Invariants: phases are in lock step over every worker (and, through the
//! parent, every process): the hold starts only when every connection is
//! made or given up, and no connection is released (to echo or close) until
//! every worker has finished holding, so `at_once` counts connections that
//! were all open at one instant. Every wait ends by a worker's deadline or
//! a bounded wait for the parent.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use zerows::MessageKind;

use crate::args::IdleArgs;
use crate::child::Gate;
use crate::client::Plan;
use crate::idle_report::IdleSummary;
use crate::probe::Probe;
use crate::run::{self, RunError, Setup};
use crate::stats::Stats;
use crate::wire::{Report, RELEASE};
use crate::worker::Task;

pub fn idle(args: &IdleArgs) -> Result<IdleSummary, RunError> {
    args.validate().map_err(RunError::Args)?;
    if args.conn.is_parent() {
        return crate::procs::idle(args);
    }
    let mut probe = Probe::begin(&args.pid);
    let p = phases(args, None, Some(&mut probe))?;
    Ok(IdleSummary::new(
        args,
        &p.stats,
        p.held,
        p.at_once,
        probe.samples(),
    ))
}

/// One process's share of `idle`.
pub struct Phases {
    pub stats: Stats,
    pub held: u64,
    pub at_once: u64,
    pub epoch_mono: u64,
}

/// Run the phases for this process's connections. `gate`: a child of
/// --procs, which reports each phase and waits for the parent's word;
/// `probe`: sampled as each phase begins.
pub fn phases(
    args: &IdleArgs,
    gate: Option<&Gate>,
    mut probe: Option<&mut Probe>,
) -> Result<Phases, RunError> {
    let plan = Plan {
        target: args.conn.url.clone(),
        sizes: vec![crate::payload::MIN_SIZE],
        kind: MessageKind::Binary,
        window: 1,
        reply: crate::reply::ReplyMode::Echo,
        payload: crate::payload::Pattern::Random,
        deflate: false,
        check_close: true,
    };
    let conns = f64::from(args.conn.connections);
    let interval = args.ping_interval;
    let task = |fraction: f64| Task::Idle {
        hold_ns: (args.hold * 1e9) as u64,
        ping_rate: if interval > 0.0 {
            conns * fraction / interval
        } else {
            0.0
        },
        echo_once: args.echo_once,
        echo_timeout_ns: (args.echo_timeout * 1e9) as u64,
    };
    let setup = Setup {
        plan,
        messages: Some(0),
        task,
        timeline_secs: args.hold.ceil() as usize + 2,
        spin: false,
    };
    let l = run::launch(&args.conn, setup)?;
    let pb = if gate.is_none() {
        run::progress_bar()
    } else {
        None
    };
    run::start_when_connected(&l, &pb, gate.map(|g| (g, &args.conn)))?;
    if let Some(p) = probe.as_deref_mut() {
        p.hold_start();
    }
    let workers = l.handles.len();
    // Bounded: every worker ends its hold by its deadline (or has failed,
    // which join reports).
    while l.shared.held_workers.load(Relaxed) < workers
        && !l.handles.iter().any(|h| h.is_finished())
    {
        if let Some(pb) = &pb {
            pb.set_message(run::live_line(&l.shared, "holding", None));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(p) = probe {
        p.held();
    }
    if let Some(g) = gate {
        g.report(&Report::Held {
            held: l.shared.held.load(Relaxed),
        })?;
        // The other children end their holds within moments of ours.
        g.wait(RELEASE, 120.0)?;
    }
    if let Some(pb) = &pb {
        pb.set_message(if args.echo_once {
            "echoing and closing"
        } else {
            "closing"
        });
    }
    l.shared.release.store(true, Relaxed);
    let epoch_mono = l.epoch_mono;
    let (stats, held, at_once) = run::join(l)?;
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    Ok(Phases {
        stats,
        held,
        at_once,
        epoch_mono,
    })
}
