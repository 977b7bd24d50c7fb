//! The results of `idle` as numbers: its summary, table and JSON.
//!
//! Invariants: computed once from merged stats (one process's workers, or
//! every child of --procs) and plain data after that. Per-connection
//! figures divide by `held_at_once`, the connections all open at one
//! instant, and are absent when a sample is. The run fails (`failed`) on
//! any counted error or when fewer connections were held at once than asked.

use serde::Serialize;

use crate::args::IdleArgs;
use crate::probe::Samples;
use crate::stats::{Errors, Percentiles, Stats};

#[derive(Debug, Clone, Serialize)]
pub struct IdleSummary {
    pub url: String,
    pub procs: u32,
    pub threads: u32,
    pub connections_requested: u32,
    pub connections_made: u64,
    /// From the first connect to the last completed handshake.
    pub establish_seconds: f64,
    pub handshakes_per_sec: f64,
    pub handshake_latency_us: Percentiles,
    pub hold_seconds: f64,
    /// Open at the end of the hold, summed over workers and processes.
    pub held: u64,
    /// Open together at one instant: after every process reported its hold
    /// done, before any was released.
    pub held_at_once: u64,
    pub pings: u64,
    pub pongs: u64,
    /// Pings the server sent (its heartbeat), each answered with a pong.
    pub server_pings: u64,
    pub echo_once: bool,
    /// Verified echoes of the --echo-once round.
    pub echoed: u64,
    /// From the release to the last echo, over every process.
    pub echo_round_seconds: Option<f64>,
    pub echo_latency_us: Percentiles,
    pub closed_clean: u64,
    pub server_rss_before: Option<u64>,
    pub server_rss_after: Option<u64>,
    pub server_bytes_per_connection: Option<f64>,
    /// The servers' CPU over the hold, percent of one core.
    pub server_cpu_hold_percent: Option<f64>,
    /// Slab and TCP buffer growth per held connection (both ends, loopback).
    pub kernel_slab_bytes_per_connection: Option<f64>,
    pub kernel_tcp_mem_bytes_per_connection: Option<f64>,
    pub samples: Samples,
    pub errors: Errors,
    pub error_total: u64,
    pub first_error: Option<String>,
}

fn per_conn(before: Option<u64>, after: Option<u64>, n: u64) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if n > 0 => Some((a as f64 - b as f64) / n as f64),
        _ => None,
    }
}

impl IdleSummary {
    pub fn new(args: &IdleArgs, s: &Stats, held: u64, at_once: u64, samples: Samples) -> Self {
        let hs = s.last_handshake_ns.saturating_sub(s.first_connect_ns) as f64 / 1e9;
        let echo_round = (args.echo_once && s.echo_start_ns != u64::MAX && s.received > 0)
            .then(|| s.last_echo_ns.saturating_sub(s.echo_start_ns) as f64 / 1e9);
        let k = (&samples.kernel_before, &samples.kernel_held);
        IdleSummary {
            url: format!("ws://{}{}", args.conn.url.host, args.conn.url.path),
            procs: args.conn.procs.unwrap_or(1),
            threads: args.conn.threads,
            connections_requested: args.conn.connections,
            connections_made: s.connected,
            establish_seconds: hs,
            handshakes_per_sec: if hs > 0.0 {
                s.connected as f64 / hs
            } else {
                0.0
            },
            handshake_latency_us: Percentiles::of(&s.handshake_latency),
            hold_seconds: args.hold,
            held,
            held_at_once: at_once,
            pings: s.pings,
            pongs: s.pongs,
            server_pings: s.pings_in,
            echo_once: args.echo_once,
            echoed: s.received,
            echo_round_seconds: echo_round,
            echo_latency_us: Percentiles::of(&s.latency),
            closed_clean: s.closed_clean,
            server_rss_before: samples.server_rss_before,
            server_rss_after: samples.server_rss_held,
            server_bytes_per_connection: per_conn(
                samples.server_rss_before,
                samples.server_rss_held,
                at_once,
            ),
            server_cpu_hold_percent: samples
                .server_cpu_hold_seconds
                .filter(|_| samples.hold_wall_seconds > 0.0)
                .map(|c| 100.0 * c / samples.hold_wall_seconds),
            kernel_slab_bytes_per_connection: per_conn(k.0.slab_bytes, k.1.slab_bytes, at_once),
            kernel_tcp_mem_bytes_per_connection: per_conn(
                k.0.tcp_mem_bytes,
                k.1.tcp_mem_bytes,
                at_once,
            ),
            samples,
            errors: s.errors,
            error_total: s.errors.total(),
            first_error: s.first_error.clone(),
        }
    }

    /// Any error, or not every connection held at once.
    pub fn failed(&self) -> bool {
        self.error_total > 0 || self.held_at_once < u64::from(self.connections_requested)
    }

    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let h = &self.handshake_latency_us;
        let _ = writeln!(o, "target          {}", self.url);
        if self.procs > 1 {
            let _ = writeln!(
                o,
                "processes       {} ({} thread{} each)",
                self.procs,
                self.threads,
                if self.threads == 1 { "" } else { "s" }
            );
        }
        let _ = writeln!(
            o,
            "connections     {} of {} made in {:.2} s, {:.0} handshakes/s (p50 {:.0} µs, p99 {:.0} µs)",
            self.connections_made,
            self.connections_requested,
            self.establish_seconds,
            self.handshakes_per_sec,
            h.p50,
            h.p99
        );
        let _ = writeln!(
            o,
            "held            {} for {:.1} s, {} open at once",
            self.held, self.hold_seconds, self.held_at_once
        );
        let _ = writeln!(
            o,
            "pings           {} sent, {} pongs; {} server pings answered",
            self.pings, self.pongs, self.server_pings
        );
        if let Some(r) = self.echo_round_seconds {
            let l = &self.echo_latency_us;
            let _ = writeln!(
                o,
                "echo round      {} echoed in {:.3} s (p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs)",
                self.echoed, r, l.p50, l.p99, l.max
            );
        }
        if let (Some(b), Some(a)) = (self.server_rss_before, self.server_rss_after) {
            let _ = writeln!(
                o,
                "server RSS      {:.1} MiB -> {:.1} MiB, {:.0} B per connection",
                b as f64 / 1048576.0,
                a as f64 / 1048576.0,
                self.server_bytes_per_connection.unwrap_or(0.0)
            );
        }
        if let Some(c) = self.server_cpu_hold_percent {
            let _ = writeln!(o, "server CPU      {c:.1}% of a core while holding");
        }
        if let (Some(s), Some(t)) = (
            self.kernel_slab_bytes_per_connection,
            self.kernel_tcp_mem_bytes_per_connection,
        ) {
            let _ = writeln!(
                o,
                "kernel memory   {s:.0} B slab + {t:.0} B TCP buffers per connection (both ends)"
            );
        }
        let _ = writeln!(o, "clean closes    {}", self.closed_clean);
        let errs = self.errors.nonzero();
        if errs.is_empty() {
            let _ = writeln!(o, "errors          none");
        }
        for (name, n) in errs {
            let _ = writeln!(o, "ERROR           {name}: {n}");
        }
        if self.held_at_once < u64::from(self.connections_requested) {
            let _ = writeln!(
                o,
                "ERROR           only {} of {} held at once",
                self.held_at_once, self.connections_requested
            );
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(o, "first error     {e}");
        }
        o
    }
}
