//! Counters of one event loop, and their Prometheus text rendering.
//!
//! Counting is plain integer arithmetic on a struct the loop owns: no
//! atomics, no locks on the hot path. With several loops, each copies its
//! counters onto a shared [`Board`] a few times a second, and a scrape sums
//! the board, so any loop answers for all of them. The protocol core's
//! events are counted on their way to the service (`events::Bound`) and
//! the service's sends by the session. Rendering writes into
//! a buffer the caller keeps, so a scrape allocates nothing once warm.

use std::io::Write;

use crate::error::HandshakeError;
#[cfg(doc)]
use crate::events::Plain;

/// Refusal reasons, in the order of [`reason_index`].
const REASONS: [&str; 12] = [
    "malformed",
    "too_large",
    "method",
    "http_version",
    "host",
    "not_websocket",
    "connection",
    "key",
    "version",
    "origin",
    "not_found",
    "unavailable",
];

fn reason_index(e: HandshakeError) -> usize {
    use HandshakeError::*;
    match e {
        Malformed => 0,
        TooLarge => 1,
        MethodNotAllowed => 2,
        HttpVersion => 3,
        MissingHost => 4,
        NotWebSocket => 5,
        MissingConnectionUpgrade => 6,
        BadKey => 7,
        UnsupportedVersion => 8,
        ForbiddenOrigin => 9,
        NotFound => 10,
        Unavailable => 11,
    }
}

/// Plain request routes, in the order of [`Plain`]'s variants.
const PLAIN: [&str; 4] = ["page", "metrics", "health", "not_found"];

/// Close codes counted one by one: 1000–1015; anything else is "other".
const CODES: usize = 16;

pub(crate) fn code_index(code: Option<u16>) -> usize {
    match code {
        Some(c @ 1000..=1015) => (c - 1000) as usize,
        Some(_) => CODES,
        None => CODES + 1,
    }
}

/// The label of slot `i` of a close-code table.
struct CodeLabel(usize);

impl std::fmt::Display for CodeLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            i if i < CODES => write!(f, "{}", 1000 + i),
            CODES => f.write_str("other"),
            _ => f.write_str("none"),
        }
    }
}

/// Upper bounds of the loop-turn histogram, in microseconds.
pub const TURN_BUCKETS_US: [u64; 10] = [10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 50000];

#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub connections: u64,
    pub connections_total: u64,
    pub handshakes_accepted: u64,
    pub refused: [u64; REASONS.len()],
    /// Plain HTTP requests (no `Upgrade` header), by [`Plain`] route.
    pub plain: [u64; PLAIN.len()],
    pub messages_in: u64,
    pub messages_out: u64,
    /// Payload bytes of data messages.
    pub payload_in: u64,
    pub payload_out: u64,
    /// Messages a service sent that were not queued: the connection's
    /// unsent bytes would have passed the backlog limit.
    pub sends_dropped: u64,
    /// Connections dropped because their peer took too little of its
    /// waiting output in a drain window (the minimum drain rate).
    pub slow_readers_dropped: u64,
    /// Messages pushed from outside a connection's callbacks (a handle's
    /// send, a publish, a broadcast) and queued on it.
    pub pushes: u64,
    /// Pushes a connection missed because its backlog was past the push
    /// limit (slow subscriber, `SlowPolicy::Skip`).
    pub pushes_skipped: u64,
    /// Bytes read from and written to sockets, everything included.
    pub wire_in: u64,
    pub wire_out: u64,
    pub close_received: [u64; CODES + 2],
    pub close_sent: [u64; CODES + 2],
    /// Loop turns by duration; the last slot counts turns over every bound.
    pub turns: [u64; TURN_BUCKETS_US.len() + 1],
    pub turn_us_sum: u64,
}

/// Gauges the loop reads at render time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Gauges {
    pub read_buffers: usize,
    /// Small buffers holding a few bytes left between reads.
    pub spill_buffers: usize,
    pub write_buffers: usize,
    pub idle_buffers: usize,
    pub accepting: bool,
}

/// Where the event loops of one process publish their counters.
pub struct Board {
    slots: Vec<std::sync::Mutex<(Metrics, Gauges)>>,
}

impl Board {
    pub fn new(loops: usize) -> Board {
        Board {
            slots: (0..loops).map(|_| Default::default()).collect(),
        }
    }

    /// Loop `i` publishes its current counters.
    pub fn publish(&self, i: usize, m: &Metrics, g: Gauges) {
        let mut slot = self.slots[i].lock().unwrap_or_else(|e| e.into_inner());
        slot.0.clone_from(m);
        slot.1 = g;
    }

    /// Every loop's counters added up; `accepting` only if all accept.
    pub fn total(&self) -> (Metrics, Gauges) {
        let mut m = Metrics::default();
        let mut g = Gauges {
            accepting: true,
            ..Gauges::default()
        };
        for slot in &self.slots {
            let slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            m.add(&slot.0);
            g.read_buffers += slot.1.read_buffers;
            g.spill_buffers += slot.1.spill_buffers;
            g.write_buffers += slot.1.write_buffers;
            g.idle_buffers += slot.1.idle_buffers;
            g.accepting &= slot.1.accepting;
        }
        (m, g)
    }
}

