//! `ws://` URLs (RFC 6455 §3): the host, port and resource a client dials.
//!
//! Parsed in place: a [`Target`] borrows every part from the URL string.
//! Only what §3 allows is accepted: the `ws` scheme (`wss` needs TLS, which
//! this crate does not have yet, and is refused by name), a host that is a
//! name, an IPv4 address or a bracketed IPv6 literal, an optional port, and
//! a path with an optional query. A fragment is refused, as §3 requires, and
//! so is user information, which the handshake has no way to carry.

use super::error::UrlError;

/// Where a `ws://` URL points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    /// The host, without the brackets of an IPv6 literal.
    pub host: &'a str,
    /// The port: the URL's, or 80.
    pub port: u16,
    /// Whether the URL named its port.
    pub explicit_port: bool,
    /// The host is an IPv6 literal (written in brackets in `Host`).
    pub ipv6: bool,
    /// The request target: the path (`/` if the URL has none) and the query.
    pub path: &'a str,
    /// The query, if any, after the path without its `?`.
    pub query: Option<&'a str>,
}

/// The port of `ws://` URLs that name none (RFC 6455 §3).
pub const DEFAULT_PORT: u16 = 80;

impl<'a> Target<'a> {
    /// Parse a `ws://` URL.
    pub fn parse(url: &'a str) -> Result<Target<'a>, UrlError> {
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(UrlError::NotAUrl);
        };
        if scheme.eq_ignore_ascii_case("wss") {
            return Err(UrlError::TlsUnsupported);
        }
        if !scheme.eq_ignore_ascii_case("ws") {
            return Err(UrlError::Scheme);
        }
        if rest.contains('#') {
            return Err(UrlError::Fragment);
        }
        let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, resource) = rest.split_at(auth_end);
        if authority.contains('@') {
            return Err(UrlError::UserInfo);
        }
        let (host, port, ipv6) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return Err(UrlError::Host);
            };
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(UrlError::Host);
            }
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(UrlError::Host)?),
            };
            (host, port, true)
        } else {
            match authority.split_once(':') {
                Some((h, p)) => (h, Some(p), false),
                None => (authority, None, false),
            }
        };
        if host.is_empty() || (!ipv6 && !host.bytes().all(host_byte)) {
            return Err(UrlError::Host);
        }
        // An empty port ("host:") means the default one (RFC 3986 §3.2.3).
        let port = port.filter(|p| !p.is_empty());
        let explicit_port = port.is_some();
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 5 => {
                match p.parse::<u16>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(UrlError::Port),
                }
            }
            Some(_) => return Err(UrlError::Port),
        };
        if !resource.bytes().all(resource_byte) {
            return Err(UrlError::Path);
        }
        let (path, query) = match resource.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (resource, None),
        };
        Ok(Target {
            host,
            port,
            explicit_port,
            ipv6,
            path,
            query,
        })
    }

    /// Write the request target (`/path?query`) into `out`.
    pub fn write_resource(&self, out: &mut Vec<u8>) {
        if !self.path.starts_with('/') {
            out.push(b'/');
        }
        out.extend_from_slice(self.path.as_bytes());
        if let Some(q) = self.query {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
    }

    /// Write the `Host` header's value: the host, bracketed if IPv6, and
    /// the port if the URL named one other than the default.
    pub fn write_host(&self, out: &mut Vec<u8>) {
        if self.ipv6 {
            out.push(b'[');
        }
        out.extend_from_slice(self.host.as_bytes());
        if self.ipv6 {
            out.push(b']');
        }
        if self.port != DEFAULT_PORT {
            out.push(b':');
            out.extend_from_slice(self.port.to_string().as_bytes());
        }
    }
}

