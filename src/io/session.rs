//! One connection's I/O: moves bytes between a non-blocking stream and the
//! protocol core, through pooled buffers.
//!
//! Invariants:
//! * A read buffer is attached only while it holds unprocessed input, and
//!   backlog blocks only while the socket has not taken all the output; both
//!   go back to their pool the moment they are empty (and by
//!   [`Session::release`] when the connection ends). Once the socket is
//!   drained, a few unprocessed bytes (a partial header or control frame)
//!   wait in a small spill buffer instead (see `spill`), and move back into
//!   a read buffer before the next read.
//! * Output is written straight from the read buffer (`writev`), once per
//!   pass of the core; only what the socket does not take is copied, into the
//!   backlog. Every output is written or copied before the read buffer is
//!   compacted or read into again.
//! * Backpressure: the session reads only while its backlog plus the
//!   worst-case output of one more full read buffer stays under
//!   `max_backlog`, so a peer that stops reading stops being read, and its
//!   memory is bounded by configuration. The limit should exceed the largest
//!   message: a client may send a whole message before reading its echo.
//! * Writability is a flag: set by a writable event, cleared by a short or
//!   refused write; interest is never re-registered.
//! * Minimum drain rate: while output waits (from a short write until the
//!   backlog is empty), time is cut into windows of `stall_timeout`; a
//!   window in which the socket took fewer than
//!   `max(1, min_drain_rate × window)` bytes drops the connection, so a
//!   peer that reads a trickle cannot hold its backlog forever. A
//!   connection whose output never waits has no window and pays nothing.
//! * A short read means the socket is drained (edge-triggered readiness will
//!   report new bytes), so no second read is spent just to see `WouldBlock`.

use std::io::{self, Read, Write};
use std::time::Duration;

use crate::buffer::{Backlog, MsgPool, Pool, ReadBuf};
use crate::conn::Route;
use crate::conn::{millis, Conn, Millis, Settings, State};
use crate::conn_id::ConnId;
use crate::context::Tx;
use crate::deflate::Codec;
use crate::events::{Bound, Events};
use crate::io::spill::Spill;
use crate::metrics::{Gauges, Metrics};
use crate::output::{Output, CORE_SCRATCH};
use crate::push::{Local, SlowPolicy};
use crate::service::Service;

/// Inflaters a loop keeps for reuse (about 40 KiB each: a 32 KiB window
/// and zlib's state); one is lent per compressed message in progress.
const INFLATERS_IDLE: usize = 32;

/// Backlog slices offered to one `writev` (the rest waits for the next).
const BACKLOG_IOV: usize = 16;

/// How long a finished connection waits for the peer's FIN after ours.
pub const LINGER: Duration = Duration::from_secs(2);

/// A byte stream the session can drive: a socket, or an in-memory pipe.
pub trait Transport: Read + Write {
    /// Send FIN: no more bytes will be written.
    fn shutdown_write(&mut self) -> io::Result<()>;
}

impl Transport for mio::net::TcpStream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.shutdown(std::net::Shutdown::Write)
    }
}

/// State shared by every session of one event loop.
pub struct Shared<S> {
    pub settings: Settings,
    pub read_pool: Pool,
    /// Small buffers for bytes left over between reads.
    pub spill: Spill,
    pub write_pool: Pool,
    /// Buffers of collected messages and held-back sends.
    pub msg_pool: MsgPool,
    /// Compressors, pooled inflaters and their scratch space.
    pub codec: Codec,
    pub out: Box<Output>,
    pub service: S,
    /// Most unsent bytes a connection may hold before it is no longer read.
    pub max_backlog: usize,
    /// The drain window: how long output may wait on a socket that takes
    /// nothing (or too little, see `min_drain_rate`) before the connection
    /// is dropped.
    pub stall_timeout: Millis,
    /// Bytes per second a peer must take, over each drain window, while its
    /// output waits; 0: any progress at all will do.
    pub min_drain_rate: u64,
    /// The time of this loop turn.
    pub now: Millis,
    pub metrics: Metrics,
    /// New connections are welcome (false while shutting down): what
    /// the health check reports.
    pub accepting: bool,
    /// Where HTTP answers rendered by the shell are written (kept, so a
    /// scrape allocates nothing once warm).
    http_buf: Vec<u8>,
    /// With several loops: the shared board and this loop's slot on it.
    pub board: Option<(std::sync::Arc<crate::metrics::Board>, usize)>,
    /// Topics, timers and the handle (see `push`).
    pub local: Local,
    /// A push finding more unsent bytes than this on a connection meets
    /// `slow`.
    pub push_limit: usize,
    pub slow: SlowPolicy,
}

