//! Answers every text message `p` with a JSON object:
//! `{"name":p,"age":18,"description":p + "很厉害!!!!"}`.
//!
//! ```text
//! cargo run --example json_reply                # ws://127.0.0.1:9001/
//! cargo run --example json_reply -- 127.0.0.1:9002
//! ```
//!
//! A warm server allocates nothing per message: the JSON is written into a
//! buffer the service keeps, and the description is never built as a
//! `String` of its own.

use std::fmt;

use serde::{Serialize, Serializer};
use zerows::{Builder, Context, Delivery, Message, MessageKind, Request, Service};

/// Appended to the name to make the description.
pub const SUFFIX: &str = "很厉害!!!!";

/// The reply. It borrows the message instead of copying it; the keys come
/// out in the order of the fields.
#[derive(Serialize)]
struct Reply<'a> {
    name: &'a str,
    age: u32,
    description: Praise<'a>,
}

/// The name followed by [`SUFFIX`], as one JSON string.
struct Praise<'a>(&'a str);

impl fmt::Display for Praise<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)?;
        f.write_str(SUFFIX)
    }
}

impl Serialize for Praise<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // serde_json escapes and writes the `Display` output as it is
        // produced, so the two halves are never joined in memory.
        serializer.collect_str(self)
    }
}

/// The service: one per event loop, so its buffer is never shared between
/// threads and needs no lock.
#[derive(Default)]
pub struct JsonReply {
    /// Where each reply is written. Cleared, not freed, between messages:
    /// once it has grown to the size of the largest reply, it stops
    /// allocating. (A server expecting a rare huge message might shrink it
    /// afterwards.)
    out: Vec<u8>,
}

impl Service for JsonReply {
    type State = ();

    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}

    fn message(&mut self, _st: &mut (), kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        // Only text gets an answer; binary is dropped without buffering.
        match kind {
            MessageKind::Text => Delivery::Collect,
            MessageKind::Binary => Delivery::Discard,
        }
    }

    fn whole(&mut self, _st: &mut (), msg: Message<'_>, cx: &mut Context<'_>) {
        let Message::Text(name) = msg else { return };
        let reply = Reply {
            name,
            age: 18,
            description: Praise(name),
        };
        self.out.clear();
        // Writing into a Vec does not fail, but a callback runs on the event
        // loop and must never panic: close this one connection instead.
        if serde_json::to_writer(&mut self.out, &reply).is_err() {
            let _ = cx.close(1011, "could not encode the reply");
            return;
        }
        // serde_json writes UTF-8 only; `send_text` wants it as a `&str`.
        if let Ok(json) = std::str::from_utf8(&self.out) {
            let _ = cx.send_text(json);
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args().nth(1).unwrap_or("127.0.0.1:9001".into());
    // Each event loop gets its own `JsonReply`, and so its own buffer.
    let running = Builder::new()
        .listen(addr.parse()?)
        .start(|_loop| JsonReply::default())?;
    println!("listening on ws://{}/", running.local_addrs()[0]);
    running.join()?;
    Ok(())
}
