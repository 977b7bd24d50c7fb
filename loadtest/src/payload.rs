//! Self-describing, checkable message payloads.
//!
//! Invariants: a payload is entirely ASCII (no control character but 0x7F),
//! so the same bytes are valid as a text or a binary message; its first
//! [`HEADER`] bytes carry the connection id and the sequence number (one
//! nibble per byte, 0x40..=0x4F), the rest is a pattern that is a pure
//! function of (connection, sequence, offset): by default bytes 0x40..=0x7F
//! that barely compress, or with [`Pattern::Json`] JSON-like text that does
//! (see `json`). So an echo can be checked with no copy of what was sent: a
//! flipped byte, a payload from another connection or another sequence
//! number, or a truncated one is always caught. Filling and checking work a
//! word at a time and allocate nothing; the pattern is chosen once per
//! message (or per piece of an echo), never per byte.

use crate::rng::splitmix;

mod json;
mod pattern;

pub use pattern::Pattern;

/// Bytes taken by the connection id (8 nibbles) and sequence (16 nibbles).
pub const HEADER: usize = 24;
/// The smallest payload that can carry the header.
pub const MIN_SIZE: usize = HEADER;

const NIBBLE_BASE: u8 = 0x40;
const WORD_MASK: u64 = 0x3F3F_3F3F_3F3F_3F3F;
const WORD_BASE: u64 = 0x4040_4040_4040_4040;

/// Why an echoed payload is not one we sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// Shorter than the header, or the header bytes are not nibbles.
    BadHeader,
    /// The header names another connection.
    WrongConnection(u32),
    /// The pattern differs from the first differing byte at this offset.
    Content(usize),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::BadHeader => write!(f, "payload header unreadable"),
            Mismatch::WrongConnection(c) => write!(f, "payload belongs to connection {c}"),
            Mismatch::Content(at) => write!(f, "payload differs at byte {at}"),
        }
    }
}

#[cfg(test)]
fn put_nibbles(out: &mut [u8], v: u64) {
    let n = out.len();
    for (i, b) in out.iter_mut().enumerate() {
        *b = NIBBLE_BASE | ((v >> (4 * (n - 1 - i))) & 0xF) as u8;
    }
}

/// The 8 nibble bytes of a 32-bit value (most significant first), as the
/// bytes of a little-endian word, built a word at a time: the inverse of
/// [`get_nibbles8`], and it runs for every message sent.
#[inline]
fn nibbles8(v: u32) -> u64 {
    // Spread each nibble into a byte of its own, doubling the gaps.
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    (x | u64::from_ne_bytes([NIBBLE_BASE; 8])).swap_bytes()
}

/// Read 8 nibble bytes (most significant first) as a 32-bit value, a word
/// at a time: this runs for every echo.
#[inline]
fn get_nibbles8(inp: &[u8]) -> Option<u64> {
    let w = u64::from_be_bytes(inp.try_into().ok()?);
    if w & 0xF0F0_F0F0_F0F0_F0F0 != 0x4040_4040_4040_4040 {
        return None;
    }
    // Pack the low nibbles of the 8 bytes together, halving the gaps.
    let mut v = w & 0x0F0F_0F0F_0F0F_0F0F;
    v = (v | (v >> 4)) & 0x00FF_00FF_00FF_00FF;
    v = (v | (v >> 8)) & 0x0000_FFFF_0000_FFFF;
    v = (v | (v >> 16)) & 0x0000_0000_FFFF_FFFF;
    Some(v)
}

#[inline]
fn get_nibbles(inp: &[u8]) -> Option<u64> {
    inp.chunks_exact(8)
        .try_fold(0u64, |acc, c| Some((acc << 32) | get_nibbles8(c)?))
}

/// The pattern's seed for one message.
#[inline]
fn seed(conn: u32, seq: u64) -> u64 {
    splitmix((u64::from(conn) << 40) ^ seq)
}

/// Added to the running value once per word: odd, so words at different
/// offsets of one message never repeat.
const STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// The pattern word covering payload bytes `HEADER + 8*i ..`.
#[inline(always)]
fn word(seed: u64, i: u64) -> u64 {
    mix(seed.wrapping_add(i.wrapping_mul(STEP)))
}

/// Shifts and masks only, and the loops below advance `x` by `STEP` as an
/// induction variable, so that filling and checking vectorise.
#[inline(always)]
fn mix(x: u64) -> u64 {
    ((x ^ (x >> 29)) & WORD_MASK) | WORD_BASE
}

/// The 4-byte mask key repeated over a word, as `to_le_bytes` lays it out:
/// payload words start at offsets that are multiples of 4, so byte `j` of a
/// word always meets key byte `j % 4`.
#[inline]
fn key_word(key: [u8; 4]) -> u64 {
    u64::from_le_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ])
}

