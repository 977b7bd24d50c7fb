//! Reference peer: an echo server on tokio-tungstenite.
//!
//! Invariants: every text and binary message is sent back unchanged and in
//! order on the connection it came from; pings are answered and closes are
//! echoed by tungstenite itself (it queues the replies and flushes them on the
//! next write or flush). One task per connection; the runtime flavour is
//! chosen on the command line so both tokio schedulers can be measured.

use std::net::SocketAddr;

use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tungstenite::Message;

#[derive(Clone, Copy, ValueEnum)]
enum Runtime {
    /// Work-stealing scheduler, one worker per core.
    Multi,
    /// Everything on the calling thread.
    Current,
}

#[derive(Parser)]
#[command(about = "WebSocket echo server on tokio-tungstenite (comparison peer)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    #[arg(long, value_enum, default_value = "multi")]
    runtime: Runtime,
}

async fn echo(stream: TcpStream) -> Result<(), tungstenite::Error> {
    // Small echoes would otherwise wait for Nagle's algorithm.
    stream.set_nodelay(true)?;
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        match msg? {
            m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m).await?,
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
                if let Err(e) = echo(stream).await {
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
