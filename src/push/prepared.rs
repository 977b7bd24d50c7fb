//! Messages encoded once and shared: the frame a push, publish or
//! broadcast writes to every connection it reaches.
//!
//! Server frames are not masked, so one encoding (header and payload in one
//! reference-counted block) is valid for every connection: fanning out
//! clones a pointer, never the bytes. A socket is written straight from the
//! block; only what a socket does not take is copied, into that
//! connection's backlog.

use std::sync::Arc;

use crate::frame::{self, opcode};
use crate::service::MessageKind;

/// A whole message encoded as one frame, ready to be sent to any number of
/// connections. Cloning it is cheap (a reference count); building one
/// allocates once. Like gorilla's `PreparedMessage`.
#[derive(Clone)]
pub struct Prepared {
    /// Header then payload.
    frame: Arc<[u8]>,
    /// Header bytes at the front of `frame`.
    head: u8,
    kind: MessageKind,
}

impl Prepared {
    /// A text message.
    pub fn text(text: &str) -> Prepared {
        Self::new(MessageKind::Text, text.as_bytes())
    }

    /// A binary message.
    pub fn binary(data: &[u8]) -> Prepared {
        Self::new(MessageKind::Binary, data)
    }

    /// A message of `kind`; a text payload must be UTF-8 (the caller has
    /// checked it).
    pub(crate) fn new(kind: MessageKind, payload: &[u8]) -> Prepared {
        let op = match kind {
            MessageKind::Text => opcode::TEXT,
            MessageKind::Binary => opcode::BINARY,
        };
        let mut head = [0u8; frame::MAX_HEADER];
        let hl = frame::encode(&mut head, true, op, payload.len() as u64, None);
        // One allocation of the exact size: the chain of two slices has a
        // known length.
        let frame: Arc<[u8]> = head[..hl].iter().chain(payload).copied().collect();
        Prepared {
            frame,
            head: hl as u8,
            kind,
        }
    }

    /// Whether it is text or binary.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.frame[usize::from(self.head)..]
    }

    /// The whole frame, as written to a socket.
    pub(crate) fn frame(&self) -> &[u8] {
        &self.frame
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("kind", &self.kind)
            .field("len", &self.payload().len())
            .finish()
    }
}

/// A topic's name, shared: made once, then published to or subscribed
/// with no allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Topic(Arc<str>);

impl Topic {
    /// The topic called `name`.
    pub fn new(name: &str) -> Topic {
        Topic(Arc::from(name))
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.0
    }

    pub(crate) fn shared(&self) -> &Arc<str> {
        &self.0
    }
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Topic({:?})", &*self.0)
    }
}

impl From<&str> for Topic {
    fn from(name: &str) -> Topic {
        Topic::new(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_whole_unmasked_messages() {
        let p = Prepared::text("hi");
        assert_eq!(p.frame(), b"\x81\x02hi");
        assert_eq!(p.payload(), b"hi");
        let big = vec![7u8; 70_000];
        let p = Prepared::binary(&big);
        assert_eq!(&p.frame()[..2], &[0x82, 127]);
        assert_eq!(p.frame().len(), 10 + 70_000);
        assert_eq!(p.payload(), &big[..]);
        let q = p.clone();
        assert!(std::ptr::eq(p.frame().as_ptr(), q.frame().as_ptr()));
    }
}
