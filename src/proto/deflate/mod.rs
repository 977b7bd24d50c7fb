//! permessage-deflate (RFC 7692): negotiation (the server's and the
//! client's side), and the codec state a loop lends its connections.
//!
//! Invariants:
//! * both sides read `Sec-WebSocket-Extensions` with one grammar (`params`);
//!   the server declines what it cannot honour, the client refuses it
//!   ([`offer::accept`]);
//! * `negotiate` chooses, per connection, the parameters both sides apply
//!   ([`Agreed`]; the connection keeps them as [`Terms`], one byte that
//!   fits in its padding); nothing else is kept for an idle connection
//!   unless the client keeps its compression context
//!   (`client_no_context_takeover` off by configuration), in which case the
//!   connection keeps one inflater, sized to the negotiated window.
//! * Otherwise inflaters are lent from the loop's pool for one compressed
//!   message and given back when it ends; compressors are the loop's, one
//!   per window size in use, reset for every message (the server never takes
//!   its context over).

pub mod negotiate;
pub mod offer;

pub use negotiate::{negotiate, write_response, Agreed, DeflateConfig};
pub use offer::{ClientTerms, DeflateOffer};

mod codec;
mod inflate;
mod params;
mod terms;

pub use codec::{Codec, INFLATE_STEP, PASS_BUDGET};
pub use inflate::{packed_limit, Inflate, Inflater, Step, TAIL};
pub use terms::Terms;
