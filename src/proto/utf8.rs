//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! The validator is stateless: the caller keeps the (at most 3) bytes of a
//! code point cut by a piece boundary and puts them back in front of the next
//! piece. A piece is rejected as soon as its bytes can no longer begin a valid
//! code point, so an invalid message fails fast, without waiting for its end.
//! The work is done by `std::str::from_utf8`, which reports whether an error
//! is a real error or only input that ended mid code point, after a cheaper
//! all-ASCII test that settles most text.

/// The bytes are not, and cannot become, UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// Validate `buf` as the middle of a text message.
///
/// Returns `Ok(n)` where `buf[..n]` is complete, valid UTF-8 and `buf[n..]`
/// (0 to 3 bytes) is a proper prefix of a valid code point, to be completed by
/// the next piece. Returns `Err` if some byte already makes the text invalid.
#[inline]
pub fn complete_prefix(buf: &[u8]) -> Result<usize, Invalid> {
    // Most text is ASCII, and the word-at-a-time ASCII test costs a fraction
    // of a full validation on short messages.
    if buf.is_ascii() {
        return Ok(buf.len());
    }
    match std::str::from_utf8(buf) {
        Ok(_) => Ok(buf.len()),
        Err(e) if e.error_len().is_none() => Ok(e.valid_up_to()),
        Err(_) => Err(Invalid),
    }
}

/// Validate `buf` as the end of a text message: everything must be complete.
#[inline]
pub fn complete(buf: &[u8]) -> Result<(), Invalid> {
    if buf.is_ascii() {
        return Ok(());
    }
    match std::str::from_utf8(buf) {
        Ok(_) => Ok(()),
        Err(_) => Err(Invalid),
    }
}

/// `bytes` as a `&str`, without validating them again: for a message the
/// incremental validator above accepted piece by piece. The one `unsafe`
/// of the crate: a second full validation of every collected text message
/// cost about an eighth of the instructions of a short reply (callgrind,
/// `received32`).
///
/// # Safety
/// `bytes` must be valid UTF-8. Debug builds (and so every test and fuzz
/// run) check it.
#[inline]
pub(crate) unsafe fn assume_valid(bytes: &[u8]) -> &str {
    debug_assert!(std::str::from_utf8(bytes).is_ok(), "not UTF-8");
    // SAFETY: the caller guarantees the bytes are valid UTF-8.
    unsafe { std::str::from_utf8_unchecked(bytes) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `msg` split at `cuts`, carrying incomplete tails like a caller
    /// does; returns whether the message was accepted and at which piece it
    /// was rejected.
    fn feed(msg: &[u8], cuts: &[usize]) -> Result<(), usize> {
        let mut carry: Vec<u8> = Vec::new();
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(msg.len());
        for (i, w) in bounds.windows(2).enumerate() {
            let mut piece = carry.clone();
            piece.extend_from_slice(&msg[w[0]..w[1]]);
            let last = i + 2 == bounds.len();
            if last {
                complete(&piece).map_err(|_| i)?;
            } else {
                let n = complete_prefix(&piece).map_err(|_| i)?;
                assert!(piece.len() - n <= 3);
                carry = piece[n..].to_vec();
            }
        }
        Ok(())
    }

    #[test]
    fn valid_text_at_every_split() {
        let msg = "κόσμε ascii \u{10FFFF} \u{FFFD} €𝄞 end".as_bytes();
        for a in 0..=msg.len() {
            assert_eq!(feed(msg, &[a]), Ok(()), "cut at {a}");
            for b in a..=msg.len() {
                assert_eq!(feed(msg, &[a, b]), Ok(()), "cuts at {a},{b}");
            }
        }
    }

    #[test]
    fn invalid_sequences_rejected_at_every_split() {
        let bad: &[&[u8]] = &[
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited", // surrogate
            b"ab\xf4\x90\x80\x80cd",                                           // > U+10FFFF
            b"\xc0\xaf",                                                       // overlong
            b"\xe0\x80\xaf",                                                   // overlong
            b"abc\x80",                                                        // stray continuation
            b"\xff",
            b"ok\xf8\x88\x80\x80\x80",
        ];
        for m in bad {
            for a in 0..=m.len() {
                assert!(feed(m, &[a]).is_err(), "{m:?} cut at {a}");
            }
        }
    }

    #[test]
    fn incomplete_at_end_of_message_is_invalid() {
        assert_eq!(complete(b"ab\xe2\x82"), Err(Invalid));
        assert_eq!(complete_prefix(b"ab\xe2\x82"), Ok(2));
    }

    #[test]
    fn fails_fast_on_first_impossible_byte() {
        // 0xF4 0x90 can never start a valid code point: rejected before the
        // rest of the message arrives.
        assert_eq!(complete_prefix(b"hello\xf4\x90"), Err(Invalid));
        assert_eq!(complete_prefix(b"hello\xed\xa0"), Err(Invalid));
        assert_eq!(complete_prefix(b"hello\xf4\x8f"), Ok(5));
    }
}
