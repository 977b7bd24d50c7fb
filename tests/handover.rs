//! Replacing one running instance by another on the same port without
//! losing a client: instance A and then B listen with `--reuse-port`, A is
//! sent SIGTERM under a load of clients that reconnect all the time, and
//! no client may see a refused, reset or failed connection, nor lose a
//! message. A request under way when the signal comes is still upgraded,
//! then closed with 1001.
//!
//! Needs `net.ipv4.tcp_migrate_req=1` (the test sets it when it can, and
//! fails saying so when it cannot): without it the kernel resets the
//! connections still queued on A's listener when A closes it.

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{frame, http_get, op, pattern, sample, upgrade_request, wait_until, KEY_ACCEPT};

const CLIENTS: usize = 50;
/// A's `--shutdown-timeout`, in seconds.
const SHUTDOWN_TIMEOUT: u64 = 5;
/// Longest one socket operation of a client may block.
const IO_TIMEOUT: Duration = Duration::from_secs(3);
/// Deliveries of one message (each on a new connection) before the
/// client gives up on it.
const ATTEMPTS: usize = 10;
/// A client's pause between two messages.
const THINK: Duration = Duration::from_millis(2);
const MIGRATE_REQ: &str = "/proc/sys/net/ipv4/tcp_migrate_req";

/// Make sure the kernel hands queued connections of a closed listener to
/// another one of its reuseport group.
fn require_migrate_req() {
    let read = || std::fs::read_to_string(MIGRATE_REQ).map(|v| v.trim().to_owned());
    if read().is_ok_and(|v| v == "1") {
        return;
    }
    let wrote = std::fs::write(MIGRATE_REQ, "1");
    match read() {
        Ok(v) if v == "1" => {}
        other => panic!(
            "this test needs net.ipv4.tcp_migrate_req=1 (Linux 5.14+) and could not set it \
             (write: {wrote:?}, value now: {other:?}); run `sysctl -w net.ipv4.tcp_migrate_req=1` \
             as root"
        ),
    }
}

/// `N` distinct addresses on `ip` (loopback) that nothing listens on right
/// now. Each test takes its own `ip`, so that two running at once cannot be
/// given the same address.
fn free_addrs<const N: usize>(ip: [u8; 4]) -> [SocketAddr; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| {
            std::net::TcpListener::bind(SocketAddr::from((ip, 0))).expect("bind an ephemeral port")
        })
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap())
}

/// The `zerows` binary, killed on drop; its log kept for failure messages.
struct Instance {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Instance {
    fn spawn(listen: &[SocketAddr], args: &[&str]) -> Instance {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_zerows"));
        for a in listen {
            cmd.arg("--listen").arg(a.to_string());
        }
        let mut child = cmd
            .args(["--reuse-port", "--ping-interval", "0"])
            .args(["--shutdown-timeout", &SHUTDOWN_TIMEOUT.to_string()])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn zerows binary");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // Read stdout to its end (so no banner line meets a closed pipe),
        // passing the first line on; it is printed once the port is bound.
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut instance = Instance { child, log };
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(line) if line.starts_with("zerows listening on") => instance,
            other => {
                let _ = instance.child.kill();
                panic!("no banner from zerows: {other:?}\n{}", instance.log());
            }
        }
    }

    fn signal(&self, signal: &str) {
        common::send_signal(&self.child, signal);
    }

