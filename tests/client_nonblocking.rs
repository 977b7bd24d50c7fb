//! Many client connections in one mio loop, against the zerows echo
//! server: every echo checked, every connection closed cleanly.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::TestServer;
use mio::{Events, Interest, Poll, Token};
use zerows::client::{ClientConfig, Connection, DeflateOffer, Incoming, Keys, Part, Status};
use zerows::MessageKind;

const CONNS: usize = 200;
const MESSAGES: usize = 20;

/// The message `seq` of connection `id`.
fn message(id: usize, seq: usize) -> String {
    format!("{id}:{seq}:{}", "x".repeat((id * 7 + seq * 13) % 300))
}

#[test]
fn many_connections_in_one_loop() {
    many_connections(&ClientConfig::new());
}

/// The same with permessage-deflate: the longer messages go compressed
/// both ways, through the loop's shared compressor, and come back whole.
#[test]
fn many_compressed_connections_in_one_loop() {
    let offer = DeflateOffer {
        threshold: 100,
        ..DeflateOffer::default()
    };
    many_connections(&ClientConfig::new().deflate(offer));
}

fn many_connections(cfg: &ClientConfig) {
    let server = TestServer::start();
    let url = server.url();
    let mut poll = Poll::new().unwrap();
    let mut keys = Keys::new();
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_millis() as u64 + 1;
    let mut conns = HashMap::new();
    // Per connection: messages sent, echoes checked, the piece gathered.
    let mut sent = vec![0usize; CONNS];
    let mut got = vec![0usize; CONNS];
    for id in 0..CONNS {
        let mut c = Connection::connect(server.addr, &url, cfg, &mut keys, now()).unwrap();
        poll.registry()
            .register(
                c.source(),
                Token(id),
                Interest::READABLE | Interest::WRITABLE,
            )
            .unwrap();
        conns.insert(id, c);
    }
    let mut events = Events::with_capacity(1024);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut closed = 0;
    while closed < CONNS {
        assert!(
            Instant::now() < deadline,
            "{closed} of {CONNS} closed in time"
        );
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for ev in events.iter() {
            let id = ev.token().0;
            let Some(c) = conns.get_mut(&id) else {
                continue;
            };
            if ev.is_writable() {
                c.on_writable().unwrap();
            }
            let before = c.status();
            let mut echoes = Vec::new();
            let status = c
                .on_readable(&mut keys, now(), ev.is_read_closed(), |inc| match inc {
                    Incoming::Piece(p) => {
                        assert!(p.first && p.last, "small echoes come whole");
                        echoes.push(p.text().unwrap().to_string());
                    }
                    other => panic!("{other:?}"),
                })
                .unwrap();
            for e in echoes {
                assert_eq!(e, message(id, got[id]), "connection {id}");
                got[id] += 1;
            }
            if status == Status::Open {
                assert_eq!(
                    c.deflate().is_some(),
                    cfg.deflate.is_some(),
                    "permessage-deflate agreed when offered"
                );
                if before == Status::Upgrading {
                    // Pipelined: every message at once.
                    while sent[id] < MESSAGES {
                        let m = message(id, sent[id]);
                        if id % 2 == 0 {
                            c.send_text(&m, &mut keys).unwrap();
                        } else {
                            // Written in place, masked by the connection.
                            let part = Part::Whole(MessageKind::Text);
                            c.send_with(part, m.len(), &mut keys, |b| {
                                b.copy_from_slice(m.as_bytes())
                            })
                            .unwrap();
                        }
                        sent[id] += 1;
                    }
                }
                if got[id] == MESSAGES {
                    c.close(1000, "", &mut keys, now()).unwrap();
                }
            }
            if c.status() == Status::Closed {
                assert_eq!(c.close_frame().unwrap().code, Some(1000));
                poll.registry().deregister(c.source()).unwrap();
                conns.remove(&id);
                closed += 1;
            }
        }
    }
    assert!(got.iter().all(|&g| g == MESSAGES));
    drop(server);
}

