//! Command-line arguments and their checks.
//!
//! Invariants: every value the workers rely on is checked here, once, before
//! any socket is opened: sizes hold a payload header, modes have the numbers
//! they need, counts and times are bounded, and the target is loopback (see
//! `target`). Checks return [`ArgError`], never panic.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::payload::{self, Pattern};
use crate::reply::ReplyMode;
use crate::target::Target;

/// The most connections one run may open.
pub const MAX_CONNECTIONS: u32 = 1_000_000;
/// The largest payload; buffers are sized from it per connection.
pub const MAX_SIZE: usize = 16 << 20;
/// The longest run, so that every loop is bounded in time.
pub const MAX_SECONDS: f64 = 24.0 * 3600.0;
/// The most connections one process may hold: open files are capped at
/// 20,000 per process here, and a few hundred go to everything else.
pub const MAX_PER_PROCESS: u32 = 19_000;
/// The most processes `--procs` may start.
pub const MAX_PROCS: u32 = 1024;

#[derive(Parser, Debug)]
#[command(
    name = "zerows-loadtest",
    version,
    about = "Load generator for WebSocket echo servers (loopback only)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Send verified traffic and report throughput and latency (default).
    Run(RunArgs),
    /// Open connections, keep them idle, and report how many held.
    Idle(IdleArgs),
    /// Run the same matrix against zerows and the peer servers.
    Compare(crate::compare::CompareArgs),
    /// Open N subscribers of one room, publish from one of them, and time
    /// each message until every subscriber has it (chat-like servers).
    Fanout(crate::fanout::FanoutArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// One message in flight per connection.
    Pingpong,
    /// `--inflight` messages in flight per connection, sent back to back.
    Pipelined,
    /// A fixed total rate (`--rate`), spread evenly over the connections.
    Rate,
}

/// Options shared by `run` and `idle`: where to connect and how.
#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// ws://host:port/path (loopback only).
    pub url: Target,
    /// Number of connections.
    #[arg(short = 'c', long, default_value_t = 10)]
    pub connections: u32,
    /// New connections per second (0: as fast as the handshakes complete).
    #[arg(long, default_value_t = 0.0)]
    pub ramp: f64,
    /// Worker threads, each with its own event loop and share of connections.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// Seconds a connection may take to connect and handshake.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Keep every connection on 127.0.0.1 instead of spreading the source
    /// addresses over 127.0.0.0/8 (needed beyond ~28k connections).
    #[arg(long)]
    pub no_spread: bool,
    /// Split the connections (and the rate) over P child processes, each
    /// with its own slice of connection ids and at most 19,000 connections;
    /// their results are summed into one report.
    #[arg(long)]
    pub procs: Option<u32>,
    /// Spread the connections over K consecutive ports from the URL's
    /// (connection i on port + i % K): several servers without a shared port.
    #[arg(long, default_value_t = 1)]
    pub ports: u16,
    /// Set by the parent of --procs: this process is child K, driven over
    /// stdin and reporting JSON lines on stdout.
    #[arg(long, hide = true)]
    pub child: Option<u32>,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Payload size in bytes; repeat for a mix (sizes are used in turn).
    #[arg(long = "size", default_values_t = [32usize])]
    pub sizes: Vec<usize>,
    /// Send text messages.
    #[arg(long, conflicts_with = "binary")]
    pub text: bool,
    /// Send binary messages (the default, except with --reply json).
    #[arg(long)]
    pub binary: bool,
    /// What the server answers to each message: `echo` (the message itself)
    /// or `json` (text messages only; each answered with the text
    /// `{"name":p,"age":18,"description":p+"很厉害!!!!"}` as serde_json
    /// writes it, verified byte for byte).
    #[arg(long, value_enum, default_value = "echo")]
    pub reply: ReplyMode,
    /// What follows each payload's header: `random` (bytes 0x40..=0x7F,
    /// next to incompressible) or `json` (JSON-like text; deflated, 4 to 64
    /// KiB bodies shrink 5–10×). Both are checked byte for byte.
    #[arg(long, value_enum, default_value = "random")]
    pub payload: Pattern,
    /// Offer permessage-deflate (server_no_context_takeover, 15-bit server
    /// window) and send every message compressed when the server agrees.
    #[arg(long)]
    pub deflate: bool,
    #[arg(long, value_enum, default_value = "pingpong")]
    pub mode: Mode,
    /// Messages in flight per connection (pipelined; the cap in rate mode).
    #[arg(long, default_value_t = 16)]
    pub inflight: u32,
    /// Total messages per second over all connections (rate mode).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds of sending (default 10, or a 300 s limit with --messages).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Total messages to send over all connections.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Seconds at the start excluded from the figures.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Seconds to wait for outstanding echoes after sending stops.
    #[arg(long, default_value_t = 3.0)]
    pub drain: f64,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write an SVG with the latency distribution and throughput over time.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Do not print the final table (for scripts that read --json).
    #[arg(long)]
    pub quiet: bool,
    /// The server's process id: its CPU time and memory over the sending
    /// window are then reported beside ours.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Count the server's system calls over the measured window with
    /// `strace -c -f -p PID` (needs --server-pid). strace slows the server
    /// down: take CPU and throughput figures from runs without it.
    #[arg(long, requires = "server_pid")]
    pub strace: bool,
    /// Rate mode: sleep on epoll's 1 ms timer steps instead of busy-polling
    /// when the next send is under 1 ms away. Saves a core, but sends then
    /// leave in 1 ms bursts and latencies (measured from the schedule) grow.
    #[arg(long)]
    pub no_spin: bool,
    /// Accepted so that older scripts still run, and ignored: masking
    /// keys and nonces come from the client library's generator, seeded
    /// from the operating system.
    #[arg(long, hide = true)]
    #[allow(dead_code)]
    pub seed: Option<u64>,
}

