//! What one instance puts on the bus for a publish, and how another reads
//! it back: a bus message is the payload behind an 11-byte head.
//!
//! ```text
//! "Z1"  origin (u64, little endian)  kind (0 text, 1 binary)  payload…
//! ```
//!
//! The origin is the publishing instance's random id: every instance also
//! receives its own publishes from the broker, and drops them, because it
//! delivered them to its own subscribers when they were made. The topic is
//! not in the envelope: it is the channel's name.
//!
//! Invariants: decoding never trusts the bytes: a wrong head, an unknown
//! kind or a text payload that is not UTF-8 is refused, so a stray
//! publisher on the broker's channel cannot make a loop send an invalid
//! frame.

use crate::service::MessageKind;

const MAGIC: [u8; 2] = *b"Z1";

/// Bytes before the payload.
pub(crate) const HEAD: usize = 11;

/// A bus message, read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub origin: u64,
    pub kind: MessageKind,
    pub payload: &'a [u8],
}

/// Why a bus message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Too short, or not our head.
    Head,
    /// A kind byte other than 0 or 1.
    Kind,
    /// A text payload that is not UTF-8.
    Utf8,
}

/// `out` cleared, then the envelope of `payload`.
pub(crate) fn encode(origin: u64, kind: MessageKind, payload: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.reserve(HEAD + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&origin.to_le_bytes());
    out.push(match kind {
        MessageKind::Text => 0,
        MessageKind::Binary => 1,
    });
    out.extend_from_slice(payload);
}

/// The envelope in `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope<'_>, Refused> {
    if bytes.len() < HEAD || bytes[..2] != MAGIC {
        return Err(Refused::Head);
    }
    let origin = u64::from_le_bytes(bytes[2..10].try_into().expect("8 bytes"));
    let payload = &bytes[HEAD..];
    let kind = match bytes[10] {
        0 => MessageKind::Text,
        1 => MessageKind::Binary,
        _ => return Err(Refused::Kind),
    };
    if kind == MessageKind::Text && std::str::from_utf8(payload).is_err() {
        return Err(Refused::Utf8);
    }
    Ok(Envelope {
        origin,
        kind,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        for (kind, payload) in [
            (MessageKind::Text, &b""[..]),
            (MessageKind::Text, "héllo".as_bytes()),
            (MessageKind::Binary, &[0u8, 255, 1, 2][..]),
        ] {
            encode(0xdead_beef_0102_0304, kind, payload, &mut out);
            assert_eq!(out.len(), HEAD + payload.len());
            let e = decode(&out).unwrap();
            assert_eq!(
                e,
                Envelope {
                    origin: 0xdead_beef_0102_0304,
                    kind,
                    payload
                }
            );
        }
    }

    #[test]
    fn refuses_what_is_not_ours() {
        let mut out = Vec::new();
        encode(7, MessageKind::Binary, b"abc", &mut out);
        // Every truncation inside the head.
        for n in 0..HEAD {
            assert_eq!(decode(&out[..n]), Err(Refused::Head), "{n} bytes");
        }
        assert_eq!(decode(b"hello world, plain text"), Err(Refused::Head));
        let mut bad = out.clone();
        bad[10] = 2;
        assert_eq!(decode(&bad), Err(Refused::Kind));
        encode(7, MessageKind::Text, &[0xff, 0xfe], &mut out);
        assert_eq!(decode(&out), Err(Refused::Utf8));
        // The same bytes are a fine binary message.
        encode(7, MessageKind::Binary, &[0xff, 0xfe], &mut out);
        assert_eq!(decode(&out).unwrap().payload, &[0xff, 0xfe]);
    }
}
