//! A non-blocking client on mio: many connections served by one event
//! loop, the caller's. The caller registers [`Connection::source`] for
//! readable and writable events (edge-triggered) and calls
//! [`on_readable`](Connection::on_readable) and
//! [`on_writable`](Connection::on_writable) as they come, and
//! [`on_timeout`](Connection::on_timeout) when [`deadline`] passes.
//!
//! Buffers: `rbuf[start..end]` is input the core has not consumed; `out`
//! is output queued for the socket (the request, then masked frames; see
//! `queue.rs`). A send queues its frame and writes at once; what the socket
//! does not take waits for the next writable event, and [`queued`] tells
//! how much that is, so the caller can hold back (nothing here bounds it).
//! [`queue_with`] queues without writing, so that several frames leave in
//! one write at [`flush`].
//! One [`Keys`] source serves all of a loop's connections: it is passed
//! to each call that masks.
//!
//! [`deadline`]: Connection::deadline
//! [`queued`]: Connection::queued
//! [`queue_with`]: Connection::queue_with
//! [`flush`]: Connection::flush

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::ops::Range;

use mio::net::TcpStream;

use super::incoming::{Incoming, Piece};
use super::queue::Queue;
use crate::conn::{millis, Millis};
use crate::deflate::ClientTerms;
use crate::proto::client::config::ClientConfig;
use crate::proto::client::conn::{ClientConn, CloseFrame, Part, Stage};
use crate::proto::client::error::{ClientError, ResponseError};
use crate::proto::client::handshake::{self, Answer, Key};
use crate::proto::client::keys::Keys;
use crate::proto::client::reader::Event;
use crate::proto::client::url::Target;
use crate::proto::deflate::DeflateOffer;
use crate::service::MessageKind;

/// Where a non-blocking connection is.
#[derive(Debug)]
enum Phase {
    /// The request is queued or out; the response is awaited.
    Upgrading {
        key: Key,
        scanned: usize,
        deadline: Millis,
    },
    /// Upgraded: the core has it.
    Open(ClientConn),
}

/// What a connection is doing, as [`Connection::on_readable`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The handshake is under way.
    Upgrading,
    /// Upgraded: messages flow.
    Open,
    /// Closing: closes exchanged or sent, TCP's end awaited.
    Closing,
    /// Over: deregister and drop it.
    Closed,
}

/// One client connection for a caller's mio loop.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    phase: Phase,
    rbuf: Box<[u8]>,
    start: usize,
    end: usize,
    out: Queue,
    protocol: Option<String>,
    offered: Vec<String>,
    deflate: Option<DeflateOffer>,
    max_message: u64,
    max_head: usize,
    close_timeout: std::time::Duration,
}

impl Connection {
    /// Start connecting to `addr` (the host of `url`, resolved): the
    /// connect is under way when this returns and the request is queued.
    /// Register [`source`](Self::source) with the loop.
    pub fn connect(
        addr: SocketAddr,
        url: &str,
        cfg: &ClientConfig,
        keys: &mut Keys,
        now: Millis,
    ) -> Result<Connection, ClientError> {
        Target::parse(url)?;
        handshake::check_options(cfg)?;
        Connection::new(TcpStream::connect(addr)?, url, cfg, keys, now)
    }

    /// Take a socket the caller made (bound to a source address, say),
    /// connected or with its connect under way, and queue the request.
    pub fn new(
        stream: TcpStream,
        url: &str,
        cfg: &ClientConfig,
        keys: &mut Keys,
        now: Millis,
    ) -> Result<Connection, ClientError> {
        let target = Target::parse(url)?;
        handshake::check_options(cfg)?;
        stream.set_nodelay(true)?;
        let key = handshake::key_from(keys.nonce());
        let mut req = Vec::with_capacity(256);
        handshake::write_request(&mut req, &target, &key, cfg);
        let mut out = Queue::with_capacity(req.len().max(256));
        out.extend(&req);
        let size = cfg.read_buffer.max(cfg.max_head + 1).max(256);
        Ok(Connection {
            stream,
            phase: Phase::Upgrading {
                key,
                scanned: 0,
                deadline: now + millis(cfg.handshake_timeout),
            },
            rbuf: vec![0u8; size].into_boxed_slice(),
            start: 0,
            end: 0,
            out,
            protocol: None,
            offered: cfg.subprotocols.clone(),
            deflate: cfg.deflate,
            max_message: cfg.max_message,
            max_head: cfg.max_head,
            close_timeout: cfg.close_timeout,
        })
    }

