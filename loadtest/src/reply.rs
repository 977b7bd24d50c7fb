//! What a server should answer to each message, and checking an answer as
//! its bytes arrive.
//!
//! Invariants: in `echo` mode the answer is the message itself (checked in
//! `client`). In `json` mode the answer to payload `p` is exactly what
//! serde_json writes for `{"name": p, "age": 18, "description": p +
//! "很厉害!!!!"}` with the keys in that order and no whitespace. Payload bytes
//! are 0x40..=0x7F, so the only one serde_json escapes is the backslash
//! (written `\\`); 0x7F is written as is. A [`JsonCheck`] walks a reply
//! piece by piece, wherever fragments or reads cut it: the literal parts
//! are compared byte for byte, and both strings are unescaped on the fly and
//! checked with the payload functions (connection id, sequence number,
//! pattern, exact length), so nothing is copied but the 24 header bytes and
//! nothing is allocated.

use clap::ValueEnum;
use serde::Serialize;

use crate::payload::{self, HEADER};

/// What the server answers to each message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyMode {
    /// The message itself: same opcode, length and content.
    #[default]
    Echo,
    /// One text message `{"name":p,"age":18,"description":p+"很厉害!!!!"}`
    /// for each text message `p`.
    Json,
}

/// Everything before the name.
pub const PREFIX: &[u8] = br#"{"name":""#;
/// Everything between the name and the description.
pub const MIDDLE: &[u8] = br#"","age":18,"description":""#;
/// Everything after the payload in the description.
pub const SUFFIX: &[u8] = "很厉害!!!!\"}".as_bytes();

/// The length of the JSON reply to a payload of `size` bytes of which
/// `backslashes` are backslashes (each written as two bytes, twice).
pub const fn json_len(size: usize, backslashes: usize) -> usize {
    PREFIX.len() + MIDDLE.len() + SUFFIX.len() + 2 * (size + backslashes)
}

/// The parts of a JSON reply, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Prefix,
    Name,
    Middle,
    Description,
    Suffix,
    /// After the closing brace: nothing more may come.
    End,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Prefix => r#"the opening {"name":""#,
            Part::Name => "the name",
            Part::Middle => r#"the ","age":18,"description":""#,
            Part::Description => "the description",
            Part::Suffix => r#"the closing 很厉害!!!!"}"#,
            Part::End => "the end",
        })
    }
}

/// Why a reply is not the expected JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// This part differs (for a string: its payload header, pattern or
    /// escaping; a string of the wrong length shows in the part after it).
    Wrong(Part),
    /// The reply ended inside this part.
    Short(Part),
    /// Bytes after the closing brace.
    Long,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Wrong(p) => write!(f, "{p} differs"),
            Fault::Short(p) => write!(f, "it ends in {p}"),
            Fault::Long => write!(f, "bytes follow the closing brace"),
        }
    }
}

/// The outcome of checking one reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The message the reply answers, when its name's header was readable.
    pub seq: Option<u64>,
    pub fault: Option<Fault>,
}

/// The state of checking one JSON reply; one per connection, reused for
/// every reply with [`JsonCheck::start`].
#[derive(Debug, Clone)]
pub struct JsonCheck {
    part: Part,
    /// Bytes matched of a literal part, or unescaped bytes of a string.
    at: usize,
    /// The last byte of a string was a backslash: an escape is open.
    escape: bool,
    /// A string's payload header, gathered across pieces.
    head: [u8; HEADER],
    seq: Option<u64>,
    /// The payload's size, known once the name's header is read.
    size: usize,
    fault: Option<Fault>,
}

impl Default for JsonCheck {
    fn default() -> Self {
        JsonCheck {
            part: Part::Prefix,
            at: 0,
            escape: false,
            head: [0; HEADER],
            seq: None,
            size: 0,
            fault: None,
        }
    }
}

