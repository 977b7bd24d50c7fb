use super::*;

/// What serde_json writes for the reply, field order as declared.
fn serde_reply(p: &[u8]) -> Vec<u8> {
    #[derive(Serialize)]
    struct Reply<'a> {
        name: &'a str,
        age: u32,
        description: String,
    }
    let name = std::str::from_utf8(p).unwrap();
    serde_json::to_vec(&Reply {
        name,
        age: 18,
        description: format!("{name}很厉害!!!!"),
    })
    .unwrap()
}

fn payload(len: usize, conn: u32, seq: u64) -> Vec<u8> {
    let mut v = vec![0; len];
    payload::fill(&mut v, conn, seq, [0; 4]);
    v
}

/// A payload of `len` bytes whose body holds backslashes.
fn payload_with_backslashes(len: usize, conn: u32) -> (Vec<u8>, u64) {
    (0..)
        .map(|seq| (payload(len, conn, seq), seq))
        .find(|(p, _)| p[HEADER..].iter().filter(|&&b| b == b'\\').count() >= 2)
        .unwrap()
}

fn check(reply: &[u8], conn: u32, size: usize, cuts: &[usize]) -> Verdict {
    check_as(Pattern::Random, reply, conn, size, cuts)
}

fn check_as(pattern: Pattern, reply: &[u8], conn: u32, size: usize, cuts: &[usize]) -> Verdict {
    let mut c = JsonCheck::new(pattern);
    c.start();
    let mut from = 0;
    for &cut in cuts.iter().chain([reply.len()].iter()) {
        c.feed(&reply[from..cut], conn, |_| size);
        from = cut;
    }
    c.finish()
}

#[test]
fn serde_json_escapes_only_the_backslash_and_quote() {
    let all: Vec<u8> = (0x20..=0x7Fu8).collect();
    let s = std::str::from_utf8(&all).unwrap();
    let json = serde_json::to_string(s).unwrap();
    let mut want = String::from("\"");
    for c in s.chars() {
        if c == '\\' || c == '"' {
            want.push('\\');
        }
        want.push(c);
    }
    want.push('"');
    assert_eq!(json, want);
    assert!(json.contains('\x7F'), "0x7F is written as is");
}

#[test]
fn literals_and_length_match_serde_json() {
    let (p, _) = payload_with_backslashes(100, 1);
    let slashes = p.iter().filter(|&&b| b == b'\\').count();
    let reply = serde_reply(&p);
    assert_eq!(reply.len(), json_len(p.len(), slashes));
    assert!(reply.starts_with(PREFIX));
    assert!(reply.ends_with(SUFFIX));
}

#[test]
fn accepts_serde_json_replies_cut_anywhere() {
    let mut cases: Vec<(Vec<u8>, u64)> = [24, 25, 32, 33].map(|len| (payload(len, 7, 3), 3)).into();
    cases.extend([64, 200, 1024].map(|len| payload_with_backslashes(len, 7)));
    for (p, seq) in cases {
        let len = p.len();
        let reply = serde_reply(&p);
        let ok = Verdict {
            seq: Some(seq),
            fault: None,
        };
        assert_eq!(check(&reply, 7, len, &[]), ok, "len {len}");
        for cut in 0..=reply.len() {
            assert_eq!(check(&reply, 7, len, &[cut]), ok, "len {len} cut {cut}");
        }
        // Byte by byte: every escape is split from what it escapes.
        let all: Vec<usize> = (1..reply.len()).collect();
        assert_eq!(check(&reply, 7, len, &all), ok, "len {len}");
    }
}

#[test]
fn every_altered_byte_is_caught() {
    let (p, _) = payload_with_backslashes(80, 2);
    let reply = serde_reply(&p);
    for at in 0..reply.len() {
        for flip in [0x01, 0x20] {
            let mut r = reply.clone();
            r[at] ^= flip;
            let v = check(&r, 2, p.len(), &[at]);
            assert!(v.fault.is_some(), "flip {flip:#x} at {at} missed");
        }
    }
}

