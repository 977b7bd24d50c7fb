//! The compression state one event loop lends its connections.
//!
//! Invariants: inflaters (15-bit window, enough for any client) are lent
//! for one compressed message, kept here by connection id while lent (so a
//! connection pays nothing for them while idle), and come back reset; at
//! most `max_idle` wait in the pool. A client that keeps its context keeps
//! its inflater under its id, between messages, for the connection's life. Compressors are made on first use, one per window size,
//! and reset before every message, since the server never keeps context
//! (it always answers `server_no_context_takeover`). `scratch` and `packed`
//! are taken out while in use and put back, so a callback that sends while
//! a message is being inflated finds them free.

use std::collections::HashMap;

use flate2::{Compress, Compression, FlushCompress};

use super::inflate::{Inflater, TAIL};
use super::DeflateConfig;

/// Inflated bytes handed on per step.
pub const INFLATE_STEP: usize = 16 << 10;

/// Inflated bytes one pass of the core makes before the chunks after it
/// wait for the next pass (about 0.4 ms of zlib-rs), so that a connection
/// sending bombs cannot hold its loop.
pub const PASS_BUDGET: u64 = 256 << 10;

/// One loop's compressors, pooled inflaters and scratch space.
pub struct Codec {
    /// zlib level of what the server compresses.
    level: u32,
    /// Payloads shorter than this go uncompressed.
    threshold: usize,
    // Boxed: an inflater moves between the pool and `lent` by pointer.
    #[allow(clippy::vec_box)]
    idle: Vec<Box<Inflater>>,
    max_idle: usize,
    /// Inflaters in use, by connection id.
    lent: HashMap<u64, Box<Inflater>>,
    /// By window bits 9..=15 (a request for 8 compresses with 9, which
    /// zlib never lets reach past 250 bytes back).
    compressors: [Option<Box<Compress>>; 7],
    /// Inflated output, one step at a time.
    pub(crate) scratch: Vec<u8>,
    /// A compressed payload on its way out.
    pub(crate) packed: Vec<u8>,
    /// Inflated bytes this pass, against `budget`.
    spent: u64,
    budget: u64,
    /// A chunk was left for the next pass because the budget ran out.
    yielded: bool,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("level", &self.level)
            .field("idle", &self.idle.len())
            .field("lent", &self.lent.len())
            .finish()
    }
}

impl Default for Codec {
    fn default() -> Self {
        Codec::new(&DeflateConfig::default(), 64)
    }
}

impl Codec {
    /// Nothing is allocated until a compressed message comes or goes.
    pub fn new(cfg: &DeflateConfig, max_idle: usize) -> Codec {
        Codec {
            level: cfg.level,
            threshold: cfg.threshold,
            idle: Vec::new(),
            max_idle,
            lent: HashMap::new(),
            compressors: Default::default(),
            scratch: Vec::new(),
            packed: Vec::new(),
            spent: 0,
            budget: PASS_BUDGET,
            yielded: false,
        }
    }

    /// The same, with another inflate budget per pass (tests).
    pub fn with_budget(mut self, budget: u64) -> Codec {
        self.budget = budget;
        self
    }

    /// A pass of the core begins: its inflate budget is whole again.
    #[inline]
    pub fn new_pass(&mut self) {
        self.spent = 0;
    }

    /// Whether this pass has used its inflate budget; if so, the caller
    /// leaves its chunk for the next pass, and [`take_yielded`]
    /// (Self::take_yielded) says so.
    pub fn spent_pass(&mut self) -> bool {
        let spent = self.spent >= self.budget;
        self.yielded |= spent;
        spent
    }

    /// Count `n` inflated bytes against this pass's budget.
    pub fn spend(&mut self, n: usize) {
        self.spent += n as u64;
    }

    /// Whether a chunk was left for the next pass since last asked: the
    /// caller must run the core again, even with no new input.
    pub fn take_yielded(&mut self) -> bool {
        std::mem::take(&mut self.yielded)
    }

    /// Inflaters lent out now.
    pub fn lent(&self) -> usize {
        self.lent.len()
    }

    /// A compressed message begins on connection `id`: lend it an
    /// inflater, unless it keeps one (its client keeps its context).
    pub fn begin(&mut self, id: u64) {
        if !self.lent.contains_key(&id) {
            let inf = self.lend();
            self.lent.insert(id, inf);
        }
        if let Some(inf) = self.lent.get_mut(&id) {
            inf.begin();
        }
    }

    /// An inflater from the pool (or a new one), for a caller that keeps
    /// it itself; give it back with [`give_back`](Self::give_back).
    pub fn lend(&mut self) -> Box<Inflater> {
        self.idle.pop().unwrap_or_default()
    }

    /// An inflater lent or taken comes back to the pool, reset (dropped
    /// if the pool is full).
    pub fn give_back(&mut self, mut inf: Box<Inflater>) {
        if self.idle.len() < self.max_idle {
            inf.end(false);
            self.idle.push(inf);
        }
    }

    /// Take connection `id`'s inflater out while it inflates (put it back
    /// with [`put`](Self::put)).
    pub fn take(&mut self, id: u64) -> Option<Box<Inflater>> {
        self.lent.remove(&id)
    }

    /// Put an inflater taken with [`take`](Self::take) back.
    pub fn put(&mut self, id: u64, inf: Box<Inflater>) {
        self.lent.insert(id, inf);
    }

    /// Connection `id`'s compressed message is over: its inflater goes
    /// back to the pool, or stays with it (at the message boundary) when
    /// `keep_context`.
    pub fn end(&mut self, id: u64, keep_context: bool) {
        if keep_context {
            if let Some(i) = self.lent.get_mut(&id) {
                i.end(true);
                return;
            }
        }
        self.release(id);
    }