#[derive(Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub conn: ConnectArgs,
    /// Seconds to hold the connections open.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Seconds between pings on each connection (0: no pings).
    #[arg(long, default_value_t = 0.0)]
    pub ping_interval: f64,
    /// After the hold, every connection sends one message and checks its
    /// echo; the round's duration is reported.
    #[arg(long)]
    pub echo_once: bool,
    /// Seconds the --echo-once round may take.
    #[arg(long, default_value_t = 30.0)]
    pub echo_timeout: f64,
    /// A server process id (repeatable): their summed memory per held
    /// connection and CPU over the hold are reported.
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Do not print the final table (for scripts that read --json).
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ArgError {
    Connections(u32),
    Threads(u32),
    Size(usize),
    NoSizes,
    Inflight(u32),
    RateMissing,
    Rate(f64),
    Seconds(&'static str, f64),
    WarmupTooLong,
    Messages,
    JsonBinary,
    Procs(u32),
    PerProcess { procs: u32, per: u32, need: u32 },
    Child(u32),
    Ports(u16),
}

impl std::fmt::Display for ArgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgError::Connections(n) => {
                write!(f, "--connections {n}: must be 1..={MAX_CONNECTIONS}")
            }
            ArgError::Threads(n) => write!(
                f,
                "--threads {n}: must be 1..=256 and at most --connections"
            ),
            ArgError::Size(s) => write!(
                f,
                "--size {s}: must be {}..={MAX_SIZE} (the payload carries a {}-byte header)",
                payload::MIN_SIZE,
                payload::HEADER
            ),
            ArgError::NoSizes => write!(f, "at least one --size is needed"),
            ArgError::Inflight(k) => write!(f, "--inflight {k}: must be 1..=65536"),
            ArgError::RateMissing => write!(f, "--mode rate needs --rate"),
            ArgError::Rate(r) => write!(f, "--rate {r}: must be > 0 and at most 1e9"),
            ArgError::Seconds(name, v) => {
                write!(f, "--{name} {v}: must be finite, >= 0 and <= {MAX_SECONDS}")
            }
            ArgError::WarmupTooLong => write!(f, "--warmup must be shorter than --duration"),
            ArgError::Messages => write!(f, "--messages must be at least 1"),
            ArgError::JsonBinary => write!(f, "--reply json sends text messages; drop --binary"),
            ArgError::Procs(p) => write!(
                f,
                "--procs {p}: must be 1..={MAX_PROCS} and at most --connections"
            ),
            ArgError::PerProcess { procs, per, need } => write!(
                f,
                "--procs {procs} puts up to {per} connections in one process, over the \
                 {MAX_PER_PROCESS} one process may hold (open files); use --procs {need} or more"
            ),
            ArgError::Child(k) => write!(f, "--child {k}: needs --procs above it"),
            ArgError::Ports(k) => write!(
                f,
                "--ports {k}: must be at least 1 and stay below port 65536"
            ),
        }
    }
}

