//! Benchmark 1: one client frame — parse the header, unmask the payload in
//! place, produce the echo header — zerows against tungstenite on the same
//! bytes. See `common::zerows_frame` and `common::tungstenite_frame` for
//! exactly what each side does.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod common;

const SIZES: [(usize, &str); 5] = [
    (16, "16B"),
    (125, "125B"),
    (1 << 10, "1KiB"),
    (16 << 10, "16KiB"),
    (1 << 20, "1MiB"),
];

fn frame_decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame_decode");
    for (size, label) in SIZES {
        let (wire, hl) = common::one_frame(size);
        g.throughput(Throughput::Bytes(size as u64));
        // Interleaved per size (zerows, then tungstenite) so that both see
        // the same machine load as closely as a shared box allows.
        let mut buf = wire.clone();
        g.bench_with_input(BenchmarkId::new("zerows", label), &size, |b, _| {
            b.iter(|| {
                // The echo header overwrote the tail of the client header.
                buf[..hl].copy_from_slice(&wire[..hl]);
                black_box(common::zerows_frame(black_box(&mut buf)))
            })
        });
        let mut buf = wire.clone();
        let mut echo = [0u8; 14];
        g.bench_with_input(BenchmarkId::new("tungstenite", label), &size, |b, _| {
            b.iter(|| {
                // Same restore as above, so both loops do the same copy.
                buf[..hl].copy_from_slice(&wire[..hl]);
                black_box(common::tungstenite_frame(black_box(&mut buf), &mut echo))
            })
        });
    }
    g.finish();
}

/// The two implementations must agree before their speed means anything.
fn check() {
    for (size, _) in SIZES {
        let (wire, hl) = common::one_frame(size);
        let mut a = wire.clone();
        let start = common::zerows_frame(&mut a);
        let mut b = wire.clone();
        let mut echo = [0u8; 14];
        let n = common::tungstenite_frame(&mut b, &mut echo);
        assert_eq!(&a[start..hl], &echo[..n], "echo headers differ at {size}");
        assert_eq!(a[hl..], b[hl..], "unmasked payloads differ at {size}");
        assert_eq!(a[hl..], common::binary(size)[..]);
    }
}

fn all(c: &mut Criterion) {
    check();
    frame_decode(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
