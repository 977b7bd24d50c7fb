//! What a service implements: one value per event loop, one [`State`] per
//! connection, callbacks that act through a [`Context`].
//!
//! The loop calls a service only from its own thread, so a service needs no
//! locks. With several loops each gets its own service value (see
//! [`Builder::service`](crate::Builder)); what they share, they share
//! through an `Arc` of the service's choosing.
//!
//! How a message arrives is chosen per message by [`Service::message`]:
//! streamed in pieces borrowed from the read buffer, echoed as it streams
//! through (zero-copy; also streamed to the service if it asks), collected
//! whole (borrowed straight from the read
//! buffer when it arrived in one frame, otherwise gathered in a pooled
//! buffer), or discarded.
//!
//! [`State`]: Service::State

use crate::context::Context;
use crate::error::HandshakeError;
use crate::push::Loop;

/// The type of a data message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    /// UTF-8 text (opcode 1).
    Text,
    /// Binary data (opcode 2).
    Binary,
}

/// How a data message reaches the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Whole, once complete, to [`Service::whole`]: borrowed from the read
    /// buffer when it came in one frame, otherwise gathered in a pooled
    /// buffer. A message longer than [`Settings::max_collected`] closes the
    /// connection with 1009.
    ///
    /// [`Settings::max_collected`]: crate::Settings::max_collected
    Collect,
    /// In validated pieces to [`Service::piece`], then [`Service::end`].
    Stream,
    /// Sent back unchanged as it streams through, with no copy; the service
    /// sees nothing more of it.
    Echo,
    /// Echoed as with [`Echo`](Self::Echo), and also given to
    /// [`Service::piece`] and [`Service::end`]. What the service sends from
    /// `piece` while the echo is still under way is held back until the
    /// echo's last frame is out, so it never lands inside the echo.
    EchoAndStream,
    /// Consumed, validated, and not shown to the service.
    Discard,
}

/// A whole message, borrowed for the duration of the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (always valid UTF-8).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match *self {
            Message::Text(s) => s.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// Whether it is text or binary.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Text(_) => MessageKind::Text,
            Message::Binary(_) => MessageKind::Binary,
        }
    }
}

/// The upgrade request, borrowed from the read buffer while
/// [`Service::open`] runs: keep what you need in the connection's state.
/// Nothing is copied for a service that keeps nothing.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub(crate) target: &'a str,
    pub(crate) headers: &'a [httparse::Header<'a>],
}

impl<'a> Request<'a> {
    /// The request target's path (before any `?`), as sent: not
    /// percent-decoded.
    pub fn path(&self) -> &'a str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// The query string after `?`, if any, as sent.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, q)| q)
    }

    /// The value of the first header named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Every header, in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a [u8])> + 'a {
        self.headers.iter().map(|h| (h.name, h.value))
    }
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("target", &self.target)
            .field("headers", &self.headers.len())
            .finish()
    }
}

/// A WebSocket service running on zerows event loops.
///
/// Every callback of an upgraded connection gets that connection's state
/// and a [`Context`] to act on it. Callbacks must not block: they run on
/// the event loop.
pub trait Service {
    /// Per-connection state, created by [`open`](Self::open) and dropped
    /// after [`closed`](Self::closed). A zero-sized type costs nothing.
    type State;

    /// A valid upgrade request (every RFC 6455 check passed, the path is
    /// the configured one or any path with
    /// [`ANY_PATH`](crate::ANY_PATH)): take it, or refuse it with
    /// the HTTP error of an [`HandshakeError`] (`NotFound` is 404,
    /// `ForbiddenOrigin` 403, `Unavailable` 503). The default takes all.
    fn accept(&mut self, _req: &Request<'_>) -> Result<(), HandshakeError> {
        Ok(())
    }

    /// A connection finished its opening handshake; the 101 response is
    /// queued, so anything sent here follows it.
    fn open(&mut self, req: &Request<'_>, cx: &mut Context<'_>) -> Self::State;

    /// A data message begins: choose how it arrives. The default collects
    /// it whole.
    fn message(
        &mut self,
        _st: &mut Self::State,
        _kind: MessageKind,
        _cx: &mut Context<'_>,
    ) -> Delivery {
        Delivery::Collect
    }

    /// A whole message ([`Delivery::Collect`]).
    fn whole(&mut self, _st: &mut Self::State, _msg: Message<'_>, _cx: &mut Context<'_>) {}

    /// Validated payload of the current message, in order
    /// ([`Delivery::Stream`] and [`Delivery::EchoAndStream`]). The pieces of a text
    /// message taken together are valid UTF-8; a piece may begin or end
    /// inside a code point only where a frame did.
    fn piece(&mut self, _st: &mut Self::State, _data: &[u8], _cx: &mut Context<'_>) {}

    /// The current streamed or echoed message is complete.
    fn end(&mut self, _st: &mut Self::State, _cx: &mut Context<'_>) {}

    /// Output that had to wait for the socket (what makes a send report
    /// [`Backpressure`](crate::SendStatus::Backpressure)) has all gone
    /// out: called each time the connection's backlog empties.
    fn drain(&mut self, _st: &mut Self::State, _cx: &mut Context<'_>) {}

    /// The connection's timer fired (set with
    /// [`Context::timer_after`] or [`Context::timer_every`]).
    fn timer(&mut self, _st: &mut Self::State, _cx: &mut Context<'_>) {}

    /// The event loop starts, before its first connection: set up a tick
    /// ([`Loop::tick_every`]) or keep the [`Loop::handle`].
    fn started(&mut self, _lp: &mut Loop<'_>) {}

    /// The loop's tick (see [`Loop::tick_every`]).
    fn tick(&mut self, _lp: &mut Loop<'_>) {}

    /// The peer sent a close frame (`code`: its status code, if any). The
    /// answering close is already queued; nothing more can be sent.
    fn peer_closed(&mut self, _st: &mut Self::State, _code: Option<u16>) {}

    /// The connection is gone; its state is handed back to be dropped or
    /// kept.
    fn closed(&mut self, _st: Self::State) {}

    /// An upgrade request was refused with an HTTP error.
    fn refused(&mut self, _err: HandshakeError) {}

    /// The HTML served to a plain `GET` (no `Upgrade`) of the WebSocket
    /// path. `None`, the default, refuses such a request with 400.
    fn page(&self) -> Option<&'static [u8]> {
        None
    }
}

/// The echo service: every message goes back as it came, zero-copy, and
/// `GET /` in a browser serves a page that talks to it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

impl Service for Echo {
    type State = ();

    #[inline]
    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}

    #[inline]
    fn message(&mut self, _st: &mut (), _kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        Delivery::Echo
    }

    fn page(&self) -> Option<&'static [u8]> {
        Some(crate::http::PAGE)
    }
}
