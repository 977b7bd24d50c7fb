//! Reference peer: blocking tungstenite, one OS thread per connection.
//!
//! Invariants: every text and binary message is written back unchanged and
//! in order before the next one is read; pings and closes are answered by
//! tungstenite (replies are queued on read and flushed here). Threads get a
//! small stack so that thousands of connections fit in memory.

use std::net::{SocketAddr, TcpListener, TcpStream};

use clap::Parser;
use tungstenite::Message;

#[derive(Parser)]
#[command(about = "WebSocket echo server on blocking tungstenite (comparison peer)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9002")]
    listen: SocketAddr,
}

fn echo(stream: TcpStream) -> Result<(), tungstenite::Error> {
    stream.set_nodelay(true)?;
    let mut ws = tungstenite::accept(stream).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        // A blocking socket never reports "interrupted"; treat it as closed.
        tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
    })?;
    loop {
        match ws.read()? {
            m @ (Message::Text(_) | Message::Binary(_)) => ws.send(m)?,
            Message::Close(_) => {
                // Drive the queued close reply out, then stop.
                ws.flush().ok();
                return Ok(());
            }
            // The pong for a ping is queued by `read`; send it now.
            _ => ws.flush()?,
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = TcpListener::bind(args.listen)?;
    eprintln!(
        "peer-tungstenite-threads listening on {}",
        listener.local_addr()?
    );
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(1));
                continue;
            }
        };
        let spawned = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                if let Err(e) = echo(stream) {
                    match e {
                        tungstenite::Error::ConnectionClosed
                        | tungstenite::Error::AlreadyClosed
                        | tungstenite::Error::Io(_)
                        | tungstenite::Error::Protocol(_) => {}
                        other => eprintln!("connection: {other}"),
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("spawn: {e}");
        }
    }
    Ok(())
}
