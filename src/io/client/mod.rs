//! The client shells: they dial, move bytes between a socket and the
//! client core (`proto/client`), and keep time; every rule is the core's.
//!
//! * `dial`: resolve a `ws://` URL, connect, and run the opening handshake
//!   on a blocking socket;
//! * `blocking`: [`Client`](blocking::Client), on a `std::net::TcpStream`;
//! * `nonblocking`: [`Connection`](nonblocking::Connection), for many
//!   connections in a caller's mio loop;
//! * `queue`: a connection's output, written in place, taken from the
//!   front;
//! * `incoming`: what a client hands out: pieces, pings, pongs.

pub mod blocking;
pub mod dial;
pub mod incoming;
pub mod nonblocking;
pub mod queue;
