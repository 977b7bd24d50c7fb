//! The result of a fan-out run: deliveries, latency spreads, CPU, memory
//! and system calls, errors; printed as a table or written as JSON.
//!
//! Invariants: latencies are in microseconds, nearest-rank percentiles
//! over the measured messages that reached every subscriber;
//! [`FanoutSummary::failed`] holds whenever an error was counted or a
//! measured message did not reach every subscriber, and the exit status
//! follows from it. The fields of a single-target run keep their meaning
//! with several targets (the top-level server figures are then the first
//! pid's over every delivery); `targets` holds one entry per target, in
//! order, whose deliveries add up to the run's.

use serde::Serialize;

use crate::report::ServerSample;
use crate::stats::Errors;

/// Latency figures over the measured messages, in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Spread {
    /// Nearest-rank percentiles of `ns` (sorted here).
    pub fn of(ns: &mut [u64]) -> Spread {
        if ns.is_empty() {
            return Spread::default();
        }
        ns.sort_unstable();
        let rank = |q: f64| ns[((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len()) - 1];
        let us = |v: u64| v as f64 / 1000.0;
        Spread {
            median: us(rank(0.5)),
            min: us(ns[0]),
            p99: us(rank(0.99)),
            max: us(ns[ns.len() - 1]),
            mean: ns.iter().map(|&v| v as f64).sum::<f64>() / ns.len() as f64 / 1000.0,
        }
    }
}

/// The system calls of the server over the measured messages.
#[derive(Debug, Clone, Serialize)]
pub struct Syscalls {
    pub total: u64,
    pub per_delivery: f64,
    pub per_message: f64,
    /// The most frequent calls.
    pub top: Vec<Call>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub name: String,
    pub calls: u64,
    pub per_delivery: f64,
}

/// One target's share of the run.
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    pub url: String,
    /// Connections that open it (the first target has the publisher).
    pub subscribers: u32,
    /// Verified deliveries to its subscribers, of measured messages and
    /// over the whole run.
    pub delivered: u64,
    pub delivered_total: u64,
    /// From each publication to its receipt by this target's last
    /// subscriber.
    pub latency_last_us: Spread,
    /// Its server (the --server-pid of the same rank), per delivery to
    /// this target's subscribers; `messages` there counts those.
    pub server: Option<ServerSample>,
    pub server_user_us_per_delivery: Option<f64>,
    pub server_system_us_per_delivery: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FanoutSummary {
    pub url: String,
    pub subscribers: u32,
    pub messages: u32,
    pub warmup: u32,
    pub size: usize,
    pub text: bool,
    pub connections_made: u64,
    pub connect_seconds: f64,
    /// Readiness messages published before one reached everyone.
    pub ready_rounds: u32,
    /// Measured messages that reached every subscriber.
    pub messages_complete: u64,
    /// Verified deliveries of measured messages (messages × subscribers
    /// when all went well), and over the whole run.
    pub delivered: u64,
    pub delivered_total: u64,
    /// Wall time of the measured messages, and of the whole run.
    pub measured_seconds: f64,
    pub total_seconds: f64,
    pub deliveries_per_sec: f64,
    /// From each publication to its receipt by the last subscriber, and by
    /// the median one (the ⌈N/2⌉-th).
    pub latency_last_us: Spread,
    pub latency_median_us: Spread,
    pub generator_cpu_seconds: f64,
    pub generator_cpu_percent: f64,
    pub generator_cpu_us_per_delivery: f64,
    /// The server (the first --server-pid) over the measured messages;
    /// `messages` there counts deliveries to every subscriber, on every
    /// target.
    pub server: Option<ServerSample>,
    /// The server's CPU time per delivery in user space and in the kernel
    /// (on loopback the kernel part includes the receiving side's TCP work).
    pub server_user_us_per_delivery: Option<f64>,
    pub server_system_us_per_delivery: Option<f64>,
    pub syscalls: Option<Syscalls>,
    pub closed_clean: u64,
    pub errors: Errors,
    pub error_total: u64,
    pub first_error: Option<String>,
    /// Per target, the url first, then each --also.
    pub targets: Vec<TargetSummary>,
}

