//! One slice through `send` against the same slice through `writev`, on a
//! loopback TCP pair: the cost of the write call alone (the reader drains
//! in bulk, outside the timed part). Not a Criterion bench: run as
//!
//! ```text
//! taskset -c 1 cargo bench --bench write_call -- [size]
//! ```
//!
//! (default 34 B, a 32 B echo with its header). The two are interleaved, 8
//! rounds of 200 batches each; prints the median and min–max ns per write.
//! Why the echo's single-slice writes use `send` (src/io/session/wire.rs).

use std::io::{IoSlice, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn main() {
    let size: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(34);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut b, _) = l.accept().unwrap();
    a.set_nodelay(true).unwrap();
    let msg = vec![0x42u8; size];
    let mut buf = vec![0u8; 1 << 20];
    // A batch stays well inside the socket buffers, so no write waits.
    let batch = (64 << 10) / size.max(1);
    let batch = batch.clamp(1, 500);
    let mut results: [(&str, Vec<f64>); 2] = [("writev", vec![]), ("send", vec![])];
    for _round in 0..8 {
        for (mode, per) in results.iter_mut() {
            let mut spent = Duration::ZERO;
            for _ in 0..200 {
                let t = Instant::now();
                for _ in 0..batch {
                    let mut off = 0;
                    while off < msg.len() {
                        off += match *mode {
                            "writev" => a.write_vectored(&[IoSlice::new(&msg[off..])]),
                            _ => a.write(&msg[off..]),
                        }
                        .unwrap();
                    }
                }
                spent += t.elapsed();
                let mut got = 0;
                while got < batch * size {
                    got += b.read(&mut buf).unwrap();
                }
            }
            per.push(spent.as_nanos() as f64 / (200 * batch) as f64);
        }
    }
    for (mode, per) in results.iter_mut() {
        per.sort_by(|x, y| x.total_cmp(y));
        println!(
            "{size} B {mode}: median {:.0} ns per write ({:.0}–{:.0})",
            per[per.len() / 2],
            per[0],
            per[per.len() - 1]
        );
    }
}
