//! The client's interop scenarios: conversations with a server zerows did
//! not write (tests/interop/servers/: Python `websockets`, Node `ws`),
//! through the public client API only. One line per scenario (ok or FAIL,
//! its name, milliseconds, why it failed); the exit status is 1 if any
//! failed, 2 if the run as a whole timed out.
//!
//! ```text
//! python3 tests/interop/servers/echo_server.py 9100 &
//! cargo run --release --example client_interop -- ws://127.0.0.1:9100
//! cargo run --release --example client_interop -- ws://127.0.0.1:9100 ping refused-403
//! ```
//!
//! The peer servers' paths and commands (`/greet`, `close CODE`,
//! `close-of TOKEN`, ...) are described at the top of either server.
//! Environment: `CLIENT_INTEROP_TIMEOUT`, seconds for the whole run
//! (default 180).

use std::fmt::Display;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use zerows::{
    Client, ClientConfig, ClientError, DeflateOffer, Incoming, Message, MessageKind, Part,
    ResponseError,
};

/// The longest any one read or write may block.
const STEP: Duration = Duration::from_secs(15);
const MIB: usize = 1 << 20;
/// What the peer servers answer `/refuse` with.
const REFUSAL: &str = "refused by the test server";

type Outcome = Result<(), String>;

/// Fail the scenario with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// A client call's error, said with what was being done.
trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, String>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> Result<T, String> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

struct Peer {
    /// `ws://host:port`, without a trailing slash.
    base: String,
    /// Makes close-of tokens unique to this run.
    run: String,
    tokens: AtomicU32,
}

impl Peer {
    fn url(&self, target: &str) -> String {
        format!("{}{target}", self.base)
    }

    fn open_with(&self, target: &str, cfg: &ClientConfig) -> Result<Client, String> {
        let mut ws = Client::connect_with(&self.url(target), cfg).ctx("connect")?;
        ws.set_read_timeout(Some(STEP));
        ws.set_write_timeout(Some(STEP)).ctx("set_write_timeout")?;
        Ok(ws)
    }

    fn open(&self, target: &str) -> Result<Client, String> {
        self.open_with(target, &ClientConfig::new())
    }

    /// A token naming one connection, for asking the server later which
    /// close it received on it.
    fn token(&self) -> String {
        let n = self.tokens.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.run)
    }

    /// The close code and reason the server received on the connection
    /// opened with `?id=token`, asked on a new connection.
    fn close_seen(&self, token: &str) -> Result<(u16, String), String> {
        let mut ws = self.open("/")?;
        ws.send_text(&format!("close-of {token}")).ctx("send")?;
        let answer = text(&mut ws)?;
        ws.close(1000, "").ctx("close")?;
        let (code, reason) = answer.split_once(' ').unwrap_or((&answer, ""));
        let code = code
            .parse()
            .map_err(|_| format!("the server saw no close on {token}: {answer:?}"))?;
        Ok((code, reason.to_string()))
    }
}

/// The next message, which must be text.
fn text(ws: &mut Client) -> Result<String, String> {
    match ws.recv().ctx("recv")? {
        Some(Message::Text(t)) => Ok(t.to_string()),
        Some(Message::Binary(b)) => Err(format!("binary ({} bytes) where text was due", b.len())),
        None => Err(format!("closed where text was due: {:?}", ws.close_frame())),
    }
}

/// The next message, which must be binary.
fn binary(ws: &mut Client) -> Result<Vec<u8>, String> {
    match ws.recv().ctx("recv")? {
        Some(Message::Binary(b)) => Ok(b.to_vec()),
        Some(Message::Text(t)) => Err(format!("text ({} bytes) where binary was due", t.len())),
        None => Err(format!(
            "closed where binary was due: {:?}",
            ws.close_frame()
        )),
    }
}

