//! Several event loops from one `Builder`: each gets its own service
//! value, connection ids are unique across loops and say which loop owns
//! the connection, one stopper stops them all, and a failure to start is an
//! error, not a hang.

use std::net::TcpListener;
use std::time::Duration;

use tungstenite::Message as WsMessage;
use zerows::{Builder, Context, Message, Request, Service};

/// Answers each message with "<loop> <connection serial>".
struct WhoAmI {
    loop_index: usize,
}

impl Service for WhoAmI {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}
    fn whole(&mut self, _st: &mut (), _msg: Message<'_>, cx: &mut Context<'_>) {
        let reply = format!("{} {}", self.loop_index, cx.id().serial());
        let _ = cx.send_text(&reply);
    }
}

#[test]
fn loops_share_a_port_with_unique_ids_and_stop_together() {
    const LOOPS: usize = 2;
    let running = Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .threads(LOOPS)
        .start(|i| WhoAmI { loop_index: i })
        .expect("start");
    let addr = running.local_addrs()[0];
    let mut seen_loops = [0usize; LOOPS];
    let mut serials = std::collections::HashSet::new();
    let mut clients = Vec::new();
    for _ in 0..40 {
        let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/")).expect("connect");
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        ws.send(WsMessage::text("who")).unwrap();
        let reply = ws.read().unwrap().into_text().unwrap();
        let (l, serial) = reply.split_once(' ').unwrap();
        let (l, serial): (usize, u64) = (l.parse().unwrap(), serial.parse().unwrap());
        // Loop i of n hands out serials i, i + n, i + 2n, ...
        assert_eq!(serial as usize % LOOPS, l, "serial {serial} from loop {l}");
        assert!(serials.insert(serial), "serial {serial} given twice");
        seen_loops[l] += 1;
        clients.push(ws);
    }
    // The kernel spreads connections over the loops' listeners.
    assert!(
        seen_loops.iter().all(|&n| n > 0),
        "connections per loop: {seen_loops:?}"
    );
    drop(clients);
    running.stopper().stop();
    running.join().expect("every loop stops cleanly");
}

#[test]
fn a_port_already_taken_is_an_error_at_start() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Builder::new()
        .listen(addr)
        .start(|_| WhoAmI { loop_index: 0 })
        .expect_err("the port is in use");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

#[test]
fn stopping_does_not_wait_for_connections_that_are_only_lingering() {
    let running = Builder::new()
        .listen("127.0.0.1:0".parse().unwrap())
        .start(|i| WhoAmI { loop_index: i })
        .expect("start");
    let addr = running.local_addrs()[0];
    let (mut ws, _) = tungstenite::connect(format!("ws://{addr}/")).expect("connect");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    // A finished close handshake: the server has sent its FIN and lingers
    // (2 s) for ours, which this client holds back by keeping the socket.
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("closing: {e}"),
        }
    }
    let t = std::time::Instant::now();
    running.stopper().stop();
    running.join().unwrap();
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "stop waited {:?} for a finished connection",
        t.elapsed()
    );
    drop(ws);
}