/// The key that leaves a payload unmasked: the library masks what is
/// queued with `queue_with`.
pub const NO_MASK: [u8; 4] = [0; 4];

/// Write the header of message `seq` of connection `conn`, masked with
/// `key`; returns the key as a word, for the body.
#[inline(always)]
fn fill_header(out: &mut [u8], conn: u32, seq: u64, key: [u8; 4]) -> u64 {
    debug_assert!(out.len() >= MIN_SIZE);
    let k = key_word(key);
    let head = [
        nibbles8(conn),
        nibbles8((seq >> 32) as u32),
        nibbles8(seq as u32),
    ];
    for (c, w) in out[..HEADER].chunks_exact_mut(8).zip(head) {
        c.copy_from_slice(&(w ^ k).to_le_bytes());
    }
    k
}

/// Write the payload for message `seq` of connection `conn` into `out` in
/// the random pattern (its whole length is the payload; at least
/// [`MIN_SIZE`]), already masked with `key` (all zeros: unmasked). One
/// pass, no copy.
pub fn fill(out: &mut [u8], conn: u32, seq: u64, key: [u8; 4]) {
    let k = fill_header(out, conn, seq, key);
    let s = seed(conn, seq);
    let mut chunks = out[HEADER..].chunks_exact_mut(8);
    let mut x = s;
    for c in &mut chunks {
        c.copy_from_slice(&(mix(x) ^ k).to_le_bytes());
        x = x.wrapping_add(STEP);
    }
    let rest = chunks.into_remainder();
    let w = (mix(x) ^ k).to_le_bytes();
    for (b, w) in rest.iter_mut().zip(w) {
        *b = w;
    }
}

/// Read the sequence number of a payload that claims to belong to `conn`.
#[inline]
pub fn sequence(payload: &[u8], conn: u32) -> Result<u64, Mismatch> {
    if payload.len() < HEADER {
        return Err(Mismatch::BadHeader);
    }
    let c = get_nibbles(&payload[0..8]).ok_or(Mismatch::BadHeader)? as u32;
    if c != conn {
        return Err(Mismatch::WrongConnection(c));
    }
    get_nibbles(&payload[8..HEADER]).ok_or(Mismatch::BadHeader)
}

/// Check the pattern after the header (the header itself was read by
/// [`sequence`]). The caller checks the length against what was sent.
#[cfg(test)]
pub fn check_body(payload: &[u8], conn: u32, seq: u64) -> Result<(), Mismatch> {
    check_range(&payload[HEADER..], conn, seq, 0)
}

/// Check `bytes`, which should be the random pattern of message (`conn`,
/// `seq`) starting `offset` bytes after the header. Echoes may arrive in fragments
/// cut anywhere, so any offset is accepted.
#[inline]
pub fn check_range(bytes: &[u8], conn: u32, seq: u64, offset: usize) -> Result<(), Mismatch> {
    let s = seed(conn, seq);
    let expected = |at: usize| word(s, (at / 8) as u64).to_le_bytes()[at % 8];
    // Leading bytes up to the next word boundary, one at a time.
    let lead = ((8 - offset % 8) % 8).min(bytes.len());
    let mut diff = 0u64;
    for (k, &b) in bytes[..lead].iter().enumerate() {
        diff |= u64::from(b ^ expected(offset + k));
    }
    // Whole words: accumulate differences without branching (so the loop
    // vectorises); only a bad payload pays for finding where it differs.
    let mut chunks = bytes[lead..].chunks_exact(8);
    let mut x = s.wrapping_add((((offset + lead) / 8) as u64).wrapping_mul(STEP));
    for c in &mut chunks {
        diff |= u64::from_le_bytes(c.try_into().unwrap()) ^ mix(x);
        x = x.wrapping_add(STEP);
    }
    let next = mix(x).to_le_bytes();
    conclude(diff, chunks.remainder(), next, bytes, offset, expected)
}

/// The end of a word-at-a-time check of `bytes` (from `offset` after the
/// header): the bytes after the last whole word against the `next`
/// expected word, then, only if anything differed, where the first
/// difference is.
#[inline]
fn conclude(
    mut diff: u64,
    rest: &[u8],
    next: [u8; 8],
    bytes: &[u8],
    offset: usize,
    expected: impl Fn(usize) -> u8,
) -> Result<(), Mismatch> {
    for (a, b) in rest.iter().zip(next) {
        diff |= u64::from(a ^ b);
    }
    if diff == 0 {
        return Ok(());
    }
    let at = bytes
        .iter()
        .enumerate()
        .position(|(k, &b)| b != expected(offset + k))
        .unwrap_or(0);
    Err(Mismatch::Content(HEADER + offset + at))
}

/// The longest frame header: 2 bytes, 8 of extended length, a 4-byte key.
pub const MAX_HEADER: usize = 14;

