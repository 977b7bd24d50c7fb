//! The event loop of a fan-out run: one thread and one mio poll holding
//! every connection, and the steps a run is made of (connect, publish,
//! wait until a message has reached everyone, close).
//!
//! Invariants: one thread drives every connection; each ready socket is
//! handled by its own connection, reading into its own buffer; at
//! most [`MAX_PENDING`] connects are in progress at once. Every wait is
//! bounded: a poll by [`TURN`], a connect by its timeout, a message by its
//! timeout (a readiness message also by [`READY_STALL_NS`] without
//! progress), the closing handshake by [`close_timeout`].
//! [`Fan::publish`] makes its message the one in flight and resets the
//! count of subscribers that have it; the next one is published only after
//! [`Fan::wait`] has returned for this one.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use zerows::client::{ClientConfig, Keys};

use super::connection::Sub;
use super::tally::Tally;
use super::targets::{target_of, Dest};
use super::FanoutError;
use crate::socket;
use crate::worker::Clock;

/// Connects in progress at once, so the server's accept queue keeps up.
const MAX_PENDING: usize = 512;
/// Events taken from epoll per call.
pub(super) const EVENTS: usize = 4096;
/// Longest sleep of the event loop, so deadlines are looked at often.
const TURN: Duration = Duration::from_millis(10);
/// A readiness round ends early when no subscriber has received its
/// message for this long: the others are not subscribed yet.
const READY_STALL_NS: u64 = 250_000_000;
/// Time allowed for the server's close replies to `open` connections: a
/// server that answers each close in turn needs time in proportion.
fn close_timeout(open: usize) -> Duration {
    Duration::from_secs(2) + Duration::from_micros(250).saturating_mul(open as u32)
}

/// How waiting for a message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    All,
    /// No subscriber got it for a while (readiness only).
    Stalled,
    TimedOut,
    Failed,
}

/// Every connection of a run, the poll that drives them and what they share.
pub(super) struct Fan {
    pub(super) poll: Poll,
    pub(super) events: Events,
    pub(super) subs: Vec<Sub>,
    pub(super) clock: Clock,
    /// Masking keys and nonces for every connection.
    pub(super) keys: Keys,
    /// Where connections go: connection i to `dests[i mod T]`.
    pub(super) dests: Vec<Dest>,
    /// The options every connection opens with.
    pub(super) cfg: ClientConfig,
    pub(super) t: Tally,
    pub(super) quiet: bool,
}

impl Fan {
    pub(super) fn say(&self, what: std::fmt::Arguments) {
        if !self.quiet {
            eprintln!("{what}");
        }
    }

