//! The plain HTTP side: responses to requests that do not upgrade
//! (refusals, the page), and the metrics they can report (`metrics`).
//!
//! Invariants:
//! * nothing here allocates; every response is written into a caller-owned
//!   slice of at least [`RESPONSE_BUF`] bytes, and every response this module
//!   can produce fits in that (the tests check the longest one);
//! * every response closes the connection (`Connection: close`), so a refused
//!   peer never gets a second request parsed on the same socket;
//! * the status line comes only from [`HandshakeError::status`].

pub mod metrics;

use crate::error::HandshakeError;
use crate::handshake::RESPONSE_BUF;

/// The browser client served for a plain `GET` of the served path.
pub const PAGE: &[u8] = include_bytes!("page.html");

/// A write position in a caller's buffer.
///
/// Panics on overflow instead of truncating: every caller writes a response
/// whose maximum length is known at compile time, so running out of room is
/// a bug in this crate, and a truncated response would be worse than a crash.
pub(crate) struct Cursor<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Cursor { buf, pos: 0 }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) -> &mut Self {
        let end = self.pos + bytes.len();
        assert!(end <= self.buf.len(), "response buffer too small");
        self.buf[self.pos..end].copy_from_slice(bytes);
        self.pos = end;
        self
    }

    /// Decimal digits of `n`, without going through `fmt` and its
    /// formatter plumbing.
    pub(crate) fn put_num(&mut self, mut n: usize) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put(&digits[i..])
    }

    pub(crate) fn len(&self) -> usize {
        self.pos
    }
}

/// Number of decimal digits `put_num` writes for `n`.
fn num_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// Writes the refusal for `err` into `out` and returns its length.
///
/// The body repeats the status line ("400 Bad Request\n") so a human poking
/// at the port with curl sees why. A 405 lists `Allow: GET`; a 426 names the
/// one version this server speaks (`Sec-WebSocket-Version: 13`, RFC 6455
/// §4.4) and, as RFC 7231 §6.5.15 requires of every 426, an `Upgrade`
/// header, which in turn needs the `upgrade` connection option (RFC 7230
/// §6.7).
///
/// # Panics
/// If `out` is shorter than [`RESPONSE_BUF`].
pub fn write_error_response(out: &mut [u8], err: HandshakeError) -> usize {
    assert!(out.len() >= RESPONSE_BUF, "response buffer too small");
    let (code, reason) = err.status();
    let body_len = num_len(code as usize) + 1 + reason.len() + 1;
    let mut w = Cursor::new(out);
    w.put(b"HTTP/1.1 ")
        .put_num(code as usize)
        .put(b" ")
        .put(reason.as_bytes())
        .put(b"\r\n");
    match err {
        HandshakeError::MethodNotAllowed => {
            w.put(b"Allow: GET\r\nConnection: close\r\n");
        }
        HandshakeError::UnsupportedVersion => {
            w.put(b"Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n");
            w.put(b"Connection: Upgrade, close\r\n");
        }
        _ => {
            w.put(b"Connection: close\r\n");
        }
    }
    w.put(b"Content-Type: text/plain\r\nContent-Length: ")
        .put_num(body_len)
        .put(b"\r\n\r\n")
        .put_num(code as usize)
        .put(b" ")
        .put(reason.as_bytes())
        .put(b"\n");
    w.len()
}