    /// The socket, to register with the loop.
    pub fn source(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// What the connection is doing.
    pub fn status(&self) -> Status {
        match &self.phase {
            Phase::Upgrading { .. } => Status::Upgrading,
            Phase::Open(c) => match c.stage() {
                Stage::Open => Status::Open,
                Stage::CloseSent | Stage::Closing => Status::Closing,
                Stage::Done => Status::Closed,
            },
        }
    }

    /// The subprotocol the server chose, once upgraded.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The permessage-deflate terms the server agreed to, once upgraded.
    pub fn deflate(&self) -> Option<ClientTerms> {
        match &self.phase {
            Phase::Open(c) => c.deflate(),
            Phase::Upgrading { .. } => None,
        }
    }

    /// What the server said when it closed, once it has.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        match &self.phase {
            Phase::Open(c) => c.close_frame(),
            Phase::Upgrading { .. } => None,
        }
    }

    /// Bytes queued that the socket has not taken yet.
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    /// When [`on_timeout`](Self::on_timeout) is due, if ever.
    pub fn deadline(&self) -> Option<Millis> {
        match &self.phase {
            Phase::Upgrading { deadline, .. } => Some(*deadline),
            Phase::Open(c) => c.deadline(),
        }
    }

    /// Time passed: a handshake or a close wait past its deadline ends the
    /// connection (a handshake's with a `TimedOut` error).
    pub fn on_timeout(&mut self, now: Millis) -> Result<(), ClientError> {
        match &mut self.phase {
            Phase::Upgrading { deadline, .. } if now >= *deadline => {
                Err(io::Error::new(io::ErrorKind::TimedOut, "handshake timed out").into())
            }
            Phase::Upgrading { .. } => Ok(()),
            Phase::Open(c) => {
                c.on_timeout(now);
                Ok(())
            }
        }
    }

    /// The socket is writable: write what is queued.
    pub fn on_writable(&mut self) -> Result<(), ClientError> {
        self.write_out()
    }

    /// The socket is readable: read until it would block, and hand each
    /// piece of a message, ping and pong to `f`. Returns the status after.
    /// An error ends the connection (after the close the core queued for
    /// a protocol error is written, as far as the socket takes it).
    ///
    /// `read_closed`: the event says the server has ended its side
    /// (mio's `Event::is_read_closed`). Unless it does, a read that comes
    /// back short ends the call: the socket's queue is empty, and anything
    /// arriving later, its end included, raises a new event. That saves
    /// the read that would only say "would block", a third of the system
    /// calls of a round trip.
    pub fn on_readable(
        &mut self,
        keys: &mut Keys,
        now: Millis,
        read_closed: bool,
        mut f: impl FnMut(Incoming<'_>),
    ) -> Result<Status, ClientError> {
        loop {
            self.process(keys, now, &mut f)?;
            if self.status() == Status::Closed {
                return Ok(Status::Closed);
            }
            match self.fill()? {
                Fill::Read { short } => {
                    if short && !read_closed {
                        self.process(keys, now, &mut f)?;
                        return Ok(self.status());
                    }
                }
                Fill::WouldBlock => return Ok(self.status()),
                Fill::Eof => {
                    return match &mut self.phase {
                        Phase::Upgrading { .. } => Err(ResponseError::Incomplete.into()),
                        Phase::Open(c) => {
                            let clean = c.stage() == Stage::Closing;
                            c.on_eof();
                            if clean {
                                Ok(Status::Closed)
                            } else {
                                Err(io::Error::new(
                                    io::ErrorKind::UnexpectedEof,
                                    "the server ended the connection without a close handshake",
                                )
                                .into())
                            }
                        }
                    };
                }
            }
        }
    }

    /// Everything buffered through the core: the response, then every
    /// event, each handed to `f`; then what the core queued is written.
    fn process(
        &mut self,
        keys: &mut Keys,
        now: Millis,
        f: &mut impl FnMut(Incoming<'_>),
    ) -> Result<(), ClientError> {
        if let Phase::Upgrading { .. } = self.phase {
            self.upgrade()?;
        }
        let Phase::Open(conn) = &mut self.phase else {
            return Ok(());
        };
        if self.start == self.end && !conn.has_inflated() {
            // Nothing buffered: nothing for the core to read, and nothing
            // new for the socket.
            return Ok(());
        }
        loop {
            if conn.stage() == Stage::Done {
                return Ok(());
            }
            let base = self.start;
            let whole = self.rbuf.len();
            let r = conn.handle_input(&mut self.rbuf[base..self.end], whole, keys, now);
            if !conn.pending().is_empty() {
                self.out.extend(conn.pending());
                let n = conn.pending().len();
                conn.sent(n);
            }
            let (n, ev) = match r {
                Ok(x) => x,
                Err(e) => {
                    let _ = self.write_out();
                    return Err(e.into());
                }
            };
            self.start += n;
            match ev {
                Some(Event::Data {
                    kind,
                    at,
                    first,
                    last,
                }) => f(Incoming::Piece(Piece {
                    kind,
                    data: &self.rbuf[shift(at, base)],
                    first,
                    last,
                })),
                Some(Event::Inflated { kind, first, last }) => f(Incoming::Piece(Piece {
                    kind,
                    data: conn.inflated(),
                    first,
                    last,
                })),
                Some(Event::Ping(at)) => f(Incoming::Ping(&self.rbuf[shift(at, base)])),
                Some(Event::Pong(at)) => f(Incoming::Pong(&self.rbuf[shift(at, base)])),
                Some(Event::Close { .. } | Event::Packed { .. }) => {}
                None => break,
            }
        }
        self.write_out()
    }

    /// Check the response once its head is in.
    fn upgrade(&mut self) -> Result<(), ClientError> {
        let Phase::Upgrading { key, scanned, .. } = &mut self.phase else {
            return Ok(());
        };
        let buf = &self.rbuf[..self.end];
        let offer = self.deflate.as_ref();
        match handshake::read_response(buf, *scanned, key, &self.offered, offer, self.max_head)? {
            None => {
                *scanned = self.end;
                Ok(())
            }
            Some(Answer::Upgraded {
                head_len,
                protocol,
                deflate,
            }) => {
                self.protocol = protocol.map(|i| self.offered[i].clone());
                self.start = head_len;
                let mut conn = ClientConn::new(self.max_message, self.close_timeout);
                if let (Some(terms), Some(offer)) = (deflate, self.deflate) {
                    conn = conn.with_deflate(terms, offer.threshold);
                }
                self.phase = Phase::Open(conn);
                Ok(())
            }
            Some(Answer::Refused {
                code,
                reason,
                head_len,
                content_length,
            }) => {
                let body_end = self.end.min(
                    head_len
                        + content_length
                            .unwrap_or(usize::MAX)
                            .min(crate::proto::client::error::BODY_PREFIX),
                );
                Err(ResponseError::Status {
                    code,
                    reason,
                    body: String::from_utf8_lossy(&self.rbuf[head_len..body_end]).into_owned(),
                }
                .into())
            }
        }
    }

    fn fill(&mut self) -> Result<Fill, ClientError> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.rbuf.len() {
            if matches!(self.phase, Phase::Upgrading { .. }) {
                return Err(ResponseError::TooLarge.into());
            }
            self.rbuf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.end == self.rbuf.len() {
            // The core never leaves a full buffer unconsumed; were it to,
            // a read into no room would return 0, mistaken for TCP's end.
            return Err(ClientError::Invalid("the read buffer is full"));
        }
        let space = self.rbuf.len() - self.end;
        loop {
            match self.stream.read(&mut self.rbuf[self.end..]) {
                Ok(0) => return Ok(Fill::Eof),
                Ok(n) => {
                    self.end += n;
                    return Ok(Fill::Read { short: n < space });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Fill::WouldBlock),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Send a text message in one frame.
    pub fn send_text(&mut self, text: &str, keys: &mut Keys) -> Result<(), ClientError> {
        self.send_frame(Part::Whole(MessageKind::Text), &[text.as_bytes()], keys)
    }

    /// Send a binary message in one frame.
    pub fn send_binary(&mut self, data: &[u8], keys: &mut Keys) -> Result<(), ClientError> {
        self.send_frame(Part::Whole(MessageKind::Binary), &[data], keys)
    }

    /// Send one frame of a message, from up to several parts joined (see
    /// [`Client::send_part`](crate::Client::send_part) for the order).
    pub fn send_frame(
        &mut self,
        part: Part,
        parts: &[&[u8]],
        keys: &mut Keys,
    ) -> Result<(), ClientError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.send_with(part, len, keys, |room| {
            let mut at = 0;
            for p in parts {
                room[at..at + p.len()].copy_from_slice(p);
                at += p.len();
            }
        })
    }

    /// Send one frame of `len` payload bytes that `fill` writes in place
    /// (a payload serialised straight into the output: no copy), then
    /// masked here.
    pub fn send_with(
        &mut self,
        part: Part,
        len: usize,
        keys: &mut Keys,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), ClientError> {
        self.queue_with(part, len, keys, fill)?;
        self.write_out()
    }

    /// As [`send_with`](Self::send_with), but queued only: several frames
    /// then leave in one write at [`flush`](Self::flush). The room `fill`
    /// gets holds whatever the queue held there before: it must write all
    /// of it.
    pub fn queue_with(
        &mut self,
        part: Part,
        len: usize,
        keys: &mut Keys,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), ClientError> {
        if let Part::Whole(kind) = part {
            if self.open()?.compresses(len) {
                let Phase::Open(conn) = &mut self.phase else {
                    unreachable!("open() checked")
                };
                let out = &mut self.out;
                return conn.send_compressed(kind, len, keys, fill, |hdr, payload| {
                    let h = hdr.bytes().len();
                    let room = out.push(h + payload.len());
                    room[..h].copy_from_slice(hdr.bytes());
                    room[h..].copy_from_slice(payload);
                    crate::mask::apply(&mut room[h..], hdr.key, 0);
                });
            }
        }
        let hdr = self.open()?.frame_header(part, len as u64, keys)?;
        let h = hdr.bytes().len();
        let room = self.out.push(h + len);
        room[..h].copy_from_slice(hdr.bytes());
        fill(&mut room[h..]);
        crate::mask::apply(&mut room[h..], hdr.key, 0);
        Ok(())
    }

    /// Write what is queued, as far as the socket takes it (the rest waits
    /// for the next writable event, or the next flush).
    pub fn flush(&mut self) -> Result<(), ClientError> {
        self.write_out()
    }

    /// Room for `bytes` of queued output without growing the buffer, so
    /// the buffer is allocated once, up front, rather than on the first
    /// large sends.
    pub fn reserve(&mut self, bytes: usize) {
        self.out.reserve(bytes);
    }

    /// Send a ping (at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8], keys: &mut Keys) -> Result<(), ClientError> {
        self.open()?.ping(payload, keys)?;
        self.take_pending();
        self.write_out()
    }

    /// Start the close: the server's close and TCP's end follow through
    /// [`on_readable`](Self::on_readable).
    pub fn close(
        &mut self,
        code: u16,
        reason: &str,
        keys: &mut Keys,
        now: Millis,
    ) -> Result<(), ClientError> {
        self.open()?.close(code, reason, keys, now)?;
        self.take_pending();
        self.write_out()
    }

    fn open(&mut self) -> Result<&mut ClientConn, ClientError> {
        match &mut self.phase {
            Phase::Open(c) => Ok(c),
            Phase::Upgrading { .. } => Err(ClientError::Invalid("the handshake is not done")),
        }
    }

    fn take_pending(&mut self) {
        if let Phase::Open(c) = &mut self.phase {
            self.out.extend(c.pending());
            let n = c.pending().len();
            c.sent(n);
        }
    }

    fn write_out(&mut self) -> Result<(), ClientError> {
        while !self.out.is_empty() {
            match self.stream.write(self.out.pending()) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => self.out.taken(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Not connected yet, or the socket is full: the next
                // writable event resumes.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => {
                    if let Phase::Open(c) = &mut self.phase {
                        c.abort();
                    }
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }
}

enum Fill {
    /// Bytes arrived; `short`: fewer than there was room for.
    Read {
        short: bool,
    },
    WouldBlock,
    Eof,
}

fn shift(r: Range<usize>, base: usize) -> Range<usize> {
    r.start + base..r.end + base
}
