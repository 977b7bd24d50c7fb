//! Listening sockets, and handing the port over to a sibling process on
//! stop when they were bound with `SO_REUSEPORT` ([`Config::reuse_port`]).
//!
//! Without `reuse_port` a stopping loop keeps its listeners open and answers
//! newcomers 503 until it exits, so a load balancer's health check sees the
//! drain. With it, other processes may listen on the same port (the kernel
//! spreads new connections over every listener of the reuseport group), and
//! a 503 would only fail clients that another instance could have served.
//! So on stop the loop instead:
//! * accepts what its accept queue holds, until `WouldBlock`, while it has
//!   room for them (at `max_connections`, or out of descriptors, it stops
//!   early rather than answer 503);
//! * then deregisters and closes its listeners, so new connections go to
//!   the other listeners of the group;
//! * serves the requests of connections still in their handshake (accepted
//!   just now or before the stop) as usual, and closes each with 1001 as
//!   soon as it is upgraded: the client sees a successful handshake, then a
//!   going-away close like every other connection of this instance, and
//!   reconnects to the sibling. Nothing it sent is lost without a close.
//!
//! Connections the kernel queues between the last `accept` and the close
//! are reset when the listener closes, unless `net.ipv4.tcp_migrate_req`
//! is 1 (Linux 5.14+): then they, and half-open ones, move to another
//! listener of the group. Start-up warns when it is not set.
//!
//! Invariant: once the listeners are closed no connection is added, so the
//! slab keys in `awaiting_upgrade` name the connections they were taken
//! for until those end.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpStream;

use super::{is_out_of_descriptors, Config, Server};
use crate::conn::State;
use crate::error::close_code::GOING_AWAY;
use crate::service::Service;

/// The sysctl that lets a closing listener pass its queue to a sibling.
const MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// A listening socket for `addr` with a `backlog`-deep accept queue (the
/// standard library's 128 overflows under connection bursts). With
/// `reuse_port`, several event loops or processes can each bind one and the
/// kernel spreads connections between them.
pub fn listener(
    addr: SocketAddr,
    reuse_port: bool,
    backlog: i32,
) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// With `reuse_port`, warn once at start-up if a stop would reset the
/// connections queued on this process's listeners instead of passing them
/// to a sibling.
pub(crate) fn check_migration(config: &Config) {
    if !config.reuse_port {
        return;
    }
    match std::fs::read_to_string(MIGRATE_REQ) {
        Ok(v) if v.trim() == "1" => {}
        Ok(v) => log::warn!(
            "{MIGRATE_REQ} is {}: connections queued when this instance stops are reset \
             instead of handed to another instance (sysctl -w net.ipv4.tcp_migrate_req=1)",
            v.trim()
        ),
        Err(e) => log::warn!(
            "cannot read {MIGRATE_REQ} ({e}; it needs Linux 5.14+): connections queued \
             when this instance stops may be reset instead of handed to another instance"
        ),
    }
}

impl<S: Service> Server<S> {
    /// Take in what the accept queues hold, then close the listeners (see
    /// the module documentation).
    pub(super) fn hand_over(&mut self) {
        // Connections keep arriving while the queue is emptied: bound the
        // work, what is left then moves with the close (or is reset).
        let most = (self.config.listen_backlog.max(0) as usize).saturating_mul(2) + 256;
        let room = self.config.max_connections.saturating_sub(self.conns.len());
        let mut accepted: Vec<TcpStream> = Vec::new();
        #[cfg(feature = "uring")]
        if let Some(u) = &mut self.uring {
            // Accepting from here on is this function's alone.
            let taken = u.cancel_accepts(self.listeners.len());
            accepted.extend(taken.into_iter().map(TcpStream::from_std));
        }
        let mut tries = 0;
        for (listener, _) in &mut self.listeners {
            while accepted.len() < room && tries < most {
                tries += 1;
                match listener.accept() {
                    Ok((stream, _)) => accepted.push(stream),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if is_out_of_descriptors(&e) => {
                        log::warn!("accept while handing over: {e}");
                        break;
                    }
                    Err(e) => log::debug!("accept: {e}"),
                }
            }
        }
        let taken = accepted.len();
        for stream in accepted {
            self.add(stream);
        }
        for (mut listener, _) in self.listeners.drain(..) {
            if self.uring.is_some() {
                continue;
            }
            if let Err(e) = self.poll.registry().deregister(&mut listener) {
                log::debug!("deregister listener: {e}");
            }
        }
        log::info!("handing over: took {taken} queued connections, closed the listeners");
    }

    /// Close with 1001 every connection of `awaiting_upgrade` that has been
    /// upgraded since; forget those that ended without.
    pub(super) fn close_upgraded(&mut self) {
        let mut i = 0;
        while i < self.awaiting_upgrade.len() {
            let key = self.awaiting_upgrade[i];
            match self.conns.get(key).map(|e| e.session.core().state()) {
                Some(State::Handshake) => {
                    i += 1;
                    continue;
                }
                Some(State::Open) => {
                    let e = &mut self.conns[key];
                    let io = &mut super::io(&mut self.uring, key, &mut e.stream);
                    let p = e.session.close(io, &mut self.shared, GOING_AWAY);
                    self.schedule(key, p);
                }
                _ => {}
            }
            self.awaiting_upgrade.swap_remove(i);
        }
    }
}
