//! Helpers shared by the unit tests: a client's side of the conversation.

use crate::{frame, mask};

pub const KEY: &str = "x3JJHMbDL1EzLkh9GBhXDw==";

/// A valid upgrade request for `/`.
pub fn request() -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nHost: localhost:9001\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A masked client frame.
pub fn client_frame(fin: bool, op: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut v = vec![0u8; frame::MAX_HEADER];
    let n = frame::encode(&mut v, fin, op, payload.len() as u64, Some(key));
    v.truncate(n);
    let at = v.len();
    v.extend_from_slice(payload);
    mask::apply(&mut v[at..], key, 0);
    v
}
