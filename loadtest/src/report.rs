//! The results of a run as numbers: the summary, its table and its JSON.
//!
//! Invariants: a summary is computed once from merged worker stats and is
//! plain data (serialisable as is for --json); rates divide by the measured
//! window only; the exit status follows from `errors.total()` alone.

use serde::Serialize;

use crate::args::RunArgs;
use crate::procfs;
use crate::stats::{Errors, Percentiles, Stats};

/// The server's CPU time and memory over the measured window.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ServerSample {
    pub pid: u32,
    #[serde(skip)]
    cpu0: f64,
    #[serde(skip)]
    recv0: u64,
    /// User and system CPU seconds at the start.
    #[serde(skip)]
    split0: Option<(f64, f64)>,
    pub cpu_seconds: f64,
    /// Percent of one core.
    pub cpu_percent: f64,
    /// Echoes received while the server was sampled.
    pub messages: u64,
    /// Server CPU time per echoed message, microseconds.
    pub cpu_us_per_message: f64,
    /// The same, in user space and in the kernel (clock ticks: coarse over
    /// short windows).
    pub user_us_per_message: f64,
    pub system_us_per_message: f64,
    /// System calls per echoed message, with `--strace` (a separate run:
    /// strace slows the server, so its CPU figures are not the ones to
    /// quote), and the most frequent calls per message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syscalls_per_message: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub syscalls: Vec<(String, f64)>,
    pub rss_bytes: u64,
    pub peak_rss_bytes: u64,
}

impl ServerSample {
    pub fn begin(pid: u32, received: u64) -> Self {
        ServerSample {
            pid,
            cpu0: procfs::cpu_seconds(pid).unwrap_or(0.0),
            split0: procfs::cpu_split(pid),
            recv0: received,
            ..Default::default()
        }
    }

    /// The system calls strace counted while `echoes` came back.
    pub fn set_syscalls(&mut self, c: &crate::strace::Counts, echoes: u64) {
        let per = |n: u64| n as f64 / echoes.max(1) as f64;
        self.syscalls_per_message = Some(per(c.total));
        self.syscalls = c
            .calls
            .iter()
            .take(6)
            .map(|(n, k)| (n.clone(), per(*k)))
            .collect();
    }

    /// The echoes of the window, when they were only counted after it
    /// (--procs: the children count them).
    pub fn set_messages(&mut self, messages: u64) {
        self.messages = messages;
        self.cpu_us_per_message = if messages > 0 {
            self.cpu_seconds * 1e6 / messages as f64
        } else {
            0.0
        };
    }

