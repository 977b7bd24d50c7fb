//! Every case writes its response and compares it with the expected line;
//! every answer is also checked for consistency with its response and the
//! configuration (`check_consistent`), which the properties run on random
//! input.

use super::*;

/// Default configuration: windows 15, no client context takeover.
const DEFAULT: DeflateConfig = DeflateConfig {
    enabled: true,
    server_max_window_bits: 15,
    client_max_window_bits: 15,
    client_context_takeover: false,
    level: 1,
    threshold: 128,
};

/// Both sides drop their context, both windows 15: what most offers get.
const PLAIN: &str = "; server_no_context_takeover; client_no_context_takeover";

fn headers<'a>(values: &[&'a [u8]]) -> Vec<httparse::Header<'a>> {
    values
        .iter()
        .map(|v| httparse::Header {
            name: "Sec-WebSocket-Extensions",
            value: v,
        })
        .collect()
}

/// The response line for `a`, checked against `cfg`.
fn response(a: &Agreed, cfg: &DeflateConfig) -> String {
    check_consistent(a, cfg);
    let mut out = [0u8; RESPONSE_LEN];
    let n = write_response(a, &mut out);
    String::from_utf8(out[..n].to_vec()).unwrap()
}

/// Negotiates the headers `values` under `cfg`: the agreement as
/// (client_no_context_takeover, client_window, server_window) and the
/// parameters of the response line after `permessage-deflate`.
fn answer_with(cfg: &DeflateConfig, values: &[&str]) -> Option<(bool, u8, u8, String)> {
    let bytes: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
    let a = negotiate(&headers(&bytes), cfg)?;
    let line = response(&a, cfg);
    let params = line
        .strip_prefix("Sec-WebSocket-Extensions: permessage-deflate")
        .and_then(|l| l.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    let got = (
        a.client_no_context_takeover,
        a.client_window,
        a.server_window,
        params.to_owned(),
    );
    Some(got)
}

fn answer(value: &str) -> Option<(bool, u8, u8, String)> {
    answer_with(&DEFAULT, &[value])
}

fn agreed(nct: bool, client: u8, server: u8, params: &str) -> Option<(bool, u8, u8, String)> {
    Some((nct, client, server, params.to_owned()))
}

/// What a response must satisfy, whatever the offer: windows in range and
/// within the configuration, the line well-formed and saying exactly what
/// `a` records, and acceptable again as an offer.
fn check_consistent(a: &Agreed, cfg: &DeflateConfig) {
    assert!((8..=15).contains(&a.client_window), "{a:?}");
    assert!((8..=15).contains(&a.server_window), "{a:?}");
    assert!(
        a.server_window <= config_bits(cfg.server_max_window_bits),
        "{a:?}"
    );
    let w = super::super::Terms::from(a).compress_window();
    assert!(w >= 9 && w >= a.server_window, "{a:?}");
    if !cfg.client_context_takeover {
        assert!(a.client_no_context_takeover, "{a:?}");
    }
    if !a.client_no_context_takeover {
        // A kept context is never larger than configured.
        assert!(
            a.client_window <= config_bits(cfg.client_max_window_bits),
            "{a:?}"
        );
    }
    assert_eq!(
        a.echo_as_is(),
        a.client_no_context_takeover && a.client_window <= a.server_window
    );

    let mut out = [0xAAu8; RESPONSE_LEN + 8];
    let n = write_response(a, &mut out);
    assert!(n <= RESPONSE_LEN);
    assert!(out[n..].iter().all(|&b| b == 0xAA), "wrote past its count");
    let line = &out[..n];
    let mut parsed = [httparse::EMPTY_HEADER; 2];
    let head = [line, b"\r\n"].concat();
    let Ok(httparse::Status::Complete((_, [h]))) = httparse::parse_headers(&head, &mut parsed)
    else {
        panic!("not one header: {line:?}");
    };
    assert_eq!(h.name, "Sec-WebSocket-Extensions");
    let value = std::str::from_utf8(h.value).unwrap();
    let mut params = value.split("; ");
    assert_eq!(params.next(), Some("permessage-deflate"));
    let (mut server_nct, mut client_nct) = (false, false);
    let (mut server_bits, mut client_bits) = (None, None);
    for p in params {
        match p.split_once('=') {
            None if p == "server_no_context_takeover" => server_nct = true,
            None if p == "client_no_context_takeover" => client_nct = true,
            Some(("server_max_window_bits", v)) => server_bits = Some(v.parse::<u8>().unwrap()),
            Some(("client_max_window_bits", v)) => client_bits = Some(v.parse::<u8>().unwrap()),
            _ => panic!("unexpected parameter {p:?} in {value:?}"),
        }
    }
    assert!(server_nct, "server context takeover in {value:?}");
    assert_eq!(client_nct, a.client_no_context_takeover, "{value:?}");
    assert_eq!(server_bits.unwrap_or(15), a.server_window, "{value:?}");
    if let Some(c) = client_bits {
        assert_eq!(c, a.client_window, "{value:?}");
    }
    // Every parameter of a response is also valid in an offer.
    assert!(
        negotiate(&headers(&[h.value]), &DEFAULT).is_some(),
        "{value:?}"
    );
}

// --- browsers ----------------------------------------------------------------

#[test]
fn chrome_firefox_safari() {
    // Chrome (and Edge, Opera).
    let chrome = "permessage-deflate; client_max_window_bits";
    assert_eq!(answer(chrome), agreed(true, 15, 15, PLAIN));
    // Firefox, and Safari since 15 (NSURLSession's WebSocket).
    assert_eq!(answer("permessage-deflate"), agreed(true, 15, 15, PLAIN));
    // Safari before 15: only its own frame-based extension, never answered.
    assert_eq!(answer("x-webkit-deflate-frame"), None);
}

#[test]
fn response_example_of_the_brief() {
    let a = negotiate(&headers(&[b"permessage-deflate"]), &DEFAULT).unwrap();
    assert_eq!(
        response(&a, &DEFAULT),
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
         client_no_context_takeover\r\n"
    );
    assert!(a.echo_as_is());
}

// --- Autobahn case 13 ------------------------------------------------------

#[test]
fn autobahn_case_13_offers() {
    let base = "permessage-deflate; client_max_window_bits";
    let nct = format!("{base}; server_no_context_takeover");
    let bits9 = format!("{base}; server_max_window_bits=9");
    let bits15 = format!("{base}; server_max_window_bits=15");
    let nct9 = format!("{nct}; server_max_window_bits=9");
    let nct15 = format!("{nct}; server_max_window_bits=15");
    let three = format!("{nct9}, {nct}, {base}");
    let small = format!("{PLAIN}; server_max_window_bits=9; client_max_window_bits=9");
    let said15 = format!("{PLAIN}; server_max_window_bits=15");
    assert_eq!(answer(base), agreed(true, 15, 15, PLAIN));
    assert_eq!(answer(&nct), agreed(true, 15, 15, PLAIN));
    assert_eq!(answer(&bits9), agreed(true, 9, 9, &small));
    assert_eq!(answer(&bits15), agreed(true, 15, 15, &said15));
    assert_eq!(answer(&nct9), agreed(true, 9, 9, &small));
    assert_eq!(answer(&nct15), agreed(true, 15, 15, &said15));
    assert_eq!(answer(&three), agreed(true, 9, 9, &small));
}

#[test]
fn autobahn_offers_with_client_no_context_takeover_and_8_bits() {
    // Autobahn's PerMessageDeflateOffer() also says client_no_context_takeover
    // (acceptNoContextTakeover defaults to true), and older test suites ask
    // for 8 bits: we compress with 9 then, and ask the client for 9.
    let offer = "permessage-deflate; client_no_context_takeover; client_max_window_bits; \
                 server_no_context_takeover; server_max_window_bits=8";
    let params = format!("{PLAIN}; server_max_window_bits=8; client_max_window_bits=9");
    assert_eq!(answer(offer), agreed(true, 9, 8, &params));
    let a = negotiate(&headers(&[offer.as_bytes()]), &DEFAULT).unwrap();
    assert_eq!(super::super::Terms::from(&a).compress_window(), 9);
    assert!(
        !a.echo_as_is(),
        "a 9-bit message may not fit an 8-bit inflater"
    );
}

// --- window bits -------------------------------------------------------------

#[test]
fn server_max_window_bits_8_to_15() {
    for n in 8..=15u8 {
        let offer = format!("permessage-deflate; server_max_window_bits={n}");
        let params = format!("{PLAIN}; server_max_window_bits={n}");
        assert_eq!(answer(&offer), agreed(true, 15, n, &params), "{n}");
        // Offered client_max_window_bits: the client's window follows ours,
        // never below 9.
        let offer = format!("{offer}; client_max_window_bits");
        let c = n.max(9);
        let params = if c < 15 {
            format!("{params}; client_max_window_bits={c}")
        } else {
            params
        };
        assert_eq!(answer(&offer), agreed(true, c, n, &params), "{n}");
    }
}

#[test]
fn invalid_window_values_are_declined() {
    for v in [
        "=7", "=16", "=08", "=0", "=1", "=", "", "=\"\"", "=-9", "=+9", "=9.0", "=0x9", "=9 9",
        "=9a", "=\"1 0\"", "=\"10 \"", "=150", "=\"9",
    ] {
        for p in ["server_max_window_bits", "client_max_window_bits"] {
            if p == "client_max_window_bits" && v.is_empty() {
                continue; // valid without a value
            }
            let offer = format!("permessage-deflate; {p}{v}");
            assert_eq!(answer(&offer), None, "{offer:?}");
        }
    }
}

#[test]
fn client_max_window_bits_with_and_without_value() {
    let offer = "permessage-deflate; client_max_window_bits";
    assert_eq!(answer(offer), agreed(true, 15, 15, PLAIN));
    // A value binds the client already: nothing to say.
    for n in 8..=15 {
        let offer = format!("permessage-deflate; client_max_window_bits={n}");
        assert_eq!(answer(&offer), agreed(true, n, 15, PLAIN), "{n}");
    }
}

#[test]
fn quoted_values() {
    let q = "permessage-deflate; client_max_window_bits=\"10\"";
    assert_eq!(answer(q), agreed(true, 10, 15, PLAIN));
    let escaped = r#"permessage-deflate; server_max_window_bits="1\2""#;
    let params = format!("{PLAIN}; server_max_window_bits=12");
    assert_eq!(answer(escaped), agreed(true, 15, 12, &params));
    let q9 = "permessage-deflate; server_max_window_bits=\"9\"";
    let params = format!("{PLAIN}; server_max_window_bits=9");
    assert_eq!(answer(q9), agreed(true, 15, 9, &params));
    for bad in [r#""1 0""#, r#""""#, r#""1,0""#, r#""1;0""#, r#""1\"""#] {
        let offer = format!("permessage-deflate; client_max_window_bits={bad}");
        assert_eq!(answer(&offer), None, "{offer:?}");
    }
}

// --- parameters --------------------------------------------------------------

#[test]
fn duplicates_are_declined() {
    for p in [
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits=10",
        "client_max_window_bits",
        "client_max_window_bits=10",
    ] {
        let once = format!("permessage-deflate; {p}");
        assert!(answer(&once).is_some(), "{once:?}");
        let twice = format!("{once}; {}", p.to_ascii_uppercase());
        assert_eq!(answer(&twice), None, "{twice:?}");
    }
    let mixed = "permessage-deflate; client_max_window_bits; client_max_window_bits=10";
    assert_eq!(answer(mixed), None);
}

#[test]
fn unknown_parameters_and_values_on_flags_are_declined() {
    for p in [
        "foo",
        "foo=1",
        "client_max_window",
        "max_window_bits=10",
        "server_no_context_takeover=1",
        "client_no_context_takeover=\"\"",
        "client_no_context_takeover=true",
        "no_context_takeover",
    ] {
        let offer = format!("permessage-deflate; {p}");
        assert_eq!(answer(&offer), None, "{offer:?}");
    }
}

#[test]
fn case_and_whitespace_do_not_matter() {
    let loud = "PerMessage-Deflate; Client_Max_Window_Bits=10; SERVER_MAX_WINDOW_BITS=12; \
                Server_No_Context_Takeover; CLIENT_NO_CONTEXT_TAKEOVER";
    let params = format!("{PLAIN}; server_max_window_bits=12");
    assert_eq!(answer(loud), agreed(true, 10, 12, &params));
    let spaced =
        " \tpermessage-deflate ;client_max_window_bits = 10 ;\tserver_max_window_bits= \"12\"  ";
    assert_eq!(answer(spaced), agreed(true, 10, 12, &params));
    let a = negotiate(
        &[httparse::Header {
            name: "sec-websocket-extensions",
            value: b"permessage-deflate",
        }],
        &DEFAULT,
    );
    assert!(a.is_some());
}

// --- lists -------------------------------------------------------------------

#[test]
fn first_honourable_offer_wins() {
    let chrome = agreed(true, 15, 15, PLAIN);
    let list =
        "permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits";
    assert_eq!(answer(list), chrome);
    let list = "x-webkit-deflate-frame, permessage-deflate; foo, permessage-deflate";
    assert_eq!(answer(list), chrome);
    let list = "permessage-deflate; server_max_window_bits=10, permessage-deflate";
    let params = format!("{PLAIN}; server_max_window_bits=10");
    assert_eq!(answer(list), agreed(true, 15, 10, &params));
    // A comma inside a quoted-string does not split the list.
    let list = r#"x-foo; a="b,c", permessage-deflate"#;
    assert_eq!(answer(list), chrome);
}

#[test]
fn several_headers_are_one_list() {
    let params = format!("{PLAIN}; server_max_window_bits=12");
    let hs = ["x-foo", "permessage-deflate; server_max_window_bits=12"];
    assert_eq!(answer_with(&DEFAULT, &hs), agreed(true, 15, 12, &params));
    let hs = [
        "permessage-deflate; bad",
        "permessage-deflate; client_max_window_bits=11",
    ];
    assert_eq!(answer_with(&DEFAULT, &hs), agreed(true, 11, 15, PLAIN));
    let hs = [
        "permessage-deflate; server_max_window_bits=12",
        "permessage-deflate",
    ];
    assert_eq!(answer_with(&DEFAULT, &hs), agreed(true, 15, 12, &params));
    // Other headers are not extension lists.
    let other = [httparse::Header {
        name: "X-Sec-WebSocket-Extensions",
        value: b"permessage-deflate",
    }];
    assert_eq!(negotiate(&other, &DEFAULT), None);
}

#[test]
fn garbage_is_declined() {
    for g in [
        "",
        ",",
        " , ,\t",
        "permessage-deflate;",
        "permessage-deflate;;client_max_window_bits",
        "; client_max_window_bits",
        "permessage-deflate client_max_window_bits",
        "permessage-deflate; =10",
        "permessage-deflate; server_max_window_bits==10",
        "permessage-deflate; server_max_window_bits=10=",
        "permessage-deflate \"x\"",
        "permessage-deflate=1",
        "permessage-deflate\\",
        "\"permessage-deflate\"",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; server_max_window_bits=\"10\\",
    ] {
        assert_eq!(answer(g), None, "{g:?}");
    }
    let bytes: [&[u8]; 3] = [
        b"permessage-deflate; \xff",
        b"permessage-deflate\x00",
        b"permessage-deflate; server_max_window_bits=\"1\xb0\"",
    ];
    for b in bytes {
        assert_eq!(negotiate(&headers(&[b]), &DEFAULT), None, "{b:?}");
    }
}

#[test]
fn empty_elements_are_skipped() {
    assert_eq!(
        answer(",, permessage-deflate ,"),
        agreed(true, 15, 15, PLAIN)
    );
}

#[test]
fn an_unsplittable_list_declines_everything() {
    // An unterminated quote hides where later offers start: even the good
    // offer before it is dropped.
    assert_eq!(answer(r#"permessage-deflate, x-foo; a="b"#), None);
    assert_eq!(answer(r#"x-foo; a="b\", permessage-deflate"#), None);
    let hs = ["permessage-deflate", "x-foo; a=\"b"];
    assert_eq!(answer_with(&DEFAULT, &hs), None);
}

// --- configuration ----------------------------------------------------------

#[test]
fn disabled() {
    let cfg = DeflateConfig {
        enabled: false,
        ..DEFAULT
    };
    let chrome = "permessage-deflate; client_max_window_bits";
    assert_eq!(answer_with(&cfg, &[chrome]), None);
    assert_eq!(DeflateConfig::default(), DEFAULT);
}

#[test]
fn smaller_windows() {
    let cfg = DeflateConfig {
        server_max_window_bits: 10,
        client_max_window_bits: 11,
        ..DEFAULT
    };
    let both = format!("{PLAIN}; server_max_window_bits=10; client_max_window_bits=10");
    let chrome = "permessage-deflate; client_max_window_bits";
    assert_eq!(answer_with(&cfg, &[chrome]), agreed(true, 10, 10, &both));
    // The client's window cannot be limited: it drops its context anyway.
    let server10 = format!("{PLAIN}; server_max_window_bits=10");
    assert_eq!(
        answer_with(&cfg, &["permessage-deflate"]),
        agreed(true, 15, 10, &server10)
    );
    let offer = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9";
    assert_eq!(answer_with(&cfg, &[offer]), agreed(true, 9, 10, &server10));
    let offer = "permessage-deflate; server_max_window_bits=8; client_max_window_bits";
    let params = format!("{PLAIN}; server_max_window_bits=8; client_max_window_bits=9");
    assert_eq!(answer_with(&cfg, &[offer]), agreed(true, 9, 8, &params));
    // Out-of-range configurations are taken as the nearest bound.
    let wild = DeflateConfig {
        server_max_window_bits: 3,
        client_max_window_bits: 200,
        ..DEFAULT
    };
    let server9 = format!("{PLAIN}; server_max_window_bits=9; client_max_window_bits=9");
    assert_eq!(answer_with(&wild, &[chrome]), agreed(true, 9, 9, &server9));
}

#[test]
fn client_context_takeover_allowed() {
    let cfg = DeflateConfig {
        client_context_takeover: true,
        ..DEFAULT
    };
    let server_only = "; server_no_context_takeover";
    let chrome = "permessage-deflate; client_max_window_bits";
    assert_eq!(
        answer_with(&cfg, &[chrome]),
        agreed(false, 15, 15, server_only)
    );
    assert_eq!(
        answer_with(&cfg, &["permessage-deflate"]),
        agreed(false, 15, 15, server_only)
    );
    // The client's own hint is answered.
    let offer = "permessage-deflate; client_no_context_takeover";
    assert_eq!(answer_with(&cfg, &[offer]), agreed(true, 15, 15, PLAIN));

    let cfg12 = DeflateConfig {
        client_max_window_bits: 12,
        ..cfg
    };
    let said12 = format!("{server_only}; client_max_window_bits=12");
    assert_eq!(
        answer_with(&cfg12, &[chrome]),
        agreed(false, 12, 15, &said12)
    );
    // Its window cannot be limited to 12: it must drop its context.
    assert_eq!(
        answer_with(&cfg12, &["permessage-deflate"]),
        agreed(true, 15, 15, PLAIN)
    );
}

// --- the response ------------------------------------------------------------

#[test]
fn longest_response_is_response_len() {
    let offer = b"permessage-deflate; server_max_window_bits=10; client_max_window_bits";
    let a = negotiate(&headers(&[offer]), &DEFAULT).unwrap();
    let line = response(&a, &DEFAULT);
    assert_eq!(
        line,
        format!("Sec-WebSocket-Extensions: permessage-deflate{PLAIN}; server_max_window_bits=10; client_max_window_bits=10\r\n")
    );
    assert_eq!(line.len(), RESPONSE_LEN);
}

#[test]
#[should_panic(expected = "response buffer too small")]
fn response_needs_room() {
    let a = negotiate(&headers(&[b"permessage-deflate"]), &DEFAULT).unwrap();
    write_response(&a, &mut [0u8; RESPONSE_LEN - 1]);
}

#[test]
fn agreed_is_small() {
    assert!(std::mem::size_of::<Agreed>() <= 8);
    assert!(std::mem::size_of::<Option<Agreed>>() <= 8);
}

mod properties;
