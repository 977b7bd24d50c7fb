//! What a service does with the messages the protocol core has validated.
//!
//! The core hands a handler each data message as it streams through: once at
//! its start, to decide whether it goes back to the peer, then its payload in
//! order. Payload pieces are borrowed from the read buffer and gone after the
//! call; they are never copied for the handler. Text is valid UTF-8 up to the
//! end of each piece taken together with the pieces before it (a piece may
//! end or begin inside a code point only where the core had to split one).

use crate::error::HandshakeError;

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Text,
    Binary,
}

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// Send it back unchanged, same type, as it streams through.
    Echo,
    /// Consume it and send nothing.
    Discard,
}

/// A service running on the zerows event loop.
pub trait Handler {
    /// A connection finished its opening handshake.
    fn on_open(&mut self, _protocol: Option<&str>) {}

    /// An opening handshake was refused with an HTTP error.
    fn on_refused(&mut self, _err: HandshakeError) {}

    /// A data message begins.
    fn on_message(&mut self, kind: MessageKind) -> Reply;

    /// Validated payload of the current message, in order.
    fn on_data(&mut self, _data: &[u8]) {}

    /// The current message is complete.
    fn on_message_end(&mut self) {}

    /// The peer sent a close frame; `code` is its close code, if any.
    fn on_close(&mut self, _code: Option<u16>) {}

    /// The server sent a close frame with `code`.
    fn on_close_sent(&mut self, _code: u16) {}
}

/// The echo service: every message goes back as it came.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Handler for Echo {
    #[inline]
    fn on_message(&mut self, _kind: MessageKind) -> Reply {
        Reply::Echo
    }
}