impl std::error::Error for ArgError {}

fn seconds(name: &'static str, v: f64) -> Result<(), ArgError> {
    if v.is_finite() && (0.0..=MAX_SECONDS).contains(&v) {
        Ok(())
    } else {
        Err(ArgError::Seconds(name, v))
    }
}

impl ConnectArgs {
    pub fn validate(&self) -> Result<(), ArgError> {
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(ArgError::Connections(self.connections));
        }
        if let Some(p) = self.procs {
            if p == 0 || p > MAX_PROCS || p > self.connections {
                return Err(ArgError::Procs(p));
            }
            let per = self.connections.div_ceil(p);
            if per > MAX_PER_PROCESS {
                let need = self.connections.div_ceil(MAX_PER_PROCESS);
                return Err(ArgError::PerProcess {
                    procs: p,
                    per,
                    need,
                });
            }
        }
        match (self.child, self.procs) {
            (Some(k), Some(p)) if k < p => {}
            (Some(k), _) => return Err(ArgError::Child(k)),
            _ => {}
        }
        // Every process gets the same threads, so the smallest slice bounds them.
        let smallest = self.connections / self.procs.unwrap_or(1);
        if self.threads == 0 || self.threads > 256 || self.threads > smallest {
            return Err(ArgError::Threads(self.threads));
        }
        if self.ports == 0 || u32::from(self.url.addr.port()) + u32::from(self.ports) > 65536 {
            return Err(ArgError::Ports(self.ports));
        }
        seconds("ramp", self.ramp)?;
        if self.ramp > 1e9 {
            return Err(ArgError::Seconds("ramp", self.ramp));
        }
        seconds("connect-timeout", self.connect_timeout)
    }
}

impl RunArgs {
    pub fn validate(&self) -> Result<(), ArgError> {
        self.conn.validate()?;
        if self.sizes.is_empty() {
            return Err(ArgError::NoSizes);
        }
        if let Some(&s) = self
            .sizes
            .iter()
            .find(|&&s| !(payload::MIN_SIZE..=MAX_SIZE).contains(&s))
        {
            return Err(ArgError::Size(s));
        }
        if self.inflight == 0 || self.inflight > 65536 {
            return Err(ArgError::Inflight(self.inflight));
        }
        if self.mode == Mode::Rate {
            let r = self.rate.ok_or(ArgError::RateMissing)?;
            if !(r > 0.0 && r <= 1e9) {
                return Err(ArgError::Rate(r));
            }
        }
        if self.messages == Some(0) {
            return Err(ArgError::Messages);
        }
        if self.reply == ReplyMode::Json && self.binary {
            return Err(ArgError::JsonBinary);
        }
        let d = self.duration();
        seconds("duration", d)?;
        if d == 0.0 {
            return Err(ArgError::Seconds("duration", d));
        }
        seconds("warmup", self.warmup)?;
        seconds("drain", self.drain)?;
        if self.warmup >= d {
            return Err(ArgError::WarmupTooLong);
        }
        Ok(())
    }

    /// Sending time: as given, else 10 s, or a 300 s limit for a message count.
    pub fn duration(&self) -> f64 {
        self.duration
            .unwrap_or(if self.messages.is_some() { 300.0 } else { 10.0 })
    }

    /// Whether messages go out as text (asked for, or JSON replies).
    pub fn sends_text(&self) -> bool {
        self.text || self.reply == ReplyMode::Json
    }