/// Bytes that differ from one position to the next and do not repeat
/// every 256 (a shifted or duplicated block shows).
fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Where two byte strings first differ, said.
fn same(got: &[u8], want: &[u8], what: &str) -> Outcome {
    if got == want {
        return Ok(());
    }
    let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    Err(format!(
        "{what}: {} bytes back for {} sent, first difference at byte {at}",
        got.len(),
        want.len()
    ))
}

/// Close from our side and check the server answered with the same code.
fn close_clean(mut ws: Client, code: u16) -> Outcome {
    ws.close(code, "").ctx("close")?;
    let theirs = ws.close_frame().and_then(|c| c.code);
    ensure!(
        theirs == Some(code),
        "closed with {code}, the server answered {theirs:?}"
    );
    Ok(())
}

fn text_echo(p: &Peer) -> Outcome {
    let mut ws = p.open("/")?;
    let long = "ζ unicode ✓ 😀 ".repeat(12_000);
    let msgs = [
        "hello",
        "",
        "ζ unicode ✓ 😀",
        &"x".repeat(125),
        &"y".repeat(126),
        &"z".repeat(65_535),
        &"w".repeat(65_536),
        &long,
    ];
    for m in msgs {
        ws.send_text(m).ctx("send")?;
        let got = text(&mut ws)?;
        same(got.as_bytes(), m.as_bytes(), "text echo")?;
    }
    close_clean(ws, 1000)
}

fn binary_echo(p: &Peer) -> Outcome {
    let mut ws = p.open("/")?;
    let msgs = [
        vec![0, 1, 2],
        Vec::new(),
        pattern(125, 1),
        pattern(126, 2),
        pattern(65_536, 3),
        pattern(MIB + 7, 4),
    ];
    for m in &msgs {
        ws.send_binary(m).ctx("send")?;
        same(&binary(&mut ws)?, m, "binary echo")?;
    }
    close_clean(ws, 1000)
}

/// Many messages out before any is read: echoes come back whole and in
/// order, however they are packed into reads.
fn pipelined(p: &Peer) -> Outcome {
    const N: usize = 2000;
    let mut ws = p.open("/")?;
    for i in 0..N {
        if i % 3 == 0 {
            ws.send_binary(&pattern(i % 200, i as u32)).ctx("send")?;
        } else {
            ws.send_text(&format!("message {i} {}", "é".repeat(i % 50)))
                .ctx("send")?;
        }
    }
    for i in 0..N {
        if i % 3 == 0 {
            same(&binary(&mut ws)?, &pattern(i % 200, i as u32), "binary")?;
        } else {
            let want = format!("message {i} {}", "é".repeat(i % 50));
            let got = text(&mut ws)?;
            ensure!(got == want, "message {i}: {got:?}, expected {want:?}");
        }
    }
    close_clean(ws, 1000)
}

fn binary_16mib(p: &Peer) -> Outcome {
    let mut ws = p.open("/")?;
    let big = pattern(16 * MIB, 16);
    ws.send_binary(&big).ctx("send")?;
    same(&binary(&mut ws)?, &big, "16 MiB echo")?;
    // Text of the same size, its code points cut across reads.
    let chars = "abcé€😀";
    let mut t = chars.repeat(16 * MIB / chars.len());
    while t.len() < 16 * MIB - 3 {
        t.push('€');
    }
    ws.send_text(&t).ctx("send")?;
    let got = text(&mut ws)?;
    same(got.as_bytes(), t.as_bytes(), "16 MiB text echo")?;
    close_clean(ws, 1000)
}

