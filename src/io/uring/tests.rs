//! The backend's bookkeeping on a real ring and loopback sockets: input
//! kept in order across a paused receive, one send in flight, short
//! sends, FIN after the send, the end of the stream, and completions that
//! outlive their connection.

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream as StdStream};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::{Event, Uring};
use crate::session::Transport;

fn pair() -> (StdStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = StdStream::connect(l.local_addr().unwrap()).unwrap();
    let (server, _) = l.accept().unwrap();
    server.set_nonblocking(true).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    (client, TcpStream::from_std(server))
}

fn uring(write_buffer: usize) -> Uring {
    let mut u = Uring::new(write_buffer, 16).unwrap();
    u.start().unwrap();
    u
}

/// Wait for completions and turn them into events, until `until` holds of
/// what came (or 5 s pass); `after_receive` runs after each input, as the
/// loop does, once `handle` has seen it.
fn pump(
    u: &mut Uring,
    mut handle: impl FnMut(&mut Uring, &Event),
    mut until: impl FnMut(&[String]) -> bool,
) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut first = true;
    while first || !until(&seen) {
        first = false;
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "no progress: {seen:?}"
        );
        u.rearm(|_| None);
        u.wait(Some(Duration::from_millis(50))).unwrap();
        let list = std::mem::take(&mut u.completions);
        for &c in &list {
            let ev = u.event(c);
            handle(u, &ev);
            let name = match ev {
                Event::None => continue,
                Event::Readable { key, closed } => format!("readable {key} {closed}"),
                Event::Sent { key, writable, fin } => format!("sent {key} {writable} {fin}"),
                Event::Accept { .. } => "accept".into(),
                Event::Wake { .. } => "wake".into(),
            };
            u.after_receive();
            seen.push(name);
        }
    }
    seen
}

