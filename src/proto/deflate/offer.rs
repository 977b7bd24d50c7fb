//! The client's side of the permessage-deflate negotiation (RFC 7692 §5,
//! §7), sans I/O: the offer written, the server's response judged.
//!
//! Invariants:
//! * the offer is one permessage-deflate element that always carries
//!   `client_no_context_takeover` (the client resets its compressor for
//!   every message) and a valueless `client_max_window_bits` (the server
//!   may limit the client's window);
//! * [`accept`] takes nothing but a single well-formed permessage-deflate
//!   element whose parameters honour the offer; anything else fails the
//!   connection, as RFC 7692 §7.1 and RFC 6455 §9.1 require of a client;
//! * a [`ClientTerms`] only comes from such a response, so its window is in
//!   8..=15; the response is read in place, without allocating.

use std::fmt;

use super::negotiate::{CLIENT_NO_CONTEXT, LINE_START, SERVER_NO_CONTEXT, SERVER_WINDOW};
use super::params::{self, split_first, Flaw, Params};

/// What a client offers (ClientConfig.deflate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateOffer {
    /// Ask the server not to keep its compression context between messages
    /// (`server_no_context_takeover`), so the client holds no inflater
    /// between messages. Default false (as browsers).
    pub server_no_context_takeover: bool,
    /// Ask the server to compress with at most this many window bits:
    /// 9..=15 (values outside are taken as the nearest bound); 15 means not
    /// asked (no `server_max_window_bits` in the offer). Default 15.
    pub server_max_window_bits: u8,
    /// Whole messages shorter than this go uncompressed, and so do those
    /// compressing would make longer. Default 128. 0: every message goes
    /// compressed, whatever that does to its size, as browsers and Python's
    /// `websockets` send them.
    pub threshold: usize,
}

impl Default for DeflateOffer {
    fn default() -> Self {
        DeflateOffer {
            server_no_context_takeover: false,
            server_max_window_bits: 15,
            threshold: 128,
        }
    }
}

impl DeflateOffer {
    /// The server window asked for, within what the offer may say.
    fn server_window(&self) -> u8 {
        self.server_max_window_bits.clamp(9, 15)
    }
}

/// What the server's response agreed to, as the client applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientTerms {
    /// The server keeps its compression context between messages: the
    /// client's inflater must keep its window between messages (false when
    /// the response has server_no_context_takeover).
    pub server_takeover: bool,
    /// Window bits (8..=15) the client may compress with: the response's
    /// `client_max_window_bits=N`, else 15.
    pub client_window: u8,
}

impl ClientTerms {
    /// Window bits to give zlib for compressing: `client_window`, but 9
    /// for 8, for the reason given at
    /// [`Terms::compress_window`](super::Terms::compress_window).
    pub fn compress_window(self) -> u8 {
        self.client_window.max(9)
    }
}

/// Why the server's `Sec-WebSocket-Extensions` answer to an offer is not
/// accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionError {
    /// The list cannot be read: an unterminated quoted-string, or an
    /// element that is not `name *( ";" param )`.
    Malformed,
    /// An extension other than permessage-deflate, the only one offered.
    Unoffered,
    /// permessage-deflate accepted more than once.
    Twice,
    /// A parameter permessage-deflate does not define.
    UnknownParameter,
    /// The named parameter given more than once.
    RepeatedParameter(&'static str),
    /// The named parameter with a missing, extra or invalid value.
    BadValue(&'static str),
    /// The offer asked for `server_no_context_takeover`, and the response
    /// lacks it.
    ServerContextKept,
    /// The offer asked for `server_max_window_bits`, and the response lacks
    /// it or gives a larger value.
    ServerWindow,
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ExtensionError::*;
        match self {
            Malformed => f.write_str("malformed Sec-WebSocket-Extensions"),
            Unoffered => f.write_str("an extension other than permessage-deflate"),
            Twice => f.write_str("permessage-deflate accepted more than once"),
            UnknownParameter => f.write_str("a parameter permessage-deflate does not define"),
            RepeatedParameter(p) => write!(f, "{p} given more than once"),
            BadValue(p) => write!(f, "{p} with a missing, extra or invalid value"),
            ServerContextKept => f.write_str("server_no_context_takeover asked for, not granted"),
            ServerWindow => {
                f.write_str("server_max_window_bits asked for, not granted or larger than asked")
            }
        }
    }
}

