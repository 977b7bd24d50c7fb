//! Benchmark 2: the opening handshake, sans I/O — parse a Chrome-like
//! upgrade request and write the 101 response into a buffer.
//!
//! zerows: `scan_head` (find and bound the head) + `parse` +
//! `write_upgrade_response`. tungstenite: `Request::try_parse` (its
//! handshake machine's parser: httparse into an `http::Request`) +
//! `create_response` + `write_response` — exactly what its server
//! handshake runs between reading the bytes and writing them, without the
//! stream plumbing of `tungstenite::accept`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{create_response, write_response, Request};
use zerows::handshake::{self, Outcome, RESPONSE_BUF};

mod common;

fn zerows_handshake(req: &[u8], cfg: &handshake::HandshakeConfig, out: &mut [u8]) -> usize {
    let end = handshake::scan_head(req, 0, cfg)
        .expect("within limits")
        .expect("complete head");
    match handshake::parse(&req[..end], cfg).expect("valid upgrade") {
        Outcome::Upgrade {
            accept,
            protocol,
            deflate,
        } => {
            let p = protocol.map(|i| cfg.subprotocols[i].as_str());
            handshake::write_upgrade_response(out, &accept, p, deflate.as_ref())
        }
        _ => unreachable!("an upgrade request"),
    }
}

fn tungstenite_handshake(req: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let (_, request) = Request::try_parse(req)
        .expect("valid request")
        .expect("complete head");
    let response = create_response(&request).expect("valid upgrade");
    write_response(&mut *out, &response).expect("written");
    out.len()
}

fn bench(c: &mut Criterion) {
    let req = common::BROWSER_REQUEST;
    let cfg = common::handshake_config();
    let mut zout = [0u8; RESPONSE_BUF];
    let mut tout = Vec::with_capacity(RESPONSE_BUF);

    // Both must accept the request with the same key.
    let n = zerows_handshake(req, &cfg, &mut zout);
    let m = tungstenite_handshake(req, &mut tout);
    let accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    assert!(std::str::from_utf8(&zout[..n]).unwrap().contains(accept));
    assert!(std::str::from_utf8(&tout[..m]).unwrap().contains(accept));

    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    g.bench_function("zerows", |b| {
        b.iter(|| zerows_handshake(black_box(req), &cfg, &mut zout))
    });
    g.bench_function("tungstenite", |b| {
        b.iter(|| tungstenite_handshake(black_box(req), &mut tout))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
