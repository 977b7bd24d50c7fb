//! What a worker counts while it runs, and how workers' counts combine.
//!
//! Invariants: everything here is allocated before the first message (the
//! histogram's buckets and the per-second timeline), so recording never
//! allocates. Latencies are kept in nanoseconds with 3 significant digits
//! and reported in microseconds. A message counts toward throughput and
//! latency only if it was sent inside the measured window (after warm-up,
//! before the end of sending); errors count whenever they happen.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The highest latency the histogram keeps exactly; longer ones saturate.
const MAX_LATENCY_NS: u64 = 600_000_000_000;

/// Every way a run can go wrong; any non-zero field fails the run.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Errors {
    /// TCP connect failed or timed out.
    pub connect_failed: u64,
    /// The server's upgrade response was wrong or never came.
    pub handshake_failed: u64,
    /// An echo whose length or content differs from what was sent.
    pub corrupted: u64,
    /// An echo with another opcode than the message's.
    pub wrong_opcode: u64,
    /// An echo that arrived after one sent later than it.
    pub reordered: u64,
    /// A message never echoed although a later one was.
    pub lost: u64,
    /// Messages still unanswered when the drain time ran out.
    pub unanswered: u64,
    /// An echo of something not in flight (duplicate or never sent).
    pub unexpected: u64,
    /// A frame that breaks RFC 6455, or a fragmented echo.
    pub protocol: u64,
    /// The connection was reset or closed by the server mid-run.
    pub connection_lost: u64,
    /// Pings without a pong (idle mode).
    pub ping_unanswered: u64,
    /// Our close (1000) answered with another code, or with none (idle).
    pub bad_close: u64,
    /// Our close never answered before the connection ended (idle).
    pub close_unanswered: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect_failed
            + self.handshake_failed
            + self.corrupted
            + self.wrong_opcode
            + self.reordered
            + self.lost
            + self.unanswered
            + self.unexpected
            + self.protocol
            + self.connection_lost
            + self.ping_unanswered
            + self.bad_close
            + self.close_unanswered
    }

    pub fn add(&mut self, o: &Errors) {
        self.connect_failed += o.connect_failed;
        self.handshake_failed += o.handshake_failed;
        self.corrupted += o.corrupted;
        self.wrong_opcode += o.wrong_opcode;
        self.reordered += o.reordered;
        self.lost += o.lost;
        self.unanswered += o.unanswered;
        self.unexpected += o.unexpected;
        self.protocol += o.protocol;
        self.connection_lost += o.connection_lost;
        self.ping_unanswered += o.ping_unanswered;
        self.bad_close += o.bad_close;
        self.close_unanswered += o.close_unanswered;
    }

    /// (name, count) for the non-zero kinds, for the table.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        [
            ("connect failed", self.connect_failed),
            ("handshake failed", self.handshake_failed),
            ("corrupted", self.corrupted),
            ("wrong opcode", self.wrong_opcode),
            ("reordered", self.reordered),
            ("lost", self.lost),
            ("unanswered", self.unanswered),
            ("unexpected echo", self.unexpected),
            ("protocol error", self.protocol),
            ("connection lost", self.connection_lost),
            ("ping unanswered", self.ping_unanswered),
            ("close not echoed as 1000", self.bad_close),
            ("close unanswered", self.close_unanswered),
        ]
        .into_iter()
        .filter(|&(_, n)| n > 0)
        .collect()
    }
}

/// One worker's tallies.
#[derive(Debug)]
pub struct Stats {
    pub connected: u64,
    /// ns since the epoch at which the first connect started and the last
    /// handshake finished.
    pub first_connect_ns: u64,
    pub last_handshake_ns: u64,
    pub sent: u64,
    pub received: u64,
    /// Echoes of messages sent inside the measured window.
    pub measured: u64,
    pub measured_bytes_out: u64,
    pub measured_bytes_in: u64,
    pub pings: u64,
    pub pongs: u64,
    /// Pings from the server (its heartbeat), each answered by the library.
    pub pings_in: u64,
    /// Idle's echo round: when it started and when the last echo came
    /// (ns since the epoch; `u64::MAX` and 0 until then).
    pub echo_start_ns: u64,
    pub last_echo_ns: u64,
    /// Clean closes: our close frame was answered.
    pub closed_clean: u64,
    pub errors: Errors,
    pub latency: Histogram<u64>,
    pub handshake_latency: Histogram<u64>,
    /// Echoes received per second since sending started.
    pub timeline: Vec<u64>,
    /// Start and end of the measured window (ns since the epoch).
    pub window: (u64, u64),
    pub send_start_ns: u64,
    /// What the first error was, in words, for the report (error path
    /// only, so the allocation does not matter).
    pub first_error: Option<String>,
}