    /// The exit code, if the process ends within `limit`.
    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        common::wait_exit(&mut self.child, limit)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why a connection ended.
enum End {
    /// The server closed with 1001 and the close handshake completed.
    GoingAway,
    /// Anything a client of a replaced server must never see.
    Failed(String),
}

fn failed<T>(what: impl std::fmt::Display) -> Result<T, End> {
    Err(End::Failed(what.to_string()))
}

fn io_failure(when: &str, e: io::Error) -> End {
    let kind = match e.kind() {
        io::ErrorKind::ConnectionRefused => "refused",
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe => "reset",
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout",
        _ => "error",
    };
    End::Failed(format!("{kind} while {when}: {e}"))
}

/// A minimal client: one upgrade, then masked frames out, strict parsing of
/// what comes back.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: SocketAddr) -> Result<Conn, End> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
            .map_err(|e| io_failure("connecting", e))?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut c = Conn {
            stream,
            buf: Vec::new(),
        };
        c.write(upgrade_request("/", &[]).as_bytes(), "sending the upgrade")?;
        let end = loop {
            if let Some(i) = c.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if c.fill("reading the handshake response")? == 0 {
                return failed("handshake: closed before a response");
            }
        };
        let head = String::from_utf8_lossy(&c.buf[..end]).into_owned();
        c.buf.drain(..end);
        if !head.starts_with("HTTP/1.1 101 ") || !head.contains(KEY_ACCEPT) {
            return failed(format!("handshake refused: {head:?}"));
        }
        Ok(c)
    }

    fn write(&mut self, bytes: &[u8], when: &str) -> Result<(), End> {
        self.stream
            .write_all(bytes)
            .map_err(|e| io_failure(when, e))
    }

    fn fill(&mut self, when: &str) -> Result<usize, End> {
        let mut tmp = [0u8; 8192];
        let n = self
            .stream
            .read(&mut tmp)
            .map_err(|e| io_failure(when, e))?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// The next frame from the server: (fin, opcode, payload).
    fn frame(&mut self) -> Result<(bool, u8, Vec<u8>), End> {
        loop {
            if let Some(f) = self.parse()? {
                return Ok(f);
            }
            if self.fill("reading a frame")? == 0 {
                return failed("connection closed without a close frame");
            }
        }
    }

    fn parse(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, End> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        if b[1] & 0x80 != 0 || b[0] & 0x70 != 0 {
            return failed(format!(
                "masked or RSV frame from the server: {:x?}",
                &b[..2]
            ));
        }
        let (len, at) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => return Ok(None),
            n => (n as usize, 2),
        };
        if b.len() < at + len {
            return Ok(None);
        }
        let f = (b[0] & 0x80 != 0, b[0] & 0x0F, b[at..at + len].to_vec());
        self.buf.drain(..at + len);
        Ok(Some(f))
    }

    /// The server closed with `payload`: answer, then see TCP end cleanly.
    fn closed_by_server(&mut self, payload: &[u8]) -> End {
        let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
        if code != Some(1001) {
            return End::Failed(format!("server closed with {code:?}, not 1001"));
        }
        match self.finish(&1001u16.to_be_bytes()) {
            Ok(()) => End::GoingAway,
            Err(e) => e,
        }
    }

    /// Send our close, then expect the end of the stream.
    fn finish(&mut self, payload: &[u8]) -> Result<(), End> {
        self.write(&frame(true, op::CLOSE, payload), "answering a close")?;
        if !self.buf.is_empty() || self.fill("waiting for the end of the stream")? != 0 {
            return failed("bytes after the close frame");
        }
        Ok(())
    }

    /// Send `msg`, and read its echo back; it must be exactly `msg`.
    fn echo(&mut self, msg: &[u8]) -> Result<(), End> {
        self.write(&frame(true, op::BINARY, msg), "sending a message")?;
        let mut got = Vec::with_capacity(msg.len());
        loop {
            let (fin, opcode, payload) = self.frame()?;
            match opcode {
                op::CLOSE => return Err(self.closed_by_server(&payload)),
                op::PING => self.write(&frame(true, op::PONG, &payload), "answering a ping")?,
                op::BINARY | op::CONT => {
                    got.extend_from_slice(&payload);
                    if fin {
                        break;
                    }
                }
                other => return failed(format!("unexpected opcode {other}")),
            }
        }
        if got != msg {
            return failed(format!(
                "echo of {} bytes came back as {} different bytes",
                msg.len(),
                got.len()
            ));
        }
        Ok(())
    }

    /// Close normally (the server may be closing at the same moment).
    fn close(mut self) -> Result<(), End> {
        self.write(
            &frame(true, op::CLOSE, &1000u16.to_be_bytes()),
            "sending a close",
        )?;
        loop {
            let (_, opcode, payload) = self.frame()?;
            if opcode == op::CLOSE {
                let code = payload.get(..2).map(|c| u16::from_be_bytes([c[0], c[1]]));
                if code != Some(1000) && code != Some(1001) {
                    return failed(format!("close answered with {code:?}"));
                }
                break;
            }
        }
        if !self.buf.is_empty() || self.fill("waiting for the end of the stream")? != 0 {
            return failed("bytes after the close frame");
        }
        Ok(())
    }
}

