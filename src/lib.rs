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
//! Inside, the crate is a sans-IO protocol core with a thin I/O shell:
//!
//! * protocol core, no I/O: `handshake` (upgrade request in place), `frame`
//!   (headers), `mask` (unmasking in place), `utf8` (incremental
//!   validation), `conn` (the per-connection state machine: bytes in,
//!   ranges of the same bytes out, time passed in), `context` (the send
//!   half as a service sees it), `events` (what the core reports to a
//!   service), `error` (every error, and its HTTP status or close code);
//! * I/O shell: `buffer` (pools, read buffers, backlogs), `output` (the
//!   segments one pass sends), `session` (one connection's bytes between a
//!   socket and the core), `server` (the mio event loop), `builder`;
//! * plain HTTP: `http` (responses and the page), `metrics`.
//!
//! Those modules are public for the benches and fuzz targets only, and
//! hidden from the documentation: the API is what the crate root exports.
#![deny(missing_docs)]

#[doc(hidden)]
pub mod buffer;
mod builder;
#[doc(hidden)]
pub mod conn;
mod conn_id;
#[doc(hidden)]
pub mod context;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
pub mod events;
#[doc(hidden)]
pub mod frame;
#[doc(hidden)]
pub mod handshake;
#[doc(hidden)]
pub mod http;
#[doc(hidden)]
pub mod mask;
#[doc(hidden)]
pub mod metrics;
#[doc(hidden)]
pub mod output;
#[doc(hidden)]
pub mod server;
mod service;
#[doc(hidden)]
pub mod session;
#[doc(hidden)]
pub mod utf8;

pub use builder::{Builder, Running};
pub use conn::{Millis, Settings};
pub use conn_id::ConnId;
pub use context::{Context, SendStatus};
pub use error::{close_code, HandshakeError};
pub use handshake::HandshakeConfig;
pub use server::{Config, Server, Stopper};
pub use service::{Delivery, Echo, Message, MessageKind, Request, Service};

#[cfg(test)]
mod testutil;
