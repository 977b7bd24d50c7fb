//! The `fanout` subcommand's arguments and their limits.
//!
//! Invariants: [`FanoutArgs::validate`] runs before anything is opened, so
//! a run never starts with a value outside its range: subscribers
//! 1..=[`MAX_SUBSCRIBERS`], measured messages 1..=[`MAX_MESSAGES`] (warm-up
//! at most as many), readiness rounds 1..=1000, payloads of
//! [`payload::MIN_SIZE`]..=[`MAX_SIZE`] bytes, timeouts finite, positive
//! and bounded; at most [`MAX_TARGETS`] targets (the url and every
//! `--also`), each loopback only and with at least one subscriber; at most
//! one `--server-pid` per target. A bad value is a [`FanoutError::Args`]
//! (exit status 2).

use std::path::PathBuf;

use clap::Args;

use super::FanoutError;
use crate::payload;
use crate::target::Target;

/// The largest payload; a carried partial frame is at most this plus a header.
pub const MAX_SIZE: usize = 64 << 10;
/// The most subscribers one run may open (one thread holds them all).
pub const MAX_SUBSCRIBERS: u32 = 1_000_000;
/// The most measured or warm-up messages.
pub const MAX_MESSAGES: u32 = 10_000_000;
/// The most targets (the url and every `--also`).
pub const MAX_TARGETS: usize = 64;

#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    /// ws://host:port/path?room=NAME (loopback only); the publisher
    /// (connection 0) opens this URL, and so does every subscriber unless
    /// --also names more targets.
    pub url: Target,
    /// Another target (repeatable, loopback only), e.g. another instance
    /// sharing the room through a bus: connection i opens target i mod T,
    /// the url being target 0 and each --also the next, in order.
    #[arg(long, value_name = "URL")]
    pub also: Vec<Target>,
    /// Connections, all subscribers; the first one also publishes.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub subscribers: u32,
    /// Measured messages, published one at a time.
    #[arg(short = 'm', long, default_value_t = 100)]
    pub messages: u32,
    /// Unmeasured (but verified) messages after the readiness check and
    /// before the measured ones.
    #[arg(long, default_value_t = 5)]
    pub warmup: u32,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 32)]
    pub size: usize,
    /// Publish binary messages (default: text).
    #[arg(long)]
    pub binary: bool,
    /// Seconds a connection may take to connect and handshake.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Seconds a message may take to reach every subscriber.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
    /// Readiness messages at most before giving up on subscribers that
    /// receive none.
    #[arg(long, default_value_t = 20)]
    pub ready_rounds: u32,
    /// Keep every connection on 127.0.0.1 instead of spreading the source
    /// addresses over 127.0.0.0/8 (needed beyond ~28k connections).
    #[arg(long)]
    pub no_spread: bool,
    /// The server's process id (repeatable: the k-th belongs to the k-th
    /// target, the url first): its CPU time and memory over the measured
    /// messages are then reported per delivery to that target's
    /// subscribers. The top-level server figures are the first pid's, per
    /// delivery to every subscriber.
    #[arg(long = "server-pid", value_name = "PID")]
    pub server_pid: Vec<u32>,
    /// Count the server's system calls over the measured messages with
    /// `strace -c -f -p PID` (needs --server-pid; the first pid only).
    /// strace slows the server down: take latency and CPU figures from
    /// runs without it.
    #[arg(long, requires = "server_pid")]
    pub strace: bool,
    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Print neither progress nor the final table.
    #[arg(long)]
    pub quiet: bool,
    /// Accepted so that older scripts still run, and ignored: masking
    /// keys and nonces come from the client library's generator, seeded
    /// from the operating system.
    #[arg(long, hide = true)]
    #[allow(dead_code)]
    pub seed: Option<u64>,
}

fn seconds(name: &str, v: f64) -> Result<(), FanoutError> {
    if v.is_finite() && v > 0.0 && v <= crate::args::MAX_SECONDS {
        Ok(())
    } else {
        Err(FanoutError::Args(format!(
            "--{name} {v}: must be finite, > 0 and <= {}",
            crate::args::MAX_SECONDS
        )))
    }
}

impl FanoutArgs {
    /// Every target in order: the url, then each --also.
    pub fn targets(&self) -> Vec<Target> {
        std::iter::once(&self.url)
            .chain(&self.also)
            .cloned()
            .collect()
    }

