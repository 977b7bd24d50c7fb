//! The offer line for each option; every rule of a response, one case
//! each; and round trips through the server's side for a range of offers
//! and server configurations.

use super::*;
use crate::proto::deflate::negotiate::RESPONSE_LEN;
use crate::proto::deflate::{negotiate, write_response, DeflateConfig};

const DEFAULT: DeflateOffer = DeflateOffer {
    server_no_context_takeover: false,
    server_max_window_bits: 15,
    threshold: 128,
};

fn offer(server_no_context_takeover: bool, server_max_window_bits: u8) -> DeflateOffer {
    DeflateOffer {
        server_no_context_takeover,
        server_max_window_bits,
        ..DEFAULT
    }
}

fn line(o: &DeflateOffer) -> String {
    let mut out = b"keep".to_vec();
    write_offer(&mut out, o);
    let s = String::from_utf8(out).unwrap();
    s.strip_prefix("keep")
        .expect("appends, keeping what was there")
        .to_owned()
}

fn acc(values: &[&str], o: &DeflateOffer) -> Result<Option<ClientTerms>, ExtensionError> {
    accept(values.iter().map(|v| v.as_bytes()), o)
}

fn one(value: &str) -> Result<Option<ClientTerms>, ExtensionError> {
    acc(&[value], &DEFAULT)
}

fn terms(server_takeover: bool, client_window: u8) -> Result<Option<ClientTerms>, ExtensionError> {
    Ok(Some(ClientTerms {
        server_takeover,
        client_window,
    }))
}

const BASE: &str = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; \
                    client_no_context_takeover";

#[test]
fn default_offer() {
    assert_eq!(DeflateOffer::default(), DEFAULT);
    assert_eq!(line(&DEFAULT), format!("{BASE}\r\n"));
}

#[test]
fn offer_asks_for_server_no_context_takeover() {
    assert_eq!(
        line(&offer(true, 15)),
        format!("{BASE}; server_no_context_takeover\r\n")
    );
}

#[test]
fn offer_asks_for_a_server_window_below_15_only() {
    for (bits, said) in [
        (14, "; server_max_window_bits=14"),
        (10, "; server_max_window_bits=10"),
        (9, "; server_max_window_bits=9"),
        // Outside 9..=15: the nearest bound.
        (8, "; server_max_window_bits=9"),
        (0, "; server_max_window_bits=9"),
        (15, ""),
        (16, ""),
        (255, ""),
    ] {
        assert_eq!(
            line(&offer(false, bits)),
            format!("{BASE}{said}\r\n"),
            "{bits}"
        );
    }
    assert_eq!(
        line(&offer(true, 12)),
        format!("{BASE}; server_no_context_takeover; server_max_window_bits=12\r\n")
    );
}

#[test]
fn offer_line_is_one_header_our_server_accepts() {
    let mut out = Vec::new();
    write_offer(&mut out, &offer(true, 11));
    out.extend_from_slice(b"\r\n");
    let mut parsed = [httparse::EMPTY_HEADER; 2];
    let Ok(httparse::Status::Complete((n, [h]))) = httparse::parse_headers(&out, &mut parsed)
    else {
        panic!("not one header: {out:?}");
    };
    assert_eq!(n, out.len());
    let a = negotiate(&[*h], &DeflateConfig::default()).expect("accepted");
    assert_eq!(a.server_window, 11);
    assert!(a.client_no_context_takeover);
}

#[test]
fn no_element_is_a_decline() {
    assert_eq!(acc(&[], &DEFAULT), Ok(None));
    assert_eq!(acc(&[""], &DEFAULT), Ok(None));
    assert_eq!(acc(&[" , ,\t", ""], &DEFAULT), Ok(None));
    // Even when the offer asked for more: declining is always allowed.
    assert_eq!(acc(&[], &offer(true, 9)), Ok(None));
}

#[test]
fn plain_accept() {
    assert_eq!(one("permessage-deflate"), terms(true, 15));
}

