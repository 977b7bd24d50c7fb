//! Reference peer: an echo (or JSON reply) server on tokio-tungstenite.
//!
//! Invariants: with `--service echo` every text and binary message is sent
//! back unchanged; with `--service json` every text message `p` is answered
//! with `{"name":p,"age":18,"description":p+"很厉害!!!!"}`, written the
//! plain way (a `Serialize` struct of owned strings, `serde_json::to_string`)
//! and binary messages get no answer. Either way replies go out in order on
//! the connection the message came from; pings are answered and closes are
//! echoed by tungstenite itself (it queues the replies and flushes them on the
//! next write or flush). One task per connection; the runtime flavour is
//! chosen on the command line so both tokio schedulers can be measured.

use std::net::SocketAddr;

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
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

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let service = args.service;
    let rt = match args.runtime {
        Runtime::Multi => tokio::runtime::Builder::new_multi_thread(),
        Runtime::Current => tokio::runtime::Builder::new_current_thread(),
    }
    .enable_io()
    .build()?;
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
            tokio::spawn(async move {
                if let Err(e) = serve(stream, service).await {
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
