//! One loop's io_uring instance and its receive buffers: the only `unsafe`
//! of the io_uring backend.
//!
//! Invariants:
//! * Receive buffers: `count` buffers of `size` bytes in one allocation,
//!   lent to the kernel through a registered buffer ring (group
//!   [`RECV_GROUP`]). A buffer is the kernel's from its publication in the
//!   ring until a completion names it; then it is ours, read through
//!   [`Ring::recv_data`], until [`Ring::recycle`] publishes it again. Both
//!   allocations live as long as the ring (dropped after it).
//! * Send buffers: the bytes given to [`Ring::send`] are read by the kernel
//!   until that operation completes; the caller keeps them where they are,
//!   unchanged, until its completion arrives (see `Sends` in `mod.rs`).
//! * Descriptors in queued entries: the kernel takes its own reference to a
//!   socket when it issues an entry, at the latest during the next submit;
//!   the caller closes a descriptor only after that (see
//!   `Uring::closing`).

use std::alloc::{self, Layout};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

/// The buffer group of the receive buffers.
const RECV_GROUP: u16 = 0;

/// One completion, copied out of the completion queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    pub user_data: u64,
    pub result: i32,
    pub flags: u32,
}

impl Completion {
    /// More completions follow from the same (multishot) request.
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The receive buffer this completion filled.
    pub fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

pub(super) struct Ring {
    uring: IoUring,
    /// The receive buffers, `count × size` bytes.
    bufs: *mut u8,
    /// The buffer ring shared with the kernel, `count` entries.
    entries: *mut types::BufRingEntry,
    count: u16,
    size: usize,
    /// Our tail of the buffer ring (published to the kernel by `recycle`).
    tail: u16,
}

// SAFETY: the raw pointers are to allocations this value owns alone; it is
// moved between threads whole (a loop is built on one thread and runs on
// another), never shared.
unsafe impl Send for Ring {}

impl Ring {
    /// A ring of `sq` submission entries and `count` receive buffers of
    /// `size` bytes (`count` a power of two).
    pub fn new(sq: u32, count: u16, size: usize) -> io::Result<Ring> {
        assert!(count.is_power_of_two() && size > 0 && size <= u32::MAX as usize);
        // Disabled until `enable`: a single issuer is the thread that
        // enables the ring, the loop's own, not the one that built it.
        let uring = IoUring::builder()
            .setup_r_disabled()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(sq * 4)
            .build(sq)?;
        let bufs_layout = Self::bufs_layout(count, size);
        let entries_layout = Self::entries_layout(count);
        // SAFETY: both layouts have a non-zero size (count ≥ 1, size ≥ 1).
        let (bufs, entries) = unsafe {
            (
                alloc::alloc(bufs_layout),
                alloc::alloc_zeroed(entries_layout) as *mut types::BufRingEntry,
            )
        };
        if bufs.is_null() || entries.is_null() {
            alloc::handle_alloc_error(bufs_layout);
        }
        let mut ring = Ring {
            uring,
            bufs,
            entries,
            count,
            size,
            tail: 0,
        };
        // SAFETY: the entries stay allocated and in place until the ring is
        // dropped, which unregisters them (by closing the ring) first.
        unsafe {
            ring.uring.submitter().register_buf_ring_with_flags(
                entries as u64,
                count,
                RECV_GROUP,
                0,
            )?;
        }
        for bid in 0..count {
            ring.recycle(bid);
        }
        Ok(ring)
    }

    /// Let this thread, and only it, submit from now on.
    pub fn enable(&mut self) -> io::Result<()> {
        self.uring.submitter().register_enable_rings()
    }

    fn bufs_layout(count: u16, size: usize) -> Layout {
        Layout::from_size_align(usize::from(count) * size, 64).expect("receive buffers")
    }

    fn entries_layout(count: u16) -> Layout {
        Layout::from_size_align(
            usize::from(count) * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .expect("buffer ring")
    }

    /// The first `len` bytes of receive buffer `bid`, which a completion has
    /// just handed back.
    pub fn recv_data(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.count && len <= self.size);
        // SAFETY: in bounds (checked above); the kernel no longer writes into
        // a buffer a completion handed back, until it is recycled, and
        // `recycle` takes `&mut self`, so not while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.bufs.add(usize::from(bid) * self.size), len) }
    }

