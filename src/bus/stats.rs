//! The bus's counters: instance-wide atomics, bumped by the loops (a
//! refused publish) and the bus threads, read by whichever loop answers a
//! scrape. Nothing here is touched per message unless a bus is configured.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Why a message did not cross the bus, in the order of [`DROPS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drop {
    /// Published while the link to the broker was down.
    Down,
    /// The outgoing queue was full: the broker takes less than is
    /// published.
    Full,
    /// Larger than the message limit.
    TooLarge,
    /// Arrived from the bus, but a loop's inbox was full.
    Inbox,
    /// Arrived from the bus, but not a message of ours.
    Malformed,
}

const DROPS: [&str; 5] = ["down", "full", "too_large", "inbox_full", "malformed"];

#[derive(Default)]
pub(crate) struct Stats {
    /// The link that publishes is connected.
    pub pub_up: AtomicBool,
    /// The link that subscribes is connected and has applied the topics.
    pub sub_up: AtomicBool,
    /// Times a link was lost, or failed to connect after being up.
    pub outages: AtomicU64,
    /// Messages handed to the broker.
    pub published: AtomicU64,
    /// Messages from other instances given to the loops.
    pub received: AtomicU64,
    /// Topics subscribed to on the broker.
    pub subscriptions: AtomicU64,
    dropped: [AtomicU64; DROPS.len()],
}

impl Stats {
    pub fn dropped(&self, why: Drop) {
        self.dropped[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn dropped_n(&self, why: Drop, n: u64) {
        self.dropped[why as usize].fetch_add(n, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub fn dropped_count(&self, why: Drop) -> u64 {
        self.dropped[why as usize].load(Ordering::Relaxed)
    }

    /// Append the bus's families, in Prometheus text.
    pub fn render(&self, o: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        let _ = self.render_to(o);
    }

    fn render_to(&self, o: &mut Vec<u8>) -> std::io::Result<()> {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let up = self.pub_up.load(Ordering::Relaxed) && self.sub_up.load(Ordering::Relaxed);
        let family = |o: &mut Vec<u8>, name: &str, kind: &str, help: &str| {
            writeln!(
                o,
                "# HELP zerows_bus_{name} {help}\n# TYPE zerows_bus_{name} {kind}"
            )
        };
        family(o, "up", "gauge", "1 while both links to the broker are up.")?;
        writeln!(o, "zerows_bus_up {}", u8::from(up))?;
        family(o, "outages_total", "counter", "Links to the broker lost.")?;
        writeln!(o, "zerows_bus_outages_total {}", get(&self.outages))?;
        family(
            o,
            "published_total",
            "counter",
            "Messages published to the broker.",
        )?;
        writeln!(o, "zerows_bus_published_total {}", get(&self.published))?;
        family(
            o,
            "received_total",
            "counter",
            "Messages from other instances delivered to the loops.",
        )?;
        writeln!(o, "zerows_bus_received_total {}", get(&self.received))?;
        family(
            o,
            "subscriptions",
            "gauge",
            "Topics subscribed to on the broker.",
        )?;
        writeln!(o, "zerows_bus_subscriptions {}", get(&self.subscriptions))?;
        family(
            o,
            "dropped_total",
            "counter",
            "Messages that did not cross the bus, by reason.",
        )?;
        for (name, n) in DROPS.iter().zip(&self.dropped) {
            writeln!(
                o,
                "zerows_bus_dropped_total{{reason=\"{name}\"}} {}",
                get(n)
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family() {
        let s = Stats::default();
        s.pub_up.store(true, Ordering::Relaxed);
        s.published.store(5, Ordering::Relaxed);
        s.dropped(Drop::Down);
        s.dropped_n(Drop::Inbox, 3);
        let mut out = Vec::new();
        s.render(&mut out);
        let text = String::from_utf8(out).unwrap();
        for line in [
            "zerows_bus_up 0",
            "zerows_bus_published_total 5",
            "zerows_bus_outages_total 0",
            "zerows_bus_dropped_total{reason=\"down\"} 1",
            "zerows_bus_dropped_total{reason=\"inbox_full\"} 3",
            "zerows_bus_dropped_total{reason=\"too_large\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        s.sub_up.store(true, Ordering::Relaxed);
        let mut out = Vec::new();
        s.render(&mut out);
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("zerows_bus_up 1\n"));
    }
}
