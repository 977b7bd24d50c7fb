//! Which pattern follows the payload header, chosen once per run.
//!
//! Invariants: both patterns share the header and the checking contract of
//! `payload` (any offset, any cut, no allocation); dispatching on the
//! pattern costs one match per message filled or piece checked, so the
//! random pattern's loops stay exactly as they were.

use clap::ValueEnum;
use serde::Serialize;

use super::{check_range, fill, fill_header, json, Mismatch, HEADER};

/// What follows the header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pattern {
    /// Pseudo-random bytes 0x40..=0x7F: next to incompressible.
    #[default]
    Random,
    /// A JSON record repeated, with digits that vary per message: text
    /// that compresses 5–10× from 4 to 64 KiB (for permessage-deflate).
    Json,
}

impl Pattern {
    /// Write payload (`conn`, `seq`) in this pattern; see [`fill`].
    #[inline]
    pub fn fill(self, out: &mut [u8], conn: u32, seq: u64, key: [u8; 4]) {
        match self {
            Pattern::Random => fill(out, conn, seq, key),
            Pattern::Json => {
                fill_header(out, conn, seq, key);
                json::fill_body(&mut out[HEADER..], conn, seq, key);
            }
        }
    }

    /// Check body bytes in this pattern; see [`check_range`].
    #[inline]
    pub fn check_range(
        self,
        bytes: &[u8],
        conn: u32,
        seq: u64,
        offset: usize,
    ) -> Result<(), Mismatch> {
        match self {
            Pattern::Random => check_range(bytes, conn, seq, offset),
            Pattern::Json => json::check_range(bytes, conn, seq, offset),
        }
    }
}