impl<S> Shared<S> {
    pub fn new(
        settings: Settings,
        read_pool: Pool,
        write_pool: Pool,
        max_backlog: usize,
        service: S,
    ) -> Self {
        assert!(
            max_backlog >= read_pool.buffer_size() + Self::extra(),
            "the backlog limit must exceed the read buffer by at least {} bytes",
            Self::extra()
        );
        let msg_pool = MsgPool::new(read_pool.max_idle(), read_pool.buffer_size());
        let codec = Codec::new(&settings.handshake.deflate, INFLATERS_IDLE);
        let spill = Spill::new(read_pool.buffer_size(), read_pool.max_idle());
        Shared {
            settings,
            read_pool,
            spill,
            write_pool,
            msg_pool,
            codec,
            out: Box::new(Output::new()),
            service,
            max_backlog,
            stall_timeout: 30_000,
            min_drain_rate: 1024,
            now: 1,
            metrics: Metrics::default(),
            accepting: true,
            http_buf: Vec::new(),
            board: None,
            local: Local::default(),
            push_limit: max_backlog,
            slow: SlowPolicy::Skip,
        }
    }

    /// Output one pass can add beyond the input it consumed: a scratch area
    /// (HTTP responses, close frames) and the static page.
    pub fn extra() -> usize {
        CORE_SCRATCH + crate::http::PAGE.len() + 64
    }

    /// Whether a connection with this backlog may read: only while the
    /// output of one more full read buffer would still fit under the limit.
    fn may_read(&self, backlog: &Backlog) -> bool {
        backlog.len() + self.read_pool.buffer_size() + Self::extra() <= self.max_backlog
    }
}

impl<S> Shared<S> {
    /// Give back a buffer that held input, whichever pool it came from.
    fn give_input(&mut self, rbuf: ReadBuf) {
        self.spill.give(rbuf, &mut self.read_pool);
    }

    /// The gauges of the pools, for rendering metrics.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            read_buffers: self.read_pool.in_use(),
            spill_buffers: self.spill.in_use(),
            write_buffers: self.write_pool.in_use(),
            idle_buffers: self.read_pool.idle() + self.write_pool.idle() + self.spill.idle(),
            accepting: self.accepting,
        }
    }
}

/// What the event loop should do with a connection after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Wait for the next readiness event or deadline.
    Idle,
    /// The read budget ran out with input possibly left: call again soon.
    More,
    /// The connection is over: release it and drop the stream.
    Done,
}

pub struct Session<St> {
    core: Conn,
    /// The service's state for this connection, from the upgrade on.
    state: Option<St>,
    rbuf: Option<ReadBuf>,
    backlog: Backlog,
    writable: bool,
    /// Reading stopped because output is not draining.
    read_blocked: bool,
    /// FIN sent; reading only to see the peer's FIN, until `clock`.
    lingering: bool,
    /// The peer sent FIN: nothing more to read, output still owed.
    peer_eof: bool,
    /// The inflate budget of a pass left a compressed chunk in `rbuf`: the
    /// next read event processes it before reading more.
    yielded: bool,
    /// Readiness said the peer closed its side: read to the end even after
    /// a short read, since no further edge will announce the FIN.
    read_closed: bool,
    /// Lingering: until when. Otherwise: when the current drain window
    /// began (0: output is not waiting); the bytes taken since are counted
    /// in the backlog. One field for both, since lingering starts only once
    /// all output is out.
    clock: Millis,
}

impl<St> Session<St> {
    pub fn new(now: Millis, settings: &Settings, id: ConnId) -> Self {
        Session {
            core: Conn::new(now, settings, id),
            state: None,
            rbuf: None,
            backlog: Backlog::default(),
            writable: true,
            read_blocked: false,
            lingering: false,
            peer_eof: false,
            yielded: false,
            read_closed: false,
            clock: 0,
        }
    }