#[derive(Default)]
struct Tally {
    /// Messages whose echo came back intact.
    echoed: u64,
    /// Messages started; each must end echoed.
    messages: u64,
    connections: u64,
    going_away: u64,
    failures: Vec<String>,
}

/// Echo messages one at a time until `stop`, moving to a new connection
/// every few messages and whenever the server sends 1001; a message whose
/// echo did not arrive is sent again on the next connection.
fn client(id: u64, addr: SocketAddr, stop: &AtomicBool, give_up: Instant) -> Tally {
    let mut t = Tally::default();
    let mut conn: Option<Conn> = None;
    let mut on_conn = 0;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
        let len = 1 + ((seq * 37 + id * 101) % 3000) as usize;
        let msg = pattern(len, (id << 32) | seq);
        t.messages += 1;
        let mut delivered = false;
        for _ in 0..ATTEMPTS {
            let c = match &mut conn {
                Some(c) => c,
                None => match Conn::open(addr) {
                    Ok(c) => {
                        t.connections += 1;
                        conn.insert(c)
                    }
                    Err(End::Failed(f)) => {
                        t.failures.push(f);
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                    Err(End::GoingAway) => unreachable!("open never ends with a close"),
                },
            };
            match c.echo(&msg) {
                Ok(()) => {
                    delivered = true;
                    break;
                }
                Err(End::GoingAway) => t.going_away += 1,
                Err(End::Failed(f)) => t.failures.push(f),
            }
            conn = None;
        }
        if !delivered {
            t.failures
                .push(format!("client {id}: message {seq} never echoed"));
            break;
        }
        t.echoed += 1;
        seq += 1;
        on_conn += 1;
        if on_conn >= 3 + (id + seq) % 12 {
            on_conn = 0;
            if let Err(End::Failed(f)) = conn.take().map_or(Ok(()), Conn::close) {
                t.failures.push(f);
            }
        }
        // A pause while connected, as clients with something to say now
        // and then: connections then stay on each instance in proportion to
        // its share of the port, not to how slowly it answers.
        std::thread::sleep(THINK);
    }
    if let Some(Err(End::Failed(f))) = conn.map(Conn::close) {
        t.failures.push(f);
    }
    t
}

/// The sample `name` of the `/metrics` served on `addr`.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    let (status, m) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    sample(&m, name).unwrap_or(0.0)
}

/// Upgrades an instance accepted, from its `/metrics` on `addr`.
fn accepted(addr: SocketAddr) -> f64 {
    metric(addr, "zerows_handshakes_total{result=\"accepted\"}")
}

