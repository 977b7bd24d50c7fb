//! `zerows client URL`: a command-line WebSocket client.
//!
//! Lines from stdin go out as text messages (or binary, `--binary`); every
//! message received is written to stdout, followed by a newline. When stdin
//! ends, the client waits for replies until the server has sent nothing for
//! `--wait` seconds (see [`Linger`]), closes (`--close CODE`), prints what
//! the server still sends before its own close, and exits: 0 after a clean
//! close, 1 on any error (on stderr). On a terminal, stderr also shows the
//! connection's state and received messages are marked with `< `.
//!
//! One thread reads stdin into a channel; the main thread owns the
//! connection, waiting for input at most [`POLL`] at a time so that lines
//! typed go out promptly.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use zerows::{Client, ClientConfig, ClientError, Incoming};

/// Options of `zerows client`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The server, as ws://host[:port][/path][?query].
    url: String,

    /// Send each line as a binary message rather than text.
    #[arg(long)]
    binary: bool,

    /// Send a ping once connected, and report the pong.
    #[arg(long)]
    ping: bool,

    /// Also ping every this many seconds.
    #[arg(long, value_name = "SECONDS")]
    ping_every: Option<f64>,

    /// Close code sent when stdin ends.
    #[arg(long, value_name = "CODE", default_value_t = 1000)]
    close: u16,

    /// Close reason sent when stdin ends.
    #[arg(long, value_name = "TEXT", default_value = "")]
    close_reason: String,

    /// Once stdin has ended, close when no message has arrived for this
    /// many seconds (0: close at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    wait: f64,

    /// Extra request header, as "Name: value" (repeatable).
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE")]
    headers: Vec<String>,

    /// Origin header to send.
    #[arg(long)]
    origin: Option<String>,

    /// Subprotocol to offer (repeatable, in order of preference).
    #[arg(long)]
    subprotocol: Vec<String>,

    /// Offer permessage-deflate (RFC 7692): messages of 128 bytes or more
    /// go compressed once the server agrees.
    #[arg(long)]
    deflate: bool,

    /// Longest message accepted, in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_message_size: u64,

    /// Seconds allowed for connecting and for the handshake.
    #[arg(long, default_value_t = 10.0)]
    connect_timeout: f64,
}

/// How long the connection waits for the server before looking at stdin.
const POLL: Duration = Duration::from_millis(20);

/// The longest wait after stdin ends, in `--wait` periods.
const LINGER_CAP: u32 = 10;

/// When to close once stdin has ended. Not at once: a server may answer a
/// close straight away and drop the replies its application had yet to
/// send, so `echo hi | zerows client URL` would print nothing. The client
/// waits until no message has arrived for `quiet`, and at most
/// [`LINGER_CAP`] such periods in all, so that a server that never stops
/// talking does not keep it open.
#[derive(Debug, Clone, Copy)]
struct Linger {
    quiet: Duration,
    last: Instant,
    until: Option<Instant>,
}

impl Linger {
    fn start(now: Instant, quiet: Duration) -> Linger {
        Linger {
            quiet,
            last: now,
            until: now.checked_add(quiet.saturating_mul(LINGER_CAP)),
        }
    }

    /// A message (or a piece of one) arrived.
    fn heard(&mut self, now: Instant) {
        self.last = now;
    }

    /// Whether to close now.
    fn due(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now >= u) || now.duration_since(self.last) >= self.quiet
    }
}

/// Run the client; the exit status says how it ended.
pub fn run(args: Args) -> ExitCode {
    match session(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zerows client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config(a: &Args) -> Result<ClientConfig, String> {
    let t = Duration::try_from_secs_f64(a.connect_timeout)
        .map_err(|_| format!("--connect-timeout: not a duration: {}", a.connect_timeout))?;
    let mut cfg = ClientConfig::new().max_message(a.max_message_size);
    cfg.connect_timeout = t;
    cfg.handshake_timeout = t;
    for h in &a.headers {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h:?}: expected \"Name: value\""))?;
        cfg = cfg.header(name.trim(), value.trim());
    }
    if let Some(o) = &a.origin {
        cfg = cfg.origin(o.clone());
    }
    for p in &a.subprotocol {
        cfg = cfg.subprotocol(p.clone());
    }
    if a.deflate {
        cfg = cfg.deflate(zerows::DeflateOffer::default());
    }
    Ok(cfg)
}