    /// Connection `id` is gone (or failed): take back whatever it holds.
    pub fn release(&mut self, id: u64) {
        if let Some(inf) = self.lent.remove(&id) {
            self.give_back(inf);
        }
    }

    /// The scratch buffer for inflated output, taken out for the duration
    /// of one chunk (give it back with [`put_scratch`](Self::put_scratch)).
    pub fn take_scratch(&mut self) -> Vec<u8> {
        let mut v = std::mem::take(&mut self.scratch);
        if v.len() < INFLATE_STEP {
            v.resize(INFLATE_STEP, 0);
        }
        v
    }

    /// Give the scratch buffer back.
    pub fn put_scratch(&mut self, v: Vec<u8>) {
        self.scratch = v;
    }

    /// Whether a payload of `len` bytes is worth compressing.
    #[inline]
    pub fn worth(&self, len: usize) -> bool {
        len >= self.threshold
    }

    /// Compress `parts` as one message for a client whose inflater has
    /// `2^window` bytes (9..=15: [`Terms::compress_window`](super::Terms::compress_window)), into `out` (cleared first), without the tail
    /// (RFC 7692 §7.2.1). Returns false, leaving `out` unspecified, when
    /// the result is no smaller than the input: send it uncompressed.
    pub fn compress(&mut self, parts: &[&[u8]], window: u8, out: &mut Vec<u8>) -> bool {
        self.deflate(parts, window, out, true)
    }

    /// [`compress`](Self::compress), finished even when the result is
    /// longer than the input (what is sent compressed whatever its size).
    pub fn compress_any(&mut self, parts: &[&[u8]], window: u8, out: &mut Vec<u8>) {
        self.deflate(parts, window, out, false);
    }

    fn deflate(&mut self, parts: &[&[u8]], window: u8, out: &mut Vec<u8>, give_up: bool) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        debug_assert!((9..=15).contains(&window), "see Terms::compress_window");
        let bits = window.clamp(9, 15);
        let level = self.level;
        let z = self.compressors[usize::from(bits - 9)].get_or_insert_with(|| {
            Box::new(Compress::new_with_window_bits(
                Compression::new(level),
                false,
                bits,
            ))
        });
        z.reset();
        out.clear();
        // zlib's bound for raw deflate, plus the sync flush's empty block.
        out.reserve(len + (len >> 12) + (len >> 14) + 32);
        let last = parts.len().saturating_sub(1);
        for (i, p) in parts.iter().enumerate() {
            let flush = if i == last {
                FlushCompress::Sync
            } else {
                FlushCompress::None
            };
            let mut rest: &[u8] = p;
            loop {
                if out.capacity() - out.len() < 64 {
                    out.reserve(out.capacity().max(1024));
                }
                let before = z.total_in();
                let st = z.compress_vec(rest, out, flush);
                debug_assert!(st.is_ok(), "compressing cannot fail: {st:?}");
                rest = &rest[(z.total_in() - before) as usize..];
                // Finished once the input is in and the flush left room
                // unused (a full output may have more behind it).
                if rest.is_empty() && out.capacity() - out.len() >= 64 {
                    break;
                }
            }
            if give_up && out.len() >= len + TAIL.len() {
                return false;
            }
        }
        debug_assert!(out.ends_with(&TAIL), "a sync flush ends with the tail");
        out.truncate(out.len() - TAIL.len());
        out.len() < len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(payload: &[u8]) -> Vec<u8> {
        let mut inf = Inflater::new();
        inf.begin();
        let mut out = Vec::new();
        let mut scratch = vec![0; 1000];
        inf.inflate::<()>(payload, true, false, u64::MAX, &mut scratch, |p| {
            out.extend_from_slice(p);
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn compress_round_trips_through_an_inflater() {
        let mut c = Codec::default();
        let text: Vec<u8> = (0..5000)
            .flat_map(|i| format!("{{\"id\":{i},\"ok\":true}},").into_bytes())
            .collect();
        let mut out = Vec::new();
        for window in 9..=15 {
            assert!(c.compress(&[&text], window, &mut out));
            assert!(
                out.len() < text.len() / 4,
                "{} of {}",
                out.len(),
                text.len()
            );
            assert_eq!(inflate_all(&out), text);
        }
        // In parts, the same message.
        assert!(c.compress(&[&text[..7], &text[7..3000], &text[3000..]], 15, &mut out));
        assert_eq!(inflate_all(&out), text);
    }

    #[test]
    fn incompressible_payloads_are_refused() {
        let mut c = Codec::default();
        let mut x = 0x2545F4914F6CDD1Du64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut out = Vec::new();
        assert!(!c.compress(&[&noise], 15, &mut out));
        // Unless it must go compressed anyway.
        c.compress_any(&[&noise], 15, &mut out);
        assert!(out.len() > noise.len());
        assert_eq!(inflate_all(&out), noise);
        c.compress_any(&[b"hi"], 9, &mut out);
        assert_eq!(inflate_all(&out), b"hi");
    }

    #[test]
    fn inflaters_are_lent_by_id_and_pooled() {
        let mut c = Codec::new(&DeflateConfig::default(), 1);
        c.begin(1);
        c.begin(2);
        assert_eq!(c.lent(), 2);
        c.end(1, false);
        c.release(2);
        assert_eq!((c.lent(), c.idle.len()), (0, 1), "one kept idle at most");
        c.begin(3);
        c.end(3, true);
        assert_eq!(c.lent(), 1, "kept between messages");
        assert!(c.take(3).is_some_and(|i| !i.is_active()));
    }
}