    pub fn validate(&self) -> Result<(), FanoutError> {
        let bad = |s: String| Err(FanoutError::Args(s));
        let targets = 1 + self.also.len();
        if targets > MAX_TARGETS {
            return bad(format!(
                "{targets} targets (the url and {} --also): at most {MAX_TARGETS}",
                self.also.len()
            ));
        }
        if (self.subscribers as usize) < targets {
            return bad(format!(
                "--subscribers {}: fewer than the {targets} targets (each needs one)",
                self.subscribers
            ));
        }
        if self.server_pid.len() > targets {
            return bad(format!(
                "{} --server-pid for {targets} target(s): at most one per target (the url first, then each --also)",
                self.server_pid.len()
            ));
        }
        if !(1..=MAX_SUBSCRIBERS).contains(&self.subscribers) {
            return bad(format!(
                "--subscribers {}: must be 1..={MAX_SUBSCRIBERS}",
                self.subscribers
            ));
        }
        if !(1..=MAX_MESSAGES).contains(&self.messages) {
            return bad(format!(
                "--messages {}: must be 1..={MAX_MESSAGES}",
                self.messages
            ));
        }
        if self.warmup > MAX_MESSAGES {
            return bad(format!("--warmup {}: at most {MAX_MESSAGES}", self.warmup));
        }
        if !(1..=1000).contains(&self.ready_rounds) {
            return bad(format!(
                "--ready-rounds {}: must be 1..=1000",
                self.ready_rounds
            ));
        }
        if !(payload::MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return bad(format!(
                "--size {}: must be {}..={MAX_SIZE} (the payload carries a {}-byte header)",
                self.size,
                payload::MIN_SIZE,
                payload::HEADER
            ));
        }
        seconds("connect-timeout", self.connect_timeout)?;
        seconds("timeout", self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<FanoutArgs, String> {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            f: FanoutArgs,
        }
        let mut argv = vec!["fanout", "ws://127.0.0.1:9/?room=bench"];
        argv.extend_from_slice(extra);
        let f = Wrap::try_parse_from(argv).map_err(|e| e.to_string())?.f;
        f.validate().map_err(|e| e.to_string())?;
        Ok(f)
    }

    #[test]
    fn arguments() {
        let f = parse(&[]).unwrap();
        assert_eq!((f.subscribers, f.messages, f.size), (1000, 100, 32));
        assert_eq!(f.url.path, "/?room=bench");
        assert!(parse(&["-n", "0"]).is_err());
        assert!(parse(&["-m", "0"]).is_err());
        assert!(parse(&["--size", "8"]).unwrap_err().contains("--size 8"));
        assert!(parse(&["--size", "70000"]).is_err());
        assert!(parse(&["--timeout", "0"]).is_err());
        assert!(parse(&["--ready-rounds", "0"]).is_err());
        assert!(parse(&["--strace"]).is_err(), "--strace needs --server-pid");
        assert!(parse(&["--strace", "--server-pid", "1"]).is_ok());
        assert_eq!(f.targets(), vec![f.url.clone()]);
        assert!(f.server_pid.is_empty());
    }

    #[test]
    fn several_targets() {
        let b = "ws://127.0.0.2:10/?room=bench";
        let c = "ws://localhost:11/?room=bench";
        let f = parse(&["--also", b, "--also", c, "-n", "3"]).unwrap();
        let t = f.targets();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].addr.port(), 9);
        assert_eq!((t[1].addr.port(), t[2].addr.port()), (10, 11));
        // Every target loopback only, like the url.
        let e = parse(&["--also", "ws://10.0.0.1:80/"]).unwrap_err();
        assert!(e.contains("not a loopback"), "{e}");
        assert!(parse(&["--also", "wss://127.0.0.1:80/"]).is_err());
        // Each target needs a subscriber.
        let e = parse(&["--also", b, "--also", c, "-n", "2"]).unwrap_err();
        assert!(e.contains("--subscribers 2"), "{e}");
        // Pids in target order, at most one per target.
        let f = parse(&["--also", b, "--server-pid", "5", "--server-pid", "6"]).unwrap();
        assert_eq!(f.server_pid, [5, 6]);
        let e = parse(&[
            "--also",
            b,
            "--server-pid",
            "5",
            "--server-pid",
            "6",
            "--server-pid",
            "7",
        ])
        .unwrap_err();
        assert!(e.contains("3 --server-pid for 2 target(s)"), "{e}");
        assert!(parse(&["--server-pid", "5", "--server-pid", "6"]).is_err());
        // Fewer pids than targets is allowed (the rest unmeasured).
        assert!(parse(&["--also", b, "--also", c, "--server-pid", "5", "--strace"]).is_ok());
        let many: Vec<&str> = (0..MAX_TARGETS).flat_map(|_| ["--also", b]).collect();
        assert!(parse(&many).unwrap_err().contains("at most 64"));
    }
}