#[test]
fn every_parameter() {
    assert_eq!(
        one("permessage-deflate; server_no_context_takeover"),
        terms(false, 15)
    );
    // The client never keeps its context: nothing changes.
    assert_eq!(
        one("permessage-deflate; client_no_context_takeover"),
        terms(true, 15)
    );
    // Unasked, a server window is allowed, any in range.
    for b in 8..=15 {
        assert_eq!(
            one(&format!("permessage-deflate; server_max_window_bits={b}")),
            terms(true, 15)
        );
    }
    for b in 8..=15 {
        assert_eq!(
            one(&format!("permessage-deflate; client_max_window_bits={b}")),
            terms(true, b)
        );
    }
    assert_eq!(
        one(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=9"
        ),
        terms(false, 9)
    );
    // Parameters in any order.
    assert_eq!(
        one(
            "permessage-deflate; client_max_window_bits=12; server_max_window_bits=10; \
             client_no_context_takeover; server_no_context_takeover"
        ),
        terms(false, 12)
    );
}

#[test]
fn asked_server_no_context_takeover_must_be_granted() {
    let o = offer(true, 15);
    assert_eq!(
        acc(&["permessage-deflate; server_no_context_takeover"], &o),
        terms(false, 15)
    );
    assert_eq!(
        acc(&["permessage-deflate"], &o),
        Err(ExtensionError::ServerContextKept)
    );
    assert_eq!(
        acc(&["permessage-deflate; client_no_context_takeover"], &o),
        Err(ExtensionError::ServerContextKept)
    );
}

#[test]
fn asked_server_window_must_be_granted_at_most_as_asked() {
    let o = offer(false, 10);
    for b in 8..=10 {
        assert_eq!(
            acc(
                &[&format!("permessage-deflate; server_max_window_bits={b}")],
                &o
            ),
            terms(true, 15),
            "{b}"
        );
    }
    for b in 11..=15 {
        assert_eq!(
            acc(
                &[&format!("permessage-deflate; server_max_window_bits={b}")],
                &o
            ),
            Err(ExtensionError::ServerWindow),
            "{b}"
        );
    }
    assert_eq!(
        acc(&["permessage-deflate"], &o),
        Err(ExtensionError::ServerWindow)
    );
    // An offer of 8 is sent as 9, and judged as what was sent.
    let eight = offer(false, 8);
    assert_eq!(
        acc(&["permessage-deflate; server_max_window_bits=9"], &eight),
        terms(true, 15)
    );
    // 15 is not asked: nothing needs granting.
    assert_eq!(
        acc(&["permessage-deflate"], &offer(false, 15)),
        terms(true, 15)
    );
    assert_eq!(
        acc(&["permessage-deflate"], &offer(false, 99)),
        terms(true, 15)
    );
}

#[test]
fn other_extensions_are_refused() {
    use ExtensionError::Unoffered;
    assert_eq!(one("x-webkit-deflate-frame"), Err(Unoffered));
    assert_eq!(one("permessage-deflate, foo"), Err(Unoffered));
    assert_eq!(one("foo, permessage-deflate"), Err(Unoffered));
    assert_eq!(one("permessage-deflate-x"), Err(Unoffered));
    assert_eq!(
        acc(&["permessage-deflate", "foo; bar=1"], &DEFAULT),
        Err(Unoffered)
    );
}

#[test]
fn permessage_deflate_twice_is_refused() {
    use ExtensionError::Twice;
    assert_eq!(one("permessage-deflate, permessage-deflate"), Err(Twice));
    assert_eq!(
        one("permessage-deflate; client_max_window_bits=10, permessage-deflate"),
        Err(Twice)
    );
    assert_eq!(
        acc(&["permessage-deflate", "permessage-deflate"], &DEFAULT),
        Err(Twice)
    );
    assert_eq!(
        acc(&["permessage-deflate", ",", "PERMESSAGE-DEFLATE"], &DEFAULT),
        Err(Twice)
    );
}

#[test]
fn unknown_parameters_are_refused() {
    use ExtensionError::UnknownParameter;
    for bad in [
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_max_window",
        "permessage-deflate; server_no_context_takeover; x",
    ] {
        assert_eq!(one(bad), Err(UnknownParameter), "{bad}");
    }
}

#[test]
fn repeated_parameters_are_refused() {
    for (bad, name) in [
        (
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "server_no_context_takeover",
        ),
        (
            "permessage-deflate; client_no_context_takeover; CLIENT_NO_CONTEXT_TAKEOVER",
            "client_no_context_takeover",
        ),
        (
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "server_max_window_bits",
        ),
        (
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits=9",
            "client_max_window_bits",
        ),
    ] {
        assert_eq!(
            one(bad),
            Err(ExtensionError::RepeatedParameter(name)),
            "{bad}"
        );
    }
}