#[test]
fn truncated_long_and_foreign_replies_are_caught() {
    let (p, seq) = payload_with_backslashes(64, 5);
    let reply = serde_reply(&p);
    for end in 0..reply.len() {
        let v = check(&reply[..end], 5, p.len(), &[]);
        assert!(matches!(v.fault, Some(Fault::Short(_))), "end {end}: {v:?}");
    }
    let mut long = reply.clone();
    long.push(b' ');
    assert_eq!(check(&long, 5, p.len(), &[]).fault, Some(Fault::Long));
    // The echo instead of the JSON.
    assert_eq!(
        check(&p, 5, p.len(), &[]).fault,
        Some(Fault::Wrong(Part::Prefix))
    );
    // Another connection's message.
    let v = check(&reply, 6, p.len(), &[]);
    assert_eq!(v.fault, Some(Fault::Wrong(Part::Name)));
    // A description that answers another message.
    let other = serde_reply(&payload(64, 5, seq + 1));
    let split = |r: &[u8]| {
        let at = r.windows(MIDDLE.len()).position(|w| w == MIDDLE).unwrap();
        (r[..at].to_vec(), r[at..].to_vec())
    };
    let mut mixed = split(&reply).0;
    mixed.extend(split(&other).1);
    let v = check(&mixed, 5, p.len(), &[]);
    assert_eq!(v.seq, Some(seq));
    assert_eq!(v.fault, Some(Fault::Wrong(Part::Description)));
}

#[test]
fn escaping_must_be_exact() {
    let (p, _) = payload_with_backslashes(64, 9);
    let reply = serde_reply(&p);
    // A backslash left unescaped shortens the string: caught.
    let at = PREFIX.len()
        + reply[PREFIX.len()..]
            .iter()
            .position(|&b| b == b'\\')
            .unwrap();
    let mut unescaped = reply.clone();
    unescaped.remove(at);
    assert!(check(&unescaped, 9, p.len(), &[]).fault.is_some());
    // The same byte escaped another way (\u005c) is not what serde_json
    // writes: caught.
    let mut other = reply[..at].to_vec();
    other.extend_from_slice(br"\u005c");
    other.extend_from_slice(&reply[at + 2..]);
    assert_eq!(
        check(&other, 9, p.len(), &[]).fault,
        Some(Fault::Wrong(Part::Name))
    );
}

#[test]
fn a_wrong_length_payload_is_caught() {
    let p = payload(40, 1, 0);
    let reply = serde_reply(&p);
    // The size expected for that message differs.
    assert!(check(&reply, 1, 41, &[]).fault.is_some());
    assert!(check(&reply, 1, 39, &[]).fault.is_some());
}

#[test]
fn finds_backslashes_and_quotes() {
    for special in [b'\\', b'"'] {
        let mut b = vec![b'A'; 40];
        assert_eq!(find_special(&b), None);
        for at in 0..40 {
            b[at] = special;
            assert_eq!(find_special(&b), Some(at));
            b[39] = b'\\';
            assert_eq!(find_special(&b), Some(at));
            b[39] = b'"';
            assert_eq!(find_special(&b), Some(at));
            b[39] = b'A';
            b[at] = b'A';
        }
    }
    // Bytes next to 0x5C and 0x22 are not taken for them.
    assert_eq!(find_special(b"[]]]]][[]]]]][[]]]!#!#!##!#!!#"), None);
}

#[test]
fn json_payloads_have_their_quotes_escaped() {
    let mut p = vec![0; 300];
    Pattern::Json.fill(&mut p, 7, 11, [0; 4]);
    let quotes = p.iter().filter(|&&b| b == b'"').count();
    assert!(quotes > 10);
    let reply = serde_reply(&p);
    assert_eq!(reply.len(), json_len(p.len(), quotes));
    let ok = Verdict {
        seq: Some(11),
        fault: None,
    };
    for cut in 0..=reply.len() {
        assert_eq!(check_as(Pattern::Json, &reply, 7, 300, &[cut]), ok);
    }
    let all: Vec<usize> = (1..reply.len()).collect();
    assert_eq!(check_as(Pattern::Json, &reply, 7, 300, &all), ok);
    // Checked against the other pattern, it is wrong.
    assert!(check(&reply, 7, 300, &[]).fault.is_some());
    for at in 0..reply.len() {
        for flip in [0x01, 0x20] {
            let mut r = reply.clone();
            r[at] ^= flip;
            let v = check_as(Pattern::Json, &r, 7, 300, &[at]);
            assert!(v.fault.is_some(), "flip {flip:#x} at {at} missed");
        }
    }
    // A quote left unescaped is not JSON, even where the payload has one.
    let at = reply.windows(2).position(|w| w == br#"\""#).unwrap();
    let mut raw = reply.clone();
    raw.remove(at);
    let v = check_as(Pattern::Json, &raw, 7, 300, &[]);
    assert_eq!(v.fault, Some(Fault::Wrong(Part::Name)));
}
