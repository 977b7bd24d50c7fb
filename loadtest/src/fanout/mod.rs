//! `fanout`: N connections subscribe to one room, one of them publishes, and
//! the time until the last (and the median) subscriber has each message is
//! measured.
//!
//! Invariants:
//! - One thread and one mio event loop hold every connection, each a
//!   `zerows::client::Connection` with one masking-key source for all;
//!   each ready socket is read once into its connection's fixed buffer
//!   (sized for one message), so reading costs a system call per delivery
//!   and allocates nothing. Messages are checked piece by piece as they
//!   arrive, so a fragmented one is never gathered.
//! - Connection 0 publishes and is a subscriber too (a chat sends to the
//!   sender as well), so a message counts as delivered when all N
//!   connections have it. A message is published only when every
//!   subscriber has the previous one: one message in flight.
//! - Targets: the url, then each `--also` (instances sharing the room,
//!   e.g. through a bus). Connection i opens target i mod T, so the
//!   publisher is on the url; every check holds across targets alike, and
//!   each target's last subscriber and deliveries are also counted apart.
//! - Readiness: before anything is measured, readiness messages are
//!   published until one reaches every subscriber (a server may subscribe
//!   a connection only after its handshake). A readiness message may miss
//!   subscribers; from the first message after readiness on ("strict"),
//!   every subscriber must receive every message exactly once, in order,
//!   with the payload and opcode published. Any fault, a connection lost
//!   or a message that does not reach everyone within `--timeout` stops the
//!   run, and the exit status is then non-zero.
//! - Payloads are those of `payload` (tagged with the publisher's id and
//!   the sequence number, the rest a pattern of both), so a subscriber
//!   checks each delivery without a copy of what was sent.
//! - Every phase is bounded in time: connects by `--connect-timeout` each,
//!   readiness by `--ready-rounds` × `--timeout`, each strict message by
//!   `--timeout`, the closing handshake by
//!   [`close_timeout`](event_loop::close_timeout). Targets are loopback
//!   only (see `target`).
//!
//! Layout: [`args`] (the options and their limits), [`measure`] (the phases
//! of a run), [`event_loop`] (the poll holding every connection),
//! [`connection`] (one subscriber's I/O and checks), [`sequence`] (the
//! order check per subscriber), [`tally`] (what the connections share),
//! [`targets`] (which connection opens which target, per-target counts),
//! [`servers`] (the servers' CPU per target), [`summary`] (the result),
//! [`error`] (why a run could not be made).

mod args;
mod connection;
mod error;
mod event_loop;
mod measure;
mod sequence;
mod servers;
mod summary;
mod tally;
mod targets;

pub use args::FanoutArgs;
pub use error::FanoutError;
pub use measure::fanout;
pub use summary::FanoutSummary;

/// The id the publisher writes into every payload.
const PUBLISHER: u32 = 0;
