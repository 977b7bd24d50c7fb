//! The parent side of `--procs P`: start P children of this executable,
//! each on its slice of the connection ids, move them through the phases
//! together, and sum their reports into one summary.
//!
//! Invariants: a phase starts in no child until every child has finished
//! the one before (all connected before any sends or holds; all held before
//! any is released), so what the children report at a phase boundary was
//! true in all of them at once. The whole exchange has one deadline,
//! derived from the arguments; when it passes, or a child fails, every
//! child is killed and reaped (also when the parent returns early: `Kids`
//! kills on drop). The parent opens no connection itself.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::args::{IdleArgs, RunArgs};
use crate::idle_report::IdleSummary;
use crate::probe::Probe;
use crate::report::{ServerSample, Summary};
use crate::run::RunError;
use crate::stats::Stats;
use crate::wire::{mono_ns, Done, Report, GO, RELEASE};

/// Lines a child may write at most (three reports, with room to spare).
const MAX_LINES: usize = 64;
/// How long children have to exit after their final report.
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// Slack on every overall deadline: starting processes, the close phase.
const SLACK_SECS: f64 = 60.0;

enum Line {
    Report(Report),
    Garbled(String),
    End,
}

struct Kid {
    child: Child,
    stdin: Option<ChildStdin>,
}

struct Kids {
    kids: Vec<Kid>,
    /// Children whose stdout has ended (normal only after their last report).
    ended: Vec<bool>,
    lines: Receiver<(usize, Line)>,
    deadline: Instant,
}

impl Kids {
    /// Start `procs` children of this executable with our own arguments
    /// plus `--child K`; everything must be over within `secs`.
    fn spawn(procs: u32, secs: f64) -> Result<Self, RunError> {
        let exe = std::env::current_exe()
            .map_err(|e| RunError::Procs(format!("cannot find our own executable: {e}")))?;
        let argv = crate::with_default_subcommand();
        let (tx, lines) = mpsc::channel();
        let mut kids = Kids {
            kids: Vec::new(),
            ended: vec![false; procs as usize],
            lines,
            deadline: Instant::now() + Duration::from_secs_f64(secs),
        };
        for k in 0..procs {
            // Right after the subcommand, so a `--` later on cannot swallow it.
            let mut args = argv[1..].to_vec();
            args.insert(1, "--child".into());
            args.insert(2, k.to_string().into());
            let mut child = Command::new(&exe)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| RunError::Procs(format!("cannot start child {k}: {e}")))?;
            let out = child.stdout.take().expect("stdout is piped");
            let stdin = child.stdin.take();
            kids.kids.push(Kid { child, stdin });
            let tx = tx.clone();
            let i = k as usize;
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().take(MAX_LINES) {
                    let Ok(line) = line else { break };
                    let msg = match serde_json::from_str::<Report>(&line) {
                        Ok(r) => Line::Report(r),
                        Err(_) => Line::Garbled(line),
                    };
                    if tx.send((i, msg)).is_err() {
                        return;
                    }
                }
                tx.send((i, Line::End)).ok();
            });
        }
        Ok(kids)
    }

    fn ended_early(&mut self, k: usize, what: &str) -> RunError {
        let status = self.kids[k].child.wait().ok();
        RunError::Procs(format!(
            "child {k} ended before it was {what} ({})",
            status.map_or("status unknown".into(), |s| s.to_string())
        ))
    }

    fn send_all(&mut self, word: &str) -> Result<(), RunError> {
        for (k, kid) in self.kids.iter_mut().enumerate() {
            let stdin = kid.stdin.as_mut().expect("open until the end");
            writeln!(stdin, "{word}")
                .and_then(|()| stdin.flush())
                .map_err(|e| RunError::Procs(format!("cannot tell child {k} {word:?}: {e}")))?;
        }
        Ok(())
    }

    /// Wait for one report from every child, taken by `pick`; `tick` runs
    /// at least every 100 ms meanwhile.
    fn gather<T>(
        &mut self,
        what: &str,
        pick: impl Fn(Report) -> Option<T>,
        mut tick: impl FnMut(),
    ) -> Result<Vec<T>, RunError> {
        let mut got: Vec<Option<T>> = self.kids.iter().map(|_| None).collect();
        if let Some(k) = self.ended.iter().position(|&e| e) {
            return Err(self.ended_early(k, what));
        }
        while got.iter().any(Option::is_none) {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RunError::Procs(format!(
                    "the children were not all {what} by the deadline; stopped them"
                )));
            }
            tick();
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok((k, Line::Report(r))) => match pick(r) {
                    Some(t) if got[k].is_none() => got[k] = Some(t),
                    _ => {
                        return Err(RunError::Procs(format!(
                            "child {k} reported out of turn (waiting for {what})"
                        )))
                    }
                },
                Ok((k, Line::Garbled(l))) => {
                    return Err(RunError::Procs(format!("child {k} wrote {l:?}")))
                }
                Ok((k, Line::End)) => {
                    self.ended[k] = true;
                    if got[k].is_none() {
                        return Err(self.ended_early(k, what));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(RunError::Procs("lost every child's output".into()))
                }
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// Every child has reported for the last time: let them exit, and fail
    /// if one does not exit cleanly in time.
    fn finish(mut self) -> Result<(), RunError> {
        for kid in &mut self.kids {
            kid.stdin = None;
        }
        let until = Instant::now() + EXIT_GRACE;
        for (k, kid) in self.kids.iter_mut().enumerate() {
            let status = loop {
                match kid.child.try_wait() {
                    Ok(Some(s)) => break s,
                    Ok(None) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        return Err(RunError::Procs(format!(
                            "child {k} did not exit after its report"
                        )))
                    }
                }
            };
            if !status.success() {
                return Err(RunError::Procs(format!("child {k} exited with {status}")));
            }
        }
        Ok(())
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        for kid in &mut self.kids {
            if let Ok(None) = kid.child.try_wait() {
                kid.child.kill().ok();
            }
            kid.child.wait().ok();
        }
    }
}

