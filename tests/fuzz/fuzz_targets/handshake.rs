//! Arbitrary bytes as a request head, fed the way `Conn` feeds them.
//!
//! Input: byte 0 picks the configuration and how many split sizes follow
//! (its low 3 bits); those bytes are the sizes of the pieces the head
//! arrives in (cycled); the rest is the head.
//!
//! Invariants: nothing panics; the resumable `find_header_end` (and
//! `scan_head`) agree with a naive one-shot search whatever the pieces;
//! `parse` of a found head never panics, and an accepted upgrade gives a
//! well-formed 101 response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerows::error::HandshakeError;
use zerows::handshake::{
    find_header_end, parse, scan_head, write_upgrade_response, HandshakeConfig, Outcome,
    RESPONSE_BUF,
};

fn naive(buf: &[u8]) -> Option<usize> {
    (0..buf.len().saturating_sub(3))
        .find(|&i| &buf[i..i + 4] == b"\r\n\r\n")
        .map(|i| i + 4)
}

fn config(sel: u8) -> HandshakeConfig {
    let mut c = HandshakeConfig::default();
    c.max_header_bytes = [8192, 4, 64, 200][(sel >> 3 & 3) as usize];
    if sel & 0x20 != 0 {
        c.subprotocols = vec!["chat".into(), "superchat".into(), "x".repeat(200), "".into()];
    }
    if sel & 0x40 != 0 {
        c.allowed_origins = vec!["http://example.com".into(), "*".into()];
    } else {
        c.allowed_origins = vec!["https://a.b".into()];
    }
    if sel & 0x80 != 0 {
        c.path = "/ws".into();
        c.metrics_path = None;
        c.health_path = Some("/".into());
    }
    c
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let nsplit = (sel & 7) as usize;
    let (splits, buf) = rest.split_at(nsplit.min(rest.len()));
    let cfg = config(sel);

    // One shot.
    let expect = naive(buf);
    assert_eq!(find_header_end(buf, 0), expect, "one-shot");
    // Any `scanned` up to a point without a terminator resumes correctly.
    for scanned in [1, 2, 3, 4, 5, buf.len() / 2, buf.len()] {
        let scanned = scanned.min(buf.len());
        if naive(&buf[..scanned]).is_none() {
            assert_eq!(find_header_end(buf, scanned), expect, "resume at {scanned}");
        }
    }

    // Piecewise, as `Conn::handshake` does: remember the length searched.
    let mut scanned = 0;
    let mut upto = 0;
    let mut i = 0;
    let mut found = None;
    let mut scan_err = None;
    while upto < buf.len() {
        let step = splits.get(i % splits.len().max(1)).map_or(buf.len(), |&b| b as usize + 1);
        i += 1;
        upto = (upto + step).min(buf.len());
        let prefix = &buf[..upto];
        let r = find_header_end(prefix, scanned);
        assert_eq!(r, naive(prefix), "piecewise at {upto} (scanned {scanned})");
        if scan_err.is_none() {
            match scan_head(prefix, scanned, &cfg) {
                Ok(Some(e)) => {
                    assert_eq!(Some(e), r);
                    assert!(e <= cfg.max_header_bytes);
                }
                Ok(None) => {
                    assert!(r.is_none());
                    assert!(prefix.len() < cfg.max_header_bytes);
                }
                Err(e) => {
                    assert_eq!(e, HandshakeError::TooLarge);
                    assert!(r.map_or(prefix.len() >= cfg.max_header_bytes, |e| e > cfg.max_header_bytes));
                    scan_err = Some(e);
                }
            }
        }
        if r.is_some() {
            found = r;
            break;
        }
        scanned = upto;
    }
    assert_eq!(found, expect, "piecewise result");

    // Parse what the core would parse: exactly the head, nothing after it.
    if let Some(end) = expect {
        check_parse(&buf[..end], &cfg);
    }
    // And whatever else: parse must refuse, never panic.
    let _ = parse(buf, &cfg);
});

fn check_parse(head: &[u8], cfg: &HandshakeConfig) {
    match parse(head, cfg) {
        Ok(Outcome::Upgrade {
            accept,
            protocol,
            deflate,
        }) => {
            assert!(accept
                .iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/' || c == b'='));
            let proto = protocol.map(|i| cfg.subprotocols[i].as_str());
            if let Some(p) = proto {
                assert!(!p.is_empty() && p.len() <= zerows::handshake::MAX_PROTOCOL_LEN);
            }
            let mut out = [0u8; RESPONSE_BUF];
            if let Some(a) = &deflate {
                assert!((8..=15).contains(&a.client_window) && (8..=15).contains(&a.server_window));
            }
            let n = write_upgrade_response(&mut out, &accept, proto, deflate.as_ref());
            let resp = &out[..n];
            assert!(resp.starts_with(b"HTTP/1.1 101 "));
            assert_eq!(naive(resp), Some(n), "response head well terminated");
        }
        Ok(_) => {
            // Page, metrics, health or a plain 404: only for a GET (after the empty
            // lines RFC 7230 §3.5 lets a server skip).
            let line = &head[head.iter().position(|&c| c != b'\r' && c != b'\n').unwrap_or(0)..];
            assert!(line.starts_with(b"GET "), "not a GET");
        }
        Err(e) => {
            let mut out = [0u8; RESPONSE_BUF];
            let n = zerows::http::write_error_response(&mut out, e);
            assert!(n > 0 && naive(&out[..n]).is_some_and(|k| k <= n));
        }
    }
}
