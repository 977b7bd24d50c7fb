use super::*;
use crate::proto::deflate::offer::ExtensionError;

/// The sample key of RFC 6455 §1.3, and its accept.
const KEY: &Key = b"dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn response(extra: &str) -> String {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
    )
}

fn read(resp: &str, offered: &[&str]) -> Result<Option<Answer>, ResponseError> {
    let offered: Vec<String> = offered.iter().map(|s| s.to_string()).collect();
    read_response(resp.as_bytes(), 0, KEY, &offered, None, 8192)
}

fn read_offered(resp: &str, o: &DeflateOffer) -> Result<Option<Answer>, ResponseError> {
    read_response(resp.as_bytes(), 0, KEY, &[], Some(o), 8192)
}

#[test]
fn key_is_base64_of_16_bytes() {
    let k = key_from([0x5a; 16]);
    assert_eq!(&k, b"WlpaWlpaWlpaWlpaWlpaWg==");
    // The material's sample: this key gives this accept.
    assert_eq!(
        &accept_key(b"x3JJHMbDL1EzLkh9GBhXDw=="),
        b"HSmrc0sMlYUkAGmm5OPpG2HaGWk="
    );
}

#[test]
fn request_is_what_rfc_6455_asks() {
    let t = Target::parse("ws://[::1]:9001/chat?room=a").unwrap();
    let cfg = ClientConfig::new()
        .origin("http://example.com")
        .subprotocol("chat")
        .subprotocol("superchat")
        .header("Authorization", "Bearer x");
    check_options(&cfg).unwrap();
    let mut out = Vec::new();
    write_request(&mut out, &t, KEY, &cfg);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET /chat?room=a HTTP/1.1\r\nHost: [::1]:9001\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nOrigin: http://example.com\r\n\
         Sec-WebSocket-Protocol: chat, superchat\r\nAuthorization: Bearer x\r\n\r\n"
    );
}

