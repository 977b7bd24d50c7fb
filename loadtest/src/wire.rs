//! What a child of `--procs` and its parent say to each other: commands as
//! words on the child's stdin, reports as JSON lines on its stdout.
//!
//! Invariants: one report per line, each a whole JSON object. Times cross
//! the process boundary as CLOCK_MONOTONIC nanoseconds, one clock for every
//! process of the machine, and are turned back into the receiver's own
//! epoch, so first and last times compare across processes; the "unset"
//! marker `u64::MAX` survives the trip. Histograms travel as (value, count)
//! pairs of their recorded buckets: recording each value again lands in the
//! same bucket, so the merge is exact.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::stats::{new_histogram, Errors, Stats};

/// Parent to child: start sending or holding (after `Connected`).
pub const GO: &str = "go";
/// Parent to child: the hold is over everywhere; echo (if asked) and close.
pub const RELEASE: &str = "release";

/// Child to parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Report {
    /// Every connection of the child is made or given up.
    Connected { connected: u64, errors: u64 },
    /// The hold ended (idle); `held` connections were open then, and stay
    /// open until `RELEASE`.
    Held { held: u64 },
    /// The child's final tallies; it exits next.
    Done(Box<Done>),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Done {
    pub stats: StatsWire,
    pub held: u64,
    pub at_once: u64,
    /// The child's CPU time and wall time over its measured window (run).
    pub cpu_seconds: f64,
    pub wall_seconds: f64,
}

/// This machine's monotonic clock, in nanoseconds.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn to_abs(t: u64, epoch: u64) -> u64 {
    if t == u64::MAX {
        t
    } else {
        t.saturating_add(epoch)
    }
}

fn from_abs(t: u64, epoch: u64) -> u64 {
    if t == u64::MAX {
        t
    } else {
        t.saturating_sub(epoch)
    }
}

fn buckets(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

fn rebuild(pairs: &[(u64, u64)]) -> Histogram<u64> {
    let mut h = new_histogram();
    for &(v, n) in pairs {
        // Values came out of a histogram with the same bounds.
        h.saturating_record_n(v, n);
    }
    h
}

/// [`Stats`] as it crosses a process boundary.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatsWire {
    connected: u64,
    first_connect: u64,
    last_handshake: u64,
    sent: u64,
    received: u64,
    measured: u64,
    measured_bytes_out: u64,
    measured_bytes_in: u64,
    pings: u64,
    pongs: u64,
    pings_in: u64,
    echo_start: u64,
    last_echo: u64,
    closed_clean: u64,
    errors: Errors,
    latency: Vec<(u64, u64)>,
    handshake_latency: Vec<(u64, u64)>,
    timeline: Vec<u64>,
    window: (u64, u64),
    send_start: u64,
    first_error: Option<String>,
}

impl StatsWire {
    /// `s`, whose times count from an epoch taken at `epoch` (monotonic ns).
    pub fn new(s: &Stats, epoch: u64) -> Self {
        let abs = |t| to_abs(t, epoch);
        StatsWire {
            connected: s.connected,
            first_connect: abs(s.first_connect_ns),
            last_handshake: abs(s.last_handshake_ns),
            sent: s.sent,
            received: s.received,
            measured: s.measured,
            measured_bytes_out: s.measured_bytes_out,
            measured_bytes_in: s.measured_bytes_in,
            pings: s.pings,
            pongs: s.pongs,
            pings_in: s.pings_in,
            echo_start: abs(s.echo_start_ns),
            last_echo: abs(s.last_echo_ns),
            closed_clean: s.closed_clean,
            errors: s.errors,
            latency: buckets(&s.latency),
            handshake_latency: buckets(&s.handshake_latency),
            timeline: s.timeline.clone(),
            window: (abs(s.window.0), abs(s.window.1)),
            send_start: abs(s.send_start_ns),
            first_error: s.first_error.clone(),
        }
    }

    /// The stats, with times counted from an epoch taken at `epoch`.
    pub fn into_stats(self, epoch: u64) -> Stats {
        let rel = |t| from_abs(t, epoch);
        let mut s = Stats::new(self.timeline.len());
        s.connected = self.connected;
        s.first_connect_ns = rel(self.first_connect);
        s.last_handshake_ns = rel(self.last_handshake);
        s.sent = self.sent;
        s.received = self.received;
        s.measured = self.measured;
        s.measured_bytes_out = self.measured_bytes_out;
        s.measured_bytes_in = self.measured_bytes_in;
        s.pings = self.pings;
        s.pongs = self.pongs;
        s.pings_in = self.pings_in;
        s.echo_start_ns = rel(self.echo_start);
        s.last_echo_ns = rel(self.last_echo);
        s.closed_clean = self.closed_clean;
        s.errors = self.errors;
        s.latency = rebuild(&self.latency);
        s.handshake_latency = rebuild(&self.handshake_latency);
        s.timeline = self.timeline;
        s.window = (rel(self.window.0), rel(self.window.1));
        s.send_start_ns = rel(self.send_start);
        s.first_error = self.first_error;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Percentiles;

    #[test]
    fn stats_survive_the_trip_and_merge_exactly() {
        let mut a = Stats::new(3);
        let mut b = Stats::new(3);
        for v in 1..=5000u64 {
            a.latency.record(v * 997).unwrap();
            b.latency.record(v * 13 + 1_000_000).unwrap();
        }
        a.handshake_latency.record(42_000).unwrap();
        a.first_connect_ns = 10;
        a.last_handshake_ns = 900;
        a.errors.lost = 3;
        a.first_error = Some("x".into());
        a.timeline[1] = 7;
        let mut direct = Stats::new(3);
        direct.merge(&a);
        direct.merge(&b);

        // Child epochs differ; the parent's came first.
        let parent = 1_000_000_000u64;
        let json_a = serde_json::to_string(&StatsWire::new(&a, parent + 500)).unwrap();
        let json_b = serde_json::to_string(&StatsWire::new(&b, parent + 700)).unwrap();
        let a2 = serde_json::from_str::<StatsWire>(&json_a)
            .unwrap()
            .into_stats(parent);
        let b2 = serde_json::from_str::<StatsWire>(&json_b)
            .unwrap()
            .into_stats(parent);
        assert_eq!(a2.first_connect_ns, 510);
        assert_eq!(a2.last_handshake_ns, 1400);
        assert_eq!(b2.first_connect_ns, u64::MAX);
        assert_eq!(a2.echo_start_ns, u64::MAX);
        let mut merged = Stats::new(3);
        merged.merge(&a2);
        merged.merge(&b2);
        assert_eq!(merged.latency.len(), direct.latency.len());
        assert_eq!(
            Percentiles::of(&merged.latency),
            Percentiles::of(&direct.latency)
        );
        assert_eq!(merged.handshake_latency.len(), 1);
        assert_eq!(merged.errors, direct.errors);
        assert_eq!(merged.timeline, direct.timeline);
        assert_eq!(merged.first_error.as_deref(), Some("x"));
    }

    #[test]
    fn reports_are_one_line_each() {
        let r = Report::Connected {
            connected: 5,
            errors: 1,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.contains("\"event\":\"connected\""));
        match serde_json::from_str::<Report>(&line).unwrap() {
            Report::Connected { connected, errors } => assert_eq!((connected, errors), (5, 1)),
            other => panic!("{other:?}"),
        }
        assert!(serde_json::from_str::<Report>("{\"event\":\"nope\"}").is_err());
        assert!(mono_ns() > 0);
    }
}
