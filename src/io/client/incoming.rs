//! What a client hands out besides whole messages.

use crate::service::MessageKind;
use crate::utf8;

/// A piece of a message, as it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    /// Text or binary.
    pub kind: MessageKind,
    /// The bytes: for text, always whole UTF-8.
    pub data: &'a [u8],
    /// The message's first piece.
    pub first: bool,
    /// The message's last piece.
    pub last: bool,
}

impl<'a> Piece<'a> {
    /// A text piece as `&str`; `None` for binary.
    pub fn text(&self) -> Option<&'a str> {
        // SAFETY: the core validated every text piece as whole UTF-8
        // before handing it out (`proto/client/reader.rs`).
        (self.kind == MessageKind::Text).then(|| unsafe { utf8::assume_valid(self.data) })
    }
}

/// One thing the server sent, streamed: pieces of messages as they
/// arrive (no message is gathered), and control frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A piece of a message.
    Piece(Piece<'a>),
    /// A ping (already answered with a pong).
    Ping(&'a [u8]),
    /// A pong.
    Pong(&'a [u8]),
}
