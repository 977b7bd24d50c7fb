//! The `json` pattern: compressible payload bodies that look like JSON.
//!
//! Invariants: the body is a JSON record ([`TEMPLATE`]) repeated, started at
//! a rotation and stamped at the start of every [`BLOCK`] bytes with 8
//! decimal digits, both derived from the message's seed; so it is
//! printable ASCII (0x20..=0x7E, no backslash, no control character) and a
//! pure function of (connection, sequence, offset), like the random pattern.
//! The digits are what tells two messages with the same rotation apart, and
//! an echo shifted by a whole record from where it belongs, since records
//! and blocks do not line up. Filling and checking work a word at a time
//! and allocate nothing. Compression stays moderate on purpose (5–10× with
//! zlib level 1 from 4 to 64 KiB; see the tests), like real JSON: a record
//! repeated verbatim would compress so well that a deflate run would hardly
//! move any bytes. Below a few records the first one, sent as literals,
//! dominates (a 1 KiB body compresses about 2.6×).

use super::{key_word, seed, Mismatch};
use crate::rng::splitmix;

/// One record; printable ASCII without a backslash, so a JSON writer only
/// escapes its quotes.
const TEMPLATE: &[u8] = br#"{"id":"0f8e2c4a","type":"order","status":"shipped","customer":{"name":"Grace Hopper","email":"grace@example.org","tier":"gold"},"items":[{"sku":"KB-104","qty":2,"price":49.95},{"sku":"MS-220","qty":1,"price":19.5}],"total":119.4,"currency":"EUR","tags":["express","gift"],"created":"2024-05-17T08:42:13Z","ok":true},"#;
const LEN: usize = TEMPLATE.len();

/// The record followed by its first 8 bytes again, so that a word starting
/// anywhere in the record is one unaligned load.
const WRAPPED: [u8; LEN + 8] = {
    let mut w = [0u8; LEN + 8];
    let mut i = 0;
    while i < LEN + 8 {
        w[i] = TEMPLATE[i % LEN];
        i += 1;
    }
    w
};

/// Body bytes per stamp: the first word of every block is 8 digits. A
/// power of two words, so stamps never straddle a word and are found with a
/// mask; this size puts zlib level 1 at 5–10× for bodies of 4 to 64 KiB
/// (see the tests). Every stamp cuts the long matches the repeated record
/// would give.
const BLOCK: usize = 128;
const WORDS_PER_BLOCK: u64 = (BLOCK / 8) as u64;
const _: () = assert!(WORDS_PER_BLOCK.is_power_of_two());

/// Where the record starts for a message: spreads messages over every
/// rotation, so equal sizes still give different bodies.
#[inline]
fn rotation(seed: u64) -> usize {
    (seed % LEN as u64) as usize
}

/// The record's 8 bytes from `pos` (< [`LEN`]) as a little-endian word.
#[inline(always)]
fn load(pos: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&WRAPPED[pos..pos + 8]);
    u64::from_le_bytes(b)
}

/// The stamp of block `block`: 8 ASCII digits.
#[inline]
fn digits(seed: u64, block: u64) -> u64 {
    let h = splitmix(seed ^ block);
    let mut w = 0;
    for j in 0..8 {
        // Each byte of the hash scaled to 0..=9: a multiply, no division.
        let d = (((h >> (8 * j)) & 0xFF) * 10) >> 8;
        w |= (u64::from(b'0') + d) << (8 * j);
    }
    w
}

/// Body word `i` given the record's bytes at its place: the first word of
/// a block is the block's stamp instead.
#[inline(always)]
fn stamp(w: u64, seed: u64, i: u64) -> u64 {
    // A mask rather than `%`: blocks are a power of two words.
    if i & (WORDS_PER_BLOCK - 1) == 0 {
        digits(seed, i / WORDS_PER_BLOCK)
    } else {
        w
    }
}

/// Body word `i` (payload bytes `HEADER + 8*i ..`) of a message.
#[inline]
fn word(seed: u64, rot: usize, i: u64) -> u64 {
    let pos = (rot + ((i % LEN as u64) as usize * 8) % LEN) % LEN;
    stamp(load(pos), seed, i)
}