    /// Give receive buffer `bid` back to the kernel.
    pub fn recycle(&mut self, bid: u16) {
        assert!(bid < self.count);
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot < count`; the kernel only reads entries between its
        // head and the published tail, and this slot is at the tail, not yet
        // published. The buffer lies within the allocation.
        unsafe {
            let e = &mut *self.entries.add(slot);
            e.set_addr(self.bufs.add(usize::from(bid) * self.size) as u64);
            e.set_len(self.size as u32);
            e.set_bid(bid);
        }
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field lies in the first entry, which is allocated,
        // aligned for a u16 and only ever read by the kernel.
        let tail =
            unsafe { AtomicU16::from_ptr(types::BufRingEntry::tail(self.entries) as *mut u16) };
        tail.store(self.tail, Ordering::Release);
    }

    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: every entry built here points only at memory that
            // outlives its operation (see the module invariants).
            if unsafe { self.uring.submission().push(&entry) }.is_ok() {
                return Ok(());
            }
            // The queue is full: hand it to the kernel and try again.
            self.uring.submit()?;
        }
    }

    /// Receive from `fd` into one of the receive buffers.
    pub fn recv(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let e = opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), 0)
            .buf_group(RECV_GROUP)
            .build()
            .flags(squeue::Flags::BUFFER_SELECT);
        self.push(e.user_data(user_data))
    }

    /// Send `data` on `fd`; `data` stays untouched until the completion.
    pub fn send(&mut self, fd: RawFd, data: &[u8], user_data: u64) -> io::Result<()> {
        let e = opcode::Send::new(types::Fd(fd), data.as_ptr(), data.len() as u32).build();
        self.push(e.user_data(user_data))
    }

    /// Accept on `fd` until cancelled or an error.
    pub fn accept(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let e = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build();
        self.push(e.user_data(user_data))
    }

    /// Report each time `fd` turns readable, until cancelled.
    pub fn poll_readable(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .multi(true)
            .build();
        self.push(e.user_data(user_data))
    }

    /// Cancel the operation submitted with `target`.
    pub fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()> {
        let e = opcode::AsyncCancel::new(target).build();
        self.push(e.user_data(user_data))
    }

    /// Cancel every operation on `fd`.
    pub fn cancel_fd(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let which = types::CancelBuilder::fd(types::Fd(fd)).all();
        let e = opcode::AsyncCancel2::new(which).build();
        self.push(e.user_data(user_data))
    }

    /// Cancel the operation submitted with `target` and wait until it is:
    /// completions it posted before are in the completion queue.
    pub fn cancel_now(&mut self, target: u64) -> io::Result<()> {
        let timeout = types::Timespec::from(Duration::from_secs(1));
        let which = types::CancelBuilder::user_data(target);
        match self
            .uring
            .submitter()
            .register_sync_cancel(Some(timeout), which)
        {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r,
        }
    }

    /// Entries queued and not yet submitted.
    pub fn queued(&mut self) -> usize {
        self.uring.submission().len()
    }

    /// Submit what is queued; wait up to `timeout` (forever: `None`) for a
    /// completion if none is there yet.
    pub fn submit_and_wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let r = match timeout {
            None => self.uring.submit_and_wait(1),
            Some(t) => {
                let ts = types::Timespec::from(t);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(1, &args)
            }
        };
        match r {
            Ok(_) => Ok(()),
            // Timed out, interrupted, or completions waiting to be reaped.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Submit what is queued without waiting.
    pub fn submit(&mut self) -> io::Result<()> {
        self.uring.submit().map(drop)
    }

    /// Move the completions that are in onto `out`.
    pub fn completions(&mut self, out: &mut Vec<Completion>) {
        out.extend(self.uring.completion().map(|c| Completion {
            user_data: c.user_data(),
            result: c.result(),
            flags: c.flags(),
        }));
    }
}

/// The socket an accept completion created.
pub(super) fn accepted(result: i32) -> io::Result<std::net::TcpStream> {
    use std::os::fd::FromRawFd;
    if result < 0 {
        return Err(io::Error::from_raw_os_error(-result));
    }
    // SAFETY: a successful accept's result is a new descriptor, opened for
    // this completion and owned by nothing else.
    Ok(unsafe { std::net::TcpStream::from_raw_fd(result) })
}

impl Drop for Ring {
    fn drop(&mut self) {
        // Cancel every operation and wait for it, so that no receive or send
        // touches the buffers past this point.
        let any = types::CancelBuilder::any();
        if let Err(e) = self.uring.submitter().register_sync_cancel(None, any) {
            if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EBADFD)) {
                log::debug!("io_uring cancel at exit: {e}");
            }
        }
        let _ = self.uring.submitter().unregister_buf_ring(RECV_GROUP);
        // SAFETY: allocated in `new` with these layouts; the kernel no longer
        // uses them once the group is unregistered (and the ring, dropped
        // after this, holds no reference to them).
        unsafe {
            alloc::dealloc(self.bufs, Self::bufs_layout(self.count, self.size));
            alloc::dealloc(self.entries as *mut u8, Self::entries_layout(self.count));
        }
    }
}