/// The index of the first backslash in `b`, a word at a time.
#[inline]
fn find_backslash(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const SLASHES: u64 = 0x5C5C_5C5C_5C5C_5C5C;
    let mut chunks = b.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap()) ^ SLASHES;
        // The lowest byte flagged here is the first zero byte of `w` (a
        // borrow can only flag bytes above a real zero).
        let z = w.wrapping_sub(ONES) & !w & HIGHS;
        if z != 0 {
            return Some(i + z.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'\\')
        .map(|k| i + k)
}

impl JsonCheck {
    /// Get ready for the next reply.
    #[inline]
    pub fn start(&mut self) {
        self.part = Part::Prefix;
        self.at = 0;
        self.escape = false;
        self.seq = None;
        self.size = 0;
        self.fault = None;
    }

    /// Check the next `bytes` of a reply on connection `conn`; `size_of`
    /// gives the payload size of a sequence number. After the first fault
    /// the rest of the reply is ignored.
    #[inline]
    pub fn feed(&mut self, mut bytes: &[u8], conn: u32, size_of: impl Fn(u64) -> usize) {
        while !bytes.is_empty() && self.fault.is_none() {
            let used = match self.part {
                Part::Prefix => self.literal(bytes, PREFIX, Part::Name),
                Part::Middle => self.literal(bytes, MIDDLE, Part::Description),
                Part::Suffix => self.literal(bytes, SUFFIX, Part::End),
                Part::Name | Part::Description => self.string(bytes, conn, &size_of),
                Part::End => {
                    self.fault = Some(Fault::Long);
                    return;
                }
            };
            bytes = &bytes[used..];
        }
    }

    /// The reply is complete.
    pub fn finish(&self) -> Verdict {
        let fault = match (self.fault, self.part) {
            (Some(f), _) => Some(f),
            (None, Part::End) => None,
            (None, p) => Some(Fault::Short(p)),
        };
        Verdict {
            seq: self.seq,
            fault,
        }
    }

    fn literal(&mut self, bytes: &[u8], lit: &[u8], next: Part) -> usize {
        let n = (lit.len() - self.at).min(bytes.len());
        if bytes[..n] != lit[self.at..self.at + n] {
            self.fault = Some(Fault::Wrong(self.part));
            return n;
        }
        self.at += n;
        if self.at == lit.len() {
            self.part = next;
            self.at = 0;
        }
        n
    }

    /// Consume escaped string bytes until the string's payload is complete,
    /// the piece ends, or a fault; returns the bytes consumed.
    fn string(&mut self, bytes: &[u8], conn: u32, size_of: &impl Fn(u64) -> usize) -> usize {
        let part = self.part;
        let mut i = 0;
        while i < bytes.len() && self.part == part && self.fault.is_none() {
            if self.escape {
                // serde_json escapes nothing else in a payload.
                if bytes[i] != b'\\' {
                    self.fault = Some(Fault::Wrong(part));
                    return i;
                }
                self.escape = false;
                i += 1;
                self.take(b"\\", conn, size_of);
                continue;
            }
            // Unescaped bytes still due: up to the end of the header, then
            // up to the end of the payload. Never past it, so the closing
            // quote and the suffix are left to the literal parts.
            let due = if self.at < HEADER {
                HEADER - self.at
            } else {
                self.size - self.at
            };
            let run = &bytes[i..bytes.len().min(i + due)];
            let plain = find_backslash(run).unwrap_or(run.len());
            self.take(&run[..plain], conn, size_of);
            i += plain;
            if plain < run.len() {
                self.escape = true;
                i += 1;
            }
        }
        i
    }

