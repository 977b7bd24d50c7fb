//! Every way a peer can be refused, and the one place each maps to the wire.
//!
//! A refused upgrade request becomes an HTTP status ([`HandshakeError::status`]);
//! a protocol violation after the upgrade becomes a close code
//! ([`ProtocolError::close_code`]). Nothing else in the crate chooses a status
//! or a close code for an error.

use std::fmt;

/// Why an upgrade request (RFC 6455 §4.2.1) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// Not parseable as an HTTP/1.x request.
    Malformed,
    /// The header block passed its byte limit, or has too many headers.
    TooLarge,
    /// A method other than GET.
    MethodNotAllowed,
    /// An upgrade over HTTP/1.0 (RFC 6455 requires HTTP/1.1 or later).
    HttpVersion,
    /// No `Host` header (or more than one).
    MissingHost,
    /// `Upgrade` does not name `websocket`.
    NotWebSocket,
    /// `Connection` does not list `Upgrade`.
    MissingConnectionUpgrade,
    /// `Sec-WebSocket-Key` is missing, repeated, or not 16 bytes in base64.
    BadKey,
    /// `Sec-WebSocket-Version` is missing or not 13.
    UnsupportedVersion,
    /// The `Origin` names another host and is not allowed by configuration.
    ForbiddenOrigin,
    /// The request target is not a path this server serves.
    NotFound,
    /// The server is at its connection limit.
    Unavailable,
}

impl HandshakeError {
    /// The HTTP status line parts for this refusal.
    pub fn status(self) -> (u16, &'static str) {
        use HandshakeError::*;
        match self {
            Malformed
            | HttpVersion
            | MissingHost
            | NotWebSocket
            | MissingConnectionUpgrade
            | BadKey => (400, "Bad Request"),
            TooLarge => (431, "Request Header Fields Too Large"),
            MethodNotAllowed => (405, "Method Not Allowed"),
            UnsupportedVersion => (426, "Upgrade Required"),
            ForbiddenOrigin => (403, "Forbidden"),
            NotFound => (404, "Not Found"),
            Unavailable => (503, "Service Unavailable"),
        }
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HandshakeError::*;
        f.write_str(match self {
            Malformed => "malformed HTTP request",
            TooLarge => "request header block too large",
            MethodNotAllowed => "method is not GET",
            HttpVersion => "WebSocket upgrade requires HTTP/1.1",
            MissingHost => "missing or repeated Host header",
            NotWebSocket => "Upgrade header does not name websocket",
            MissingConnectionUpgrade => "Connection header does not list Upgrade",
            BadKey => "missing or invalid Sec-WebSocket-Key",
            UnsupportedVersion => "Sec-WebSocket-Version is not 13",
            ForbiddenOrigin => "origin not allowed",
            NotFound => "path not served",
            Unavailable => "server at its connection limit",
        })
    }
}

impl std::error::Error for HandshakeError {}

/// Close codes (RFC 6455 §7.4.1) and which may be sent.
pub mod close_code {
    /// The purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The server is going down, or the peer stopped answering.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message over the size limit.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server met a condition it cannot handle.
    pub const INTERNAL_ERROR: u16 = 1011;

    /// Whether a peer may send `code` in a close frame (§7.4.1, §7.4.2 and
    /// the IANA registry): 1000–1003, 1007–1011 and 3000–4999.
    pub fn is_valid_received(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }

    /// The server is overloaded: try again later (IANA registry; the usual
    /// close for a slow subscriber).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// A message broke the endpoint's policy.
    pub const POLICY_VIOLATION: u16 = 1008;

    /// Whether a service may close with `code`: the codes a peer may send,
    /// plus the IANA-registered 1012 (service restart), 1013 (try again
    /// later) and 1014 (bad gateway), which browsers take as they are.
    pub fn is_sendable(code: u16) -> bool {
        is_valid_received(code) || matches!(code, 1012..=1014)
    }
}

/// Why an endpoint fails an open connection (RFC 6455 §5–§8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolError {
    /// A client frame without the mask bit (§5.1).
    UnmaskedFrame,
    /// A server frame with the mask bit (§5.1), seen by a client.
    MaskedFrame,
    /// RSV1–3 set with no extension negotiated (§5.2), or RSV1 on a
    /// control frame or a continuation (RFC 7692 §6.1).
    ReservedBits,
    /// An opcode RFC 6455 reserves (§5.2).
    UnknownOpcode,
    /// A control frame with more than 125 payload bytes (§5.5).
    ControlTooLong,
    /// A control frame without FIN (§5.5).
    ControlFragmented,
    /// A continuation frame with no message open (§5.4).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is open (§5.4).
    ExpectedContinuation,
    /// A 64-bit payload length with its most significant bit set (§5.2).
    LengthOverflow,
    /// A close frame whose payload is one byte long (§5.5.1).
    CloseFrameTooShort,
    /// A close code no endpoint may send (§7.4).
    InvalidCloseCode,
    /// A close reason that is not UTF-8 (§5.5.1).
    InvalidCloseReason,
    /// A text message that is not UTF-8 (§8.1).
    InvalidUtf8,
    /// A message longer than the configured maximum (for a compressed
    /// message: once inflated).
    MessageTooBig,
    /// A compressed message that is not a valid deflate stream (RFC 7692
    /// §8).
    BadDeflate,
}