/// A message sent in frames (`send_part`), a code point cut between two of
/// them and a ping between two others: the server answers the ping at once
/// and echoes the message whole.
fn client_fragmented(p: &Peer) -> Outcome {
    let mut ws = p.open("/")?;
    ws.send_part(Part::First(MessageKind::Text), b"frag")
        .ctx("send_part")?;
    ws.ping(b"between").ctx("ping")?;
    ws.send_part(Part::More, b"mented ").ctx("send_part")?;
    ws.send_part(Part::More, b"").ctx("send_part")?;
    ws.send_part(Part::More, b"t\xc3").ctx("send_part")?;
    ws.send_part(Part::Last, b"\xa9xt").ctx("send_part")?;
    let mut pong = None;
    let mut echo = Vec::new();
    for _ in 0..1000 {
        match ws.recv_event().ctx("recv_event")? {
            Some(Incoming::Pong(d)) => {
                ensure!(echo.is_empty(), "the pong came after the echo began");
                pong = Some(d.to_vec());
            }
            Some(Incoming::Piece(pc)) => {
                ensure!(pc.kind == MessageKind::Text, "the echo is not text");
                ensure!(pc.first == echo.is_empty(), "first flag out of place");
                echo.extend_from_slice(pc.data);
                if pc.last {
                    break;
                }
            }
            Some(Incoming::Ping(_)) => {}
            None => return Err("closed before the echo".into()),
        }
    }
    ensure!(
        pong.as_deref() == Some(b"between"),
        "pong payload {pong:?}, expected \"between\""
    );
    same(&echo, "fragmented téxt".as_bytes(), "fragmented text echo")?;

    let parts = [
        pattern(10, 5),
        pattern(70_000, 6),
        Vec::new(),
        pattern(3, 7),
    ];
    ws.send_part(Part::First(MessageKind::Binary), &parts[0])
        .ctx("send_part")?;
    for part in &parts[1..3] {
        ws.send_part(Part::More, part).ctx("send_part")?;
    }
    ws.send_part(Part::Last, &parts[3]).ctx("send_part")?;
    same(&binary(&mut ws)?, &parts.concat(), "fragmented binary echo")?;
    close_clean(ws, 1000)
}

/// What `/greet` sends first, in the order it must arrive.
const GREET_TEXT: &str = "fragmented gréeting";

fn greet_binary() -> Vec<u8> {
    let mut b: Vec<u8> = (0..1024).map(|i| (i % 256) as u8).collect();
    b.extend((0..70_000).map(|i| (i * 7 % 251) as u8));
    b
}

/// The server's ping, then its fragmented messages (a ping between two
/// frames, a code point cut between two others), streamed: every piece
/// whole UTF-8, the flags in place, the pongs echoed back.
fn server_fragmented_events(p: &Peer) -> Outcome {
    greet_events(p, &ClientConfig::new())
}

fn greet_events(p: &Peer, cfg: &ClientConfig) -> Outcome {
    let mut ws = p.open_with("/greet", cfg)?;
    let mut pings = Vec::new();
    let mut texts = Vec::new();
    let mut msgs: Vec<(MessageKind, Vec<u8>, usize)> = Vec::new();
    let mut open = false;
    for _ in 0..10_000 {
        match ws.recv_event().ctx("recv_event")? {
            Some(Incoming::Ping(d)) => pings.push((d.to_vec(), open)),
            Some(Incoming::Pong(_)) => return Err("a pong never asked for".into()),
            Some(Incoming::Piece(pc)) => {
                ensure!(pc.first != open, "first flag out of place");
                if pc.first {
                    msgs.push((pc.kind, Vec::new(), 0));
                }
                if let (1, Some(t)) = (msgs.len(), pc.text()) {
                    texts.push(t.to_string());
                }
                let m = msgs.last_mut().expect("a message is open");
                ensure!(pc.kind == m.0, "the kind changed within a message");
                m.1.extend_from_slice(pc.data);
                m.2 += 1;
                open = !pc.last;
                if msgs.len() == 3 && !open {
                    break;
                }
            }
            None => return Err("closed during the greeting".into()),
        }
    }
    let want_pings = vec![(b"hello-ping".to_vec(), false), (b"mid".to_vec(), true)];
    ensure!(
        pings == want_pings,
        "pings (payload, within a message) {pings:?}, expected {want_pings:?}"
    );
    ensure!(msgs.len() == 3, "{} messages, expected 3", msgs.len());
    let (kind, data, pieces) = &msgs[0];
    ensure!(*kind == MessageKind::Text, "the first message is not text");
    same(data, GREET_TEXT.as_bytes(), "fragmented text")?;
    ensure!(*pieces >= 3, "the text came in {pieces} pieces, sent in 3+");
    ensure!(
        texts.concat() == GREET_TEXT,
        "text pieces as &str: {texts:?}"
    );
    let (kind, data, _) = &msgs[1];
    ensure!(
        *kind == MessageKind::Binary,
        "the second message is not binary"
    );
    same(data, &greet_binary(), "fragmented binary")?;
    let (kind, data, _) = &msgs[2];
    ensure!(
        *kind == MessageKind::Text && data == b"pongs: hello-ping mid",
        "the server's pongs report: {:?}",
        String::from_utf8_lossy(data)
    );
    close_clean(ws, 1000)
}