impl FanoutSummary {
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let (l, m) = (&self.latency_last_us, &self.latency_median_us);
        let _ = writeln!(o, "target          {}", self.url);
        let _ = writeln!(
            o,
            "fan-out         {} subscribers, {} messages of {} B {} (+{} warm-up), one at a time",
            self.subscribers,
            self.messages,
            self.size,
            if self.text { "text" } else { "binary" },
            self.warmup
        );
        let _ = writeln!(
            o,
            "connections     {} of {} made in {:.2} s; ready after {} readiness message(s)",
            self.connections_made, self.subscribers, self.connect_seconds, self.ready_rounds
        );
        let _ = writeln!(
            o,
            "delivered       {} verified in {:.2} s = {:.0}/s ({} in all, {:.2} s run)",
            self.delivered,
            self.measured_seconds,
            self.deliveries_per_sec,
            self.delivered_total,
            self.total_seconds
        );
        let _ = writeln!(
            o,
            "to last (µs)    median {:.0}  min {:.0}  p99 {:.0}  max {:.0}  mean {:.0}",
            l.median, l.min, l.p99, l.max, l.mean
        );
        let _ = writeln!(
            o,
            "to median (µs)  median {:.0}  min {:.0}  p99 {:.0}  max {:.0}  mean {:.0}",
            m.median, m.min, m.p99, m.max, m.mean
        );
        let _ = writeln!(
            o,
            "generator CPU   {:.0}% of a core, {:.3} µs per delivery",
            self.generator_cpu_percent, self.generator_cpu_us_per_delivery
        );
        if let Some(s) = &self.server {
            let _ = writeln!(
                o,
                "server CPU      {:.0}% of a core, {:.3} µs per delivery ({:.3} user + {:.3} system), RSS {:.1} MiB (peak {:.1} MiB){}",
                s.cpu_percent,
                s.cpu_us_per_message,
                self.server_user_us_per_delivery.unwrap_or(0.0),
                self.server_system_us_per_delivery.unwrap_or(0.0),
                s.rss_bytes as f64 / 1048576.0,
                s.peak_rss_bytes as f64 / 1048576.0,
                if self.targets.len() > 1 {
                    format!("; pid {}, per delivery to any target", s.pid)
                } else {
                    String::new()
                }
            );
        }
        if self.targets.len() > 1 {
            self.target_lines(&mut o);
        }
        if let Some(s) = &self.syscalls {
            let top: Vec<String> = s
                .top
                .iter()
                .map(|c| format!("{} {:.3}", c.name, c.per_delivery))
                .collect();
            let _ = writeln!(
                o,
                "server syscalls {} = {:.3} per delivery ({})",
                s.total,
                s.per_delivery,
                top.join(", ")
            );
        }
        let _ = writeln!(o, "clean closes    {}", self.closed_clean);
        let errs = self.errors.nonzero();
        if errs.is_empty() {
            let _ = writeln!(o, "errors          none");
        } else {
            for (name, n) in errs {
                let _ = writeln!(o, "ERROR           {name}: {n}");
            }
        }
        if let Some(e) = &self.first_error {
            let _ = writeln!(o, "first error     {e}");
        }
        o
    }

    fn target_lines(&self, o: &mut String) {
        use std::fmt::Write;
        for (k, t) in self.targets.iter().enumerate() {
            let l = &t.latency_last_us;
            let _ = writeln!(
                o,
                "target {k:<8} {}: {} subscribers{}, {} delivered",
                t.url,
                t.subscribers,
                if k == 0 { " (with the publisher)" } else { "" },
                t.delivered
            );
            let _ = writeln!(
                o,
                "  to last (µs)  median {:.0}  min {:.0}  p99 {:.0}  max {:.0}  mean {:.0}",
                l.median, l.min, l.p99, l.max, l.mean
            );
            if let Some(s) = &t.server {
                let _ = writeln!(
                    o,
                    "  server CPU    pid {}: {:.0}% of a core, {:.3} µs per delivery to this target ({:.3} user + {:.3} system)",
                    s.pid,
                    s.cpu_percent,
                    s.cpu_us_per_message,
                    t.server_user_us_per_delivery.unwrap_or(0.0),
                    t.server_system_us_per_delivery.unwrap_or(0.0),
                );
            }
        }
    }

    /// Whether the run went wrong (the exit status follows from this).
    pub fn failed(&self) -> bool {
        self.error_total > 0 || self.messages_complete < u64::from(self.messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_spread() {
        let mut v: Vec<u64> = (1..=100).rev().map(|k| k * 1000).collect();
        let s = Spread::of(&mut v);
        assert_eq!((s.min, s.median, s.p99, s.max), (1.0, 50.0, 99.0, 100.0));
        assert!((s.mean - 50.5).abs() < 1e-9);
        let mut one = [7000u64];
        let s = Spread::of(&mut one);
        assert_eq!((s.min, s.median, s.p99, s.max), (7.0, 7.0, 7.0, 7.0));
        assert_eq!(Spread::of(&mut []), Spread::default());
    }
}
