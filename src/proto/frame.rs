//! Frame headers (RFC 6455 §5.2): decoding in place, encoding into a slice.
//!
//! Decoding looks only at the header bytes; the payload stays where it is in
//! the caller's buffer. A header is rejected as soon as the bytes seen so far
//! prove it invalid, before the rest of it arrives. Encoding writes a header
//! so that it *ends* at a given index, which is how an echo header is laid
//! over the tail of the client header it answers: a server header is always
//! exactly 4 bytes (the mask key) shorter than a client header for the same
//! length.

use crate::error::{close_code, ProtocolError};
use crate::service::MessageKind;
use crate::utf8;

/// The longest header: 2 bytes, 8 bytes of extended length, 4 of mask key.
pub const MAX_HEADER: usize = 14;
/// The longest payload of a control frame (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes (§5.2); the others are reserved.
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;

    /// Control frames have the high bit of the opcode set.
    pub fn is_control(op: u8) -> bool {
        op & 0x8 != 0
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: u8,
    /// The masking key, if the mask bit is set.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub len: u64,
    /// Bytes the header itself takes; the payload starts there.
    pub header_len: usize,
    /// RSV1: the message this frame opens is compressed (RFC 7692).
    pub compressed: bool,
}

/// RSV1, the bit permessage-deflate gives to a compressed message's first
/// frame (RFC 7692 §6).
pub const RSV1: u8 = 0x40;

/// Which peer's frames are being decoded: a server requires masked frames
/// (§5.1), a client requires unmasked ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Decoding frames a client sent (we are the server).
    FromClient,
    /// Decoding frames a server sent (we are the client).
    FromServer,
}

/// Decode the header at the start of `buf`, with no extension negotiated:
/// RSV bits must be clear.
///
/// `Ok(None)` means more bytes are needed; `Err` means the bytes seen already
/// break a rule.
pub fn decode(buf: &[u8], role: Role) -> Result<Option<Header>, ProtocolError> {
    decode_with(buf, role, 0)
}

/// [`decode`], with the RSV bits in `allowed` permitted where the
/// negotiated extension allows them: [`RSV1`] (permessage-deflate) on the
/// first frame of a data message only (RFC 7692 §6.1).
#[inline]
pub fn decode_with(buf: &[u8], role: Role, allowed: u8) -> Result<Option<Header>, ProtocolError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let compressed = b0 & 0x70 != 0;
    if compressed {
        check_rsv(b0, allowed)?;
    }
    let fin = b0 & 0x80 != 0;
    let op = b0 & 0x0F;
    match op {
        opcode::CONTINUATION | opcode::TEXT | opcode::BINARY => {}
        opcode::CLOSE | opcode::PING | opcode::PONG => {
            if !fin {
                return Err(ProtocolError::ControlFragmented);
            }
        }
        _ => return Err(ProtocolError::UnknownOpcode),
    }
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    let masked = b1 & 0x80 != 0;
    match role {
        Role::FromClient if !masked => return Err(ProtocolError::UnmaskedFrame),
        Role::FromServer if masked => return Err(ProtocolError::MaskedFrame),
        _ => {}
    }
    let len7 = b1 & 0x7F;
    if opcode::is_control(op) && len7 > MAX_CONTROL_PAYLOAD as u8 {
        return Err(ProtocolError::ControlTooLong);
    }
    let (len, mut at) = match len7 {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([b[0], b[1]])), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let len = u64::from_be_bytes(b.try_into().unwrap());
            if len >> 63 != 0 {
                return Err(ProtocolError::LengthOverflow);
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        let Some(k) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([k[0], k[1], k[2], k[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode: op,
        mask,
        len,
        header_len: at,
        compressed,
    }))
}

/// A header with RSV bits set: only those in `allowed`, and RSV1 only on
/// the first frame of a data message (RFC 7692 §6.1). Past this check a
/// set RSV bit can only be RSV1.
#[cold]
fn check_rsv(b0: u8, allowed: u8) -> Result<(), ProtocolError> {
    let op = b0 & 0x0F;
    if b0 & 0x70 & !allowed != 0 || op == opcode::CONTINUATION || opcode::is_control(op) {
        return Err(ProtocolError::ReservedBits);
    }
    Ok(())
}

/// The length of a header for a payload of `len` bytes.
#[inline]
pub fn header_len(len: u64, masked: bool) -> usize {
    let base = match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    if masked {
        base + 4
    } else {
        base
    }
}

/// Write a header into the start of `out` (at least [`MAX_HEADER`] bytes, or
/// `header_len(len, mask.is_some())`). Returns the header length.
#[inline]
pub fn encode(out: &mut [u8], fin: bool, opcode: u8, len: u64, mask: Option<[u8; 4]>) -> usize {
    out[0] = if fin { 0x80 } else { 0 } | (opcode & 0x0F);
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut at = match len {
        0..=125 => {
            out[1] = m | len as u8;
            2
        }
        126..=0xFFFF => {
            out[1] = m | 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = m | 127;
            out[2..10].copy_from_slice(&len.to_be_bytes());
            10
        }
    };
    if let Some(k) = mask {
        out[at..at + 4].copy_from_slice(&k);
        at += 4;
    }
    at
}

