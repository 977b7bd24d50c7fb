//! Answers every text message with "Received: " and the message.
//!
//! ```text
//! cargo run --example received                  # ws://127.0.0.1:9001/
//! cargo run --example received -- 127.0.0.1:9002
//! ```

use zerows::{Builder, Context, Delivery, Message, MessageKind, Request, Service};

/// The service. Each event loop has one, shared by all of that loop's
/// connections; this one keeps nothing, so it is an empty struct.
pub struct Received;

impl Service for Received {
    /// What the service keeps per connection: nothing.
    type State = ();

    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}

    /// Called as each message begins, before any of its bytes are handed
    /// over, to choose how the rest of it arrives.
    fn message(&mut self, _st: &mut (), kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        match kind {
            // Collect: `whole` gets the text once every fragment is in, as
            // one `&str` however the client split it into frames.
            MessageKind::Text => Delivery::Collect,
            // Binary messages get no answer. Discard rather than collect
            // and then ignore, so that they are never buffered: their bytes
            // are dropped as they arrive.
            MessageKind::Binary => Delivery::Discard,
        }
    }

    fn whole(&mut self, _st: &mut (), msg: Message<'_>, cx: &mut Context<'_>) {
        if let Message::Text(text) = msg {
            // Two parts, one message: written out as they are, without
            // being joined into a `String` first, so nothing is allocated.
            //
            // The status says whether the send was queued. A reply to a
            // client too slow to take it is dropped here; a service that
            // must not lose any would wait for `Service::drain`.
            let _ = cx.send_text_parts(&["Received: ", text]);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9001".into());
    // Each event loop builds its own service, on its own thread.
    let running = Builder::new()
        .listen(addr.parse()?)
        .start(|_loop| Received)?;
    println!("listening on ws://{}/", running.local_addrs()[0]);
    running.join()?;
    Ok(())
}