/// The same greeting through `recv`: whole messages, pings answered on
/// the way.
fn server_fragmented_recv(p: &Peer) -> Outcome {
    greet_recv(p, &ClientConfig::new())
}

fn greet_recv(p: &Peer, cfg: &ClientConfig) -> Outcome {
    let mut ws = p.open_with("/greet", cfg)?;
    let t = text(&mut ws)?;
    ensure!(t == GREET_TEXT, "fragmented text {t:?}");
    same(&binary(&mut ws)?, &greet_binary(), "fragmented binary")?;
    let report = text(&mut ws)?;
    ensure!(
        report == "pongs: hello-ping mid",
        "the server's pongs report: {report:?}"
    );
    // Still an echo server after the greeting.
    ws.send_text("after").ctx("send")?;
    ensure!(text(&mut ws)? == "after", "echo after the greeting");
    close_clean(ws, 1000)
}

fn ping_pong(p: &Peer) -> Outcome {
    let mut ws = p.open("/")?;
    let payloads = [
        Vec::new(),
        b"ping".to_vec(),
        pattern(125, 8),
        "ζ".as_bytes().to_vec(),
    ];
    for payload in &payloads {
        ws.ping(payload).ctx("ping")?;
        match ws.recv_event().ctx("recv_event")? {
            Some(Incoming::Pong(d)) => same(d, payload, "pong payload")?,
            other => return Err(format!("{other:?} where a pong was due")),
        }
    }
    ensure!(
        matches!(ws.ping(&[0; 126]), Err(ClientError::Invalid(_))),
        "a 126-byte ping was not refused"
    );
    // An unsolicited pong needs no answer: the echo comes next.
    ws.pong(b"heartbeat").ctx("pong")?;
    ws.send_text("after pings").ctx("send")?;
    ensure!(text(&mut ws)? == "after pings", "echo after the pings");
    close_clean(ws, 1000)
}

/// The server closes with each code: `recv` ends, the code and reason are
/// reported, the client echoes the code, and sending fails.
fn server_close(p: &Peer) -> Outcome {
    let cases = [
        (1000, ""),
        (1001, "going away"),
        (1011, "oops"),
        (3000, "app"),
        (4001, "bye"),
        (4999, "ζ"),
    ];
    for (code, reason) in cases {
        let token = p.token();
        let mut ws = p.open(&format!("/?id={token}"))?;
        ws.send_text(&format!("close {code} {reason}"))
            .ctx("send")?;
        if let Some(m) = ws.recv().ctx("recv")? {
            return Err(format!("{m:?} where the close was due"));
        }
        let cf = ws.close_frame().ok_or("no close frame recorded")?;
        ensure!(
            cf.code == Some(code) && cf.reason == reason,
            "the server closed with {code} {reason:?}, the client saw {cf:?}"
        );
        ensure!(
            matches!(ws.send_text("late"), Err(ClientError::Closed)),
            "a send after the close was not refused"
        );
        ensure!(ws.is_closed(), "not over after the server's close");
        let (seen, _) = p.close_seen(&token)?;
        ensure!(seen == code, "the client answered close {code} with {seen}");
    }
    Ok(())
}

