//! Masking keys and handshake nonces (RFC 6455 §5.3, §4.1).
//!
//! §5.3 asks for masking keys an intermediary cannot predict, "derived from
//! a strong source of entropy". A system call per frame would cost more
//! than the frame: keys come from a ChaCha generator (rand's `StdRng`)
//! seeded once from the operating system. One source serves every
//! connection of a thread or event loop; it is 320 bytes.

use rand::rngs::StdRng;
use rand::Rng;

/// A source of masking keys and nonces, seeded from the operating system.
pub struct Keys(StdRng);

impl Keys {
    /// A source seeded from the operating system.
    ///
    /// # Panics
    /// If the operating system has no entropy to give (rand's `make_rng`).
    pub fn new() -> Keys {
        Keys(rand::make_rng())
    }

    /// A source with a fixed seed, for tests that need repeatable bytes.
    #[cfg(test)]
    pub fn seeded(seed: u8) -> Keys {
        use rand::SeedableRng;
        Keys(StdRng::from_seed([seed; 32]))
    }

    /// The next masking key.
    #[inline]
    pub fn mask(&mut self) -> [u8; 4] {
        self.0.next_u32().to_ne_bytes()
    }

    /// 16 bytes for a `Sec-WebSocket-Key`.
    pub fn nonce(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        self.0.fill_bytes(&mut b);
        b
    }
}

impl Default for Keys {
    fn default() -> Self {
        Keys::new()
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_and_cover_every_byte() {
        let mut k = Keys::new();
        let keys: Vec<[u8; 4]> = (0..4096).map(|_| k.mask()).collect();
        let mut distinct = keys.clone();
        distinct.sort_unstable();
        distinct.dedup();
        // 4096 draws from 2^32: a repeat is a 0.2% event, two a rare one.
        assert!(distinct.len() >= 4094, "{} distinct", distinct.len());
        let mut seen = [false; 256];
        for b in keys.iter().flatten() {
            seen[*b as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every byte value appears");
    }

    #[test]
    fn two_sources_are_seeded_apart() {
        let (mut a, mut b) = (Keys::new(), Keys::new());
        assert_ne!(a.nonce(), b.nonce());
    }

    #[test]
    fn a_fixed_seed_repeats() {
        assert_eq!(Keys::seeded(7).nonce(), Keys::seeded(7).nonce());
    }
}
