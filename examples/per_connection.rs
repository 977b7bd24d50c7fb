//! State per connection: each text message is answered with its number on
//! that connection, as "1: <message>", "2: <message>", …; after the
//! `LIMIT`-th the server closes the connection (code 1000).
//!
//! ```text
//! cargo run --example per_connection            # ws://127.0.0.1:9001/
//! cargo run --example per_connection -- 127.0.0.1:9002
//! ```

use zerows::{Builder, Context, Delivery, Message, MessageKind, Request, Service};

/// Text messages a connection may send before the server says goodbye.
pub const LIMIT: u32 = 3;
/// The reason sent with the closing code.
pub const REASON: &str = "message limit reached";

/// The service keeps nothing itself: what belongs to one connection lives
/// in that connection's `State`.
pub struct Counter;

impl Service for Counter {
    /// The text messages this connection has sent so far. Each connection
    /// gets its own from `open`, and it is dropped when the connection ends.
    type State = u32;

    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) -> u32 {
        0
    }

    fn message(&mut self, _count: &mut u32, kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        // Binary messages are neither answered nor counted.
        match kind {
            MessageKind::Text => Delivery::Collect,
            MessageKind::Binary => Delivery::Discard,
        }
    }

    fn whole(&mut self, count: &mut u32, msg: Message<'_>, cx: &mut Context<'_>) {
        let Message::Text(text) = msg else { return };
        *count += 1;
        // A small String per message keeps this readable; `received.rs`
        // shows replies that allocate nothing.
        let number = count.to_string();
        let _ = cx.send_text_parts(&[&number, ": ", text]);
        if *count == LIMIT {
            // The reply above is queued first, so the client gets it before
            // the close. No more messages reach `whole` after this.
            let _ = cx.close(1000, REASON);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9001".into());
    let running = Builder::new()
        .listen(addr.parse()?)
        .start(|_loop| Counter)?;
    println!("listening on ws://{}/", running.local_addrs()[0]);
    running.join()?;
    Ok(())
}