impl ProtocolError {
    /// The close code an endpoint sends when failing the connection.
    pub fn close_code(self) -> u16 {
        use ProtocolError::*;
        match self {
            // 1007, as Node's ws sends: the payload is inconsistent with
            // the message's framing (see docs/architecture.md).
            InvalidUtf8 | BadDeflate => close_code::INVALID_PAYLOAD,
            MessageTooBig => close_code::MESSAGE_TOO_BIG,
            UnmaskedFrame
            | MaskedFrame
            | ReservedBits
            | UnknownOpcode
            | ControlTooLong
            | ControlFragmented
            | UnexpectedContinuation
            | ExpectedContinuation
            | LengthOverflow
            | CloseFrameTooShort
            | InvalidCloseCode
            | InvalidCloseReason => close_code::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ProtocolError::*;
        f.write_str(match self {
            UnmaskedFrame => "client frame is not masked",
            MaskedFrame => "server frame is masked",
            ReservedBits => "reserved bits set that no extension allows",
            UnknownOpcode => "reserved opcode",
            ControlTooLong => "control frame payload over 125 bytes",
            ControlFragmented => "fragmented control frame",
            UnexpectedContinuation => "continuation frame with no message open",
            ExpectedContinuation => "new data frame inside a fragmented message",
            LengthOverflow => "64-bit payload length with its top bit set",
            CloseFrameTooShort => "close frame with a one-byte payload",
            InvalidCloseCode => "invalid close code",
            InvalidCloseReason => "close reason is not UTF-8",
            InvalidUtf8 => "text message is not UTF-8",
            MessageTooBig => "message exceeds the size limit",
            BadDeflate => "compressed message is not a valid deflate stream",
        })
    }
}

impl std::error::Error for ProtocolError {}

/// Why a push through a [`Handle`](crate::Handle) was not taken. A push
/// that returns `Ok` was queued for the loop that owns the connection; it
/// is written in that loop's next turn, unless the connection ends first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The loop's inbox is full: the loop is behind. Nothing was queued
    /// (for a publish or broadcast: not on that loop); try again later.
    Full,
    /// No open connection has this id: it never existed or has closed.
    Closed,
    /// The server has stopped (or is stopping).
    Stopped,
    /// Not a push that can be made: a close code that may not be sent,
    /// or a close reason over 123 bytes.
    Refused,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PushError::*;
        f.write_str(match self {
            Full => "the event loop's inbox is full",
            Closed => "no open connection has this id",
            Stopped => "the server has stopped",
            Refused => "invalid close code or reason",
        })
    }
}

impl std::error::Error for PushError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(HandshakeError::BadKey.status().0, 400);
        assert_eq!(HandshakeError::UnsupportedVersion.status().0, 426);
        assert_eq!(HandshakeError::TooLarge.status().0, 431);
        assert_eq!(HandshakeError::ForbiddenOrigin.status().0, 403);
        assert_eq!(HandshakeError::NotFound.status().0, 404);
        assert_eq!(HandshakeError::MethodNotAllowed.status().0, 405);
    }

    #[test]
    fn close_codes() {
        assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
        assert_eq!(ProtocolError::MessageTooBig.close_code(), 1009);
        assert_eq!(ProtocolError::UnmaskedFrame.close_code(), 1002);
        assert_eq!(ProtocolError::MaskedFrame.close_code(), 1002);
        assert_eq!(ProtocolError::InvalidCloseReason.close_code(), 1002);
    }

    #[test]
    fn valid_received_codes() {
        for c in 0..=u16::MAX {
            let expect = (1000..=1003).contains(&c)
                || (1007..=1011).contains(&c)
                || (3000..=4999).contains(&c);
            assert_eq!(close_code::is_valid_received(c), expect, "code {c}");
            let sendable = expect || (1012..=1014).contains(&c);
            assert_eq!(close_code::is_sendable(c), sendable, "code {c}");
        }
    }
}