    /// Check unescaped payload bytes that never cross the end of the header
    /// or of the payload.
    #[inline]
    fn take(&mut self, run: &[u8], conn: u32, size_of: &impl Fn(u64) -> usize) {
        if run.is_empty() {
            return;
        }
        if self.at < HEADER {
            self.head[self.at..self.at + run.len()].copy_from_slice(run);
            self.at += run.len();
            if self.at == HEADER {
                match (payload::sequence(&self.head, conn), self.part, self.seq) {
                    (Ok(seq), Part::Name, _) => {
                        self.seq = Some(seq);
                        self.size = size_of(seq);
                    }
                    (Ok(seq), Part::Description, Some(name)) if seq == name => {}
                    _ => self.fault = Some(Fault::Wrong(self.part)),
                }
            }
        } else {
            let seq = self.seq.unwrap_or(0);
            if payload::check_range(run, conn, seq, self.at - HEADER).is_err() {
                self.fault = Some(Fault::Wrong(self.part));
                return;
            }
            self.at += run.len();
        }
        // (`size` is 0 until the name's header is read.)
        if self.fault.is_none() && self.at >= HEADER && self.at >= self.size {
            self.part = match self.part {
                Part::Name => Part::Middle,
                _ => Part::Suffix,
            };
            self.at = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde_json writes for the reply, field order as declared.
    fn serde_reply(p: &[u8]) -> Vec<u8> {
        #[derive(Serialize)]
        struct Reply<'a> {
            name: &'a str,
            age: u32,
            description: String,
        }
        let name = std::str::from_utf8(p).unwrap();
        serde_json::to_vec(&Reply {
            name,
            age: 18,
            description: format!("{name}很厉害!!!!"),
        })
        .unwrap()
    }

    fn payload(len: usize, conn: u32, seq: u64) -> Vec<u8> {
        let mut v = vec![0; len];
        payload::fill(&mut v, conn, seq, [0; 4]);
        v
    }

    /// A payload of `len` bytes whose body holds backslashes.
    fn payload_with_backslashes(len: usize, conn: u32) -> (Vec<u8>, u64) {
        (0..)
            .map(|seq| (payload(len, conn, seq), seq))
            .find(|(p, _)| p[HEADER..].iter().filter(|&&b| b == b'\\').count() >= 2)
            .unwrap()
    }

    fn check(reply: &[u8], conn: u32, size: usize, cuts: &[usize]) -> Verdict {
        let mut c = JsonCheck::default();
        c.start();
        let mut from = 0;
        for &cut in cuts.iter().chain([reply.len()].iter()) {
            c.feed(&reply[from..cut], conn, |_| size);
            from = cut;
        }
        c.finish()
    }

    #[test]
    fn serde_json_escapes_only_the_backslash() {
        let all: Vec<u8> = (0x40..=0x7Fu8).collect();
        let s = std::str::from_utf8(&all).unwrap();
        let json = serde_json::to_string(s).unwrap();
        let mut want = String::from("\"");
        for c in s.chars() {
            if c == '\\' {
                want.push('\\');
            }
            want.push(c);
        }
        want.push('"');
        assert_eq!(json, want);
        assert!(json.contains('\x7F'), "0x7F is written as is");
    }

    #[test]
    fn literals_and_length_match_serde_json() {
        let (p, _) = payload_with_backslashes(100, 1);
        let slashes = p.iter().filter(|&&b| b == b'\\').count();
        let reply = serde_reply(&p);
        assert_eq!(reply.len(), json_len(p.len(), slashes));
        assert!(reply.starts_with(PREFIX));
        assert!(reply.ends_with(SUFFIX));
    }

    #[test]
    fn accepts_serde_json_replies_cut_anywhere() {
        let mut cases: Vec<(Vec<u8>, u64)> =
            [24, 25, 32, 33].map(|len| (payload(len, 7, 3), 3)).into();
        cases.extend([64, 200, 1024].map(|len| payload_with_backslashes(len, 7)));
        for (p, seq) in cases {
            let len = p.len();
            let reply = serde_reply(&p);
            let ok = Verdict {
                seq: Some(seq),
                fault: None,
            };
            assert_eq!(check(&reply, 7, len, &[]), ok, "len {len}");
            for cut in 0..=reply.len() {
                assert_eq!(check(&reply, 7, len, &[cut]), ok, "len {len} cut {cut}");
            }
            // Byte by byte: every escape is split from what it escapes.
            let all: Vec<usize> = (1..reply.len()).collect();
            assert_eq!(check(&reply, 7, len, &all), ok, "len {len}");
        }
    }

    #[test]
    fn every_altered_byte_is_caught() {
        let (p, _) = payload_with_backslashes(80, 2);
        let reply = serde_reply(&p);
        for at in 0..reply.len() {
            for flip in [0x01, 0x20] {
                let mut r = reply.clone();
                r[at] ^= flip;
                let v = check(&r, 2, p.len(), &[at]);
                assert!(v.fault.is_some(), "flip {flip:#x} at {at} missed");
            }
        }
    }

    #[test]
    fn truncated_long_and_foreign_replies_are_caught() {
        let (p, seq) = payload_with_backslashes(64, 5);
        let reply = serde_reply(&p);
        for end in 0..reply.len() {
            let v = check(&reply[..end], 5, p.len(), &[]);
            assert!(matches!(v.fault, Some(Fault::Short(_))), "end {end}: {v:?}");
        }
        let mut long = reply.clone();
        long.push(b' ');
        assert_eq!(check(&long, 5, p.len(), &[]).fault, Some(Fault::Long));
        // The echo instead of the JSON.
        assert_eq!(
            check(&p, 5, p.len(), &[]).fault,
            Some(Fault::Wrong(Part::Prefix))
        );
        // Another connection's message.
        let v = check(&reply, 6, p.len(), &[]);
        assert_eq!(v.fault, Some(Fault::Wrong(Part::Name)));
        // A description that answers another message.
        let other = serde_reply(&payload(64, 5, seq + 1));
        let split = |r: &[u8]| {
            let at = r.windows(MIDDLE.len()).position(|w| w == MIDDLE).unwrap();
            (r[..at].to_vec(), r[at..].to_vec())
        };
        let mut mixed = split(&reply).0;
        mixed.extend(split(&other).1);
        let v = check(&mixed, 5, p.len(), &[]);
        assert_eq!(v.seq, Some(seq));
        assert_eq!(v.fault, Some(Fault::Wrong(Part::Description)));
    }

    #[test]
    fn escaping_must_be_exact() {
        let (p, _) = payload_with_backslashes(64, 9);
        let reply = serde_reply(&p);
        // A backslash left unescaped shortens the string: caught.
        let at = PREFIX.len()
            + reply[PREFIX.len()..]
                .iter()
                .position(|&b| b == b'\\')
                .unwrap();
        let mut unescaped = reply.clone();
        unescaped.remove(at);
        assert!(check(&unescaped, 9, p.len(), &[]).fault.is_some());
        // The same byte escaped another way (\u005c) is not what serde_json
        // writes: caught.
        let mut other = reply[..at].to_vec();
        other.extend_from_slice(br"\u005c");
        other.extend_from_slice(&reply[at + 2..]);
        assert_eq!(
            check(&other, 9, p.len(), &[]).fault,
            Some(Fault::Wrong(Part::Name))
        );
    }

    #[test]
    fn a_wrong_length_payload_is_caught() {
        let p = payload(40, 1, 0);
        let reply = serde_reply(&p);
        // The size expected for that message differs.
        assert!(check(&reply, 1, 41, &[]).fault.is_some());
        assert!(check(&reply, 1, 39, &[]).fault.is_some());
    }

    #[test]
    fn finds_backslashes() {
        let mut b = vec![b'A'; 40];
        assert_eq!(find_backslash(&b), None);
        for at in 0..40 {
            b[at] = b'\\';
            assert_eq!(find_backslash(&b), Some(at));
            b[39] = b'\\';
            assert_eq!(find_backslash(&b), Some(at));
            b[39] = b'A';
            b[at] = b'A';
        }
        // Bytes next to 0x5C are not taken for it.
        assert_eq!(find_backslash(b"[]]]]][[]]]]][[]]]"), None);
    }
}