/// Bytes a frame with `payload` bytes takes on the wire: the header (2, 4
/// or 10 bytes by length, RFC 6455 §5.2), 4 more for a client's masking
/// key, and the payload.
#[inline]
pub const fn frame_len(payload: u64, masked: bool) -> u64 {
    let len_bytes = if payload > 0xFFFF {
        8
    } else if payload > 125 {
        2
    } else {
        0
    };
    2 + len_bytes + if masked { 4 } else { 0 } + payload
}

/// One echoed payload checked piece by piece, wherever the pieces are cut:
/// the header is gathered, and every byte after it is compared with the
/// pattern at its offset, so a message is never held whole.
#[derive(Debug, Clone, Copy)]
pub struct Pieces {
    /// Bytes of the message so far.
    len: u64,
    head: [u8; HEADER],
    /// The header read, or why it could not be.
    seq: Option<Result<u64, Mismatch>>,
    /// Longer than its sequence number says, or a pattern byte differs.
    bad: bool,
    /// What follows the header in every message.
    pattern: Pattern,
}

impl Default for Pieces {
    fn default() -> Self {
        Pieces::new(Pattern::Random)
    }
}

impl Pieces {
    /// Checks payloads of this pattern.
    pub fn new(pattern: Pattern) -> Self {
        Pieces {
            len: 0,
            head: [0; HEADER],
            seq: None,
            bad: false,
            pattern,
        }
    }

    /// A new message begins.
    #[inline]
    pub fn start(&mut self) {
        self.len = 0;
        self.seq = None;
        self.bad = false;
    }

    /// The next piece of the message, which should be payload `conn`'s;
    /// `size_of` gives the length sent for a sequence number.
    #[inline]
    pub fn feed(&mut self, mut bytes: &[u8], conn: u32, size_of: impl Fn(u64) -> usize) {
        let head = self.len as usize;
        if head < HEADER {
            // Kept whole (24 bytes) even when one piece holds it, to read
            // it across a cut and to describe a wrong message.
            let k = (HEADER - head).min(bytes.len());
            if k == HEADER {
                // The usual case, as a fixed-size copy.
                self.head.copy_from_slice(&bytes[..HEADER]);
            } else {
                self.head[head..head + k].copy_from_slice(&bytes[..k]);
            }
            self.len += k as u64;
            bytes = &bytes[k..];
            if head + k == HEADER {
                self.seq = Some(sequence(&self.head, conn));
            }
        }
        if bytes.is_empty() {
            return;
        }
        let offset = self.len as usize - HEADER;
        self.len += bytes.len() as u64;
        if let (Some(Ok(seq)), false) = (self.seq, self.bad) {
            if self.len > size_of(seq) as u64
                || self.pattern.check_range(bytes, conn, seq, offset).is_err()
            {
                self.bad = true;
            }
        }
    }

    /// Bytes of the message so far.
    #[inline]
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The sequence number the header carries, or why it cannot be read
    /// (a message shorter than the header has none).
    #[inline]
    pub fn sequence(&self) -> Result<u64, Mismatch> {
        self.seq.unwrap_or(Err(Mismatch::BadHeader))
    }

    /// The message is exactly payload (`conn`, its sequence number) of
    /// `size` bytes.
    #[inline]
    pub fn intact(&self, size: usize) -> bool {
        matches!(self.seq, Some(Ok(_))) && !self.bad && self.len == size as u64
    }

