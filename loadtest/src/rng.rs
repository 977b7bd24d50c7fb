//! The mixing function behind the payload pattern.
//!
//! Masking keys and handshake nonces come from the client library's
//! generator (`zerows::client::Keys`); all the payloads need is a cheap,
//! well-spread function of (connection, sequence, offset).

/// SplitMix64's finaliser: a bijective mix of all 64 bits, from which
/// `payload` derives its pattern words.
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
    fn consecutive_inputs_spread() {
        let a = splitmix(1);
        let b = splitmix(2);
        assert_ne!(a, b);
        assert!((a ^ b).count_ones() > 16);
        assert_ne!(splitmix(0), 0);
    }
}
