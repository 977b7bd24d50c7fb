//! A blocking client on a `std::net::TcpStream`.
//!
//! Buffers: `rbuf` is the read buffer; `rbuf[start..end]` is what the core
//! has not consumed yet (a partial frame, a cut code point). A message of
//! one frame that fits in it is handed out straight from it; any other is
//! gathered in `msg`, which is kept between messages (cut back after an
//! unusually long one). `wbuf` holds frames on their way out: a payload is
//! masked as it is copied there, in blocks of [`WRITE_BLOCK`], so even a
//! 16 MiB message needs no 16 MiB buffer.
//!
//! Time: a read waits at most until the core's close deadline, or else the
//! caller's read timeout. A read that times out leaves the connection as
//! it was; a write that fails ends it (what the server got is unknown).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::ops::Range;
use std::time::{Duration, Instant};

use super::dial;
use super::incoming::{Incoming, Piece};
use crate::conn::{millis, Millis};
use crate::deflate::ClientTerms;
use crate::mask;
use crate::proto::client::config::ClientConfig;
use crate::proto::client::conn::{write_masked, ClientConn, CloseFrame, Part, Stage};
use crate::proto::client::error::ClientError;
use crate::proto::client::keys::Keys;
use crate::proto::client::reader::Event;
use crate::proto::client::url::Target;
use crate::service::{Message, MessageKind};
use crate::utf8;

/// Payload is masked and written in blocks of this size.
pub const WRITE_BLOCK: usize = 64 << 10;
/// A gathered-message buffer larger than this is released after use.
const KEEP_MSG: usize = 1 << 20;

/// A WebSocket client connection on a blocking socket.
///
/// ```no_run
/// let mut ws = zerows::Client::connect("ws://127.0.0.1:9001/")?;
/// ws.send_text("Hello world!")?;
/// if let Some(reply) = ws.recv()? {
///     println!("{}", String::from_utf8_lossy(reply.as_bytes()));
/// }
/// ws.close(1000, "")?;
/// # Ok::<(), zerows::ClientError>(())
/// ```
pub struct Client {
    stream: TcpStream,
    conn: ClientConn,
    keys: Keys,
    rbuf: Box<[u8]>,
    start: usize,
    end: usize,
    msg: Vec<u8>,
    wbuf: Vec<u8>,
    protocol: Option<String>,
    read_timeout: Option<Duration>,
    /// The socket's read timeout as last set: setting it costs a system
    /// call, and it only changes while a close deadline runs.
    timeout_set: Option<Duration>,
    epoch: Instant,
    /// When the last read returned: the core's clock for what it read.
    /// One clock read per socket read, not per event.
    last_read: Millis,
}

/// Where a message handed out by [`Client::recv`] is.
enum Whole {
    Input(MessageKind, Range<usize>),
    Inflated(MessageKind),
    Gathered(MessageKind),
}

