//! The opening handshake from the client's side (RFC 6455 §4.1): the
//! request written, the response checked.
//!
//! The key is 16 bytes from the caller's random source, in base64; the
//! response must be a 101 whose `Sec-WebSocket-Accept` is that key's hash,
//! which proves the server read this request and speaks WebSocket. Anything
//! a client did not offer (a subprotocol, an extension) is refused, as §4.1
//! requires; an answer to a permessage-deflate offer is judged by
//! [`accept`]. The response head is parsed in place; bytes after it are the
//! server's first frames and stay with the caller.

use base64::{engine::general_purpose::STANDARD, Engine};

use super::config::ClientConfig;
use super::error::{RequestError, ResponseError};
use super::url::Target;
use crate::handshake::{accept_key, find_header_end, has_token, is_token, trim, MAX_HEADERS};
use crate::proto::deflate::offer::{accept, write_offer, ClientTerms, DeflateOffer};

/// A `Sec-WebSocket-Key`: 16 random bytes in base64.
pub type Key = [u8; 24];

/// The key for 16 random bytes.
pub fn key_from(random: [u8; 16]) -> Key {
    let mut key = [0u8; 24];
    let n = STANDARD
        .encode_slice(random, &mut key)
        .expect("16 bytes are 24 in base64");
    debug_assert_eq!(n, 24);
    key
}

/// Headers the handshake writes itself; a caller may not set them.
const RESERVED: [&str; 5] = [
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
];

/// Check the request options: names are tokens, values carry no control
/// character (no header can be smuggled in), nothing the handshake owns is
/// overridden, and each subprotocol is a token offered once.
pub fn check_options(cfg: &ClientConfig) -> Result<(), RequestError> {
    for (name, value) in &cfg.headers {
        if !is_token(name.as_bytes()) {
            return Err(RequestError::HeaderName(name.clone()));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED.contains(&lower.as_str()) || lower.starts_with("sec-websocket-") {
            return Err(RequestError::ReservedHeader(name.clone()));
        }
        if !value_ok(value) {
            return Err(RequestError::HeaderValue(name.clone()));
        }
    }
    if cfg.origin.as_deref().is_some_and(|o| !value_ok(o)) {
        return Err(RequestError::Origin);
    }
    for (i, p) in cfg.subprotocols.iter().enumerate() {
        if !is_token(p.as_bytes()) || cfg.subprotocols[..i].contains(p) {
            return Err(RequestError::Subprotocol(p.clone()));
        }
    }
    Ok(())
}

/// Visible ASCII, spaces and tabs; no controls.
fn value_ok(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

/// Write the upgrade request for `target` into `out`. The options must
/// have passed [`check_options`].
pub fn write_request(out: &mut Vec<u8>, target: &Target<'_>, key: &Key, cfg: &ClientConfig) {
    out.extend_from_slice(b"GET ");
    target.write_resource(out);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    target.write_host(out);
    out.extend_from_slice(b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\nSec-WebSocket-Version: 13\r\n");
    if let Some(o) = &cfg.origin {
        header(out, "Origin", o);
    }
    if !cfg.subprotocols.is_empty() {
        header(out, "Sec-WebSocket-Protocol", &cfg.subprotocols.join(", "));
    }
    if let Some(o) = &cfg.deflate {
        write_offer(out, o);
    }
    for (name, value) in &cfg.headers {
        header(out, name, value);
    }
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The server's answer to the upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 101, and every check passed. Frames start at `head_len`.
    Upgraded {
        /// The length of the response head.
        head_len: usize,
        /// The subprotocol chosen, as its index among those offered.
        protocol: Option<usize>,
        /// permessage-deflate as agreed, if offered and accepted.
        deflate: Option<ClientTerms>,
    },
    /// Some other status: the caller may read up to `content_length` (if
    /// given) body bytes from `head_len` on, for the error it reports.
    Refused {
        /// The status code.
        code: u16,
        /// The reason phrase.
        reason: String,
        /// The length of the response head.
        head_len: usize,
        /// The body's length, if the response says.
        content_length: Option<usize>,
    },
}

/// Read the response at the start of `buf`: `Ok(None)` while its head is
/// incomplete, having already scanned `buf[..scanned]` without finding
/// its end. `offered` are the subprotocols offered, `deflate` the
/// permessage-deflate offer if one was made.
pub fn read_response(
    buf: &[u8],
    scanned: usize,
    key: &Key,
    offered: &[String],
    deflate: Option<&DeflateOffer>,
    max_head: usize,
) -> Result<Option<Answer>, ResponseError> {
    let Some(end) = find_header_end(buf, scanned) else {
        return if buf.len() > max_head {
            Err(ResponseError::TooLarge)
        } else {
            Ok(None)
        };
    };
    if end > max_head {
        return Err(ResponseError::TooLarge);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseError::TooLarge),
        _ => return Err(ResponseError::Malformed),
    }
    if res.version != Some(1) {
        return Err(ResponseError::Malformed);
    }
    let code = res.code.ok_or(ResponseError::Malformed)?;
    let headers = res.headers;
    if code != 101 {
        let content_length = find(headers, "content-length")
            .and_then(|v| std::str::from_utf8(trim(v)).ok())
            .and_then(|v| v.parse().ok());
        return Ok(Some(Answer::Refused {
            code,
            reason: res.reason.unwrap_or("").to_string(),
            head_len: end,
            content_length,
        }));
    }
    if !all(headers, "upgrade").any(|v| has_token(v, b"websocket")) {
        return Err(ResponseError::NoUpgrade);
    }
    if !all(headers, "connection").any(|v| has_token(v, b"upgrade")) {
        return Err(ResponseError::NoConnectionUpgrade);
    }
    let mut accepts = all(headers, "sec-websocket-accept");
    match (accepts.next(), accepts.next()) {
        (Some(a), None) if trim(a) == accept_key(key) => {}
        _ => return Err(ResponseError::BadAccept),
    }
    let mut extensions = all(headers, "sec-websocket-extensions");
    let deflate = match deflate {
        Some(o) => accept(extensions, o).map_err(ResponseError::BadExtension)?,
        None if extensions.any(|v| !trim(v).is_empty()) => {
            return Err(ResponseError::UnrequestedExtension)
        }
        None => None,
    };
    let mut protocols = all(headers, "sec-websocket-protocol");
    let protocol = match (protocols.next(), protocols.next()) {
        (None, _) => None,
        (Some(p), None) => Some(
            offered
                .iter()
                .position(|o| o.as_bytes() == trim(p))
                .ok_or(ResponseError::UnrequestedProtocol)?,
        ),
        (Some(_), Some(_)) => return Err(ResponseError::UnrequestedProtocol),
    };
    Ok(Some(Answer::Upgraded {
        head_len: end,
        protocol,
        deflate,
    }))
}

fn all<'h>(
    headers: &'h [httparse::Header<'h>],
    name: &'static str,
) -> impl Iterator<Item = &'h [u8]> + 'h {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn find<'h>(headers: &'h [httparse::Header<'h>], name: &'static str) -> Option<&'h [u8]> {
    all(headers, name).next()
}

#[cfg(test)]
mod tests;