impl Metrics {
    /// Add `o`'s counts to these.
    pub fn add(&mut self, o: &Metrics) {
        fn each<const N: usize>(a: &mut [u64; N], b: &[u64; N]) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        self.connections += o.connections;
        self.connections_total += o.connections_total;
        self.handshakes_accepted += o.handshakes_accepted;
        each(&mut self.refused, &o.refused);
        each(&mut self.plain, &o.plain);
        self.messages_in += o.messages_in;
        self.messages_out += o.messages_out;
        self.payload_in += o.payload_in;
        self.payload_out += o.payload_out;
        self.sends_dropped += o.sends_dropped;
        self.slow_readers_dropped += o.slow_readers_dropped;
        self.pushes += o.pushes;
        self.pushes_skipped += o.pushes_skipped;
        self.wire_in += o.wire_in;
        self.wire_out += o.wire_out;
        each(&mut self.close_received, &o.close_received);
        each(&mut self.close_sent, &o.close_sent);
        each(&mut self.turns, &o.turns);
        self.turn_us_sum += o.turn_us_sum;
    }

    pub fn refused(&mut self, e: HandshakeError) {
        self.refused[reason_index(e)] += 1;
    }

    pub fn turn(&mut self, us: u64) {
        let i = TURN_BUCKETS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(TURN_BUCKETS_US.len());
        self.turns[i] += 1;
        self.turn_us_sum += us;
    }

    /// The Prometheus text exposition (format 0.0.4) of every counter.
    pub fn render(&self, g: Gauges, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        let _ = self.render_to(g, out);
    }

