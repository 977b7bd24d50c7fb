//! Topics across instances through a real Redis: three instances of the
//! chat example (two loops each) on three ports share one
//! `redis-server`, started here on a loopback port. A room's messages
//! reach its members on every instance once each and in order; with the
//! broker killed, local delivery goes on and the metrics show the outage;
//! with it restarted, the instances subscribe again and delivery across
//! them resumes, with no restart of zerows.
//!
//! `redis-server` comes from Debian's package (.ci/run installs it); the
//! test fails, saying so, if it is missing.

#[path = "../examples/chat.rs"]
#[allow(dead_code)]
mod chat;
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::redis::Redis;

use common::{http_get, sample, wait_until};
use zerows::{Builder, Client, ClientError, Message, Running};

const LIMIT: Duration = Duration::from_secs(10);
/// How long a message that must not arrive is waited for.
const QUIET: Duration = Duration::from_millis(400);

fn instance(bus: &str) -> Running {
    Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(2)
        .bus(bus)
        .start(|_| chat::Chat)
        .expect("start an instance")
}

fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    sample(&body, name).unwrap_or_else(|| panic!("{name} missing from\n{body}"))
}

fn join(addr: SocketAddr, room: &str) -> Client {
    let mut c = Client::connect(&format!("ws://{addr}/?room={room}")).expect("connect");
    c.set_read_timeout(Some(LIMIT));
    c
}

/// The next text message, or `None` if none came within `wait`.
fn next(c: &mut Client, wait: Duration) -> Option<String> {
    c.set_read_timeout(Some(wait));
    let got = match c.recv() {
        Ok(Some(Message::Text(t))) => Some(t.to_owned()),
        Ok(other) => panic!("unexpected {other:?}"),
        Err(ClientError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            None
        }
        Err(e) => panic!("recv: {e}"),
    };
    c.set_read_timeout(Some(LIMIT));
    got
}

/// Every instance has the bus up with `subs[i]` topics subscribed.
fn wait_subscribed(addrs: &[SocketAddr], subs: &[f64]) {
    for (&a, &n) in addrs.iter().zip(subs) {
        let ok = wait_until(LIMIT, || {
            metric(a, "zerows_bus_up") == 1.0 && metric(a, "zerows_bus_subscriptions") == n
        });
        assert!(ok, "{a}: bus not up with {n} topics");
    }
}

