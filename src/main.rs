//! The `zerows` binary: a WebSocket echo endpoint, and `zerows client`.
//!
//! It parses options, starts the echo service on the library's
//! [`Builder`](zerows::Builder) and turns SIGINT/SIGTERM into a graceful
//! shutdown; a second signal exits at once.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use signal_hook::iterator::Signals;
use zerows::{Builder, Config, DeflateConfig, Echo, HandshakeConfig, Settings, Stopper};

/// A zero-copy, high-throughput WebSocket (RFC 6455) echo server.
///
/// Every text and binary message is sent back unchanged. A plain browser GET
/// of the served path returns a small page to try it out. Durations are in
/// seconds (fractions allowed); 0 turns a timeout or the heartbeat off.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

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

    /// Idle buffers of each kind kept for reuse, per event loop.
    #[arg(long, env = "ZEROWS_POOL_IDLE", default_value_t = 1024)]
    pool_idle: usize,

    /// Past this many connections (per event loop), new ones are answered 503.
    #[arg(long, env = "ZEROWS_MAX_CONNECTIONS", default_value_t = 100_000)]
    max_connections: usize,

    /// Largest request head accepted, in bytes (431 past it).
    #[arg(long, env = "ZEROWS_MAX_HEADER_BYTES", default_value_t = 8192)]
    max_header_bytes: usize,

    /// Seconds a client has to send its upgrade request.
    #[arg(long, env = "ZEROWS_HANDSHAKE_TIMEOUT", default_value_t = 10.0)]
    handshake_timeout: f64,

    /// Seconds without anything from a peer before it is closed with 1001 (0: never).
    #[arg(long, env = "ZEROWS_IDLE_TIMEOUT", default_value_t = 0.0)]
    idle_timeout: f64,

    /// Seconds without anything from a peer before the server pings it (0: no heartbeat).
    #[arg(long, env = "ZEROWS_PING_INTERVAL", default_value_t = 30.0)]
    ping_interval: f64,

    /// Seconds a pinged peer has to answer before it is closed as dead.
    #[arg(long, env = "ZEROWS_PONG_TIMEOUT", default_value_t = 30.0)]
    pong_timeout: f64,

    /// Seconds to wait for the peer's close frame after sending ours.
    #[arg(long, env = "ZEROWS_CLOSE_TIMEOUT", default_value_t = 5.0)]
    close_timeout: f64,

    /// Seconds output may wait on a peer that reads nothing before it is dropped.
    #[arg(long, env = "ZEROWS_STALL_TIMEOUT", default_value_t = 30.0)]
    stall_timeout: f64,

    /// Bytes per second a peer must read while output waits for it, over
    /// each --stall-timeout window, or it is dropped (0: at least one byte).
    #[arg(
        long,
        env = "ZEROWS_MIN_DRAIN_RATE",
        value_name = "BYTES_PER_SEC",
        default_value_t = 1024
    )]
    min_drain_rate: u64,

    /// On SIGINT/SIGTERM, seconds to wait for close handshakes and pending echoes.
    #[arg(long, env = "ZEROWS_SHUTDOWN_TIMEOUT", default_value_t = 10.0)]
    shutdown_timeout: f64,

    /// Origin allowed besides the request's own host (repeatable; `*` allows all).
    #[arg(long, env = "ZEROWS_ALLOW_ORIGIN", value_delimiter = ',')]
    allow_origin: Vec<String>,

    /// Subprotocol supported, in order of preference (repeatable).
    #[arg(long, env = "ZEROWS_SUBPROTOCOL", value_delimiter = ',')]
    subprotocol: Vec<String>,

    /// permessage-deflate (RFC 7692): `on` accepts browsers' offers, `off`
    /// declines every offer.
    #[arg(long, env = "ZEROWS_DEFLATE", default_value = "on", value_parser = ["on", "off"])]
    deflate: String,

    /// Largest LZ77 window (bits, 9-15) the server compresses with.
    #[arg(long, env = "ZEROWS_DEFLATE_WINDOW_BITS", default_value_t = 15,
          value_parser = clap::value_parser!(u8).range(9..=15))]
    deflate_window_bits: u8,

    /// Largest window (bits, 9-15) clients are asked to compress with, where
    /// their offer lets the server say.
    #[arg(long, env = "ZEROWS_DEFLATE_CLIENT_WINDOW_BITS", default_value_t = 15,
          value_parser = clap::value_parser!(u8).range(9..=15))]
    deflate_client_window_bits: u8,

    /// Let clients keep their compression context between messages: better
    /// ratios, but each such connection keeps an inflater (its window plus
    /// about 7 KiB) while idle. Off: clients are asked for
    /// client_no_context_takeover and idle connections keep nothing.
    #[arg(long, env = "ZEROWS_DEFLATE_CLIENT_TAKEOVER")]
    deflate_client_takeover: bool,

    /// zlib level (0-9) of the messages services send compressed, and of
    /// echoes the server recompresses.
    #[arg(long, env = "ZEROWS_DEFLATE_LEVEL", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=9))]
    deflate_level: u32,

    /// Messages a service sends, and echoes the server would recompress,
    /// shorter than this (bytes) go uncompressed.
    #[arg(long, env = "ZEROWS_DEFLATE_THRESHOLD", default_value_t = 128)]
    deflate_threshold: usize,

    /// Independent event loops, each on its own thread, sharing the port with
    /// SO_REUSEPORT; connections and buffers are per loop (only the metrics
    /// are summed across loops).
    #[arg(long, env = "ZEROWS_THREADS", default_value_t = 1)]
    threads: usize,

    /// Share the listen addresses with other zerows processes (SO_REUSEPORT):
    /// the kernel spreads new connections over all of them. On SIGINT/SIGTERM
    /// this instance stops listening at once, so a new instance started
    /// beside it takes over without refusing anyone (see docs/deployment.md;
    /// needs net.ipv4.tcp_migrate_req=1).
    #[arg(long, env = "ZEROWS_REUSE_PORT")]
    reuse_port: bool,

    /// How the event loops wait for and move bytes: epoll, or io_uring
    /// (Linux 6.1+; falls back to epoll, with one log line, where a ring
    /// cannot be set up).
    #[arg(long, env = "ZEROWS_IO", default_value = "epoll", value_parser = ["epoll", "uring"])]
    io: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Connect to a WebSocket server: send lines from stdin, print what comes back.
    Client(cli::client::Args),
}

