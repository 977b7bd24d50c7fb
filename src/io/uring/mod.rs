//! The io_uring backend of the event loop: completions instead of
//! readiness, under the same sessions and core.
//!
//! The loop (`server.rs`) stays the same; only the way bytes and events
//! move changes. Each connection's socket has one receive at a time into
//! the loop's receive buffers, each output one send from a pooled buffer,
//! and every operation of a turn goes to the kernel in the one
//! `io_uring_enter` that also waits for the next completions.
//!
//! Invariants:
//! * Input: one receive per connection at a time, each taking one of the
//!   loop's receive buffers, armed again (within the next submit) once
//!   its completion is handled. A multishot receive would save that, but
//!   it keeps filling buffers from a socket whose session has stopped
//!   reading, up to 32 at a wake-up: a few flooding peers then empty the
//!   ring and starve everyone else (`tests/operations.rs` saw a 1.5 s
//!   probe behind 1,000 stalled peers). A completion is handed to its
//!   session at once ([`UringIo`] reads from it); what the session leaves
//!   is copied into the connection's overflow and the buffer goes back to
//!   the kernel before the next completion, so no connection holds one.
//!   While input waits in the overflow no receive is armed (backpressure:
//!   the socket then fills, as with epoll); reading it to the end arms one.
//! * Output: one send in flight per connection. A write copies into a
//!   pooled buffer, queues the send and returns. A write while one is in
//!   flight first submits what is queued and looks for that send's
//!   completion (a burst to one connection then costs a system call per
//!   write, as with epoll, and the kernel's socket buffer absorbs it as
//!   it would); if it is not complete the write is refused (`WouldBlock`),
//!   so the session keeps the bytes in its backlog and is told when the
//!   send completes (`OWED`), as by a writable edge.
//! * Completions name their connection by slab key and generation: one
//!   that outlived its connection (the key reused since) is recognised and
//!   only returns its buffer.
//! * A closed connection's descriptor stays open until the entries queued
//!   for it are submitted (`closing`), so a reused descriptor number never
//!   receives another connection's bytes; and while a send it left is in
//!   flight (`draining`), so the rest of a short send still goes out.
//! * Per connection the backend keeps 4 bytes (`state`); buffers only
//!   while a send is in flight or input waits.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use mio::net::TcpStream;
use slab::Slab;

use crate::buffer::{Backlog, Pool};

mod probe;
mod ring;
mod state;
mod transport;

pub use probe::available;
pub(crate) use ring::Completion;
use ring::Ring;
use state::*;
pub(crate) use transport::UringIo;

/// Submission queue entries (the completion queue has four times as many).
const QUEUE: u32 = 4096;
/// Receive buffers lent to the kernel, and their size: a fixed cost per
/// loop, whatever the number of connections.
const RECV_BUFFERS: u16 = 256;
const RECV_SIZE: usize = 16 << 10;
/// Sends up to this size take a small buffer.
const SMALL_SEND: usize = 2048;
/// Overflow buffers kept for reuse.
const OVERFLOW_IDLE: usize = 64;
/// Connection states are allocated this many at a time.
const STATE_STEP: usize = 1024;

const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_ACCEPT: u64 = 3;
const OP_WAKE: u64 = 4;
const OP_CANCEL: u64 = 5;

fn user_data(op: u64, gen: u32, index: usize) -> u64 {
    (op << 56) | (u64::from(gen & GEN_MASK) << 32) | index as u64
}

fn op_of(ud: u64) -> u64 {
    ud >> 56
}

fn gen_of(ud: u64) -> u32 {
    ((ud >> 32) as u32) & GEN_MASK
}

fn index_of(ud: u64) -> usize {
    (ud & 0xFFFF_FFFF) as usize
}

struct Send {
    buf: Box<[u8]>,
    len: u32,
    sent: u32,
    key: u32,
    gen: u32,
    fd: RawFd,
}

/// The receive completion being handed to its session.
#[derive(Clone, Copy)]
struct Current {
    key: usize,
    bid: u16,
    read: usize,
    len: usize,
}

