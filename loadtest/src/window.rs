//! Tracking of the messages a connection has in flight.
//!
//! Invariants: sequence numbers are issued consecutively from 0; at most
//! `capacity` sequence numbers lie between the oldest unanswered one and the
//! next to send, and there are at least that many slots (a power of two, so
//! that finding one takes a mask, not a division: this runs several times
//! per message), so `seq & mask` names a slot without collision. A slot
//! holds the send time (plus one, so that 0 means "not outstanding"). Each
//! echo is classified once: in order, reordered (it arrived after a later
//! one), or unexpected (never sent, or answered already). What is still
//! outstanding at the end is lost if a later message was answered, else
//! unanswered. The slots are allocated once, with the connection.

/// The echo of a message that was outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answered {
    /// When it was sent (or due to be sent), ns since the run's epoch.
    pub sent_at: u64,
    /// It arrived after a message sent later than it.
    pub reordered: bool,
}

#[derive(Debug)]
pub struct Window {
    slots: Box<[u64]>,
    /// `slots.len() - 1`.
    mask: u64,
    /// Messages in flight at most.
    capacity: u64,
    next: u64,
    oldest: u64,
    outstanding: u64,
    /// One past the highest sequence answered so far.
    high: u64,
}

impl Window {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let slots = capacity.next_power_of_two();
        Window {
            slots: vec![0; slots].into_boxed_slice(),
            mask: slots as u64 - 1,
            capacity: capacity as u64,
            next: 0,
            oldest: 0,
            outstanding: 0,
            high: 0,
        }
    }

    /// Whether another message may be sent without reusing a live slot.
    #[inline]
    pub fn has_room(&self) -> bool {
        self.next - self.oldest < self.capacity
    }

    #[inline]
    pub fn outstanding(&self) -> u64 {
        self.outstanding
    }

    /// The sequence number the next `send` will return.
    #[inline]
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Record a send at `at` (ns); returns its sequence number.
    #[inline]
    pub fn send(&mut self, at: u64) -> u64 {
        debug_assert!(self.has_room());
        let seq = self.next;
        self.slots[(seq & self.mask) as usize] = at + 1;
        self.next += 1;
        self.outstanding += 1;
        seq
    }

    /// Record the echo of `seq`; `None` if it was not outstanding.
    #[inline]
    pub fn answer(&mut self, seq: u64) -> Option<Answered> {
        if seq < self.oldest || seq >= self.next {
            return None;
        }
        let slot = &mut self.slots[(seq & self.mask) as usize];
        if *slot == 0 {
            return None;
        }
        let sent_at = *slot - 1;
        *slot = 0;
        self.outstanding -= 1;
        let reordered = seq < self.high;
        self.high = self.high.max(seq + 1);
        while self.oldest < self.next && self.slots[(self.oldest & self.mask) as usize] == 0 {
            self.oldest += 1;
        }
        Some(Answered { sent_at, reordered })
    }

    /// (lost, unanswered) among the messages still outstanding.
    pub fn tally(&self) -> (u64, u64) {
        let (mut lost, mut unanswered) = (0, 0);
        for seq in self.oldest..self.next {
            if self.slots[(seq & self.mask) as usize] != 0 {
                if seq < self.high {
                    lost += 1;
                } else {
                    unanswered += 1;
                }
            }
        }
        (lost, unanswered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order() {
        let mut w = Window::new(4);
        for i in 0..10 {
            let s = w.send(i * 10);
            assert_eq!(s, i);
            let a = w.answer(s).unwrap();
            assert_eq!(a.sent_at, i * 10);
            assert!(!a.reordered);
        }
        assert_eq!(w.tally(), (0, 0));
    }

    #[test]
    fn window_limits_span() {
        let mut w = Window::new(3);
        for _ in 0..3 {
            w.send(1);
        }
        assert!(!w.has_room());
        // Answering a later one does not free the oldest slot's span.
        assert!(w.answer(2).is_some());
        assert!(!w.has_room());
        assert!(w.answer(0).unwrap().reordered);
        assert!(w.has_room());
    }

    #[test]
    fn detects_reorder() {
        let mut w = Window::new(8);
        for _ in 0..3 {
            w.send(0);
        }
        assert!(!w.answer(1).unwrap().reordered);
        assert!(w.answer(0).unwrap().reordered);
        assert!(!w.answer(2).unwrap().reordered);
        assert_eq!(w.tally(), (0, 0));
    }

    #[test]
    fn detects_loss_and_unanswered() {
        let mut w = Window::new(8);
        for _ in 0..5 {
            w.send(0);
        }
        w.answer(0);
        w.answer(2); // 1 skipped
        w.answer(3);
        // 1 is lost (3 came back after it), 4 is merely unanswered.
        assert_eq!(w.tally(), (1, 1));
    }

    #[test]
    fn detects_duplicates_and_strangers() {
        let mut w = Window::new(8);
        w.send(0);
        w.send(0);
        assert!(w.answer(1).is_some());
        assert!(w.answer(1).is_none(), "duplicate");
        assert!(w.answer(7).is_none(), "never sent");
        assert!(w.answer(0).is_some());
        assert!(w.answer(0).is_none(), "below the window");
    }
}