#[test]
fn request_parses_as_a_valid_upgrade_on_our_server() {
    let t = Target::parse("ws://127.0.0.1:9001/").unwrap();
    let mut out = Vec::new();
    write_request(&mut out, &t, KEY, &ClientConfig::new());
    let cfg = crate::handshake::HandshakeConfig::default();
    match crate::handshake::parse(&out, &cfg).unwrap() {
        crate::handshake::Outcome::Upgrade { accept, .. } => assert_eq!(&accept, ACCEPT.as_bytes()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn options_that_would_corrupt_the_request_are_refused() {
    let bad = |cfg: ClientConfig| check_options(&cfg).unwrap_err();
    assert!(matches!(
        bad(ClientConfig::new().header("X Y", "v")),
        RequestError::HeaderName(_)
    ));
    assert!(matches!(
        bad(ClientConfig::new().header("X", "v\r\nInjected: 1")),
        RequestError::HeaderValue(_)
    ));
    for reserved in [
        "Host",
        "upgrade",
        "Connection",
        "Sec-WebSocket-Key",
        "sec-websocket-extensions",
    ] {
        assert!(
            matches!(
                bad(ClientConfig::new().header(reserved, "x")),
                RequestError::ReservedHeader(_)
            ),
            "{reserved}"
        );
    }
    assert_eq!(
        bad(ClientConfig::new().origin("a\nb")),
        RequestError::Origin
    );
    assert!(matches!(
        bad(ClientConfig::new().subprotocol("a b")),
        RequestError::Subprotocol(_)
    ));
    assert!(matches!(
        bad(ClientConfig::new().subprotocol("a").subprotocol("a")),
        RequestError::Subprotocol(_)
    ));
    check_options(&ClientConfig::new().header("X-Tab", "a\tb")).unwrap();
}

#[test]
fn accepts_a_good_response_at_every_split() {
    let resp = response("");
    for cut in 0..resp.len() {
        assert_eq!(read(&resp[..cut], &[]), Ok(None), "cut at {cut}");
    }
    assert_eq!(
        read(&resp, &[]),
        Ok(Some(Answer::Upgraded {
            head_len: resp.len(),
            protocol: None,
            deflate: None
        }))
    );
}

#[test]
fn frames_right_after_the_101_stay_with_the_caller() {
    let mut bytes = response("").into_bytes();
    let head = bytes.len();
    bytes.extend_from_slice(&[0x81, 0x02, b'h', b'i']);
    let got = read_response(&bytes, 0, KEY, &[], None, 8192)
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        Answer::Upgraded {
            head_len: head,
            protocol: None,
            deflate: None
        }
    );
    assert_eq!(&bytes[head..], &[0x81, 0x02, b'h', b'i']);
}

#[test]
fn header_values_are_case_and_list_insensitive() {
    let resp = format!(
        "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\
         sec-websocket-accept:  {ACCEPT} \r\n\r\n"
    );
    assert!(matches!(
        read(&resp, &[]),
        Ok(Some(Answer::Upgraded { .. }))
    ));
}

#[test]
fn wrong_accept() {
    let resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Accept: HSmrc0sMlYUkAGmm5OPpG2HaGWk=\r\n\r\n";
    assert_eq!(read(resp, &[]), Err(ResponseError::BadAccept));
    let none =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    assert_eq!(read(none, &[]), Err(ResponseError::BadAccept));
    assert_eq!(
        read(
            &response(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
            &[]
        ),
        Err(ResponseError::BadAccept),
        "two accepts"
    );
}

#[test]
fn missing_upgrade_or_connection() {
    let no_upgrade = format!(
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    );
    assert_eq!(read(&no_upgrade, &[]), Err(ResponseError::NoUpgrade));
    let other = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    );
    assert_eq!(read(&other, &[]), Err(ResponseError::NoUpgrade));
    let no_conn = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: {ACCEPT}\r\n\r\n"
    );
    assert_eq!(read(&no_conn, &[]), Err(ResponseError::NoConnectionUpgrade));
}

#[test]
fn subprotocols() {
    let chosen = response("Sec-WebSocket-Protocol: superchat\r\n");
    assert_eq!(
        read(&chosen, &["chat", "superchat"]),
        Ok(Some(Answer::Upgraded {
            head_len: chosen.len(),
            protocol: Some(1),
            deflate: None
        }))
    );
    assert_eq!(read(&chosen, &[]), Err(ResponseError::UnrequestedProtocol));
    assert_eq!(
        read(&chosen, &["chat"]),
        Err(ResponseError::UnrequestedProtocol)
    );
    let two = response("Sec-WebSocket-Protocol: chat, superchat\r\n");
    assert_eq!(
        read(&two, &["chat", "superchat"]),
        Err(ResponseError::UnrequestedProtocol)
    );
    let twice = response("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n");
    assert_eq!(
        read(&twice, &["chat"]),
        Err(ResponseError::UnrequestedProtocol)
    );
    // Offering one and getting none is allowed: the server declined.
    assert!(matches!(
        read(&response(""), &["chat"]),
        Ok(Some(Answer::Upgraded { protocol: None, .. }))
    ));
}

#[test]
fn unrequested_extension() {
    let resp = response("Sec-WebSocket-Extensions: permessage-deflate\r\n");
    assert_eq!(read(&resp, &[]), Err(ResponseError::UnrequestedExtension));
    let other = response("Sec-WebSocket-Extensions: x-foo\r\n");
    assert_eq!(read(&other, &[]), Err(ResponseError::UnrequestedExtension));
    // An empty list names no extension.
    let empty = response("Sec-WebSocket-Extensions: \r\n");
    assert!(matches!(
        read(&empty, &[]),
        Ok(Some(Answer::Upgraded { deflate: None, .. }))
    ));
}

#[test]
fn request_offers_deflate_when_configured() {
    let t = Target::parse("ws://example.com/").unwrap();
    let o = DeflateOffer {
        server_no_context_takeover: true,
        server_max_window_bits: 10,
        ..DeflateOffer::default()
    };
    let cfg = ClientConfig::new().subprotocol("chat").deflate(o);
    assert_eq!(cfg.deflate, Some(o));
    let mut out = Vec::new();
    write_request(&mut out, &t, KEY, &cfg);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; \
         client_no_context_takeover; server_no_context_takeover; \
         server_max_window_bits=10\r\n\r\n"
    );
    // No offer by default.
    let mut plain = Vec::new();
    write_request(&mut plain, &t, KEY, &ClientConfig::new());
    assert!(!String::from_utf8(plain).unwrap().contains("Extensions"));
}

