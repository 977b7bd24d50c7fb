//! Publishes per second through the bus: instance A publishes through its
//! handle, instance B (its own `Builder`, its own bus link, one client
//! subscribed) delivers what crosses a real `redis-server` on loopback.
//! Not a Criterion bench: a fixed workload, run as
//!
//! ```text
//! cargo bench --bench bus -- [messages] [rate] [size]
//! ```
//!
//! (defaults 20000, 0, 32). `rate` 0 publishes as fast as the handle
//! takes them: what the bus cannot carry is dropped at A's bounded queue
//! and counted, so the crossing rate is the bus's ceiling. A rate in
//! messages per second (sent in bursts once a millisecond) shows whether
//! the bus keeps up with it without a drop. Each payload carries its
//! sequence number; the client checks they arrive in order, each once.
//! Prints one line of figures and exits non-zero on a fault.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zerows::{
    Builder, Client, ClientError, Context, Message, Prepared, Request, Running, Service, Topic,
};

#[path = "../tests/common/mod.rs"]
mod common;

/// Every connection subscribes to "t".
struct Sub;

impl Service for Sub {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) {
        cx.subscribe("t");
    }
}

fn instance(url: &str) -> Running {
    Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .bus(url)
        .start(|_| Sub)
        .expect("start an instance")
}

/// A sample of the instance's metrics (0 if absent).
fn metric(addr: SocketAddr, name: &str) -> f64 {
    common::sample(&common::http_get(addr, "/metrics").1, name).unwrap_or(0.0)
}

fn wait(what: &str, cond: impl FnMut() -> bool) {
    assert!(
        common::wait_until(Duration::from_secs(10), cond),
        "timed out waiting for {what}"
    );
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(20_000);
    let rate = args.get(1).copied().unwrap_or(0);
    let size = args.get(2).copied().unwrap_or(32).max(8) as usize;

    let redis = common::redis::Redis::start_any();
    let (a, b) = (instance(&redis.url()), instance(&redis.url()));
    let (a_addr, b_addr) = (a.local_addrs()[0], b.local_addrs()[0]);
    let mut client = Client::connect(&format!("ws://{b_addr}/")).expect("connect to B");
    wait("B's subscription", || {
        metric(b_addr, "zerows_bus_subscriptions") == 1.0 && metric(b_addr, "zerows_bus_up") == 1.0
    });
    wait("A's bus", || metric(a_addr, "zerows_bus_up") == 1.0);

    // The reader: counts what reaches B's client, checks the order.
    let last_at = Arc::new(AtomicU64::new(0));
    let t0 = Instant::now();
    let reader = {
        let last_at = last_at.clone();
        std::thread::spawn(move || {
            client.set_read_timeout(Some(Duration::from_secs(3)));
            let (mut got, mut next, mut faults) = (0u64, 0u64, 0u64);
            while got < n {
                match client.recv() {
                    Ok(Some(Message::Binary(p))) => {
                        let seq = u64::from_le_bytes(p[..8].try_into().unwrap());
                        // Drops are allowed (counted at A); going back or
                        // repeating is not.
                        if seq < next {
                            faults += 1;
                        }
                        next = seq + 1;
                        got += 1;
                        last_at.store(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    }
                    Ok(other) => panic!("unexpected {other:?}"),
                    Err(ClientError::Io(_)) => break, // 3 s without a message
                    Err(e) => panic!("recv: {e}"),
                }
            }
            (got, faults)
        })
    };

    let handle = a.handle();
    let topic = Topic::new("t");
    let mut payload = vec![0x5a; size];
    let per_ms = if rate == 0 {
        u64::MAX
    } else {
        rate.div_ceil(1000)
    };
    let mut sent_in_ms = 0;
    let mut ms = 0u64;
    for seq in 0..n {
        payload[..8].copy_from_slice(&seq.to_le_bytes());
        // A has no subscriber of its own: the publish only feeds the bus.
        let _ = handle.publish(&topic, &Prepared::binary(&payload));
        sent_in_ms += 1;
        if sent_in_ms >= per_ms {
            sent_in_ms = 0;
            ms += 1;
            let due = Duration::from_millis(ms);
            if let Some(d) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(d);
            }
        }
    }
    let publish_s = t0.elapsed().as_secs_f64();
    let (got, faults) = reader.join().unwrap();
    let cross_s = last_at.load(Ordering::Relaxed) as f64 / 1e9;
    let full = metric(a_addr, "zerows_bus_dropped_total{reason=\"full\"}");
    let down = metric(a_addr, "zerows_bus_dropped_total{reason=\"down\"}");
    let published = metric(a_addr, "zerows_bus_published_total");
    let received = metric(b_addr, "zerows_bus_received_total");
    println!(
        "bus: {n} x {size} B at {}: offered {:.0}/s, published {published}, dropped full {full} down {down}, \
         B received {received}, client got {got} in {cross_s:.2} s ({:.0}/s), order faults {faults}",
        if rate == 0 { "full speed".to_string() } else { format!("{rate}/s") },
        n as f64 / publish_s,
        got as f64 / cross_s.max(1e-9),
    );
    handle.stop();
    b.handle().stop();
    drop(a.join());
    drop(b.join());
    if faults > 0 || got as f64 != published {
        eprintln!("bus: FAULT: every published message must arrive once, in order");
        std::process::exit(1);
    }
}
