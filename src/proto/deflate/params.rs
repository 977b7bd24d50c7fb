//! The `Sec-WebSocket-Extensions` grammar both sides of the negotiation
//! read (RFC 6455 §9.1), and the four permessage-deflate parameters
//! (RFC 7692 §7.1), the same in an offer and in a response.
//!
//! Invariants:
//! * everything is read in place; nothing allocates;
//! * a quoted-string value is unescaped before it is judged, so a value
//!   means the same quoted or not;
//! * [`parse`] yields a [`Params`] only for a well-formed element, each
//!   parameter seen at most once; what the parameters may be in an offer or
//!   a response is the caller's to judge.

/// The first element of a comma-separated list and the rest after its
/// comma, if any; commas inside quoted-strings do not split. None if a
/// quoted-string is not terminated: the list cannot be split.
pub(super) fn split_first(list: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let mut quoted = false;
    let mut i = 0;
    while i < list.len() {
        match (quoted, list[i]) {
            (false, b',') => return Some((&list[..i], Some(&list[i + 1..]))),
            (false, b'"') => quoted = true,
            (true, b'"') => quoted = false,
            // A quoted-pair: the next byte is literal, even a quote.
            (true, b'\\') => i += 1,
            _ => {}
        }
        i += 1;
    }
    (!quoted).then_some((list, None))
}

/// The parameters of one well-formed permessage-deflate element, each
/// seen at most once.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Params {
    pub(super) server_no_context_takeover: bool,
    pub(super) client_no_context_takeover: bool,
    pub(super) server_max_window_bits: Option<u8>,
    /// `Some(None)`: given without a value.
    pub(super) client_max_window_bits: Option<Option<u8>>,
}

/// Why an element is not a well-formed permessage-deflate element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flaw {
    /// Nothing but whitespace: RFC 7230 §7 has such elements ignored.
    Empty,
    /// Another extension's element.
    OtherExtension,
    /// Not `token *( ";" param )`, or a value neither a token nor a
    /// terminated quoted-string.
    Syntax,
    /// A parameter permessage-deflate does not define.
    Unknown,
    /// The named parameter given twice.
    Repeated(&'static str),
    /// The named parameter with a value it may not have, or without one it
    /// needs.
    Value(&'static str),
}

/// The parameters of one list element (as [`split_first`] gives it).
/// Optional whitespace is allowed around `;` and `=`; names compare
/// ASCII-case-insensitively.
pub(super) fn parse(element: &[u8]) -> Result<Params, Flaw> {
    let mut p = Scan { s: element, i: 0 };
    p.ows();
    if p.i == p.s.len() {
        return Err(Flaw::Empty);
    }
    let name = p.token().ok_or(Flaw::Syntax)?;
    if !name.eq_ignore_ascii_case(b"permessage-deflate") {
        return Err(Flaw::OtherExtension);
    }
    let mut params = Params::default();
    loop {
        p.ows();
        if p.i == p.s.len() {
            return Ok(params);
        }
        if !p.eat(b';') {
            return Err(Flaw::Syntax);
        }
        p.ows();
        let name = p.token().ok_or(Flaw::Syntax)?;
        p.ows();
        let value = if p.eat(b'=') {
            p.ows();
            p.value().ok_or(Flaw::Syntax)?
        } else {
            Value::Absent
        };
        params.set(name, value)?;
    }
}

/// A parameter value, judged as window bits.
enum Value {
    Absent,
    /// 8..=15, written as the RFC's ABNF wants (no leading zero).
    Bits(u8),
    /// Anything else.
    Other,
}

impl Params {
    /// Records one parameter.
    fn set(&mut self, name: &[u8], value: Value) -> Result<(), Flaw> {
        const SERVER_NO_CONTEXT: &str = "server_no_context_takeover";
        const CLIENT_NO_CONTEXT: &str = "client_no_context_takeover";
        const SERVER_WINDOW: &str = "server_max_window_bits";
        const CLIENT_WINDOW: &str = "client_max_window_bits";
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        if is(SERVER_NO_CONTEXT) {
            flag(
                &mut self.server_no_context_takeover,
                value,
                SERVER_NO_CONTEXT,
            )
        } else if is(CLIENT_NO_CONTEXT) {
            flag(
                &mut self.client_no_context_takeover,
                value,
                CLIENT_NO_CONTEXT,
            )
        } else if is(SERVER_WINDOW) {
            if self.server_max_window_bits.is_some() {
                return Err(Flaw::Repeated(SERVER_WINDOW));
            }
            let Value::Bits(b) = value else {
                return Err(Flaw::Value(SERVER_WINDOW));
            };
            self.server_max_window_bits = Some(b);
            Ok(())
        } else if is(CLIENT_WINDOW) {
            if self.client_max_window_bits.is_some() {
                return Err(Flaw::Repeated(CLIENT_WINDOW));
            }
            self.client_max_window_bits = match value {
                Value::Absent => Some(None),
                Value::Bits(b) => Some(Some(b)),
                Value::Other => return Err(Flaw::Value(CLIENT_WINDOW)),
            };
            Ok(())
        } else {
            Err(Flaw::Unknown)
        }
    }
}

/// Sets a parameter that takes no value.
fn flag(seen: &mut bool, value: Value, name: &'static str) -> Result<(), Flaw> {
    if *seen {
        return Err(Flaw::Repeated(name));
    }
    if !matches!(value, Value::Absent) {
        return Err(Flaw::Value(name));
    }
    *seen = true;
    Ok(())
}

/// A position in one list element.
struct Scan<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    /// Skips optional whitespace (SP, HTAB).
    fn ows(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// Consumes `b` if it is next.
    fn eat(&mut self, b: u8) -> bool {
        let next = self.s.get(self.i) == Some(&b);
        self.i += usize::from(next);
        next
    }

    /// One or more token characters; None if there are none.
    fn token(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        while self.s.get(self.i).is_some_and(|&b| is_tchar(b)) {
            self.i += 1;
        }
        (self.i > start).then(|| &self.s[start..self.i])
    }

    /// A token or a quoted-string, unescaped (RFC 6455 §9.1); None if
    /// neither. The RFC also wants the unescaped content to be a token, but
    /// every valid value here is window bits, so any content that is not
    /// is just [`Value::Other`].
    fn value(&mut self) -> Option<Value> {
        // Window bits are at most two characters: keep the first three,
        // enough to tell a longer value apart.
        let mut kept = [0u8; 3];
        let mut len = 0;
        let mut keep = |b: u8| {
            if let Some(k) = kept.get_mut(len) {
                *k = b;
            }
            len += 1;
        };
        if self.eat(b'"') {
            loop {
                let mut b = *self.s.get(self.i)?;
                self.i += 1;
                if b == b'"' {
                    break;
                }
                if b == b'\\' {
                    b = *self.s.get(self.i)?;
                    self.i += 1;
                }
                keep(b);
            }
        } else {
            self.token()?.iter().for_each(|&b| keep(b));
        }
        Some(match kept.get(..len) {
            Some(&[d @ b'8'..=b'9']) => Value::Bits(d - b'0'),
            Some(&[b'1', d @ b'0'..=b'5']) => Value::Bits(10 + d - b'0'),
            _ => Value::Other,
        })
    }
}

/// RFC 7230 §3.2.6 `tchar`: visible ASCII except delimiters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b)
}