    /// In-flight cap per connection.
    pub fn window(&self) -> u32 {
        match self.mode {
            Mode::Pingpong => 1,
            Mode::Pipelined | Mode::Rate => self.inflight,
        }
    }
}

impl IdleArgs {
    pub fn validate(&self) -> Result<(), ArgError> {
        self.conn.validate()?;
        seconds("hold", self.hold)?;
        seconds("echo-timeout", self.echo_timeout)?;
        seconds("ping-interval", self.ping_interval)
    }
}

/// `run` with the default target and `extra` arguments, parsed and
/// checked (for the tests of this crate).
#[cfg(test)]
pub(crate) fn parse_run(extra: &[&str]) -> Result<RunArgs, String> {
    let mut argv = vec!["zerows-loadtest", "run", "ws://127.0.0.1:9/"];
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv)
        .map_err(|e| e.to_string())?
        .command
    {
        Command::Run(r) => {
            r.validate().map_err(|e| e.to_string())?;
            Ok(r)
        }
        _ => unreachable!(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_run as run;
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let r = run(&[]).unwrap();
        assert_eq!(r.conn.connections, 10);
        assert_eq!(r.sizes, vec![32]);
        assert_eq!(r.mode, Mode::Pingpong);
        assert_eq!(r.window(), 1);
        assert_eq!(r.duration(), 10.0);
        assert_eq!(r.reply, ReplyMode::Echo);
        assert!(!r.sends_text());
        assert_eq!(r.payload, Pattern::Random);
        assert!(!r.deflate);
    }

    #[test]
    fn payload_pattern_and_deflate() {
        let r = run(&["--payload", "json", "--deflate"]).unwrap();
        assert_eq!(r.payload, Pattern::Json);
        assert!(r.deflate);
        // JSON text payloads are fine as binary messages and with JSON
        // replies (the server then escapes their quotes).
        assert!(run(&["--payload", "json", "--binary"]).is_ok());
        assert!(run(&["--payload", "json", "--reply", "json"]).is_ok());
        assert!(run(&["--payload", "xml"]).is_err());
        assert!(run(&["--deflate", "yes"]).is_err());
    }

    #[test]
    fn json_replies_force_text() {
        let r = run(&["--reply", "json"]).unwrap();
        assert_eq!(r.reply, ReplyMode::Json);
        assert!(r.sends_text());
        assert!(run(&["--reply", "json", "--text"]).unwrap().sends_text());
        assert!(run(&["--reply", "json", "--binary"])
            .unwrap_err()
            .contains("--binary"));
        assert!(run(&["--reply", "xml"]).is_err());
    }

    #[test]
    fn size_mix_and_modes() {
        let r = run(&[
            "--size",
            "32",
            "--size",
            "1024",
            "--mode",
            "pipelined",
            "--inflight",
            "8",
        ])
        .unwrap();
        assert_eq!(r.sizes, vec![32, 1024]);
        assert_eq!(r.window(), 8);
        assert!(run(&["--mode", "rate"]).unwrap_err().contains("--rate"));
        assert!(run(&["--mode", "rate", "--rate", "1000"]).is_ok());
        assert!(run(&["--mode", "rate", "--rate", "-1"]).is_err());
    }

    #[test]
    fn rejects_bad_values() {
        assert!(run(&["--size", "8"]).unwrap_err().contains("--size 8"));
        assert!(run(&["-c", "0"]).is_err());
        assert!(run(&["-c", "2", "--threads", "3"]).is_err());
        assert!(run(&["--inflight", "0", "--mode", "pipelined"]).is_err());
        assert!(run(&["--duration", "2", "--warmup", "2"]).is_err());
        assert!(run(&["--duration", "nan"]).is_err());
        assert!(run(&["--messages", "0"]).is_err());
        assert!(run(&["--text", "--binary"]).is_err());
        let far = Cli::try_parse_from(["x", "run", "ws://10.1.2.3:80/"]);
        assert!(far.is_err());
    }
}
