//! A cheap pseudo-random generator for mask keys and handshake nonces.
//!
//! Invariants: never yields the all-zero state (xorshift would stick there),
//! costs a few instructions per call and allocates nothing. Not
//! cryptographic: masking only has to stop a proxy from seeing predictable
//! bytes, and a load generator needs speed more than secrecy.

/// xorshift64* (Marsaglia's xorshift with a multiplicative output step).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from `seed`, mixed so that consecutive seeds (worker indexes)
    /// give unrelated streams.
    pub fn new(seed: u64) -> Self {
        let s = splitmix(seed);
        Rng(if s == 0 { 0x9E37_79B9_7F4A_7C15 } else { s })
    }

    /// Seeds from the clock and the process id, for runs that do not ask
    /// for reproducibility.
    pub fn from_entropy(salt: u64) -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Rng::new(t ^ (u64::from(std::process::id()) << 32) ^ salt)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[inline]
    pub fn mask_key(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }

    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let v = self.next_u64().to_ne_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// SplitMix64's finaliser: a bijective mix of all 64 bits, used both for
/// seeding and (in `payload`) to derive pattern words.
#[inline]
pub fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_seed_does_not_stick() {
        let mut r = Rng::new(0);
        let a = r.next_u64();
        let b = r.next_u64();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn keys_vary() {
        let mut r = Rng::new(7);
        let keys: std::collections::HashSet<[u8; 4]> = (0..1000).map(|_| r.mask_key()).collect();
        assert!(keys.len() > 990);
    }
}