impl std::error::Error for ExtensionError {}

impl From<Flaw> for ExtensionError {
    fn from(flaw: Flaw) -> Self {
        match flaw {
            // Blank elements are skipped before this is reached.
            Flaw::Empty | Flaw::Syntax => ExtensionError::Malformed,
            Flaw::OtherExtension => ExtensionError::Unoffered,
            Flaw::Unknown => ExtensionError::UnknownParameter,
            Flaw::Repeated(p) => ExtensionError::RepeatedParameter(p),
            Flaw::Value(p) => ExtensionError::BadValue(p),
        }
    }
}

/// Append the offer's header line, e.g. "Sec-WebSocket-Extensions:
/// permessage-deflate; client_max_window_bits;
/// client_no_context_takeover\r\n", to `out`.
pub fn write_offer(out: &mut Vec<u8>, o: &DeflateOffer) {
    out.extend_from_slice(LINE_START);
    out.extend_from_slice(b"; client_max_window_bits");
    out.extend_from_slice(CLIENT_NO_CONTEXT);
    if o.server_no_context_takeover {
        out.extend_from_slice(SERVER_NO_CONTEXT);
    }
    let bits = o.server_window();
    if bits < 15 {
        out.extend_from_slice(SERVER_WINDOW);
        if bits >= 10 {
            out.push(b'1');
        }
        out.push(b'0' + bits % 10);
    }
    out.extend_from_slice(b"\r\n");
}

/// Judge the response to offer `o`, given every `Sec-WebSocket-Extensions`
/// value of the 101 in order, taken as one comma-separated list (the same
/// grammar as [`negotiate`](super::negotiate())'s; empty elements are
/// ignored). `Ok(None)`: the server declined (no element); the connection
/// goes on uncompressed.
pub fn accept<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    o: &DeflateOffer,
) -> Result<Option<ClientTerms>, ExtensionError> {
    let mut terms = None;
    for value in values {
        let mut rest = Some(value);
        while let Some(list) = rest {
            let (element, more) = split_first(list).ok_or(ExtensionError::Malformed)?;
            rest = more;
            let p = match params::parse(element) {
                Err(Flaw::Empty) => continue,
                p => p?,
            };
            // Only one extension was offered, and it only once.
            if terms.is_some() {
                return Err(ExtensionError::Twice);
            }
            terms = Some(agreed(&p, o)?);
        }
    }
    Ok(terms)
}

/// The terms of a well-formed response element, if it honours `o`.
fn agreed(p: &Params, o: &DeflateOffer) -> Result<ClientTerms, ExtensionError> {
    // §7.1.1.1: a server accepts an offered server_no_context_takeover by
    // including it; it MAY include it unasked.
    if o.server_no_context_takeover && !p.server_no_context_takeover {
        return Err(ExtensionError::ServerContextKept);
    }
    // §7.1.2.1: an offered server_max_window_bits is accepted with the same
    // or a smaller value; unasked, the server MAY still say one, which our
    // full-size inflater decodes anyway.
    let asked = o.server_window();
    if asked < 15 && !p.server_max_window_bits.is_some_and(|b| b <= asked) {
        return Err(ExtensionError::ServerWindow);
    }
    // §7.1.2.2: in a response, client_max_window_bits carries a value; the
    // offer's had none, so any window in range is within it.
    // client_no_context_takeover needs nothing: the client never keeps its
    // context.
    let client_window = match p.client_max_window_bits {
        None => 15,
        Some(Some(b)) => b,
        Some(None) => return Err(ExtensionError::BadValue("client_max_window_bits")),
    };
    Ok(ClientTerms {
        server_takeover: !p.server_no_context_takeover,
        client_window,
    })
}

#[cfg(test)]
mod tests;
