//! The client side of the opening handshake (RFC 6455 §4.1).
//!
//! Invariants: the request is written into a caller's buffer (no
//! allocation); a response is accepted only with status 101, `Upgrade:
//! websocket`, a `Connection` header containing `upgrade`, and the
//! `Sec-WebSocket-Accept` that our key implies. Anything else is a failed
//! handshake with the reason kept.

use base64::Engine;

use crate::target::Target;

const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// The base64 form of a 16-byte key.
pub const KEY_LEN: usize = 24;
/// The base64 form of a SHA-1 digest.
pub const ACCEPT_LEN: usize = 28;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeError {
    /// The response is not valid HTTP.
    Malformed,
    /// A status other than 101.
    Status(u16),
    MissingUpgrade,
    MissingConnection,
    BadAccept,
    /// The response headers do not fit in the buffer.
    TooLong,
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Malformed => write!(f, "malformed HTTP response"),
            HandshakeError::Status(s) => write!(f, "status {s} instead of 101"),
            HandshakeError::MissingUpgrade => write!(f, "no 'Upgrade: websocket'"),
            HandshakeError::MissingConnection => write!(f, "no 'Connection: upgrade'"),
            HandshakeError::BadAccept => write!(f, "wrong Sec-WebSocket-Accept"),
            HandshakeError::TooLong => write!(f, "response headers too long"),
        }
    }
}

/// A nonce and the accept value the server must answer with.
pub struct Key {
    pub key: [u8; KEY_LEN],
    pub accept: [u8; ACCEPT_LEN],
}

impl Key {
    pub fn new(nonce: [u8; 16]) -> Self {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut key = [0u8; KEY_LEN];
        b64.encode_slice(nonce, &mut key)
            .expect("24 bytes hold 16 in base64");
        let mut h = sha1_smol::Sha1::new();
        h.update(&key);
        h.update(GUID.as_bytes());
        let mut accept = [0u8; ACCEPT_LEN];
        b64.encode_slice(h.digest().bytes(), &mut accept)
            .expect("28 bytes hold 20 in base64");
        Key { key, accept }
    }
}

/// Write the upgrade request into `out`; returns its length, or `None` if
/// `out` is too small.
pub fn write_request(out: &mut [u8], target: &Target, key: &Key) -> Option<usize> {
    use std::io::Write;
    let mut cur = std::io::Cursor::new(out);
    let ok = write!(
        cur,
        "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n\r\n",
        target.path,
        target.host,
        std::str::from_utf8(&key.key).unwrap_or_default(),
    );
    ok.ok().map(|_| cur.position() as usize)
}

/// Parse a response at the start of `buf`. `Ok(None)`: incomplete; `Ok(Some(n))`:
/// valid, the first `n` bytes were the response (frames may follow).
pub fn check_response(buf: &[u8], key: &Key) -> Result<Option<usize>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let n = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooLong),
        Err(_) => return Err(HandshakeError::Malformed),
    };
    let code = resp.code.unwrap_or(0);
    if code != 101 {
        return Err(HandshakeError::Status(code));
    }
    let (mut upgrade, mut connection, mut accept) = (false, false, false);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade |= h.value.eq_ignore_ascii_case(b"websocket");
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection |= h
                .value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
        } else if h.name.eq_ignore_ascii_case("sec-websocket-accept") {
            accept |= h.value.trim_ascii() == key.accept;
        }
    }
    if !upgrade {
        Err(HandshakeError::MissingUpgrade)
    } else if !connection {
        Err(HandshakeError::MissingConnection)
    } else if !accept {
        Err(HandshakeError::BadAccept)
    } else {
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_sample_key() {
        // RFC 6455 §1.3: nonce "the sample nonce".
        let k = Key::new(*b"the sample nonce");
        assert_eq!(&k.key, b"dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(&k.accept, b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn accepts_good_and_rejects_bad() {
        let k = Key::new(*b"the sample nonce");
        let good = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n\
            Connection: keep-alive, Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81";
        assert_eq!(check_response(good, &k), Ok(Some(good.len() - 1)));
        assert_eq!(check_response(&good[..40], &k), Ok(None));
        let bad = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\
            Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n";
        assert_eq!(check_response(bad, &k), Err(HandshakeError::BadAccept));
        let refused = b"HTTP/1.1 400 Bad Request\r\n\r\n";
        assert_eq!(
            check_response(refused, &k),
            Err(HandshakeError::Status(400))
        );
    }

    #[test]
    fn request_fits() {
        let t: Target = "ws://127.0.0.1:1/x".parse().unwrap();
        let mut buf = [0u8; 256];
        let n = write_request(&mut buf, &t, &Key::new([1; 16])).unwrap();
        let s = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(s.starts_with("GET /x HTTP/1.1\r\n"));
        assert!(s.ends_with("\r\n\r\n"));
        assert!(write_request(&mut [0u8; 20], &t, &Key::new([1; 16])).is_none());
    }
}