/// Write an unmasked (server) header so that it ends at `buf[end]`, and
/// return where it starts. The caller guarantees the room: `end` is at least
/// `header_len(len, false)`.
#[inline]
pub fn encode_before(buf: &mut [u8], end: usize, fin: bool, opcode: u8, len: u64) -> usize {
    let start = end - header_len(len, false);
    encode(&mut buf[start..end], fin, opcode, len, None);
    start
}

/// The fragmentation rule (§5.4) for a data frame with opcode `op` while
/// `open` is the message under way: the message the frame opens (`None`
/// for a continuation), or the rule it breaks.
#[inline]
pub fn sequence(op: u8, open: Option<MessageKind>) -> Result<Option<MessageKind>, ProtocolError> {
    match (op, open) {
        (opcode::CONTINUATION, None) => Err(ProtocolError::UnexpectedContinuation),
        (opcode::CONTINUATION, Some(_)) => Ok(None),
        (_, Some(_)) => Err(ProtocolError::ExpectedContinuation),
        (opcode::TEXT, None) => Ok(Some(MessageKind::Text)),
        (_, None) => Ok(Some(MessageKind::Binary)),
    }
}

/// Validate a close frame's payload (§5.5.1, §7.4): returns its code.
pub fn close_payload(p: &[u8]) -> Result<Option<u16>, ProtocolError> {
    match p.len() {
        0 => Ok(None),
        1 => Err(ProtocolError::CloseFrameTooShort),
        _ => {
            let code = u16::from_be_bytes([p[0], p[1]]);
            if !close_code::is_valid_received(code) {
                return Err(ProtocolError::InvalidCloseCode);
            }
            utf8::complete(&p[2..]).map_err(|_| ProtocolError::InvalidCloseReason)?;
            Ok(Some(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(fin: bool, op: u8, len: u64) -> Vec<u8> {
        let mut v = vec![0; MAX_HEADER];
        let n = encode(&mut v, fin, op, len, Some([1, 2, 3, 4]));
        v.truncate(n);
        v
    }

    #[test]
    fn round_trip_all_length_forms() {
        for len in [
            0u64,
            1,
            125,
            126,
            127,
            0xFFFF,
            0x10000,
            1 << 40,
            (1 << 63) - 1,
        ] {
            for masked in [false, true] {
                let mut b = [0u8; MAX_HEADER];
                let mask = masked.then_some([9, 8, 7, 6]);
                let n = encode(&mut b, true, opcode::BINARY, len, mask);
                assert_eq!(n, header_len(len, masked));
                let role = if masked {
                    Role::FromClient
                } else {
                    Role::FromServer
                };
                let h = decode(&b[..n], role).unwrap().unwrap();
                assert_eq!(h.len, len);
                assert_eq!(h.mask, mask);
                assert_eq!(h.header_len, n);
                assert!(h.fin);
                assert_eq!(h.opcode, opcode::BINARY);
            }
        }
    }

    #[test]
    fn every_prefix_needs_more_bytes() {
        for len in [5u64, 300, 70000] {
            let h = client(false, opcode::TEXT, len);
            for cut in 0..h.len() {
                assert_eq!(
                    decode(&h[..cut], Role::FromClient),
                    Ok(None),
                    "len {len} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn server_header_is_four_bytes_shorter() {
        for len in [0u64, 125, 126, 65535, 65536, 1 << 33] {
            assert_eq!(header_len(len, true) - 4, header_len(len, false));
        }
    }

    #[test]
    fn rejections_fail_fast() {
        use ProtocolError::*;
        // RSV bits, seen in the first byte alone.
        for rsv in [0x40u8, 0x20, 0x10] {
            assert_eq!(decode(&[0x81 | rsv], Role::FromClient), Err(ReservedBits));
        }
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(decode(&[0x80 | op], Role::FromClient), Err(UnknownOpcode));
        }
        for op in [opcode::CLOSE, opcode::PING, opcode::PONG] {
            assert_eq!(decode(&[op], Role::FromClient), Err(ControlFragmented));
            assert_eq!(
                decode(&[0x80 | op, 0x80 | 126], Role::FromClient),
                Err(ControlTooLong)
            );
            assert!(decode(&[0x80 | op, 0x80 | 125], Role::FromClient)
                .unwrap()
                .is_none());
        }
        assert_eq!(decode(&[0x81, 0x05], Role::FromClient), Err(UnmaskedFrame));
        assert_eq!(decode(&[0x81, 0x85], Role::FromServer), Err(MaskedFrame));
        let mut top = vec![0x82, 0xFF];
        top.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(decode(&top, Role::FromClient), Err(LengthOverflow));
        let mut max = vec![0x82, 0xFF];
        max.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(decode(&max, Role::FromClient), Err(LengthOverflow));
    }

    #[test]
    fn encode_before_ends_where_asked() {
        let mut b = [0u8; 32];
        let s = encode_before(&mut b, 20, true, opcode::TEXT, 300);
        assert_eq!(s, 16);
        let h = decode(&b[s..], Role::FromServer).unwrap().unwrap();
        assert_eq!(h.len, 300);
        assert_eq!(s + h.header_len, 20);
    }
}