    pub fn core(&self) -> &Conn {
        &self.core
    }

    /// Bytes waiting for the socket.
    pub fn pending_output(&self) -> usize {
        self.backlog.len()
    }

    /// Done: our FIN is out and the session only waits for the peer's.
    pub fn is_lingering(&self) -> bool {
        self.lingering
    }

    pub fn holds_buffers(&self) -> (bool, bool) {
        (self.rbuf.is_some(), !self.backlog.is_empty())
    }

    /// When [`on_timeout`](Self::on_timeout) is next due, given the stall
    /// limit of `Shared::stall_timeout`.
    pub fn deadline(&self, stall_timeout: Millis) -> Option<Millis> {
        if self.lingering {
            return Some(self.clock);
        }
        let stall = (self.clock != 0).then(|| self.clock + stall_timeout);
        match (stall, self.core.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Give the buffers back and the state to the service; call before
    /// dropping the session.
    pub fn release<S: Service<State = St>>(&mut self, sh: &mut Shared<S>) {
        if let Some(r) = self.rbuf.take() {
            sh.give_input(r);
        }
        self.backlog.release(&mut sh.write_pool);
        self.core.release(&mut sh.msg_pool, &mut sh.codec);
        if let Some(st) = self.state.take() {
            sh.service.closed(st);
        }
    }

    /// Readiness reported that the peer shut down its side.
    pub fn set_read_closed(&mut self) {
        self.read_closed = true;
    }

    /// The socket has bytes to read (or may have).
    pub fn on_readable<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
        mut budget: usize,
    ) -> Progress {
        let progress = loop {
            if budget == 0 {
                break Progress::More;
            }
            budget -= 1;
            if self.yielded {
                // Input left by the inflate budget goes before new input,
                // once the backlog has room for what it may make (an echo
                // that goes back inflated is larger than its input): until
                // then the connection waits for writability, as a read does.
                if !sh.may_read(&self.backlog) {
                    self.read_blocked = true;
                    break Progress::Idle;
                }
                self.yielded = false;
                if self.pump(io, sh).is_err() {
                    break Progress::Done;
                }
                if sh.codec.take_yielded() {
                    self.yielded = true;
                    break Progress::More;
                }
                continue;
            }
            if self.peer_eof {
                break Progress::Idle;
            }
            if self.lingering || self.core.is_closed() {
                match self.discard_input(io) {
                    Ok(true) => continue,
                    Ok(false) => break Progress::Idle,
                    // The peer's FIN. Output still queued (the echo of what
                    // came before its close) is owed to a peer that only
                    // half-closed: flush it first.
                    Err(true) if !self.backlog.is_empty() => {
                        self.peer_eof = true;
                        break Progress::Idle;
                    }
                    Err(_) => break Progress::Done,
                }
            }
            if !sh.may_read(&self.backlog) {
                self.read_blocked = true;
                break Progress::Idle;
            }
            self.read_blocked = false;
            if let Some(r) = self
                .rbuf
                .take_if(|r| r.capacity() != sh.read_pool.buffer_size())
            {
                self.rbuf = Some(sh.spill.grow(r, &mut sh.read_pool));
            }
            let rbuf = self
                .rbuf
                .get_or_insert_with(|| ReadBuf::new(sh.read_pool.take()));
            let spare = rbuf.spare();
            let room = spare.len();
            if room == 0 {
                // Cannot happen with a valid configuration: leftovers are at
                // most a request head, which is capped below the buffer size.
                log::error!("read buffer full with no progress; dropping connection");
                break Progress::Done;
            }
            match io.read(spare) {
                Ok(0) => {
                    // Echoes still queued are owed to the peer, which may
                    // only have half-closed: flush them first.
                    self.core.on_eof();
                    self.peer_eof = true;
                    break Progress::Idle;
                }
                Ok(n) => {
                    sh.metrics.wire_in += n as u64;
                    rbuf.filled(n);
                    if self.pump(io, sh).is_err() {
                        break Progress::Done;
                    }
                    if sh.codec.take_yielded() {
                        // A compressed chunk waits: serve the others first.
                        self.yielded = true;
                        break Progress::More;
                    }
                    if n < room && !self.read_closed {
                        break Progress::Idle;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Progress::Idle,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break Progress::Done,
            }
        };
        if progress == Progress::Done {
            return Progress::Done;
        }
        if let Some(r) = self.rbuf.take_if(|r| r.is_empty()) {
            sh.give_input(r);
        } else if progress == Progress::Idle && !self.yielded {
            if let Some(r) = self.rbuf.take() {
                // Drained (or blocked on output): what is left waits for
                // more input, maybe for long; keep it small.
                self.rbuf = Some(sh.spill.shrink(r, &mut sh.read_pool));
            }
        }
        self.after_io(io, sh, progress)
    }

    /// The socket can take bytes again.
    pub fn on_writable<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
        budget: usize,
    ) -> Progress {
        self.writable = true;
        if !self.backlog.is_empty() {
            if self.write_all_backlog(io, sh).is_err() {
                return Progress::Done;
            }
            if self.backlog.is_empty() && self.state.is_some() && self.core.state() == State::Open {
                let drained = self.run_core(io, sh, |c, tx, s, h, now| {
                    c.callback(tx, s, h, now, |h, cx| h.drain(cx))
                });
                if drained.is_err() {
                    return Progress::Done;
                }
            }
        }
        if self.read_blocked && sh.may_read(&self.backlog) {
            // Input may have been waiting while output drained.
            return self.on_readable(io, sh, budget);
        }
        self.after_io(io, sh, Progress::Idle)
    }

    /// A deadline from [`deadline`](Self::deadline) may have passed.
    pub fn on_timeout<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
    ) -> Progress {
        let now = sh.now;
        if self.lingering && now >= self.clock {
            return Progress::Done;
        }
        let mut p = Progress::Idle;
        if !self.lingering && self.clock != 0 && now >= self.clock + sh.stall_timeout {
            p = self.end_window(io, sh);
            if p == Progress::Done {
                return p;
            }
        }
        let q = if self.core.state() != State::Open {
            // A stalled handshake or a peer that never answered our close:
            // nothing more is owed to it.
            let due = self.core.deadline().is_some_and(|d| now >= d);
            if due {
                Progress::Done
            } else {
                Progress::Idle
            }
        } else {
            self.act(io, sh, |c, out, s, h, now| c.on_timeout(now, out, s, h))
        };
        if q == Progress::Idle {
            p
        } else {
            q
        }
    }

    /// Close from our side with `code` (shutdown, idle peer).
    pub fn close<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
        code: u16,
    ) -> Progress {
        self.act(io, sh, |c, out, s, h, now| c.close(code, out, s, h, now))
    }

