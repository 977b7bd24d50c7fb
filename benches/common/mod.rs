//! Workloads shared by the Criterion benches and the callgrind driver, so
//! that the wall-clock and the instruction-count figures measure the same
//! code on the same bytes.
//!
//! Every zerows/tungstenite pair here gets identical input bytes and the
//! same in-memory stream type, so the difference is the library's work.

// Each bench target uses a different subset.
#![allow(dead_code)]

use std::io::{self, Cursor, IoSlice, Read, Write};

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::{Role as TRole, WebSocket};
use tungstenite::Message as TMessage;
use zerows::buffer::Pool;
use zerows::frame::{self, opcode, Role};
use zerows::mask;
use zerows::session::{Progress, Session, Shared, Transport};
use zerows::{Context, Echo, Message, Request, Service};

/// The masking key of every client frame (fixed so runs are repeatable).
pub const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame, appended to `out`.
pub fn push_client_frame(out: &mut Vec<u8>, fin: bool, op: u8, payload: &[u8]) {
    let mut h = [0u8; frame::MAX_HEADER];
    let n = frame::encode(&mut h, fin, op, payload.len() as u64, Some(KEY));
    out.extend_from_slice(&h[..n]);
    let at = out.len();
    out.extend_from_slice(payload);
    mask::apply(&mut out[at..], KEY, 0);
}

/// `len` bytes of valid UTF-8 mixing 1- to 4-byte code points; the tail is
/// padded with ASCII so the length is exact and the text stays valid.
pub fn multilingual(len: usize) -> Vec<u8> {
    const SAMPLE: &str = "zerø-cöpy ✓ Καλημέρα κόσμε 日本語のテキスト 🦀 Привет ";
    let mut v = Vec::with_capacity(len);
    for c in SAMPLE.chars().cycle() {
        let mut b = [0u8; 4];
        let s = c.encode_utf8(&mut b).as_bytes();
        if v.len() + s.len() > len {
            break;
        }
        v.extend_from_slice(s);
    }
    v.resize(len, b'.');
    v
}

/// `len` bytes of printable ASCII.
pub fn ascii(len: usize) -> Vec<u8> {
    (0..len).map(|i| b' ' + (i * 7 % 95) as u8).collect()
}

/// `len` bytes of arbitrary binary.
pub fn binary(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

// ---------------------------------------------------------------------
// 1. One frame: parse the header, unmask in place, make the echo header.
// ---------------------------------------------------------------------

/// One masked binary frame of `len` bytes, and its header length.
pub fn one_frame(len: usize) -> (Vec<u8>, usize) {
    let mut v = Vec::new();
    push_client_frame(&mut v, true, opcode::BINARY, &binary(len));
    let hl = frame::header_len(len as u64, true);
    (v, hl)
}

/// zerows: decode, unmask in place, lay the echo header over the tail of
/// the client header. Returns where the echo frame starts.
///
/// The echo header overwrites the client header, so the caller restores
/// the header bytes before the next call; unmasking twice restores the
/// payload by itself (XOR), and costs the same either way.
#[inline]
pub fn zerows_frame(buf: &mut [u8]) -> usize {
    let h = frame::decode(buf, Role::FromClient)
        .expect("valid frame")
        .expect("whole header");
    let key = h.mask.expect("client frames are masked");
    let p = h.header_len;
    let end = p + h.len as usize;
    mask::apply(&mut buf[p..end], key, 0);
    frame::encode_before(buf, p, h.fin, h.opcode, h.len)
}

/// tungstenite: `FrameHeader::parse` over a cursor, unmask in place, and
/// `FrameHeader::format` of the echo header into a stack buffer.
///
/// tungstenite 0.30 has no public unmasking function (its `apply_mask` sits
/// in a private module and runs only inside `WebSocket::read`), so the
/// payload is unmasked by [`xor_u32_words`], the same technique (aligned
/// 32-bit words, bytes at the ends) as tungstenite's own. Returns the echo
/// header's length.
#[inline]
pub fn tungstenite_frame(buf: &mut [u8], echo_hdr: &mut [u8; 14]) -> usize {
    let mut cur = Cursor::new(&*buf);
    let (hdr, len) = FrameHeader::parse(&mut cur)
        .expect("valid frame")
        .expect("whole header");
    let p = cur.position() as usize;
    let key = hdr.mask.expect("client frames are masked");
    xor_u32_words(&mut buf[p..p + len as usize], key);
    let echo = FrameHeader {
        is_final: hdr.is_final,
        opcode: hdr.opcode,
        mask: None,
        ..FrameHeader::default()
    };
    let mut out = Cursor::new(&mut echo_hdr[..]);
    echo.format(len, &mut out)
        .expect("14 bytes hold any header");
    out.position() as usize
}

/// XOR with the key 32 bits at a time over the 4-byte-aligned middle of
/// `buf`, byte by byte at both ends; the key is rotated by the length of
/// the unaligned head so it lines up with the words.
pub fn xor_u32_words(buf: &mut [u8], key: [u8; 4]) {
    let head = buf.as_ptr().align_offset(4).min(buf.len());
    let (a, rest) = buf.split_at_mut(head);
    for (i, b) in a.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
    let mut k = key;
    k.rotate_left(head & 3);
    let kw = u32::from_ne_bytes(k);
    let mut words = rest.chunks_exact_mut(4);
    for w in &mut words {
        let v = u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) ^ kw;
        w.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= k[i & 3];
    }
}

