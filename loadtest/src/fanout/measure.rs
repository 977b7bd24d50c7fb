//! The fan-out measurement from start to end: connect every subscriber,
//! publish readiness messages until one reaches everyone, warm up, publish
//! the measured messages one at a time, close, and summarise.
//!
//! Invariants: the phases run in that order, a message is published only
//! when the previous one has reached everyone (or the run has failed), and
//! once the run has failed the phases left before the close are skipped
//! (the close always runs). Nothing is measured unless the readiness check
//! passed; latencies come only from messages that reached every subscriber,
//! counted from just before the publication is written (for the run and
//! for each target's last subscriber); the servers' figures (CPU, memory,
//! system calls) cover the measured messages only.

use std::time::Instant;

use mio::{Events, Poll};
use zerows::client::Keys;
use zerows::MessageKind;

use super::connection::client_config;
use super::event_loop::{Fan, Wait, EVENTS};
use super::servers::Servers;
use super::summary::{Call, Spread, Syscalls, TargetSummary};
use super::tally::Tally;
use super::targets::{Dest, TargetTally};
use super::{FanoutArgs, FanoutError, FanoutSummary};
use crate::procfs;
use crate::stats::Errors;
use crate::strace;
use crate::worker::Clock;

/// Run the fan-out measurement.
pub fn fanout(args: &FanoutArgs) -> Result<FanoutSummary, FanoutError> {
    args.validate()?;
    let n = args.subscribers;
    let need = u64::from(n) + 32;
    let limit = crate::limits::raise_nofile(u64::from(n));
    if limit < need {
        return Err(FanoutError::Files(limit, need));
    }
    let dests: Vec<Dest> = args.targets().into_iter().map(Dest::new).collect();
    let epoch = Instant::now();
    let clock = Clock::new(epoch);
    let mut fan = Fan {
        poll: Poll::new().map_err(|e| FanoutError::Io("epoll", e))?,
        events: Events::with_capacity(EVENTS),
        subs: Vec::with_capacity(n as usize),
        clock,
        keys: Keys::new(),
        cfg: client_config(args.size),
        t: Tally {
            n,
            size: args.size,
            kind: if args.binary {
                MessageKind::Binary
            } else {
                MessageKind::Text
            },
            published: 0,
            strict_from: u64::MAX,
            current: u64::MAX,
            count: 0,
            at_median: 0,
            at_last: 0,
            delivered: 0,
            targets: TargetTally::all(n, dests.len()),
            pending: 0,
            open: 0,
            closed_clean: 0,
            errors: Errors::default(),
            first_error: None,
        },
        quiet: args.quiet,
        dests,
    };
    let timeout_ns = (args.timeout * 1e9) as u64;

    let addrs: Vec<String> = fan
        .dests
        .iter()
        .map(|d| d.target.addr.to_string())
        .collect();
    fan.say(format_args!(
        "connecting {n} subscribers to {}",
        addrs.join(", ")
    ));
    fan.connect(n, (args.connect_timeout * 1e9) as u64, !args.no_spread)?;
    let connect_seconds = epoch.elapsed().as_secs_f64();
    let connections_made = fan.t.open as u64;

    // Readiness: until one message reaches everyone.
    let mut ready_rounds = 0;
    let mut ready = false;
    if !fan.t.failed() {
        fan.say(format_args!(
            "{connections_made} connected in {connect_seconds:.2} s; checking subscriptions"
        ));
        while ready_rounds < args.ready_rounds && !ready {
            ready_rounds += 1;
            let (seq, _) = fan.publish();
            match fan.wait(seq, timeout_ns, true)? {
                Wait::All => ready = true,
                Wait::Stalled | Wait::TimedOut => {}
                Wait::Failed => break,
            }
        }
        if !ready && !fan.t.failed() {
            let (got, rounds) = (fan.t.count, ready_rounds);
            fan.t.errors.unanswered += u64::from(n - got);
            fan.t.note(|| {
                format!("after {rounds} readiness messages the last reached only {got} of {n} subscribers (not subscribed?)")
            });
        }
    }
    fan.t.strict_from = fan.t.published;

    // Warm-up, then the measured messages.
    let mut last = Vec::with_capacity(args.messages as usize);
    let mut median = Vec::with_capacity(args.messages as usize);
    let mut last_of: Vec<Vec<u64>> = (0..fan.dests.len())
        .map(|_| Vec::with_capacity(args.messages as usize))
        .collect();
    let mut servers = None;
    let mut syscalls = None;
    let (mut cpu0, mut cpu1, mut measured_seconds, mut delivered0) = (0.0, 0.0, 0.0, 0);
    let mut delivered0_of = vec![0; fan.dests.len()];
    if ready {
        for _ in 0..args.warmup {
            let (seq, _) = fan.publish();
            match fan.wait(seq, timeout_ns, false)? {
                Wait::All => {}
                Wait::TimedOut => fan.timed_out(seq, args.timeout),
                Wait::Stalled | Wait::Failed => {}
            }
            if fan.t.failed() {
                break;
            }
        }
    }
    if ready && !fan.t.failed() {
        let tracer = match (args.strace, args.server_pid.first()) {
            (true, Some(&pid)) => Some(strace::attach(pid).map_err(FanoutError::Strace)?),
            _ => None,
        };
        fan.say(format_args!(
            "ready after {ready_rounds} readiness message(s); measuring {} messages",
            args.messages
        ));
        delivered0 = fan.t.delivered;
        for (d, x) in delivered0_of.iter_mut().zip(&fan.t.targets) {
            *d = x.delivered;
        }
        servers = Some(Servers::begin(&args.server_pid, &fan.t.targets));
        cpu0 = procfs::self_cpu_seconds();
        let t0 = Instant::now();
        for _ in 0..args.messages {
            let (seq, sent) = fan.publish();
            match fan.wait(seq, timeout_ns, false)? {
                Wait::All => {
                    last.push(fan.t.at_last.saturating_sub(sent));
                    median.push(fan.t.at_median.saturating_sub(sent));
                    for (l, x) in last_of.iter_mut().zip(&fan.t.targets) {
                        l.push(x.at_last.saturating_sub(sent));
                    }
                }
                Wait::TimedOut => fan.timed_out(seq, args.timeout),
                Wait::Stalled | Wait::Failed => {}
            }
            if fan.t.failed() {
                break;
            }
        }
        measured_seconds = t0.elapsed().as_secs_f64();
        cpu1 = procfs::self_cpu_seconds();
        if let Some(s) = servers.as_mut() {
            s.end(&fan.t.targets, measured_seconds);
        }
        if let Some(tr) = tracer {
            let c = tr.detach().map_err(FanoutError::Strace)?;
            let deliveries = (fan.t.delivered - delivered0).max(1) as f64;
            syscalls = Some(Syscalls {
                total: c.total,
                per_delivery: c.total as f64 / deliveries,
                per_message: c.total as f64 / last.len().max(1) as f64,
                top: c
                    .calls
                    .iter()
                    .take(6)
                    .map(|(name, k)| Call {
                        name: name.clone(),
                        calls: *k,
                        per_delivery: *k as f64 / deliveries,
                    })
                    .collect(),
            });
        }
    }
    let delivered = fan.t.delivered - delivered0;
    fan.say(format_args!("closing"));
    fan.close()?;
    let cpu = cpu1 - cpu0;
    let t = &fan.t;
    let first = servers.as_ref().and_then(|s| s.first_over(delivered));
    let targets = fan
        .dests
        .iter()
        .zip(&t.targets)
        .zip(delivered0_of.iter().zip(last_of.iter_mut()))
        .enumerate()
        .map(|(k, ((d, x), (&d0, last)))| {
            let server = servers.as_ref().and_then(|s| s.of_target(k));
            TargetSummary {
                url: d.url.clone(),
                subscribers: x.n,
                delivered: if ready { x.delivered - d0 } else { 0 },
                delivered_total: x.delivered,
                latency_last_us: Spread::of(last),
                server_user_us_per_delivery: server.as_ref().and_then(|s| s.user_us_per_delivery),
                server_system_us_per_delivery: server
                    .as_ref()
                    .and_then(|s| s.system_us_per_delivery),
                server: server.map(|s| s.server),
            }
        })
        .collect();
    Ok(FanoutSummary {
        url: format!("ws://{}{}", args.url.host, args.url.path),
        subscribers: n,
        messages: args.messages,
        warmup: args.warmup,
        size: args.size,
        text: !args.binary,
        connections_made,
        connect_seconds,
        ready_rounds,
        messages_complete: last.len() as u64,
        delivered: if ready { delivered } else { 0 },
        delivered_total: t.delivered,
        measured_seconds,
        total_seconds: epoch.elapsed().as_secs_f64(),
        deliveries_per_sec: delivered as f64 / measured_seconds.max(1e-9),
        latency_last_us: Spread::of(&mut last),
        latency_median_us: Spread::of(&mut median),
        generator_cpu_seconds: cpu,
        generator_cpu_percent: 100.0 * cpu / measured_seconds.max(1e-9),
        generator_cpu_us_per_delivery: cpu * 1e6 / delivered.max(1) as f64,
        server_user_us_per_delivery: first.as_ref().and_then(|s| s.user_us_per_delivery),
        server_system_us_per_delivery: first.as_ref().and_then(|s| s.system_us_per_delivery),
        server: first.map(|s| s.server),
        syscalls,
        closed_clean: t.closed_clean,
        errors: t.errors,
        error_total: t.errors.total(),
        first_error: t.first_error.clone(),
        targets,
    })
}
