//! The server's configuration, and the checks that its sizes fit
//! together (a read buffer that holds a whole echo chunk, a backlog limit
//! above one read buffer's worth of output, and so on): a configuration
//! that passes [`Config::validate`] cannot wedge a connection.

use std::net::SocketAddr;
use std::time::Duration;

use crate::bus::BusConfig;
use crate::conn::Settings;
use crate::conn_id::MAX_SLOTS;
use crate::push::SlowPolicy;

use super::Backend;

/// Everything the server needs to know.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on.
    pub listen: Vec<SocketAddr>,
    /// Protocol settings of every connection.
    pub settings: Settings,
    /// Bytes of each pooled read buffer.
    pub read_buffer: usize,
    /// Bytes of each pooled backlog block.
    pub write_buffer: usize,
    /// Most unsent bytes one connection may hold before it is no longer
    /// read. Above the largest message, so a client that writes a whole
    /// message before reading its echo still gets it back.
    pub max_backlog: usize,
    /// Idle buffers of each kind the pools keep for reuse.
    pub pool_idle: usize,
    /// Past this many open connections new upgrades get 503.
    pub max_connections: usize,
    /// Reads per connection per readiness event before yielding.
    pub read_budget: usize,
    /// How long output may wait on a peer that reads nothing before the
    /// connection is dropped; also the window over which
    /// `min_drain_rate` is measured.
    pub stall_timeout: Duration,
    /// Bytes per second a peer must read while output waits for it,
    /// measured over windows of `stall_timeout`: a window in which it took
    /// less drops the connection. 0: at least one byte per window.
    pub min_drain_rate: u64,
    /// On stop, how long to wait for close handshakes and pending echoes.
    pub shutdown_timeout: Duration,
    /// Depth of the accept queue of listeners the server binds.
    pub listen_backlog: i32,
    /// Bind with `SO_REUSEPORT`, so that other processes can listen on the
    /// same port and the kernel spreads connections over all of them; on
    /// stop, close the listeners at once, after taking in what they have
    /// queued, instead of answering newcomers 503 (see `server/listen.rs`).
    pub reuse_port: bool,
    /// Commands each loop's inbox holds (pushes from a
    /// [`Handle`](crate::Handle) waiting for the loop); past it a push
    /// fails with [`PushError::Full`](crate::PushError::Full).
    pub inbox: usize,
    /// A pushed message (a handle's send, a publish, a broadcast) finding
    /// more unsent bytes than this on a connection meets `slow`.
    pub push_backlog: usize,
    /// What a push does to such a slow connection.
    pub slow: SlowPolicy,
    /// Publish across instances through this broker (started by a
    /// [`Builder`](crate::Builder); a lone [`Server`](crate::Server) has
    /// none).
    pub bus: Option<BusConfig>,
    /// How the loops wait for and move bytes: epoll (the default, or what
    /// `ZEROWS_IO` names) or io_uring (see [`Backend`]).
    pub io: Backend,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 9001))],
            settings: Settings::default(),
            read_buffer: 64 << 10,
            write_buffer: 64 << 10,
            max_backlog: (16 << 20) + (1 << 20),
            pool_idle: 1024,
            max_connections: 100_000,
            read_budget: 4,
            stall_timeout: Duration::from_secs(30),
            min_drain_rate: 1024,
            shutdown_timeout: Duration::from_secs(10),
            listen_backlog: 4096,
            reuse_port: false,
            inbox: 8192,
            push_backlog: 1 << 20,
            slow: SlowPolicy::Skip,
            bus: None,
            io: Backend::from_env(),
        }
    }
}

impl Config {
    /// Check the sizes fit together.
    pub fn validate(&self) -> Result<(), String> {
        let head = self.settings.handshake.max_header_bytes;
        let need = crate::buffer::HEADROOM
            + (self.settings.chunk_size + crate::conn::CHUNK_SLACK).max(head + 1);
        if self.read_buffer < need {
            return Err(format!(
                "read buffer ({} B) must hold a whole echo chunk ({} B) or request head ({} B): at least {need} B",
                self.read_buffer, self.settings.chunk_size, head
            ));
        }
        let extra = crate::session::Shared::<()>::extra();
        if self.max_backlog < self.read_buffer + extra {
            return Err(format!(
                "backlog limit ({} B) must be at least the read buffer plus {extra} B",
                self.max_backlog
            ));
        }
        if self.write_buffer < 1024 {
            return Err("write buffer must be at least 1024 B".into());
        }
        if self.max_connections > MAX_SLOTS {
            return Err(format!("at most {MAX_SLOTS} connections per event loop"));
        }
        if self.inbox == 0 {
            return Err("the inbox must hold at least one command".into());
        }
        if let SlowPolicy::Close(code) = self.slow {
            if !crate::close_code::is_sendable(code) {
                return Err(format!("close code {code} may not be sent"));
            }
        }
        if let Some(bus) = &self.bus {
            bus.validate()?;
        }
        if self.settings.handshake.subprotocols.len() > usize::from(u8::MAX) {
            return Err("at most 255 subprotocols".into());
        }
        Ok(())
    }
}