    /// Answer the request with an HTTP error once its head is in (the
    /// server is full); see [`Conn::refuse_when_read`].
    pub fn refuse_when_read(&mut self, err: crate::error::HandshakeError) {
        self.core.refuse_when_read(err);
    }

    /// Let the core act outside of input (a timer, a close, a refusal, a
    /// drained backlog), then send what it produced.
    fn act<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
        f: impl FnOnce(&mut Conn, &mut Tx<'_>, &Settings, &mut Bound<'_, S>, Millis),
    ) -> Progress {
        if self.run_core(io, sh, f).is_err() {
            return Progress::Done;
        }
        self.after_io(io, sh, Progress::Idle)
    }

    /// Let the core act outside of input and send what it produced.
    fn run_core<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
        f: impl FnOnce(&mut Conn, &mut Tx<'_>, &Settings, &mut Bound<'_, S>, Millis),
    ) -> Result<(), ()> {
        sh.out.clear();
        let mut wire = Wire::new(
            io,
            &mut self.backlog,
            &mut sh.write_pool,
            &mut self.writable,
            &mut self.clock,
            sh.now,
        );
        let mut tx = Tx {
            out: &mut sh.out,
            sink: &mut wire,
            pool: &mut sh.msg_pool,
            max_backlog: sh.max_backlog,
            sent: Default::default(),
            local: Some(&mut sh.local),
            codec: &mut sh.codec,
        };
        let mut ev = Bound {
            service: &mut sh.service,
            state: &mut self.state,
            metrics: &mut sh.metrics,
        };
        f(&mut self.core, &mut tx, &sh.settings, &mut ev, sh.now);
        let sent = tx.sent;
        let r = wire.send(&sh.out, &[], &[]);
        wire.account(&mut sh.metrics, sent);
        r
    }

    /// Run the core over the read buffer until it stops making progress,
    /// writing each pass's output.
    fn pump<T: Transport, S: Service<State = St>>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
    ) -> Result<(), ()> {
        let mut rbuf = self.rbuf.take().expect("pump needs input");
        // A broken socket also makes `run_core`'s last write fail.
        let r = self.run_core(io, sh, |c, tx, s, h, now| {
            crate::conn::pump(c, &mut rbuf, tx, s, h, now);
        });
        self.rbuf = Some(rbuf);
        r?;
        match self.core.take_route() {
            Some(route) => {
                self.answer(route, sh);
                self.write_all_backlog(io, sh)
            }
            None => Ok(()),
        }
    }

    /// Write what the backlog holds, as far as the socket takes it.
    fn write_all_backlog<T: Transport, S>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
    ) -> Result<(), ()> {
        let mut wire = Wire::new(
            io,
            &mut self.backlog,
            &mut sh.write_pool,
            &mut self.writable,
            &mut self.clock,
            sh.now,
        );
        let r = wire.write_backlog();
        sh.metrics.wire_out += wire.wire_out;
        r
    }

    /// Queue the answer to a plain HTTP request the core left to the shell.
    fn answer<S>(&mut self, route: Route, sh: &mut Shared<S>) {
        let mut body = std::mem::take(&mut sh.http_buf);
        body.clear();
        let (status, ctype) = match route {
            Route::Metrics => {
                match &sh.board {
                    Some((board, i)) => {
                        board.publish(*i, &sh.metrics, sh.gauges());
                        let (m, g) = board.total();
                        m.render(g, &mut body);
                    }
                    None => sh.metrics.render(sh.gauges(), &mut body),
                }
                if let Some(bus) = sh.local.handle.bus() {
                    bus.stats.render(&mut body);
                }
                ("200 OK", "text/plain; version=0.0.4; charset=utf-8")
            }
            Route::Health if sh.accepting => {
                body.extend_from_slice(b"ok\n");
                ("200 OK", "text/plain; charset=utf-8")
            }
            Route::Health => {
                body.extend_from_slice(b"shutting down\n");
                ("503 Service Unavailable", "text/plain; charset=utf-8")
            }
        };
        let mut head = [0u8; 256];
        let mut cur = std::io::Cursor::new(&mut head[..]);
        // 256 bytes hold this head with any body length.
        let _ = write!(
            cur,
            "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let n = cur.position() as usize;
        self.backlog.push(&head[..n], &mut sh.write_pool);
        self.backlog.push(&body, &mut sh.write_pool);
        sh.http_buf = body;
    }

    /// Once the core is done and all output is out, send FIN and linger.
    #[inline]
    fn after_io<T: Transport, S>(
        &mut self,
        io: &mut T,
        sh: &mut Shared<S>,
        progress: Progress,
    ) -> Progress {
        if self.core.state() == State::Closed && !self.lingering && self.backlog.is_empty() {
            if self.peer_eof || io.shutdown_write().is_err() {
                return Progress::Done;
            }
            self.lingering = true;
            self.clock = sh.now + millis(LINGER);
            if let Some(r) = self.rbuf.take() {
                sh.give_input(r);
            }
            // Bytes may already be waiting behind the FIN we now expect.
            return Progress::More;
        }
        progress
    }

    /// Read and drop input after the conversation is over. `Ok(true)`: read
    /// a full buffer, there may be more; `Ok(false)`: drained for now;
    /// `Err(true)`: end of stream; `Err(false)`: the socket failed.
    fn discard_input<S: Transport>(&mut self, io: &mut S) -> Result<bool, bool> {
        let mut sink = [0u8; 4096];
        match io.read(&mut sink) {
            Ok(0) => Err(true),
            // After a short read the socket is drained, unless readiness
            // reported the peer's FIN: then read on to see it.
            Ok(n) => Ok(n == sink.len() || self.read_closed),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(_) => Err(false),
        }
    }
}

mod drain;
mod push;
mod wire;

use wire::Wire;

#[cfg(test)]
mod tests;