/// What a completion means to the loop.
pub(crate) enum Event {
    /// Nothing for the loop.
    None,
    /// Listener `listener` accepted a socket, or failed; `more`: its
    /// multishot accept goes on.
    Accept {
        listener: usize,
        result: io::Result<std::net::TcpStream>,
        more: bool,
    },
    /// Input for the session, or (`closed`) the end of its input or a
    /// failure: the session then reads to the end, whatever it already
    /// holds, since no further completion will come to say so.
    Readable { key: usize, closed: bool },
    /// The send in flight is complete: `writable` if the session waits for
    /// it, `fin` if the write side is to be shut now.
    Sent {
        key: usize,
        writable: bool,
        fin: bool,
    },
    /// The waker fired; `more`: its poll goes on.
    Wake { more: bool },
}

/// One loop's io_uring: the ring, the connections' I/O state, buffers.
pub(crate) struct Uring {
    /// First, so it is dropped (every operation cancelled) before the
    /// buffers the kernel may still use.
    ring: Ring,
    /// By slab key.
    state: Vec<ConnState>,
    sends: Slab<Send>,
    small: Pool,
    large: Pool,
    /// Input sessions left, by slab key, in blocks of `blocks`.
    overflows: HashMap<u32, Backlog>,
    spare_overflows: Vec<Backlog>,
    blocks: Pool,
    /// Connections whose send was queued since the last submit.
    queued: Vec<usize>,
    current: Option<Current>,
    /// Connections whose receive ended, to arm again: key, generation.
    rearm: Vec<(usize, u32)>,
    /// Those whose receive found no buffer: armed first next time, so that
    /// busy peers cannot keep a connection from ever getting one.
    starved: Vec<(usize, u32)>,
    /// Sockets of closed connections, closed after the next submit.
    closing: Vec<TcpStream>,
    /// Closed connections whose send is let finish: until when (a loop
    /// time), its key and generation, and the socket, open until then.
    draining: Vec<(u64, u32, u32, TcpStream)>,
    pub(crate) completions: Vec<Completion>,
    /// The list a turn works through while `completions` gathers what is
    /// reaped meanwhile; the two alternate, so neither reallocates.
    pub(crate) handling: Vec<Completion>,
    /// Where the waker's poll is drained.
    pub(crate) wake_events: mio::Events,
}

impl Uring {
    /// A backend whose sends take buffers of at most `write_buffer` bytes,
    /// keeping `pool_idle` idle ones of each size.
    pub fn new(write_buffer: usize, pool_idle: usize) -> io::Result<Uring> {
        Ok(Uring {
            ring: Ring::new(QUEUE, RECV_BUFFERS, RECV_SIZE)?,
            state: Vec::with_capacity(STATE_STEP),
            sends: Slab::with_capacity(1024),
            small: Pool::new(SMALL_SEND, pool_idle, 4),
            large: Pool::new(write_buffer.max(SMALL_SEND), pool_idle, 0),
            overflows: HashMap::new(),
            spare_overflows: Vec::with_capacity(OVERFLOW_IDLE),
            blocks: Pool::new(RECV_SIZE, pool_idle, 0),
            queued: Vec::with_capacity(1024),
            current: None,
            rearm: Vec::with_capacity(256),
            starved: Vec::with_capacity(256),
            closing: Vec::with_capacity(256),
            draining: Vec::with_capacity(64),
            completions: Vec::with_capacity(1024),
            handling: Vec::with_capacity(1024),
            wake_events: mio::Events::with_capacity(8),
        })
    }

    /// Start: from now on only the calling thread may use this backend.
    pub fn start(&mut self) -> io::Result<()> {
        self.ring.enable()
    }

    /// Accept on listener `index` until told otherwise.
    pub fn arm_accept(&mut self, index: usize, fd: RawFd) -> io::Result<()> {
        self.ring.accept(fd, user_data(OP_ACCEPT, 0, index))
    }

    /// Report each time `fd` (the loop's waker poll) turns readable.
    pub fn arm_waker(&mut self, fd: RawFd) -> io::Result<()> {
        self.ring.poll_readable(fd, user_data(OP_WAKE, 0, 0))
    }

