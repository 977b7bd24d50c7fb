//! zerows: a zero-copy, high-throughput WebSocket (RFC 6455) server on mio.
//!
//! The crate is a sans-IO protocol core with a thin I/O shell:
//!
//! * [`handshake`] parses an upgrade request in place and writes the response;
//!   [`http`] writes the plain HTTP answers and holds the page;
//! * [`frame`] decodes and encodes frame headers, [`mask`] unmasks payloads in
//!   place, [`utf8`] validates text incrementally;
//! * [`conn`] is the per-connection state machine: bytes in, ranges of the
//!   same bytes out ([`output`]), time passed in as an argument;
//! * [`handler`] is what a service implements; [`metrics`] counts what
//!   passes through it;
//! * [`buffer`] holds the pooled read buffers and output backlogs;
//! * [`session`] moves one connection's bytes between a stream and the core,
//!   and [`server`] is the single-threaded mio event loop that drives the
//!   sessions from readiness and time.
//!
//! Errors are enums in [`error`], mapped there (and only there) to HTTP
//! statuses and close codes.
//!
//! A service is a [`handler::Handler`]; the echo server is [`handler::Echo`]:
//!
//! ```no_run
//! use zerows::handler::{Handler, MessageKind, Reply};
//! use zerows::server::{Config, Server};
//!
//! /// Counts bytes and echoes only text.
//! struct TextOnly(u64);
//!
//! impl Handler for TextOnly {
//!     fn on_message(&mut self, kind: MessageKind) -> Reply {
//!         if kind == MessageKind::Text { Reply::Echo } else { Reply::Discard }
//!     }
//!     fn on_data(&mut self, data: &[u8]) {
//!         self.0 += data.len() as u64;
//!     }
//! }
//!
//! fn main() -> std::io::Result<()> {
//!     Server::bind(Config::default(), TextOnly(0))?.run()
//! }
//! ```

pub mod buffer;
pub mod conn;
pub mod error;
pub mod frame;
pub mod handler;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod metrics;
pub mod output;
pub mod server;
pub mod session;
pub mod utf8;

#[cfg(test)]
mod testutil;
