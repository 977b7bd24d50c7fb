//! The WebSocket URL under test.
//!
//! Invariants: only `ws://` URLs whose host is a literal loopback address
//! (127.0.0.0/8 or ::1) or `localhost` are accepted: this tool must never
//! send load anywhere else. The path always starts with '/'.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The Host header value, as written in the URL.
    pub host: String,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    Scheme,
    Host(String),
    Port(String),
    NotLoopback(String),
}

impl std::fmt::Display for UrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlError::Scheme => write!(f, "the URL must start with ws:// (TLS is not supported)"),
            UrlError::Host(h) => write!(f, "cannot read host {h:?}"),
            UrlError::Port(p) => write!(f, "cannot read port {p:?}"),
            UrlError::NotLoopback(h) => {
                write!(f, "{h} is not a loopback address; only 127.0.0.0/8, ::1 or localhost may be targets")
            }
        }
    }
}

impl std::error::Error for UrlError {}

impl std::str::FromStr for Target {
    type Err = UrlError;

    fn from_str(url: &str) -> Result<Self, UrlError> {
        let rest = url.strip_prefix("ws://").ok_or(UrlError::Scheme)?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let end = v6
                .find(']')
                .ok_or_else(|| UrlError::Host(authority.into()))?;
            let port = v6[end + 1..].strip_prefix(':').unwrap_or("80");
            (&v6[..end], port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, p),
                None => (authority, "80"),
            }
        };
        let port: u16 = port.parse().map_err(|_| UrlError::Port(port.into()))?;
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse().map_err(|_| UrlError::Host(host.into()))?
        };
        if !ip.is_loopback() {
            return Err(UrlError::NotLoopback(host.into()));
        }
        Ok(Target {
            addr: SocketAddr::new(ip, port),
            host: authority.to_string(),
            path: path.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_loopback_urls() {
        let t: Target = "ws://127.0.0.1:9001/echo".parse().unwrap();
        assert_eq!(t.addr, "127.0.0.1:9001".parse().unwrap());
        assert_eq!(t.path, "/echo");
        assert_eq!(t.host, "127.0.0.1:9001");
        let t: Target = "ws://localhost:80".parse().unwrap();
        assert_eq!(t.path, "/");
        let t: Target = "ws://[::1]:7/".parse().unwrap();
        assert_eq!(t.addr.port(), 7);
        let t: Target = "ws://127.9.8.7:1/".parse().unwrap();
        assert_eq!(t.addr.ip(), "127.9.8.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn refuses_anything_else() {
        assert_eq!("wss://127.0.0.1/".parse::<Target>(), Err(UrlError::Scheme));
        assert!(matches!(
            "ws://10.0.0.1:80/".parse::<Target>(),
            Err(UrlError::NotLoopback(_))
        ));
        assert!(matches!(
            "ws://192.168.1.1/".parse::<Target>(),
            Err(UrlError::NotLoopback(_))
        ));
        assert!(matches!(
            "ws://example.com/".parse::<Target>(),
            Err(UrlError::Host(_))
        ));
        assert!(matches!(
            "ws://127.0.0.1:x/".parse::<Target>(),
            Err(UrlError::Port(_))
        ));
    }
}
