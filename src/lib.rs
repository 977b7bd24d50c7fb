//! zerows: a zero-copy, high-throughput WebSocket (RFC 6455) server on mio.
//!
//! The crate is a sans-IO protocol core with a thin I/O shell:
//!
//! * [`handshake`] parses an upgrade request in place and writes the response;
//! * [`frame`] decodes and encodes frame headers, [`mask`] unmasks payloads in
//!   place, [`utf8`] validates text incrementally;
//! * [`conn`] is the per-connection state machine: bytes in, ranges of the
//!   same bytes out, time passed in as an argument;
//! * [`buffer`] holds the pooled read and write buffers;
//! * [`server`] is the single-threaded mio event loop that moves bytes and
//!   readiness between sockets and the core.
//!
//! Errors are enums in [`error`], mapped there (and only there) to HTTP
//! statuses and close codes.

pub mod buffer;
pub mod conn;
pub mod error;
pub mod frame;
pub mod handler;
pub mod handshake;
pub mod http;
pub mod mask;
pub mod output;
pub mod server;
pub mod session;
pub mod utf8;

#[cfg(test)]
mod testutil;