impl Stats {
    pub fn new(seconds: usize) -> Self {
        Stats {
            connected: 0,
            first_connect_ns: u64::MAX,
            last_handshake_ns: 0,
            sent: 0,
            received: 0,
            measured: 0,
            measured_bytes_out: 0,
            measured_bytes_in: 0,
            pings: 0,
            pongs: 0,
            pings_in: 0,
            echo_start_ns: u64::MAX,
            last_echo_ns: 0,
            closed_clean: 0,
            errors: Errors::default(),
            latency: new_histogram(),
            handshake_latency: new_histogram(),
            timeline: vec![0; seconds.max(1)],
            window: (0, u64::MAX),
            send_start_ns: u64::MAX,
            first_error: None,
        }
    }

    /// Remember `what` if it is the first error described.
    #[cold]
    pub fn note(&mut self, what: impl FnOnce() -> String) {
        if self.first_error.is_none() {
            self.first_error = Some(what());
        }
    }

    /// Record an echo of a message sent at `sent_at` and received at `now`.
    #[inline]
    pub fn echo(&mut self, sent_at: u64, now: u64, bytes_out: usize, bytes_in: usize) {
        self.received += 1;
        self.last_echo_ns = self.last_echo_ns.max(now);
        if now >= self.send_start_ns {
            let sec = ((now - self.send_start_ns) / 1_000_000_000) as usize;
            if let Some(slot) = self.timeline.get_mut(sec) {
                *slot += 1;
            }
        }
        if sent_at >= self.window.0 && sent_at < self.window.1 {
            self.measured += 1;
            self.measured_bytes_out += bytes_out as u64;
            self.measured_bytes_in += bytes_in as u64;
            self.latency
                .saturating_record(now.saturating_sub(sent_at).max(1));
        }
    }

    pub fn merge(&mut self, o: &Stats) {
        self.connected += o.connected;
        self.first_connect_ns = self.first_connect_ns.min(o.first_connect_ns);
        self.last_handshake_ns = self.last_handshake_ns.max(o.last_handshake_ns);
        self.sent += o.sent;
        self.received += o.received;
        self.measured += o.measured;
        self.measured_bytes_out += o.measured_bytes_out;
        self.measured_bytes_in += o.measured_bytes_in;
        self.pings += o.pings;
        self.pongs += o.pongs;
        self.pings_in += o.pings_in;
        self.echo_start_ns = self.echo_start_ns.min(o.echo_start_ns);
        self.last_echo_ns = self.last_echo_ns.max(o.last_echo_ns);
        self.closed_clean += o.closed_clean;
        self.errors.add(&o.errors);
        // Same bounds on both sides, so adding cannot fail.
        self.latency.add(&o.latency).ok();
        self.handshake_latency.add(&o.handshake_latency).ok();
        if self.timeline.len() < o.timeline.len() {
            self.timeline.resize(o.timeline.len(), 0);
        }
        for (a, b) in self.timeline.iter_mut().zip(&o.timeline) {
            *a += b;
        }
        self.window = o.window;
        self.send_start_ns = self.send_start_ns.min(o.send_start_ns);
        if self.first_error.is_none() {
            self.first_error.clone_from(&o.first_error);
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds are valid")
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Percentiles {
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_uniform() {
        let mut h = new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 1000).unwrap();
        }
        let p = Percentiles::of(&h);
        let close = |a: f64, b: f64| (a - b).abs() <= b * 0.002 + 0.01;
        assert!(close(p.p50, 500.0), "{p:?}");
        assert!(close(p.p90, 900.0), "{p:?}");
        assert!(close(p.p99, 990.0), "{p:?}");
        assert!(close(p.p999, 999.0), "{p:?}");
        assert!(close(p.max, 1000.0), "{p:?}");
        assert!(close(p.mean, 500.5), "{p:?}");
    }

    #[test]
    fn empty_is_zero_and_outliers_saturate() {
        assert_eq!(Percentiles::of(&new_histogram()), Percentiles::default());
        let mut h = new_histogram();
        h.saturating_record(u64::MAX);
        assert!(Percentiles::of(&h).max >= 599_000_000.0);
    }

    #[test]
    fn only_the_window_is_measured() {
        let mut s = Stats::new(4);
        s.send_start_ns = 0;
        s.window = (1_000, 2_000);
        s.echo(500, 600, 10, 6); // warm-up
        s.echo(1_500, 1_700, 10, 6);
        s.echo(2_500, 2_600, 10, 6); // after sending stopped
        assert_eq!(s.received, 3);
        assert_eq!(s.measured, 1);
        assert_eq!(s.measured_bytes_out, 10);
        assert_eq!(s.latency.len(), 1);
        assert_eq!(s.timeline[0], 3);
    }

    #[test]
    fn merge_adds() {
        let mut a = Stats::new(2);
        let mut b = Stats::new(3);
        b.errors.lost = 2;
        b.timeline[2] = 5;
        b.latency.record(10).unwrap();
        a.merge(&b);
        assert_eq!(a.errors.total(), 2);
        assert_eq!(a.timeline, vec![0, 0, 5]);
        assert_eq!(a.latency.len(), 1);
    }
}
