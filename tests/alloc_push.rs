//! Proof of the fan-out allocation claim: once warm, a publish to every
//! subscriber of a topic, a broadcast and a push to one connection
//! allocate nothing on the server's thread (the message is prepared once by
//! the caller; the loop only shares its bytes). With a bus:
//! tests/alloc_bus.rs.

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use zerows::server::Config;
use zerows::{ConnId, Context, Prepared, Request, Service, Topic};

#[path = "common/counting.rs"]
mod counting;
#[path = "common/upgrade.rs"]
mod upgrade;

use counting::calls as allocs;

/// Subscribes every connection to "all" and tells it its id (8 bytes).
struct Subscriber;

impl Service for Subscriber {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) {
        assert!(cx.subscribe("all"));
        let _ = cx.send_binary(&cx.id().as_u64().to_be_bytes());
    }
}

const CLIENTS: usize = 200;

fn connect(addr: SocketAddr) -> (TcpStream, ConnId) {
    let mut s = upgrade::upgrade(addr, Duration::from_secs(10));
    let (op, id) = upgrade::read_frame(&mut s);
    assert_eq!(op, 2);
    (
        s,
        ConnId::from_u64(u64::from_be_bytes(id.try_into().unwrap())),
    )
}

/// Every client reads `n` copies of `msg`'s frame.
fn read_all(clients: &mut [TcpStream], msg: &[u8], n: usize) {
    let want: Vec<u8> = [&[0x81, msg.len() as u8][..], msg].concat();
    let mut got = vec![0u8; want.len()];
    for c in clients.iter_mut() {
        for _ in 0..n {
            c.read_exact(&mut got).unwrap();
            assert_eq!(got, want);
        }
    }
}

#[test]
fn publish_broadcast_and_push_allocate_nothing_once_warm() {
    let (addr, stop, handle, t) = counting::start_with_handle(Config::default(), Subscriber);
    let (mut clients, ids): (Vec<TcpStream>, Vec<ConnId>) =
        (0..CLIENTS).map(|_| connect(addr)).unzip();
    // A client is subscribed once its first publish reaches it.
    let topic = Topic::new("all");
    let msg = Prepared::text("0123456789abcdef0123456789abcdef");
    let payload = msg.payload().to_vec();
    let round = |clients: &mut [TcpStream]| {
        for _ in 0..20 {
            handle.publish(&topic, &msg).unwrap();
            handle.broadcast(&msg).unwrap();
            for &id in &ids {
                handle.send(id, &msg).unwrap();
            }
        }
        read_all(clients, &payload, 60);
    };
    round(&mut clients);
    let before = allocs();
    for _ in 0..10 {
        round(&mut clients);
    }
    let after = allocs();
    assert_eq!(
        after - before,
        0,
        "{} allocations for {} deliveries",
        after - before,
        10 * 60 * CLIENTS
    );
    drop(clients);
    stop.stop();
    t.join().unwrap();
}