/// Frames queued (written in place) leave together on `flush`, come
/// back intact, and nothing can be queued before the upgrade.
#[test]
fn queued_frames_leave_on_flush() {
    let server = TestServer::start();
    let url = server.url();
    let mut poll = Poll::new().unwrap();
    let mut keys = Keys::new();
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_millis() as u64 + 1;
    let mut c =
        Connection::connect(server.addr, &url, &ClientConfig::new(), &mut keys, now()).unwrap();
    let part = Part::Whole(MessageKind::Binary);
    assert!(c.queue_with(part, 1, &mut keys, |_| {}).is_err());
    c.reserve(64 << 10);
    poll.registry()
        .register(
            c.source(),
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )
        .unwrap();
    // Binary payloads of every length up to 300.
    let payload = |n: usize| (0..n).map(|i| (i * 31 + n) as u8).collect::<Vec<u8>>();
    const N: usize = 300;
    let mut got = 0;
    let mut queued = false;
    let mut events = Events::with_capacity(16);
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.status() != Status::Closed {
        assert!(Instant::now() < deadline, "{got} of {N} echoes in time");
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for ev in events.iter() {
            if ev.is_writable() {
                c.on_writable().unwrap();
            }
            let status = c
                .on_readable(&mut keys, now(), ev.is_read_closed(), |inc| match inc {
                    Incoming::Piece(p) => {
                        assert!(p.first && p.last);
                        assert_eq!(p.data, &payload(got)[..], "echo {got}");
                        got += 1;
                    }
                    other => panic!("{other:?}"),
                })
                .unwrap();
            if status == Status::Open && !queued {
                for n in 0..N {
                    let p = payload(n);
                    c.queue_with(part, n, &mut keys, |b| b.copy_from_slice(&p))
                        .unwrap();
                }
                // Nothing leaves before the flush.
                assert!(c.queued() > N * 2);
                c.flush().unwrap();
                queued = true;
            }
            if status == Status::Open && got == N {
                c.close(1000, "", &mut keys, now()).unwrap();
            }
        }
    }
    assert_eq!(got, N);
    assert_eq!(c.close_frame().unwrap().code, Some(1000));
}

/// Payloads queued over storage that earlier, larger frames used (not
/// zeroed again) come back exactly as written, across partial writes.
#[test]
fn reused_queue_storage_carries_only_new_payloads() {
    let server = TestServer::start();
    let url = server.url();
    let mut poll = Poll::new().unwrap();
    let mut keys = Keys::new();
    let epoch = Instant::now();
    let now = || epoch.elapsed().as_millis() as u64 + 1;
    let mut c =
        Connection::connect(server.addr, &url, &ClientConfig::new(), &mut keys, now()).unwrap();
    poll.registry()
        .register(
            c.source(),
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )
        .unwrap();
    let sizes = [200_000usize, 10, 150_000, 3, 0, 200_000, 70_000, 1];
    let payload = |i: usize| {
        (0..sizes[i])
            .map(|k| (k * 7 + i * 13 + 1) as u8)
            .collect::<Vec<u8>>()
    };
    let part = Part::Whole(MessageKind::Binary);
    let (mut sent, mut got) = (0, 0);
    let mut gathered = Vec::new();
    let mut events = Events::with_capacity(16);
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.status() != Status::Closed {
        assert!(
            Instant::now() < deadline,
            "{got} of {} echoes in time",
            sizes.len()
        );
        poll.poll(&mut events, Some(Duration::from_millis(100)))
            .unwrap();
        for ev in events.iter() {
            if ev.is_writable() {
                c.on_writable().unwrap();
            }
            let status = c
                .on_readable(&mut keys, now(), ev.is_read_closed(), |inc| match inc {
                    Incoming::Piece(p) => {
                        gathered.extend_from_slice(p.data);
                        if p.last {
                            assert!(gathered == payload(got), "echo {got}");
                            gathered.clear();
                            got += 1;
                        }
                    }
                    other => panic!("{other:?}"),
                })
                .unwrap();
            // One message at a time, each queued while the last may still
            // be partly unwritten.
            if status == Status::Open && sent < sizes.len() && sent <= got + 1 {
                let p = payload(sent);
                c.queue_with(part, p.len(), &mut keys, |b| b.copy_from_slice(&p))
                    .unwrap();
                c.flush().unwrap();
                sent += 1;
            }
            if status == Status::Open && got == sizes.len() {
                c.close(1000, "", &mut keys, now()).unwrap();
            }
        }
    }
    assert_eq!(got, sizes.len());
}
