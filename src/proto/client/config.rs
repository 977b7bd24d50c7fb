//! What a client offers in its upgrade request, and its limits.

use std::time::Duration;

use crate::deflate::DeflateOffer;

/// A client's options: what its upgrade request offers and the limits it
/// keeps. `ClientConfig::default()` suits most uses; the setters chain.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Extra request headers, sent as given after the handshake's own.
    pub headers: Vec<(String, String)>,
    /// The `Origin` header, if any (browsers always send one).
    pub origin: Option<String>,
    /// Subprotocols offered, in order of preference.
    pub subprotocols: Vec<String>,
    /// Longest message accepted, in bytes; longer ones fail with 1009.
    pub max_message: u64,
    /// Longest response head accepted from the server.
    pub max_head: usize,
    /// Read buffer size: a message of one frame that fits is handed over
    /// without being copied.
    pub read_buffer: usize,
    /// How long to wait for the TCP connection.
    pub connect_timeout: Duration,
    /// How long the server may take to answer the upgrade request.
    pub handshake_timeout: Duration,
    /// After a close is sent or answered, how long to wait for the server's
    /// close and the end of TCP, which a client leaves to the server
    /// (RFC 6455 §7.1.1).
    pub close_timeout: Duration,
    /// permessage-deflate (RFC 7692) offered, and how; `None` (the
    /// default) offers no extension.
    pub deflate: Option<DeflateOffer>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            headers: Vec::new(),
            origin: None,
            subprotocols: Vec::new(),
            max_message: 16 << 20,
            max_head: 8192,
            read_buffer: 64 << 10,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            deflate: None,
        }
    }
}

impl ClientConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a request header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Send `Origin: origin`.
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = Some(origin.into());
        self
    }

    /// Offer a subprotocol (the first offered is the most preferred).
    pub fn subprotocol(mut self, name: impl Into<String>) -> Self {
        self.subprotocols.push(name.into());
        self
    }

    /// Offer permessage-deflate on these terms.
    pub fn deflate(mut self, offer: DeflateOffer) -> Self {
        self.deflate = Some(offer);
        self
    }

    /// Set the longest message accepted.
    pub fn max_message(mut self, bytes: u64) -> Self {
        self.max_message = bytes;
        self
    }
}
