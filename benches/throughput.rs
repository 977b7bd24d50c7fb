//! Benchmarks 4 and 5: raw throughput of the two per-byte loops of the
//! echo path, each against the std baseline it should come close to.
//!
//! 4. UTF-8 validation: `zerows::utf8::complete_prefix` against
//!    `std::str::from_utf8` on the same ASCII and multilingual text.
//! 5. Unmasking: `zerows::mask::apply` (in place) against a plain
//!    `copy_from_slice` of the same size, the cheapest pass over the bytes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use zerows::mask;

mod common;

fn utf8(c: &mut Criterion) {
    let mut g = c.benchmark_group("utf8");
    let texts = [
        ("ascii", common::ascii(64 << 10)),
        ("multilingual", common::multilingual(64 << 10)),
    ];
    for (label, text) in &texts {
        assert_eq!(zerows::utf8::complete_prefix(text), Ok(text.len()));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_with_input(BenchmarkId::new("zerows", label), text, |b, t| {
            b.iter(|| zerows::utf8::complete_prefix(black_box(t)))
        });
        g.bench_with_input(BenchmarkId::new("std", label), text, |b, t| {
            b.iter(|| std::str::from_utf8(black_box(t)).is_ok())
        });
    }
    g.finish();
}

fn unmask(c: &mut Criterion) {
    let mut g = c.benchmark_group("unmask");
    let sizes = [
        (16, "16B"),
        (125, "125B"),
        (1 << 10, "1KiB"),
        (16 << 10, "16KiB"),
        (1 << 20, "1MiB"),
    ];
    for (size, label) in sizes {
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = common::binary(size);
        g.bench_with_input(BenchmarkId::new("mask_apply", label), &size, |b, _| {
            b.iter(|| mask::apply(black_box(&mut buf), common::KEY, 0))
        });
        let src = common::binary(size);
        let mut dst = vec![0u8; size];
        g.bench_with_input(BenchmarkId::new("copy", label), &size, |b, _| {
            b.iter(|| black_box(&mut dst).copy_from_slice(black_box(&src)))
        });
    }
    g.finish();
}

criterion_group!(benches, utf8, unmask);
criterion_main!(benches);
