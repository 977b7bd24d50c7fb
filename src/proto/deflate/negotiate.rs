//! The server's side of the permessage-deflate negotiation (RFC 7692 §7),
//! sans I/O.
//!
//! Invariants:
//! * nothing allocates and nothing fails: a request's offers are read in
//!   place, and whatever cannot be honoured is declined, never refused (an
//!   extension is optional; the upgrade goes on without it);
//! * the server never takes its compression context over: every response
//!   carries `server_no_context_takeover`, so no compressor outlives a
//!   message;
//! * an [`Agreed`] only comes from [`negotiate`] (it has private fields), so
//!   its windows are always in 8..=15 and [`write_response`] always fits in
//!   [`RESPONSE_LEN`];
//! * what the response says is exactly what [`Agreed`] records, so both
//!   ends apply the same parameters.

use crate::http::Cursor;

/// What the server accepts (configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Negotiate permessage-deflate at all. Default true.
    pub enabled: bool,
    /// Largest LZ77 window in bits (9..=15) the server compresses with.
    /// Default 15. Values outside 9..=15 are taken as the nearest bound.
    pub server_max_window_bits: u8,
    /// Largest window in bits (9..=15) the server lets a client compress
    /// with, when the client's offer allows us to say (it offered
    /// `client_max_window_bits`). Default 15. Values outside 9..=15 are taken
    /// as the nearest bound.
    pub client_max_window_bits: u8,
    /// Let the client keep its compression context between messages.
    /// Default false: the response always carries
    /// `client_no_context_takeover` (RFC 7692 §7.1.1.2 lets the server add
    /// it even when not offered). Even when true, a client whose offer does
    /// not let us limit its window to `client_max_window_bits` is asked for
    /// `client_no_context_takeover`, so that no connection keeps an inflater
    /// larger than configured between messages.
    pub client_context_takeover: bool,
    /// zlib level (0-9) of the whole messages services send compressed.
    /// Default 1: zlib-rs's fastest (docs/benchmarks.md).
    pub level: u32,
    /// Whole messages shorter than this go uncompressed. Default 128.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            enabled: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
            client_context_takeover: false,
            level: 1,
            threshold: 128,
        }
    }
}

/// The parameters one connection runs with.
///
/// Built only by [`negotiate`]: the private fields record which window
/// parameters the response must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The client resets its compressor for every message.
    pub client_no_context_takeover: bool,
    /// Window bits (8..=15) the client compresses with: what our inflater
    /// needs (15 if the client was not limited).
    pub client_window: u8,
    /// Window bits (8..=15) the client's inflater has for our messages: 15
    /// unless the offer had `server_max_window_bits` or the configuration's
    /// `server_max_window_bits` is below 15. A compressor uses
    /// [`Terms::compress_window`](super::Terms::compress_window).
    pub server_window: u8,
    /// `SAY_*` bits: the window parameters the response carries.
    said: u8,
}

/// The response carries `server_max_window_bits=<server_window>`.
const SAY_SERVER_WINDOW: u8 = 1;
/// The response carries `client_max_window_bits=<client_window>`.
const SAY_CLIENT_WINDOW: u8 = 2;

impl Agreed {
    /// A client's compressed message may be sent back to it as it came:
    /// neither side keeps context and the client's window fits the window
    /// its inflater has for ours.
    pub fn echo_as_is(&self) -> bool {
        self.client_no_context_takeover && self.client_window <= self.server_window
    }
}

const LINE_START: &[u8] = b"Sec-WebSocket-Extensions: permessage-deflate";
const SERVER_NO_CONTEXT: &[u8] = b"; server_no_context_takeover";
const CLIENT_NO_CONTEXT: &[u8] = b"; client_no_context_takeover";
const SERVER_WINDOW: &[u8] = b"; server_max_window_bits=";
const CLIENT_WINDOW: &[u8] = b"; client_max_window_bits=";

