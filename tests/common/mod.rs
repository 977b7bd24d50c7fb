//! Helpers shared by the loopback integration tests: an in-process server,
//! the `zerows` binary as a child process, and a raw TCP client that speaks
//! just enough HTTP and RFC 6455 framing to send what a well-behaved client
//! library never would.
//!
//! Every socket gets read and write timeouts, so a server that stops
//! answering fails a test instead of hanging it.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

pub mod redis;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use zerows::server::{Config, Server, Stopper};
use zerows::Echo;

/// Longest any single socket operation may block before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The sample key of RFC 6455 §1.3 and the accept value it must produce.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const KEY_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub mod op {
    pub const CONT: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}

/// An in-process server on an ephemeral port of 127.0.0.1, stopped and
/// joined on drop so that a panicking test does not leak its event loop.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Stopper,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    /// The default configuration, adjusted by `tweak`, on 127.0.0.1:0.
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            ..Config::default()
        };
        tweak(&mut config);
        let mut server = Server::bind(config, Echo).expect("bind test server");
        let addr = server.local_addrs()[0];
        let stop = server.stopper();
        let thread = std::thread::spawn(move || server.run());
        TestServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    pub fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    /// Stop the server and wait for its loop to return; how long that took.
    pub fn stop_and_join(mut self) -> Duration {
        let t = Instant::now();
        self.stop.stop();
        let r = self.thread.take().unwrap().join();
        let took = t.elapsed();
        r.expect("server thread panicked")
            .expect("server run() failed");
        took
    }

    pub fn url(&self) -> String {
        format!("ws://{}/", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.stop();
        if let Some(t) = self.thread.take() {
            let r = t.join();
            // Surface an event-loop error or panic, unless the test is
            // already failing for another reason.
            if !std::thread::panicking() {
                r.expect("server thread panicked")
                    .expect("server run() failed");
            }
        }
    }
}

/// The `zerows` binary running as a child process, killed on drop.
pub struct ChildServer {
    pub addr: SocketAddr,
    child: Child,
}

impl ChildServer {
    /// Start the binary on 127.0.0.1:0 with extra `args`, and learn its
    /// port from the line it prints once listening.
    pub fn spawn(args: &[&str]) -> ChildServer {
        Self::spawn_with_prefix(&[], args)
    }

    /// The same, run through a wrapper command (`prefix` then the binary),
    /// such as `prlimit` to give it other resource limits.
    pub fn spawn_with_prefix(prefix: &[&str], args: &[&str]) -> ChildServer {
        Self::spawn_logging(prefix, args, None)
    }

    /// The same, keeping what it logs at `level` (`RUST_LOG`) for
    /// [`stop_and_log`](Self::stop_and_log) instead of passing it through.
    pub fn spawn_logging(prefix: &[&str], args: &[&str], level: Option<&str>) -> ChildServer {
        let bin = env!("CARGO_BIN_EXE_zerows");
        let mut cmd = match prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let (log, stderr) = match level {
            Some(level) => (level, Stdio::piped()),
            None => ("warn", Stdio::inherit()),
        };
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn zerows binary");
        let stdout = child.stdout.take().unwrap();
        // Read the banner on a helper thread so a binary that never prints
        // it fails the test after a timeout instead of blocking forever.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let r = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = tx.send(r);
        });
        let line = match rx.recv_timeout(TIMEOUT) {
            Ok(Ok(line)) => line,
            other => {
                let _ = child.kill();
                panic!("zerows did not print its banner: {other:?}");
            }
        };
        let addr = line
            .strip_prefix("zerows listening on ws://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected banner: {line:?}"));
        ChildServer { addr, child }
    }
}

impl ChildServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (e.g. "TERM") to the server.
    pub fn signal(&self, signal: &str) {
        send_signal(&self.child, signal);
    }

    /// Wait up to `limit` for the process to exit; its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        wait_exit(&mut self.child, limit)
    }

    /// SIGTERM, expect a clean exit, and return what it logged (started
    /// with [`spawn_logging`](Self::spawn_logging)).
    pub fn stop_and_log(&mut self) -> String {
        self.signal("TERM");
        assert_eq!(self.wait_exit(Duration::from_secs(10)), Some(0));
        let mut log = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut log).unwrap();
        }
        log
    }
}

