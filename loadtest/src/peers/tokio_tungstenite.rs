//! Reference peer: an echo (or JSON reply, or chat) server on
//! tokio-tungstenite.
//!
//! Invariants: with `--service echo` every text and binary message is sent
//! back unchanged; with `--service json` every text message `p` is answered
//! with `{"name":p,"age":18,"description":p+"很厉害!!!!"}`, written the
//! plain way (a `Serialize` struct of owned strings, `serde_json::to_string`)
//! and binary messages get no answer. Either way replies go out in order on
//! the connection the message came from. With `--service chat` the server
//! behaves like zerows' `examples/chat.rs`: a connection to `/?room=NAME`
//! joins room NAME (`lobby` without one; a name that is not 1 to 64
//! letters, digits, `-` or `_` gets 404), and every text or binary message
//! goes to every member of the room, the sender included, in the order the
//! room's channel received them. Pings are answered and closes are echoed
//! by tungstenite itself (it queues the replies and flushes them on the
//! next write or flush). One task per connection; the runtime flavour (and
//! the number of workers of the multi-thread one) is chosen on the command
//! line so both tokio schedulers can be measured.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::Message;

#[derive(Clone, Copy, ValueEnum)]
enum Runtime {
    /// Work-stealing scheduler, one worker per core.
    Multi,
    /// Everything on the calling thread.
    Current,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Service {
    /// Send every text and binary message back.
    Echo,
    /// Answer every text message with a JSON object.
    Json,
    /// A chat: every message goes to everyone in the sender's room.
    Chat,
}

#[derive(Parser)]
#[command(about = "WebSocket echo or JSON reply server on tokio-tungstenite (comparison peer)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    #[arg(long, value_enum, default_value = "multi")]
    runtime: Runtime,
    #[arg(long, value_enum, default_value = "echo")]
    service: Service,
    /// Worker threads of the multi-thread runtime (default: tokio's, one
    /// per CPU the process may run on).
    #[arg(long)]
    workers: Option<usize>,
}

/// The answer to a text message in JSON mode; keys come out in field order.
#[derive(Serialize)]
struct Reply {
    name: String,
    age: u32,
    description: String,
}

async fn serve(stream: TcpStream, service: Service) -> Result<(), tungstenite::Error> {
    // Small replies would otherwise wait for Nagle's algorithm.
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            m @ (Message::Text(_) | Message::Binary(_)) if service == Service::Echo => {
                ws.send(m).await?
            }
            Message::Text(name) => {
                let reply = Reply {
                    name: name.to_string(),
                    age: 18,
                    description: format!("{name}很厉害!!!!"),
                };
                let json = serde_json::to_string(&reply).expect("strings and a number serialise");
                ws.send(Message::text(json)).await?
            }
            // The close reply is already queued; flushing it ends the session.
            Message::Close(_) => {
                ws.flush().await.ok();
                break;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Messages a room's channel keeps for a member that has not sent them on
/// yet. A member further behind than this skips the oldest ones
/// (`RecvError::Lagged`), as `tokio::sync::broadcast` is made to do; the
/// publisher never waits. 1024 is far more than the fan-out benchmark ever
/// has in flight (one message at a time), so nothing is skipped there.
const ROOM_CAPACITY: usize = 1024;

/// The room of a connection that names none.
const LOBBY: &str = "lobby";

/// The chat's rooms: one broadcast channel per room that has members.
type Rooms = Arc<Mutex<HashMap<String, broadcast::Sender<Message>>>>;

/// Messages skipped by lagging members since the start, over all rooms.
static LAGGED: AtomicU64 = AtomicU64::new(0);

/// The room a query asks for (`room=NAME`, as `examples/chat.rs` reads
/// it); `None` for a name that is not allowed.
fn room_of(query: Option<&str>) -> Option<&str> {
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

// The handshake callback's error type is tungstenite's `ErrorResponse`.
#[allow(clippy::result_large_err)]
async fn chat(stream: TcpStream, rooms: Rooms) -> Result<(), tungstenite::Error> {
    stream.set_nodelay(true)?;
    let mut room = None;
    let mut ws =
        tokio_tungstenite::accept_hdr_async(stream, |req: &Request, resp: Response| match room_of(
            req.uri().query(),
        ) {
            Some(r) => {
                room = Some(r.to_string());
                Ok(resp)
            }
            None => {
                let mut e = ErrorResponse::new(Some("no such room".into()));
                *e.status_mut() = tungstenite::http::StatusCode::NOT_FOUND;
                Err(e)
            }
        })
        .await?;
    let room = room.expect("an accepted handshake named the room");
    // Join under the lock, so the room cannot be removed in between.
    let (tx, mut rx) = {
        let mut rooms = rooms.lock().expect("no task panics holding the lock");
        let tx = rooms
            .entry(room.clone())
            .or_insert_with(|| broadcast::channel(ROOM_CAPACITY).0);
        (tx.clone(), tx.subscribe())
    };
    let result = loop {
        tokio::select! {
            msg = ws.next() => match msg {
                // To the whole room, the sender too (it is a member). The
                // send fails only without members, and we are one.
                Some(Ok(m @ (Message::Text(_) | Message::Binary(_)))) => {
                    let _ = tx.send(m);
                }
                // The close reply is already queued; flushing it ends the session.
                Some(Ok(Message::Close(_))) => {
                    ws.flush().await.ok();
                    break Ok(());
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e),
                None => break Ok(()),
            },
            shared = rx.recv() => match shared {
                // A clone of the message shares its bytes (`Bytes`).
                Ok(m) => {
                    if let Err(e) = ws.send(m).await {
                        break Err(e);
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    let total = LAGGED.fetch_add(n, Ordering::Relaxed) + n;
                    eprintln!("a member of {room} lagged: {n} message(s) skipped ({total} in all)");
                }
                Err(RecvError::Closed) => break Ok(()),
            },
        }
    };
    // Leave; the last member out removes the room.
    drop(rx);
    let mut rooms = rooms.lock().expect("no task panics holding the lock");
    if tx.receiver_count() == 0 {
        rooms.remove(&room);
    }
    result
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let service = args.service;
    let rt = match args.runtime {
        Runtime::Multi => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if let Some(w) = args.workers {
                b.worker_threads(w.max(1));
            }
            b
        }
        Runtime::Current => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_io()
    .build()?;
    let rooms = Rooms::default();
    rt.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        eprintln!(
            "peer-tokio-tungstenite listening on {}",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                // Out of descriptors or similar: keep serving the others.
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            let rooms = rooms.clone();
            tokio::spawn(async move {
                let r = match service {
                    Service::Chat => chat(stream, rooms).await,
                    _ => serve(stream, service).await,
                };
                if let Err(e) = r {
                    log_unexpected(&e);
                }
            });
        }
    })
}

/// Clients that vanish without a close are normal under load; only report
/// the rest.
fn log_unexpected(e: &tungstenite::Error) {
    match e {
        tungstenite::Error::ConnectionClosed
        | tungstenite::Error::AlreadyClosed
        | tungstenite::Error::Io(_)
        | tungstenite::Error::Protocol(_) => {}
        other => eprintln!("connection: {other}"),
    }
}
