//! A chat: `GET /` in a browser serves a page, and every message goes to
//! everyone in the same room, on every event loop. The room is the `room`
//! query parameter (`/?room=rust`), `lobby` if there is none.
//!
//! ```text
//! cargo run --release --example chat                  # http://127.0.0.1:9001/
//! cargo run --release --example chat -- 127.0.0.1:9002 4   # address, loops
//! cargo run --release --example chat -- 127.0.0.1:9003 1 --bus redis://127.0.0.1:6379
//! ```
//!
//! With `--bus`, rooms span every instance that uses the same Redis: a
//! message reaches the room's members on all of them, once each
//! (docs/bus.md).
//!
//! Each connection subscribes to its room's topic when it opens and leaves
//! it when it closes (automatically). A message is encoded once
//! ([`Prepared`]) and the same bytes go to every member of the room.

use zerows::{Builder, Context, HandshakeError, Message, Prepared, Request, Service, Topic};

/// The room of a connection that names none.
pub const LOBBY: &str = "lobby";

/// The page, served for a plain `GET /`.
pub const PAGE: &[u8] = include_bytes!("chat.html");

/// The room a request asks for: `room=NAME` in its query, NAME of 1 to 64
/// letters, digits, `-` or `_`. `None`: a name that is not allowed.
pub fn room_of(query: Option<&str>) -> Option<&str> {
    let room = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|kv| kv.strip_prefix("room="));
    match room {
        None => Some(LOBBY),
        Some(r)
            if (1..=64).contains(&r.len())
                && r.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(r)
        }
        Some(_) => None,
    }
}

/// The chat service. It keeps nothing of its own: rooms are topics.
pub struct Chat;

impl Service for Chat {
    /// The connection's room.
    type State = Topic;

    fn accept(&mut self, req: &Request<'_>) -> Result<(), HandshakeError> {
        // A room name that is not allowed: 404, as for a page not served.
        room_of(req.query())
            .map(|_| ())
            .ok_or(HandshakeError::NotFound)
    }

    fn open(&mut self, req: &Request<'_>, cx: &mut Context<'_>) -> Topic {
        let room = Topic::new(room_of(req.query()).unwrap_or(LOBBY));
        cx.subscribe(room.name());
        room
    }

    fn whole(&mut self, room: &mut Topic, msg: Message<'_>, cx: &mut Context<'_>) {
        let msg = match msg {
            Message::Text(t) => Prepared::text(t),
            Message::Binary(b) => Prepared::binary(b),
        };
        // Everyone in the room, the sender too, on every loop. A full
        // inbox means the server is overloaded: this message is lost for
        // the rooms' members on that loop, and the sender is told.
        if cx.publish_prepared(room, &msg).is_err() {
            let _ = cx.send_text("(server busy: message not delivered)");
        }
    }

    fn page(&self) -> Option<&'static [u8]> {
        Some(PAGE)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let bus = match args.iter().position(|a| a == "--bus") {
        Some(i) if i + 1 < args.len() => Some(args.drain(i..i + 2).nth(1).unwrap_or_default()),
        Some(_) => return Err("--bus needs a URL (redis://host:port)".into()),
        None => None,
    };
    let mut args = args.into_iter();
    let addr = args.next().unwrap_or("127.0.0.1:9001".into());
    let loops = args.next().map_or(Ok(1), |n| n.parse())?;
    let mut builder = Builder::new().listen(addr.parse()?).threads(loops);
    if let Some(url) = &bus {
        builder = builder.bus(url);
    }
    let running = builder.start(|_loop| Chat)?;
    println!("chat on http://{}/ (?room=NAME)", running.local_addrs()[0]);
    running.join()?;
    Ok(())
}