    fn render_to(&self, g: Gauges, o: &mut Vec<u8>) -> std::io::Result<()> {
        let metric = |o: &mut Vec<u8>, name: &str, kind: &str, help: &str| {
            writeln!(
                o,
                "# HELP zerows_{name} {help}\n# TYPE zerows_{name} {kind}"
            )
        };
        metric(o, "connections", "gauge", "Open connections.")?;
        writeln!(o, "zerows_connections {}", self.connections)?;
        metric(o, "connections_total", "counter", "Connections accepted.")?;
        writeln!(o, "zerows_connections_total {}", self.connections_total)?;
        metric(
            o,
            "accepting",
            "gauge",
            "1 while new connections are accepted, 0 while shutting down.",
        )?;
        writeln!(o, "zerows_accepting {}", u8::from(g.accepting))?;
        metric(
            o,
            "handshakes_total",
            "counter",
            "Opening handshakes by result and refusal reason.",
        )?;
        writeln!(
            o,
            "zerows_handshakes_total{{result=\"accepted\"}} {}",
            self.handshakes_accepted
        )?;
        for (r, n) in REASONS.iter().zip(self.refused) {
            writeln!(
                o,
                "zerows_handshakes_total{{result=\"refused\",reason=\"{r}\"}} {n}"
            )?;
        }
        metric(
            o,
            "http_requests_total",
            "counter",
            "Plain HTTP requests (no Upgrade header) by route.",
        )?;
        for (r, n) in PLAIN.iter().zip(self.plain) {
            writeln!(o, "zerows_http_requests_total{{route=\"{r}\"}} {n}")?;
        }
        metric(
            o,
            "messages_total",
            "counter",
            "Data messages received and sent.",
        )?;
        writeln!(
            o,
            "zerows_messages_total{{direction=\"in\"}} {}",
            self.messages_in
        )?;
        writeln!(
            o,
            "zerows_messages_total{{direction=\"out\"}} {}",
            self.messages_out
        )?;
        metric(
            o,
            "payload_bytes_total",
            "counter",
            "Payload bytes of data messages.",
        )?;
        writeln!(
            o,
            "zerows_payload_bytes_total{{direction=\"in\"}} {}",
            self.payload_in
        )?;
        writeln!(
            o,
            "zerows_payload_bytes_total{{direction=\"out\"}} {}",
            self.payload_out
        )?;
        metric(
            o,
            "sends_dropped_total",
            "counter",
            "Messages a service sent that were refused because the connection's unsent bytes would have passed the backlog limit.",
        )?;
        writeln!(o, "zerows_sends_dropped_total {}", self.sends_dropped)?;
        metric(
            o,
            "slow_readers_dropped_total",
            "counter",
            "Connections dropped because the peer read less of its waiting output than the minimum drain rate over a drain window.",
        )?;
        writeln!(
            o,
            "zerows_slow_readers_dropped_total {}",
            self.slow_readers_dropped
        )?;
        metric(
            o,
            "pushes_total",
            "counter",
            "Messages pushed through a handle, a publish or a broadcast and queued on a connection.",
        )?;
        writeln!(o, "zerows_pushes_total {}", self.pushes)?;
        metric(
            o,
            "pushes_skipped_total",
            "counter",
            "Pushes a connection missed because its unsent bytes were past the push limit.",
        )?;
        writeln!(o, "zerows_pushes_skipped_total {}", self.pushes_skipped)?;
        metric(
            o,
            "wire_bytes_total",
            "counter",
            "Bytes read from and written to sockets.",
        )?;
        writeln!(
            o,
            "zerows_wire_bytes_total{{direction=\"in\"}} {}",
            self.wire_in
        )?;
        writeln!(
            o,
            "zerows_wire_bytes_total{{direction=\"out\"}} {}",
            self.wire_out
        )?;
        metric(
            o,
            "close_frames_total",
            "counter",
            "Close frames by direction and code.",
        )?;
        for (dir, counts) in [
            ("received", &self.close_received),
            ("sent", &self.close_sent),
        ] {
            for (i, &n) in counts.iter().enumerate() {
                if n > 0 {
                    let code = CodeLabel(i);
                    writeln!(
                        o,
                        "zerows_close_frames_total{{direction=\"{dir}\",code=\"{code}\"}} {n}"
                    )?;
                }
            }
        }
        metric(
            o,
            "buffers",
            "gauge",
            "Pooled buffers attached to connections, and idle in the pools.",
        )?;
        writeln!(
            o,
            "zerows_buffers{{kind=\"read\",state=\"in_use\"}} {}",
            g.read_buffers
        )?;
        writeln!(
            o,
            "zerows_buffers{{kind=\"spill\",state=\"in_use\"}} {}",
            g.spill_buffers
        )?;
        writeln!(
            o,
            "zerows_buffers{{kind=\"write\",state=\"in_use\"}} {}",
            g.write_buffers
        )?;
        writeln!(
            o,
            "zerows_buffers{{kind=\"any\",state=\"idle\"}} {}",
            g.idle_buffers
        )?;
        metric(
            o,
            "loop_turn_seconds",
            "histogram",
            "Time the event loop spends on one batch of events.",
        )?;
        let mut cumulative = 0;
        for (i, b) in TURN_BUCKETS_US.iter().enumerate() {
            cumulative += self.turns[i];
            let le = *b as f64 / 1e6;
            writeln!(
                o,
                "zerows_loop_turn_seconds_bucket{{le=\"{le}\"}} {cumulative}"
            )?;
        }
        cumulative += self.turns[TURN_BUCKETS_US.len()];
        writeln!(
            o,
            "zerows_loop_turn_seconds_bucket{{le=\"+Inf\"}} {cumulative}"
        )?;
        writeln!(
            o,
            "zerows_loop_turn_seconds_sum {}",
            self.turn_us_sum as f64 / 1e6
        )?;
        writeln!(o, "zerows_loop_turn_seconds_count {cumulative}")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_adds_up_every_loop() {
        let board = Board::new(3);
        let mut a = Metrics {
            messages_in: 5,
            ..Metrics::default()
        };
        a.refused(HandshakeError::BadKey);
        a.turn(3);
        let g = Gauges {
            read_buffers: 2,
            accepting: true,
            ..Gauges::default()
        };
        board.publish(0, &a, g);
        board.publish(
            2,
            &a,
            Gauges {
                accepting: false,
                ..g
            },
        );
        let (m, g) = board.total();
        assert_eq!(m.messages_in, 10);
        assert_eq!(m.refused[reason_index(HandshakeError::BadKey)], 2);
        assert_eq!(m.turns.iter().sum::<u64>(), 2);
        assert_eq!(g.read_buffers, 4);
        assert!(!g.accepting, "one loop draining");
    }

    #[test]
    fn renders_every_family_with_values() {
        let mut m = Metrics {
            connections: 3,
            connections_total: 10,
            ..Metrics::default()
        };
        m.refused(HandshakeError::ForbiddenOrigin);
        m.plain[crate::events::Plain::NotFound as usize] += 4;
        m.close_sent[code_index(Some(1002))] += 2;
        m.close_received[code_index(None)] += 1;
        m.turn(5);
        m.turn(700);
        m.turn(1_000_000);
        let mut out = Vec::new();
        m.render(
            Gauges {
                read_buffers: 1,
                spill_buffers: 7,
                accepting: true,
                ..Gauges::default()
            },
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        for line in [
            "zerows_connections 3",
            "zerows_connections_total 10",
            "zerows_accepting 1",
            "zerows_handshakes_total{result=\"refused\",reason=\"origin\"} 1",
            "zerows_http_requests_total{route=\"not_found\"} 4",
            "zerows_http_requests_total{route=\"page\"} 0",
            "zerows_close_frames_total{direction=\"sent\",code=\"1002\"} 2",
            "zerows_close_frames_total{direction=\"received\",code=\"none\"} 1",
            "zerows_buffers{kind=\"read\",state=\"in_use\"} 1",
            "zerows_buffers{kind=\"spill\",state=\"in_use\"} 7",
            "zerows_loop_turn_seconds_bucket{le=\"0.00001\"} 1",
            "zerows_loop_turn_seconds_bucket{le=\"0.001\"} 2",
            "zerows_loop_turn_seconds_bucket{le=\"+Inf\"} 3",
            "zerows_loop_turn_seconds_count 3",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        // Every sample line is "name{labels} value" with a number.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let v = l.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "bad value in {l:?}");
        }
    }
}
