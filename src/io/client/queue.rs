//! A connection's output queue: bytes written into it, taken out from the
//! front as the socket accepts them.
//!
//! `buf` is all initialized (zeroed once, when it grows), and `buf[start..
//! end]` is what waits for the socket. Room for a frame is handed out as a
//! slice to write into, so a payload generated in place is neither zeroed
//! first nor copied. The queue grows only when a frame does not fit after
//! the front has been reclaimed; a caller that bounds what it queues
//! reaches a fixed size and allocates no more.

/// Output waiting for the socket.
#[derive(Debug, Default)]
pub struct Queue {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Queue {
    /// A queue with `capacity` bytes of room.
    pub fn with_capacity(capacity: usize) -> Queue {
        Queue {
            buf: vec![0; capacity],
            start: 0,
            end: 0,
        }
    }

    /// What waits for the socket.
    pub fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The socket took `n` bytes from the front.
    pub fn taken(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
    }

    /// Make sure `n` more bytes fit without growing.
    pub fn reserve(&mut self, n: usize) {
        if self.end + n <= self.buf.len() {
            return;
        }
        // Reclaim the front first: moving what waits is cheaper than
        // growing, and bounded by what the caller lets wait.
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        if self.end + n > self.buf.len() {
            let want = (self.end + n).max(self.buf.len() * 2);
            self.buf.resize(want, 0);
        }
    }

    /// `n` bytes at the back, now part of what waits, for the caller to
    /// fill: they hold whatever was there before.
    pub fn push(&mut self, n: usize) -> &mut [u8] {
        self.reserve(n);
        let at = self.end;
        self.end += n;
        &mut self.buf[at..self.end]
    }

    /// Append `bytes`.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.push(bytes.len()).copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_is_reclaimed_before_growing() {
        let mut q = Queue::with_capacity(8);
        q.extend(b"abcdef");
        q.taken(4);
        assert_eq!(q.pending(), b"ef");
        // 6 more do not fit after the 6 written, but do once the 4 taken
        // are reclaimed: no growth.
        q.extend(b"ghijkl");
        assert_eq!(q.pending(), b"efghijkl");
        assert_eq!(q.buf.len(), 8);
        q.extend(b"m");
        assert_eq!(q.pending(), b"efghijklm");
        assert!(q.buf.len() >= 9);
        q.taken(9);
        assert!(q.is_empty());
        assert_eq!((q.start, q.end), (0, 0));
    }

    #[test]
    fn pushed_room_is_what_waits() {
        let mut q = Queue::default();
        q.push(3).copy_from_slice(b"xyz");
        q.extend(b"!");
        assert_eq!((q.pending(), q.len()), (&b"xyz!"[..], 4));
    }
}
