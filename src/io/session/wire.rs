//! One connection's way out for one pass: its socket and backlog, written
//! with `writev`, and the [`Sink`] through which a service's large sends
//! leave at once.
//!
//! Invariants: the backlog goes out first, and new output joins a `writev`
//! only when the whole backlog is in it, so bytes never leave out of order;
//! what the socket does not take is copied into the backlog, in order; a
//! short write clears `writable` until the next writable edge and, unless
//! output is already waiting, starts a drain window (`Session::clock`);
//! while one runs, every byte the socket takes is counted in the backlog;
//! the window ends (the clock stops) only when the backlog is empty; a
//! failed socket is remembered, and nothing more is written to it.

use std::io::{self, IoSlice};

use super::{Transport, BACKLOG_IOV};
use crate::buffer::{Backlog, Pool};
use crate::conn::Millis;
use crate::context::Sink;
use crate::metrics::Metrics;
use crate::output::{Output, MAX_SEGS};

/// One connection's way out: its socket and backlog, for one pass. Also
/// the [`Sink`] through which a service's large sends leave at once.
pub(super) struct Wire<'a, T> {
    io: &'a mut T,
    backlog: &'a mut Backlog,
    pool: &'a mut Pool,
    writable: &'a mut bool,
    /// The session's drain clock (see `Session::clock`).
    clock: &'a mut Millis,
    now: Millis,
    /// Bytes written, for the metrics.
    pub(super) wire_out: u64,
    /// The socket failed: nothing more goes out.
    failed: bool,
}

impl<'a, T: Transport> Wire<'a, T> {
    pub(super) fn new(
        io: &'a mut T,
        backlog: &'a mut Backlog,
        pool: &'a mut Pool,
        writable: &'a mut bool,
        clock: &'a mut Millis,
        now: Millis,
    ) -> Self {
        Wire {
            io,
            backlog,
            pool,
            writable,
            clock,
            now,
            wire_out: 0,
            failed: false,
        }
    }

    /// Add what went out to the loop's counters: wire bytes, and the
    /// messages and payload bytes the service sent.
    pub(super) fn account(&self, m: &mut Metrics, sent: crate::context::Sent) {
        m.wire_out += self.wire_out;
        m.messages_out += sent.messages;
        m.payload_out += sent.bytes;
        m.sends_dropped += sent.dropped;
    }

    /// Write the backlog, then `out` (over `input`), then `tail`, in one
    /// `writev`; keep what the socket does not take in the backlog.
    pub(super) fn send(&mut self, out: &Output, input: &[u8], tail: &[&[u8]]) -> Result<(), ()> {
        if self.failed {
            return Err(());
        }
        if out.is_empty() && tail.is_empty() && self.backlog.is_empty() {
            return Ok(());
        }
        let mut written = 0;
        if *self.writable {
            let mut iov =
                [IoSlice::new(&[]); MAX_SEGS + BACKLOG_IOV + crate::context::MAX_PARTS + 1];
            let mut n = self.backlog.io_slices(&mut iov[..BACKLOG_IOV]);
            // Only once the backlog fits entirely in this writev may new
            // output follow it, or bytes would go out of order.
            let backlog_whole =
                n < BACKLOG_IOV || self.backlog.len() <= iov[..n].iter().map(|s| s.len()).sum();
            if backlog_whole {
                n += out.io_slices(input, &mut iov[n..n + MAX_SEGS]);
                for t in tail.iter().filter(|t| !t.is_empty()) {
                    iov[n] = IoSlice::new(t);
                    n += 1;
                }
            }
            let total: usize = iov[..n].iter().map(|s| s.len()).sum();
            if total > 0 {
                loop {
                    match write_iov(&mut *self.io, &iov[..n]) {
                        Ok(k) => {
                            self.wire_out += k as u64;
                            written = k;
                            break;
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            self.failed = true;
                            return Err(());
                        }
                    }
                }
            }
            self.wrote(written, total);
        }
        let k = written.min(self.backlog.len());
        self.backlog.consume(k, self.pool);
        written -= k;
        let segs = out.segs().iter().map(|&seg| out.bytes(seg, input));
        for b in segs.chain(tail.iter().copied()) {
            if written >= b.len() {
                written -= b.len();
                continue;
            }
            let rest = &b[written..];
            written = 0;
            self.backlog.push(rest, self.pool);
        }
        self.write_backlog()
    }

    /// Write the backlog for as long as the socket takes it whole: a
    /// `writev` offers at most BACKLOG_IOV blocks, and a socket that took
    /// them all may take more with no writable edge to say so.
    pub(super) fn write_backlog(&mut self) -> Result<(), ()> {
        while *self.writable && !self.backlog.is_empty() {
            let mut iov = [IoSlice::new(&[]); BACKLOG_IOV];
            let n = self.backlog.io_slices(&mut iov);
            let total: usize = iov[..n].iter().map(|s| s.len()).sum();
            let written = loop {
                match write_iov(&mut *self.io, &iov[..n]) {
                    Ok(k) => {
                        self.wire_out += k as u64;
                        break k;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break 0,
                    Err(_) => {
                        self.failed = true;
                        return Err(());
                    }
                }
            };
            self.wrote(written, total);
            self.backlog.consume(written, self.pool);
        }
        // Every path that empties the backlog ends here (`send` finishes
        // with this loop): output no longer waits.
        if *self.clock != 0 && self.backlog.is_empty() {
            *self.clock = 0;
        }
        Ok(())
    }

    /// Account for a write of `written` of `total` bytes: while output
    /// waits, count what went out toward the drain rate; a short write
    /// means the socket is full until the next writable edge, and starts a
    /// drain window unless one is running. Progress alone does not restart
    /// the window: a peer must keep up the rate, not just move.
    fn wrote(&mut self, written: usize, total: usize) {
        if *self.clock != 0 {
            self.backlog.count_drained(written);
        }
        if written < total {
            *self.writable = false;
            if *self.clock == 0 {
                *self.clock = self.now;
                self.backlog.new_window();
            }
        }
    }
}

impl<T: Transport> Sink for Wire<'_, T> {
    fn unsent(&self) -> usize {
        self.backlog.len()
    }

    fn flush(&mut self, out: &mut Output, input: &[u8], tail: &[&[u8]]) {
        // A failure is remembered and ends the connection after the pass.
        let _ = self.send(out, input, tail);
        out.clear();
    }

    fn is_broken(&self) -> bool {
        self.failed
    }
}

/// One slice goes out with `send`, several with `writev`: the kernel's
/// `writev` first copies in and checks the vector, which a lone echo or
/// a lone pushed frame does not need.
#[inline]
fn write_iov<T: io::Write + ?Sized>(io: &mut T, iov: &[IoSlice<'_>]) -> io::Result<usize> {
    match iov {
        [one] => io.write(one),
        _ => io.write_vectored(iov),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records which call carried what.
    #[derive(Default)]
    struct Calls(Vec<(&'static str, Vec<u8>)>);

    impl io::Write for Calls {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push(("write", b.to_vec()));
            Ok(b.len())
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len();
            self.0.push(("writev", all));
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn one_slice_is_a_plain_write_several_a_writev() {
        let mut c = Calls::default();
        assert_eq!(write_iov(&mut c, &[IoSlice::new(b"echo")]).unwrap(), 4);
        let iov = [IoSlice::new(b"head"), IoSlice::new(b"body")];
        assert_eq!(write_iov(&mut c, &iov).unwrap(), 8);
        assert_eq!(
            c.0,
            vec![
                ("write", b"echo".to_vec()),
                ("writev", b"headbody".to_vec())
            ]
        );
    }
}
