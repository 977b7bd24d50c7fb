//! The `zerows` binary: a WebSocket echo endpoint.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use zerows::conn::Settings;
use zerows::handler::Echo;
use zerows::handshake::HandshakeConfig;
use zerows::server::{Config, Server};

/// A zero-copy, high-throughput WebSocket (RFC 6455) echo server.
///
/// Every text and binary message is sent back unchanged. A plain browser GET
/// of the served path returns a small page to try it out.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// Address to listen on (repeatable; IPv4 or IPv6).
    #[arg(
        long,
        env = "ZEROWS_LISTEN",
        default_value = "127.0.0.1:9001",
        value_delimiter = ','
    )]
    listen: Vec<SocketAddr>,

    /// Path the endpoint (and its page) is served on.
    #[arg(long, env = "ZEROWS_PATH", default_value = "/")]
    path: String,

    /// Longest message accepted, in bytes; longer ones are refused with close 1009.
    #[arg(long, env = "ZEROWS_MAX_MESSAGE_SIZE", default_value_t = 16 << 20)]
    max_message_size: u64,

    /// Size of each pooled read buffer, in bytes.
    #[arg(long, env = "ZEROWS_READ_BUFFER", default_value_t = 64 << 10)]
    read_buffer: usize,

    /// Size of each pooled block holding output the socket has not taken, in bytes.
    #[arg(long, env = "ZEROWS_WRITE_BUFFER", default_value_t = 64 << 10)]
    write_buffer: usize,

    /// Most unsent bytes one connection may hold before it is no longer read.
    /// Keep it above the largest message: clients may send a whole message
    /// before they read its echo.
    #[arg(long, env = "ZEROWS_MAX_BACKLOG", default_value_t = (16 << 20) + (1 << 20))]
    max_backlog: usize,

    /// Longest frame echoed in one piece; longer frames go back in pieces of this size.
    #[arg(long, env = "ZEROWS_CHUNK_SIZE", default_value_t = 16 << 10)]
    chunk_size: usize,

    /// Idle buffers of each kind kept for reuse.
    #[arg(long, env = "ZEROWS_POOL_IDLE", default_value_t = 1024)]
    pool_idle: usize,

    /// Past this many connections, new ones are answered 503.
    #[arg(long, env = "ZEROWS_MAX_CONNECTIONS", default_value_t = 100_000)]
    max_connections: usize,

    /// Largest request head accepted, in bytes (431 past it).
    #[arg(long, env = "ZEROWS_MAX_HEADER_BYTES", default_value_t = 8192)]
    max_header_bytes: usize,

    /// Seconds a client has to send its upgrade request.
    #[arg(long, env = "ZEROWS_HANDSHAKE_TIMEOUT", default_value_t = 10.0)]
    handshake_timeout: f64,

    /// Seconds to wait for the peer's close frame after sending ours.
    #[arg(long, env = "ZEROWS_CLOSE_TIMEOUT", default_value_t = 5.0)]
    close_timeout: f64,

    /// Origin allowed besides the request's own host (repeatable; `*` allows all).
    #[arg(long, env = "ZEROWS_ALLOW_ORIGIN", value_delimiter = ',')]
    allow_origin: Vec<String>,

    /// Subprotocol supported, in order of preference (repeatable).
    #[arg(long, env = "ZEROWS_SUBPROTOCOL", value_delimiter = ',')]
    subprotocol: Vec<String>,
}

fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("--{what}: not a duration: {s}"))
}

fn config(a: Args) -> Result<Config, String> {
    let settings = Settings {
        handshake: HandshakeConfig {
            path: a.path,
            allowed_origins: a.allow_origin,
            subprotocols: a.subprotocol,
            max_header_bytes: a.max_header_bytes,
        },
        max_message: a.max_message_size,
        handshake_timeout: seconds(a.handshake_timeout, "handshake-timeout")?,
        close_timeout: seconds(a.close_timeout, "close-timeout")?,
        chunk_size: a.chunk_size,
    };
    let c = Config {
        listen: a.listen,
        settings,
        read_buffer: a.read_buffer,
        write_buffer: a.write_buffer,
        max_backlog: a.max_backlog,
        pool_idle: a.pool_idle,
        max_connections: a.max_connections,
        ..Config::default()
    };
    c.validate()?;
    Ok(c)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match config(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zerows: {e}");
            return ExitCode::from(2);
        }
    };
    let path = config.settings.handshake.path.clone();
    let mut server = match Server::bind(config, Echo) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zerows: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    for addr in server.local_addrs() {
        println!("zerows listening on ws://{addr}{path} (page: http://{addr}{path})");
    }
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zerows: event loop failed: {e}");
            ExitCode::FAILURE
        }
    }
}
