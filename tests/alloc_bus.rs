//! Proof of the bus's allocation claim: with a bus, a publish from a
//! callback (delivered locally and offered to Redis) and one that arrives
//! from another instance allocate nothing per message on the loops. A
//! binary of its own: the counter is global, and another test's loop would
//! add to it.
//!
//! One growth is allowed, and bounded: messages from the bus arrive in
//! bursts whose size depends on timing, and a loop turn that stages more
//! deliveries than any turn before it doubles the loop's staging list (a
//! capacity kept from then on, at most `log2(STAGE_LIMIT)` = 16 times in a
//! loop's life). Anything per message would be thousands here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use zerows::{Context, Prepared, Request, Service, Topic};

#[path = "common/counting.rs"]
mod counting;
#[path = "common/redis.rs"]
mod redis;
#[path = "common/upgrade.rs"]
mod upgrade;

use counting::calls as allocs;

/// Subscribes every connection to "all"; each message a client sends
/// publishes `msg` there (prepared once), on every instance. Its loop's
/// allocations are counted.
struct Relay {
    topic: Topic,
    msg: Prepared,
}

impl Service for Relay {
    type State = ();
    fn started(&mut self, _lp: &mut zerows::Loop<'_>) {
        counting::count_this_thread();
    }
    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) {
        assert!(cx.subscribe("all"));
    }
    fn whole(&mut self, _st: &mut (), _msg: zerows::Message<'_>, cx: &mut Context<'_>) {
        cx.publish_prepared(&self.topic, &self.msg).unwrap();
    }
}

#[test]
fn publishes_across_the_bus_allocate_nothing_on_the_loops() {
    let redis = redis::Redis::start_any();
    let msg = Prepared::text("0123456789abcdef0123456789abcdef");
    let payload = msg.payload().to_vec();
    let start = || {
        let (topic, msg) = (Topic::new("all"), msg.clone());
        zerows::Builder::new()
            .listen("127.0.0.1:0".parse().unwrap())
            .bus(&redis.url())
            .start(move |_| Relay {
                topic: topic.clone(),
                msg: msg.clone(),
            })
            .unwrap()
    };
    let (a, b) = (start(), start());
    let (a_addr, b_addr) = (a.local_addrs()[0], b.local_addrs()[0]);
    // The publisher on A, 20 listeners on each instance.
    let mut publisher = upgrade::upgrade(a_addr, Duration::from_secs(10));
    let mut clients: Vec<TcpStream> = (0..40)
        .map(|i| upgrade::upgrade([a_addr, b_addr][i % 2], Duration::from_secs(10)))
        .collect();
    let masked_text = {
        let body = b"go";
        let mut f = vec![0x81, 0x80 | body.len() as u8, 0, 0, 0, 0];
        f.extend_from_slice(body);
        f
    };
    // Every listener (and the publisher) gets one copy per trigger; until
    // both instances are subscribed on Redis, B's listeners may miss some,
    // so warm up by waiting for a trigger to reach everyone.
    let want: Vec<u8> = [&[0x81, payload.len() as u8][..], &payload].concat();
    let mut got = vec![0u8; want.len()];
    let mut warm = false;
    for _ in 0..200 {
        publisher.write_all(&masked_text).unwrap();
        publisher.read_exact(&mut got).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let all = clients.iter_mut().all(|c| {
            c.set_nonblocking(true).unwrap();
            let mut n = 0;
            let mut buf = [0u8; 4096];
            while let Ok(k) = c.read(&mut buf) {
                if k == 0 {
                    break;
                }
                n += k;
            }
            c.set_nonblocking(false).unwrap();
            n > 0
        });
        if all {
            warm = true;
            break;
        }
    }
    assert!(warm, "the bus never carried a publish to every listener");
    const ROUNDS: usize = 200;
    let mut round = |clients: &mut [TcpStream]| {
        for _ in 0..ROUNDS {
            publisher.write_all(&masked_text).unwrap();
            publisher.read_exact(&mut got).unwrap();
            assert_eq!(got, want);
        }
        for c in clients.iter_mut() {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            for _ in 0..ROUNDS {
                c.read_exact(&mut got).unwrap();
                assert_eq!(got, want);
            }
        }
    };
    // Warm: the loops' staging lists and pools grow to what the bursts
    // need.
    round(&mut clients);
    let before = allocs();
    round(&mut clients);
    let after = allocs();
    const GROWTHS: u64 = 2 * 16;
    assert!(
        after - before <= GROWTHS,
        "{} allocations on the two loops for {ROUNDS} publishes across the bus, {} deliveries",
        after - before,
        ROUNDS * 41
    );
    drop((publisher, clients));
    for r in [a, b] {
        r.handle().stop();
        r.join().unwrap();
    }
}