#[test]
fn rooms_span_instances_through_redis_and_survive_its_restart() {
    let mut redis = Redis::start_any();
    let port = redis.port;
    let url = redis.url();
    let servers: Vec<Running> = (0..3).map(|_| instance(&url)).collect();
    let addrs: Vec<SocketAddr> = servers.iter().map(|s| s.local_addrs()[0]).collect();

    // Two members of room "r" on each instance, and one of room "q" on
    // the third, which must hear nothing of "r".
    let mut members: Vec<(usize, Client)> = Vec::new();
    for (i, &a) in addrs.iter().enumerate() {
        members.push((i, join(a, "r")));
        members.push((i, join(a, "r")));
    }
    let mut outsider = join(addrs[2], "q");
    wait_subscribed(&addrs, &[1.0, 1.0, 2.0]);

    // One sender per instance, 20 messages each, interleaved: everyone in
    // the room gets all 60, each once, and each sender's in order.
    const N: usize = 20;
    for k in 0..N {
        for s in 0..3 {
            let sender = &mut members[2 * s].1;
            sender.send_text(&format!("from {s} #{k}")).unwrap();
        }
    }
    for (at, m) in members.iter_mut() {
        let mut seen = [0usize; 3];
        for _ in 0..3 * N {
            let t = next(m, LIMIT).unwrap_or_else(|| panic!("instance {at}: a message is missing"));
            let (s, k) = t
                .strip_prefix("from ")
                .and_then(|r| r.split_once(" #"))
                .map(|(s, k)| (s.parse::<usize>().unwrap(), k.parse::<usize>().unwrap()))
                .unwrap_or_else(|| panic!("unexpected {t:?}"));
            assert_eq!(
                k, seen[s],
                "instance {at}: sender {s} out of order or repeated"
            );
            seen[s] += 1;
        }
        assert_eq!(seen, [N; 3]);
        assert_eq!(next(m, QUIET), None, "instance {at}: a message came twice");
    }
    assert_eq!(
        next(&mut outsider, QUIET),
        None,
        "another room's message leaked"
    );
    // Each instance received the other two's 40 messages from the broker.
    for &a in &addrs {
        assert_eq!(metric(a, "zerows_bus_received_total"), (2 * N) as f64);
        assert_eq!(metric(a, "zerows_bus_published_total"), N as f64);
    }

    // The broker dies: the outage shows, and a room still works within
    // each instance.
    redis.kill();
    for &a in &addrs {
        assert!(
            wait_until(LIMIT, || metric(a, "zerows_bus_up") == 0.0
                && metric(a, "zerows_bus_outages_total") >= 1.0),
            "{a}: the outage does not show"
        );
    }
    members[0].1.send_text("while down").unwrap();
    for (at, m) in members.iter_mut() {
        let want = (*at == 0).then(|| "while down".to_string());
        let wait = if want.is_some() { LIMIT } else { QUIET };
        assert_eq!(next(m, wait), want, "instance {at}");
    }
    assert!(metric(addrs[0], "zerows_bus_dropped_total{reason=\"down\"}") >= 1.0);

    // It comes back on the same port: everyone subscribes again, with no
    // restart of zerows, and messages cross again.
    let _redis = Redis::start(port);
    wait_subscribed(&addrs, &[1.0, 1.0, 2.0]);
    members[4].1.send_text("after restart").unwrap();
    for (at, m) in members.iter_mut() {
        assert_eq!(
            next(m, LIMIT).as_deref(),
            Some("after restart"),
            "instance {at}"
        );
        assert_eq!(next(m, QUIET), None, "instance {at}: twice");
    }
    assert_eq!(next(&mut outsider, QUIET), None);

    // A member leaving its instance's last room unsubscribes it there.
    drop(outsider);
    wait_subscribed(&addrs[2..], &[1.0]);

    for (_, mut m) in members {
        let _ = m.close(1000, "");
    }
    for s in servers {
        s.handle().stop();
        let started = Instant::now();
        s.join().unwrap();
        assert!(started.elapsed() < LIMIT, "stopping took too long");
    }
}

#[test]
fn an_instance_starts_without_its_broker_and_joins_when_it_appears() {
    // A port with nothing on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let s = instance(&format!("redis://127.0.0.1:{port}"));
    let addr = s.local_addrs()[0];
    let (mut a, mut b) = (join(addr, "r"), join(addr, "r"));
    a.send_text("local only").unwrap();
    assert_eq!(next(&mut b, LIMIT).as_deref(), Some("local only"));
    assert_eq!(next(&mut a, LIMIT).as_deref(), Some("local only"));
    assert_eq!(metric(addr, "zerows_bus_up"), 0.0);
    assert_eq!(
        metric(addr, "zerows_bus_dropped_total{reason=\"down\"}"),
        1.0
    );

    let _redis = Redis::start(port);
    wait_subscribed(&[addr], &[1.0]);
    // Another instance, on the broker from its start, reaches this one.
    let other = instance(&format!("redis://127.0.0.1:{port}"));
    let mut c = join(other.local_addrs()[0], "r");
    wait_subscribed(&[other.local_addrs()[0]], &[1.0]);
    c.send_text("across").unwrap();
    for m in [&mut a, &mut b, &mut c] {
        assert_eq!(next(m, LIMIT).as_deref(), Some("across"));
    }
    for mut m in [a, b, c] {
        let _ = m.close(1000, "");
    }
    for r in [s, other] {
        r.handle().stop();
        r.join().unwrap();
    }
}
