//! Masking and unmasking (RFC 6455 §5.3), in place.
//!
//! A payload may be unmasked in several pieces (it arrives over several reads),
//! so every call takes the *phase*: how many payload bytes came before this
//! piece, modulo 4. The function returns the phase for the next piece.
//! Alignment of the slice never matters for correctness: words are read and
//! written through byte arrays, which the compiler turns into wide loads.

/// XOR `buf` with the masking key, starting `phase` bytes into the key.
/// Returns the phase after `buf` (`(phase + buf.len()) % 4`).
#[inline]
pub fn apply(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    let phase = phase & 3;
    // The key as it lines up with buf[0]: rotated left by the phase, then
    // repeated to fill a word.
    let mut rotated = key;
    rotated.rotate_left(phase);
    let mut k8 = [0u8; 8];
    k8[..4].copy_from_slice(&rotated);
    k8[4..].copy_from_slice(&rotated);
    let k8 = u64::from_ne_bytes(k8);

    // Four words per step: wide enough for the compiler to use vector
    // registers, and each chunk starts a whole number of key periods after
    // buf[0], so the rotated key lines up with every chunk.
    let mut chunks = buf.chunks_exact_mut(32);
    for c in &mut chunks {
        for w in c.chunks_exact_mut(8) {
            let v = u64::from_ne_bytes(w.try_into().unwrap()) ^ k8;
            w.copy_from_slice(&v.to_ne_bytes());
        }
    }
    // The remainder (under 32 bytes) in the widest steps that fit: short
    // payloads are the common case, and a byte loop there cost more than the
    // header parsing. Every step is a multiple of 4, so the key stays lined
    // up.
    let mut rest = chunks.into_remainder();
    for step in [16, 8] {
        if rest.len() >= step {
            let (words, tail) = rest.split_at_mut(step);
            for w in words.chunks_exact_mut(8) {
                let v = u64::from_ne_bytes(w.try_into().unwrap()) ^ k8;
                w.copy_from_slice(&v.to_ne_bytes());
            }
            rest = tail;
        }
    }
    if rest.len() >= 4 {
        let (w, tail) = rest.split_at_mut(4);
        let v = u32::from_ne_bytes(w.try_into().unwrap()) ^ u32::from_ne_bytes(rotated);
        w.copy_from_slice(&v.to_ne_bytes());
        rest = tail;
    }
    for (i, b) in rest.iter_mut().enumerate() {
        *b ^= rotated[i];
    }
    (phase + buf.len()) & 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4], phase: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(phase + i) % 4];
        }
    }

    #[test]
    fn rfc_example() {
        // §5.7: "Hello" masked with 37 fa 21 3d.
        let mut b = [0x7f, 0x9f, 0x4d, 0x51, 0x58];
        apply(&mut b, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(&b, b"Hello");
    }

    #[test]
    fn matches_naive_at_every_alignment_length_and_phase() {
        let key = [0x12, 0x34, 0xab, 0xcd];
        let src: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for offset in 0..16 {
            for len in [
                0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 200,
            ] {
                for phase in 0..4 {
                    let mut a = src.clone();
                    let mut b = src.clone();
                    let next = apply(&mut a[offset..offset + len], key, phase);
                    naive(&mut b[offset..offset + len], key, phase);
                    assert_eq!(a, b, "offset {offset} len {len} phase {phase}");
                    assert_eq!(next, (phase + len) % 4);
                }
            }
        }
    }

    #[test]
    fn pieces_equal_whole() {
        let key = [9, 8, 7, 6];
        let src: Vec<u8> = (0..1000u32).map(|i| (i * 31) as u8).collect();
        let mut whole = src.clone();
        apply(&mut whole, key, 0);
        for split in [0, 1, 2, 3, 5, 13, 64, 333, 999, 1000] {
            let mut parts = src.clone();
            let (a, b) = parts.split_at_mut(split);
            let p = apply(a, key, 0);
            apply(b, key, p);
            assert_eq!(parts, whole, "split {split}");
        }
    }

    #[test]
    fn involution() {
        let key = [0xff, 0x00, 0x55, 0xaa];
        let src: Vec<u8> = (0..129u8).collect();
        let mut b = src.clone();
        apply(&mut b, key, 2);
        apply(&mut b, key, 2);
        assert_eq!(b, src);
    }
}
