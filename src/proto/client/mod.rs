//! The client role of the protocol core: RFC 6455 from the other side, on
//! byte slices and with time passed in, like the server's core.
//!
//! * `url`: `ws://` URLs, parsed in place;
//! * `handshake`: the upgrade request written, the response checked;
//! * `keys`: masking keys and nonces from a seeded ChaCha generator;
//! * `reader`: the server's frames in, events out as ranges of the buffer;
//! * `deflate`: the server's compressed messages inflated in steps, and
//!   whole messages sent compressed (permessage-deflate);
//! * `conn`: one connection's rules: pongs, the close handshake (TCP's end
//!   left to the server), failing with the right code, masked output;
//! * `config`, `error`: a client's options, and every way it fails.
//!
//! The shells that move the bytes are in `io/client/`.

pub mod config;
pub mod conn;
pub mod deflate;
pub mod error;
pub mod handshake;
pub mod keys;
pub mod reader;
pub mod url;
