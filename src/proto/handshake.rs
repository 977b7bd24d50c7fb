//! The server's side of the opening handshake (RFC 6455 §4.2), sans I/O.
//!
//! Invariants:
//! * nothing here allocates: the request is parsed once, in place, into a
//!   fixed array of [`MAX_HEADERS`] headers on the stack, the key is decoded
//!   into a fixed array, and responses are written into a caller's slice;
//! * a request is judged only as a whole head, `\r\n\r\n` included: the
//!   caller finds its end with [`find_header_end`] (resumable, linear in the
//!   bytes received) and bounds it with [`check_size`]; bytes after the end
//!   belong to the WebSocket stream and are never looked at here;
//! * checks run in a fixed order (see [`parse`]), so a request with several
//!   faults always gets the same refusal;
//! * the only subprotocol ever negotiated is an RFC 7230 token of at most
//!   [`MAX_PROTOCOL_LEN`] bytes that the client offered verbatim, so a
//!   negotiated name can always be echoed without escaping and fits in
//!   [`RESPONSE_BUF`];
//! * permessage-deflate is negotiated here too ([`deflate::negotiate()`]),
//!   never failing the upgrade: an offer we cannot honour is declined.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::error::HandshakeError;
use crate::http::Cursor;
use crate::proto::deflate::negotiate::RESPONSE_LEN as EXTENSIONS_LEN;
use crate::proto::deflate::{self, Agreed, DeflateConfig};
use crate::service::Request;

/// Most request headers accepted; one more is refused as `TooLarge`.
pub const MAX_HEADERS: usize = 64;

/// Appended to the client's key before hashing (RFC 6455 §1.3).
pub const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Longest subprotocol name that can be negotiated; longer names in
/// [`HandshakeConfig::subprotocols`] are never chosen.
pub const MAX_PROTOCOL_LEN: usize = 128;

/// Room for the longest response this crate writes before the upgrade: the
/// 101 with a [`MAX_PROTOCOL_LEN`] protocol and the longest extension line
/// ([`deflate::negotiate::RESPONSE_LEN`]), or any refusal or page head.
pub const RESPONSE_BUF: usize = 512;

/// [`HandshakeConfig::path`] that lets every path through to the service
/// (which may still refuse it in [`Service::accept`](crate::Service::accept)).
pub const ANY_PATH: &str = "*";

/// What the server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeConfig {
    /// The one path served, compared byte for byte (no percent-decoding)
    /// with the request target minus any `?query`; [`ANY_PATH`] (`"*"`)
    /// serves every path the metrics and health paths do not take.
    pub path: String,
    /// Origins allowed besides those naming the request's own host, compared
    /// ASCII-case-insensitively with the whole `Origin` value; `"*"` allows
    /// every origin.
    pub allowed_origins: Vec<String>,
    /// Subprotocols in the server's order of preference.
    pub subprotocols: Vec<String>,
    /// Longest request head accepted, terminator included.
    pub max_header_bytes: usize,
    /// Path of the Prometheus metrics (a plain GET); `None`: not served.
    pub metrics_path: Option<String>,
    /// Path of the health check (a plain GET); `None`: not served.
    pub health_path: Option<String>,
    /// What permessage-deflate offers are accepted.
    pub deflate: DeflateConfig,
}

impl Default for HandshakeConfig {
    fn default() -> Self {
        HandshakeConfig {
            path: "/".to_owned(),
            allowed_origins: Vec::new(),
            subprotocols: Vec::new(),
            max_header_bytes: 8192,
            metrics_path: Some("/metrics".to_owned()),
            health_path: Some("/healthz".to_owned()),
            deflate: DeflateConfig::default(),
        }
    }
}

/// What a valid request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A valid WebSocket upgrade.
    Upgrade {
        /// The `Sec-WebSocket-Accept` value.
        accept: [u8; 28],
        /// Index into [`HandshakeConfig::subprotocols`] of the one chosen.
        protocol: Option<usize>,
        /// The permessage-deflate parameters agreed, if an offer was accepted.
        deflate: Option<Agreed>,
    },
    /// A plain GET (no `Upgrade` header) of the served path: serve the page.
    Page,
    /// A GET of [`HandshakeConfig::metrics_path`].
    Metrics,
    /// A GET of [`HandshakeConfig::health_path`].
    Health,
    /// A plain GET (no `Upgrade` header) of a path not served: answered
    /// 404 like a refused upgrade, but no handshake was attempted.
    NotFound,
}

/// `base64(SHA-1(key ++ GUID))`, the `Sec-WebSocket-Accept` value for `key`
/// (RFC 6455 §4.2.2 item 5.4).
pub fn accept_key(key: &[u8]) -> [u8; 28] {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key);
    sha.update(GUID);
    let digest = sha.digest().bytes();
    let mut out = [0u8; 28];
    // 20 bytes always encode to exactly 28 characters.
    let n = STANDARD
        .encode_slice(digest, &mut out)
        .expect("28 bytes hold a SHA-1 in base64");
    debug_assert_eq!(n, out.len());
    out
}

/// Finds the end of the header block (`\r\n\r\n`) in `buf`, resuming a
/// search that already covered `buf[..scanned]` without finding it.
///
/// Only the new bytes, plus the 3 before them in case the terminator
/// straddles two reads, are examined, so feeding a request one byte at a time
/// costs linear time overall. Returns the index just past the terminator,
/// i.e. the length of the head and the offset of the first frame byte. On
/// `None` the caller should remember `buf.len()` as the next `scanned` and
/// call [`check_size`].
///
/// Bare-LF line endings are not recognised: RFC 7230 §3 asks for CRLF and
/// every WebSocket client sends it; such a head just runs into the size
/// limit.
pub fn find_header_end(buf: &[u8], scanned: usize) -> Option<usize> {
    let start = scanned.min(buf.len()).saturating_sub(3);
    buf[start..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| start + i + 4)
}

/// Refuses a head still unterminated after `buffered` bytes once that
/// reaches `cfg.max_header_bytes`: the head is then longer than the limit.
///
/// For the case where [`find_header_end`] returned `None`; a found head of
/// `end` bytes is within the limit iff `end <= cfg.max_header_bytes`, which
/// [`scan_head`] checks as well.
pub fn check_size(buffered: usize, cfg: &HandshakeConfig) -> Result<(), HandshakeError> {
    if buffered >= cfg.max_header_bytes {
        Err(HandshakeError::TooLarge)
    } else {
        Ok(())
    }
}