/// A close without a code: none is reported, and none is sent back.
fn server_close_no_code(p: &Peer) -> Outcome {
    let token = p.token();
    let mut ws = p.open(&format!("/?id={token}"))?;
    ws.send_text("close none").ctx("send")?;
    if let Some(m) = ws.recv().ctx("recv")? {
        return Err(format!("{m:?} where the close was due"));
    }
    let cf = ws.close_frame().ok_or("no close frame recorded")?;
    ensure!(cf.code.is_none(), "a close without a code read as {cf:?}");
    let (seen, _) = p.close_seen(&token)?;
    // 1005: the code servers report for a close frame without one.
    ensure!(seen == 1005, "the client answered with code {seen}");
    Ok(())
}

/// The client closes with 4000: the server sees 4000 and its reason, and
/// echoes them.
fn client_close_4000(p: &Peer) -> Outcome {
    let token = p.token();
    let mut ws = p.open(&format!("/?id={token}"))?;
    ws.send_text("before close").ctx("send")?;
    ensure!(text(&mut ws)? == "before close", "echo before the close");
    let t = Instant::now();
    ws.close(4000, "done").ctx("close")?;
    let took = t.elapsed();
    let cf = ws.close_frame().ok_or("no close frame recorded")?;
    ensure!(
        cf.code == Some(4000),
        "the server answered close 4000 with {cf:?}"
    );
    ensure!(ws.is_closed(), "not over after close()");
    // The server ends TCP; close() must not sit out its close timeout.
    ensure!(
        took < Duration::from_secs(2),
        "close() took {took:?}: the server's end of TCP was missed"
    );
    ensure!(
        matches!(ws.send_text("late"), Err(ClientError::Closed)),
        "a send after close() was not refused"
    );
    let seen = p.close_seen(&token)?;
    ensure!(
        seen == (4000, "done".to_string()),
        "the server saw {seen:?}, expected (4000, \"done\")"
    );
    Ok(())
}

/// `send_close` returns at once; the rest of a message the server was
/// sending still arrives, then its close. (Messages sent after our close
/// may not be echoed: a server may answer a close at once.)
fn send_close_then_drain(p: &Peer) -> Outcome {
    let mut ws = p.open("/")?;
    let size = 4 * MIB;
    ws.send_text(&format!("big {size}")).ctx("send")?;
    let mut got = 0;
    let mut close_sent = false;
    for _ in 0..100_000 {
        let (len, zeros, last) = match ws.recv_event().ctx("recv_event")? {
            Some(Incoming::Piece(pc)) => (pc.data.len(), pc.data.iter().all(|&b| b == 0), pc.last),
            Some(Incoming::Ping(_)) => continue,
            other => return Err(format!("{other:?} after {got} bytes of {size}")),
        };
        ensure!(zeros, "the message is not all zeros");
        got += len;
        // The first piece is at most a read buffer: most of the message is
        // still on its way when the close goes out.
        if !close_sent {
            ws.send_close(4002, "drain").ctx("send_close")?;
            close_sent = true;
        }
        if last {
            break;
        }
    }
    ensure!(got == size, "{got} bytes of {size} after send_close");
    if let Some(m) = ws.recv().ctx("recv")? {
        return Err(format!("{m:?} after the message"));
    }
    let cf = ws.close_frame();
    ensure!(
        cf.and_then(|c| c.code) == Some(4002),
        "the server answered 4002 with {cf:?}"
    );
    Ok(())
}