// ---------------------------------------------------------------------
// 2. The opening handshake.
// ---------------------------------------------------------------------

/// What Chrome sends to open a WebSocket from a page, cookies included.
pub const BROWSER_REQUEST: &[u8] = b"GET /chat?room=lobby HTTP/1.1\r\n\
Host: example.com:9001\r\n\
Connection: Upgrade\r\n\
Pragma: no-cache\r\n\
Cache-Control: no-cache\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36\r\n\
Upgrade: websocket\r\n\
Origin: https://example.com:9001\r\n\
Sec-WebSocket-Version: 13\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en-US;q=0.9,en;q=0.8,fr;q=0.7\r\n\
Cookie: session=6f1c2a9e0b7d4e3f8a5c1d2e3f4a5b6c; theme=dark; _ga=GA1.1.1234567890.1731234567; consent=yes\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
\r\n";

/// The handshake config that accepts [`BROWSER_REQUEST`].
pub fn handshake_config() -> zerows::handshake::HandshakeConfig {
    zerows::handshake::HandshakeConfig {
        path: "/chat".into(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------
// 3. A whole echo session over an in-memory stream.
// ---------------------------------------------------------------------

/// An in-memory socket: reads hand out `input` (as much as asked, like a
/// socket with all the bytes already received), then `WouldBlock`; writes
/// append to `output` and never block. Both libraries get the same one.
#[derive(Default)]
pub struct Mem {
    pub input: Vec<u8>,
    pub pos: usize,
    pub output: Vec<u8>,
}

impl Mem {
    /// Start over with `wire` as the bytes to read; the buffers keep their
    /// capacity, so this allocates only on the first call.
    pub fn reset(&mut self, wire: &[u8]) {
        self.input.clear();
        self.input.extend_from_slice(wire);
        self.pos = 0;
        self.output.clear();
    }

    pub fn drained(&self) -> bool {
        self.pos == self.input.len()
    }
}

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[self.pos..];
        if rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for b in bufs {
            self.output.extend_from_slice(b);
            n += b.len();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transport for Mem {
    fn shutdown_write(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A session workload: the client's bytes and how many messages they hold.
pub struct Workload {
    pub name: &'static str,
    pub wire: Vec<u8>,
    pub messages: usize,
    /// Payload bytes of all messages.
    pub payload: usize,
}

/// `count` text messages of `size` bytes, one frame each.
pub fn small_text(count: usize, size: usize) -> Workload {
    let msg = ascii(size);
    let mut wire = Vec::new();
    for _ in 0..count {
        push_client_frame(&mut wire, true, opcode::TEXT, &msg);
    }
    Workload {
        name: "text",
        wire,
        messages: count,
        payload: count * size,
    }
}

/// `len` bytes of JSON-like text (objects with ids, names, timestamps and
/// flags under repeated keys), the kind of payload compression is for.
pub fn json(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 128);
    v.push(b'[');
    let mut i = 0u64;
    while v.len() < len {
        let rec = format!(
            "{{\"id\":{},\"user\":\"user-{}\",\"ts\":{},\"active\":{},\"score\":{}.{}}},",
            1_000_000 + i * 7,
            i % 97,
            1_764_000_000_000u64 + i * 1_337,
            i % 3 == 0,
            i * 31 % 1000,
            i % 10
        );
        v.extend_from_slice(rec.as_bytes());
        i += 1;
    }
    v.truncate(len);
    v
}

/// `count` text messages of `size` bytes of [`json`], one frame each,
/// compressed as a client without context takeover sends them (zlib
/// level 6, RSV1) when `deflate`, plain otherwise.
pub fn json_messages(count: usize, size: usize, deflate: bool) -> Workload {
    let msg = json(size);
    let packed = deflate.then(|| {
        use flate2::{Compress, Compression, FlushCompress};
        let mut z = Compress::new(Compression::new(6), false);
        let mut out = Vec::with_capacity(size + 64);
        z.compress_vec(&msg, &mut out, FlushCompress::Sync).unwrap();
        out.truncate(out.len() - 4);
        out
    });
    let mut wire = Vec::new();
    for _ in 0..count {
        match &packed {
            Some(p) => {
                let at = wire.len();
                push_client_frame(&mut wire, true, opcode::TEXT, p);
                wire[at] |= frame::RSV1;
            }
            None => push_client_frame(&mut wire, true, opcode::TEXT, &msg),
        }
    }
    Workload {
        name: if deflate { "json-deflate" } else { "json" },
        wire,
        messages: count,
        payload: count * size,
    }
}

/// `count` binary messages of `size` bytes, one frame each.
pub fn binary_messages(count: usize, size: usize) -> Workload {
    let msg = binary(size);
    let mut wire = Vec::new();
    for _ in 0..count {
        push_client_frame(&mut wire, true, opcode::BINARY, &msg);
    }
    Workload {
        name: "binary",
        wire,
        messages: count,
        payload: count * size,
    }
}

/// `count` multilingual text messages of `size` bytes, each sent as
/// `pieces` frames; the cuts fall inside code points on purpose, which a
/// validator must carry across frames.
pub fn fragmented_text(count: usize, size: usize, pieces: usize) -> Workload {
    let msg = multilingual(size);
    let step = size.div_ceil(pieces);
    let mut wire = Vec::new();
    for _ in 0..count {
        let mut at = 0;
        let mut first = true;
        while at < size {
            let end = (at + step).min(size);
            let op = if first {
                opcode::TEXT
            } else {
                opcode::CONTINUATION
            };
            push_client_frame(&mut wire, end == size, op, &msg[at..end]);
            first = false;
            at = end;
        }
    }
    Workload {
        name: "fragmented",
        wire,
        messages: count,
        payload: count * size,
    }
}

/// The zerows session as the server runs it: `Session` over pooled
/// buffers of the server's default sizes, handshake already done, with the
/// echo service or another stateless one.
pub struct ZerowsSession<S: Service<State = ()> = Echo> {
    session: Session<()>,
    shared: Shared<S>,
    pub io: Mem,
}

/// The echo service on a session.
pub type ZerowsEcho = ZerowsSession<Echo>;

/// Answers every text message with "Received: " and the message, sent
/// from two parts (no copy into a buffer of the service's own).
pub struct Received;

impl Service for Received {
    type State = ();
    fn open(&mut self, _req: &Request<'_>, _cx: &mut Context<'_>) {}
    fn whole(&mut self, _st: &mut (), msg: Message<'_>, cx: &mut Context<'_>) {
        if let Message::Text(t) = msg {
            let _ = cx.send_text_parts(&["Received: ", t]);
        }
    }
}

impl ZerowsEcho {
    pub fn new() -> ZerowsEcho {
        ZerowsSession::with(Echo)
    }
}

impl<S: Service<State = ()>> ZerowsSession<S> {
    pub fn with(service: S) -> ZerowsSession<S> {
        Self::with_offer(service, "")
    }

    /// A session whose client offered permessage-deflate as browsers do.
    pub fn with_deflate(service: S) -> ZerowsSession<S> {
        let z = Self::with_offer(
            service,
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        );
        assert!(
            z.io.output.windows(18).any(|w| w == b"permessage-deflate"),
            "deflate not negotiated"
        );
        z
    }

    fn with_offer(service: S, offer: &str) -> ZerowsSession<S> {
        let cfg = zerows::server::Config::default();
        let shared = Shared::new(
            cfg.settings.clone(),
            Pool::new(cfg.read_buffer, 4, 1),
            Pool::new(cfg.write_buffer, 4, 1),
            cfg.max_backlog,
            service,
        );
        let mut z = ZerowsSession {
            // The loop's clock, whatever its unit: the session is new now.
            session: Session::new(shared.now, &shared.settings, zerows::ConnId::new(0, 0)),
            shared,
            io: Mem::default(),
        };
        let request = format!(
            "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        z.io.reset(request.as_bytes());
        z.pump();
        assert!(z.io.output.starts_with(b"HTTP/1.1 101"), "upgrade refused");
        z
    }

    /// Feed `wire` and run the session until it has read all of it.
    /// Returns the bytes written back.
    #[inline]
    pub fn run(&mut self, wire: &[u8]) -> usize {
        self.io.reset(wire);
        self.pump();
        self.io.output.len()
    }

    fn pump(&mut self) {
        // A read takes at most one read buffer (64 KiB), so any workload
        // here is drained in far fewer rounds than this bound.
        for _ in 0..1_000_000 {
            let p = self.session.on_readable(&mut self.io, &mut self.shared, 16);
            assert_ne!(p, Progress::Done, "session ended");
            if self.io.drained() && p == Progress::Idle {
                return;
            }
        }
        panic!("session did not drain its input");
    }
}

impl Default for ZerowsEcho {
    fn default() -> Self {
        Self::new()
    }
}

/// tungstenite's server role over the same stream, after the handshake:
/// read each message, write it back, flush once at the end.
pub struct TungsteniteEcho {
    ws: WebSocket<Mem>,
}

impl TungsteniteEcho {
    pub fn new() -> TungsteniteEcho {
        TungsteniteEcho {
            ws: WebSocket::from_raw_socket(Mem::default(), TRole::Server, None),
        }
    }

    /// Feed `wire` holding `messages` messages and echo them all. Returns
    /// the bytes written back.
    #[inline]
    pub fn run(&mut self, wire: &[u8], messages: usize) -> usize {
        self.ws.get_mut().reset(wire);
        for _ in 0..messages {
            let m = self.ws.read().expect("a message");
            self.ws.write(m).expect("buffered");
        }
        self.ws.flush().expect("flushed");
        self.ws.get_ref().output.len()
    }

    /// Feed `wire` holding `messages` text messages and answer each with
    /// "Received: " and the message, as a tungstenite user writes it.
    #[inline]
    pub fn run_received(&mut self, wire: &[u8], messages: usize) -> usize {
        self.ws.get_mut().reset(wire);
        for _ in 0..messages {
            if let TMessage::Text(t) = self.ws.read().expect("a message") {
                let reply = format!("Received: {}", t.as_str());
                self.ws.write(TMessage::text(reply)).expect("buffered");
            }
        }
        self.ws.flush().expect("flushed");
        self.ws.get_ref().output.len()
    }

    pub fn output(&self) -> &[u8] {
        &self.ws.get_ref().output
    }
}

impl Default for TungsteniteEcho {
    fn default() -> Self {
        Self::new()
    }
}

/// The data messages in a server's byte stream (frames joined), to check
/// both servers echo the same payloads.
pub fn server_messages(mut wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut cur: Option<(u8, Vec<u8>)> = None;
    while let Ok(Some(h)) = frame::decode(wire, Role::FromServer) {
        let end = h.header_len + h.len as usize;
        let p = &wire[h.header_len..end];
        match (&mut cur, h.opcode) {
            (Some((_, v)), opcode::CONTINUATION) => v.extend_from_slice(p),
            (None, op) if !opcode::is_control(op) => cur = Some((op, p.to_vec())),
            _ => panic!("unexpected frame {h:?}"),
        }
        if h.fin {
            out.extend(cur.take());
        }
        wire = &wire[end..];
    }
    assert!(wire.is_empty(), "trailing bytes");
    out
}

/// Check that both servers echo `w` with the same messages, and that they
/// are the ones sent.
pub fn check_same_echo(w: &Workload) {
    let mut z = ZerowsEcho::new();
    z.run(&w.wire);
    let mut t = TungsteniteEcho::new();
    t.run(&w.wire, w.messages);
    let zm = server_messages(&z.io.output);
    let tm = server_messages(t.output());
    assert_eq!(zm.len(), w.messages, "{}: zerows message count", w.name);
    assert!(zm == tm, "{}: zerows and tungstenite differ", w.name);
    let total: usize = zm.iter().map(|(_, p)| p.len()).sum();
    assert_eq!(total, w.payload, "{}: payload bytes", w.name);
}