impl Client {
    /// Connect to a `ws://` URL with the default options.
    pub fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, &ClientConfig::default())
    }

    /// Connect to a `ws://` URL.
    pub fn connect_with(url: &str, cfg: &ClientConfig) -> Result<Client, ClientError> {
        let target = Target::parse(url)?;
        let stream = dial::connect(&target, cfg)?;
        Client::upgrade(stream, url, cfg)
    }

    /// Run the handshake for `url` on a socket already connected (through
    /// a proxy, say).
    pub fn upgrade(
        stream: TcpStream,
        url: &str,
        cfg: &ClientConfig,
    ) -> Result<Client, ClientError> {
        let target = Target::parse(url)?;
        let up = dial::upgrade(stream, &target, cfg)?;
        let mut conn = ClientConn::new(cfg.max_message, cfg.close_timeout);
        if let (Some(terms), Some(offer)) = (up.deflate, &cfg.deflate) {
            conn = conn.with_deflate(terms, offer.threshold);
        }
        Ok(Client {
            stream: up.stream,
            conn,
            keys: up.keys,
            rbuf: up.rbuf,
            start: 0,
            end: up.end,
            msg: Vec::new(),
            wbuf: Vec::new(),
            protocol: up.protocol,
            read_timeout: None,
            timeout_set: None,
            epoch: Instant::now(),
            last_read: 1,
        })
    }

    /// The subprotocol the server chose, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// The permessage-deflate terms the server agreed to, if it did.
    pub fn deflate(&self) -> Option<ClientTerms> {
        self.conn.deflate()
    }

    /// What the server said when it closed, once it has.
    pub fn close_frame(&self) -> Option<&CloseFrame> {
        self.conn.close_frame()
    }

    /// Whether the connection is over: closed cleanly, failed, or broken.
    pub fn is_closed(&self) -> bool {
        self.conn.stage() == Stage::Done
    }

    /// The socket.
    pub fn get_ref(&self) -> &TcpStream {
        &self.stream
    }

    /// How long [`recv`](Self::recv) and [`recv_event`](Self::recv_event)
    /// wait for bytes; `None`: for ever. A receive that times out returns
    /// an `Io` error of kind `WouldBlock` or `TimedOut` and may be retried.
    pub fn set_read_timeout(&mut self, t: Option<Duration>) {
        self.read_timeout = t;
    }

    /// How long a send may block; `None`: for ever. A send that times out
    /// ends the connection.
    pub fn set_write_timeout(&mut self, t: Option<Duration>) -> Result<(), ClientError> {
        Ok(self.stream.set_write_timeout(t)?)
    }

    /// Send a text message in one frame.
    pub fn send_text(&mut self, text: &str) -> Result<(), ClientError> {
        self.send_frame(Part::Whole(MessageKind::Text), &[text.as_bytes()])
    }

    /// Send a binary message in one frame.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.send_frame(Part::Whole(MessageKind::Binary), &[data])
    }

    /// Send a message in one frame.
    pub fn send(&mut self, msg: Message<'_>) -> Result<(), ClientError> {
        self.send_frame(Part::Whole(msg.kind()), &[msg.as_bytes()])
    }

    /// Send one frame of a message sent in several: `Part::First(kind)`,
    /// any number of `Part::More`, then `Part::Last`. The frames of a text
    /// message together must be UTF-8; each need not be.
    pub fn send_part(&mut self, part: Part, data: &[u8]) -> Result<(), ClientError> {
        self.send_frame(part, &[data])
    }

    /// Send a ping (at most 125 bytes); its pong comes back through
    /// [`recv_event`](Self::recv_event).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.conn.ping(payload, &mut self.keys)?;
        self.flush()
    }

    /// Send an unsolicited pong (a heartbeat that needs no answer).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        self.conn.pong(payload, &mut self.keys)?;
        self.flush()
    }

    /// Close: send `code` and `reason`, then wait for the server's close
    /// and for it to end TCP (at most the close timeout), dropping any
    /// message still arriving. Closing a closed connection does nothing.
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), ClientError> {
        if self.conn.stage() == Stage::Open {
            self.send_close(code, reason)?;
        }
        while self.next()?.is_some() {}
        Ok(())
    }

    /// Send a close and return at once: what the server sent before its
    /// own close still arrives through [`recv`](Self::recv) or
    /// [`recv_event`](Self::recv_event), which return `None` once the
    /// server has closed.
    pub fn send_close(&mut self, code: u16, reason: &str) -> Result<(), ClientError> {
        let now = self.now();
        self.conn.close(code, reason, &mut self.keys, now)?;
        self.flush()
    }

    /// The next whole message; `None` once the connection has closed
    /// cleanly (see [`close_frame`](Self::close_frame)). Pings are answered
    /// and pongs dropped on the way.
    pub fn recv(&mut self) -> Result<Option<Message<'_>>, ClientError> {
        let whole = loop {
            let Some(ev) = self.next()? else {
                return Ok(None);
            };
            let (kind, first, last, piece) = match ev {
                Event::Data {
                    kind,
                    at,
                    first,
                    last,
                } => {
                    if first && last {
                        break Whole::Input(kind, at);
                    }
                    (kind, first, last, &self.rbuf[at])
                }
                Event::Inflated { kind, first, last } => {
                    if first && last {
                        break Whole::Inflated(kind);
                    }
                    (kind, first, last, self.conn.inflated())
                }
                _ => continue,
            };
            if first {
                if self.msg.capacity() > KEEP_MSG {
                    self.msg = Vec::new();
                }
                self.msg.clear();
            }
            self.msg.extend_from_slice(piece);
            if last {
                break Whole::Gathered(kind);
            }
        };
        let (kind, bytes) = match whole {
            Whole::Input(kind, at) => (kind, &self.rbuf[at]),
            Whole::Inflated(kind) => (kind, self.conn.inflated()),
            Whole::Gathered(kind) => (kind, &self.msg[..]),
        };
        Ok(Some(match kind {
            // SAFETY: every text piece was validated as whole UTF-8 by the
            // core, so their concatenation is UTF-8.
            MessageKind::Text => Message::Text(unsafe { utf8::assume_valid(bytes) }),
            MessageKind::Binary => Message::Binary(bytes),
        }))
    }

    /// The next thing the server sent, streamed: a piece of a message as
    /// it arrived (nothing is gathered, whatever the message's size), a
    /// ping or a pong; `None` once the connection has closed cleanly.
    pub fn recv_event(&mut self) -> Result<Option<Incoming<'_>>, ClientError> {
        let Some(ev) = self.next()? else {
            return Ok(None);
        };
        Ok(Some(match ev {
            Event::Data {
                kind,
                at,
                first,
                last,
            } => Incoming::Piece(Piece {
                kind,
                data: &self.rbuf[at],
                first,
                last,
            }),
            Event::Inflated { kind, first, last } => Incoming::Piece(Piece {
                kind,
                data: self.conn.inflated(),
                first,
                last,
            }),
            Event::Ping(at) => Incoming::Ping(&self.rbuf[at]),
            Event::Pong(at) => Incoming::Pong(&self.rbuf[at]),
            Event::Close { .. } | Event::Packed { .. } => {
                unreachable!("next() consumes the close; the core inflates what is packed")
            }
        }))
    }

    /// The next event from the core, its ranges in `rbuf`; `None` once the
    /// connection is over. The server's close is answered and TCP's end
    /// awaited here.
    fn next(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            if self.conn.stage() == Stage::Done {
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
                return Ok(None);
            }
            if self.start == self.end && self.conn.pending().is_empty() && !self.conn.has_inflated()
            {
                // Nothing buffered: nothing for the core to read yet.
                self.fill()?;
                continue;
            }
            let base = self.start;
            let now = self.last_read;
            let whole = self.rbuf.len();
            let read =
                self.conn
                    .handle_input(&mut self.rbuf[base..self.end], whole, &mut self.keys, now);
            let (n, ev) = match read {
                Ok(x) => x,
                Err(e) => {
                    // The close with the error's code is queued: send it,
                    // then leave TCP's end to the server, for a while.
                    let _ = self.flush();
                    while self.conn.stage() != Stage::Done {
                        // What is buffered is dropped unread: a full
                        // buffer would leave no room to read TCP's end.
                        self.start = self.end;
                        let _ = self.fill();
                    }
                    let _ = self.stream.shutdown(std::net::Shutdown::Both);
                    return Err(ClientError::Protocol(e));
                }
            };
            self.start += n;
            if !self.conn.pending().is_empty() {
                self.flush()?;
            }
            match ev {
                Some(Event::Close { .. }) => {}
                Some(ev) => return Ok(Some(ev.shifted(base))),
                None => self.fill()?,
            }
        }
    }

    /// Read more input, waiting at most until the core's deadline, or
    /// else the read timeout.
    fn fill(&mut self) -> Result<(), ClientError> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.end == self.rbuf.len() {
            self.rbuf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.end == self.rbuf.len() {
            // The core never leaves a full buffer unconsumed; were it to,
            // a read into no room would return 0, mistaken for TCP's end.
            self.conn.abort();
            return Err(ClientError::Invalid("the read buffer is full"));
        }
        let deadline = self.conn.deadline();
        let wait = match deadline {
            Some(d) => Some(Duration::from_millis(d.saturating_sub(self.now()).max(1))),
            None => self.read_timeout,
        };
        if wait != self.timeout_set {
            self.stream.set_read_timeout(wait)?;
            self.timeout_set = wait;
        }
        let read = self.stream.read(&mut self.rbuf[self.end..]);
        self.last_read = self.now();
        match read {
            Ok(0) => {
                let clean = self.conn.stage() == Stage::Closing;
                self.conn.on_eof();
                if clean {
                    Ok(())
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server ended the connection without a close handshake",
                    )
                    .into())
                }
            }
            Ok(n) => {
                self.end += n;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e)
                if deadline.is_some()
                    && matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
            {
                let now = self.now();
                self.conn.on_timeout(now);
                Ok(())
            }
            Err(e) => {
                if !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) {
                    self.conn.abort();
                }
                Err(e.into())
            }
        }
    }

    /// Send the frames the core wrote (pongs, closes).
    fn flush(&mut self) -> Result<(), ClientError> {
        self.wbuf.clear();
        self.wbuf.extend_from_slice(self.conn.pending());
        let n = self.wbuf.len();
        self.conn.sent(n);
        self.write_wbuf()
    }

    fn send_frame(&mut self, part: Part, parts: &[&[u8]]) -> Result<(), ClientError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if let Part::Whole(kind) = part {
            if self.conn.compresses(len) {
                return self.send_compressed(kind, len, parts);
            }
        }
        let hdr = self.conn.frame_header(part, len as u64, &mut self.keys)?;
        self.take_pending();
        if len <= WRITE_BLOCK {
            write_masked(&mut self.wbuf, &hdr, parts);
            return self.write_wbuf();
        }
        self.wbuf.extend_from_slice(hdr.bytes());
        let mut phase = 0;
        for part in parts {
            for block in part.chunks(WRITE_BLOCK) {
                let at = self.wbuf.len();
                self.wbuf.extend_from_slice(block);
                phase = mask::apply(&mut self.wbuf[at..], hdr.key, phase);
                if self.wbuf.len() >= WRITE_BLOCK {
                    self.write_wbuf()?;
                    self.wbuf.clear();
                }
            }
        }
        self.write_wbuf()
    }

    /// A whole message sent compressed (or as it is, if that is no
    /// longer), in one write. Compressed messages are not written in
    /// blocks: what is compressed is held whole anyway.
    fn send_compressed(
        &mut self,
        kind: MessageKind,
        len: usize,
        parts: &[&[u8]],
    ) -> Result<(), ClientError> {
        self.take_pending();
        let wbuf = &mut self.wbuf;
        self.conn.send_compressed(
            kind,
            len,
            &mut self.keys,
            |room| {
                let mut at = 0;
                for p in parts {
                    room[at..at + p.len()].copy_from_slice(p);
                    at += p.len();
                }
            },
            |hdr, payload| write_masked(wbuf, hdr, &[payload]),
        )?;
        self.write_wbuf()
    }

    /// Frames the core wrote go first, in the same write.
    fn take_pending(&mut self) {
        self.wbuf.clear();
        self.wbuf.extend_from_slice(self.conn.pending());
        let n = self.wbuf.len();
        self.conn.sent(n);
    }

    fn write_wbuf(&mut self) -> Result<(), ClientError> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.stream.write_all(&self.wbuf) {
            self.conn.abort();
            return Err(e.into());
        }
        Ok(())
    }

    fn now(&self) -> Millis {
        millis(self.epoch.elapsed()) + 1
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.stream.peer_addr().ok())
            .field("stage", &self.conn.stage())
            .field("protocol", &self.protocol)
            .finish()
    }
}
