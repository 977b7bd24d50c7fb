//! What the fuzz targets of the connection share: the upgrade request they
//! start with, and a reference decoder of what the client sent.

use zerows::frame::{self, opcode, Role};

pub const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost:9001\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The client's own messages and pings, up to the first frame the server
/// must refuse by its header or the first close.
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

