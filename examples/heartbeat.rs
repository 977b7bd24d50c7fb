//! Echo, plus "heartbeat from server" to every connection every 2 seconds:
//! the connection wrapper of the Go material, where a goroutine writes
//! heartbeats while the connection echoes, made safe by construction.
//!
//! Two ways, chosen on the command line:
//! * `timer` (the default): each connection's own timer, set when it opens;
//! * `thread`: a separate thread pushes to every connection through the
//!   server's [`Handle`], as the Go code's heartbeat goroutine does.
//!
//! ```text
//! cargo run --release --example heartbeat                     # timer, ws://127.0.0.1:9001/
//! cargo run --release --example heartbeat -- thread 127.0.0.1:9002
//! ```
//!
//! Either way the echo stays zero-copy, and a heartbeat never lands inside
//! an echoed message: one due while an echo is half out waits for its last
//! frame.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use zerows::{
    Builder, ConnId, Context, Delivery, Handle, MessageKind, Prepared, PushError, Request, Service,
};

/// What a heartbeat says.
pub const HEARTBEAT: &str = "heartbeat from server";
/// How often.
pub const EVERY: Duration = Duration::from_secs(2);

/// Heartbeats from each connection's own timer.
pub struct TimerBeat {
    pub every: Duration,
}

impl Service for TimerBeat {
    type State = ();

    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) {
        // The heartbeat, in one line.
        cx.timer_every(self.every);
    }

    fn message(&mut self, _st: &mut (), _kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        Delivery::Echo
    }

    fn timer(&mut self, _st: &mut (), cx: &mut Context<'_>) {
        let _ = cx.send_text(HEARTBEAT);
    }
}

/// The open connections, shared with the heartbeat thread.
pub type Registry = Arc<Mutex<HashSet<ConnId>>>;

/// Echo only; connections are listed in a registry that the heartbeat
/// thread reads.
pub struct Registered {
    pub conns: Registry,
}

impl Service for Registered {
    /// The connection's id, to take it off the registry when it closes.
    type State = ConnId;

    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) -> ConnId {
        self.conns.lock().unwrap().insert(cx.id());
        cx.id()
    }

    fn message(&mut self, _id: &mut ConnId, _kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        Delivery::Echo
    }

    fn closed(&mut self, id: ConnId) {
        self.conns.lock().unwrap().remove(&id);
    }
}

/// The heartbeat thread: every `every`, one push per registered
/// connection, until the server stops.
pub fn heartbeat_thread(handle: Handle, conns: Registry, every: Duration) -> JoinHandle<()> {
    std::thread::spawn(move || {
        // Encoded once; every push shares these bytes.
        let beat = Prepared::text(HEARTBEAT);
        let mut ids = Vec::new();
        loop {
            std::thread::sleep(every);
            ids.clear();
            ids.extend(conns.lock().unwrap().iter().copied());
            for &id in &ids {
                match handle.send(id, &beat) {
                    // Closed: the connection ended since the list was read.
                    Ok(()) | Err(PushError::Closed) => {}
                    // The loop is behind: this beat is skipped, not queued
                    // without bound.
                    Err(PushError::Full) => {}
                    Err(PushError::Stopped) | Err(PushError::Refused) => return,
                }
            }
            if handle.is_stopped() {
                return;
            }
        }
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1).peekable();
    let thread = match args.peek().map(String::as_str) {
        Some("thread") => {
            args.next();
            true
        }
        Some("timer") => {
            args.next();
            false
        }
        _ => false,
    };
    let addr = args.next().unwrap_or("127.0.0.1:9001".into());
    let builder = Builder::new().listen(addr.parse()?);
    let running = if thread {
        let conns = Registry::default();
        let registry = conns.clone();
        let running = builder.start(move |_loop| Registered {
            conns: registry.clone(),
        })?;
        heartbeat_thread(running.handle(), conns, EVERY);
        running
    } else {
        builder.start(|_loop| TimerBeat { every: EVERY })?
    };
    println!(
        "echo with heartbeats ({}) on ws://{}/",
        if thread { "thread" } else { "timer" },
        running.local_addrs()[0]
    );
    running.join()?;
    Ok(())
}
