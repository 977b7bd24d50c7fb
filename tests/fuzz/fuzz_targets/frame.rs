//! Arbitrary bytes as a frame header, decoded in both roles.
//!
//! Invariants: nothing panics; a decoded header obeys the rules (mask bit
//! per role, known opcode, control frames final and short, length below
//! 2^63, header length as the form used says); re-encoding it gives back
//! the same header bytes whenever the length was minimally encoded; and
//! decoding is incremental: every prefix shorter than the header is
//! `Ok(None)` or already the same error, never a different answer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerows::frame::{decode, encode, header_len, opcode, Role, MAX_CONTROL_PAYLOAD, MAX_HEADER};

fn check(data: &[u8], role: Role) {
    let full = decode(data, role);
    match full {
        Ok(Some(h)) => {
            assert!(h.header_len <= data.len() && h.header_len <= MAX_HEADER);
            assert_eq!(h.mask.is_some(), role == Role::FromClient);
            assert!(matches!(
                h.opcode,
                opcode::CONTINUATION
                    | opcode::TEXT
                    | opcode::BINARY
                    | opcode::CLOSE
                    | opcode::PING
                    | opcode::PONG
            ));
            if opcode::is_control(h.opcode) {
                assert!(h.fin && h.len <= MAX_CONTROL_PAYLOAD as u64);
            }
            assert!(h.len >> 63 == 0);
            assert_eq!(data[0] & 0x70, 0, "RSV bits");
            let len7 = data[1] & 0x7F;
            let form = match len7 {
                126 => 4,
                127 => 10,
                _ => 2,
            };
            assert_eq!(h.header_len, form + if h.mask.is_some() { 4 } else { 0 });
            let minimal = header_len(h.len, false) == form;
            if minimal {
                assert_eq!(header_len(h.len, h.mask.is_some()), h.header_len);
                let mut out = [0u8; MAX_HEADER];
                let n = encode(&mut out, h.fin, h.opcode, h.len, h.mask);
                assert_eq!(&out[..n], &data[..h.header_len], "re-encoding {h:?}");
                // And the re-encoded header decodes to the same header.
                assert_eq!(decode(&out[..n], role), Ok(Some(h)));
            }
            for k in 0..h.header_len {
                assert_eq!(decode(&data[..k], role), Ok(None), "prefix {k} of {h:?}");
            }
            // Trailing payload bytes do not change the header.
            let mut longer = data[..h.header_len].to_vec();
            longer.extend_from_slice(&[0xFF; 3]);
            assert_eq!(decode(&longer, role), Ok(Some(h)));
        }
        Ok(None) => {
            assert!(data.len() < MAX_HEADER);
            for k in 0..data.len() {
                assert_eq!(decode(&data[..k], role), Ok(None), "prefix {k}");
            }
        }
        Err(e) => {
            // Some prefix is the first to fail, with this same error, and
            // every shorter one is waiting for more bytes.
            let mut failed = false;
            for k in 0..=data.len().min(MAX_HEADER) {
                match decode(&data[..k], role) {
                    Ok(None) => assert!(!failed, "prefix {k}: error went away"),
                    Ok(Some(h)) => panic!("prefix {k} decodes ({h:?}), whole fails ({e:?})"),
                    Err(e2) => {
                        assert_eq!(e2, e, "prefix {k}");
                        failed = true;
                    }
                }
            }
            assert!(failed, "the error shows within the first {MAX_HEADER} bytes");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, Role::FromClient);
    check(data, Role::FromServer);
});
