//! One connection's I/O: moves bytes between a non-blocking stream and the
//! protocol core, through pooled buffers.
//!
//! Invariants:
//! * A read buffer is attached only while it holds unprocessed input and a
//!   write ring only while the socket has not taken all the output; both are
//!   returned to their pool the moment they are empty (and by [`Session::release`]
//!   when the connection ends).
//! * Output is written straight from the read buffer (`writev`), once per
//!   pass of the core; only what the socket does not take is copied, into the
//!   write ring. Every output is written or copied before the read buffer is
//!   compacted or read into again.
//! * Backpressure: the session reads only while the write ring could absorb
//!   the worst-case output of a full read buffer ([`Shared::read_slack`]), so
//!   the ring never overflows and a peer that stops reading stops being read.
//! * Writability is a flag: set by a writable event, cleared by a short or
//!   refused write; interest is never re-registered.
//! * A short read means the socket is drained (edge-triggered readiness will
//!   report new bytes), so no second read is spent just to see `WouldBlock`.

use std::io::{self, IoSlice, Read, Write};
use std::time::{Duration, Instant};

use crate::buffer::{Pool, ReadBuf, Ring};
use crate::conn::{Conn, Settings, State};
use crate::handler::Handler;
use crate::output::{Output, MAX_SEGS, SCRATCH};

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
pub struct Shared<H> {
    pub settings: Settings,
    pub read_pool: Pool,
    pub write_pool: Pool,
    pub out: Box<Output>,
    pub handler: H,
    /// The time of this loop turn.
    pub now: Instant,
}

impl<H: Handler> Shared<H> {
    pub fn new(settings: Settings, read_pool: Pool, write_pool: Pool, handler: H) -> Self {
        assert!(
            write_pool.buffer_size() >= read_pool.buffer_size() + Self::extra(),
            "write buffer must exceed the read buffer by at least {} bytes",
            Self::extra()
        );
        Shared {
            settings,
            read_pool,
            write_pool,
            out: Box::new(Output::new()),
            handler,
            now: Instant::now(),
        }
    }

    /// Output one pass can add beyond the input it consumed: a scratch area
    /// (HTTP responses, close frames) and the static page.
    fn extra() -> usize {
        SCRATCH + crate::http::PAGE.len() + 64
    }

