//! Dialling: a `ws://` URL resolved and connected, then the opening
//! handshake on the blocking socket, bounded by the handshake timeout.
//!
//! The response is read into the connection's read buffer; whatever
//! follows its head (the server's first frames, in the same packet or not)
//! stays there for the connection to read.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Instant;

use crate::deflate::ClientTerms;
use crate::proto::client::config::ClientConfig;
use crate::proto::client::error::{ClientError, ResponseError, BODY_PREFIX};
use crate::proto::client::handshake::{self, Answer};
use crate::proto::client::keys::Keys;
use crate::proto::client::url::Target;

/// A connection just upgraded.
pub struct Upgraded {
    /// The socket.
    pub stream: TcpStream,
    /// The read buffer, with the server's first bytes after the response
    /// head in `rbuf[..end]`.
    pub rbuf: Box<[u8]>,
    /// How much of `rbuf` is filled.
    pub end: usize,
    /// The subprotocol the server chose.
    pub protocol: Option<String>,
    /// The connection's key source (it made the handshake's nonce).
    pub keys: Keys,
    /// The permessage-deflate terms the server agreed to, if any.
    pub deflate: Option<ClientTerms>,
}

/// The smallest read buffer: a partial code point, a frame header and a
/// control frame must fit.
const MIN_BUFFER: usize = 256;

/// Resolve and connect to `url`, trying each address in turn.
pub fn connect(target: &Target<'_>, cfg: &ClientConfig) -> Result<TcpStream, ClientError> {
    let mut last = None;
    for addr in (target.host, target.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, cfg.connect_timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the host has no address"))
        .into())
}

/// Run the opening handshake for `target` on a connected socket.
pub fn upgrade(
    stream: TcpStream,
    target: &Target<'_>,
    cfg: &ClientConfig,
) -> Result<Upgraded, ClientError> {
    handshake::check_options(cfg)?;
    stream.set_nodelay(true)?;
    let deadline = Instant::now() + cfg.handshake_timeout;
    let mut keys = Keys::new();
    let key = handshake::key_from(keys.nonce());
    let mut req = Vec::with_capacity(256);
    handshake::write_request(&mut req, target, &key, cfg);
    let mut stream = stream;
    stream.set_write_timeout(Some(cfg.handshake_timeout))?;
    stream.write_all(&req)?;

    let size = cfg.read_buffer.max(cfg.max_head + 1).max(MIN_BUFFER);
    let mut rbuf = vec![0u8; size].into_boxed_slice();
    let mut end = 0;
    let mut scanned = 0;
    let answer = loop {
        match handshake::read_response(
            &rbuf[..end],
            scanned,
            &key,
            &cfg.subprotocols,
            cfg.deflate.as_ref(),
            cfg.max_head,
        )? {
            Some(a) => break a,
            None => {
                scanned = end;
                if read_until(&mut stream, &mut rbuf, &mut end, deadline)? == 0 {
                    return Err(ResponseError::Incomplete.into());
                }
            }
        }
    };
    match answer {
        Answer::Upgraded {
            head_len,
            protocol,
            deflate,
        } => {
            rbuf.copy_within(head_len..end, 0);
            end -= head_len;
            stream.set_write_timeout(None)?;
            stream.set_read_timeout(None)?;
            Ok(Upgraded {
                stream,
                rbuf,
                end,
                protocol: protocol.map(|i| cfg.subprotocols[i].clone()),
                keys,
                deflate,
            })
        }
        Answer::Refused {
            code,
            reason,
            head_len,
            content_length,
        } => {
            // Keep the start of the body for the error: what is there, and
            // what arrives before the deadline, up to the prefix's length.
            let want = head_len + content_length.unwrap_or(BODY_PREFIX).min(BODY_PREFIX);
            let want = want.min(rbuf.len());
            while end < want {
                match read_until(&mut stream, &mut rbuf[..want], &mut end, deadline) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let body = &rbuf[head_len..end.min(want)];
            Err(ResponseError::Status {
                code,
                reason,
                body: String::from_utf8_lossy(body).into_owned(),
            }
            .into())
        }
    }
}

/// Read into `buf[*end..]` before `deadline`; returns the bytes read (0 at
/// the end of the stream).
fn read_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    end: &mut usize,
    deadline: Instant,
) -> Result<usize, ClientError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "handshake timed out").into());
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[*end..]) {
            Ok(n) => {
                *end += n;
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}