mod cli;

fn seconds(s: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("--{what}: not a duration: {s}"))
}

/// A duration where 0 means "off".
fn optional(s: f64, what: &str) -> Result<Option<Duration>, String> {
    seconds(s, what).map(|d| (!d.is_zero()).then_some(d))
}

fn config(a: &Args) -> Result<Config, String> {
    let settings = Settings {
        handshake: HandshakeConfig {
            path: a.path.clone(),
            allowed_origins: a.allow_origin.clone(),
            subprotocols: a.subprotocol.clone(),
            max_header_bytes: a.max_header_bytes,
            deflate: DeflateConfig {
                enabled: a.deflate == "on",
                server_max_window_bits: a.deflate_window_bits,
                client_max_window_bits: a.deflate_client_window_bits,
                client_context_takeover: a.deflate_client_takeover,
                level: a.deflate_level,
                threshold: a.deflate_threshold,
            },
            ..HandshakeConfig::default()
        },
        max_message: a.max_message_size,
        handshake_timeout: seconds(a.handshake_timeout, "handshake-timeout")?,
        close_timeout: seconds(a.close_timeout, "close-timeout")?,
        chunk_size: a.chunk_size,
        idle_timeout: optional(a.idle_timeout, "idle-timeout")?,
        ping_interval: optional(a.ping_interval, "ping-interval")?,
        pong_timeout: seconds(a.pong_timeout, "pong-timeout")?,
        ..Settings::default()
    };
    let c = Config {
        listen: a.listen.clone(),
        settings,
        read_buffer: a.read_buffer,
        write_buffer: a.write_buffer,
        max_backlog: a.max_backlog,
        pool_idle: a.pool_idle,
        max_connections: a.max_connections,
        stall_timeout: seconds(a.stall_timeout, "stall-timeout")?,
        min_drain_rate: a.min_drain_rate,
        shutdown_timeout: seconds(a.shutdown_timeout, "shutdown-timeout")?,
        reuse_port: a.reuse_port,
        io: a.io.parse()?,
        ..Config::default()
    };
    c.validate()?;
    if a.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    Ok(c)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    if let Some(Command::Client(c)) = args.command {
        return cli::client::run(c);
    }
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zerows: {e}");
            return ExitCode::from(2);
        }
    };
    let signals = match signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("zerows: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let running = match Builder::new()
        .config(config.clone())
        .threads(args.threads)
        .start(|_| Echo)
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zerows: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = &config.settings.handshake.path;
    for addr in running.local_addrs() {
        println!("zerows listening on ws://{addr}{path} (page: http://{addr}{path})");
    }
    log::info!(
        "{} event loop(s) on {}{}; max message {} B, read buffer {} B, backlog limit {} B, max {} connections per loop",
        args.threads,
        config.io.effective(),
        if config.reuse_port {
            ", port shared with other processes"
        } else {
            ""
        },
        config.settings.max_message,
        config.read_buffer,
        config.max_backlog,
        config.max_connections
    );
    if let Err(e) = watch_signals(signals, running.stopper()) {
        eprintln!("zerows: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let code = match running.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zerows: event loop failed: {e}");
            ExitCode::FAILURE
        }
    };
    log::info!("bye");
    code
}

/// First SIGINT/SIGTERM: stop every loop gracefully. Second: exit now.
/// The handlers are installed before any loop runs, so a signal never
/// meets the default action (exit) while connections are being served.
fn signals() -> std::io::Result<Signals> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    Signals::new([SIGINT, SIGTERM])
}

fn watch_signals(mut signals: Signals, stopper: Stopper) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("zerows-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for sig in signals.forever() {
                seen += 1;
                if seen == 1 {
                    log::info!("signal {sig}: shutting down (again to exit at once)");
                    stopper.stop();
                } else {
                    log::warn!("signal {sig} again: exiting now");
                    std::process::exit(128 + sig);
                }
            }
        })?;
    Ok(())
}
