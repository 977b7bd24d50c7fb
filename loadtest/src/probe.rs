//! What `idle` samples beside its own counts: the servers' summed memory
//! and CPU time, and the kernel's memory, at fixed points of the phases.
//!
//! Invariants: the "before" samples are taken with none of our connections
//! open, the "held" samples while every connection reported held is still
//! open (before the release), and CPU time over the hold alone, so per
//! connection figures divide like by like. A process or file that cannot be
//! read yields `None`, never a made-up number. Kernel figures are machine
//! wide: on loopback they hold both ends of every connection.

use std::time::Instant;

use serde::Serialize;

use crate::procfs;

/// Kernel memory at one point.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Kernel {
    /// `Slab` of /proc/meminfo, bytes.
    pub slab_bytes: Option<u64>,
    /// The `mem` of /proc/net/sockstat's TCP line (pages), in bytes.
    pub tcp_mem_bytes: Option<u64>,
    /// /proc/net/sockstat's TCP line as it was.
    pub sockstat_tcp: Option<String>,
}

impl Kernel {
    pub fn now() -> Self {
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
        let sockstat = std::fs::read_to_string("/proc/net/sockstat").ok();
        let tcp = sockstat
            .as_deref()
            .and_then(|t| t.lines().find(|l| l.starts_with("TCP:")))
            .map(str::to_string);
        Kernel {
            slab_bytes: meminfo.as_deref().and_then(|t| procfs::parse_kb(t, "Slab")),
            tcp_mem_bytes: tcp.as_deref().and_then(tcp_mem_pages).map(|p| p * page()),
            sockstat_tcp: tcp,
        }
    }
}

fn page() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as u64
    } else {
        4096
    }
}

/// The `mem N` of a sockstat `TCP:` line.
fn tcp_mem_pages(line: &str) -> Option<u64> {
    let mut words = line.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mem" {
            return words.next()?.parse().ok();
        }
    }
    None
}

/// The samples, as reported.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Samples {
    pub server_pids: Vec<u32>,
    /// Summed VmRSS of the servers with none of our connections, and while
    /// all were held.
    pub server_rss_before: Option<u64>,
    pub server_rss_held: Option<u64>,
    /// Summed user + system CPU seconds of the servers over the hold.
    pub server_cpu_hold_seconds: Option<f64>,
    pub hold_wall_seconds: f64,
    pub kernel_before: Kernel,
    pub kernel_held: Kernel,
}

pub struct Probe {
    s: Samples,
    hold: Option<(Instant, Option<f64>)>,
}

fn rss_sum(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| procfs::status_bytes(p, "VmRSS")).sum()
}

fn cpu_sum(pids: &[u32]) -> Option<f64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| procfs::cpu_seconds(p)).sum()
}

impl Probe {
    /// Take the "before" samples: call with no connection of ours open.
    pub fn begin(pids: &[u32]) -> Self {
        Probe {
            s: Samples {
                server_pids: pids.to_vec(),
                server_rss_before: rss_sum(pids),
                kernel_before: Kernel::now(),
                ..Default::default()
            },
            hold: None,
        }
    }

    /// Every connection is made; the hold starts.
    pub fn hold_start(&mut self) {
        self.hold = Some((Instant::now(), cpu_sum(&self.s.server_pids)));
    }

    /// Every process reported its hold done; nothing is released yet.
    pub fn held(&mut self) {
        if let Some((t0, cpu0)) = self.hold {
            self.s.hold_wall_seconds = t0.elapsed().as_secs_f64();
            self.s.server_cpu_hold_seconds = cpu0
                .zip(cpu_sum(&self.s.server_pids))
                .map(|(a, b)| (b - a).max(0.0));
        }
        self.s.server_rss_held = rss_sum(&self.s.server_pids);
        self.s.kernel_held = Kernel::now();
    }

    pub fn samples(self) -> Samples {
        self.s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sockstat_and_our_own_process() {
        assert_eq!(
            tcp_mem_pages("TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 31"),
            Some(31)
        );
        assert_eq!(tcp_mem_pages("TCP: inuse 5"), None);
        let k = Kernel::now();
        assert!(k.slab_bytes.unwrap() > 0);
        assert!(k.sockstat_tcp.unwrap().starts_with("TCP:"));
        let me = std::process::id();
        let mut p = Probe::begin(&[me, me]);
        p.hold_start();
        p.held();
        let s = p.samples();
        assert!(s.server_rss_before.unwrap() > 0);
        assert!(s.server_cpu_hold_seconds.unwrap() >= 0.0);
        // A process that is gone spoils the sum rather than shrinking it.
        assert_eq!(rss_sum(&[me, u32::MAX]), None);
        assert_eq!(rss_sum(&[]), None);
    }
}