#[test]
fn bad_values_are_refused() {
    for (bad, name) in [
        // An extra value.
        (
            "permessage-deflate; server_no_context_takeover=1",
            "server_no_context_takeover",
        ),
        (
            "permessage-deflate; client_no_context_takeover=\"x\"",
            "client_no_context_takeover",
        ),
        // A missing one: a response must give the window.
        (
            "permessage-deflate; server_max_window_bits",
            "server_max_window_bits",
        ),
        (
            "permessage-deflate; client_max_window_bits",
            "client_max_window_bits",
        ),
        // Out of range, a leading zero, not a number.
        (
            "permessage-deflate; server_max_window_bits=7",
            "server_max_window_bits",
        ),
        (
            "permessage-deflate; server_max_window_bits=16",
            "server_max_window_bits",
        ),
        (
            "permessage-deflate; server_max_window_bits=08",
            "server_max_window_bits",
        ),
        (
            "permessage-deflate; client_max_window_bits=010",
            "client_max_window_bits",
        ),
        (
            "permessage-deflate; client_max_window_bits=0",
            "client_max_window_bits",
        ),
        (
            "permessage-deflate; client_max_window_bits=255",
            "client_max_window_bits",
        ),
        (
            "permessage-deflate; client_max_window_bits=a",
            "client_max_window_bits",
        ),
        (
            "permessage-deflate; client_max_window_bits=-9",
            "client_max_window_bits",
        ),
        // Quoted, but not a token once unescaped.
        (
            "permessage-deflate; client_max_window_bits=\"1 0\"",
            "client_max_window_bits",
        ),
        (
            "permessage-deflate; client_max_window_bits=\"\"",
            "client_max_window_bits",
        ),
        (
            "permessage-deflate; server_max_window_bits=\"9,\"",
            "server_max_window_bits",
        ),
    ] {
        assert_eq!(one(bad), Err(ExtensionError::BadValue(name)), "{bad}");
    }
}

#[test]
fn malformed_lists_are_refused() {
    use ExtensionError::Malformed;
    for bad in [
        "permessage-deflate; client_max_window_bits=\"10",
        "permessage-deflate; client_max_window_bits=\"10\\\"",
        "permessage-deflate server_no_context_takeover",
        "permessage-deflate;",
        "permessage-deflate; ; server_no_context_takeover",
        "permessage-deflate; =10",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits=;",
        "permessage-deflate; server_max_window_bits=10 11",
        "permessage-deflate; server_max_window_bits=\"10\"x",
        ";permessage-deflate",
        "\"permessage-deflate\"",
        "permessage-deflate/1",
    ] {
        assert_eq!(one(bad), Err(Malformed), "{bad}");
    }
    // An unterminated quoted-string in a later header line still counts.
    assert_eq!(
        acc(&["permessage-deflate", "x; y=\"open"], &DEFAULT),
        Err(Malformed)
    );
}

#[test]
fn quoted_values() {
    assert_eq!(
        one("permessage-deflate; client_max_window_bits=\"12\""),
        terms(true, 12)
    );
    // A quoted-pair stands for its character.
    assert_eq!(
        one("permessage-deflate; client_max_window_bits=\"1\\2\""),
        terms(true, 12)
    );
    assert_eq!(
        acc(
            &["permessage-deflate; server_max_window_bits=\"9\""],
            &offer(false, 9)
        ),
        terms(true, 15)
    );
}

#[test]
fn several_header_lines_are_one_list() {
    assert_eq!(
        acc(
            &["", "permessage-deflate; client_max_window_bits=10"],
            &DEFAULT
        ),
        terms(true, 10)
    );
    assert_eq!(acc(&["permessage-deflate", " "], &DEFAULT), terms(true, 15));
    assert_eq!(
        acc(&[",", " permessage-deflate ,"], &DEFAULT),
        terms(true, 15)
    );
}

#[test]
fn whitespace_is_tolerated() {
    assert_eq!(
        one("  permessage-deflate ;  client_max_window_bits = 12 ;server_no_context_takeover  "),
        terms(false, 12)
    );
    assert_eq!(
        one("\tpermessage-deflate\t;\tclient_max_window_bits\t=\t\"11\"\t"),
        terms(true, 11)
    );
    assert_eq!(one(" , permessage-deflate , "), terms(true, 15));
}

