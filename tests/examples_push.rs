//! The examples that push: heartbeat (a timer, and a thread through the
//! handle) and chat (rooms as topics over two loops), served in-process on
//! 127.0.0.1 with tungstenite as the client. Browsers in the chat are
//! tests/e2e/chat.sh.

#[path = "../examples/chat.rs"]
#[allow(dead_code)]
mod chat;
#[path = "../examples/heartbeat.rs"]
#[allow(dead_code)]
mod heartbeat;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message as WsMessage, WebSocket};
use zerows::{Builder, Running, Service};

type Ws = WebSocket<MaybeTlsStream<TcpStream>>;

fn start<S, F>(loops: usize, make: F) -> Running
where
    S: Service + 'static,
    F: Fn(usize) -> S + Send + Sync + 'static,
{
    Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(loops)
        .start(make)
        .expect("start")
}

fn connect(addr: SocketAddr, path: &str) -> Ws {
    let (ws, _) = tungstenite::connect(format!("ws://{addr}{path}")).expect("connect");
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    ws
}

fn stop(running: Running) {
    running.handle().stop();
    running.join().expect("loops stop cleanly");
}

/// Echo messages of many sizes (the larger ones come back fragmented)
/// for `how_long`, collecting the arrival times of heartbeats met on the
/// way; every echo must match, every heartbeat must be whole.
fn echo_while_beating(ws: &mut Ws, how_long: Duration) -> Vec<Instant> {
    let t = Instant::now();
    let mut beats = Vec::new();
    let mut n = 0u32;
    while t.elapsed() < how_long {
        n += 1;
        let len = [5usize, 1000, 70_000, 200_000][n as usize % 4];
        let payload: Vec<u8> = (0..len).map(|i| (i as u32 ^ n) as u8).collect();
        ws.send(WsMessage::binary(payload.clone())).unwrap();
        loop {
            match ws.read().expect("read") {
                WsMessage::Binary(b) => {
                    assert!(b[..] == payload[..], "echo {n} altered");
                    break;
                }
                WsMessage::Text(s) => {
                    assert_eq!(s.as_str(), heartbeat::HEARTBEAT);
                    beats.push(Instant::now());
                }
                WsMessage::Ping(_) | WsMessage::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    beats
}

/// Heartbeats came `every` apart on average, within a quarter, and never
/// two at once (a timer that fired twice). One beat delivered late next to
/// one on time may be closer than `every`: the timer keeps to its schedule.
fn check_interval(beats: &[Instant], every: Duration, how_long: Duration) {
    let expected = (how_long.as_millis() / every.as_millis()) as usize;
    assert!(
        beats.len() + 2 >= expected,
        "{} heartbeats in {how_long:?}, expected about {expected}",
        beats.len()
    );
    let gaps: Vec<Duration> = beats.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
    assert!(
        mean >= every * 4 / 5 && mean <= every * 5 / 4,
        "mean interval {mean:?} for {every:?}: {gaps:?}"
    );
    assert!(gaps.iter().all(|&g| g >= every / 10), "{gaps:?}");
}

/// Hold a fragmented message open across several heartbeats: they wait
/// for the echo's last frame, and come after it whole.
fn heartbeats_wait_for_a_fragmented_echo(ws: &mut Ws) {
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    use tungstenite::protocol::frame::Frame;
    let frame = |data: &[u8], op, fin| WsMessage::Frame(Frame::message(data.to_vec(), op, fin));
    ws.send(frame(b"first ", OpCode::Data(Data::Binary), false))
        .unwrap();
    std::thread::sleep(EVERY * 3);
    ws.send(frame(b"last", OpCode::Data(Data::Continue), true))
        .unwrap();
    // A heartbeat inside the echo would be a protocol error here.
    let mut beats = 0;
    loop {
        match ws.read().expect("read") {
            WsMessage::Binary(b) => {
                assert_eq!(&b[..], b"first last");
                break;
            }
            WsMessage::Text(t) => {
                assert_eq!(t.as_str(), heartbeat::HEARTBEAT);
                beats += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(beats <= 1, "{beats} heartbeats before the echo began");
    for _ in 0..2 {
        assert_eq!(text(ws), heartbeat::HEARTBEAT);
    }
}

const EVERY: Duration = Duration::from_millis(100);
const FOR: Duration = Duration::from_millis(1500);

#[test]
fn heartbeat_from_a_timer_between_whole_echoes() {
    let running = start(1, |_| heartbeat::TimerBeat { every: EVERY });
    let mut ws = connect(running.local_addrs()[0], "/");
    let beats = echo_while_beating(&mut ws, FOR);
    check_interval(&beats, EVERY, FOR);
    heartbeats_wait_for_a_fragmented_echo(&mut ws);
    drop(ws);
    stop(running);
}

#[test]
fn heartbeat_from_another_thread_between_whole_echoes() {
    let conns = heartbeat::Registry::default();
    let registry = conns.clone();
    let running = start(2, move |_| heartbeat::Registered {
        conns: registry.clone(),
    });
    let pusher = heartbeat::heartbeat_thread(running.handle(), conns.clone(), EVERY);
    let addr = running.local_addrs()[0];
    // Two connections echo at once; both get their own heartbeats.
    let other = std::thread::spawn(move || {
        let mut ws = connect(addr, "/");
        let beats = echo_while_beating(&mut ws, FOR);
        check_interval(&beats, EVERY, FOR);
    });
    let mut ws = connect(addr, "/");
    let beats = echo_while_beating(&mut ws, FOR);
    check_interval(&beats, EVERY, FOR);
    heartbeats_wait_for_a_fragmented_echo(&mut ws);
    other.join().unwrap();
    drop(ws);
    // Closed connections leave the registry.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !conns.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "registry not emptied");
        std::thread::sleep(Duration::from_millis(10));
    }
    stop(running);
    pusher.join().unwrap();
}

fn text(ws: &mut Ws) -> String {
    loop {
        match ws.read().expect("read") {
            WsMessage::Text(t) => return t.to_string(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("expected text, got {other:?}"),
        }
    }
}

#[test]
fn chat_rooms_span_loops_and_keep_to_themselves() {
    let running = start(2, |_| chat::Chat);
    let addr = running.local_addrs()[0];
    let mut room: Vec<Ws> = (0..4).map(|_| connect(addr, "/?room=a")).collect();
    let mut lobby = connect(addr, "/");
    let mut other = connect(addr, "/?x=1&room=b");
    // Each member says something; everyone in the room hears everything
    // once, each sender's messages in order.
    for (i, ws) in room.iter_mut().enumerate() {
        ws.send(WsMessage::text(format!("{i}: héllo 很厉害")))
            .unwrap();
        ws.send(WsMessage::text(format!("{i}: again"))).unwrap();
    }
    for ws in &mut room {
        let mut got: Vec<String> = (0..8).map(|_| text(ws)).collect();
        for i in 0..4 {
            let first = got.iter().position(|m| m == &format!("{i}: héllo 很厉害"));
            let second = got.iter().position(|m| m == &format!("{i}: again"));
            assert!(first.unwrap() < second.unwrap(), "{got:?}");
        }
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 8);
    }
    // Other rooms heard none of it: their next message is their own.
    lobby.send(WsMessage::text("lobby only")).unwrap();
    assert_eq!(text(&mut lobby), "lobby only");
    other.send(WsMessage::text("b only")).unwrap();
    assert_eq!(text(&mut other), "b only");
    // A room name that is not allowed is refused at the upgrade.
    let bad = tungstenite::connect(format!("ws://{addr}/?room=no%20spaces"));
    match bad {
        Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("expected 404, got {other:?}"),
    }
    // The page is served for a plain GET.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"GET /?room=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut page = Vec::new();
    let _ = s.read_to_end(&mut page);
    assert!(page.starts_with(b"HTTP/1.1 200 "));
    assert!(page.ends_with(chat::PAGE));
    drop((room, lobby, other));
    stop(running);
}

#[test]
fn chat_room_names() {
    assert_eq!(chat::room_of(None), Some(chat::LOBBY));
    assert_eq!(chat::room_of(Some("room=x-1_y")), Some("x-1_y"));
    assert_eq!(chat::room_of(Some("a=b&room=z")), Some("z"));
    assert_eq!(chat::room_of(Some("a=b")), Some(chat::LOBBY));
    assert!(chat::room_of(Some("room=")).is_none());
    assert!(chat::room_of(Some("room=a%20b")).is_none());
    assert!(chat::room_of(Some(&format!("room={}", "r".repeat(65)))).is_none());
}
