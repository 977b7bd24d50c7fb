//! Pushing from anywhere, against real clients: a handle reaches the loop
//! that owns a connection (of several), refuses closed ids and a stopped
//! server, closes connections; topics fan out over every loop and are
//! left at close; timers fire and repeat; the loop's tick runs; a push
//! never lands inside an echo under way.

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message as WsMessage, WebSocket};
use zerows::{
    Builder, ConnId, Context, Delivery, Handle, Loop, Message, MessageKind, Prepared, PushError,
    Request, Running, Service, Topic,
};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

/// Tells each client its id; takes commands as text:
/// `sub T`, `unsub T`, `pub T text`, `others T text` (publish to all
/// but the sender), `after MS`, `every MS`, `cancel`.
/// Binary messages are echoed zero-copy (to test pushes during echoes).
struct Probe {
    tick: Option<Duration>,
}

#[derive(Default)]
struct St {
    fired: u32,
}

impl Service for Probe {
    type State = St;

    fn started(&mut self, lp: &mut Loop<'_>) {
        if let Some(t) = self.tick {
            lp.tick_every(t);
        }
    }

    fn tick(&mut self, lp: &mut Loop<'_>) {
        let msg = Prepared::text(&format!("tick {}", lp.index()));
        lp.broadcast(&msg);
    }

    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) -> St {
        let _ = cx.send_text(&format!("id {}", cx.id().as_u64()));
        St::default()
    }

    fn message(&mut self, _st: &mut St, kind: MessageKind, _cx: &mut Context<'_>) -> Delivery {
        match kind {
            MessageKind::Binary => Delivery::Echo,
            MessageKind::Text => Delivery::Collect,
        }
    }

    fn whole(&mut self, _st: &mut St, msg: Message<'_>, cx: &mut Context<'_>) {
        let Message::Text(t) = msg else { return };
        let mut w = t.splitn(3, ' ');
        let ok = match (w.next(), w.next(), w.next()) {
            (Some("sub"), Some(topic), None) => cx.subscribe(topic),
            (Some("unsub"), Some(topic), None) => cx.unsubscribe(topic),
            (Some("pub"), Some(topic), Some(text)) => {
                cx.publish(topic, Message::Text(text)).is_ok()
            }
            (Some("others"), Some(topic), Some(text)) => cx
                .publish_others(&Topic::new(topic), &Prepared::text(text))
                .is_ok(),
            (Some("after"), Some(ms), None) => {
                cx.timer_after(Duration::from_millis(ms.parse().unwrap()))
            }
            (Some("every"), Some(ms), None) => {
                cx.timer_every(Duration::from_millis(ms.parse().unwrap()))
            }
            (Some("cancel"), None, None) => {
                cx.cancel_timer();
                true
            }
            _ => false,
        };
        let _ = cx.send_text(if ok { "ok" } else { "no" });
    }

    fn timer(&mut self, st: &mut St, cx: &mut Context<'_>) {
        st.fired += 1;
        let _ = cx.send_text(&format!("timer {}", st.fired));
    }
}

fn start(loops: usize, tick: Option<Duration>) -> Running {
    Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(loops)
        .start(move |_| Probe { tick })
        .expect("start")
}

fn client(addr: SocketAddr) -> (Ws, ConnId) {
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/")).expect("connect");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    let hello = text(&mut ws);
    let id = hello
        .strip_prefix("id ")
        .expect("id first")
        .parse()
        .unwrap();
    (ws, ConnId::from_u64(id))
}