    /// Free space the write ring must have before the session reads.
    fn read_slack(&self) -> usize {
        self.read_pool.buffer_size() + Self::extra()
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

pub struct Session {
    core: Conn,
    rbuf: Option<ReadBuf>,
    wbuf: Option<Ring>,
    writable: bool,
    /// Reading stopped because output is not draining.
    read_blocked: bool,
    /// FIN sent; reading only to see the peer's FIN, until this time.
    linger_until: Option<Instant>,
    /// The peer sent FIN: nothing more to read, output still owed.
    peer_eof: bool,
}

impl Session {
    pub fn new(now: Instant, settings: &Settings) -> Session {
        Session {
            core: Conn::new(now, settings),
            rbuf: None,
            wbuf: None,
            writable: true,
            read_blocked: false,
            linger_until: None,
            peer_eof: false,
        }
    }

    pub fn core(&self) -> &Conn {
        &self.core
    }

    /// Bytes waiting for the socket.
    pub fn pending_output(&self) -> usize {
        self.wbuf.as_ref().map_or(0, Ring::len)
    }

    pub fn holds_buffers(&self) -> (bool, bool) {
        (self.rbuf.is_some(), self.wbuf.is_some())
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.linger_until.or_else(|| self.core.deadline())
    }

    /// Give the buffers back; call before dropping the session.
    pub fn release<H>(&mut self, sh: &mut Shared<H>) {
        if let Some(r) = self.rbuf.take() {
            sh.read_pool.give(r.into_inner());
        }
        if let Some(w) = self.wbuf.take() {
            sh.write_pool.give(w.into_inner());
        }
    }

    /// The socket has bytes to read (or may have).
    pub fn on_readable<S: Transport, H: Handler>(
        &mut self,
        io: &mut S,
        sh: &mut Shared<H>,
        mut budget: usize,
    ) -> Progress {
        let progress = loop {
            if budget == 0 {
                break Progress::More;
            }
            budget -= 1;
            if self.peer_eof {
                break Progress::Idle;
            }
            if self.linger_until.is_some() || self.core.is_closed() {
                match self.discard_input(io, sh) {
                    Ok(true) => continue,
                    Ok(false) => break Progress::Idle,
                    Err(()) => break Progress::Done,
                }
            }
            let wfree = self.wbuf.as_ref().map_or(usize::MAX, Ring::free);
            if wfree < sh.read_slack() {
                self.read_blocked = true;
                break Progress::Idle;
            }
            self.read_blocked = false;
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
                    rbuf.filled(n);
                    if self.pump(io, sh).is_err() {
                        break Progress::Done;
                    }
                    if n < room {
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
        if self.rbuf.as_ref().is_some_and(ReadBuf::is_empty) {
            sh.read_pool.give(self.rbuf.take().unwrap().into_inner());
        }
        self.after_io(io, sh, progress)
    }

    /// The socket can take bytes again.
    pub fn on_writable<S: Transport, H: Handler>(
        &mut self,
        io: &mut S,
        sh: &mut Shared<H>,
        budget: usize,
    ) -> Progress {
        self.writable = true;
        if self.wbuf.is_some() {
            sh.out.clear();
            if self.send(io, sh, &[]).is_err() {
                return Progress::Done;
            }
        }
        let wfree = self.wbuf.as_ref().map_or(usize::MAX, Ring::free);
        if self.read_blocked && wfree >= sh.read_slack() {
            // Input may have been waiting while output drained.
            return self.on_readable(io, sh, budget);
        }
        self.after_io(io, sh, Progress::Idle)
    }

    /// A deadline from [`deadline`](Self::deadline) may have passed.
    pub fn on_timeout(&mut self, now: Instant) -> Progress {
        if self.linger_until.is_some_and(|t| now >= t) {
            return Progress::Done;
        }
        self.core.on_timeout(now);
        if self.core.is_closed() {
            // A stalled handshake or a peer that never answered our close:
            // nothing more is owed to it.
            return Progress::Done;
        }
        Progress::Idle
    }

    /// Close from our side with `code` (shutdown, idle peer).
    pub fn close<S: Transport, H: Handler>(
        &mut self,
        io: &mut S,
        sh: &mut Shared<H>,
        code: u16,
    ) -> Progress {
        sh.out.clear();
        self.core.close(code, &mut sh.out, &sh.settings, sh.now);
        if self.send(io, sh, &[]).is_err() {
            return Progress::Done;
        }
        self.after_io(io, sh, Progress::Idle)
    }

    /// Answer with an HTTP error without reading the request (the server is
    /// full), then close.
    pub fn refuse<S: Transport, H: Handler>(
        &mut self,
        io: &mut S,
        sh: &mut Shared<H>,
        err: crate::error::HandshakeError,
    ) -> Progress {
        sh.out.clear();
        self.core.refuse(err, &mut sh.out);
        if self.send(io, sh, &[]).is_err() {
            return Progress::Done;
        }
        self.after_io(io, sh, Progress::Idle)
    }

    /// Run the core over the read buffer until it stops making progress,
    /// writing each pass's output.
    fn pump<S: Transport, H: Handler>(&mut self, io: &mut S, sh: &mut Shared<H>) -> Result<(), ()> {
        let mut rbuf = self.rbuf.take().expect("pump needs input");
        let result = loop {
            let start = rbuf.start();
            sh.out.clear();
            let next = self.core.process(
                rbuf.as_mut(),
                start,
                &mut sh.out,
                &sh.settings,
                &mut sh.handler,
                sh.now,
            );
            rbuf.consume_to(next);
            if let Err(e) = self.send(io, sh, rbuf.as_slice()) {
                break Err(e);
            }
            if next == start || rbuf.is_empty() || self.core.is_closed() {
                break Ok(());
            }
        };
        rbuf.compact(sh.settings.chunk_size + 256);
        self.rbuf = Some(rbuf);
        result
    }

    /// Write pending output and this pass's output in one `writev`; keep
    /// what the socket does not take in the write ring.
    fn send<S: Transport, H>(
        &mut self,
        io: &mut S,
        sh: &mut Shared<H>,
        input: &[u8],
    ) -> Result<(), ()> {
        let out = &*sh.out;
        if out.is_empty() && self.wbuf.is_none() {
            return Ok(());
        }
        let mut written = 0;
        if self.writable {
            let mut iov = [IoSlice::new(&[]); MAX_SEGS + 2];
            let mut n = 0;
            if let Some(w) = &self.wbuf {
                let (a, b) = w.as_slices();
                for s in [a, b] {
                    if !s.is_empty() {
                        iov[n] = IoSlice::new(s);
                        n += 1;
                    }
                }
            }
            n += out.io_slices(input, &mut iov[n..]);
            let total: usize = iov[..n].iter().map(|s| s.len()).sum();
            if total > 0 {
                loop {
                    match io.write_vectored(&iov[..n]) {
                        Ok(k) => {
                            written = k;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => return Err(()),
                    }
                }
            }
            if written < total {
                self.writable = false;
            }
        }
        if let Some(w) = self.wbuf.as_mut() {
            let k = written.min(w.len());
            w.consume(k);
            written -= k;
        }
        for &seg in out.segs() {
            let b = out.bytes(seg, input);
            if written >= b.len() {
                written -= b.len();
                continue;
            }
            let rest = &b[written..];
            written = 0;
            let w = self
                .wbuf
                .get_or_insert_with(|| Ring::new(sh.write_pool.take()));
            if w.push(rest) < rest.len() {
                log::error!("write ring overflow; dropping connection");
                return Err(());
            }
        }
        if self.wbuf.as_ref().is_some_and(Ring::is_empty) {
            sh.write_pool.give(self.wbuf.take().unwrap().into_inner());
        }
        Ok(())
    }

    /// Once the core is done and all output is out, send FIN and linger.
    fn after_io<S: Transport, H>(
        &mut self,
        io: &mut S,
        sh: &mut Shared<H>,
        progress: Progress,
    ) -> Progress {
        if self.core.state() == State::Closed && self.linger_until.is_none() && self.wbuf.is_none()
        {
            if self.peer_eof || io.shutdown_write().is_err() {
                return Progress::Done;
            }
            self.linger_until = Some(sh.now + LINGER);
            if let Some(r) = self.rbuf.take() {
                sh.read_pool.give(r.into_inner());
            }
            // Bytes may already be waiting behind the FIN we now expect.
            return Progress::More;
        }
        progress
    }

    /// Read and drop input after the conversation is over. `Ok(true)`: read
    /// a full buffer, there may be more; `Ok(false)`: drained for now.
    fn discard_input<S: Transport, H>(
        &mut self,
        io: &mut S,
        _sh: &mut Shared<H>,
    ) -> Result<bool, ()> {
        let mut sink = [0u8; 4096];
        match io.read(&mut sink) {
            Ok(0) => Err(()),
            Ok(n) => Ok(n == sink.len()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(_) => Err(()),
        }
    }
}