    pub fn end(&mut self, received: u64, wall: f64) {
        self.cpu_seconds = procfs::cpu_seconds(self.pid).unwrap_or(self.cpu0) - self.cpu0;
        self.cpu_percent = 100.0 * self.cpu_seconds / wall.max(1e-9);
        self.messages = received - self.recv0;
        self.cpu_us_per_message = if self.messages > 0 {
            self.cpu_seconds * 1e6 / self.messages as f64
        } else {
            0.0
        };
        if let (Some((u0, s0)), Some((u1, s1)), true) =
            (self.split0, procfs::cpu_split(self.pid), self.messages > 0)
        {
            let per = |d: f64| d * 1e6 / self.messages as f64;
            self.user_us_per_message = per(u1 - u0);
            self.system_us_per_message = per(s1 - s0);
        }
        self.rss_bytes = procfs::status_bytes(self.pid, "VmRSS").unwrap_or(0);
        self.peak_rss_bytes = procfs::status_bytes(self.pid, "VmHWM").unwrap_or(0);
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub url: String,
    pub mode: crate::args::Mode,
    pub text: bool,
    /// What the server was expected to answer.
    pub reply: crate::reply::ReplyMode,
    /// What followed each payload's header.
    pub payload: crate::payload::Pattern,
    /// permessage-deflate was offered (the server may have declined).
    pub deflate: bool,
    pub sizes: Vec<usize>,
    pub inflight: u32,
    pub rate: Option<f64>,
    pub threads: u32,
    /// Processes the connections were split over (--procs).
    pub procs: u32,
    pub connections_requested: u32,
    pub connections_made: u64,
    pub handshake_seconds: f64,
    pub handshakes_per_sec: f64,
    pub handshake_latency_us: Percentiles,
    pub measured_seconds: f64,
    pub sent: u64,
    pub received: u64,
    pub messages: u64,
    pub messages_per_sec: f64,
    pub mb_per_sec_out: f64,
    pub mb_per_sec_in: f64,
    pub latency_us: Percentiles,
    /// (percentile, µs) points of the latency distribution.
    pub latency_curve: Vec<(f64, f64)>,
    /// Echoes received in each second since sending started.
    pub timeline: Vec<u64>,
    /// Seconds of sending (the timeline goes on into the drain).
    pub sending_seconds: f64,
    pub closed_clean: u64,
    pub errors: Errors,
    pub error_total: u64,
    /// The first error, in words.
    pub first_error: Option<String>,
    pub generator_cpu_seconds: f64,
    /// Percent of one core, over the measured window.
    pub generator_cpu_percent: f64,
    pub server: Option<ServerSample>,
}

impl Summary {
    pub fn new(
        args: &RunArgs,
        s: &Stats,
        cpu: f64,
        wall: f64,
        server: Option<ServerSample>,
    ) -> Self {
        let hs = s.last_handshake_ns.saturating_sub(s.first_connect_ns) as f64 / 1e9;
        let (w0, w1) = s.window;
        let measured = w1.saturating_sub(w0) as f64 / 1e9;
        let per_sec = |v: u64| {
            if measured > 0.0 {
                v as f64 / measured
            } else {
                0.0
            }
        };
        let mut timeline = s.timeline.clone();
        while timeline.len() > 1 && timeline.last() == Some(&0) {
            timeline.pop();
        }
        Summary {
            url: format!("ws://{}{}", args.conn.url.host, args.conn.url.path),
            mode: args.mode,
            text: args.sends_text(),
            reply: args.reply,
            payload: args.payload,
            deflate: args.deflate,
            sizes: args.sizes.clone(),
            inflight: args.window(),
            rate: args.rate,
            threads: args.conn.threads,
            procs: args.conn.procs.unwrap_or(1),
            connections_requested: args.conn.connections,
            connections_made: s.connected,
            handshake_seconds: hs,
            handshakes_per_sec: if hs > 0.0 {
                s.connected as f64 / hs
            } else {
                0.0
            },
            handshake_latency_us: Percentiles::of(&s.handshake_latency),
            measured_seconds: measured,
            sent: s.sent,
            received: s.received,
            messages: s.measured,
            messages_per_sec: per_sec(s.measured),
            mb_per_sec_out: per_sec(s.measured_bytes_out) / 1e6,
            mb_per_sec_in: per_sec(s.measured_bytes_in) / 1e6,
            latency_us: Percentiles::of(&s.latency),
            latency_curve: latency_curve(&s.latency),
            timeline,
            sending_seconds: args.duration(),
            closed_clean: s.closed_clean,
            errors: s.errors,
            error_total: s.errors.total(),
            first_error: s.first_error.clone(),
            generator_cpu_seconds: cpu,
            generator_cpu_percent: 100.0 * cpu / wall.max(1e-9),
            server,
        }
    }

    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let l = &self.latency_us;
        let h = &self.handshake_latency_us;
        let _ = writeln!(o, "target          {}", self.url);
        let _ = writeln!(
            o,
            "traffic         {:?}, {} B{}{}{}{}, {}, window {}",
            self.mode,
            self.sizes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("/"),
            if self.text { " text" } else { " binary" },
            match self.payload {
                crate::payload::Pattern::Random => ", random payload",
                crate::payload::Pattern::Json => ", JSON-like payload",
            },
            if self.deflate {
                ", permessage-deflate offered"
            } else {
                ""
            },
            match self.reply {
                crate::reply::ReplyMode::Echo => "",
                crate::reply::ReplyMode::Json => ", JSON replies",
            },
            match self.rate {
                Some(r) => format!("{r:.0} msg/s"),
                None => "unpaced".into(),
            },
            self.inflight
        );
        let _ = writeln!(
            o,
            "connections     {} of {} made, {:.0} handshakes/s (p50 {:.0} µs, p99 {:.0} µs)",
            self.connections_made,
            self.connections_requested,
            self.handshakes_per_sec,
            h.p50,
            h.p99
        );
        let _ = writeln!(
            o,
            "messages        {} in {:.2} s = {:.0} msg/s ({} sent, {} answered in all)",
            self.messages, self.measured_seconds, self.messages_per_sec, self.sent, self.received
        );
        let _ = writeln!(
            o,
            "throughput      {:.2} MB/s out, {:.2} MB/s in",
            self.mb_per_sec_out, self.mb_per_sec_in
        );
        let _ = writeln!(
            o,
            "latency (µs)    p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  mean {:.1}",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        let _ = writeln!(
            o,
            "generator CPU   {:.0}% of a core ({} thread{}{})",
            self.generator_cpu_percent,
            self.threads,
            if self.threads == 1 { "" } else { "s" },
            if self.procs > 1 {
                format!(" in each of {} processes", self.procs)
            } else {
                String::new()
            }
        );
        if let Some(s) = &self.server {
            let _ = writeln!(
                o,
                "server CPU      {:.0}% of a core, {:.2} µs/msg ({:.2} user + {:.2} system), RSS {:.1} MiB (peak {:.1} MiB)",
                s.cpu_percent,
                s.cpu_us_per_message,
                s.user_us_per_message,
                s.system_us_per_message,
                s.rss_bytes as f64 / 1048576.0,
                s.peak_rss_bytes as f64 / 1048576.0
            );
            if let Some(n) = s.syscalls_per_message {
                let top: Vec<String> = s
                    .syscalls
                    .iter()
                    .map(|(c, k)| format!("{c} {k:.3}"))
                    .collect();
                let _ = writeln!(
                    o,
                    "server syscalls {n:.3}/msg under strace ({})",
                    top.join(", ")
                );
            }
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
}

/// Points of the latency distribution at 0, 50, 75, 87.5 … percent, the
/// usual log-scale view of tail latency.
fn latency_curve(h: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts = Vec::new();
    let mut q = 0.0f64;
    for _ in 0..24 {
        pts.push((q * 100.0, h.value_at_quantile(q) as f64 / 1000.0));
        q = 1.0 - (1.0 - q) / 2.0;
    }
    pts.push((100.0, h.max() as f64 / 1000.0));
    pts
}

pub fn write_json<T: Serialize>(path: &std::path::Path, v: &T) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    std::fs::write(path, text + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_is_monotonic_and_ends_at_max() {
        let mut h = crate::stats::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 100).unwrap();
        }
        let c = latency_curve(&h);
        assert!(c.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(c.last().unwrap().0, 100.0);
        assert!((c.last().unwrap().1 - 1000.0).abs() < 1.0);
        assert!(latency_curve(&crate::stats::new_histogram()).is_empty());
    }
}
