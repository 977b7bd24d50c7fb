//! A fixed workload for instruction counting under callgrind (see
//! benches/tools/callgrind.sh), chosen by arguments:
//!
//! ```text
//! callgrind-<hash> <zerows|tungstenite> <workload> <reps>
//! ```
//!
//! Workloads: `frame16`, `frame125`, `frame1k` (benchmark 1, one frame per
//! rep) and `text32`, `binary1k`, `fragmented` (benchmark 3, a batch of
//! messages per rep, the same batches as `benches/echo_session.rs`), and
//! `received32`: the `text32` batch answered with "Received: " and each
//! message by a service that collects it whole (tungstenite: read, format,
//! write); `json1k`, `json16k` (100 messages of JSON-like text per rep)
//! and, zerows only, `deflate1k`, `deflate16k`: the same messages
//! compressed by the client and echoed as they came. Prints
//! the number of messages processed. The script runs each workload at two
//! rep counts and divides the difference, so setup (building the input,
//! the handshake) cancels out.
//!
//! Run by `cargo bench` without arguments it only checks that every
//! workload runs, so that it stays buildable and correct.

use std::hint::black_box;

mod common;

/// Messages processed by `reps` repetitions of `workload` on `imp`.
fn run(imp: &str, workload: &str, reps: usize) -> usize {
    let frame_size = match workload {
        "frame16" => Some(16),
        "frame125" => Some(125),
        "frame1k" => Some(1 << 10),
        _ => None,
    };
    if let Some(size) = frame_size {
        let (wire, hl) = common::one_frame(size);
        let mut buf = wire.clone();
        let mut echo = [0u8; 14];
        for _ in 0..reps {
            buf[..hl].copy_from_slice(&wire[..hl]);
            match imp {
                "zerows" => black_box(common::zerows_frame(black_box(&mut buf))),
                "tungstenite" => {
                    black_box(common::tungstenite_frame(black_box(&mut buf), &mut echo))
                }
                _ => panic!("unknown implementation {imp}"),
            };
        }
        return reps;
    }
    // JSON-like text echoed plain, or compressed by the client and echoed
    // as it came (inflated on the way to check it).
    let json = match workload {
        "json1k" => Some((1 << 10, false)),
        "json16k" => Some((16 << 10, false)),
        "deflate1k" => Some((1 << 10, true)),
        "deflate16k" => Some((16 << 10, true)),
        _ => None,
    };
    if let Some((size, deflate)) = json {
        let w = common::json_messages(100, size, deflate);
        match imp {
            "zerows" => {
                let mut z = if deflate {
                    common::ZerowsEcho::with_deflate(zerows::Echo)
                } else {
                    common::ZerowsEcho::new()
                };
                for _ in 0..reps {
                    black_box(z.run(black_box(&w.wire)));
                }
            }
            // tungstenite has no permessage-deflate (0.30).
            "tungstenite" if !deflate => {
                let mut t = common::TungsteniteEcho::new();
                for _ in 0..reps {
                    black_box(t.run(black_box(&w.wire), w.messages));
                }
            }
            _ => panic!("{imp} cannot run {workload}"),
        }
        return reps * w.messages;
    }
    if workload == "received32" {
        let w = common::small_text(1000, 32);
        match imp {
            "zerows" => {
                let mut z = common::ZerowsSession::with(common::Received);
                for _ in 0..reps {
                    black_box(z.run(black_box(&w.wire)));
                }
            }
            "tungstenite" => {
                let mut t = common::TungsteniteEcho::new();
                for _ in 0..reps {
                    black_box(t.run_received(black_box(&w.wire), w.messages));
                }
            }
            _ => panic!("unknown implementation {imp}"),
        }
        return reps * w.messages;
    }
    let w = match workload {
        "text32" => common::small_text(1000, 32),
        "binary1k" => common::binary_messages(1000, 1 << 10),
        "fragmented" => common::fragmented_text(100, 4 << 10, 4),
        _ => panic!("unknown workload {workload}"),
    };
    match imp {
        "zerows" => {
            let mut z = common::ZerowsEcho::new();
            for _ in 0..reps {
                black_box(z.run(black_box(&w.wire)));
            }
        }
        "tungstenite" => {
            let mut t = common::TungsteniteEcho::new();
            for _ in 0..reps {
                black_box(t.run(black_box(&w.wire), w.messages));
            }
        }
        _ => panic!("unknown implementation {imp}"),
    }
    reps * w.messages
}

fn main() {
    // `cargo bench` passes its own flags (and Criterion's, with values such
    // as `--warm-up-time 1`), so a workload is run only when the first
    // argument names an implementation; anything else is the self-check.
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [imp, workload, reps, ..] if imp == "zerows" || imp == "tungstenite" => {
            let reps: usize = reps.parse().expect("reps is a number");
            println!("messages={}", run(imp, workload, reps));
        }
        _ => {
            for imp in ["zerows", "tungstenite"] {
                for w in [
                    "frame16",
                    "frame125",
                    "frame1k",
                    "text32",
                    "binary1k",
                    "fragmented",
                    "received32",
                    "json1k",
                    "json16k",
                ] {
                    run(imp, w, 2);
                }
            }
            for w in ["deflate1k", "deflate16k"] {
                run("zerows", w, 2);
            }
            println!("callgrind workloads: ok (run benches/tools/callgrind.sh to count)");
        }
    }
}
