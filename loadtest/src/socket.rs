//! Opening client sockets, spread over loopback source addresses.
//!
//! Invariants: sockets are non-blocking with Nagle off before connect; the
//! connect is only started here (EINPROGRESS is success) and completes in the
//! event loop. Source addresses are only chosen inside 127.0.0.0/8 and only
//! for an IPv4 loopback target, so the (source, destination) pairs multiply
//! the ~28k ephemeral ports of one pair without ever leaving the machine.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};

/// How many source addresses (127.0.0.1 ..= 127.0.0.254) connections rotate over.
const SOURCES: u32 = 254;

/// The source address for connection `id`, if spreading applies.
pub fn source_for(id: u32, target: SocketAddr, spread: bool) -> Option<IpAddr> {
    match target.ip() {
        IpAddr::V4(v4) if spread && v4.is_loopback() => Some(IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (id % SOURCES) as u8,
        ))),
        _ => None,
    }
}

/// Start a non-blocking connect to `addr` from `source` (if any).
pub fn connect(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<mio::net::TcpStream> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_nonblocking(true)?;
    if let Some(src) = source {
        // Let connect() pick the port for the full 4-tuple instead of
        // reserving one per source address at bind time.
        let one: libc::c_int = 1;
        // SAFETY: a valid socket descriptor and a pointer to a live c_int of
        // the length given.
        unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&sock),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        sock.bind(&SocketAddr::new(src, 0).into())?;
    }
    match sock.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let stream = mio::net::TcpStream::from_std(std::net::TcpStream::from(sock));
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_stay_in_loopback() {
        let t: SocketAddr = "127.0.0.1:80".parse().unwrap();
        for id in [0u32, 1, 253, 254, 255, 100_000, u32::MAX] {
            let s = source_for(id, t, true).unwrap();
            assert!(s.is_loopback());
            assert_ne!(s, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)));
            assert_ne!(s, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 255)));
        }
        assert_eq!(source_for(1, t, false), None);
        assert_eq!(source_for(1, "[::1]:80".parse().unwrap(), true), None);
    }
}
