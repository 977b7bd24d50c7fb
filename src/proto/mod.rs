//! The protocol core: RFC 6455 on byte slices, with no I/O and no clock.
//!
//! Everything here takes the bytes received and the time as arguments and
//! returns ranges of bytes to send, so every rule can be unit-tested and
//! every input split at every byte:
//!
//! * `handshake`: the opening handshake, parsed in place;
//! * `frame`, `mask`, `utf8`: frame headers, unmasking in place, incremental
//!   UTF-8 validation;
//! * `conn`: one connection's state machine, the receive half (frames in,
//!   messages delivered to the service as it chose);
//! * `context` and `output`: the send half (what a service sends, and the
//!   segments one pass writes);
//! * `events`: what the core reports to a service;
//! * `error`: every error, and the one place it becomes an HTTP status or a
//!   close code.

pub mod client;
pub mod conn;
pub mod context;
pub mod deflate;
pub mod error;
pub mod events;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod output;
pub mod utf8;
