//! Benchmark 3: a whole echo conversation over an in-memory stream — N
//! masked client frames in, validated, echoed, written out.
//!
//! zerows: the real `Session` (the server's per-connection I/O shell) over
//! pooled buffers of the server's default sizes, reading from and writing
//! to `common::Mem`. tungstenite: `WebSocket::from_raw_socket(Mem, Server)`,
//! `read` each message, `write` it back, `flush` once. Both start after the
//! handshake, and both are reused across iterations, as a long-lived
//! connection is.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod common;

use common::{TungsteniteEcho, Workload, ZerowsEcho};

fn workloads() -> Vec<(String, Workload)> {
    vec![
        ("text_32B_x1000".into(), common::small_text(1000, 32)),
        (
            "binary_1KiB_x1000".into(),
            common::binary_messages(1000, 1 << 10),
        ),
        (
            "binary_16KiB_x100".into(),
            common::binary_messages(100, 16 << 10),
        ),
        (
            "fragmented_text_4KiB_in_4_x100".into(),
            common::fragmented_text(100, 4 << 10, 4),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("echo_session");
    for (label, w) in workloads() {
        common::check_same_echo(&w);
        g.throughput(Throughput::Elements(w.messages as u64));
        let mut z = ZerowsEcho::new();
        g.bench_with_input(BenchmarkId::new("zerows", &label), &w, |b, w| {
            b.iter(|| black_box(z.run(black_box(&w.wire))))
        });
        let mut t = TungsteniteEcho::new();
        g.bench_with_input(BenchmarkId::new("tungstenite", &label), &w, |b, w| {
            b.iter(|| black_box(t.run(black_box(&w.wire), w.messages)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