/// The body after the header, masked with `key` (all zeros: unmasked).
/// The header is the caller's.
pub(super) fn fill_body(body: &mut [u8], conn: u32, seq: u64, key: [u8; 4]) {
    let k = key_word(key);
    let s = seed(conn, seq);
    let mut pos = rotation(s);
    let mut chunks = body.chunks_exact_mut(8);
    let mut i = 0u64;
    for c in &mut chunks {
        c.copy_from_slice(&(stamp(load(pos), s, i) ^ k).to_le_bytes());
        pos += 8;
        if pos >= LEN {
            pos -= LEN;
        }
        i += 1;
    }
    let rest = chunks.into_remainder();
    let w = (stamp(load(pos), s, i) ^ k).to_le_bytes();
    for (b, w) in rest.iter_mut().zip(w) {
        *b = w;
    }
}

/// Check `bytes`, which should be the body of message (`conn`, `seq`)
/// from `offset` bytes after the header; any offset, as for the random
/// pattern.
pub(super) fn check_range(
    bytes: &[u8],
    conn: u32,
    seq: u64,
    offset: usize,
) -> Result<(), Mismatch> {
    let s = seed(conn, seq);
    let rot = rotation(s);
    let expected = |at: usize| word(s, rot, (at / 8) as u64).to_le_bytes()[at % 8];
    let lead = ((8 - offset % 8) % 8).min(bytes.len());
    let mut diff = 0u64;
    for (k, &b) in bytes[..lead].iter().enumerate() {
        diff |= u64::from(b ^ expected(offset + k));
    }
    let start = offset + lead;
    let mut i = (start / 8) as u64;
    let mut pos = (rot + start % LEN) % LEN;
    let mut chunks = bytes[lead..].chunks_exact(8);
    for c in &mut chunks {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        diff |= u64::from_le_bytes(b) ^ stamp(load(pos), s, i);
        pos += 8;
        if pos >= LEN {
            pos -= LEN;
        }
        i += 1;
    }
    let next = stamp(load(pos), s, i).to_le_bytes();
    super::conclude(diff, chunks.remainder(), next, bytes, offset, expected)
}

#[cfg(test)]
mod tests {
    use super::super::{sequence, Pattern, Pieces, HEADER};
    use super::*;

    fn make(len: usize, conn: u32, seq: u64) -> Vec<u8> {
        let mut v = vec![0; len];
        Pattern::Json.fill(&mut v, conn, seq, [0; 4]);
        v
    }

    fn check(p: &[u8], conn: u32, seq: u64) -> Result<(), Mismatch> {
        Pattern::Json.check_range(&p[HEADER..], conn, seq, 0)
    }

    #[test]
    fn template_is_plain_ascii() {
        assert!(TEMPLATE.iter().all(|&b| (0x20..=0x7E).contains(&b)));
        assert!(!TEMPLATE.contains(&b'\\'));
        assert_eq!(WRAPPED[LEN..], TEMPLATE[..8]);
        assert!(serde_json::from_slice::<serde_json::Value>(&TEMPLATE[..LEN - 1]).is_ok());
    }

    #[test]
    fn round_trip_printable_ascii() {
        for len in [24, 25, 31, 32, 33, 100, 340, 1024, 16384, 16385] {
            let p = make(len, 77, 123_456_789);
            assert!(p.iter().all(|&b| (0x20..=0x7E).contains(&b)), "len {len}");
            assert!(std::str::from_utf8(&p).is_ok());
            assert!(!p.contains(&b'\\'));
            assert_eq!(sequence(&p, 77), Ok(123_456_789));
            assert_eq!(check(&p, 77, 123_456_789), Ok(()), "len {len}");
        }
    }

    #[test]
    fn word_and_fill_agree() {
        // The fill's running position and the per-word formula must agree
        // past several wraps of the record.
        let p = make(HEADER + 5 * LEN + 3, 2, 5);
        let s = seed(2, 5);
        for (i, c) in p[HEADER..].chunks(8).enumerate() {
            let w = word(s, rotation(s), i as u64).to_le_bytes();
            assert_eq!(c, &w[..c.len()], "word {i}");
        }
    }

    #[test]
    fn masked_fill_equals_fill_then_mask() {
        for len in [24, 27, 61, 1027] {
            let key = [0x12, 0xab, 0x7f, 0x01];
            let mut a = vec![0; len];
            Pattern::Json.fill(&mut a, 9, 42, key);
            let mut b = make(len, 9, 42);
            for (i, x) in b.iter_mut().enumerate() {
                *x ^= key[i % 4];
            }
            assert_eq!(a, b, "len {len}");
        }
    }