#[test]
fn deflate_offer_answered() {
    let o = DeflateOffer::default();
    let agreed = response(
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
         client_max_window_bits=10\r\n",
    );
    assert_eq!(
        read_offered(&agreed, &o),
        Ok(Some(Answer::Upgraded {
            head_len: agreed.len(),
            protocol: None,
            deflate: Some(ClientTerms {
                server_takeover: false,
                client_window: 10
            })
        }))
    );
    // Headers split over lines, with an empty one: one list.
    let split =
        response("Sec-WebSocket-Extensions:\r\nsec-websocket-extensions: permessage-deflate\r\n");
    assert!(matches!(
        read_offered(&split, &o),
        Ok(Some(Answer::Upgraded {
            deflate: Some(ClientTerms {
                server_takeover: true,
                client_window: 15
            }),
            ..
        }))
    ));
    // Declined: the upgrade goes on without it.
    assert!(matches!(
        read_offered(&response(""), &o),
        Ok(Some(Answer::Upgraded { deflate: None, .. }))
    ));
}

#[test]
fn deflate_answer_that_breaks_the_rules() {
    let o = DeflateOffer {
        server_no_context_takeover: true,
        ..DeflateOffer::default()
    };
    let kept = response("Sec-WebSocket-Extensions: permessage-deflate\r\n");
    assert_eq!(
        read_offered(&kept, &o),
        Err(ResponseError::BadExtension(
            ExtensionError::ServerContextKept
        ))
    );
    let other = response("Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n");
    assert_eq!(
        read_offered(&other, &o),
        Err(ResponseError::BadExtension(ExtensionError::Unoffered))
    );
    let twice = response(
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n",
    );
    assert_eq!(
        read_offered(&twice, &o),
        Err(ResponseError::BadExtension(ExtensionError::Twice))
    );
    let no_value = response(
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; \
         client_max_window_bits\r\n",
    );
    let err = read_offered(&no_value, &o).unwrap_err();
    assert_eq!(
        err,
        ResponseError::BadExtension(ExtensionError::BadValue("client_max_window_bits"))
    );
    assert!(err.to_string().contains("client_max_window_bits"), "{err}");
}

#[test]
fn deflate_round_trip_with_our_server() {
    let t = Target::parse("ws://127.0.0.1:9001/").unwrap();
    let o = DeflateOffer {
        server_max_window_bits: 12,
        ..DeflateOffer::default()
    };
    let mut req = Vec::new();
    write_request(&mut req, &t, KEY, &ClientConfig::new().deflate(o));
    let mut server = crate::handshake::HandshakeConfig::default();
    server.deflate.client_max_window_bits = 11;
    let crate::handshake::Outcome::Upgrade {
        accept,
        protocol,
        deflate,
    } = crate::handshake::parse(&req, &server).unwrap()
    else {
        panic!("not an upgrade");
    };
    let a = deflate.expect("offer accepted");
    assert_eq!((a.server_window, a.client_window), (12, 11));
    let mut out = [0u8; crate::handshake::RESPONSE_BUF];
    let n = crate::handshake::write_upgrade_response(&mut out, &accept, None, Some(&a));
    assert_eq!(protocol, None);
    assert_eq!(
        read_response(&out[..n], 0, KEY, &[], Some(&o), 8192),
        Ok(Some(Answer::Upgraded {
            head_len: n,
            protocol: None,
            deflate: Some(ClientTerms {
                server_takeover: false,
                client_window: 11
            })
        }))
    );
}

#[test]
fn other_statuses_are_refusals_with_their_body_length() {
    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(
        read(ok, &[]),
        Ok(Some(Answer::Refused {
            code: 200,
            reason: "OK".into(),
            head_len: ok.len() - 5,
            content_length: Some(5)
        }))
    );
    let moved = "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\n\r\n";
    assert!(matches!(
        read(moved, &[]),
        Ok(Some(Answer::Refused {
            code: 302,
            content_length: None,
            ..
        }))
    ));
}

#[test]
fn oversized_or_malformed_heads() {
    let big = format!(
        "HTTP/1.1 101 Switching Protocols\r\nX: {}\r\n",
        "a".repeat(9000)
    );
    assert_eq!(read(&big, &[]), Err(ResponseError::TooLarge));
    let big_done = format!("{big}\r\n");
    assert_eq!(read(&big_done, &[]), Err(ResponseError::TooLarge));
    assert_eq!(
        read("HTTP/1.0 101 OK\r\n\r\n", &[]),
        Err(ResponseError::Malformed)
    );
    assert_eq!(
        read("SSH-2.0-OpenSSH\r\n\r\n", &[]),
        Err(ResponseError::Malformed)
    );
    let many: String = (0..100).map(|i| format!("X{i}: y\r\n")).collect();
    let many = format!("HTTP/1.1 101 OK\r\n{many}\r\n");
    assert_eq!(read(&many, &[]), Err(ResponseError::TooLarge));
}