/// A message one byte over `max_message` fails the connection with 1009,
/// which the server receives; one of exactly the limit is accepted.
fn oversize_1009(p: &Peer) -> Outcome {
    let token = p.token();
    let cfg = ClientConfig::new().max_message(MIB as u64);
    let mut ws = p.open_with(&format!("/?id={token}"), &cfg)?;
    ws.send_text(&format!("big {MIB}")).ctx("send")?;
    let got = binary(&mut ws)?;
    ensure!(got.len() == MIB, "{} bytes for {MIB}", got.len());
    ws.send_text(&format!("big {}", MIB + 1)).ctx("send")?;
    match ws.recv() {
        Err(ClientError::Protocol(e)) => {
            ensure!(
                e.close_code() == 1009,
                "failed with {}: {e}",
                e.close_code()
            )
        }
        Err(e) => return Err(format!("failed otherwise: {e}")),
        Ok(m) => return Err(format!("{m:?} where a failure was due")),
    }
    ensure!(ws.is_closed(), "not over after the failure");
    let (seen, _) = p.close_seen(&token)?;
    ensure!(seen == 1009, "the server saw close {seen}, expected 1009");
    Ok(())
}

/// The server closes as soon as the upgrade is done, its close perhaps in
/// the same packet as its response.
fn close_at_once(p: &Peer) -> Outcome {
    let token = p.token();
    let mut ws = p.open(&format!("/close-now?id={token}"))?;
    if let Some(m) = ws.recv().ctx("recv")? {
        return Err(format!("{m:?} where the close was due"));
    }
    let cf = ws.close_frame().ok_or("no close frame recorded")?;
    ensure!(
        cf.code == Some(4003) && cf.reason == "at once",
        "the client saw {cf:?}, expected 4003 \"at once\""
    );
    let (seen, _) = p.close_seen(&token)?;
    ensure!(seen == 4003, "the client answered close 4003 with {seen}");
    Ok(())
}

/// The server ends TCP without a close: an I/O error, not a clean end.
fn dropped(p: &Peer) -> Outcome {
    let mut ws = p.open("/")?;
    ws.send_text("drop").ctx("send")?;
    match ws.recv() {
        Err(ClientError::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) => {}
        Err(e) => return Err(format!("failed otherwise: {e}")),
        Ok(m) => return Err(format!("{m:?} where an error was due")),
    }
    ensure!(ws.is_closed(), "not over after the connection dropped");
    ensure!(
        matches!(ws.send_text("late"), Err(ClientError::Closed)),
        "a send after the drop was not refused"
    );
    Ok(())
}