/// Send `signal` (e.g. "TERM") to `child`.
pub fn send_signal(child: &Child, signal: &str) {
    let ok = Command::new("kill")
        .args([format!("-{signal}"), child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{signal} failed");
}

/// Wait up to `limit` for `child` to exit; its exit code.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status.code().unwrap_or(-1));
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking TCP connection with timeouts on every read and write.
pub fn tcp(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// A tungstenite client over a socket with timeouts; messages up to 64 MiB.
pub fn ws_client(addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let stream = tcp(addr);
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let (ws, resp) =
        tungstenite::client::client_with_config(format!("ws://{addr}/"), stream, Some(config))
            .expect("tungstenite handshake");
    assert_eq!(resp.status(), 101);
    ws
}

/// An upgrade request for `path` with `extra` header lines (each without
/// CRLF) after the standard ones.
pub fn upgrade_request(path: &str, extra: &[&str]) -> String {
    let mut r = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// A request built line by line: `lines` are the request line and headers,
/// each without CRLF.
pub fn request(lines: &[&str]) -> String {
    let mut r = String::new();
    for l in lines {
        r.push_str(l);
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// Encode one frame. `first` is the whole first byte (FIN, RSV, opcode) so
/// tests can set any bit; `mask` `None` sends an (illegal) unmasked frame.
pub fn encode_raw(first: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(first);
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n @ 0..=125 => f.push(m | n as u8),
        n @ 126..=0xFFFF => {
            f.push(m | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(m | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            f.extend_from_slice(&k);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => f.extend_from_slice(payload),
    }
    f
}

/// A masked client frame with FIN as given and no RSV bits.
pub fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let first = if fin { 0x80 } else { 0 } | opcode;
    // A mask key with distinct, non-zero bytes, so a server that skipped or
    // misaligned unmasking would echo garbage.
    encode_raw(first, payload, Some([0x37, 0xfa, 0x21, 0x3d]))
}

/// Only the header of a masked frame announcing `len` payload bytes.
pub fn header_only(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    if len <= 125 {
        f.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&len.to_be_bytes());
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f
}

/// A close frame payload: code and reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// A frame as the server sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// RSV1-3 bits, as the top nibble of the first byte minus FIN.
    pub rsv: u8,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The close code, if this is a close frame with one.
    pub fn close_code(&self) -> Option<u16> {
        assert_eq!(self.opcode, op::CLOSE, "not a close frame: {self:?}");
        (self.payload.len() >= 2).then(|| u16::from_be_bytes([self.payload[0], self.payload[1]]))
    }
}

/// An HTTP response read from the wire.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    // The page is several KiB: show the start of the body as text.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(80)]);
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("body_start", &body)
            .finish()
    }
}

impl Response {
    /// The value of header `name` (case-insensitive); panics if repeated.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut it = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        let v = it.next().map(|(_, v)| v.as_str());
        assert!(it.next().is_none(), "header {name} repeated");
        v
    }
}

/// A raw client: writes whatever bytes a test asks for and parses what the
/// server sends back, strictly (server frames must be unmasked).
pub struct Raw {
    pub stream: TcpStream,
    /// Bytes read but not yet parsed.
    buf: Vec<u8>,
}

impl Raw {
    /// A TCP connection with nothing sent yet.
    pub fn connect(addr: SocketAddr) -> Raw {
        Raw {
            stream: tcp(addr),
            buf: Vec::new(),
        }
    }

    /// A connection whose socket has a `rcvbuf`-byte receive buffer (so
    /// that not reading soon stops the server's writes), upgraded.
    pub fn open_small_window(addr: SocketAddr, rcvbuf: usize) -> Raw {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        socket
            .connect_timeout(&addr.into(), TIMEOUT)
            .expect("connect");
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let mut c = Raw {
            stream,
            buf: Vec::new(),
        };
        c.send(upgrade_request("/", &[]).as_bytes());
        assert_eq!(c.read_response_head().status, 101);
        c
    }

    /// A connection that completed a standard upgrade of "/".
    pub fn open(addr: SocketAddr) -> Raw {
        let mut c = Raw::connect(addr);
        c.send(upgrade_request("/", &[]).as_bytes());
        let r = c.read_response_head();
        assert_eq!(r.status, 101, "upgrade refused: {r:?}");
        assert_eq!(r.header("Sec-WebSocket-Accept"), Some(KEY_ACCEPT));
        c
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to server");
    }

    /// Write, tolerating a connection the server already closed: for
    /// courtesy replies after the server has judged the connection.
    pub fn send_lenient(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        self.send(&frame(fin, opcode, payload));
    }

    /// Read more bytes into `buf`; `Ok(0)` is end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        let mut tmp = [0u8; 64 << 10];
        let n = self.stream.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    fn fill_or_panic(&mut self, what: &str) {
        match self.fill() {
            Ok(0) => panic!(
                "server closed the connection while {what} was expected (have {:?})",
                String::from_utf8_lossy(&self.buf)
            ),
            Ok(_) => {}
            Err(e) => panic!("reading {what}: {e}"),
        }
    }

    /// Read an HTTP response head (up to CRLFCRLF); body bytes stay
    /// buffered for what follows (frames after a 101).
    pub fn read_response_head(&mut self) -> Response {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.buf.len() < 64 << 10, "response head too long");
            self.fill_or_panic("a response head");
        };
        let head: Vec<u8> = self.buf.drain(..end).collect();
        let head = String::from_utf8(head).expect("response head is not UTF-8");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (n.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        Response {
            status,
            headers,
            body: Vec::new(),
        }
    }

    /// Read a whole non-101 response: head, a body of exactly
    /// Content-Length bytes, then the server must close the connection.
    pub fn read_response_and_eof(&mut self) -> Response {
        let mut r = self.read_response_head();
        let len: usize = r
            .header("Content-Length")
            .expect("refusals carry Content-Length")
            .parse()
            .unwrap();
        while self.buf.len() < len {
            self.fill_or_panic("a response body");
        }
        r.body = self.buf.drain(..len).collect();
        self.expect_eof();
        r
    }

    /// Read one server frame.
    pub fn read_frame(&mut self) -> Frame {
        loop {
            if let Some((f, n)) = parse_server_frame(&self.buf) {
                self.buf.drain(..n);
                return f;
            }
            self.fill_or_panic("a frame");
        }
    }

    /// Read a frame, failing unless it arrives within `limit`.
    pub fn read_frame_within(&mut self, limit: Duration) -> Frame {
        self.stream.set_read_timeout(Some(limit)).unwrap();
        let f = self.read_frame();
        self.stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        f
    }

    /// Read one whole data message, reassembling continuations; control
    /// frames met on the way are returned separately, in order.
    pub fn read_message(&mut self) -> (u8, Vec<u8>, Vec<Frame>) {
        let mut controls = Vec::new();
        let mut kind = None;
        let mut data = Vec::new();
        loop {
            let f = self.read_frame();
            assert_eq!(f.rsv, 0, "server set RSV bits: {f:?}");
            if f.opcode & 0x8 != 0 {
                assert!(f.fin, "fragmented control frame from server");
                assert_ne!(f.opcode, op::CLOSE, "unexpected close: {f:?}");
                controls.push(f);
                continue;
            }
            match (kind, f.opcode) {
                (None, op::TEXT | op::BINARY) => kind = Some(f.opcode),
                (Some(_), op::CONT) => {}
                _ => panic!("bad frame sequence: {:?} after {kind:?}", f.opcode),
            }
            data.extend_from_slice(&f.payload);
            if f.fin {
                return (kind.unwrap(), data, controls);
            }
        }
    }

    /// Expect a close frame with `code` (`None`: an empty close).
    pub fn expect_close(&mut self, code: Option<u16>) -> Frame {
        let f = self.read_frame();
        assert_eq!(f.opcode, op::CLOSE, "expected close, got {f:?}");
        assert!(f.fin);
        assert_eq!(f.close_code(), code, "close frame {f:?}");
        f
    }

    /// The server must have closed TCP: read returns 0 within the timeout,
    /// with no stray bytes before it.
    pub fn expect_eof(&mut self) {
        assert!(self.buf.is_empty(), "unread bytes: {:?}", self.buf);
        match self.fill() {
            Ok(0) => {}
            Ok(_) => panic!("expected end of stream, got {:?}", self.buf),
            Err(e) => panic!("expected end of stream, got error {e}"),
        }
    }

    /// The full failure sequence: a close with `code`, our close in reply
    /// (the server may already be done listening), then end of stream.
    pub fn expect_fail(&mut self, code: u16) {
        self.expect_close(Some(code));
        self.send_lenient(&frame(true, op::CLOSE, &code.to_be_bytes()));
        self.expect_eof();
    }

    /// Bytes still buffered after the last parse.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }
}

/// Parse one server frame at the start of `b`: the frame and its length.
fn parse_server_frame(b: &[u8]) -> Option<(Frame, usize)> {
    if b.len() < 2 {
        return None;
    }
    assert_eq!(b[1] & 0x80, 0, "server frame is masked");
    let (len, at) = match b[1] & 0x7F {
        126 => (
            u16::from_be_bytes(b.get(2..4)?.try_into().unwrap()) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(b.get(2..10)?.try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = b.get(at..at + len)?.to_vec();
    Some((
        Frame {
            fin: b[0] & 0x80 != 0,
            rsv: (b[0] >> 4) & 0x7,
            opcode: b[0] & 0x0F,
            payload,
        },
        at + len,
    ))
}

/// Deterministic pseudo-random bytes (xorshift), so a failure reproduces.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Deterministic valid UTF-8 of exactly `len` bytes, mixing 1- to 4-byte
/// code points so chunk boundaries fall inside them.
pub fn text_pattern(len: usize) -> String {
    let alphabet = ['a', 'é', '€', '𝄞', 'z', 'ж', '中', '😀'];
    let mut s = String::with_capacity(len);
    let mut i = 0;
    while s.len() < len {
        let c = alphabet[i % alphabet.len()];
        if s.len() + c.len_utf8() > len {
            s.push('.');
        } else {
            s.push(c);
        }
        i += 1;
    }
    s
}

/// Wait until `cond` holds, checking every few milliseconds, for at most
/// `limit`; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// GET `path` over a fresh connection; the status and body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut c = Raw::connect(addr);
    c.send(request(&[&format!("GET {path} HTTP/1.1"), "Host: localhost"]).as_bytes());
    let r = c.read_response_and_eof();
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

/// The value of the sample `name` (with its labels, exactly as rendered) in
/// a Prometheus text exposition.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse().ok())?
    })
}
