//! Which backend moves a loop's bytes (epoll readiness through mio, or
//! io_uring completions), and the transport a session is handed for one
//! call: the socket itself with epoll, the connection's io_uring state
//! with io_uring.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::str::FromStr;

use mio::net::TcpStream;

use crate::session::Transport;

#[cfg(feature = "uring")]
pub(crate) use crate::io::uring::{Uring, UringIo};

/// Without io_uring support built in, no loop ever has one.
#[cfg(not(feature = "uring"))]
pub(crate) enum Uring {}

/// How an event loop waits for and moves bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// Readiness through epoll (mio), one `recv` and one `send` per
    /// message: the default.
    #[default]
    Epoll,
    /// Completions through io_uring (Linux 6.1+, cargo feature `uring`):
    /// multishot accept and receive, and every send of a turn submitted
    /// with the turn's one `io_uring_enter`. Falls back to epoll, with one
    /// log line, where a ring cannot be set up.
    Uring,
}

impl Backend {
    /// The backend the environment variable `ZEROWS_IO` names (`epoll` or
    /// `uring`), so that a deployment or a whole test suite can switch
    /// without code; epoll when it is unset or invalid.
    pub fn from_env() -> Backend {
        match std::env::var("ZEROWS_IO") {
            Ok(v) => v.parse().unwrap_or_else(|e| {
                log::warn!("ZEROWS_IO: {e}; using epoll");
                Backend::Epoll
            }),
            Err(_) => Backend::Epoll,
        }
    }

    /// The backend a loop gets when this one is asked for: io_uring where a
    /// ring can be set up, else epoll (saying why once per process).
    pub fn effective(self) -> Backend {
        if self == Backend::Epoll {
            return Backend::Epoll;
        }
        static SAID: std::sync::Once = std::sync::Once::new();
        match uring_available() {
            Ok(()) => Backend::Uring,
            Err(why) => {
                SAID.call_once(|| log::warn!("{why}: serving with epoll"));
                Backend::Epoll
            }
        }
    }
}

#[cfg(feature = "uring")]
fn uring_available() -> Result<(), String> {
    crate::io::uring::available()
}

#[cfg(not(feature = "uring"))]
fn uring_available() -> Result<(), String> {
    Err("built without io_uring support (cargo feature `uring`)".into())
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "epoll" => Ok(Backend::Epoll),
            "uring" | "io_uring" => Ok(Backend::Uring),
            _ => Err(format!("unknown I/O backend {s:?} (epoll or uring)")),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Epoll => "epoll",
            Backend::Uring => "uring",
        })
    }
}

/// A connection's transport for one call into its session.
pub(crate) enum Io<'a> {
    Epoll(&'a mut TcpStream),
    #[cfg(feature = "uring")]
    Uring(UringIo<'a>),
}

/// The transport of connection `key`: its socket, or its io_uring state.
pub(crate) fn io<'a>(
    uring: &'a mut Option<Box<Uring>>,
    key: usize,
    stream: &'a mut TcpStream,
) -> Io<'a> {
    match uring {
        None => Io::Epoll(stream),
        #[cfg(feature = "uring")]
        Some(u) => Io::Uring(u.io(key, stream)),
        #[cfg(not(feature = "uring"))]
        Some(u) => {
            let _ = key;
            match **u {}
        }
    }
}

impl Read for Io<'_> {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Io::Epoll(s) => s.read(buf),
            #[cfg(feature = "uring")]
            Io::Uring(u) => u.read(buf),
        }
    }
}

impl Write for Io<'_> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Io::Epoll(s) => s.write(buf),
            #[cfg(feature = "uring")]
            Io::Uring(u) => u.write(buf),
        }
    }

    #[inline]
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Io::Epoll(s) => s.write_vectored(bufs),
            #[cfg(feature = "uring")]
            Io::Uring(u) => u.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Io<'_> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Io::Epoll(s) => s.shutdown_write(),
            #[cfg(feature = "uring")]
            Io::Uring(u) => u.shutdown_write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn names_parse_and_print() {
        for b in [Backend::Epoll, Backend::Uring] {
            assert_eq!(b.to_string().parse::<Backend>(), Ok(b));
        }
        assert_eq!("io_uring".parse::<Backend>(), Ok(Backend::Uring));
        assert!("kqueue".parse::<Backend>().is_err());
        assert_eq!(Backend::Epoll.effective(), Backend::Epoll);
    }
}