    /// A connection took slot `key`: start receiving on it.
    pub fn open(&mut self, key: usize, stream: &TcpStream) -> io::Result<()> {
        if self.state.len() <= key {
            // In steps, not doubling: every slot is paid by every idle
            // connection.
            let len = (key / STATE_STEP + 1) * STATE_STEP;
            self.state.reserve_exact(len - self.state.len());
            self.state.resize(len, ConnState::default());
        }
        let st = self.state[key].reopen();
        self.state[key] = st;
        self.ring
            .recv(stream.as_raw_fd(), user_data(OP_RECV, st.gen(), key))
    }

    /// Connection `key` is over: stop its receive, drop its waiting input,
    /// and close its socket once nothing queued names it. A send in flight
    /// is cancelled if `abort` (the session gave up on its output, which
    /// epoll would drop with the socket), else it may finish until `until`
    /// (a loop time, see `expire`), as bytes a socket took go out after
    /// its close.
    pub fn close(&mut self, key: usize, stream: TcpStream, abort: bool, until: u64) {
        let st = self.state[key];
        self.state[key] = st.closed();
        if st.has(OVERFLOW) {
            self.free_overflow(key);
        }
        let fd = stream.as_raw_fd();
        if st.has(SENDING) && (abort || st.has(OWED)) {
            self.cancel_all(fd);
        } else {
            if st.has(ARMED) && !st.has(CANCELLING) {
                self.cancel(user_data(OP_RECV, st.gen(), key));
            }
            if st.has(SENDING) {
                self.draining.push((until, key as u32, st.gen(), stream));
                return;
            }
        }
        if self.ring.queued() > 0 {
            self.closing.push(stream);
        }
    }

    fn cancel(&mut self, target: u64) {
        if let Err(e) = self.ring.cancel(target, user_data(OP_CANCEL, 0, 0)) {
            log::warn!("io_uring cancel: {e}");
        }
    }

    fn cancel_all(&mut self, fd: RawFd) {
        if let Err(e) = self.ring.cancel_fd(fd, user_data(OP_CANCEL, 0, 0)) {
            log::warn!("io_uring cancel: {e}");
        }
    }

    /// Cancel the sends of closed connections still in flight at `now`
    /// past their time (their completion then closes the socket).
    pub fn expire(&mut self, now: u64) {
        for i in 0..self.draining.len() {
            if now >= self.draining[i].0 {
                self.draining[i].0 = u64::MAX;
                let fd = self.draining[i].3.as_raw_fd();
                self.cancel_all(fd);
            }
        }
    }

    /// The transport of connection `key` for one call into its session.
    pub fn io<'a>(&'a mut self, key: usize, stream: &'a TcpStream) -> UringIo<'a> {
        UringIo::new(self, key, stream)
    }

