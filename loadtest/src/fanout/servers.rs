//! The servers' CPU time and memory over the measured messages, one
//! process per target (`--server-pid`, the k-th for the k-th target).
//!
//! Invariants: every process is read just before the first measured
//! message is published and just after the last one has arrived (or the
//! run failed), and its CPU time is divided by the verified deliveries of
//! that window: those to its own target's subscribers for the per-target
//! figures, those to every subscriber for the top-level ones (the first
//! pid's, as when a single server serves the whole run). A process that
//! cannot be read gives no split rather than a zero.

use super::targets::TargetTally;
use crate::procfs;
use crate::report::ServerSample;

/// One server's figures over the measured messages.
#[derive(Debug, Clone)]
pub(super) struct ServerFigures {
    /// `messages` there counts the deliveries divided by.
    pub(super) server: ServerSample,
    /// CPU time per delivery in user space and in the kernel, µs.
    pub(super) user_us_per_delivery: Option<f64>,
    pub(super) system_us_per_delivery: Option<f64>,
}

/// One process being sampled.
struct Sampled {
    sample: ServerSample,
    /// (user, system) CPU seconds at the start and the end.
    split0: Option<(f64, f64)>,
    split1: Option<(f64, f64)>,
}

/// The processes of the targets that have one, in target order.
pub(super) struct Servers(Vec<Sampled>);

/// (user, system) µs per delivery between two (user, system) readings in
/// seconds; none without both readings or without deliveries.
fn per_delivery(
    split0: Option<(f64, f64)>,
    split1: Option<(f64, f64)>,
    deliveries: u64,
) -> (Option<f64>, Option<f64>) {
    match (split0, split1) {
        (Some(a), Some(b)) if deliveries > 0 => {
            let d = deliveries as f64;
            (Some((b.0 - a.0) * 1e6 / d), Some((b.1 - a.1) * 1e6 / d))
        }
        _ => (None, None),
    }
}

impl Servers {
    /// Start sampling `pids[k]` for target `k`.
    pub(super) fn begin(pids: &[u32], targets: &[TargetTally]) -> Servers {
        Servers(
            pids.iter()
                .zip(targets)
                .map(|(&pid, t)| Sampled {
                    split0: procfs::cpu_split(pid),
                    sample: ServerSample::begin(pid, t.delivered),
                    split1: None,
                })
                .collect(),
        )
    }

    /// End the window of `wall` seconds.
    pub(super) fn end(&mut self, targets: &[TargetTally], wall: f64) {
        for (s, t) in self.0.iter_mut().zip(targets) {
            s.sample.end(t.delivered, wall);
            s.split1 = procfs::cpu_split(s.sample.pid);
        }
    }

    /// Target `k`'s server per delivery to that target's subscribers.
    pub(super) fn of_target(&self, k: usize) -> Option<ServerFigures> {
        let s = self.0.get(k)?;
        let (user, system) = per_delivery(s.split0, s.split1, s.sample.messages);
        Some(ServerFigures {
            server: s.sample.clone(),
            user_us_per_delivery: user,
            system_us_per_delivery: system,
        })
    }

    /// The first server per delivery to any subscriber (`delivered` in all).
    pub(super) fn first_over(&self, delivered: u64) -> Option<ServerFigures> {
        let s = self.0.first()?;
        let mut server = s.sample.clone();
        server.set_messages(delivered);
        let (user, system) = per_delivery(s.split0, s.split1, delivered);
        Some(ServerFigures {
            server,
            user_us_per_delivery: user,
            system_us_per_delivery: system,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_per_delivery() {
        let (u, s) = per_delivery(Some((1.0, 2.0)), Some((1.5, 3.0)), 1000);
        assert!((u.unwrap() - 500.0).abs() < 1e-9);
        assert!((s.unwrap() - 1000.0).abs() < 1e-9);
        assert_eq!(per_delivery(Some((1.0, 2.0)), None, 10), (None, None));
        assert_eq!(per_delivery(None, Some((1.0, 2.0)), 10), (None, None));
        assert_eq!(
            per_delivery(Some((0.0, 0.0)), Some((1.0, 1.0)), 0),
            (None, None)
        );
    }

    #[test]
    fn per_target_and_first_over_all() {
        // Ourselves, twice: two targets on one process.
        let me = std::process::id();
        let mut t = TargetTally::all(5, 3);
        let mut servers = Servers::begin(&[me, me], &t);
        t[0].delivered = 30;
        t[1].delivered = 20;
        t[2].delivered = 20;
        servers.end(&t, 1.0);
        let a = servers.of_target(0).unwrap();
        let b = servers.of_target(1).unwrap();
        assert_eq!((a.server.messages, b.server.messages), (30, 20));
        assert!(a.user_us_per_delivery.is_some() && b.system_us_per_delivery.is_some());
        assert!(
            servers.of_target(2).is_none(),
            "no pid for the third target"
        );
        let all = servers.first_over(70).unwrap();
        assert_eq!(all.server.messages, 70);
        assert_eq!(all.server.cpu_seconds, a.server.cpu_seconds);
        assert!(all.server.cpu_us_per_message <= a.server.cpu_us_per_message);
        assert!(Servers::begin(&[], &t).first_over(70).is_none());
    }
}