/// The longest line write_response writes: every parameter, two-digit
/// windows, and the CRLF.
pub const RESPONSE_LEN: usize = LINE_START.len()
    + SERVER_NO_CONTEXT.len()
    + CLIENT_NO_CONTEXT.len()
    + SERVER_WINDOW.len()
    + 2
    + CLIENT_WINDOW.len()
    + 2
    + 2;

/// Pick the first permessage-deflate offer we can honour, from all
/// Sec-WebSocket-Extensions headers of the request taken in order as one
/// comma-separated list (RFC 6455 §9.1 grammar: extension-token *( ";"
/// extension-param ), param = token [ "=" (token | quoted-string) ], with the
/// quoted-string value unescaped and required to be a token). None when
/// disabled, nothing offered, or no offer can be honoured. Never an error: a
/// malformed offer is declined (and later offers still considered if the
/// list can still be split safely; if the header syntax is so broken the
/// list cannot be split, decline everything).
///
/// Optional whitespace is allowed around `,`, `;` and `=`; empty list
/// elements are ignored (RFC 7230 §7); extension and parameter names compare
/// ASCII-case-insensitively; other extensions are ignored.
pub fn negotiate(headers: &[httparse::Header<'_>], cfg: &DeflateConfig) -> Option<Agreed> {
    if !cfg.enabled {
        return None;
    }
    let mut chosen = None;
    let lists = headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"));
    for h in lists {
        let mut rest = Some(h.value);
        while let Some(list) = rest {
            // An unterminated quoted-string: where this element ends, and so
            // where any later offer starts, is unknowable. Even an offer
            // already chosen is dropped, so that the answer does not depend
            // on how far the damage is from it.
            let (element, more) = split_first(list)?;
            if chosen.is_none() {
                chosen = parse_offer(element).map(|o| agree(&o, cfg));
            }
            rest = more;
        }
    }
    chosen
}

/// Write the response header line, e.g. "Sec-WebSocket-Extensions:
/// permessage-deflate; server_no_context_takeover;
/// client_no_context_takeover\r\n", into `out` (at least RESPONSE_LEN
/// bytes), returning the byte count.
///
/// # Panics
/// If `out` is shorter than [`RESPONSE_LEN`], or a window was set outside
/// 8..=15 (which [`negotiate`] never does).
pub fn write_response(a: &Agreed, out: &mut [u8]) -> usize {
    assert!(out.len() >= RESPONSE_LEN, "response buffer too small");
    assert!(
        (8..=15).contains(&a.client_window) && (8..=15).contains(&a.server_window),
        "window bits outside 8..=15"
    );
    let mut w = Cursor::new(out);
    // RFC 7692 §7.1.1.1: "A server MAY include the
    // "server_no_context_takeover" extension parameter in an extension
    // negotiation response even if the extension negotiation offer being
    // accepted by the extension negotiation response didn't include" it.
    // Always saying it lets the loop reset one shared compressor per
    // message instead of keeping one per connection.
    w.put(LINE_START).put(SERVER_NO_CONTEXT);
    if a.client_no_context_takeover {
        w.put(CLIENT_NO_CONTEXT);
    }
    if a.said & SAY_SERVER_WINDOW != 0 {
        w.put(SERVER_WINDOW).put_num(a.server_window.into());
    }
    if a.said & SAY_CLIENT_WINDOW != 0 {
        w.put(CLIENT_WINDOW).put_num(a.client_window.into());
    }
    w.put(b"\r\n");
    w.len()
}

/// The parameters of one well-formed offer, each seen at most once.
#[derive(Debug, Default, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// The window bits of a configuration, within what the server can use.
fn config_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// The parameters for a well-formed offer: every well-formed offer can be
/// honoured.
fn agree(o: &Offer, cfg: &DeflateConfig) -> Agreed {
    let server_max = config_bits(cfg.server_max_window_bits);
    let client_max = config_bits(cfg.client_max_window_bits);
    let mut said = 0;

    // §7.1.2.1: a server accepts an offered server_max_window_bits with the
    // same or a smaller value, and MAY include the parameter even when it
    // was not offered; saying a configured limit below 15 lets the client
    // allocate a smaller inflater, and keeps server_window exactly what we
    // compress with. 8 only when the client asked for exactly 8.
    let server_window = match o.server_max_window_bits {
        Some(offered) => offered.min(server_max),
        None => server_max,
    };
    if o.server_max_window_bits.is_some() || server_window < 15 {
        said |= SAY_SERVER_WINDOW;
    }

    // §7.1.2.2: the response may carry client_max_window_bits only if the
    // offer did, with no larger value than offered; an offered value already
    // binds the client, answered or not.
    let offered_client = o.client_max_window_bits.map(|v| v.unwrap_or(15));
    // §7.1.1.2: the server MAY include client_no_context_takeover whether or
    // not it was offered. A client that keeps its context keeps an inflater
    // of its window here between messages, so one whose window cannot be
    // limited to the configured size is asked to drop its context instead.
    let client_no_context_takeover = !cfg.client_context_takeover
        || o.client_no_context_takeover
        || (offered_client.is_none() && client_max < 15);

    let client_window = match offered_client {
        None => 15,
        Some(offered) => {
            // A client that drops its context can have its messages echoed
            // as they came if its window fits the one its inflater has for
            // ours. Never below 9 though, unless the client offered 8
            // itself: zlib-based clients cannot compress with 8 bits.
            let cap = if client_no_context_takeover {
                server_window.max(9)
            } else {
                15
            };
            let w = client_max.min(offered).min(cap);
            if w < offered {
                said |= SAY_CLIENT_WINDOW;
            }
            w
        }
    };

    Agreed {
        client_no_context_takeover,
        client_window,
        server_window,
        said,
    }
}

/// The first element of a comma-separated list and the rest after its
/// comma, if any; commas inside quoted-strings do not split. None if a
/// quoted-string is not terminated: the list cannot be split.
fn split_first(list: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
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

/// A parameter value, judged as window bits.
enum Value {
    Absent,
    /// 8..=15, written as the RFC's ABNF wants (no leading zero).
    Bits(u8),
    /// Anything else.
    Other,
}

/// A well-formed permessage-deflate offer in one list element; None for
/// anything else (another extension, an empty element, a malformed one, an
/// unknown, duplicate or invalid parameter: RFC 7692 §7 says the server
/// MUST decline those).
fn parse_offer(element: &[u8]) -> Option<Offer> {
    let mut p = Scan { s: element, i: 0 };
    p.ows();
    if !p.token()?.eq_ignore_ascii_case(b"permessage-deflate") {
        return None;
    }
    let mut offer = Offer::default();
    loop {
        p.ows();
        if p.i == p.s.len() {
            return Some(offer);
        }
        if !p.eat(b';') {
            return None;
        }
        p.ows();
        let name = p.token()?;
        p.ows();
        let value = if p.eat(b'=') {
            p.ows();
            p.value()?
        } else {
            Value::Absent
        };
        offer.set(name, value)?;
    }
}

impl Offer {
    /// Records one parameter; None if it is unknown, repeated or has an
    /// invalid value.
    fn set(&mut self, name: &[u8], value: Value) -> Option<()> {
        let is = |n: &str| name.eq_ignore_ascii_case(n.as_bytes());
        let no_value = matches!(value, Value::Absent);
        if is("server_no_context_takeover") && no_value && !self.server_no_context_takeover {
            self.server_no_context_takeover = true;
        } else if is("client_no_context_takeover") && no_value && !self.client_no_context_takeover {
            self.client_no_context_takeover = true;
        } else if is("server_max_window_bits") && self.server_max_window_bits.is_none() {
            let Value::Bits(b) = value else { return None };
            self.server_max_window_bits = Some(b);
        } else if is("client_max_window_bits") && self.client_max_window_bits.is_none() {
            self.client_max_window_bits = match value {
                Value::Absent => Some(None),
                Value::Bits(b) => Some(Some(b)),
                Value::Other => return None,
            };
        } else {
            return None;
        }
        Some(())
    }
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

#[cfg(test)]
mod tests;