#[test]
fn names_are_case_insensitive() {
    assert_eq!(
        one("PerMessage-Deflate; Server_No_Context_Takeover; CLIENT_MAX_WINDOW_BITS=9"),
        terms(false, 9)
    );
    assert_eq!(
        acc(
            &["PERMESSAGE-DEFLATE; SERVER_MAX_WINDOW_BITS=10; SERVER_NO_CONTEXT_TAKEOVER"],
            &offer(true, 10)
        ),
        terms(false, 15)
    );
}

#[test]
fn compress_window_is_at_least_9() {
    for w in 8..=15 {
        let t = ClientTerms {
            server_takeover: false,
            client_window: w,
        };
        assert_eq!(t.compress_window(), w.max(9));
    }
}

#[test]
fn errors_say_which_rule() {
    use ExtensionError::*;
    let all = [
        Malformed,
        Unoffered,
        Twice,
        UnknownParameter,
        RepeatedParameter("server_max_window_bits"),
        BadValue("client_max_window_bits"),
        ServerContextKept,
        ServerWindow,
    ];
    let shown: Vec<String> = all.iter().map(|e| e.to_string()).collect();
    for (i, s) in shown.iter().enumerate() {
        assert!(!s.is_empty());
        assert!(!shown[..i].contains(s), "{s}");
    }
    assert!(shown[4].contains("server_max_window_bits"));
    assert!(shown[5].contains("client_max_window_bits"));
}

/// The server's response line to `o` under `cfg`, as a header value, and
/// what the server agreed.
fn server_answer(
    o: &DeflateOffer,
    cfg: &DeflateConfig,
) -> (Vec<u8>, crate::proto::deflate::Agreed) {
    let mut request = Vec::new();
    write_offer(&mut request, o);
    request.extend_from_slice(b"\r\n");
    let mut parsed = [httparse::EMPTY_HEADER; 2];
    let Ok(httparse::Status::Complete((_, headers))) =
        httparse::parse_headers(&request, &mut parsed)
    else {
        panic!("offer is not a header: {request:?}");
    };
    let a = negotiate(headers, cfg).expect("a well-formed offer is always honoured");
    let mut out = [0u8; RESPONSE_LEN];
    let n = write_response(&a, &mut out);
    let mut head = out[..n].to_vec();
    head.extend_from_slice(b"\r\n");
    let mut parsed = [httparse::EMPTY_HEADER; 2];
    let Ok(httparse::Status::Complete((_, [h]))) = httparse::parse_headers(&head, &mut parsed)
    else {
        panic!("response is not one header: {head:?}");
    };
    (h.value.to_vec(), a)
}

#[test]
fn round_trip_with_the_server() {
    let mut seen_windows = [false; 16];
    for server_nct in [false, true] {
        for asked in [0, 8, 9, 10, 12, 14, 15, 16] {
            let o = offer(server_nct, asked);
            for server_max in 9..=15 {
                for client_max in 9..=15 {
                    for client_context_takeover in [false, true] {
                        let cfg = DeflateConfig {
                            server_max_window_bits: server_max,
                            client_max_window_bits: client_max,
                            client_context_takeover,
                            ..DeflateConfig::default()
                        };
                        let (value, a) = server_answer(&o, &cfg);
                        let got = accept([value.as_slice()].into_iter(), &o);
                        let t = got
                            .unwrap_or_else(|e| panic!("{o:?} {cfg:?}: {e}"))
                            .expect("accepted");
                        assert_eq!(t.client_window, a.client_window, "{o:?} {cfg:?}");
                        // Our server never keeps its context.
                        assert!(!t.server_takeover, "{o:?} {cfg:?}");
                        // We always said we drop ours.
                        assert!(a.client_no_context_takeover, "{o:?} {cfg:?}");
                        assert!(
                            a.server_window <= o.server_max_window_bits.clamp(9, 15),
                            "{o:?} {cfg:?}"
                        );
                        seen_windows[usize::from(t.client_window)] = true;
                    }
                }
            }
        }
    }
    // The server limited the client's window, to every size it may.
    assert!(seen_windows[9..=15].iter().all(|&s| s), "{seen_windows:?}");
}
