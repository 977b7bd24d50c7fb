//! Stress: several threads push through handles to many connections while
//! the clients echo and some close at random. Every connection that stays
//! open gets every message pushed to it, each sender's in order, unaltered;
//! echoes interleave whole; nothing panics; memory stays bounded.
//!
//! Scaled to seconds here. Full size (8 threads x 100,000 pushes into
//! 1,000 connections):
//!
//! ```text
//! ZEROWS_STRESS=full cargo test --release --test push_stress -- --nocapture
//! ```

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

#[path = "common/upgrade.rs"]
mod upgrade;
use zerows::{
    Builder, Config, ConnId, Context, Delivery, MessageKind, PushError, Request, Service,
};

/// Echoes everything; tells each client its id first.
struct Target;

impl Service for Target {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) {
        let _ = cx.send_text(&cx.id().as_u64().to_string());
    }
    fn message(&mut self, _st: &mut (), _k: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        Delivery::Echo
    }
}

struct Size {
    senders: usize,
    pushes: u64,
    conns: usize,
    /// Clients that close at random along the way.
    closers: usize,
    limit: Duration,
}

fn size() -> Size {
    if std::env::var("ZEROWS_STRESS").as_deref() == Ok("full") {
        Size {
            senders: 8,
            pushes: 100_000,
            conns: 1_000,
            closers: 100,
            limit: Duration::from_secs(600),
        }
    } else {
        Size {
            senders: 8,
            pushes: 10_000,
            conns: 300,
            closers: 30,
            limit: Duration::from_secs(120),
        }
    }
}

/// A tiny xorshift: reproducible, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn masked_frame(op: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut f = vec![0x80 | op];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&key);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    f
}

/// One client connection, checked as its bytes arrive.
struct Client {
    stream: mio::net::TcpStream,
    id: ConnId,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// Next sequence number expected from each sender.
    next: Vec<u64>,
    /// Echoes sent and not yet back.
    echoes: VecDeque<Vec<u8>>,
    echoed: u64,
    /// Closes at this many pushes received (a closer), or never.
    close_at: Option<u64>,
    received: u64,
}

impl Client {
    /// Parse whole server frames out of `inbuf`.
    fn parse(&mut self) {
        let mut pos = 0;
        loop {
            let b = &self.inbuf[pos..];
            if b.len() < 2 {
                break;
            }
            assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
            let (len, hl) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 if b.len() >= 10 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if b.len() < hl + len {
                break;
            }
            assert_eq!(b[0] & 0x80, 0x80, "{}: fragmented frame", self.id.as_u64());
            let payload = &b[hl..hl + len];
            match b[0] & 0x0f {
                1 => {
                    // "sender seq"
                    let s = std::str::from_utf8(payload).unwrap();
                    let (t, seq) = s.split_once(' ').expect("a push");
                    let (t, seq): (usize, u64) = (t.parse().unwrap(), seq.parse().unwrap());
                    assert_eq!(
                        seq, self.next[t],
                        "{:?}: from sender {t}, lost, repeated or out of order",
                        self.id
                    );
                    self.next[t] += 1;
                    self.received += 1;
                }
                2 => {
                    let want = self.echoes.pop_front().expect("an echo nobody sent");
                    assert_eq!(payload, &want[..], "{:?}: echo altered", self.id);
                    self.echoed += 1;
                }
                9 | 10 => {}
                op => panic!("{:?}: unexpected opcode {op}", self.id),
            }
            pos += hl + len;
        }
        self.inbuf.drain(..pos);
    }

    /// Write what is queued; false if the socket failed.
    fn flush(&mut self) -> bool {
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// Open and upgrade a connection; its first message is its id.
fn open(addr: SocketAddr) -> (TcpStream, ConnId) {
    let mut s = upgrade::upgrade(addr, Duration::from_secs(10));
    let (op, id) = upgrade::read_frame(&mut s);
    assert_eq!(op, 1);
    let id = std::str::from_utf8(&id).unwrap().parse().unwrap();
    (s, ConnId::from_u64(id))
}

/// Peak resident memory of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn eight_threads_push_to_many_connections_while_they_echo_and_close() {
    let size = size();
    let started = Instant::now();
    let config = Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        // Small, so a slow loop shows as `Full` and retries.
        inbox: 1024,
        // Clients read all the time: nothing should ever be skipped, and
        // the bound is what keeps memory in check if it were.
        push_backlog: 8 << 20,
        ..Config::default()
    };
    let running = Builder::new()
        .config(config)
        .threads(2)
        .start(|_| Target)
        .unwrap();
    let addr = running.local_addrs()[0];
    let handle = running.handle();

    // Connections, with a reproducible choice of closers.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut clients = Vec::new();
    let per_conn = size.pushes * size.senders as u64 / size.conns as u64;
    for i in 0..size.conns {
        let (s, id) = open(addr);
        s.set_nonblocking(true).unwrap();
        let close_at = (i < size.closers).then(|| rng.below(per_conn.max(1)));
        clients.push(Client {
            stream: mio::net::TcpStream::from_std(s),
            id,
            inbuf: Vec::new(),
            out: Vec::new(),
            next: vec![0; size.senders],
            echoes: VecDeque::new(),
            echoed: 0,
            close_at,
            received: 0,
        });
    }
    let ids: Arc<Vec<ConnId>> = Arc::new(clients.iter().map(|c| c.id).collect());