    /// Wait for events (at most `timeout`) and handle them.
    fn turn(&mut self, timeout: Duration) -> Result<(), FanoutError> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(FanoutError::Io("epoll", e)),
        }
        let turn = crate::client::millis(self.clock.now_ns());
        for ev in self.events.iter() {
            let Some(sub) = self.subs.get_mut(ev.token().0) else {
                continue;
            };
            if ev.is_writable() || ev.is_write_closed() {
                sub.on_writable(&mut self.t);
            }
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                sub.on_readable(
                    &mut self.t,
                    &self.clock,
                    &mut self.keys,
                    turn,
                    ev.is_read_closed(),
                );
            }
        }
        Ok(())
    }

    pub(super) fn connect(
        &mut self,
        n: u32,
        timeout_ns: u64,
        spread: bool,
    ) -> Result<(), FanoutError> {
        let mut next_check = 0u64;
        while self.subs.len() < n as usize || self.t.pending > 0 {
            while self.subs.len() < n as usize && self.t.pending < MAX_PENDING {
                let id = self.subs.len() as u32;
                let k = target_of(id, self.dests.len());
                let (addr, url) = (self.dests[k].target.addr, &self.dests[k].url);
                let now = self.clock.now_ns();
                let made = socket::connect(addr, socket::source_for(id, addr, spread)).and_then(
                    |stream| {
                        Sub::new(id, k, stream, url, &self.cfg, &mut self.keys, now)
                            .map_err(std::io::Error::other)
                    },
                );
                let mut sub = match made {
                    Ok(s) => s,
                    Err(e) => {
                        self.t.errors.connect_failed += 1;
                        self.t.note(|| format!("connection {id}: connect: {e}"));
                        return Ok(());
                    }
                };
                if id == 0 {
                    sub.reserve(self.t.size);
                }
                self.poll
                    .registry()
                    .register(
                        sub.source(),
                        Token(id as usize),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .map_err(|e| FanoutError::Io("epoll register", e))?;
                self.subs.push(sub);
                self.t.pending += 1;
            }
            self.turn(TURN)?;
            if self.t.failed() {
                return Ok(());
            }
            let now = self.clock.now_ns();
            if now >= next_check {
                next_check = now + 20_000_000;
                for s in self.subs.iter_mut() {
                    if s.state.pending() && now.saturating_sub(s.started_ns) > timeout_ns {
                        let (id, state) = (s.id, s.state);
                        self.t
                            .note(|| format!("connection {id}: timed out while {state:?}"));
                        s.fail(&mut self.t);
                    }
                }
                if self.t.failed() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Publish the next message from connection 0; returns its sequence
    /// number and when it was handed to the socket.
    pub(super) fn publish(&mut self) -> (u64, u64) {
        let seq = self.t.published;
        self.t.published += 1;
        self.t.current = seq;
        self.t.count = 0;
        self.t.at_median = 0;
        self.t.at_last = 0;
        for x in self.t.targets.iter_mut() {
            x.reset();
        }
        let p = &mut self.subs[0];
        p.queue(seq, &mut self.t, &mut self.keys);
        let sent = self.clock.now_ns();
        p.flush(&mut self.t);
        (seq, sent)
    }

    /// Handle events until every subscriber has message `seq`, something
    /// fails, `timeout_ns` passes or (with `stall`) nobody has received it
    /// for [`READY_STALL_NS`].
    pub(super) fn wait(
        &mut self,
        seq: u64,
        timeout_ns: u64,
        stall: bool,
    ) -> Result<Wait, FanoutError> {
        let start = self.clock.now_ns();
        let deadline = start + timeout_ns;
        let (mut seen, mut moved) = (0u32, start);
        loop {
            if self.t.failed() {
                return Ok(Wait::Failed);
            }
            debug_assert_eq!(self.t.current, seq);
            if self.t.count == self.t.n {
                return Ok(Wait::All);
            }
            let now = self.clock.now_ns();
            if now >= deadline {
                return Ok(Wait::TimedOut);
            }
            if self.t.count != seen {
                (seen, moved) = (self.t.count, now);
            } else if stall && now - moved > READY_STALL_NS {
                return Ok(Wait::Stalled);
            }
            self.turn(TURN.min(Duration::from_nanos(deadline - now)))?;
        }
    }

    /// A strict message did not reach everyone in time.
    pub(super) fn timed_out(&mut self, seq: u64, timeout: f64) {
        let (got, n) = (self.t.count, self.t.n);
        self.t.errors.unanswered += u64::from(n - got);
        let (published, strict) = (self.t.published, self.t.strict_from);
        let first = self
            .subs
            .iter()
            .find(|s| s.seq.missing(published, strict) > 0)
            .map_or(u32::MAX, |s| s.id);
        let by_target = if self.t.targets.len() > 1 {
            let each: Vec<String> = self
                .t
                .targets
                .iter()
                .map(|x| format!("{}/{}", x.count, x.n))
                .collect();
            format!(" (per target {})", each.join(", "))
        } else {
            String::new()
        };
        self.t.note(|| {
            format!("message {seq} reached {got} of {n} subscribers{by_target} within {timeout} s (lost or late; connection {first} is one without it)")
        });
    }

    /// Close every open connection and wait (bounded) for the replies.
    pub(super) fn close(&mut self) -> Result<(), FanoutError> {
        let now = self.clock.now_ns();
        for s in self.subs.iter_mut() {
            s.close(&mut self.t, &mut self.keys, now);
        }
        let deadline = Instant::now() + close_timeout(self.t.open);
        while self.t.open > 0 && Instant::now() < deadline {
            self.turn(TURN)?;
        }
        Ok(())
    }
}