fn read_all(u: &mut Uring, key: usize, s: &TcpStream, out: &mut Vec<u8>, chunk: usize) {
    let mut buf = vec![0; chunk];
    loop {
        match u.io(key, s).read(&mut buf) {
            Ok(0) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn input_a_session_leaves_waits_in_order_while_receiving_pauses() {
    let (mut client, s) = pair();
    let mut u = uring(64 << 10);
    u.open(0, &s).unwrap();
    client.write_all(b"hello world").unwrap();
    let mut got = Vec::new();
    // The session takes 5 bytes of the first input and leaves the rest.
    pump(
        &mut u,
        |u, ev| {
            if let Event::Readable { key: 0, .. } = ev {
                let mut five = [0; 5];
                let n = u.io(0, &s).read(&mut five).unwrap();
                got.extend_from_slice(&five[..n]);
            }
        },
        |seen| !seen.is_empty(),
    );
    assert_eq!(got, b"hello");
    assert_eq!(u.held().1, 1, "the rest waits in an overflow");
    client.write_all(b"!!").unwrap();
    // Whatever arrives before the pause takes effect queues behind it; what
    // comes after waits in the socket until reading resumes.
    let fd = std::os::fd::AsRawFd::as_raw_fd(&s);
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < b"hello world!!".len() {
        assert!(
            Instant::now() < deadline,
            "got {:?}",
            String::from_utf8_lossy(&got)
        );
        read_all(&mut u, 0, &s, &mut got, 3);
        u.rearm(|_| Some(fd));
        u.wait(Some(Duration::from_millis(20))).unwrap();
        let list = std::mem::take(&mut u.completions);
        for &c in &list {
            let _ = u.event(c);
            read_all(&mut u, 0, &s, &mut got, 3);
            u.after_receive();
        }
    }
    assert_eq!(got, b"hello world!!");
    assert_eq!(u.held().1, 0, "the overflow is given back once read");
}

#[test]
fn a_second_write_in_a_turn_goes_out_after_the_first() {
    let (mut client, s) = pair();
    let mut u = uring(64 << 10);
    u.open(0, &s).unwrap();
    let parts = [IoSlice::new(b"abc"), IoSlice::new(b"def")];
    assert_eq!(u.io(0, &s).write_vectored(&parts).unwrap(), 6);
    // The first is submitted and, the socket having room, done at once.
    assert_eq!(u.io(0, &s).write(b"ghi").unwrap(), 3);
    pump(&mut u, |_, _| {}, |_| true);
    let mut buf = [0; 9];
    client.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"abcdefghi");
    assert_eq!(u.held(), (0, 0));
}

/// A connection whose peer reads nothing yet, with 600,000 bytes written
/// and submitted: more than its small socket buffer takes, so a send is in
/// flight.
fn stuck_send() -> (StdStream, TcpStream, Uring, Vec<u8>) {
    let (client, s) = pair();
    socket2::SockRef::from(&s)
        .set_send_buffer_size(4096)
        .unwrap();
    let mut u = uring(1 << 20);
    u.open(0, &s).unwrap();
    let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(u.io(0, &s).write(&data).unwrap(), data.len());
    pump(&mut u, |_, _| {}, |_| true);
    (client, s, u, data)
}

#[test]
fn a_write_while_the_socket_is_full_is_refused_and_the_session_told() {
    let (mut client, s, mut u, data) = stuck_send();
    let e = u.io(0, &s).write(b"!").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    let reader = std::thread::spawn(move || {
        let mut back = vec![0; 600_001];
        client.read_exact(&mut back).map(|_| back)
    });
    let seen = pump(&mut u, |_, _| {}, |seen| !seen.is_empty());
    assert_eq!(seen, ["sent 0 true false"]);
    assert_eq!(u.io(0, &s).write(b"!").unwrap(), 1);
    pump(&mut u, |_, _| {}, |_| true);
    let back = reader.join().unwrap().unwrap();
    assert!(back[..600_000] == data[..] && back[600_000] == b'!');
}

#[test]
fn a_write_larger_than_a_buffer_goes_out_in_several_sends_while_the_socket_takes_them() {
    let (mut client, s) = pair();
    let mut u = uring(4096);
    u.open(0, &s).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let parts = [IoSlice::new(&data[..5]), IoSlice::new(&data[5..])];
    // The socket has room: every 4 KiB send is taken at once, so the whole
    // write is (one submit per buffer, as a socket write each).
    assert_eq!(u.io(0, &s).write_vectored(&parts).unwrap(), data.len());
    pump(&mut u, |_, _| {}, |_| true);
    let mut back = vec![0; data.len()];
    client.read_exact(&mut back).unwrap();
    assert!(back == data);
    assert_eq!(u.held(), (0, 0));
}

#[test]
fn fin_waits_for_the_send_in_flight_and_the_end_of_input_reads_as_zero() {
    let (mut client, s) = pair();
    let mut u = uring(64 << 10);
    u.open(0, &s).unwrap();
    assert_eq!(u.io(0, &s).write(b"bye").unwrap(), 3);
    u.io(0, &s).shutdown_write().unwrap();
    let seen = pump(&mut u, |_, _| {}, |seen| !seen.is_empty());
    assert_eq!(
        seen,
        ["sent 0 false true"],
        "the loop shuts the write side now"
    );
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut back = Vec::new();
    client.read_to_end(&mut back).unwrap();
    assert_eq!(back, b"bye");
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let seen = pump(&mut u, |_, _| {}, |seen| !seen.is_empty());
    assert_eq!(seen, ["readable 0 true"]);
    assert_eq!(u.io(0, &s).read(&mut [0; 8]).unwrap(), 0);
}

#[test]
fn completions_that_outlive_their_connection_reach_nobody() {
    let (mut old_client, old) = pair();
    let (_new_client, new) = pair();
    let mut u = uring(64 << 10);
    u.open(0, &old).unwrap();
    assert_eq!(u.io(0, &old).write(b"late").unwrap(), 4);
    pump(&mut u, |_, _| {}, |_| true);
    old_client.write_all(b"for the old one").unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // The old connection ends with its input and a send unreaped; the slot
    // is reused at once.
    u.close(0, old, true, 0);
    u.open(0, &new).unwrap();
    let seen = pump(&mut u, |_, _| {}, |_| true);
    let seen2 = pump(&mut u, |_, _| {}, |_| true);
    assert!(seen.is_empty() && seen2.is_empty(), "{seen:?} {seen2:?}");
    assert_eq!(u.held(), (0, 0));
    assert_eq!(
        u.io(0, &new).read(&mut [0; 8]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

#[test]
fn a_send_in_flight_when_its_connection_closes_still_goes_out_whole() {
    let (mut client, s, mut u, data) = stuck_send();
    u.close(0, s, false, u64::MAX);
    let reader = std::thread::spawn(move || {
        let mut back = Vec::new();
        client.read_to_end(&mut back).map(|_| back)
    });
    let start = Instant::now();
    while !reader.is_finished() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the rest never came"
        );
        u.expire(0);
        pump(&mut u, |_, _| {}, |_| true);
    }
    let back = reader.join().unwrap().unwrap();
    assert!(
        back == data,
        "{} of {} bytes, then the end",
        back.len(),
        data.len()
    );
    assert_eq!(u.held(), (0, 0));
}
