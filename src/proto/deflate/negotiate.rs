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

use super::params::{self, split_first, Params};
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
    /// zlib level (0-9) of the whole messages services send compressed,
    /// and of echoes the server recompresses.
    /// Default 1: zlib-rs's fastest (docs/benchmarks.md).
    pub level: u32,
    /// Whole messages (and echoes the server would recompress) shorter
    /// than this go uncompressed. Default 128.
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

pub(super) const LINE_START: &[u8] = b"Sec-WebSocket-Extensions: permessage-deflate";
pub(super) const SERVER_NO_CONTEXT: &[u8] = b"; server_no_context_takeover";
pub(super) const CLIENT_NO_CONTEXT: &[u8] = b"; client_no_context_takeover";
pub(super) const SERVER_WINDOW: &[u8] = b"; server_max_window_bits=";
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
                // Another extension, an empty element, or a malformed one
                // (an unknown, repeated or invalid parameter among them:
                // RFC 7692 §7 says the server MUST decline those).
                chosen = params::parse(element).ok().map(|o| agree(&o, cfg));
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

/// The window bits of a configuration, within what the server can use.
fn config_bits(bits: u8) -> u8 {
    bits.clamp(9, 15)
}

/// The parameters for a well-formed offer: every well-formed offer can be
/// honoured.
fn agree(o: &Params, cfg: &DeflateConfig) -> Agreed {
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

#[cfg(test)]
mod tests;
