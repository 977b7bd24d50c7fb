//! What a connection keeps of the negotiation: one byte.

use std::num::NonZeroU8;

use super::Agreed;

/// The parameters a connection runs with ([`Agreed`], less what only the
/// response needed), packed in one byte so that a connection that
/// negotiated permessage-deflate is no larger than one that did not.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Terms(NonZeroU8);

const SET: u8 = 0x80;
const NO_TAKEOVER: u8 = 0x40;

impl Terms {
    /// `client_window` and `server_window` in 8..=15.
    pub fn new(client_no_context_takeover: bool, client_window: u8, server_window: u8) -> Terms {
        debug_assert!((8..=15).contains(&client_window) && (8..=15).contains(&server_window));
        let b =
            SET | if client_no_context_takeover {
                NO_TAKEOVER
            } else {
                0
            } | (client_window.clamp(8, 15) - 8) << 3
                | (server_window.clamp(8, 15) - 8);
        Terms(NonZeroU8::new(b).expect("SET is set"))
    }

    /// The client resets its compressor for every message.
    pub fn client_no_context_takeover(self) -> bool {
        self.0.get() & NO_TAKEOVER != 0
    }

    /// Window bits the client compresses with.
    pub fn client_window(self) -> u8 {
        8 + (self.0.get() >> 3 & 7)
    }

    /// Window bits the client's inflater has for our messages.
    pub fn server_window(self) -> u8 {
        8 + (self.0.get() & 7)
    }

    /// Window bits the server compresses with: the server window, but 9
    /// for 8. zlib's raw deflate refuses 8 bits (since 1.2.9), and a
    /// deflater with 9 bits never emits a distance beyond 2^9 - 262 = 250
    /// (it keeps MIN_LOOKAHEAD = 262 bytes ahead of its window), so what it
    /// writes decodes with a 256-byte window.
    pub fn compress_window(self) -> u8 {
        self.server_window().max(9)
    }

    /// A compressed message from the client may go back to it as it came:
    /// neither side keeps context, and the client's window fits the one
    /// its inflater has for ours.
    pub fn echo_as_is(self) -> bool {
        self.client_no_context_takeover() && self.client_window() <= self.server_window()
    }
}

impl From<&Agreed> for Terms {
    fn from(a: &Agreed) -> Terms {
        Terms::new(
            a.client_no_context_takeover,
            a.client_window,
            a.server_window,
        )
    }
}

impl std::fmt::Debug for Terms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terms")
            .field(
                "client_no_context_takeover",
                &self.client_no_context_takeover(),
            )
            .field("client_window", &self.client_window())
            .field("server_window", &self.server_window())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_round_trips_in_one_byte() {
        assert_eq!(std::mem::size_of::<Option<Terms>>(), 1);
        for nt in [false, true] {
            for c in 8..=15 {
                for s in 8..=15 {
                    let t = Terms::new(nt, c, s);
                    assert_eq!(
                        (
                            t.client_no_context_takeover(),
                            t.client_window(),
                            t.server_window()
                        ),
                        (nt, c, s)
                    );
                    assert_eq!(t.echo_as_is(), nt && c <= s);
                }
            }
        }
    }
}