/// Bytes of a host name or IPv4 address (RFC 3986 reg-name, without
/// percent-encoding: a name to resolve, not to decode).
fn host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Bytes a request target may carry as they are: visible ASCII. Spaces
/// and controls would break the request line; anything else non-ASCII must
/// come percent-encoded.
fn resource_byte(b: u8) -> bool {
    b.is_ascii_graphic()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(t: &Target<'_>) -> String {
        let mut v = Vec::new();
        t.write_resource(&mut v);
        String::from_utf8(v).unwrap()
    }

    fn host(t: &Target<'_>) -> String {
        let mut v = Vec::new();
        t.write_host(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn plain() {
        let t = Target::parse("ws://127.0.0.1:9001/").unwrap();
        assert_eq!(
            (t.host, t.port, t.explicit_port, t.ipv6),
            ("127.0.0.1", 9001, true, false)
        );
        assert_eq!(resource(&t), "/");
        assert_eq!(host(&t), "127.0.0.1:9001");
    }

    #[test]
    fn default_port_and_path() {
        let t = Target::parse("ws://example.com").unwrap();
        assert_eq!(
            (t.host, t.port, t.explicit_port),
            ("example.com", 80, false)
        );
        assert_eq!(resource(&t), "/");
        assert_eq!(host(&t), "example.com");
        let t = Target::parse("WS://Example.com:/chat").unwrap();
        assert_eq!((t.port, t.explicit_port), (80, false));
        assert_eq!(resource(&t), "/chat");
        // Port 80 named explicitly is still left out of Host.
        assert_eq!(host(&Target::parse("ws://h:80/").unwrap()), "h");
    }

    #[test]
    fn query() {
        let t = Target::parse("ws://h:1/room?name=a&x=%20").unwrap();
        assert_eq!((t.path, t.query), ("/room", Some("name=a&x=%20")));
        assert_eq!(resource(&t), "/room?name=a&x=%20");
        let t = Target::parse("ws://h?room=1").unwrap();
        assert_eq!(resource(&t), "/?room=1");
    }

    #[test]
    fn ipv6() {
        let t = Target::parse("ws://[::1]:9001/x").unwrap();
        assert_eq!((t.host, t.port, t.ipv6), ("::1", 9001, true));
        assert_eq!(host(&t), "[::1]:9001");
        let t = Target::parse("ws://[fe80::1]/").unwrap();
        assert_eq!((t.host, t.port), ("fe80::1", 80));
        assert_eq!(host(&t), "[fe80::1]");
        assert_eq!(Target::parse("ws://[::1/"), Err(UrlError::Host));
        assert_eq!(Target::parse("ws://[nothex]/"), Err(UrlError::Host));
        assert_eq!(Target::parse("ws://[::1]x/"), Err(UrlError::Host));
    }

    #[test]
    fn refusals() {
        assert_eq!(Target::parse("wss://h/"), Err(UrlError::TlsUnsupported));
        assert_eq!(Target::parse("WSS://h/"), Err(UrlError::TlsUnsupported));
        assert_eq!(Target::parse("http://h/"), Err(UrlError::Scheme));
        assert_eq!(Target::parse("h:9001"), Err(UrlError::NotAUrl));
        assert_eq!(Target::parse("ws:///x"), Err(UrlError::Host));
        assert_eq!(Target::parse("ws://:9001/"), Err(UrlError::Host));
        assert_eq!(Target::parse("ws://h/x#frag"), Err(UrlError::Fragment));
        assert_eq!(Target::parse("ws://u:p@h/"), Err(UrlError::UserInfo));
        assert_eq!(Target::parse("ws://h:0/"), Err(UrlError::Port));
        assert_eq!(Target::parse("ws://h:65536/"), Err(UrlError::Port));
        assert_eq!(Target::parse("ws://h:+80/"), Err(UrlError::Port));
        assert_eq!(Target::parse("ws://h:1:2/"), Err(UrlError::Port));
        assert_eq!(Target::parse("ws://h/a b"), Err(UrlError::Path));
        assert_eq!(Target::parse("ws://h/a\r\nX: y"), Err(UrlError::Path));
        assert_eq!(Target::parse("ws://h/é"), Err(UrlError::Path));
        assert_eq!(Target::parse("ws://h\r\n/"), Err(UrlError::Host));
    }

    #[test]
    fn never_panics_on_any_prefix() {
        let url = "ws://[::1]:9001/room?x=1";
        for i in 0..=url.len() {
            let _ = Target::parse(&url[..i]);
        }
    }
}