/// Whether `buf` can still be the start of an HTTP request: a method token
/// and a space. Looks at 32 bytes at most, so it can run on every read of
/// an incomplete head, and lets binary sent to the port (a TLS hello, a
/// scanner's probe) be refused at once instead of waiting for a CRLF that
/// never comes.
pub fn plausible_start(buf: &[u8]) -> bool {
    const MAX_METHOD: usize = 31;
    for (i, &b) in buf.iter().take(MAX_METHOD + 1).enumerate() {
        if b == b' ' {
            return i > 0;
        }
        let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if !tchar || i == MAX_METHOD {
            return false;
        }
    }
    true
}

/// [`find_header_end`] and [`check_size`] together: `Ok(Some(end))` once a
/// head within the limit is complete, `Ok(None)` to wait for more bytes.
pub fn scan_head(
    buf: &[u8],
    scanned: usize,
    cfg: &HandshakeConfig,
) -> Result<Option<usize>, HandshakeError> {
    match find_header_end(buf, scanned) {
        Some(end) if end > cfg.max_header_bytes => Err(HandshakeError::TooLarge),
        Some(end) => Ok(Some(end)),
        None if !plausible_start(buf) => Err(HandshakeError::Malformed),
        None => check_size(buf.len(), cfg).map(|()| None),
    }
}

/// Parses and validates a complete request head: exactly `buf[..end]` as
/// found by [`find_header_end`], nothing after it.
///
/// Checks run in this order, the first failure deciding the refusal:
/// 1. HTTP syntax (`Malformed`; more than [`MAX_HEADERS`] headers is
///    `TooLarge`); a head that ends before `head.len()` is `Malformed`, since
///    the caller would otherwise treat header bytes as frames;
/// 2. method `GET`, case-sensitively (`MethodNotAllowed`);
/// 3. path (`NotFound`; without an `Upgrade` header, [`Outcome::NotFound`]:
///    a plain request, not a refused handshake);
/// 4. no `Upgrade` header at all: [`Outcome::Page`], whatever the version;
/// 5. HTTP/1.1 (`HttpVersion`), one non-empty `Host` (`MissingHost`),
///    `Upgrade` naming `websocket` (`NotWebSocket`), `Connection` listing
///    `upgrade` (`MissingConnectionUpgrade`);
/// 6. `Sec-WebSocket-Version: 13` before the key, so a client speaking
///    another version is told 13 (`UnsupportedVersion`) rather than that its
///    key is bad;
/// 7. one `Sec-WebSocket-Key` of 16 bytes in padded standard base64 (`BadKey`);
/// 8. origin, last, so that a malformed request is reported as malformed
///    whatever its origin (`ForbiddenOrigin`, see [`origin_allowed`]).
///
/// Then the subprotocol is chosen (see [`choose_protocol`]) and
/// permessage-deflate negotiated (see [`deflate::negotiate()`]); neither ever
/// fails.
pub fn parse(head: &[u8], cfg: &HandshakeConfig) -> Result<Outcome, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    parse_request(head, cfg, &mut headers).map(|(outcome, _)| outcome)
}

/// [`parse`], also returning the request (target and headers, borrowed
/// from `head`) for the service to look at.
pub fn parse_request<'h>(
    head: &'h [u8],
    cfg: &HandshakeConfig,
    headers: &'h mut [httparse::Header<'h>; MAX_HEADERS],
) -> Result<(Outcome, Request<'h>), HandshakeError> {
    use HandshakeError::*;

    let mut req = httparse::Request::new(headers);
    match req.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(Malformed),
        Err(httparse::Error::TooManyHeaders) => return Err(TooLarge),
        Err(_) => return Err(Malformed),
    }
    // httparse fills all three on `Complete`.
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(Malformed);
    };
    let headers: &'h [httparse::Header<'h>] = req.headers;
    let request = Request { target, headers };

    if method != "GET" {
        return Err(MethodNotAllowed);
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != cfg.path {
        if cfg.metrics_path.as_deref() == Some(path) {
            return Ok((Outcome::Metrics, request));
        } else if cfg.health_path.as_deref() == Some(path) {
            return Ok((Outcome::Health, request));
        } else if cfg.path != ANY_PATH {
            if !headers
                .iter()
                .any(|h| h.name.eq_ignore_ascii_case("upgrade"))
            {
                return Ok((Outcome::NotFound, request));
            }
            return Err(NotFound);
        }
    }

    let mut upgrade_seen = false;
    let mut upgrade_ws = false;
    let mut connection_upgrade = false;
    let mut host: Option<&[u8]> = None;
    let mut hosts = 0;
    let mut version13 = false;
    let mut versions = 0;
    let mut key: &[u8] = &[];
    let mut keys = 0;
    let mut origin: Option<&[u8]> = None;
    let mut origins = 0;
    for h in headers {
        let name = h.name;
        let value = trim(h.value);
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade_seen = true;
            upgrade_ws |= has_token(value, b"websocket");
        } else if name.eq_ignore_ascii_case("connection") {
            connection_upgrade |= has_token(value, b"upgrade");
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host = Some(value);
        } else if name.eq_ignore_ascii_case("sec-websocket-version") {
            versions += 1;
            version13 = value == b"13";
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            keys += 1;
            key = value;
        } else if name.eq_ignore_ascii_case("origin") {
            origins += 1;
            origin = Some(value);
        }
    }

    if !upgrade_seen {
        return Ok((Outcome::Page, request));
    }
    if version == 0 {
        return Err(HttpVersion);
    }
    let host = match host {
        Some(h) if hosts == 1 && !h.is_empty() => h,
        _ => return Err(MissingHost),
    };
    if !upgrade_ws {
        return Err(NotWebSocket);
    }
    if !connection_upgrade {
        return Err(MissingConnectionUpgrade);
    }
    if versions != 1 || !version13 {
        return Err(UnsupportedVersion);
    }
    if keys != 1 || !valid_key(key) {
        return Err(BadKey);
    }
    // Browsers send at most one Origin; two could be an attempt to slip a
    // foreign one past a check that reads only the first.
    let origin_ok = match origin {
        None => true,
        Some(o) => origins == 1 && origin_allowed(o, host, &cfg.allowed_origins),
    };
    if !origin_ok {
        return Err(ForbiddenOrigin);
    }

    let outcome = Outcome::Upgrade {
        accept: accept_key(key),
        protocol: choose_protocol(headers, &cfg.subprotocols),
        deflate: deflate::negotiate(headers, &cfg.deflate),
    };
    Ok((outcome, request))
}