    /// Submit the turn's operations and wait up to `timeout` for
    /// completions; they are then added to `completions`.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Completions reaped early (see `finish_send`) are waiting already.
        let timeout = match self.completions.is_empty() {
            true => timeout,
            false => Some(Duration::ZERO),
        };
        let r = self.ring.submit_and_wait(timeout);
        self.submitted();
        self.ring.completions(&mut self.completions);
        r
    }

    /// Everything queued is with the kernel now.
    fn submitted(&mut self) {
        self.closing.clear();
        for &k in &self.queued {
            self.state[k].clear(QUEUED);
        }
        self.queued.clear();
    }

    /// Stop accepting on listeners `0..listeners`, and return what they
    /// accepted before that; other completions wait in `completions`.
    pub fn cancel_accepts(&mut self, listeners: usize) -> Vec<std::net::TcpStream> {
        let _ = self.ring.submit();
        for i in 0..listeners {
            if let Err(e) = self.ring.cancel_now(user_data(OP_ACCEPT, 0, i)) {
                log::warn!("io_uring: cancelling accept: {e}");
            }
        }
        self.ring.completions(&mut self.completions);
        let mut accepted = Vec::new();
        self.completions.retain(|c| {
            if op_of(c.user_data) != OP_ACCEPT {
                return true;
            }
            match ring::accepted(c.result) {
                Ok(s) => accepted.push(s),
                Err(e) => log::debug!("accept: {e}"),
            }
            false
        });
        accepted
    }

    /// What completion `c` means; its buffer and send bookkeeping done.
    pub fn event(&mut self, c: Completion) -> Event {
        let ud = c.user_data;
        match op_of(ud) {
            OP_RECV => self.received(c),
            OP_SEND => self.sent(c),
            OP_ACCEPT => Event::Accept {
                listener: index_of(ud),
                result: ring::accepted(c.result),
                more: c.more(),
            },
            OP_WAKE => Event::Wake { more: c.more() },
            _ => Event::None,
        }
    }

    fn received(&mut self, c: Completion) -> Event {
        let key = index_of(c.user_data);
        let live = self
            .state
            .get(key)
            .is_some_and(|s| s.is(gen_of(c.user_data)));
        if !live {
            if let Some(bid) = c.buffer() {
                self.ring.recycle(bid);
            }
            return Event::None;
        }
        let st = &mut self.state[key];
        if !c.more() {
            st.clear(ARMED | CANCELLING);
        }
        match c.result {
            n if n > 0 => {
                let bid = c.buffer().expect("a receive fills a provided buffer");
                let len = n as usize;
                if st.has(OVERFLOW) {
                    // Input before this still waits: keep the order.
                    let data = self.ring.recv_data(bid, len);
                    let o = self.overflows.get_mut(&(key as u32)).expect("overflow");
                    o.push(data, &mut self.blocks);
                    self.ring.recycle(bid);
                } else {
                    self.current = Some(Current {
                        key,
                        bid,
                        read: 0,
                        len,
                    });
                }
                if !c.more() {
                    self.rearm_later(key);
                }
                Event::Readable { key, closed: false }
            }
            0 => {
                if let Some(bid) = c.buffer() {
                    self.ring.recycle(bid);
                }
                st.set(EOF);
                Event::Readable { key, closed: true }
            }
            e if e == -libc::ENOBUFS => {
                // Out of buffers: they come back within the turn.
                self.starved.push((key, st.gen()));
                Event::None
            }
            e if e == -libc::ECANCELED => {
                // Cancelled with its connection, or by a wait for the
                // session: arm again unless input still waits (then
                // reading it does).
                if !st.has(OVERFLOW) {
                    self.rearm_later(key);
                }
                Event::None
            }
            _ => {
                st.set(FAILED);
                Event::Readable { key, closed: true }
            }
        }
    }

    fn rearm_later(&mut self, key: usize) {
        let st = self.state[key];
        if !st.has(ARMED | EOF | FAILED) {
            self.rearm.push((key, st.gen()));
        }
    }

    /// After the session saw the current receive: keep what it left, give
    /// the buffer back, and pause receiving while input waits.
    pub fn after_receive(&mut self) {
        let Some(cur) = self.current.take() else {
            return;
        };
        let st = self.state[cur.key];
        if cur.read < cur.len && st.has(OPEN) {
            let rest = &self.ring.recv_data(cur.bid, cur.len)[cur.read..];
            let spare = &mut self.spare_overflows;
            let o = self
                .overflows
                .entry(cur.key as u32)
                .or_insert_with(|| spare.pop().unwrap_or_default());
            o.push(rest, &mut self.blocks);
            self.state[cur.key].set(OVERFLOW);
            if st.has(ARMED) && !st.has(CANCELLING) {
                self.state[cur.key].set(CANCELLING);
                self.cancel(user_data(OP_RECV, st.gen(), cur.key));
            }
        }
        self.ring.recycle(cur.bid);
    }

    /// Arm again the receives that ended for want of buffers or by our
    /// cancellation, now that the turn's buffers are back.
    pub fn rearm(&mut self, fd_of: impl Fn(usize) -> Option<RawFd>) {
        if !self.starved.is_empty() {
            // The starved first: receives with data complete in the order
            // they are submitted, taking buffers in that order.
            let mut starved = std::mem::take(&mut self.starved);
            starved.append(&mut self.rearm);
            std::mem::swap(&mut starved, &mut self.rearm);
            self.starved = starved;
        }
        for i in 0..self.rearm.len() {
            let (key, gen) = self.rearm[i];
            let st = self.state[key];
            if !st.is(gen) || st.has(ARMED | EOF | FAILED | OVERFLOW) {
                continue;
            }
            if let Some(fd) = fd_of(key) {
                self.state[key].set(ARMED);
                if let Err(e) = self.ring.recv(fd, user_data(OP_RECV, gen, key)) {
                    log::warn!("io_uring receive: {e}");
                    self.state[key].clear(ARMED);
                }
            }
        }
        self.rearm.clear();
    }

    fn sent(&mut self, c: Completion) -> Event {
        let slot = index_of(c.user_data);
        let Some(s) = self.sends.get_mut(slot) else {
            return Event::None;
        };
        let key = s.key as usize;
        let live = self.state[key].is(s.gen);
        let draining = !live && self.draining.iter().any(|d| d.1 == s.key && d.2 == s.gen);
        if (live || draining) && c.result >= 0 {
            s.sent += c.result as u32;
            if s.sent < s.len {
                // A short send: the rest goes first, before anything newer.
                let (fd, from, to) = (s.fd, s.sent as usize, s.len as usize);
                let data = &self.sends[slot].buf[from..to];
                if self.ring.send(fd, data, c.user_data).is_ok() {
                    return Event::None;
                }
                if live {
                    self.state[key].set(FAILED);
                }
            }
        }
        let s = self.sends.remove(slot);
        self.give_send(s.buf);
        if draining {
            // Done: the socket may close now (after the next submit, in
            // case something queued still names it).
            if let Some(i) = self
                .draining
                .iter()
                .position(|d| d.1 == s.key && d.2 == s.gen)
            {
                let (_, _, _, stream) = self.draining.swap_remove(i);
                self.closing.push(stream);
            }
        }
        if !live {
            return Event::None;
        }
        let st = &mut self.state[key];
        st.clear(SENDING);
        if c.result < 0 {
            st.set(FAILED);
        }
        let writable = st.has(OWED);
        let fin = st.has(FIN) && !st.has(FAILED);
        st.clear(OWED | FIN);
        if writable || fin {
            Event::Sent { key, writable, fin }
        } else {
            Event::None
        }
    }

    /// Whether connection `key`'s send in flight is complete, once what is
    /// queued is submitted; its completion is handled here, the others
    /// wait in `completions`.
    fn finish_send(&mut self, key: usize) -> bool {
        // Submitted before: with deferred task work nothing completes
        // between two waits but at submission, so it is still in flight.
        if !self.state[key].has(QUEUED) || self.ring.submit().is_err() {
            return false;
        }
        self.submitted();
        let old = self.completions.len();
        self.ring.completions(&mut self.completions);
        let gen = self.state[key].gen();
        let mine = |c: &Completion| {
            op_of(c.user_data) == OP_SEND
                && self
                    .sends
                    .get(index_of(c.user_data))
                    .is_some_and(|s| s.key as usize == key && s.gen == gen)
        };
        if let Some(i) = self.completions[old..].iter().position(mine) {
            let i = old + i;
            let c = self.completions.remove(i);
            // The session is writing: it needs no event; a FIN is only
            // asked after its last write.
            let _ = self.sent(c);
        }
        !self.state[key].has(SENDING)
    }

    fn give_send(&mut self, buf: Box<[u8]>) {
        if buf.len() == SMALL_SEND {
            self.small.give(buf);
        } else {
            self.large.give(buf);
        }
    }

    fn free_overflow(&mut self, key: usize) {
        if let Some(mut o) = self.overflows.remove(&(key as u32)) {
            o.release(&mut self.blocks);
            if self.spare_overflows.len() < OVERFLOW_IDLE {
                self.spare_overflows.push(o);
            }
        }
        self.state[key].clear(OVERFLOW);
    }

    /// Sends in flight and overflows held, for tests.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (self.sends.len(), self.overflows.len())
    }
}

#[cfg(test)]
mod tests;
