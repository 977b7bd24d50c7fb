//! zerows: a zero-copy, high-throughput WebSocket (RFC 6455) server library
//! on mio.
//!
//! A service implements [`Service`]: it gets one value of its own
//! [`State`](Service::State) per connection, and every callback gets a
//! [`Context`] to send on that connection. Each message arrives the way the
//! service chooses ([`Delivery`]): collected whole, streamed in pieces,
//! echoed back zero-copy, or discarded. [`Server`] runs one service on one
//! event loop; [`Builder`] runs several loops on one port.
//!
//! ```no_run
//! use zerows::{Builder, Context, Message, Request, Service};
//!
//! /// Answers every message with "Received: " and the message.
//! struct Received;
//!
//! impl Service for Received {
//!     type State = ();
//!
//!     fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}
//!
//!     fn whole(&mut self, _st: &mut (), msg: Message<'_>, cx: &mut Context<'_>) {
//!         if let Message::Text(text) = msg {
//!             // One frame from two parts: nothing is allocated.
//!             let _ = cx.send_text_parts(&["Received: ", text]);
//!         }
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     Builder::new().listen("127.0.0.1:9001".parse().unwrap()).run(|_| Received)
//! }
//! ```
//!
//! Inside, the folders show the architecture:
//!
//! * `proto/`: the protocol core, with no I/O and no clock: the handshake,
//!   frames, unmasking, UTF-8, the connection state machine (the receive
//!   half) and the send half a service sees; bytes and time in, ranges of
//!   bytes out;
//! * `io/`: the shell on mio: pooled buffers, one connection's session,
//!   the event loop, the builder of several loops;
//! * `http/`: the plain HTTP side: refusals, the page, metrics;
//! * `bus/`: topics across instances, through a broker (Redis pub/sub);
//! * at the top: the API ([`Service`], [`Context`], [`ConnId`]).
//!
//! The internal modules are public for the benches and fuzz targets only,
//! and hidden from the documentation: the API is what the crate root
//! exports.
#![deny(missing_docs)]

mod bus;
mod conn_id;
#[doc(hidden)]
pub mod http;
#[doc(hidden)]
pub mod io;
#[doc(hidden)]
pub mod proto;
#[doc(hidden)]
pub mod push;
mod service;

// The internals under their short names, for the crate itself, the
// benches and the fuzz targets.
#[doc(hidden)]
pub use http::metrics;
#[doc(hidden)]
pub use io::{buffer, builder, server, session};
#[doc(hidden)]
pub use proto::{conn, context, deflate, error, events, frame, handshake, mask, output, utf8};

pub use builder::{Builder, Running};
pub use bus::BusConfig;
pub use conn::{Millis, Settings};
pub use conn_id::ConnId;
pub use context::{Context, SendStatus, MAX_PARTS};
pub use deflate::{ClientTerms, DeflateConfig, DeflateOffer};
pub use error::{close_code, HandshakeError, PushError};
pub use handshake::{HandshakeConfig, ANY_PATH};
pub use io::client::blocking::Client;
pub use io::client::incoming::{Incoming, Piece};
pub use proto::client::config::ClientConfig;
pub use proto::client::conn::{CloseFrame, Part};
pub use proto::client::error::{ClientError, RequestError, ResponseError, UrlError};
pub use push::{Handle, Loop, Prepared, SlowPolicy, Topic};
pub use server::{Config, Server, Stopper};
pub use service::{Delivery, Echo, Message, MessageKind, Request, Service};

/// The client side: [`Client`] on a blocking socket, and
/// [`Connection`](client::Connection) for many connections in one mio loop,
/// both on the same core as the server's, in the client role.
pub mod client {
    pub use crate::conn::Millis;
    pub use crate::deflate::{ClientTerms, DeflateOffer};
    pub use crate::io::client::blocking::Client;
    pub use crate::io::client::incoming::{Incoming, Piece};
    pub use crate::io::client::nonblocking::{Connection, Status};
    pub use crate::proto::client::config::ClientConfig;
    pub use crate::proto::client::conn::{CloseFrame, Part};
    pub use crate::proto::client::error::{ClientError, RequestError, ResponseError, UrlError};
    pub use crate::proto::client::keys::Keys;
}

#[cfg(test)]
mod testutil;
