//! The io_uring turn: wait for completions and hand each to its
//! connection, as the epoll turn hands out readiness (see `io::uring`).

use std::io;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::{is_out_of_descriptors, Server, ACCEPT_BACKOFF};
use crate::conn::millis;
use crate::io::uring::Event;
use crate::service::Service;

impl<S: Service> Server<S> {
    /// Submit the turn's operations, wait up to `timeout`, and act on what
    /// completed. Returns when the turn began, and whether anything
    /// completed (a turn that only timed out is not counted as busy, as
    /// with epoll).
    pub(super) fn wait_completions(
        &mut self,
        timeout: Option<Duration>,
    ) -> io::Result<(Instant, bool)> {
        let conns = &self.conns;
        let u = self.uring.as_mut().expect("an io_uring loop");
        u.rearm(|k| conns.get(k).map(|e| e.stream.as_raw_fd()));
        u.expire(self.shared.now);
        u.wait(timeout)?;
        let mut list = std::mem::take(&mut u.handling);
        std::mem::swap(&mut list, &mut u.completions);
        let turn_start = self.begin_turn();
        let busy = !list.is_empty();
        for &c in &list {
            let Some(u) = self.uring.as_mut() else {
                break;
            };
            match u.event(c) {
                Event::None => {}
                Event::Readable { key, closed } => {
                    if closed {
                        if let Some(e) = self.conns.get_mut(key) {
                            e.session.set_read_closed();
                        }
                    }
                    self.conn_event(key, true, false);
                    if let Some(u) = self.uring.as_mut() {
                        u.after_receive();
                    }
                }
                Event::Sent { key, writable, fin } => {
                    if fin {
                        if let Some(e) = self.conns.get(key) {
                            let _ = e.stream.shutdown(std::net::Shutdown::Write);
                        }
                    }
                    if writable {
                        self.conn_event(key, false, true);
                    }
                }
                Event::Accept {
                    listener,
                    result,
                    more,
                } => self.accepted(listener, result, more),
                Event::Wake { more } => {
                    let mut events =
                        std::mem::replace(&mut u.wake_events, mio::Events::with_capacity(0));
                    let _ = self.poll.poll(&mut events, Some(Duration::ZERO));
                    let u = self.uring.as_mut().expect("an io_uring loop");
                    u.wake_events = events;
                    if !more {
                        u.arm_waker(self.poll.as_raw_fd())?;
                    }
                }
            }
        }
        list.clear();
        // Completions reaped meanwhile (see `finish_send`, `cancel_accepts`)
        // stay in `completions`, first in the next turn.
        let u = self.uring.as_mut().expect("an io_uring loop");
        u.handling = list;
        Ok((turn_start, busy))
    }

    fn accepted(&mut self, listener: usize, result: io::Result<std::net::TcpStream>, more: bool) {
        if !more {
            // Arm it again (after the pause, if there is one).
            if let Some(l) = self.listeners.get_mut(listener) {
                l.1 = true;
            }
        }
        match result {
            Ok(stream) => self.add(TcpStream::from_std(stream)),
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => {}
            Err(e) if is_out_of_descriptors(&e) => {
                log::warn!("accept: {e}; pausing accepts for {ACCEPT_BACKOFF:?}");
                self.accept_paused_until = Some(self.shared.now + millis(ACCEPT_BACKOFF));
            }
            Err(e) => log::debug!("accept: {e}"),
        }
    }
}