/// Writes the head of the `200 OK` that serves a page of `len` bytes (such
/// as [`PAGE`]); the caller sends the page right after it.
///
/// `no-cache` so a browser picks up a new build of the page on reload
/// instead of talking to a new server with an old client.
///
/// # Panics
/// If `out` is shorter than [`RESPONSE_BUF`].
pub fn write_page_head(out: &mut [u8], len: usize) -> usize {
    assert!(out.len() >= RESPONSE_BUF, "response buffer too small");
    let mut w = Cursor::new(out);
    w.put(b"HTTP/1.1 200 OK\r\n")
        .put(b"Content-Type: text/html; charset=utf-8\r\n")
        .put(b"Content-Length: ")
        .put_num(len)
        .put(b"\r\n")
        .put(b"Cache-Control: no-cache\r\n")
        .put(b"X-Content-Type-Options: nosniff\r\n")
        .put(b"Connection: close\r\n\r\n");
    w.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use HandshakeError::*;

    const ALL: [HandshakeError; 12] = [
        Malformed,
        TooLarge,
        MethodNotAllowed,
        HttpVersion,
        MissingHost,
        NotWebSocket,
        MissingConnectionUpgrade,
        BadKey,
        UnsupportedVersion,
        ForbiddenOrigin,
        NotFound,
        Unavailable,
    ];

    /// Parses a response head; returns (status, head length) and fills `headers`.
    fn parse<'h, 'b>(
        bytes: &'b [u8],
        headers: &'h mut [httparse::Header<'b>],
    ) -> (u16, usize, httparse::Response<'h, 'b>) {
        let mut resp = httparse::Response::new(headers);
        let n = match resp.parse(bytes).expect("valid response") {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => panic!("partial response"),
        };
        (resp.code.unwrap(), n, resp)
    }

    fn header<'b>(resp: &httparse::Response<'_, 'b>, name: &str) -> Option<&'b [u8]> {
        let mut found = resp
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name));
        let first = found.next().map(|h| h.value);
        assert!(found.next().is_none(), "{name} repeated");
        first
    }

    fn content_length(resp: &httparse::Response<'_, '_>) -> usize {
        std::str::from_utf8(header(resp, "Content-Length").unwrap())
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn every_error_response_parses_back() {
        for err in ALL {
            let mut out = [0u8; RESPONSE_BUF];
            let n = write_error_response(&mut out, err);
            let bytes = &out[..n];
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let (code, head, resp) = parse(bytes, &mut headers);
            let (want_code, reason) = err.status();
            assert_eq!(code, want_code, "{err:?}");
            assert_eq!(resp.reason, Some(reason));
            assert_eq!(resp.version, Some(1));
            let body = &bytes[head..];
            assert_eq!(content_length(&resp), body.len(), "{err:?}");
            assert_eq!(body, format!("{want_code} {reason}\n").as_bytes());
            assert_eq!(header(&resp, "Content-Type"), Some(&b"text/plain"[..]));
            let conn = std::str::from_utf8(header(&resp, "Connection").unwrap()).unwrap();
            assert!(
                conn.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("close")),
                "{err:?}: {conn}"
            );
        }
    }

    #[test]
    fn version_refusal_names_thirteen() {
        let mut out = [0u8; RESPONSE_BUF];
        let n = write_error_response(&mut out, UnsupportedVersion);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let (code, _, resp) = parse(&out[..n], &mut headers);
        assert_eq!(code, 426);
        assert_eq!(header(&resp, "Sec-WebSocket-Version"), Some(&b"13"[..]));
        assert_eq!(header(&resp, "Upgrade"), Some(&b"websocket"[..]));
        assert_eq!(header(&resp, "Connection"), Some(&b"Upgrade, close"[..]));
        assert_eq!(header(&resp, "Allow"), None);
    }

    #[test]
    fn method_refusal_allows_get() {
        let mut out = [0u8; RESPONSE_BUF];
        let n = write_error_response(&mut out, MethodNotAllowed);
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let (code, _, resp) = parse(&out[..n], &mut headers);
        assert_eq!(code, 405);
        assert_eq!(header(&resp, "Allow"), Some(&b"GET"[..]));
        assert_eq!(header(&resp, "Sec-WebSocket-Version"), None);
    }

    #[test]
    fn other_refusals_carry_no_extra_headers() {
        for err in ALL {
            if matches!(err, MethodNotAllowed | UnsupportedVersion) {
                continue;
            }
            let mut out = [0u8; RESPONSE_BUF];
            let n = write_error_response(&mut out, err);
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let (_, _, resp) = parse(&out[..n], &mut headers);
            assert_eq!(resp.headers.len(), 3, "{err:?}");
        }
    }

    #[test]
    fn page_head_parses_back() {
        let mut out = [0u8; RESPONSE_BUF];
        let n = write_page_head(&mut out, PAGE.len());
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let (code, head, resp) = parse(&out[..n], &mut headers);
        assert_eq!(code, 200);
        assert_eq!(head, n, "the head is all that is written");
        assert_eq!(content_length(&resp), PAGE.len());
        assert_eq!(
            header(&resp, "Content-Type"),
            Some(&b"text/html; charset=utf-8"[..])
        );
        assert_eq!(header(&resp, "Cache-Control"), Some(&b"no-cache"[..]));
        assert_eq!(header(&resp, "Connection"), Some(&b"close"[..]));
    }

    #[test]
    fn page_is_small_self_contained_and_has_test_ids() {
        assert!(PAGE.len() <= 8 * 1024, "page is {} bytes", PAGE.len());
        let page = std::str::from_utf8(PAGE).unwrap();
        for id in [
            "url",
            "connect",
            "disconnect",
            "message",
            "send",
            "state",
            "log",
        ] {
            assert!(page.contains(&format!("id=\"{id}\"")), "missing #{id}");
        }
        assert!(page.contains("\"echo\""));
        for external in [
            "src=\"http",
            "href=\"http",
            "src=\"//",
            "href=\"//",
            "@import",
        ] {
            assert!(!page.contains(external), "external resource: {external}");
        }
    }

    #[test]
    fn writes_only_within_returned_length() {
        let mut out = [0xAAu8; RESPONSE_BUF + 8];
        let n = write_error_response(&mut out, TooLarge);
        assert!(out[n..].iter().all(|&b| b == 0xAA));
        let mut out = [0xAAu8; RESPONSE_BUF];
        let n = write_page_head(&mut out, PAGE.len());
        assert!(out[n..].iter().all(|&b| b == 0xAA));
    }

    #[test]
    #[should_panic(expected = "response buffer too small")]
    fn short_buffer_panics() {
        let mut out = [0u8; RESPONSE_BUF - 1];
        write_error_response(&mut out, BadKey);
    }

    #[test]
    fn numbers() {
        for n in [0usize, 7, 9, 10, 99, 100, 12345, usize::MAX] {
            let mut out = [0u8; 32];
            let mut w = Cursor::new(&mut out);
            w.put_num(n);
            let len = w.len();
            assert_eq!(len, num_len(n));
            assert_eq!(&out[..len], n.to_string().as_bytes());
        }
    }
}
