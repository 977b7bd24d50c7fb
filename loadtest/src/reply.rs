//! What a server should answer to each message, and checking an answer as
//! its bytes arrive.
//!
//! Invariants: in `echo` mode the answer is the message itself (checked in
//! `client`). In `json` mode the answer to payload `p` is exactly what
//! serde_json writes for `{"name": p, "age": 18, "description": p +
//! "很厉害!!!!"}` with the keys in that order and no whitespace. Payload bytes
//! are printable ASCII or 0x7F, so the only ones serde_json escapes are
//! the backslash (in random payloads, written `\\`) and the quote (in JSON
//! payloads, written `\"`); 0x7F is written as is. A [`JsonCheck`] walks a
//! reply piece by piece, wherever fragments or reads cut it: the literal parts
//! are compared byte for byte, and both strings are unescaped on the fly and
//! checked with the payload functions (connection id, sequence number,
//! pattern, exact length), so nothing is copied but the 24 header bytes and
//! nothing is allocated.

use clap::ValueEnum;
use serde::Serialize;

use crate::payload::{self, Pattern, HEADER};

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
/// `escaped` are backslashes or quotes (each written as two bytes, twice).
pub const fn json_len(size: usize, escaped: usize) -> usize {
    PREFIX.len() + MIDDLE.len() + SUFFIX.len() + 2 * (size + escaped)
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
    /// What follows the payload header in both strings.
    pattern: Pattern,
}

impl Default for JsonCheck {
    fn default() -> Self {
        JsonCheck::new(Pattern::Random)
    }
}

/// The index of the first backslash or quote in `b`, a word at a time: in
/// a string, either starts an escape or is a fault.
#[inline]
fn find_special(b: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const SLASHES: u64 = 0x5C5C_5C5C_5C5C_5C5C;
    const QUOTES: u64 = 0x2222_2222_2222_2222;
    // The lowest byte flagged is the first zero byte of `w` (a borrow can
    // only flag bytes above a real zero).
    let zeros = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut chunks = b.chunks_exact(8);
    let mut i = 0;
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap());
        let z = zeros(w ^ SLASHES) | zeros(w ^ QUOTES);
        if z != 0 {
            return Some(i + z.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&c| c == b'\\' || c == b'"')
        .map(|k| i + k)
}

impl JsonCheck {
    /// Checks replies to payloads of this pattern.
    pub fn new(pattern: Pattern) -> Self {
        JsonCheck {
            part: Part::Prefix,
            at: 0,
            escape: false,
            head: [0; HEADER],
            seq: None,
            size: 0,
            fault: None,
            pattern,
        }
    }

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
                let c = bytes[i];
                if c != b'\\' && c != b'"' {
                    self.fault = Some(Fault::Wrong(part));
                    return i;
                }
                self.escape = false;
                i += 1;
                self.take(&[c], conn, size_of);
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
            let plain = find_special(run).unwrap_or(run.len());
            self.take(&run[..plain], conn, size_of);
            i += plain;
            if plain < run.len() && self.fault.is_none() {
                if run[plain] == b'"' {
                    // Unescaped: the string ends short, or is not JSON.
                    self.fault = Some(Fault::Wrong(part));
                    return i;
                }
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
            let offset = self.at - HEADER;
            if self.pattern.check_range(run, conn, seq, offset).is_err() {
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
mod tests;