fn session(a: &Args) -> Result<(), String> {
    let cfg = config(a)?;
    let wait = Duration::try_from_secs_f64(a.wait)
        .map_err(|_| format!("--wait: not a duration: {}", a.wait))?;
    let every = match a.ping_every {
        Some(s) => Some(
            Duration::try_from_secs_f64(s)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| format!("--ping-every: not a duration: {s}"))?,
        ),
        None => None,
    };
    let tty = std::io::stdout().is_terminal();
    let status = |msg: &str| {
        if tty {
            eprintln!("[{msg}]");
        }
    };
    let mut ws = Client::connect_with(&a.url, &cfg).map_err(|e| e.to_string())?;
    match ws.protocol() {
        Some(p) => status(&format!("connected to {} (subprotocol {p})", a.url)),
        None => status(&format!("connected to {}", a.url)),
    }
    ws.set_read_timeout(Some(POLL));

    let lines = stdin_lines();
    let mut stdin_open = true;
    let mut pinged: Option<Instant> = None;
    let mut next_ping = a.ping.then(Instant::now);
    let mut out = std::io::stdout().lock();
    let mut mid_message = false;
    let mut linger: Option<Linger> = None;
    loop {
        if next_ping.is_some_and(|t| Instant::now() >= t) {
            ws.ping(b"zerows").map_err(|e| e.to_string())?;
            pinged = Some(Instant::now());
            next_ping = every.map(|d| Instant::now() + d);
        }
        while stdin_open {
            match lines.try_recv() {
                Ok(line) => {
                    let sent = if a.binary {
                        ws.send_binary(line.as_bytes())
                    } else {
                        ws.send_text(&line)
                    };
                    sent.map_err(|e| e.to_string())?;
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    stdin_open = false;
                    next_ping = None;
                    linger = Some(Linger::start(Instant::now(), wait));
                }
            }
        }
        if linger.is_some_and(|l| l.due(Instant::now())) {
            linger = None;
            status(&format!("stdin ended: closing with {}", a.close));
            ws.send_close(a.close, &a.close_reason)
                .map_err(|e| e.to_string())?;
        }
        let ev = ws.recv_event();
        if let (Ok(Some(Incoming::Piece(_))), Some(l)) = (&ev, linger.as_mut()) {
            l.heard(Instant::now());
        }
        match ev {
            Ok(Some(Incoming::Piece(p))) => {
                if p.first && tty {
                    let _ = out.write_all(b"< ");
                }
                let _ = out.write_all(p.data);
                mid_message = !p.last;
                if p.last {
                    let _ = out.write_all(b"\n");
                    let _ = out.flush();
                }
            }
            Ok(Some(Incoming::Pong(_))) => {
                if let Some(t) = pinged.take() {
                    let rtt = t.elapsed();
                    if tty {
                        status(&format!("pong after {:.3} ms", rtt.as_secs_f64() * 1e3));
                    } else {
                        eprintln!("pong after {:.3} ms", rtt.as_secs_f64() * 1e3);
                    }
                }
            }
            Ok(Some(Incoming::Ping(_))) => status("ping from the server (answered)"),
            Ok(None) => break,
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if mid_message {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
    let theirs = ws.close_frame().cloned();
    let code = theirs.as_ref().and_then(|c| c.code);
    let reason = theirs.as_ref().map_or("", |c| c.reason.as_str());
    status(&format!(
        "closed by the server: {}{}",
        code.map_or("no code".to_string(), |c| c.to_string()),
        if reason.is_empty() {
            String::new()
        } else {
            format!(" {reason:?}")
        }
    ));
    match code {
        None | Some(1000) | Some(1001) => Ok(()),
        Some(c) if stdin_open || c != a.close => {
            Err(format!("the server closed with {c} {reason:?}"))
        }
        Some(_) => Ok(()),
    }
}

/// Lines of stdin, read on their own thread; the channel closes at its end.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::sync_channel(1024);
    std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
        .expect("spawn the stdin thread");
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: Duration = Duration::from_millis(100);

    #[test]
    fn linger_waits_for_a_quiet_period() {
        let t0 = Instant::now();
        let l = Linger::start(t0, Q);
        assert!(!l.due(t0), "closing as stdin ends loses the last replies");
        assert!(!l.due(t0 + Q / 2));
        assert!(l.due(t0 + Q));
    }

    #[test]
    fn linger_is_postponed_by_each_message() {
        let t0 = Instant::now();
        let mut l = Linger::start(t0, Q);
        l.heard(t0 + Q / 2);
        assert!(!l.due(t0 + Q));
        assert!(l.due(t0 + Q / 2 + Q));
    }

    #[test]
    fn linger_is_capped() {
        let t0 = Instant::now();
        let mut l = Linger::start(t0, Q);
        let cap = Q * LINGER_CAP;
        let mut t = t0;
        while t < t0 + cap {
            l.heard(t);
            t += Q / 2;
        }
        l.heard(t0 + cap);
        assert!(l.due(t0 + cap), "a server that never stops keeps it open");
    }

    #[test]
    fn linger_of_zero_closes_at_once() {
        let t0 = Instant::now();
        assert!(Linger::start(t0, Duration::ZERO).due(t0));
    }

    #[test]
    fn linger_of_any_length_is_accepted() {
        let t0 = Instant::now();
        let l = Linger::start(t0, Duration::MAX);
        assert!(!l.due(t0 + Duration::from_secs(3600)));
    }
}
