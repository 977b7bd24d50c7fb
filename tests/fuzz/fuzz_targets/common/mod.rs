//! What the fuzz targets of the connection share: the upgrade request they
//! start with, and a reference decoder of what the client sent.

use zerows::frame::{self, opcode, Role};

pub const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost:9001\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The client's own messages and pings, up to the first frame the server
/// must refuse by its header or the first close (no extension: `model`
/// is the fuller reference).
#[allow(dead_code)]
pub fn reference(mut input: &[u8]) -> (Vec<(u8, Vec<u8>)>, Vec<Vec<u8>>) {
    let mut msgs = Vec::new();
    let mut pings = Vec::new();
    let mut cur: Option<(u8, Vec<u8>)> = None;
    while let Ok(Some(h)) = frame::decode(input, Role::FromClient) {
        let total = h.header_len as u64 + h.len;
        if (input.len() as u64) < total {
            break;
        }
        let mut p = input[h.header_len..total as usize].to_vec();
        zerows::mask::apply(&mut p, h.mask.unwrap(), 0);
        input = &input[total as usize..];
        match h.opcode {
            opcode::PING => pings.push(p),
            opcode::PONG => {}
            opcode::CLOSE => break,
            opcode::CONTINUATION => match cur.as_mut() {
                Some((_, d)) => d.extend_from_slice(&p),
                None => break,
            },
            op => {
                if cur.is_some() {
                    break;
                }
                cur = Some((op, p));
            }
        }
        if h.fin && !opcode::is_control(h.opcode) {
            msgs.push(cur.take().unwrap());
        }
    }
    (msgs, pings)
}

/// The upgrade request, offering permessage-deflate with `offer` as the
/// value of `Sec-WebSocket-Extensions`.
#[allow(dead_code)]
pub fn request_offering(offer: &str) -> Vec<u8> {
    let mut r = REQUEST[..REQUEST.len() - 2].to_vec();
    r.extend_from_slice(b"Sec-WebSocket-Extensions: ");
    r.extend_from_slice(offer.as_bytes());
    r.extend_from_slice(b"\r\n\r\n");
    r
}

/// Inflated bytes one step of the server's inflater may hand on at once,
/// and so how close two faults of a compressed message must be for either
/// to be the one it reports (the size limit is checked before the text of
/// a step, and a broken stream drops the rest of its step unchecked).
#[allow(dead_code)]
pub const STEP_MARGIN: usize = zerows::deflate::INFLATE_STEP + 8;

/// A reference inflater for one compressed message (RFC 7692 §7.2.2): the
/// frames' payloads as they come, then the 4-byte tail unless a final
/// block already ended the stream. Keeps at most `cap` bytes of output.
#[allow(dead_code)]
pub struct RefInflater {
    z: flate2::Decompress,
    pub out: Vec<u8>,
    cap: usize,
    /// Output stopped at `cap`; whatever follows is unknown.
    pub capped: bool,
    /// A final block ended the stream.
    ended: bool,
    /// Not a deflate stream, or bytes after its final block.
    pub broken: bool,
}

#[allow(dead_code)]
impl RefInflater {
    pub fn new(cap: usize) -> RefInflater {
        RefInflater {
            z: flate2::Decompress::new(false),
            out: Vec::new(),
            cap,
            capped: false,
            ended: false,
            broken: false,
        }
    }

    pub fn feed(&mut self, mut input: &[u8]) {
        // A call that fills its output may have more behind it, even with
        // all the input taken (a long match half copied).
        let mut full = false;
        while !(self.broken || self.capped) {
            if self.ended {
                self.broken = !input.is_empty();
                return;
            }
            if input.is_empty() && !full {
                return;
            }
            if self.out.len() >= self.cap {
                self.capped = true;
                return;
            }
            self.out.reserve((self.cap - self.out.len()).min(64 << 10));
            let spare = self.out.capacity() - self.out.len();
            let (in0, out0) = (self.z.total_in(), self.z.total_out());
            let r = self
                .z
                .decompress_vec(input, &mut self.out, flate2::FlushDecompress::None);
            let used = (self.z.total_in() - in0) as usize;
            let made = (self.z.total_out() - out0) as usize;
            input = &input[used..];
            full = made == spare;
            match r {
                Err(_) => self.broken = true,
                Ok(flate2::Status::StreamEnd) => self.ended = true,
                // Input it will not take: never so for a valid stream.
                Ok(_) if used == 0 && made == 0 && !input.is_empty() => self.broken = true,
                Ok(_) => {}
            }
        }
    }

    /// The message's last frame is in: the tail.
    pub fn finish(&mut self) {
        if !self.ended {
            self.feed(&zerows::deflate::TAIL);
        }
    }
}

/// How the client's bytes must end the conversation.
#[allow(dead_code)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Nothing in them is at fault: the connection stays open.
    Open,
    /// A whole close frame: the server leaves `Open` (answering it, or
    /// failing on its payload).
    Closed,
    /// A fault: the server fails with one of these codes (two where the
    /// inflater's step decides which of two faults it meets first).
    Fault(Vec<u16>),
    /// A fault inside the part of an unfinished compressed frame that has
    /// arrived: the server fails with one of these codes, or is still
    /// waiting for the rest of the chunk that holds it.
    Maybe(Vec<u16>),
}

/// What the client sent, as a server that follows RFC 6455 and RFC 7692
/// must take it.
#[allow(dead_code)]
#[derive(Debug)]
pub struct Sent {
    /// Whole messages (inflated), in order, up to the end.
    pub msgs: Vec<(u8, Vec<u8>)>,
    /// Per message: its compressed payload (frames concatenated), if it
    /// came compressed.
    pub packed: Vec<Option<Vec<u8>>>,
    pub pings: Vec<Vec<u8>>,
    pub end: End,
    /// The message under way at the end: its bytes so far (inflated, at
    /// most `cap`) and its compressed payload so far, if compressed.
    pub open: Option<(Vec<u8>, Option<Vec<u8>>)>,
}