fn connected(r: Report) -> Option<(u64, u64)> {
    match r {
        Report::Connected { connected, errors } => Some((connected, errors)),
        _ => None,
    }
}

fn done(r: Report) -> Option<Done> {
    match r {
        Report::Done(d) => Some(*d),
        _ => None,
    }
}

/// The children's stats in the parent's time, merged.
fn merge(done: Vec<Done>, epoch: u64) -> Stats {
    let mut total: Option<Stats> = None;
    for d in done {
        let s = d.stats.into_stats(epoch);
        match total.as_mut() {
            None => total = Some(s),
            Some(t) => t.merge(&s),
        }
    }
    total.expect("at least one child")
}

fn announce(conns: &[(u64, u64)], of: u32, t0: Instant) {
    let made: u64 = conns.iter().map(|c| c.0).sum();
    let errors: u64 = conns.iter().map(|c| c.1).sum();
    eprintln!(
        "{made} of {of} connections made in {} processes after {:.1} s ({errors} errors)",
        conns.len(),
        t0.elapsed().as_secs_f64()
    );
}

pub fn run(args: &RunArgs) -> Result<Summary, RunError> {
    let epoch = mono_ns();
    let t0 = Instant::now();
    let procs = args.conn.procs.unwrap_or(1);
    let secs = args.conn.connect_bound() + args.duration() + args.drain + SLACK_SECS;
    let mut kids = Kids::spawn(procs, secs)?;
    let conns = kids.gather("connected", connected, || {})?;
    announce(&conns, args.conn.connections, t0);
    kids.send_all(GO)?;
    // The children start START_DELAY after hearing "go"; the server is
    // sampled over the same measured window.
    let start = Instant::now() + Duration::from_nanos(crate::run::START_DELAY_NS);
    let warm = start + Duration::from_secs_f64(args.warmup);
    let end = start + Duration::from_secs_f64(args.duration());
    let mut server: Option<ServerSample> = None;
    let mut sampled = false;
    let done = kids.gather("done", done, || {
        let (Some(pid), now) = (args.server_pid, Instant::now()) else {
            return;
        };
        if server.is_none() && now >= warm {
            server = Some(ServerSample::begin(pid, 0));
        }
        if let Some(s) = server.as_mut().filter(|_| !sampled && now >= end) {
            s.end(0, (now - warm).as_secs_f64());
            sampled = true;
        }
    })?;
    kids.finish()?;
    let cpu = done.iter().map(|d| d.cpu_seconds).sum();
    let wall = done.iter().map(|d| d.wall_seconds).fold(0.0, f64::max);
    let stats = merge(done, epoch);
    let server = server.filter(|_| sampled).map(|mut s| {
        s.set_messages(stats.measured);
        s
    });
    Ok(Summary::new(args, &stats, cpu, wall, server))
}

pub fn idle(args: &IdleArgs) -> Result<IdleSummary, RunError> {
    let epoch = mono_ns();
    let t0 = Instant::now();
    let procs = args.conn.procs.unwrap_or(1);
    let secs = args.conn.connect_bound() + args.hold + 2.0 * args.echo_timeout + SLACK_SECS;
    let mut probe = Probe::begin(&args.pid);
    let mut kids = Kids::spawn(procs, secs)?;
    let conns = kids.gather("connected", connected, || {})?;
    announce(&conns, args.conn.connections, t0);
    kids.send_all(GO)?;
    probe.hold_start();
    let held = kids.gather(
        "held",
        |r| match r {
            Report::Held { held } => Some(held),
            _ => None,
        },
        || {},
    )?;
    probe.held();
    eprintln!(
        "{} connections held in {procs} processes after {:.1} s; releasing",
        held.iter().sum::<u64>(),
        t0.elapsed().as_secs_f64()
    );
    kids.send_all(RELEASE)?;
    let done = kids.gather("done", done, || {})?;
    kids.finish()?;
    let held = done.iter().map(|d| d.held).sum();
    let at_once = done.iter().map(|d| d.at_once).sum();
    let stats = merge(done, epoch);
    Ok(IdleSummary::new(
        args,
        &stats,
        held,
        at_once,
        probe.samples(),
    ))
}
