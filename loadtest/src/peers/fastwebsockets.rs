//! Reference peer: fastwebsockets 0.10 behind a hyper HTTP/1 upgrade.
//!
//! Invariants: fragmented messages are reassembled (FragmentCollector) and
//! every text and binary message is written back whole, in order; pings and
//! closes are answered by fastwebsockets (auto-pong and auto-close are on by
//! default). Runs on a current-thread tokio runtime, the crate's intended
//! use for a single-core comparison.

use std::net::SocketAddr;

use bytes::Bytes;
use clap::Parser;
use fastwebsockets::{upgrade, FragmentCollector, OpCode, WebSocketError};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "WebSocket echo server on fastwebsockets (comparison peer)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1:9003")]
    listen: SocketAddr,
}

async fn echo(fut: upgrade::UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(fut.await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            OpCode::Close => return Ok(()),
            _ => {}
        }
    }
}

async fn upgrade_request(
    mut req: Request<Incoming>,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, fut) = upgrade::upgrade(&mut req)?;
    tokio::spawn(async move {
        match echo(fut).await {
            Ok(()) | Err(WebSocketError::ConnectionClosed | WebSocketError::UnexpectedEOF) => {}
            Err(WebSocketError::IoError(_)) => {}
            Err(e) => eprintln!("connection: {e}"),
        }
    });
    Ok(response)
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        eprintln!(
            "peer-fastwebsockets listening on {}",
            listener.local_addr()?
        );
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("accept: {e}");
                    tokio::task::yield_now().await;
                    continue;
                }
            };
            stream.set_nodelay(true).ok();
            tokio::spawn(async move {
                let served = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(upgrade_request))
                    .with_upgrades()
                    .await;
                if let Err(e) = served {
                    if !e.is_incomplete_message() {
                        eprintln!("http: {e}");
                    }
                }
            });
        }
    })
}