struct Open {
    op: u8,
    data: Vec<u8>,
    wire: u64,
    z: Option<(RefInflater, Vec<u8>)>,
}

/// Faults of a compressed message so far: the codes the server may close
/// with, or none.
fn judge(z: &RefInflater, text: bool, limit: u64, last: bool) -> Vec<u16> {
    // Output bytes the server must have made to see each fault.
    let mut faults: Vec<(usize, u16)> = Vec::new();
    if z.out.len() as u64 > limit {
        faults.push((limit as usize + 1, 1009));
    }
    if text {
        if let Err(e) = std::str::from_utf8(&z.out) {
            match e.error_len() {
                Some(n) => faults.push((e.valid_up_to() + n, 1007)),
                None if last && !z.broken && !z.capped => faults.push((z.out.len() + 1, 1007)),
                None => {}
            }
        }
    }
    if z.broken {
        faults.push((z.out.len(), 1007));
    }
    let Some(first) = faults.iter().map(|f| f.0).min() else {
        return Vec::new();
    };
    let mut codes: Vec<u16> = faults
        .iter()
        .filter(|f| f.0 <= first + STEP_MARGIN)
        .map(|f| f.1)
        .collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// The reference model of a conversation after the upgrade: `deflate`
/// says whether permessage-deflate was agreed (with a 15-bit window and no
/// context takeover, so every compressed message is a stream of its own).
/// Its own checks of RSV bits, sequencing, size (a compressed message may
/// take `max + max / 8 + 1024` bytes on the wire, its inflated size is
/// what `max_message` limits), UTF-8 (failing as soon as no continuation
/// could make the text valid) and deflate; `frame::decode` for the rest of
/// the header rules.
#[allow(dead_code)]
pub fn model(mut input: &[u8], deflate: bool, max_message: u64) -> Sent {
    let cap = max_message as usize + 2 * STEP_MARGIN;
    let mut sent = Sent {
        msgs: Vec::new(),
        packed: Vec::new(),
        pings: Vec::new(),
        end: End::Open,
        open: None,
    };
    let mut cur: Option<Open> = None;
    let end = loop {
        let Some(&b0) = input.first() else {
            break End::Open;
        };
        let op = b0 & 0x0F;
        let rsv1 = b0 & 0x40 != 0;
        if b0 & 0x30 != 0
            || (rsv1 && (!deflate || op == opcode::CONTINUATION || opcode::is_control(op)))
        {
            break End::Fault(vec![1002]);
        }
        let mut head = input[..input.len().min(14)].to_vec();
        head[0] &= !0x40;
        let h = match frame::decode(&head, Role::FromClient) {
            Ok(Some(h)) => h,
            Ok(None) => break End::Open,
            Err(_) => break End::Fault(vec![1002]),
        };
        let hl = h.header_len;
        let key = h.mask.unwrap();
        if opcode::is_control(op) {
            let total = hl + h.len as usize;
            if input.len() < total {
                break End::Open;
            }
            let mut p = input[hl..total].to_vec();
            zerows::mask::apply(&mut p, key, 0);
            input = &input[total..];
            match op {
                opcode::PING => sent.pings.push(p),
                opcode::CLOSE => break End::Closed,
                _ => {}
            }
            continue;
        }
        // A continuation exactly when a message is open.
        if (op == opcode::CONTINUATION) != cur.is_some() {
            break End::Fault(vec![1002]);
        }
        let (wire, packed) = match &cur {
            Some(c) => (c.wire + h.len, c.z.is_some()),
            None => (h.len, rsv1),
        };
        let limit = if packed {
            max_message + max_message / 8 + 1024
        } else {
            max_message
        };
        if wire > limit {
            break End::Fault(vec![1009]);
        }
        let c = cur.get_or_insert_with(|| Open {
            op,
            data: Vec::new(),
            wire: 0,
            z: rsv1.then(|| (RefInflater::new(cap), Vec::new())),
        });
        c.wire = wire;
        let avail = (input.len() - hl).min(h.len as usize);
        let whole = avail as u64 == h.len;
        let last = whole && h.fin;
        let mut p = input[hl..hl + avail].to_vec();
        zerows::mask::apply(&mut p, key, 0);
        let text = c.op == opcode::TEXT;
        if let Some((z, raw)) = c.z.as_mut() {
            raw.extend_from_slice(&p);
            z.feed(&p);
            if last {
                z.finish();
            }
            let codes = judge(z, text, max_message, last);
            if !codes.is_empty() {
                break if whole {
                    End::Fault(codes)
                } else {
                    End::Maybe(codes)
                };
            }
        } else {
            c.data.extend_from_slice(&p);
            if text {
                if let Err(e) = std::str::from_utf8(&c.data) {
                    if e.error_len().is_some() || last {
                        break End::Fault(vec![1007]);
                    }
                }
            }
        }
        if !whole {
            break End::Open;
        }
        input = &input[hl + avail..];
        if h.fin {
            let c = cur.take().unwrap();
            match c.z {
                Some((z, raw)) => {
                    sent.msgs.push((c.op, z.out));
                    sent.packed.push(Some(raw));
                }
                None => {
                    sent.msgs.push((c.op, c.data));
                    sent.packed.push(None);
                }
            }
        }
    };
    sent.end = end;
    sent.open = cur.map(|c| match c.z {
        Some((z, raw)) => (z.out, Some(raw)),
        None => (c.data, None),
    });
    sent
}