    /// The message's first bytes (up to the header's length), printable,
    /// for error messages.
    pub fn snippet(&self) -> String {
        let n = (self.len as usize).min(HEADER);
        String::from_utf8_lossy(&self.head[..n]).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(len: usize, conn: u32, seq: u64) -> Vec<u8> {
        let mut v = vec![0; len];
        fill(&mut v, conn, seq, [0; 4]);
        v
    }

    #[test]
    fn masked_fill_equals_fill_then_mask() {
        for len in [24, 27, 32, 61, 1024, 1027] {
            let key = [0x12, 0xab, 0x7f, 0x01];
            let mut a = vec![0; len];
            fill(&mut a, 9, 42, key);
            let mut b = make(len, 9, 42);
            for (i, x) in b.iter_mut().enumerate() {
                *x ^= key[i % 4];
            }
            assert_eq!(a, b, "len {len}");
        }
    }

    #[test]
    fn word_nibbles_match_byte_nibbles() {
        for v in [0u32, 1, 0xF, 0x1234_5678, 0x9ABC_DEF0, u32::MAX] {
            let mut b = [0u8; 8];
            put_nibbles(&mut b, u64::from(v));
            assert_eq!(nibbles8(v).to_le_bytes(), b, "{v:#x}");
        }
    }

    #[test]
    fn nibbles_round_trip() {
        for v in [0u64, 1, 0xF, 0x1234_5678_9ABC_DEF0, u64::MAX, 1 << 63] {
            let mut b = [0u8; 16];
            put_nibbles(&mut b, v);
            assert_eq!(get_nibbles(&b), Some(v));
            let mut c = [0u8; 8];
            put_nibbles(&mut c, v & 0xFFFF_FFFF);
            assert_eq!(get_nibbles(&c), Some(v & 0xFFFF_FFFF));
        }
        assert_eq!(get_nibbles(b"@@@@@@@A"), Some(1));
        assert_eq!(get_nibbles(b"@@@@@@@\x30"), None);
        assert_eq!(get_nibbles(b"@@@@@@@\x50"), None);
    }

    #[test]
    fn round_trip_and_ascii() {
        for len in [24, 25, 31, 32, 33, 100, 1024, 16384, 16385] {
            let p = make(len, 77, 123_456_789);
            assert!(p.iter().all(|&b| (0x40..=0x7F).contains(&b)), "len {len}");
            assert!(std::str::from_utf8(&p).is_ok());
            assert_eq!(sequence(&p, 77), Ok(123_456_789));
            assert_eq!(check_body(&p, 77, 123_456_789), Ok(()));
        }
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let clean = make(61, 3, 9);
        for at in 0..clean.len() {
            let mut p = clean.clone();
            p[at] ^= 0x01;
            let r = sequence(&p, 3).and_then(|s| {
                if s != 9 {
                    // A changed sequence is reported by the window as an
                    // unexpected echo, and its body no longer matches.
                    return check_body(&p, 3, s).and(Err(Mismatch::BadHeader));
                }
                check_body(&p, 3, s)
            });
            assert!(r.is_err(), "flip at {at} missed");
            if at >= HEADER {
                assert_eq!(r, Err(Mismatch::Content(at)));
            }
        }
    }

    #[test]
    fn any_split_checks_like_the_whole() {
        let p = make(200, 4, 77);
        let body = &p[HEADER..];
        for cut in 0..body.len() {
            assert_eq!(check_range(&body[..cut], 4, 77, 0), Ok(()));
            assert_eq!(check_range(&body[cut..], 4, 77, cut), Ok(()), "cut {cut}");
        }
        let mut bad = p.clone();
        bad[HEADER + 101] ^= 0x20;
        let body = &bad[HEADER..];
        assert_eq!(check_range(&body[..50], 4, 77, 0), Ok(()));
        assert_eq!(
            check_range(&body[50..], 4, 77, 50),
            Err(Mismatch::Content(HEADER + 101))
        );
        // Right bytes at the wrong offset are caught too.
        assert!(check_range(&p[HEADER + 8..HEADER + 40], 4, 77, 0).is_err());
    }

    #[test]
    fn other_connection_or_sequence_is_caught() {
        let p = make(64, 5, 1);
        assert_eq!(sequence(&p, 6), Err(Mismatch::WrongConnection(5)));
        // The body of message 1 is not the body of message 2.
        assert!(check_body(&p, 5, 2).is_err());
        assert!(sequence(&p[..10], 5).is_err());
    }

    #[test]
    fn pieces_check_like_the_whole_wherever_cut() {
        let p = make(100, 6, 41);
        let size = |_| 100;
        for cut in 0..=p.len() {
            for cut2 in cut..=p.len() {
                let mut c = Pieces::default();
                c.start();
                for piece in [&p[..cut], &p[cut..cut2], &p[cut2..]] {
                    c.feed(piece, 6, size);
                }
                assert_eq!(c.sequence(), Ok(41), "cuts {cut} {cut2}");
                assert!(c.intact(100), "cuts {cut} {cut2}");
            }
        }
        let mut bad = p.clone();
        bad[70] ^= 1;
        let mut c = Pieces::default();
        c.feed(&bad[..50], 6, size);
        c.feed(&bad[50..], 6, size);
        assert!(!c.intact(100));
        // Too long, too short, someone else's, no header at all.
        let mut c = Pieces::default();
        c.feed(&p, 6, |_| 99);
        assert!(!c.intact(99));
        let mut c = Pieces::default();
        c.feed(&p[..99], 6, size);
        assert!(!c.intact(100));
        let mut c = Pieces::default();
        c.feed(&p, 7, size);
        assert_eq!(c.sequence(), Err(Mismatch::WrongConnection(6)));
        c.start();
        c.feed(&p[..10], 6, size);
        assert_eq!(c.sequence(), Err(Mismatch::BadHeader));
        assert_eq!(c.snippet().len(), 10);
    }

    #[test]
    fn frame_lengths() {
        assert_eq!(frame_len(0, false), 2);
        assert_eq!(frame_len(125, true), 131);
        assert_eq!(frame_len(126, false), 130);
        assert_eq!(frame_len(65535, true), 65543);
        assert_eq!(frame_len(65536, false), 65546);
    }
}