/// A text message whose last frame is not UTF-8 fails the connection with
/// 1007, which the server receives; the valid start may be handed out.
fn invalid_utf8_1007(p: &Peer) -> Outcome {
    let token = p.token();
    let mut ws = p.open(&format!("/?id={token}"))?;
    ws.send_text("bad-utf8").ctx("send")?;
    let mut start = String::new();
    let mut failure = None;
    for _ in 0..100 {
        match ws.recv_event() {
            Ok(Some(Incoming::Piece(pc))) => {
                start.push_str(pc.text().ok_or("a binary piece")?);
                ensure!(!pc.last, "the message ended without failing: {start:?}");
            }
            Ok(other) => return Err(format!("{other:?} where a failure was due")),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    match failure {
        Some(ClientError::Protocol(e)) => {
            ensure!(
                e.close_code() == 1007,
                "failed with {}: {e}",
                e.close_code()
            )
        }
        Some(e) => return Err(format!("failed otherwise: {e}")),
        None => return Err("no failure after 100 events".into()),
    }
    ensure!(
        "valid ".starts_with(&start),
        "handed out {start:?} of a message that starts \"valid \""
    );
    let (seen, _) = p.close_seen(&token)?;
    ensure!(seen == 1007, "the server saw close {seen}, expected 1007");
    Ok(())
}

/// Reads that time out in the middle of a message leave it intact: `recv`
/// retried gives the whole message.
fn read_timeout_retry(p: &Peer) -> Outcome {
    let mut ws = p.open("/")?;
    ws.set_read_timeout(Some(Duration::from_millis(50)));
    ws.send_text("slow").ctx("send")?;
    let mut timeouts = 0;
    let mut got = None;
    for _ in 0..200 {
        match ws.recv() {
            Ok(Some(Message::Text(t))) => {
                got = Some(t.to_string());
                break;
            }
            Err(ClientError::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                timeouts += 1
            }
            Err(e) => return Err(format!("recv: {e}")),
            Ok(other) => return Err(format!("{other:?} where text was due")),
        }
    }
    ensure!(
        got.as_deref() == Some("slow message"),
        "{got:?} after {timeouts} timeouts"
    );
    ensure!(timeouts >= 1, "no read timed out within the 300 ms pause");
    ws.set_read_timeout(Some(STEP));
    ws.send_text("after").ctx("send")?;
    ensure!(text(&mut ws)? == "after", "echo after the timeouts");
    close_clean(ws, 1000)
}

fn refused_403(p: &Peer) -> Outcome {
    match Client::connect(&p.url("/refuse")) {
        Err(ClientError::Handshake(ResponseError::Status { code, body, .. })) => {
            ensure!(code == 403, "status {code}, expected 403");
            ensure!(
                body.starts_with(REFUSAL),
                "body {body:?}, expected {REFUSAL:?}"
            );
            Ok(())
        }
        Err(e) => Err(format!("failed otherwise: {e}")),
        Ok(_) => Err("the upgrade succeeded".into()),
    }
}

fn subprotocol(p: &Peer) -> Outcome {
    let offers: [(&[&str], Option<&str>); 4] = [
        (&["chat"], Some("chat")),
        (&["superchat", "chat"], Some("chat")),
        (&["other"], None),
        (&[], None),
    ];
    for (offer, want) in offers {
        let cfg = offer
            .iter()
            .fold(ClientConfig::new(), |c, s| c.subprotocol(*s));
        let mut ws = p.open_with("/", &cfg)?;
        ensure!(
            ws.protocol() == want,
            "offered {offer:?}: chose {:?}, expected {want:?}",
            ws.protocol()
        );
        ws.send_text("subprotocol").ctx("send")?;
        let theirs = text(&mut ws)?;
        ensure!(
            theirs == want.unwrap_or(""),
            "offered {offer:?}: the server says it chose {theirs:?}"
        );
        close_clean(ws, 1000)?;
    }
    Ok(())
}

/// Extra headers, the Origin and the request target reach the server as
/// given.
fn request_details(p: &Peer) -> Outcome {
    let cfg = ClientConfig::new()
        .header("X-Zerows-Test", "interop 1")
        .origin("http://127.0.0.1:8080");
    let target = "/some/path?x=1&y=%20z";
    let mut ws = p.open_with(target, &cfg)?;
    for (ask, want) in [
        ("header X-Zerows-Test", "interop 1"),
        ("header Origin", "http://127.0.0.1:8080"),
        ("path", target),
    ] {
        ws.send_text(ask).ctx("send")?;
        let got = text(&mut ws)?;
        ensure!(got == want, "{ask}: {got:?}, expected {want:?}");
    }
    close_clean(ws, 1000)
}

/// permessage-deflate offered as a browser offers it.
fn deflate_config() -> ClientConfig {
    ClientConfig::new().deflate(DeflateOffer::default())
}

/// JSON-like text: compressible, and different for every `seed`.
fn records(n: usize, seed: u32) -> String {
    (0..n)
        .map(|i| format!("{{\"id\":{i},\"seed\":{seed},\"name\":\"caf\u{e9} \u{1F600}\"}},"))
        .collect()
}

/// With permessage-deflate agreed: messages of every size and kind echo
/// whole, compressed both ways (where the server keeps its context, later
/// messages refer back into earlier ones).
fn deflate_echo(p: &Peer) -> Outcome {
    let mut ws = p.open_with("/", &deflate_config())?;
    ensure!(ws.deflate().is_some(), "permessage-deflate was not agreed");
    for round in 0..3 {
        for m in ["short", &records(20, round), &records(5_000, round)] {
            ws.send_text(m).ctx("send")?;
            same(
                text(&mut ws)?.as_bytes(),
                m.as_bytes(),
                "compressed text echo",
            )?;
        }
        // Incompressible, and very compressible: inflated in many steps.
        for m in [pattern(100_000, round), vec![round as u8; 4 * MIB]] {
            ws.send_binary(&m).ctx("send")?;
            same(&binary(&mut ws)?, &m, "compressed binary echo")?;
        }
    }
    close_clean(ws, 1000)
}

/// The greeting compressed: fragmented compressed messages with a ping
/// between frames, as pieces and whole.
fn deflate_greet(p: &Peer) -> Outcome {
    greet_events(p, &deflate_config())?;
    greet_recv(p, &deflate_config())
}

/// Asking the server for a 10-bit window and no context takeover.
fn deflate_small_window(p: &Peer) -> Outcome {
    let offer = DeflateOffer {
        server_no_context_takeover: true,
        server_max_window_bits: 10,
        ..DeflateOffer::default()
    };
    let mut ws = p.open_with("/", &ClientConfig::new().deflate(offer))?;
    let terms = ws.deflate().ok_or("permessage-deflate was not agreed")?;
    ensure!(
        !terms.server_takeover,
        "the server kept its context: {terms:?}"
    );
    for round in 0..3 {
        let m = records(3_000, round);
        ws.send_text(&m).ctx("send")?;
        same(text(&mut ws)?.as_bytes(), m.as_bytes(), "text echo")?;
    }
    close_clean(ws, 1000)
}

type Scenario = fn(&Peer) -> Outcome;

const SCENARIOS: &[(&str, Scenario)] = &[
    ("text", text_echo),
    ("binary", binary_echo),
    ("pipelined", pipelined),
    ("binary-16mib", binary_16mib),
    ("client-fragmented", client_fragmented),
    ("server-fragmented-events", server_fragmented_events),
    ("server-fragmented-recv", server_fragmented_recv),
    ("ping", ping_pong),
    ("server-close", server_close),
    ("server-close-no-code", server_close_no_code),
    ("client-close-4000", client_close_4000),
    ("send-close-drain", send_close_then_drain),
    ("close-at-once", close_at_once),
    ("dropped", dropped),
    ("oversize-1009", oversize_1009),
    ("invalid-utf8-1007", invalid_utf8_1007),
    ("read-timeout-retry", read_timeout_retry),
    ("refused-403", refused_403),
    ("subprotocol", subprotocol),
    ("request-details", request_details),
    ("deflate-echo", deflate_echo),
    ("deflate-greet", deflate_greet),
    ("deflate-small-window", deflate_small_window),
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(base) = args.next() else {
        eprintln!("usage: client_interop ws://127.0.0.1:PORT [SCENARIO...]");
        return ExitCode::from(2);
    };
    let only: Vec<String> = args.collect();
    if let Some(bad) = only
        .iter()
        .find(|n| !SCENARIOS.iter().any(|(name, _)| name == n))
    {
        eprintln!("client_interop: no scenario {bad:?}");
        return ExitCode::from(2);
    }
    let total = std::env::var("CLIENT_INTEROP_TIMEOUT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180u64);
    // A hung scenario must not hang CI: the whole run is capped.
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(total));
        eprintln!("client_interop: FAIL: the run exceeded {total} s");
        std::process::exit(2);
    });

    let peer = Peer {
        base: base.trim_end_matches('/').to_string(),
        run: format!("run{}", std::process::id()),
        tokens: AtomicU32::new(0),
    };
    let started = Instant::now();
    let mut failed = 0;
    let mut ran = 0;
    for (name, scenario) in SCENARIOS {
        if !only.is_empty() && !only.iter().any(|n| n == name) {
            continue;
        }
        ran += 1;
        let t = Instant::now();
        let outcome = scenario(&peer);
        let ms = t.elapsed().as_millis();
        match outcome {
            Ok(()) => println!("ok    {name:<26} {ms:>6} ms"),
            Err(why) => {
                failed += 1;
                println!("FAIL  {name:<26} {ms:>6} ms  {why}");
            }
        }
    }
    println!(
        "{} of {ran} scenarios passed against {base} in {} ms",
        ran - failed,
        started.elapsed().as_millis()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
