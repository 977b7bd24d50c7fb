//! Cross-thread push: messages per second through a `Handle` from T threads
//! into C connections, and the latency from `send` to the client having it
//! (p50, p99, max). Not a Criterion bench: a fixed workload, run as
//!
//! ```text
//! cargo bench --bench push -- [threads] [connections] [messages] [rate]
//! ```
//!
//! (defaults 1, 1000, 1000000, 0). Everything is in one process on
//! loopback: one event loop, the pushing threads, and one client thread
//! reading every connection through mio. `rate` 0 pushes as fast as the
//! inbox takes (a full inbox is retried), which measures throughput (and
//! latency under saturation); a rate in messages per second, spread over
//! the threads and sent in bursts once a millisecond, measures latency
//! below saturation. Each payload carries
//! its send time; the client checks each thread's messages arrive in
//! order, none lost. Run by `cargo bench` with no arguments it does a small
//! run, to stay correct.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use zerows::{Builder, ConnId, Context, Prepared, PushError, Request, Service};

#[path = "../tests/common/upgrade.rs"]
mod upgrade;

/// Tells each client its id (8 bytes, binary).
struct Target;

impl Service for Target {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) {
        let _ = cx.send_binary(&cx.id().as_u64().to_be_bytes());
    }
}

fn connect(addr: std::net::SocketAddr) -> (TcpStream, ConnId) {
    let mut s = upgrade::upgrade(addr, Duration::from_secs(10));
    let (op, id) = upgrade::read_frame(&mut s);
    assert_eq!(op, 2);
    (
        s,
        ConnId::from_u64(u64::from_be_bytes(id.try_into().unwrap())),
    )
}

/// Payload: sender (1 byte), sequence (8), send time in ns since `t0` (8).
const PAYLOAD: usize = 17;
const FRAME: usize = 2 + PAYLOAD;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let small = args.is_empty();
    let threads = args.first().copied().unwrap_or(1) as usize;
    let conns = args
        .get(1)
        .copied()
        .unwrap_or(if small { 50 } else { 1000 }) as usize;
    let messages = args
        .get(2)
        .copied()
        .unwrap_or(if small { 20_000 } else { 1_000_000 });
    let rate = args.get(3).copied().unwrap_or(0);

    let running = Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .start(|_| Target)
        .unwrap();
    let addr = running.local_addrs()[0];
    let handle = running.handle();
    let (streams, ids): (Vec<TcpStream>, Vec<ConnId>) = (0..conns).map(|_| connect(addr)).unzip();
    let ids = Arc::new(ids);
    let t0 = Instant::now();

    let per_thread = messages / threads as u64;
    let pushers: Vec<_> = (0..threads)
        .map(|t| {
            let (handle, ids) = (handle.clone(), ids.clone());
            std::thread::spawn(move || {
                let mut full = 0u64;
                // Paced: a burst every millisecond, sleeping between
                // (spinning would take a core from the loop).
                let per_ms = (rate as f64 / threads as f64 / 1000.0).max(1.0);
                let start = Instant::now();
                for i in 0..per_thread {
                    if rate > 0 {
                        let due = start + Duration::from_secs_f64(i as f64 / per_ms / 1000.0);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    let id = ids[(i as usize + t * 7919) % ids.len()];
                    let mut p = [0u8; PAYLOAD];
                    p[0] = t as u8;
                    p[1..9].copy_from_slice(&i.to_be_bytes());
                    loop {
                        p[9..].copy_from_slice(&(t0.elapsed().as_nanos() as u64).to_be_bytes());
                        // Each message is new (its time stamp), so it is
                        // prepared, as a caller pushing fresh data would.
                        match handle.send(id, &Prepared::binary(&p)) {
                            Ok(()) => break,
                            Err(PushError::Full) => {
                                full += 1;
                                std::thread::yield_now();
                            }
                            Err(e) => panic!("push: {e}"),
                        }
                    }
                }
                full
            })
        })
        .collect();

    // The client side: every connection, one thread.
    let mut poll = Poll::new().unwrap();
    let mut socks: Vec<mio::net::TcpStream> = streams
        .into_iter()
        .map(|s| {
            s.set_nonblocking(true).unwrap();
            mio::net::TcpStream::from_std(s)
        })
        .collect();
    for (i, s) in socks.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(i), Interest::READABLE)
            .unwrap();
    }
    let mut pending: Vec<Vec<u8>> = vec![Vec::new(); conns];
    // Per thread and connection, the last sequence number seen: they
    // must rise (none repeated, none reordered); with the count, none lost.
    let mut last = vec![u64::MAX; threads * conns];
    let mut lat = Vec::with_capacity(messages as usize);
    let mut buf = vec![0u8; 256 << 10];
    let mut events = Events::with_capacity(1024);
    let total = per_thread * threads as u64;
    let mut got = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    while got < total {
        assert!(Instant::now() < deadline, "push bench over its time limit");
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for ev in events.iter() {
            let i = ev.token().0;
            loop {
                match socks[i].read(&mut buf) {
                    Ok(0) => panic!("server closed a connection"),
                    Ok(n) => {
                        let now = t0.elapsed().as_nanos() as u64;
                        let p = &mut pending[i];
                        p.extend_from_slice(&buf[..n]);
                        let whole = p.len() / FRAME * FRAME;
                        for f in p[..whole].chunks_exact(FRAME) {
                            assert_eq!(&f[..2], &[0x82, PAYLOAD as u8]);
                            let t = f[2] as usize;
                            let seq = u64::from_be_bytes(f[3..11].try_into().unwrap());
                            let sent = u64::from_be_bytes(f[11..19].try_into().unwrap());
                            let l = &mut last[t * conns + i];
                            assert!(*l == u64::MAX || seq > *l, "out of order");
                            *l = seq;
                            lat.push(now.saturating_sub(sent));
                            got += 1;
                        }
                        p.drain(..whole);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    }
    let wall = t0.elapsed();
    let full: u64 = pushers.into_iter().map(|p| p.join().unwrap()).sum();
    lat.sort_unstable();
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "threads {threads} connections {conns} messages {total} rate {}: {:.0} msg/s, \
         latency p50 {:.1} µs p99 {:.1} µs max {:.1} µs, inbox full {full} times",
        if rate == 0 {
            "max".to_string()
        } else {
            rate.to_string()
        },
        total as f64 / wall.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    drop(socks);
    handle.stop();
    running.join().unwrap();
}
