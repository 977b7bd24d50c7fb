//! How --procs splits a run: which connection ids each process takes, and
//! how long the parent waits for the connect phase.
//!
//! Invariants: the slices of one run are contiguous, disjoint and cover
//! every id exactly once, and none is larger than `MAX_PER_PROCESS` once
//! the arguments are valid (checked in `args`); a process without --procs
//! (or the parent) sees every id.

use crate::args::{ConnectArgs, MAX_SECONDS};

impl ConnectArgs {
    /// This process's connection ids: all of them, or child K's slice of
    /// --procs. Slices are contiguous, disjoint and cover every id once,
    /// so payloads stay unique and source addresses (chosen by id) spread
    /// over 127.0.0.0/8 as in one process.
    pub fn slice(&self) -> std::ops::Range<u32> {
        match (self.procs, self.child) {
            (Some(p), Some(k)) => slice_of(self.connections, p, k),
            _ => 0..self.connections,
        }
    }

    /// Whether this process only starts and sums the children of --procs.
    pub fn is_parent(&self) -> bool {
        self.procs.is_some() && self.child.is_none()
    }

    /// Seconds within which every connection of one process is made or
    /// given up, assuming at least 100 handshakes/s per process: the bound
    /// on waiting for the connect phase.
    pub fn connect_bound(&self) -> f64 {
        let n = f64::from(self.connections.div_ceil(self.procs.unwrap_or(1)));
        let ramp = if self.ramp > 0.0 {
            f64::from(self.connections) / self.ramp
        } else {
            0.0
        };
        (self.connect_timeout + n / 100.0 + ramp + 10.0).min(MAX_SECONDS)
    }
}

/// Child `k` of `procs`'s share of `n` connection ids.
pub fn slice_of(n: u32, procs: u32, k: u32) -> std::ops::Range<u32> {
    let at = |i: u32| (u64::from(n) * u64::from(i) / u64::from(procs)) as u32;
    at(k)..at(k + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{parse_run as run, Cli, Command};
    use clap::Parser;

    #[test]
    fn procs_split_and_refuse_crowded_processes() {
        let r = run(&["-c", "40000", "--procs", "3"]).unwrap();
        assert_eq!(r.conn.slice(), 0..40000);
        assert!(r.conn.is_parent());
        let e = run(&["-c", "40000", "--procs", "2"]).unwrap_err();
        assert!(e.contains("--procs 3 or more"), "{e}");
        assert!(run(&["-c", "4", "--procs", "5"]).is_err());
        assert!(run(&["-c", "4", "--procs", "0"]).is_err());
        assert!(run(&["-c", "10", "--procs", "2", "--threads", "6"]).is_err());
        assert!(run(&["-c", "10", "--child", "0"]).is_err());
        assert!(run(&["-c", "10", "--procs", "2", "--child", "2"]).is_err());
        let c = run(&["-c", "10", "--procs", "3", "--child", "2"]).unwrap();
        assert!(!c.conn.is_parent());
        assert_eq!(c.conn.slice(), 6..10);
        assert!(run(&["--ports", "0"]).is_err());
        assert!(run(&["--ports", "3"]).is_ok());
        let top = Cli::try_parse_from(["x", "run", "ws://127.0.0.1:65535/", "--ports", "2"]);
        match top.unwrap().command {
            Command::Run(r) => assert!(r.validate().is_err()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn slices_cover_every_id_once() {
        for (n, p) in [(10u32, 3u32), (1_000_000, 53), (7, 7), (1, 1)] {
            let mut next = 0;
            for k in 0..p {
                let s = slice_of(n, p, k);
                assert_eq!(s.start, next);
                assert!(s.len() as u32 <= n.div_ceil(p));
                next = s.end;
            }
            assert_eq!(next, n);
        }
    }
}