    #[test]
    fn checks_at_any_offset_and_cut() {
        let p = make(2 * LEN + 50, 4, 77);
        let body = &p[HEADER..];
        for cut in 0..=body.len() {
            assert_eq!(Pattern::Json.check_range(&body[..cut], 4, 77, 0), Ok(()));
            let r = Pattern::Json.check_range(&body[cut..], 4, 77, cut);
            assert_eq!(r, Ok(()), "cut {cut}");
        }
        // Pieces of every length from every offset.
        for at in (0..body.len()).step_by(7) {
            for n in 0..=20.min(body.len() - at) {
                let r = Pattern::Json.check_range(&body[at..at + n], 4, 77, at);
                assert_eq!(r, Ok(()), "at {at} n {n}");
            }
        }
    }

    #[test]
    fn pieces_check_like_the_whole_wherever_cut() {
        let p = make(120, 6, 41);
        for cut in 0..=p.len() {
            for cut2 in (cut..=p.len()).step_by(3) {
                let mut c = Pieces::new(Pattern::Json);
                c.start();
                for piece in [&p[..cut], &p[cut..cut2], &p[cut2..]] {
                    c.feed(piece, 6, |_| 120);
                }
                assert!(c.intact(120), "cuts {cut} {cut2}");
            }
        }
        // The random pattern's check refuses it.
        let mut c = Pieces::default();
        c.feed(&p, 6, |_| 120);
        assert!(!c.intact(120));
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let clean = make(200, 3, 9);
        for at in HEADER..clean.len() {
            for flip in [0x01, 0x20] {
                let mut p = clean.clone();
                p[at] ^= flip;
                assert_eq!(check(&p, 3, 9), Err(Mismatch::Content(at)), "at {at}");
                let cut = at - HEADER + 1;
                let r = Pattern::Json.check_range(&p[HEADER + cut..], 3, 9, cut);
                assert_eq!(r, Ok(()), "after {at}");
            }
        }
    }

    #[test]
    fn other_connection_sequence_or_place_is_caught() {
        let p = make(HEADER + 64, 5, 1);
        assert!(sequence(&p, 6).is_err());
        for seq in [0, 2, 3, 1 << 40] {
            assert!(check(&p, 5, seq).is_err(), "seq {seq}");
        }
        assert!(check(&p, 4, 1).is_err());
        // Even the shortest bodies differ from message to message.
        let short = |seq| make(HEADER + 4, 5, seq)[HEADER..].to_vec();
        let differ = (0..100).filter(|&s| short(s) != short(s + 1)).count();
        assert!(differ >= 99, "{differ}");
        // A body shifted by a word, or by a whole record, is not the body.
        let long = make(HEADER + 3 * LEN, 5, 1);
        let body = &long[HEADER..];
        assert!(Pattern::Json.check_range(&body[8..200], 5, 1, 0).is_err());
        assert!(Pattern::Json.check_range(&body[LEN..], 5, 1, 0).is_err());
        assert!(Pattern::Json.check_range(&body[..LEN], 5, 1, LEN).is_err());
    }

    #[test]
    fn compresses_moderately() {
        use std::io::Write;
        let ratio = |p: &[u8]| {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::new(1));
            z.write_all(p).unwrap();
            p.len() as f64 / z.finish().unwrap().len() as f64
        };
        // About 5.3×, 7.3× and 9.1× when written.
        for (len, low) in [(4096, 4.5), (16384, 5.0), (65536, 5.0)] {
            for seq in [1000, 1001] {
                let r = ratio(&make(len, 3, seq));
                assert!((low..=10.5).contains(&r), "len {len}: {r:.2}");
            }
        }
        // Small bodies are mostly the first record, sent as literals.
        let r = ratio(&make(1024, 3, 1000));
        assert!(r > 2.0, "{r:.2}");
        // Next to a random body, which hardly compresses at all.
        let mut random = vec![0; 16384];
        Pattern::Random.fill(&mut random, 3, 1000, [0; 4]);
        assert!(ratio(&random) < 1.5);
    }
}