    // The senders: each pushes to connections chosen at random, counting
    // per connection what the handle took. Full: try again.
    let sent: Arc<Mutex<Vec<Vec<u64>>>> = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..size.senders)
        .map(|t| {
            let (handle, ids, sent) = (handle.clone(), ids.clone(), sent.clone());
            let pushes = size.pushes;
            let limit = size.limit;
            std::thread::spawn(move || {
                let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ ((t as u64 + 1) * 0x9E37));
                let mut count = vec![0u64; ids.len()];
                let mut gone = vec![false; ids.len()];
                let (mut full, t0) = (0u64, Instant::now());
                let mut made = 0;
                while made < pushes {
                    let j = rng.below(ids.len() as u64) as usize;
                    if gone[j] {
                        made += 1;
                        continue;
                    }
                    let msg = format!("{t} {}", count[j]);
                    loop {
                        match handle.send_text(ids[j], &msg) {
                            Ok(()) => {
                                count[j] += 1;
                                break;
                            }
                            Err(PushError::Full) => {
                                full += 1;
                                assert!(t0.elapsed() < limit, "inbox full for too long");
                                std::thread::yield_now();
                            }
                            Err(PushError::Closed) => {
                                gone[j] = true;
                                break;
                            }
                            Err(e) => panic!("push: {e}"),
                        }
                    }
                    made += 1;
                }
                sent.lock().unwrap().push(count.clone());
                (t, count, full)
            })
        })
        .collect();

    // The clients, on this thread: read and check everything, keep one
    // echo in flight on some connections, close the closers.
    let mut poll = Poll::new().unwrap();
    for (i, c) in clients.iter_mut().enumerate() {
        poll.registry()
            .register(
                &mut c.stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap();
    }
    let mut open_ = vec![true; clients.len()];
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 << 10];
    let mut expected: Option<Vec<Vec<u64>>> = None;
    let mut results = Vec::new();
    let mut senders = Some(senders);
    let mut echo_rng = Rng(77);
    loop {
        assert!(
            started.elapsed() < size.limit,
            "stress test over its time limit"
        );
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        for ev in events.iter() {
            let i = ev.token().0;
            if !open_[i] {
                continue;
            }
            let c = &mut clients[i];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => panic!("{:?}: server closed a connection", c.id),
                    Ok(n) => {
                        c.inbuf.extend_from_slice(&buf[..n]);
                        c.parse();
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("{:?}: read: {e}", c.id),
                }
            }
            if c.close_at.is_some_and(|at| c.received >= at) {
                // Half of the closers say goodbye, half just vanish.
                if c.id.serial() % 2 == 0 {
                    c.out
                        .extend(masked_frame(8, &1000u16.to_be_bytes(), [1, 2, 3, 4]));
                    let _ = c.flush();
                }
                poll.registry().deregister(&mut c.stream).unwrap();
                open_[i] = false;
                continue;
            }
            // Keep an echo going on a third of the connections, for as
            // long as the senders push.
            if i % 3 == 0 && c.echoes.is_empty() && expected.is_none() {
                let len = 1 + echo_rng.below(300) as usize;
                let p: Vec<u8> = (0..len).map(|k| (k as u64 ^ c.echoed) as u8).collect();
                c.out.extend(masked_frame(2, &p, [9, 8, 7, 6]));
                c.echoes.push_back(p);
            }
            assert!(c.flush(), "{:?}: write failed", c.id);
        }
        // Once the senders are done, wait for every open connection to
        // have all they were sent.
        if expected.is_none() && senders.as_ref().unwrap().iter().all(|s| s.is_finished()) {
            for s in senders.take().unwrap() {
                results.push(s.join().expect("a sender panicked"));
            }
            let sent = sent.lock().unwrap();
            let mut per = vec![vec![0u64; size.senders]; clients.len()];
            for (t, counts, _) in &results {
                for (j, &n) in counts.iter().enumerate() {
                    per[j][*t] = n;
                }
            }
            assert_eq!(sent.len(), size.senders);
            expected = Some(per);
        }
        if let Some(per) = &expected {
            let complete = clients
                .iter()
                .enumerate()
                .filter(|(i, _)| open_[*i])
                .all(|(i, c)| c.next == per[i] && c.echoes.is_empty());
            if complete {
                break;
            }
        }
    }
    let open_count = open_.iter().filter(|&&o| o).count();
    let delivered: u64 = clients.iter().map(|c| c.received).sum();
    let echoed: u64 = clients.iter().map(|c| c.echoed).sum();
    let full: u64 = results.iter().map(|r| r.2).sum();
    let rss = peak_rss_kib();
    eprintln!(
        "stress: {} senders x {} pushes into {} connections ({} closed on the way) in {:.1?}: \
         {delivered} pushes delivered, {echoed} echoes, inbox full {full} times, peak RSS {} MiB",
        size.senders,
        size.pushes,
        size.conns,
        size.conns - open_count,
        started.elapsed(),
        rss / 1024
    );
    assert!(open_count >= size.conns - size.closers);
    assert!(echoed > 0);
    // Bounded: inboxes and backlogs are; this whole process (clients too)
    // stays far below what queueing every push would take.
    assert!(rss < 1 << 20, "peak RSS {rss} KiB");
    drop(clients);
    handle.stop();
    running.join().unwrap();
}
