//! The child side of `--procs`: run this process's slice of the connections,
//! phase by phase as the parent says, and report on stdout.
//!
//! Invariants: a child never outlives its parent (the kernel kills it when
//! the parent dies, and it exits when its stdin ends before its final
//! report); every wait for the parent is bounded; stdout carries only
//! `wire::Report` lines (the table and other outputs are the parent's).

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use crate::args::{IdleArgs, RunArgs};
use crate::run::RunError;
use crate::wire::{Done, Report, StatsWire};

/// Commands a parent sends at most (`go`, `release`, with room to spare).
const MAX_COMMANDS: usize = 16;

/// The link to the parent.
pub struct Gate {
    commands: Receiver<String>,
    finished: Arc<AtomicBool>,
}

impl Gate {
    pub fn new() -> Self {
        // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and
        // touches no memory of ours.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
        let (tx, commands) = mpsc::channel();
        let finished = Arc::new(AtomicBool::new(false));
        let done = finished.clone();
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            let mut lines = stdin.lock().lines();
            for _ in 0..MAX_COMMANDS {
                match lines.next() {
                    Some(Ok(l)) => {
                        if tx.send(l.trim().to_string()).is_err() {
                            return;
                        }
                    }
                    _ => break,
                }
            }
            // The parent is gone (or broke the protocol): holding its
            // connections any longer would only skew the next run.
            if !done.load(Relaxed) {
                eprintln!("zerows-loadtest child: the parent went away; exiting");
                std::process::exit(3);
            }
        });
        Gate { commands, finished }
    }

    pub fn report(&self, r: &Report) -> Result<(), RunError> {
        let line = serde_json::to_string(r).map_err(|e| RunError::Child(e.to_string()))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| RunError::Child(format!("cannot report to the parent: {e}")))
    }

    /// Wait at most `secs` for the parent to say `word`.
    pub fn wait(&self, word: &str, secs: f64) -> Result<(), RunError> {
        match self
            .commands
            .recv_timeout(Duration::from_secs_f64(secs.max(0.0)))
        {
            Ok(w) if w == word => Ok(()),
            Ok(w) => Err(RunError::Child(format!("expected {word:?}, got {w:?}"))),
            Err(RecvTimeoutError::Timeout) => Err(RunError::Child(format!(
                "no {word:?} from the parent in {secs:.0} s"
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                Err(RunError::Child("the parent went away".into()))
            }
        }
    }

    /// Send the final report; the parent may close stdin after it.
    fn finish(&self, d: Done) -> Result<(), RunError> {
        self.finished.store(true, Relaxed);
        self.report(&Report::Done(Box::new(d)))
    }
}

fn exit(r: Result<(), RunError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `run` as child K: verdicts on errors are the parent's, so a run with
/// errors still exits 0 once reported.
pub fn run(args: &RunArgs) -> ExitCode {
    exit((|| {
        args.validate().map_err(RunError::Args)?;
        let gate = Gate::new();
        let t = crate::run::traffic(args, Some(&gate))?;
        gate.finish(Done {
            stats: StatsWire::new(&t.stats, t.epoch_mono),
            held: 0,
            at_once: 0,
            cpu_seconds: t.cpu,
            wall_seconds: t.wall,
        })
    })())
}

/// `idle` as child K.
pub fn idle(args: &IdleArgs) -> ExitCode {
    exit((|| {
        args.validate().map_err(RunError::Args)?;
        let gate = Gate::new();
        let p = crate::idle::phases(args, Some(&gate), None)?;
        gate.finish(Done {
            stats: StatsWire::new(&p.stats, p.epoch_mono),
            held: p.held,
            at_once: p.at_once,
            cpu_seconds: 0.0,
            wall_seconds: 0.0,
        })
    })())
}