fn text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("read") {
            WsMessage::Text(t) => return t.to_string(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

fn command(ws: &mut Ws, c: &str) {
    ws.send(WsMessage::text(c)).unwrap();
    assert_eq!(text(ws), "ok", "{c}");
}

/// Until a `want`ed id has connected to each loop.
fn clients_on_every_loop(addr: SocketAddr, loops: usize) -> Vec<(Ws, ConnId)> {
    let mut out = Vec::new();
    let mut seen = vec![false; loops];
    for _ in 0..64 {
        let (ws, id) = client(addr);
        seen[(id.serial() % loops as u64) as usize] = true;
        out.push((ws, id));
        if seen.iter().all(|&s| s) && out.len() >= loops {
            return out;
        }
    }
    panic!("connections never reached every loop: {seen:?}");
}

fn stop(running: Running) {
    running.handle().stop();
    running.join().expect("loops stop cleanly");
}

#[test]
fn a_handle_sends_to_the_right_loop_from_other_threads() {
    let running = start(2, None);
    let addr = running.local_addrs()[0];
    let mut clients = clients_on_every_loop(addr, 2);
    let handle = running.handle();
    let threads: Vec<_> = clients
        .iter()
        .map(|(_, id)| {
            let (h, id) = (handle.clone(), *id);
            std::thread::spawn(move || {
                for i in 0..100 {
                    h.send_text(id, &format!("{} {i}", id.as_u64())).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    for (ws, id) in &mut clients {
        for i in 0..100 {
            assert_eq!(text(ws), format!("{} {i}", id.as_u64()), "in order");
        }
    }
    // A binary push, shared between two connections.
    let p = Prepared::binary(&[1, 2, 3]);
    for (_, id) in &clients {
        handle.send(*id, &p).unwrap();
    }
    for (ws, _) in &mut clients {
        assert_eq!(ws.read().unwrap(), WsMessage::binary(vec![1, 2, 3]));
    }
    drop(clients);
    stop(running);
}

#[test]
fn closed_and_unknown_ids_and_a_stopped_server_are_errors() {
    let running = start(1, None);
    let addr = running.local_addrs()[0];
    let handle = running.handle();
    let (mut ws, id) = client(addr);
    assert_eq!(
        handle.send_text(ConnId::from_u64(id.as_u64() + (1 << 30)), "x"),
        Err(PushError::Closed),
        "an id never given out"
    );
    assert_eq!(handle.close(id, 1005, ""), Err(PushError::Refused));
    assert_eq!(
        handle.close(id, 1000, &"x".repeat(124)),
        Err(PushError::Refused)
    );
    handle.close(id, 4000, "bye").unwrap();
    match ws.read().unwrap() {
        WsMessage::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4000);
            assert_eq!(f.reason.as_str(), "bye");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    // The closing handshake completes; the id is then refused at once.
    let _ = ws.read();
    let deadline = Instant::now() + Duration::from_secs(5);
    while handle.send_text(id, "late") != Err(PushError::Closed) {
        assert!(Instant::now() < deadline, "id still live after close");
        std::thread::sleep(Duration::from_millis(5));
    }
    handle.stop();
    assert!(handle.is_stopped());
    assert_eq!(handle.broadcast_text("x"), Err(PushError::Stopped));
    running.join().unwrap();
}

#[test]
fn topics_fan_out_over_every_loop_and_end_with_the_connection() {
    let running = start(2, None);
    let addr = running.local_addrs()[0];
    let mut clients = clients_on_every_loop(addr, 2);
    let (mut outsider, _) = client(addr);
    for (ws, _) in &mut clients {
        command(ws, "sub room");
    }
    // A callback's publish reaches subscribers on both loops, the
    // publisher included, and no one else.
    command(&mut outsider, "pub room hello");
    for (ws, _) in &mut clients {
        assert_eq!(text(ws), "hello");
    }
    // Through the handle, with a prepared topic and message.
    let handle = running.handle();
    let (topic, msg) = (Topic::new("room"), Prepared::text("from afar"));
    handle.publish(&topic, &msg).unwrap();
    for (ws, _) in &mut clients {
        assert_eq!(text(ws), "from afar");
    }
    // Publishing to the others leaves the sender out, by message and
    // through the handle.
    let first_id = clients[0].1;
    command(&mut clients[0].0, "others room not to me");
    for (ws, _) in clients.iter_mut().skip(1) {
        assert_eq!(text(ws), "not to me");
    }
    handle
        .publish_except(&topic, &Prepared::text("not to you"), first_id)
        .unwrap();
    for (ws, _) in clients.iter_mut().skip(1) {
        assert_eq!(text(ws), "not to you");
    }
    handle.send_text(first_id, "marker").unwrap();
    assert_eq!(
        text(&mut clients[0].0),
        "marker",
        "the sender heard neither"
    );
    // Unsubscribe one by message, one through the handle; close a third.
    let (mut a, a_id) = clients.remove(0);
    command(&mut a, "unsub room");
    let (mut b, b_id) = clients.remove(0);
    handle.unsubscribe(b_id, &topic).unwrap();
    handle.subscribe(b_id, &Topic::new("other")).unwrap();
    for (ws, _) in clients.drain(..) {
        drop(ws);
    }
    handle.publish(&topic, &Prepared::text("second")).unwrap();
    handle.publish_text("other", "to b").unwrap();
    assert_eq!(text(&mut b), "to b", "b left room before 'second'");
    // Publishing is asynchronous: once a's loop has passed this marker, it
    // has handled both publishes too (one inbox, in order), and a missed
    // them.
    handle.send_text(a_id, "marker").unwrap();
    assert_eq!(text(&mut a), "marker");
    command(&mut a, "sub other");
    handle.publish_text("other", "both").unwrap();
    assert_eq!(text(&mut a), "both");
    assert_eq!(text(&mut b), "both");
    // Broadcast reaches everyone, on every loop.
    handle.broadcast_text("all").unwrap();
    for ws in [&mut a, &mut b, &mut outsider] {
        assert_eq!(text(ws), "all");
    }
    drop((a, b, outsider));
    stop(running);
}

#[test]
fn timers_fire_repeat_and_cancel() {
    let running = start(1, None);
    let addr = running.local_addrs()[0];
    let (mut ws, _) = client(addr);
    let t = Instant::now();
    command(&mut ws, "after 50");
    assert_eq!(text(&mut ws), "timer 1");
    assert!(t.elapsed() >= Duration::from_millis(50));
    command(&mut ws, "every 20");
    for n in 2..6 {
        assert_eq!(text(&mut ws), format!("timer {n}"));
    }
    command(&mut ws, "cancel");
    // At most one more may have been on its way with the answer.
    ws.send(WsMessage::text("after 200")).unwrap();
    let mut seen = Vec::new();
    loop {
        let m = text(&mut ws);
        seen.push(m.clone());
        if m == "ok" {
            break;
        }
    }
    assert!(seen.len() <= 2, "{seen:?}");
    let last = text(&mut ws);
    assert!(last.starts_with("timer "), "{last}");
    drop(ws);
    stop(running);
}

#[test]
fn the_loop_tick_runs_on_every_loop() {
    let running = start(2, Some(Duration::from_millis(30)));
    let addr = running.local_addrs()[0];
    let mut clients = clients_on_every_loop(addr, 2);
    for (ws, id) in &mut clients {
        let want = format!("tick {}", id.serial() % 2);
        for _ in 0..3 {
            assert_eq!(text(ws), want, "a loop ticks for its own connections");
        }
    }
    drop(clients);
    stop(running);
}

#[test]
fn a_loop_that_only_ticks_counts_no_busy_turns() {
    // The turn histogram describes turns with I/O: a loop woken by its
    // tick (every 5 ms here) and nothing else must not fill it, whichever
    // the backend (io_uring's wait returns on the timeout as epoll's does).
    let running = start(1, Some(Duration::from_millis(5)));
    let addr = running.local_addrs()[0];
    let before = metric(addr, "zerows_loop_turn_seconds_count");
    std::thread::sleep(Duration::from_millis(600));
    let after = metric(addr, "zerows_loop_turn_seconds_count");
    // The second scrape's own turns (accept, request, response) and the
    // first one's close: a handful, against over 100 ticks.
    assert!(
        after - before < 20,
        "{} turns counted in 600 ms of ticks",
        after - before
    );
    stop(running);
}

#[test]
fn a_push_waits_for_an_echo_under_way() {
    use std::io::{Read, Write};
    let running = start(1, None);
    let addr = running.local_addrs()[0];
    let (ws, id) = client(addr);
    let MaybeTlsStream::Plain(mut s) = ws.into_inner() else {
        unreachable!()
    };
    // The first frame of a fragmented binary message: its echo begins.
    let masked = |fin: bool, op: u8, data: &[u8]| {
        let mut f = vec![
            (u8::from(fin) << 7) | op,
            0x80 | data.len() as u8,
            0,
            0,
            0,
            0,
        ];
        f.extend_from_slice(data);
        f
    };
    s.write_all(&masked(false, 2, b"first")).unwrap();
    let mut got = [0u8; 7];
    s.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"\x02\x05first");
    let handle: Handle = running.handle();
    handle.send_text(id, "pushed").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(&masked(true, 0, b"last")).unwrap();
    // The push follows the echo's last frame, never inside the message.
    let mut rest = [0u8; 6 + 8];
    s.read_exact(&mut rest).unwrap();
    assert_eq!(&rest, b"\x80\x04last\x81\x06pushed");
    drop(s);
    stop(running);
}

/// Subscribes every connection to "feed".
struct Feed;

impl Service for Feed {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, cx: &mut Context<'_>) {
        cx.subscribe("feed");
    }
}

fn start_feed(slow: zerows::SlowPolicy) -> Running {
    let config = zerows::Config {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        push_backlog: 64 << 10,
        slow,
        ..zerows::Config::default()
    };
    Builder::new().config(config).start(|_| Feed).unwrap()
}

/// Publish 200 messages of 64 KiB (13 MB in all: more than loopback's
/// socket buffers hold) while one subscriber reads and one does not.
/// Returns what the reader got, checked in order and whole.
fn publish_past_a_stalled_subscriber(running: &Running) -> (Ws, Ws) {
    let addr = running.local_addrs()[0];
    let mut reader = connect_plain(addr);
    let stalled = connect_plain(addr);
    let handle = running.handle();
    let topic = Topic::new("feed");
    let t = Instant::now();
    let reading = std::thread::spawn(move || {
        for i in 0..200u32 {
            match reader.read().expect("read") {
                WsMessage::Binary(b) => {
                    assert_eq!(b.len(), 64 << 10);
                    assert_eq!(&b[..4], &i.to_be_bytes(), "in order, none skipped");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        reader
    });
    for i in 0..200u32 {
        let mut p = vec![0u8; 64 << 10];
        p[..4].copy_from_slice(&i.to_be_bytes());
        // The publisher is never blocked by the stalled subscriber; a full
        // inbox only means the loop is busy.
        while handle.publish(&topic, &Prepared::binary(&p)) == Err(PushError::Full) {
            std::thread::yield_now();
        }
    }
    let reader = reading.join().unwrap();
    assert!(t.elapsed() < Duration::from_secs(20));
    (reader, stalled)
}

fn connect_plain(addr: SocketAddr) -> Ws {
    let (ws, _) = tungstenite::connect(format!("ws://{addr}/")).expect("connect");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    ws
}

fn metric(addr: SocketAddr, name: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    let _ = s.read_to_string(&mut body);
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in metrics"))
}

#[test]
fn a_slow_subscriber_is_skipped_and_counted_while_others_get_everything() {
    let running = start_feed(zerows::SlowPolicy::Skip);
    let addr = running.local_addrs()[0];
    let (reader, mut stalled) = publish_past_a_stalled_subscriber(&running);
    let skipped = metric(addr, "zerows_pushes_skipped_total ");
    assert!(skipped > 0, "nothing skipped");
    // The stalled one gets a prefix in order, then (after the gap) later
    // messages, each whole; it stays open.
    let mut last = None;
    let mut got = 0;
    while got + skipped < 200 {
        match stalled.read().expect("read") {
            WsMessage::Binary(b) => {
                let i = u32::from_be_bytes(b[..4].try_into().unwrap());
                assert!(last.is_none_or(|l| i > l), "in order");
                assert_eq!(b.len(), 64 << 10);
                last = Some(i);
                got += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got + skipped, 200, "each message delivered or counted");
    drop((reader, stalled));
    stop(running);
}

#[test]
fn a_slow_subscriber_is_closed_when_the_policy_says_so() {
    let running = start_feed(zerows::SlowPolicy::Close(1013));
    let (reader, mut stalled) = publish_past_a_stalled_subscriber(&running);
    loop {
        match stalled.read() {
            Ok(WsMessage::Binary(_)) => continue,
            Ok(WsMessage::Close(Some(f))) => {
                assert_eq!(u16::from(f.code), 1013);
                break;
            }
            other => panic!("expected a close, got {other:?}"),
        }
    }
    drop((reader, stalled));
    stop(running);
}

#[test]
fn a_handle_taken_from_the_builder_before_the_start_reaches_the_loops() {
    let mut builder = Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(2);
    let early = builder.handle();
    assert_eq!(early.loops(), 2);
    let running = builder.start(|_| Probe { tick: None }).unwrap();
    let mut clients = clients_on_every_loop(running.local_addrs()[0], 2);
    for (ws, id) in &mut clients {
        early.send_text(*id, "early").unwrap();
        assert_eq!(text(ws), "early");
    }
    // The number of loops may not change under a handle given out.
    let mut b = Builder::new().listen("127.0.0.1:0".parse().unwrap());
    let _h = b.handle();
    let err = b.threads(3).start(|_| Probe { tick: None }).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    drop(clients);
    stop(running);
}
