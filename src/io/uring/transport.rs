//! A connection's socket as its session sees it under io_uring: reads take
//! the receive completion being handed out (or the input left from an
//! earlier one), writes queue a send (see the module invariants in
//! `mod.rs`).

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::AsRawFd;

use mio::net::TcpStream;

use super::state::*;
use super::{user_data, Send, Uring, OP_SEND, SMALL_SEND};
use crate::session::Transport;

/// One connection's socket, for one call into its session.
pub(crate) struct UringIo<'a> {
    u: &'a mut Uring,
    key: usize,
    stream: &'a TcpStream,
}

impl<'a> UringIo<'a> {
    pub(super) fn new(u: &'a mut Uring, key: usize, stream: &'a TcpStream) -> Self {
        UringIo { u, key, stream }
    }
}

impl Read for UringIo<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let u = &mut *self.u;
        let st = u.state[self.key];
        if st.has(OVERFLOW) {
            let o = u.overflows.get_mut(&(self.key as u32)).expect("overflow");
            let mut iov = [IoSlice::new(&[]); 8];
            let k = o.io_slices(&mut iov);
            let n = copy_from(&iov[..k], 0, buf);
            o.consume(n, &mut u.blocks);
            if o.is_empty() {
                u.free_overflow(self.key);
                if !st.has(ARMED | EOF | FAILED) {
                    u.rearm.push((self.key, st.gen()));
                }
            }
            return Ok(n);
        }
        if let Some(cur) = u.current.as_mut().filter(|c| c.key == self.key) {
            let data = &u.ring.recv_data(cur.bid, cur.len)[cur.read..];
            let n = buf.len().min(data.len());
            buf[..n].copy_from_slice(&data[..n]);
            cur.read += n;
            if n > 0 {
                return Ok(n);
            }
        }
        if st.has(EOF) {
            Ok(0)
        } else if st.has(FAILED) {
            Err(io::ErrorKind::ConnectionReset.into())
        } else {
            Err(io::ErrorKind::WouldBlock.into())
        }
    }
}

impl Write for UringIo<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let u = &mut *self.u;
        let key = self.key;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut written = 0;
        // One buffer at a time, for as long as the kernel takes each at once
        // (as a socket buffer would): a short write means the socket is full.
        while written < total {
            if u.state[key].has(SENDING) && !u.finish_send(key) {
                break;
            }
            if u.state[key].has(FAILED) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            let mut buf = if total - written <= SMALL_SEND {
                u.small.take()
            } else {
                u.large.take()
            };
            let n = copy_from(bufs, written, &mut buf);
            let fd = self.stream.as_raw_fd();
            let slot = u.sends.insert(Send {
                buf,
                len: n as u32,
                sent: 0,
                key: key as u32,
                gen: u.state[key].gen(),
                fd,
            });
            let data = &u.sends[slot].buf[..n];
            if let Err(e) = u.ring.send(fd, data, user_data(OP_SEND, 0, slot)) {
                let s = u.sends.remove(slot);
                u.give_send(s.buf);
                return Err(e);
            }
            u.state[key].set(SENDING | QUEUED);
            u.queued.push(key);
            written += n;
        }
        if u.state[key].has(FAILED) {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        if written < total {
            u.state[key].set(OWED);
            if written == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Copy the bytes of `bufs` from offset `skip` on into `to`, as many as
/// fit; how many.
fn copy_from(bufs: &[IoSlice<'_>], mut skip: usize, to: &mut [u8]) -> usize {
    let mut n = 0;
    for b in bufs {
        if skip >= b.len() {
            skip -= b.len();
            continue;
        }
        let from = &b[skip..];
        skip = 0;
        let k = from.len().min(to.len() - n);
        to[n..n + k].copy_from_slice(&from[..k]);
        n += k;
        if n == to.len() {
            break;
        }
    }
    n
}

impl Transport for UringIo<'_> {
    fn shutdown_write(&mut self) -> io::Result<()> {
        let st = &mut self.u.state[self.key];
        if st.has(SENDING) {
            st.set(FIN);
            return Ok(());
        }
        self.stream.shutdown(std::net::Shutdown::Write)
    }
}

#[cfg(test)]
mod tests {
    use super::copy_from;
    use std::io::IoSlice;

    #[test]
    fn copies_across_slices_from_any_offset() {
        let parts = [
            IoSlice::new(b"abc"),
            IoSlice::new(b""),
            IoSlice::new(b"defgh"),
        ];
        for skip in 0..=8 {
            for room in 0..=9 {
                let mut to = vec![0; room];
                let n = copy_from(&parts, skip, &mut to);
                let want = &b"abcdefgh"[skip..(skip + room).min(8)];
                assert_eq!(&to[..n], want, "skip {skip} room {room}");
            }
        }
    }
}