/// Whether a (trimmed) `Origin` value may open a connection.
///
/// Like gorilla/websocket's default check: an origin whose host part, the
/// text after `scheme://` up to the first `/`, `?` or `#`, equals the `Host`
/// header ASCII-case-insensitively is the page's own site and is allowed.
/// The comparison is literal, port included: no default-port or IDNA
/// normalisation, so `http://a.example` does not match `Host: a.example:80`
/// (browsers omit default ports in both). Any other origin, `null` included,
/// must appear in `allowed` (whole value, case-insensitively) or `allowed`
/// must contain `"*"`.
pub fn origin_allowed(origin: &[u8], host: &[u8], allowed: &[String]) -> bool {
    if let Some(i) = origin.windows(3).position(|w| w == b"://") {
        let authority = &origin[i + 3..];
        let len = authority
            .iter()
            .position(|&b| matches!(b, b'/' | b'?' | b'#'))
            .unwrap_or(authority.len());
        if authority[..len].eq_ignore_ascii_case(host) {
            return true;
        }
    }
    allowed
        .iter()
        .any(|a| a == "*" || a.as_bytes().eq_ignore_ascii_case(origin))
}

/// The first of `supported` (server preference, as gorilla/websocket does)
/// that the client offered in any `Sec-WebSocket-Protocol` header, compared
/// exactly after trimming each comma-separated element.
///
/// Names that are not RFC 7230 tokens or are longer than
/// [`MAX_PROTOCOL_LEN`] are skipped, which is what lets
/// [`write_upgrade_response`] echo the choice unchecked.
pub fn choose_protocol(headers: &[httparse::Header<'_>], supported: &[String]) -> Option<usize> {
    supported.iter().position(|p| {
        let p = p.as_bytes();
        p.len() <= MAX_PROTOCOL_LEN
            && is_token(p)
            && headers
                .iter()
                .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-protocol"))
                .any(|h| h.value.split(|&b| b == b',').any(|t| trim(t) == p))
    })
}

/// Writes the `101 Switching Protocols` response into `out` and returns its
/// length. `protocol` should be the name [`parse`] chose, if any, and
/// `deflate` the parameters it agreed, if any.
///
/// # Panics
/// If `out` is shorter than [`RESPONSE_BUF`], or `protocol` is not a token
/// of at most [`MAX_PROTOCOL_LEN`] bytes (which `parse` never chooses):
/// writing such a name could split the header or overrun the buffer.
pub fn write_upgrade_response(
    out: &mut [u8],
    accept: &[u8; 28],
    protocol: Option<&str>,
    deflate: Option<&Agreed>,
) -> usize {
    assert!(out.len() >= RESPONSE_BUF, "response buffer too small");
    let mut w = Cursor::new(out);
    w.put(b"HTTP/1.1 101 Switching Protocols\r\n")
        .put(b"Upgrade: websocket\r\n")
        .put(b"Connection: Upgrade\r\n")
        .put(b"Sec-WebSocket-Accept: ")
        .put(accept)
        .put(b"\r\n");
    if let Some(p) = protocol {
        let p = p.as_bytes();
        assert!(
            p.len() <= MAX_PROTOCOL_LEN && is_token(p),
            "subprotocol is not a token of at most MAX_PROTOCOL_LEN bytes"
        );
        w.put(b"Sec-WebSocket-Protocol: ").put(p).put(b"\r\n");
    }
    if let Some(a) = deflate {
        let mut line = [0u8; EXTENSIONS_LEN];
        let n = deflate::write_response(a, &mut line);
        w.put(&line[..n]);
    }
    w.put(b"\r\n");
    w.len()
}

/// A client key must be 16 bytes in padded standard base64 (RFC 6455
/// §4.2.1 item 5): exactly 24 characters, ending in `==`.
fn valid_key(key: &[u8]) -> bool {
    // Two spare bytes so a 17- or 18-byte decoding is seen and refused
    // rather than depending on how the engine reports a short output.
    let mut raw = [0u8; 18];
    key.len() == 24 && matches!(STANDARD.decode_slice(key, &mut raw), Ok(16))
}

/// Whether the comma-separated list `value` contains `token`,
/// ASCII-case-insensitively.
pub(crate) fn has_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

/// `value` without leading or trailing optional whitespace (SP, HTAB).
pub(crate) fn trim(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// RFC 7230 §3.2.6 `token`: visible ASCII except delimiters, not empty.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use HandshakeError::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const KEY_ACCEPT: &[u8; 28] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    /// A request under construction; tests may allocate.
    #[derive(Clone)]
    struct Req {
        start: String,
        headers: Vec<(String, String)>,
    }

    impl Req {
        /// A minimal valid upgrade of "/".
        fn upgrade() -> Req {
            Req {
                start: "GET / HTTP/1.1".into(),
                headers: vec![
                    ("Host".into(), "example.com".into()),
                    ("Upgrade".into(), "websocket".into()),
                    ("Connection".into(), "Upgrade".into()),
                    ("Sec-WebSocket-Key".into(), KEY.into()),
                    ("Sec-WebSocket-Version".into(), "13".into()),
                ],
            }
        }

        fn start(mut self, line: &str) -> Req {
            self.start = line.into();
            self
        }

        fn remove(mut self, name: &str) -> Req {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            self
        }

        fn add(mut self, name: &str, value: &str) -> Req {
            self.headers.push((name.into(), value.into()));
            self
        }

        fn set(self, name: &str, value: &str) -> Req {
            self.remove(name).add(name, value)
        }

        fn bytes(&self) -> Vec<u8> {
            let mut s = format!("{}\r\n", self.start);
            for (n, v) in &self.headers {
                s += &format!("{n}: {v}\r\n");
            }
            s += "\r\n";
            s.into_bytes()
        }

        fn parse_with(&self, cfg: &HandshakeConfig) -> Result<Outcome, HandshakeError> {
            parse(&self.bytes(), cfg)
        }

        fn parse(&self) -> Result<Outcome, HandshakeError> {
            self.parse_with(&HandshakeConfig::default())
        }

        fn protocol(&self, supported: &[&str]) -> Option<usize> {
            let cfg = HandshakeConfig {
                subprotocols: supported.iter().map(|s| s.to_string()).collect(),
                ..HandshakeConfig::default()
            };
            match self.parse_with(&cfg) {
                Ok(Outcome::Upgrade { protocol, .. }) => protocol,
                other => panic!("not an upgrade: {other:?}"),
            }
        }
    }

    fn is_upgrade(r: Result<Outcome, HandshakeError>) -> bool {
        matches!(r, Ok(Outcome::Upgrade { .. }))
    }

    fn origins(allowed: &[&str]) -> HandshakeConfig {
        HandshakeConfig {
            allowed_origins: allowed.iter().map(|s| s.to_string()).collect(),
            ..HandshakeConfig::default()
        }
    }

    // --- accept key -------------------------------------------------------

    #[test]
    fn accept_key_rfc_example() {
        assert_eq!(&accept_key(KEY.as_bytes()), KEY_ACCEPT);
        assert_eq!(
            &accept_key(b"x3JJHMbDL1EzLkh9GBhXDw=="),
            b"HSmrc0sMlYUkAGmm5OPpG2HaGWk="
        );
    }

    #[test]
    fn minimal_upgrade_accepted() {
        assert_eq!(
            Req::upgrade().parse(),
            Ok(Outcome::Upgrade {
                accept: *KEY_ACCEPT,
                protocol: None,
                deflate: None,
            })
        );
    }

    // --- header end and size --------------------------------------------

    #[test]
    fn header_end_found_for_every_split() {
        let req = Req::upgrade().bytes();
        let want = Some(req.len());
        assert_eq!(find_header_end(&req, 0), want);
        for split in 0..req.len() {
            assert_eq!(find_header_end(&req[..split], 0), None, "split {split}");
            assert_eq!(find_header_end(&req, split), want, "split {split}");
        }
    }

    #[test]
    fn header_end_fed_byte_by_byte() {
        let mut req = Req::upgrade().bytes();
        let end = req.len();
        req.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4]);
        let mut scanned = 0;
        let mut found = None;
        for len in 1..=req.len() {
            if let Some(e) = find_header_end(&req[..len], scanned) {
                found = Some((len, e));
                break;
            }
            scanned = len;
        }
        assert_eq!(found, Some((end, end)));
    }

    #[test]
    fn header_end_points_at_first_frame_byte() {
        let mut buf = Req::upgrade().bytes();
        let head_len = buf.len();
        buf.extend_from_slice(&[0x81, 0x80, 0xde, 0xad, 0xbe, 0xef]);
        let end = find_header_end(&buf, 0).unwrap();
        assert_eq!(end, head_len);
        assert_eq!(buf[end], 0x81);
        assert!(is_upgrade(parse(&buf[..end], &HandshakeConfig::default())));
    }

    #[test]
    fn terminator_split_at_each_of_its_bytes() {
        let req = Req::upgrade().bytes();
        let t = req.len() - 4;
        for k in 0..4 {
            // The first read stops k bytes into the terminator.
            let first = t + k;
            assert_eq!(find_header_end(&req[..first], 0), None, "k {k}");
            assert_eq!(find_header_end(&req, first), Some(req.len()), "k {k}");
        }
    }

    #[test]
    fn header_end_absent_or_stale_scan() {
        assert_eq!(find_header_end(b"", 0), None);
        assert_eq!(find_header_end(b"GET / HTTP/1.1\r\n", 0), None);
        assert_eq!(find_header_end(b"\r\n\r", 0), None);
        assert_eq!(find_header_end(b"\r\n\r\n", 0), Some(4));
        // `scanned` past the end is a caller's bug, but not a panic.
        assert_eq!(find_header_end(b"ab\r\n\r\n", 100), None);
        // Only the first terminator counts.
        assert_eq!(find_header_end(b"a\r\n\r\n\r\n\r\n", 0), Some(5));
    }

    #[test]
    fn size_limit() {
        let cfg = HandshakeConfig {
            max_header_bytes: 100,
            ..HandshakeConfig::default()
        };
        assert_eq!(check_size(0, &cfg), Ok(()));
        assert_eq!(check_size(99, &cfg), Ok(()));
        assert_eq!(check_size(100, &cfg), Err(TooLarge));
        assert_eq!(check_size(5000, &cfg), Err(TooLarge));

        let mut exact = vec![b'x'; 96];
        exact.extend_from_slice(b"\r\n\r\n");
        assert_eq!(scan_head(&exact, 0, &cfg), Ok(Some(100)));
        let mut over = vec![b'x'; 97];
        over.extend_from_slice(b"\r\n\r\n");
        assert_eq!(scan_head(&over, 0, &cfg), Err(TooLarge));
        let partial = |n: usize| {
            let mut v = b"GET /".to_vec();
            v.resize(n, b'x');
            v
        };
        assert_eq!(scan_head(&partial(99), 0, &cfg), Ok(None));
        assert_eq!(scan_head(&partial(100), 0, &cfg), Err(TooLarge));
        // A head within the limit followed by many frame bytes is fine.
        let mut big_read = exact.clone();
        big_read.extend_from_slice(&[0u8; 1000]);
        assert_eq!(scan_head(&big_read, 0, &cfg), Ok(Some(100)));
        assert_eq!(HandshakeConfig::default().max_header_bytes, 8192);
    }

    // --- HTTP syntax --------------------------------------------------------

    #[test]
    fn malformed_requests() {
        let cfg = HandshakeConfig::default();
        for bad in [
            &b"\r\n\r\n"[..],
            b"hello world\r\n\r\n",
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            b"GET / FTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHo st: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\n",        // partial
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nxyz", // bytes after the head
        ] {
            assert_eq!(
                parse(bad, &cfg),
                Err(Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(is_upgrade(Req::upgrade().parse()));
    }

    #[test]
    fn sixty_four_headers_ok_sixty_five_too_many() {
        let mut req = Req::upgrade();
        while req.headers.len() < MAX_HEADERS {
            let i = req.headers.len();
            req = req.add(&format!("X-Filler-{i}"), "1");
        }
        assert!(is_upgrade(req.parse()));
        assert_eq!(req.add("X-One-More", "1").parse(), Err(TooLarge));
    }

    // --- method and path ------------------------------------------------------

    #[test]
    fn method_must_be_get() {
        for m in ["POST", "HEAD", "PUT", "OPTIONS", "get", "Get"] {
            let req = Req::upgrade().start(&format!("{m} / HTTP/1.1"));
            assert_eq!(req.parse(), Err(MethodNotAllowed), "{m}");
        }
        assert!(is_upgrade(Req::upgrade().start("GET / HTTP/1.1").parse()));
    }

    #[test]
    fn path_must_match() {
        for target in [
            "/chat",
            "//",
            "/index.html",
            "*",
            "http://example.com/",
            "/%2F",
        ] {
            let req = Req::upgrade().start(&format!("GET {target} HTTP/1.1"));
            assert_eq!(req.parse(), Err(NotFound), "{target}");
        }
        for target in ["/", "/?", "/?x=1&y=2", "/?a?b"] {
            let req = Req::upgrade().start(&format!("GET {target} HTTP/1.1"));
            assert!(is_upgrade(req.parse()), "{target}");
        }
        let cfg = HandshakeConfig {
            path: "/ws".into(),
            ..HandshakeConfig::default()
        };
        let req = |t: &str| Req::upgrade().start(&format!("GET {t} HTTP/1.1"));
        assert!(is_upgrade(req("/ws").parse_with(&cfg)));
        assert!(is_upgrade(req("/ws?token=1").parse_with(&cfg)));
        assert_eq!(req("/").parse_with(&cfg), Err(NotFound));
        assert_eq!(req("/ws/").parse_with(&cfg), Err(NotFound));
        assert_eq!(req("/WS").parse_with(&cfg), Err(NotFound));
    }

    #[test]
    fn method_then_path_then_the_rest() {
        let broken = Req::upgrade().remove("Sec-WebSocket-Key").remove("Host");
        assert_eq!(
            broken.clone().start("POST /nope HTTP/1.1").parse(),
            Err(MethodNotAllowed)
        );
        assert_eq!(
            broken.clone().start("GET /nope HTTP/1.1").parse(),
            Err(NotFound)
        );
        assert_eq!(broken.parse(), Err(MissingHost));
    }

    // --- the page -------------------------------------------------------------

    #[test]
    fn plain_get_serves_page() {
        let plain = Req::upgrade()
            .remove("Upgrade")
            .remove("Connection")
            .remove("Sec-WebSocket-Key")
            .remove("Sec-WebSocket-Version");
        assert_eq!(plain.parse(), Ok(Outcome::Page));
        assert_eq!(
            plain.clone().start("GET /?q=1 HTTP/1.1").parse(),
            Ok(Outcome::Page)
        );
        assert_eq!(
            plain.clone().start("GET / HTTP/1.0").parse(),
            Ok(Outcome::Page)
        );
        assert_eq!(plain.clone().remove("Host").parse(), Ok(Outcome::Page));
        // Another path: 404, but a plain request, not a refused upgrade.
        assert_eq!(
            plain.clone().start("GET /x HTTP/1.1").parse(),
            Ok(Outcome::NotFound)
        );
        assert_eq!(
            plain.clone().start("POST / HTTP/1.1").parse(),
            Err(MethodNotAllowed)
        );
        // Upgrade-ish headers without Upgrade are still a page request.
        assert_eq!(Req::upgrade().remove("upgrade").parse(), Ok(Outcome::Page));
        // Any Upgrade header at all makes it an upgrade attempt.
        assert_eq!(plain.add("Upgrade", "h2c").parse(), Err(NotWebSocket));
    }

    // --- upgrade headers ------------------------------------------------------

    #[test]
    fn upgrade_needs_http_1_1() {
        let req = Req::upgrade().start("GET / HTTP/1.0");
        assert_eq!(req.parse(), Err(HttpVersion));
        // Checked before the headers.
        assert_eq!(req.remove("Host").parse(), Err(HttpVersion));
    }

    #[test]
    fn exactly_one_host() {
        assert_eq!(Req::upgrade().remove("Host").parse(), Err(MissingHost));
        assert_eq!(
            Req::upgrade().add("Host", "other.org").parse(),
            Err(MissingHost)
        );
        assert_eq!(
            Req::upgrade().add("Host", "example.com").parse(),
            Err(MissingHost)
        );
        assert_eq!(Req::upgrade().set("Host", "").parse(), Err(MissingHost));
        assert!(is_upgrade(
            Req::upgrade().set("Host", "127.0.0.1:9001").parse()
        ));
        assert!(is_upgrade(Req::upgrade().set("Host", "[::1]:9001").parse()));
    }

    #[test]
    fn upgrade_must_name_websocket() {
        for bad in [
            "h2c",
            "websocketx",
            "web socket",
            "",
            "websocket/13",
            "HTTP/2.0",
        ] {
            assert_eq!(
                Req::upgrade().set("Upgrade", bad).parse(),
                Err(NotWebSocket),
                "{bad:?}"
            );
        }
        for good in [
            "websocket",
            "WebSocket",
            "WEBSOCKET",
            "h2c, websocket",
            " websocket ,foo",
        ] {
            assert!(
                is_upgrade(Req::upgrade().set("Upgrade", good).parse()),
                "{good:?}"
            );
        }
        let two = Req::upgrade()
            .set("Upgrade", "h2c")
            .add("Upgrade", "websocket");
        assert!(is_upgrade(two.parse()));
    }

    #[test]
    fn connection_must_list_upgrade() {
        let r = Req::upgrade();
        assert_eq!(
            r.clone().remove("Connection").parse(),
            Err(MissingConnectionUpgrade)
        );
        for bad in ["keep-alive", "close", "upgraded", "up grade", ""] {
            assert_eq!(
                r.clone().set("Connection", bad).parse(),
                Err(MissingConnectionUpgrade),
                "{bad:?}"
            );
        }
        for good in [
            "Upgrade",
            "upgrade",
            "UPGRADE",
            "keep-alive, Upgrade",
            "Upgrade,keep-alive",
        ] {
            assert!(
                is_upgrade(r.clone().set("Connection", good).parse()),
                "{good:?}"
            );
        }
        let two = r
            .set("Connection", "keep-alive")
            .add("Connection", " upgrade ");
        assert!(is_upgrade(two.parse()));
    }

    #[test]
    fn version_must_be_exactly_13() {
        let r = Req::upgrade();
        assert_eq!(
            r.clone().remove("Sec-WebSocket-Version").parse(),
            Err(UnsupportedVersion)
        );
        for bad in ["8", "7", "12", "130", "13, 8", "", "thirteen"] {
            assert_eq!(
                r.clone().set("Sec-WebSocket-Version", bad).parse(),
                Err(UnsupportedVersion),
                "{bad:?}"
            );
        }
        let twice = r.clone().add("Sec-WebSocket-Version", "13");
        assert_eq!(twice.parse(), Err(UnsupportedVersion));
        assert!(is_upgrade(r.set("Sec-WebSocket-Version", " 13\t").parse()));
    }

    #[test]
    fn key_must_be_16_bytes_of_base64() {
        let r = Req::upgrade();
        assert_eq!(r.clone().remove("Sec-WebSocket-Key").parse(), Err(BadKey));
        assert_eq!(r.clone().add("Sec-WebSocket-Key", KEY).parse(), Err(BadKey));
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",       // unpadded
            "dGhlIHNhbXBsZSBub25jZQ=",      // half padded
            "dGhlIHNhbXBsZSBub25jZQ===",    // over padded
            "dGhlIHNhbXBsZSBub25jZR==",     // non-zero trailing bits
            "AAAAAAAAAAAAAAAAAAAAAAAA",     // 18 bytes
            "AAAAAAAAAAAAAAAAAAAAAA=A",     // misplaced padding
            "AAAAAAAAAAAAAAAAAAAAAAAAAA==", // 19 bytes
            "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", // 20 bytes
            "AAAAAAAAAAAAAAAAAAA==",        // 15 bytes, odd length
            "-_-_-_-_-_-_-_-_-_-_-A==",     // URL-safe alphabet
            "dGhlIHNhbXBsZS Bub25jZQ==",    // inner space
            "dGhlIHNhbXBsZSBub25jZQ==dGhlIHNhbXBsZSBub25jZQ==",
        ] {
            assert_eq!(
                r.clone().set("Sec-WebSocket-Key", bad).parse(),
                Err(BadKey),
                "{bad:?}"
            );
        }
        let padded = r.clone().set("Sec-WebSocket-Key", &format!("  {KEY}\t"));
        assert_eq!(
            padded.parse(),
            Ok(Outcome::Upgrade {
                accept: *KEY_ACCEPT,
                protocol: None,
                deflate: None,
            })
        );
        let zeros = r.set("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA==");
        assert!(is_upgrade(zeros.parse()));
    }

    #[test]
    fn version_checked_before_key() {
        let r = Req::upgrade()
            .set("Sec-WebSocket-Version", "8")
            .set("Sec-WebSocket-Key", "x");
        assert_eq!(r.parse(), Err(UnsupportedVersion));
    }

    #[test]
    fn upgrade_checks_in_order() {
        let all_bad = Req::upgrade()
            .set("Upgrade", "h2c")
            .set("Connection", "close")
            .set("Sec-WebSocket-Version", "8")
            .set("Sec-WebSocket-Key", "x")
            .set("Origin", "http://evil.org");
        assert_eq!(all_bad.clone().parse(), Err(NotWebSocket));
        let r = all_bad.set("Upgrade", "websocket");
        assert_eq!(r.clone().parse(), Err(MissingConnectionUpgrade));
        let r = r.set("Connection", "upgrade");
        assert_eq!(r.clone().parse(), Err(UnsupportedVersion));
        let r = r.set("Sec-WebSocket-Version", "13");
        assert_eq!(r.clone().parse(), Err(BadKey));
        let r = r.set("Sec-WebSocket-Key", KEY);
        assert_eq!(r.clone().parse(), Err(ForbiddenOrigin));
        assert!(is_upgrade(r.set("Origin", "http://example.com").parse()));
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let mut lower = Req::upgrade();
        let mut upper = Req::upgrade();
        for (n, _) in &mut lower.headers {
            *n = n.to_ascii_lowercase();
        }
        for (n, _) in &mut upper.headers {
            *n = n.to_ascii_uppercase();
        }
        let lower = lower
            .add("origin", "http://example.com")
            .add("sec-websocket-protocol", "a");
        let upper = upper
            .add("ORIGIN", "http://evil.org")
            .add("SEC-WEBSOCKET-PROTOCOL", "a");
        assert_eq!(lower.protocol(&["a"]), Some(0));
        assert_eq!(upper.parse(), Err(ForbiddenOrigin));
        assert!(is_upgrade(upper.remove("origin").parse()));
    }

    // --- origin -----------------------------------------------------------------

    #[test]
    fn no_origin_accepted() {
        assert!(is_upgrade(Req::upgrade().remove("Origin").parse()));
    }

    #[test]
    fn same_host_origin_accepted() {
        let r = Req::upgrade().set("Host", "Example.com:8080");
        for good in [
            "http://example.com:8080",
            "https://EXAMPLE.COM:8080",
            "HTTPS://example.com:8080/",
            "http://example.com:8080/some/page?x#y",
            "chrome-extension://example.com:8080",
        ] {
            assert!(is_upgrade(r.clone().set("Origin", good).parse()), "{good}");
        }
        assert!(is_upgrade(
            Req::upgrade()
                .set("Host", "[::1]:9")
                .set("Origin", "http://[::1]:9")
                .parse()
        ));
    }

    #[test]
    fn foreign_origin_refused() {
        let r = Req::upgrade().set("Host", "example.com:8080");
        for bad in [
            "http://example.com", // port differs
            "http://example.com:80",
            "http://example.com:8080.evil.org",
            "http://evil.org/example.com:8080",
            "http://evil.org?example.com:8080",
            "http://user@example.com:8080",
            "example.com:8080", // no scheme: no host part
            "null",
            "",
            "http://",
        ] {
            assert_eq!(
                r.clone().set("Origin", bad).parse(),
                Err(ForbiddenOrigin),
                "{bad}"
            );
        }
        // A second Origin header is refused even if one matches.
        let two = r
            .set("Origin", "http://example.com:8080")
            .add("Origin", "http://example.com:8080");
        assert_eq!(two.parse(), Err(ForbiddenOrigin));
    }

    #[test]
    fn configured_origins() {
        let r = Req::upgrade().set("Origin", "https://app.other.org");
        assert_eq!(r.parse_with(&origins(&[])), Err(ForbiddenOrigin));
        assert_eq!(
            r.parse_with(&origins(&["https://other.org"])),
            Err(ForbiddenOrigin)
        );
        assert_eq!(
            r.parse_with(&origins(&["http://app.other.org"])),
            Err(ForbiddenOrigin)
        );
        assert_eq!(
            r.parse_with(&origins(&["app.other.org"])),
            Err(ForbiddenOrigin)
        );
        assert!(is_upgrade(
            r.parse_with(&origins(&["https://app.other.org"]))
        ));
        assert!(is_upgrade(
            r.parse_with(&origins(&["x", "HTTPS://App.Other.org"]))
        ));
        assert!(is_upgrade(r.parse_with(&origins(&["*"]))));

        let null = Req::upgrade().set("Origin", "null");
        assert_eq!(
            null.parse_with(&origins(&["https://app.other.org"])),
            Err(ForbiddenOrigin)
        );
        assert!(is_upgrade(null.parse_with(&origins(&["null"]))));
        assert!(is_upgrade(null.parse_with(&origins(&["*"]))));
    }

    // --- subprotocols ---------------------------------------------------------

    #[test]
    fn subprotocol_server_preference() {
        let r = Req::upgrade().add("Sec-WebSocket-Protocol", "chat, superchat");
        assert_eq!(r.protocol(&["superchat", "chat"]), Some(0));
        assert_eq!(r.protocol(&["chat", "superchat"]), Some(0));
        assert_eq!(r.protocol(&["mqtt", "superchat"]), Some(1));
        assert_eq!(r.protocol(&["mqtt", "chat"]), Some(1));
        assert_eq!(r.protocol(&["mqtt"]), None);
        assert_eq!(r.protocol(&[]), None);
    }

    #[test]
    fn subprotocol_none_offered() {
        assert_eq!(Req::upgrade().protocol(&["chat"]), None);
        let empty = Req::upgrade().add("Sec-WebSocket-Protocol", "");
        assert_eq!(empty.protocol(&["chat"]), None);
    }

    #[test]
    fn subprotocol_exact_tokens() {
        let r = Req::upgrade().add("Sec-WebSocket-Protocol", " Chat ,, super chat,v2.json ");
        assert_eq!(r.protocol(&["chat"]), None, "case-sensitive");
        assert_eq!(r.protocol(&["Chat"]), Some(0), "trimmed");
        assert_eq!(r.protocol(&["super"]), None, "no partial match");
        assert_eq!(r.protocol(&["super chat"]), None, "not a token");
        assert_eq!(r.protocol(&["cha", "v2.json"]), Some(1));
        assert_eq!(r.protocol(&[""]), None);
    }

    #[test]
    fn subprotocol_over_several_headers() {
        let r = Req::upgrade()
            .add("Sec-WebSocket-Protocol", "a, b")
            .add("sec-websocket-protocol", "c");
        assert_eq!(r.protocol(&["c", "a"]), Some(0));
        assert_eq!(r.protocol(&["x", "b"]), Some(1));
    }

    #[test]
    fn subprotocol_length_limit() {
        let long = "p".repeat(MAX_PROTOCOL_LEN);
        let too_long = "p".repeat(MAX_PROTOCOL_LEN + 1);
        let r = Req::upgrade().add("Sec-WebSocket-Protocol", &format!("{too_long}, {long}"));
        assert_eq!(r.protocol(&[&too_long, &long]), Some(1));
        assert_eq!(r.protocol(&[&too_long]), None);
    }

    // --- response ---------------------------------------------------------------

    fn parse_response(bytes: &[u8]) -> Vec<(String, String)> {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        assert_eq!(
            resp.parse(bytes),
            Ok(httparse::Status::Complete(bytes.len()))
        );
        assert_eq!(resp.code, Some(101));
        assert_eq!(resp.reason, Some("Switching Protocols"));
        assert_eq!(resp.version, Some(1));
        resp.headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8(h.value.to_vec()).unwrap(),
                )
            })
            .collect()
    }

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn upgrade_response_without_protocol() {
        let mut out = [0xAAu8; RESPONSE_BUF];
        let n = write_upgrade_response(&mut out, KEY_ACCEPT, None, None);
        assert_eq!(
            parse_response(&out[..n]),
            kv(&[
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ])
        );
        assert!(out[n..].iter().all(|&b| b == 0xAA));
    }

    #[test]
    fn upgrade_response_with_protocol() {
        let mut out = [0u8; RESPONSE_BUF];
        let n = write_upgrade_response(&mut out, KEY_ACCEPT, Some("superchat"), None);
        let headers = parse_response(&out[..n]);
        assert_eq!(headers.len(), 4);
        assert_eq!(
            headers[3],
            ("Sec-WebSocket-Protocol".into(), "superchat".into())
        );
    }

    /// The agreement whose response line is the longest (both windows said,
    /// two digits each): [`EXTENSIONS_LEN`] bytes.
    fn longest_deflate() -> Agreed {
        let offer = httparse::Header {
            name: "Sec-WebSocket-Extensions",
            value: b"permessage-deflate; server_max_window_bits=10; client_max_window_bits",
        };
        let a = deflate::negotiate(&[offer], &DeflateConfig::default()).unwrap();
        let mut line = [0u8; EXTENSIONS_LEN];
        assert_eq!(deflate::write_response(&a, &mut line), EXTENSIONS_LEN);
        a
    }

    #[test]
    fn longest_upgrade_response_fits() {
        let longest = "~".repeat(MAX_PROTOCOL_LEN);
        let a = longest_deflate();
        let mut out = [0u8; RESPONSE_BUF];
        let n = write_upgrade_response(&mut out, KEY_ACCEPT, Some(&longest), Some(&a));
        assert!(n <= RESPONSE_BUF);
        let headers = parse_response(&out[..n]);
        assert_eq!(headers[3].1, longest);
        assert_eq!(
            headers[4],
            (
                "Sec-WebSocket-Extensions".into(),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=10; client_max_window_bits=10"
                    .into()
            )
        );
        // The head's terminator and the extension line are both counted.
        let without = write_upgrade_response(&mut out, KEY_ACCEPT, Some(&longest), None);
        assert_eq!(n, without + EXTENSIONS_LEN);
    }

    #[test]
    fn upgrade_response_with_deflate_only() {
        let offer = httparse::Header {
            name: "Sec-WebSocket-Extensions",
            value: b"permessage-deflate",
        };
        let a = deflate::negotiate(&[offer], &DeflateConfig::default()).unwrap();
        let mut out = [0u8; RESPONSE_BUF];
        let n = write_upgrade_response(&mut out, KEY_ACCEPT, None, Some(&a));
        let headers = parse_response(&out[..n]);
        assert_eq!(
            headers[3],
            (
                "Sec-WebSocket-Extensions".into(),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover".into()
            )
        );
        assert_eq!(headers.len(), 4);
    }

    #[test]
    #[should_panic(expected = "not a token")]
    fn upgrade_response_refuses_header_injection() {
        let mut out = [0u8; RESPONSE_BUF];
        write_upgrade_response(&mut out, KEY_ACCEPT, Some("chat\r\nSet-Cookie: x=1"), None);
    }

    #[test]
    #[should_panic(expected = "response buffer too small")]
    fn upgrade_response_needs_room() {
        let mut out = [0u8; 100];
        write_upgrade_response(&mut out, KEY_ACCEPT, None, None);
    }

    #[test]
    fn parse_then_respond_round_trip() {
        let cfg = HandshakeConfig {
            subprotocols: vec!["superchat".into(), "chat".into()],
            ..HandshakeConfig::default()
        };
        let req = Req::upgrade()
            .add("Sec-WebSocket-Protocol", "chat, superchat")
            .add(
                "Sec-WebSocket-Extensions",
                "x-foo, permessage-deflate; server_max_window_bits=12",
            )
            .bytes();
        let Ok(Outcome::Upgrade {
            accept,
            protocol,
            deflate,
        }) = parse(&req, &cfg)
        else {
            panic!("not an upgrade");
        };
        let mut out = [0u8; RESPONSE_BUF];
        let proto = protocol.map(|i| cfg.subprotocols[i].as_str());
        let n = write_upgrade_response(&mut out, &accept, proto, deflate.as_ref());
        let headers = parse_response(&out[..n]);
        assert_eq!(headers[2].1, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(headers[3].1, "superchat");
        assert_eq!(
            headers[4].1,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12"
        );
    }

    // --- real browsers ----------------------------------------------------------

    const CHROME: &str = "GET / HTTP/1.1\r\n\
        Host: localhost:9001\r\n\
        Connection: Upgrade\r\n\
        Pragma: no-cache\r\n\
        Cache-Control: no-cache\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
        Upgrade: websocket\r\n\
        Origin: http://localhost:9001\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n\
        Cookie: session=0f3a9c; theme=dark\r\n\
        Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        \r\n";

    const FIREFOX: &str = "GET /?room=lobby HTTP/1.1\r\n\
        Host: localhost:9001\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\r\n\
        Accept: */*\r\n\
        Accept-Language: en-US,en;q=0.5\r\n\
        Accept-Encoding: gzip, deflate, br\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Origin: http://localhost:9001\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Extensions: permessage-deflate\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        DNT: 1\r\n\
        Connection: keep-alive, Upgrade\r\n\
        Cookie: session=0f3a9c\r\n\
        Sec-Fetch-Dest: empty\r\n\
        Sec-Fetch-Mode: websocket\r\n\
        Sec-Fetch-Site: same-origin\r\n\
        Pragma: no-cache\r\n\
        Cache-Control: no-cache\r\n\
        Upgrade: websocket\r\n\
        \r\n";

    /// What a browser's offer gets by default: both sides drop their
    /// context, both windows 15.
    fn browser_deflate(a: Option<Agreed>) {
        let a = a.expect("permessage-deflate agreed");
        assert_eq!(
            (
                a.client_no_context_takeover,
                a.client_window,
                a.server_window
            ),
            (true, 15, 15)
        );
        assert!(a.echo_as_is());
        let mut line = [0u8; EXTENSIONS_LEN];
        let n = deflate::write_response(&a, &mut line);
        assert_eq!(
            &line[..n],
            b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
              client_no_context_takeover\r\n"
        );
    }

    #[test]
    fn chrome_upgrade_accepted() {
        let req = CHROME.as_bytes();
        assert_eq!(find_header_end(req, 0), Some(req.len()));
        let Ok(Outcome::Upgrade {
            accept,
            protocol,
            deflate,
        }) = parse(req, &HandshakeConfig::default())
        else {
            panic!("not an upgrade");
        };
        assert_eq!(&accept, b"HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
        assert_eq!(protocol, None);
        browser_deflate(deflate);

        let no_deflate = HandshakeConfig {
            deflate: DeflateConfig {
                enabled: false,
                ..DeflateConfig::default()
            },
            ..HandshakeConfig::default()
        };
        assert_eq!(
            parse(req, &no_deflate),
            Ok(Outcome::Upgrade {
                accept,
                protocol: None,
                deflate: None,
            })
        );
    }

    #[test]
    fn firefox_upgrade_accepted() {
        let req = FIREFOX.as_bytes();
        assert_eq!(find_header_end(req, 0), Some(req.len()));
        let cfg = HandshakeConfig {
            subprotocols: vec!["superchat".into()],
            ..HandshakeConfig::default()
        };
        let Ok(Outcome::Upgrade {
            accept,
            protocol,
            deflate,
        }) = parse(req, &cfg)
        else {
            panic!("not an upgrade");
        };
        assert_eq!(&accept, KEY_ACCEPT);
        assert_eq!(protocol, Some(0));
        browser_deflate(deflate);
    }

    #[test]
    fn browser_from_another_site_refused() {
        let foreign = CHROME.replace(
            "Origin: http://localhost:9001",
            "Origin: https://evil.example",
        );
        assert_eq!(
            parse(foreign.as_bytes(), &HandshakeConfig::default()),
            Err(ForbiddenOrigin)
        );
    }
}

#[cfg(test)]
mod start_tests {
    use super::*;

    #[test]
    fn plausible_start_settles_binary_at_once_and_waits_for_text() {
        for ok in [
            &b""[..],
            b"G",
            b"GET",
            b"GET ",
            b"GET / HTTP/1.1\r\n",
            b"get /",
            b"M-SEARCH *",
        ] {
            assert!(plausible_start(ok), "{ok:?}");
        }
        let long_method = [b'A'; 40];
        for bad in [
            &b"\x16\x03\x01\x02\x00"[..],
            b" GET",
            b"\r\n",
            b"GE\x00T",
            &long_method,
        ] {
            assert!(!plausible_start(bad), "{bad:?}");
        }
        let cfg = HandshakeConfig::default();
        assert_eq!(
            scan_head(b"\x16\x03\x01", 0, &cfg),
            Err(HandshakeError::Malformed)
        );
        assert_eq!(scan_head(b"GET / HTTP/1.1\r\nHo", 0, &cfg), Ok(None));
    }
}
