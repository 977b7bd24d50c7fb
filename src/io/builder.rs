//! Several event loops on one port, from one call.
//!
//! Each loop runs on its own thread with its own listening sockets
//! (`SO_REUSEPORT`, so the kernel spreads new connections; with
//! [`Builder::reuse_port`] other processes may join them), its own pools
//! and its own service value, made on that thread by the factory: services
//! need not be `Send`, and share what they want through an `Arc` of their
//! own. Metrics are summed over every loop, whichever answers a scrape.
//! Connection ids are unique across the loops.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::bus::{self, BusConfig};
use crate::metrics::Board;
use crate::push::Handle;
use crate::server::{listener, Config, Server, Stopper};
use crate::service::Service;

/// Configures and starts a server of one or more event loops.
#[derive(Debug, Clone)]
pub struct Builder {
    config: Config,
    threads: usize,
    listen_set: bool,
    /// Given out before the start (see [`handle`](Self::handle)).
    handle: Option<Handle>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// One loop on `127.0.0.1:9001` with [`Config::default`].
    pub fn new() -> Builder {
        Builder {
            config: Config::default(),
            threads: 1,
            listen_set: false,
            handle: None,
        }
    }

    /// Use `config` (its listen addresses included).
    pub fn config(mut self, config: Config) -> Builder {
        self.config = config;
        self.listen_set = true;
        self
    }

    /// Listen on `addr`; the first call replaces the default address,
    /// later ones add to it. Port 0 picks one port, shared by all loops.
    pub fn listen(mut self, addr: SocketAddr) -> Builder {
        if !self.listen_set {
            self.config.listen.clear();
            self.listen_set = true;
        }
        self.config.listen.push(addr);
        self
    }

    /// Run `n` event loops (at least 1), each on its own thread.
    pub fn threads(mut self, n: usize) -> Builder {
        self.threads = n.max(1);
        self
    }

    /// Let other processes listen on the same addresses (`SO_REUSEPORT`),
    /// for instance a new version that replaces this one: on stop the loops
    /// close their listeners instead of answering newcomers 503 (see
    /// [`Config::reuse_port`]).
    pub fn reuse_port(mut self, on: bool) -> Builder {
        self.config.reuse_port = on;
        self
    }

    /// Publish across instances: every [`Handle::publish`] (and a
    /// callback's publish) also goes to the broker at `url`
    /// (`redis://host:port[/db]`), and what other instances publish there
    /// reaches this one's subscribers. See [`BusConfig`] for the rest.
    pub fn bus(mut self, url: &str) -> Builder {
        self.config.bus = Some(BusConfig::new(url));
        self
    }

    /// The handle of the server this builder will start, before it starts
    /// (to give to threads that push): set [`threads`](Self::threads)
    /// first. Pushes fail with `Closed` until the loops run.
    pub fn handle(&mut self) -> Handle {
        let n = self.threads;
        self.handle.get_or_insert_with(|| Handle::new(n)).clone()
    }