#[test]
fn a_new_instance_takes_over_the_port_without_refusing_or_losing_anything() {
    require_migrate_req();
    // Each instance also has an address of its own, to read its metrics
    // whichever instance the shared port's hash would pick for a scrape.
    let [shared, private_a, private_b] = free_addrs([127, 0, 0, 1]);
    // A runs two event loops: each has a listener of its own to hand over.
    let mut a = Instance::spawn(&[shared, private_a], &["--threads", "2"]);

    let stop = Arc::new(AtomicBool::new(false));
    let give_up = Instant::now() + Duration::from_secs(12);
    let clients: Vec<_> = (0..CLIENTS as u64)
        .map(|id| {
            let stop = stop.clone();
            std::thread::spawn(move || client(id, shared, &stop, give_up))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));

    let b = Instance::spawn(&[shared, private_b], &[]);
    let shares = wait_until(Duration::from_secs(5), || accepted(private_b) >= 50.0);
    assert!(shares, "B took no share of new connections\n{}", b.log());
    // Clients gather where they are served slowest (a freshly started B,
    // at first): wait until A holds some again, or there is nothing to hand
    // over. A scrape counts itself, and two loops publish 100 ms late.
    let held = wait_until(Duration::from_secs(5), || {
        metric(private_a, "zerows_connections") > 10.0
    });
    assert!(held, "no client stayed on A\n{}", a.log());

    let b_before = accepted(private_b);
    let signalled = Instant::now();
    a.signal("TERM");
    let code = a.wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT + 2));
    let a_took = signalled.elapsed();
    // The load goes on after A is gone.
    std::thread::sleep(Duration::from_secs(2).saturating_sub(a_took));
    stop.store(true, Ordering::Relaxed);
    let tallies: Vec<Tally> = clients
        .into_iter()
        .map(|c| c.join().expect("client thread panicked"))
        .collect();
    let b_after = accepted(private_b);

    let a_log = a.log();
    assert_eq!(code, Some(0), "A did not exit 0 in time\n{a_log}");
    assert!(
        a_took < Duration::from_secs(SHUTDOWN_TIMEOUT),
        "A took {a_took:?} to exit\n{a_log}"
    );

    let failures: Vec<&String> = tallies.iter().flat_map(|t| &t.failures).collect();
    let sum = |f: fn(&Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let (messages, echoed) = (sum(|t| t.messages), sum(|t| t.echoed));
    let (connections, going_away) = (sum(|t| t.connections), sum(|t| t.going_away));
    eprintln!(
        "{messages} messages, {echoed} echoed; {connections} connections, {going_away} closed \
         by A with 1001; B accepted {b_before} before the SIGTERM, {b_after} in all; A exited \
         after {a_took:?}"
    );
    assert!(
        failures.is_empty(),
        "{} failures, first ones: {:#?}\nA's log:\n{a_log}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
    assert_eq!(echoed, messages, "messages left without their echo");
    assert!(
        messages > CLIENTS as u64 * 10,
        "too little load: {messages}"
    );
    assert!(
        going_away > 0,
        "no client was connected to A at the SIGTERM\n{a_log}"
    );
    // Every client A sent away came back, and found B.
    assert!(
        b_after - b_before >= going_away as f64,
        "B accepted {} upgrades after the SIGTERM, fewer than the {going_away} clients A closed",
        b_after - b_before
    );
    assert!(
        a_log.contains("handing over"),
        "A did not hand over\n{a_log}"
    );
}

#[test]
fn a_request_under_way_at_the_signal_is_upgraded_then_closed_with_1001() {
    let [addr] = free_addrs([127, 0, 0, 2]);
    let mut a = Instance::spawn(&[addr], &[]);
    // Connected, but the request is not sent yet when the signal comes.
    let mut c = common::Raw::connect(addr);
    a.signal("TERM");
    // The listener closes at once (no other instance here to take over).
    let closed = wait_until(Duration::from_secs(5), || {
        TcpStream::connect(addr).is_err_and(|e| e.kind() == io::ErrorKind::ConnectionRefused)
    });
    assert!(closed, "A still listens after SIGTERM\n{}", a.log());
    c.send(upgrade_request("/", &[]).as_bytes());
    let r = c.read_response_head();
    assert_eq!(r.status, 101, "not upgraded: {r:?}");
    c.expect_close(Some(1001));
    c.send_frame(true, op::CLOSE, &1001u16.to_be_bytes());
    c.expect_eof();
    assert_eq!(a.wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT)), Some(0));
}
