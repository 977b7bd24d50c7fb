//! The I/O shell: moves bytes and readiness between sockets and the
//! protocol core, and nothing else.
//!
//! * `buffer`: pooled read buffers, backlogs and message buffers, attached
//!   to a connection only while it has bytes pending;
//! * `spill`: small buffers for the few bytes a connection keeps between
//!   reads, so a partial frame does not pin a read buffer;
//! * `session`: one connection's bytes between its socket and the core;
//! * `server`: one mio event loop, connections in a slab, a timer heap;
//! * `builder`: several loops on one port;
//! * `uring`: the io_uring backend of the event loop (`server` picks it);
//! * `client`: the client shells on the client core.

pub mod buffer;
pub mod builder;
pub mod client;
pub mod server;
pub mod session;
pub mod spill;
#[cfg(feature = "uring")]
pub(crate) mod uring;
