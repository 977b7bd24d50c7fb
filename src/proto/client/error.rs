//! Every way a client connection can fail, each with its `Display`.
//!
//! A bad URL or request option is the caller's ([`UrlError`],
//! [`RequestError`]); an answer to the upgrade that a client must not accept
//! is the server's ([`ResponseError`]); a frame that breaks RFC 6455 after the
//! upgrade is a [`ProtocolError`], whose close code (the one place that maps
//! it is `ProtocolError::close_code`) the client sends before giving up.

use std::{fmt, io};

use crate::error::ProtocolError;
use crate::proto::deflate::offer::ExtensionError;

/// Why a URL cannot be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlError {
    /// Not of the form `scheme://…`.
    NotAUrl,
    /// A scheme other than `ws` (or `wss`).
    Scheme,
    /// `wss://`: TLS is not supported yet.
    TlsUnsupported,
    /// An empty or malformed host, or an IPv6 literal without its `]`.
    Host,
    /// A port that is not a number from 1 to 65535.
    Port,
    /// A path or query with a space, a control or a non-ASCII byte.
    Path,
    /// A fragment (`#…`), which RFC 6455 §3 forbids in WebSocket URLs.
    Fragment,
    /// User information (`user@host`), which the handshake cannot carry.
    UserInfo,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use UrlError::*;
        f.write_str(match self {
            NotAUrl => "not a URL (expected ws://host[:port]/path)",
            Scheme => "the scheme must be ws://",
            TlsUnsupported => "wss:// (TLS) is not supported yet: use ws://",
            Host => "missing or invalid host",
            Port => "the port must be a number from 1 to 65535",
            Path => "the path has a space, a control or a non-ASCII byte (percent-encode it)",
            Fragment => "a WebSocket URL may not have a fragment (#)",
            UserInfo => "user information (user@host) is not supported",
        })
    }
}

impl std::error::Error for UrlError {}

/// Why the options of an upgrade request cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// A header name that is not an RFC 7230 token.
    HeaderName(String),
    /// A header value with a control character (CR and LF among them).
    HeaderValue(String),
    /// A header the handshake writes itself (`Host`, `Upgrade`,
    /// `Connection`, `Sec-WebSocket-*`).
    ReservedHeader(String),
    /// A subprotocol that is not a token, or is offered twice.
    Subprotocol(String),
    /// An `Origin` with a control character.
    Origin,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use RequestError::*;
        match self {
            HeaderName(n) => write!(f, "invalid header name {n:?}"),
            HeaderValue(n) => write!(f, "invalid value for header {n:?}"),
            ReservedHeader(n) => write!(f, "header {n:?} is written by the handshake itself"),
            Subprotocol(p) => write!(f, "invalid or repeated subprotocol {p:?}"),
            Origin => f.write_str("invalid Origin"),
        }
    }
}

impl std::error::Error for RequestError {}

/// Why the server's answer to the upgrade request is not accepted (RFC 6455
/// §4.1, the client's checks of the response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseError {
    /// Not an HTTP/1.1 response.
    Malformed,
    /// The response head passed the size limit.
    TooLarge,
    /// The connection ended before the response head did.
    Incomplete,
    /// An answer other than 101: its status, reason and the start of its
    /// body.
    Status {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
        /// The start of the body (at most [`BODY_PREFIX`] bytes, lossily
        /// decoded).
        body: String,
    },
    /// `Upgrade` does not name `websocket`.
    NoUpgrade,
    /// `Connection` does not list `Upgrade`.
    NoConnectionUpgrade,
    /// `Sec-WebSocket-Accept` is missing, repeated or not the key's hash.
    BadAccept,
    /// A subprotocol the client did not offer, or more than one.
    UnrequestedProtocol,
    /// An extension, none having been offered.
    UnrequestedExtension,
    /// An answer to the permessage-deflate offer that the client may not
    /// accept (RFC 7692 §7.1).
    BadExtension(ExtensionError),
}

/// The most of a refusal's body kept in [`ResponseError::Status`].
pub const BODY_PREFIX: usize = 256;

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ResponseError::*;
        match self {
            Malformed => f.write_str("the server's answer is not an HTTP/1.1 response"),
            TooLarge => f.write_str("the server's response head is too large"),
            Incomplete => f.write_str("the connection closed before the response head ended"),
            Status { code, reason, body } => {
                write!(f, "the server answered {code} {reason}, not 101")?;
                if !body.is_empty() {
                    write!(f, ": {body:?}")?;
                }
                Ok(())
            }
            NoUpgrade => f.write_str("the response's Upgrade header does not name websocket"),
            NoConnectionUpgrade => f.write_str("the response's Connection header lacks Upgrade"),
            BadAccept => f.write_str("Sec-WebSocket-Accept does not match the key"),
            UnrequestedProtocol => f.write_str("the server chose a subprotocol not offered"),
            UnrequestedExtension => f.write_str("the server chose an extension not offered"),
            BadExtension(e) => write!(f, "unacceptable Sec-WebSocket-Extensions: {e}"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// Why a client call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The URL cannot be dialled.
    Url(UrlError),
    /// The request options cannot be sent.
    Request(RequestError),
    /// The server's answer to the upgrade was not accepted.
    Handshake(ResponseError),
    /// The server broke RFC 6455; the client sent a close with the error's
    /// code and closed the connection.
    Protocol(ProtocolError),
    /// The socket failed or timed out (`TimedOut` or `WouldBlock` from a
    /// read or write timeout; the connection is still usable after a read
    /// timed out).
    Io(io::Error),
    /// The connection is closing or closed: nothing more can be sent.
    Closed,
    /// A call the connection cannot take in its state, or with these
    /// arguments: a control payload over 125 bytes, a close code that may not
    /// be sent, a message while a streamed one is open.
    Invalid(&'static str),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Url(e) => write!(f, "bad URL: {e}"),
            ClientError::Request(e) => write!(f, "bad request: {e}"),
            ClientError::Handshake(e) => write!(f, "handshake refused: {e}"),
            ClientError::Protocol(e) => {
                write!(f, "protocol error (closed with {}): {e}", e.close_code())
            }
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::Closed => f.write_str("the connection is closed"),
            ClientError::Invalid(why) => write!(f, "invalid call: {why}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Url(e) => Some(e),
            ClientError::Request(e) => Some(e),
            ClientError::Handshake(e) => Some(e),
            ClientError::Protocol(e) => Some(e),
            ClientError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

impl From<UrlError> for ClientError {
    fn from(e: UrlError) -> Self {
        ClientError::Url(e)
    }
}

impl From<RequestError> for ClientError {
    fn from(e: RequestError) -> Self {
        ClientError::Request(e)
    }
}

impl From<ResponseError> for ClientError {
    fn from(e: ResponseError) -> Self {
        ClientError::Handshake(e)
    }
}

impl From<ProtocolError> for ClientError {
    fn from(e: ProtocolError) -> Self {
        ClientError::Protocol(e)
    }
}