    /// Bind, start every loop with a service from `make(loop_index)`, and
    /// return once all of them are ready to accept.
    pub fn start<S, F>(self, make: F) -> io::Result<Running>
    where
        S: Service + 'static,
        F: Fn(usize) -> S + Send + Sync + 'static,
    {
        self.config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if self.config.listen.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no listen address",
            ));
        }
        let n = self.threads;
        let reuse_port = n > 1 || self.config.reuse_port;
        let backlog = self.config.listen_backlog;
        // Later loops bind the addresses the first got, so port 0 means one
        // kernel-chosen port shared by all.
        let mut sets = Vec::with_capacity(n);
        let first: Vec<std::net::TcpListener> = self
            .config
            .listen
            .iter()
            .map(|&a| listener(a, reuse_port, backlog))
            .collect::<io::Result<_>>()?;
        let addrs: Vec<SocketAddr> = first
            .iter()
            .map(|l| l.local_addr())
            .collect::<io::Result<_>>()?;
        sets.push(first);
        crate::server::check_migration(&self.config);
        for _ in 1..n {
            sets.push(
                addrs
                    .iter()
                    .map(|&a| listener(a, reuse_port, backlog))
                    .collect::<io::Result<_>>()?,
            );
        }
        let board = (n > 1).then(|| Arc::new(Board::new(n)));
        let make = Arc::new(make);
        let handle =
            match self.handle {
                Some(h) if h.loops() != n => return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "Builder::handle was taken before Builder::threads changed the number of loops",
                )),
                Some(h) => h,
                None => Handle::new(n),
            };
        // Before the loops attach, so their topics report to it.
        let bus = match &self.config.bus {
            Some(c) => Some(bus::start(c, max_message(&self.config), &handle)?),
            None => None,
        };
        let (ready_tx, ready_rx) = mpsc::channel::<io::Result<Stopper>>();
        let mut threads = Vec::with_capacity(n);
        for (i, set) in sets.into_iter().enumerate() {
            let config = self.config.clone();
            let make = make.clone();
            let board = board.clone();
            let ready = ready_tx.clone();
            let handle = handle.clone();
            let t = std::thread::Builder::new()
                .name(format!("zerows-loop-{i}"))
                .spawn(move || {
                    let mut server = match Server::with_listeners(config, set, make(i)) {
                        Ok(s) => s,
                        Err(e) => {
                            let kind = e.kind();
                            let _ = ready.send(Err(e));
                            return Err(io::Error::new(kind, "event loop failed to start"));
                        }
                    };
                    server.set_loop(i, n);
                    server.attach(&handle, i);
                    if let Some(b) = board {
                        server.share_metrics(b, i);
                    }
                    let _ = ready.send(Ok(server.stopper()));
                    server.run()
                })?;
            threads.push(t);
        }
        drop(ready_tx);
        let mut stoppers = Vec::with_capacity(n);
        let mut failed = None;
        for _ in 0..n {
            match ready_rx.recv() {
                Ok(Ok(s)) => stoppers.push(s),
                Ok(Err(e)) => failed = Some(e),
                Err(_) => failed = Some(io::Error::other("an event loop exited at start")),
            }
        }
        let running = Running {
            addrs,
            stopper: Stopper::all(&stoppers),
            threads,
            handle,
            bus,
        };
        if let Some(e) = failed {
            running.stopper.stop();
            let _ = running.join();
            return Err(e);
        }
        Ok(running)
    }

    /// [`start`](Self::start), then wait until every loop has stopped (see
    /// [`Running::stopper`]).
    pub fn run<S, F>(self, make: F) -> io::Result<()>
    where
        S: Service + 'static,
        F: Fn(usize) -> S + Send + Sync + 'static,
    {
        self.start(make)?.join()
    }
}

/// Event loops started by a [`Builder`].
#[derive(Debug)]
pub struct Running {
    addrs: Vec<SocketAddr>,
    stopper: Stopper,
    threads: Vec<JoinHandle<io::Result<()>>>,
    handle: Handle,
    bus: Option<bus::Running>,
}

/// The largest message a bus carries: the largest a connection accepts.
fn max_message(c: &Config) -> usize {
    usize::try_from(c.settings.max_message).unwrap_or(usize::MAX)
}

impl Running {
    /// The addresses listened on (with the port the kernel chose for 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Stops every loop gracefully, from any thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Pushes to connections of every loop from any thread.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Wait for every loop to stop (then for the bus, if any); the first
    /// error any of them returned.
    pub fn join(self) -> io::Result<()> {
        let mut result = Ok(());
        for t in self.threads {
            let r = t
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("an event loop panicked")));
            if result.is_ok() {
                result = r;
            }
        }
        if let Some(bus) = self.bus {
            bus.stop_and_join();
        }
        result
    }
}
