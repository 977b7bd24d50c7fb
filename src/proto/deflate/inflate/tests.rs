use super::*;
use flate2::{Compress, Compression, FlushCompress};

/// A message as a client sends it: raw deflate, sync-flushed, tail cut.
fn pack(data: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    z.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - 4);
    out
}

/// A message ended with a final block instead (allowed without context
/// takeover).
fn pack_final(data: &[u8]) -> Vec<u8> {
    let mut z = Compress::new(Compression::new(6), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    z.compress_vec(data, &mut out, FlushCompress::Finish)
        .unwrap();
    out
}

fn run(
    inf: &mut Inflater,
    parts: &[&[u8]],
    text: bool,
    limit: u64,
    step: usize,
) -> Result<Vec<Vec<u8>>, Inflate<()>> {
    let mut pieces = Vec::new();
    let mut scratch = vec![0; step];
    inf.begin();
    let mut r = Ok(());
    for (i, p) in parts.iter().enumerate() {
        r = inf.inflate(p, i + 1 == parts.len(), text, limit, &mut scratch, |x| {
            pieces.push(x.to_vec());
            Ok(())
        });
        if r.is_err() {
            break;
        }
    }
    // As a connection does, whether the message ended or failed.
    inf.end(false);
    r.map(|()| pieces)
}

fn json(n: usize) -> Vec<u8> {
    (0..n)
        .flat_map(|i| format!("{{\"id\":{i},\"name\":\"zé→{i}\"}},").into_bytes())
        .collect()
}

#[test]
fn a_message_split_at_every_byte_inflates_to_the_same_text() {
    let text = json(40);
    let packed = pack(&text);
    let mut inf = Inflater::new();
    for cut in 0..=packed.len() {
        let pieces = run(
            &mut inf,
            &[&packed[..cut], &packed[cut..]],
            true,
            1 << 20,
            64,
        )
        .unwrap_or_else(|e| panic!("cut {cut}: {e:?}"));
        for p in &pieces {
            assert!(
                std::str::from_utf8(p).is_ok(),
                "every text piece is whole code points"
            );
            assert!(p.len() <= 64);
        }
        assert_eq!(pieces.concat(), text, "cut at {cut}");
    }
}

#[test]
fn a_final_block_ends_the_stream_and_nothing_may_follow_it() {
    let text = json(10);
    let mut inf = Inflater::new();
    let fin = pack_final(&text);
    assert_eq!(
        run(&mut inf, &[&fin], true, 1 << 20, 100).unwrap().concat(),
        text
    );
    let mut more = fin.clone();
    more.extend_from_slice(&pack(b"x"));
    assert_eq!(
        run(&mut inf, &[&more], true, 1 << 20, 100),
        Err(Inflate::Protocol(ProtocolError::BadDeflate))
    );
    // The inflater is usable again after the failure and reset.
    assert_eq!(
        run(&mut inf, &[&pack(&text)], true, 1 << 20, 100)
            .unwrap()
            .concat(),
        text
    );
}

#[test]
fn a_bomb_is_cut_at_the_limit_without_inflating_past_it() {
    // 64 MiB of zeros packs into about 64 KiB.
    let zeros = vec![0u8; 64 << 20];
    let packed = pack(&zeros);
    assert!(packed.len() < 100 << 10, "{}", packed.len());
    let mut inf = Inflater::new();
    let mut seen = 0u64;
    let mut scratch = vec![0; 16 << 10];
    inf.begin();
    let r = inf.inflate::<()>(&packed, true, false, 1 << 20, &mut scratch, |p| {
        seen += p.len() as u64;
        Ok(())
    });
    assert_eq!(r, Err(Inflate::Protocol(ProtocolError::MessageTooBig)));
    assert!(seen <= 1 << 20, "handed on {seen} bytes past the limit");
}

#[test]
fn invalid_text_and_broken_streams_fail() {
    let mut inf = Inflater::new();
    let bad = pack(b"ok \xff no");
    assert_eq!(
        run(&mut inf, &[&bad], true, 1 << 20, 100),
        Err(Inflate::Protocol(ProtocolError::InvalidUtf8))
    );
    // A code point cut by the end of the message.
    let cut = pack(&"é".as_bytes()[..1]);
    assert_eq!(
        run(&mut inf, &[&cut], true, 1 << 20, 100),
        Err(Inflate::Protocol(ProtocolError::InvalidUtf8))
    );
    // The same bytes are fine as binary.
    assert_eq!(
        run(&mut inf, &[&cut], false, 1 << 20, 100)
            .unwrap()
            .concat(),
        b"\xc3"
    );
    // Block type 3 is reserved: not a deflate stream.
    assert_eq!(
        run(&mut inf, &[&[0xff, 0xff, 0xff]], false, 1 << 20, 100),
        Err(Inflate::Protocol(ProtocolError::BadDeflate))
    );
}

#[test]
fn an_empty_message_inflates_to_nothing() {
    let mut inf = Inflater::new();
    // What senders put for an empty message: one empty fixed block.
    assert_eq!(
        run(&mut inf, &[&[0x02, 0x00]], true, 10, 100)
            .unwrap()
            .concat(),
        b""
    );
    assert_eq!(
        run(&mut inf, &[&pack(b"")], true, 10, 100)
            .unwrap()
            .concat(),
        b""
    );
}

#[test]
fn context_is_kept_between_messages_only_when_asked() {
    // Two messages from one compressor that keeps its context: the second
    // refers back into the first.
    let mut z = Compress::new(Compression::new(6), false);
    let msg = json(20);
    let mut a = Vec::with_capacity(msg.len());
    z.compress_vec(&msg, &mut a, FlushCompress::Sync).unwrap();
    let mut b = Vec::with_capacity(msg.len());
    z.compress_vec(&msg, &mut b, FlushCompress::Sync).unwrap();
    a.truncate(a.len() - 4);
    b.truncate(b.len() - 4);
    assert!(b.len() < 20, "the second message is a back-reference");

    let mut inf = Inflater::new();
    let mut scratch = vec![0; 1000];
    let mut got = Vec::new();
    for m in [&a, &b] {
        inf.begin();
        inf.inflate::<()>(m, true, true, 1 << 20, &mut scratch, |p| {
            got.extend_from_slice(p);
            Ok(())
        })
        .unwrap();
        inf.end(true);
    }
    assert_eq!(got, [msg.clone(), msg.clone()].concat());

    // Without the context, the second message cannot be read.
    inf.end(false);
    assert!(run(&mut inf, &[&b], true, 1 << 20, 1000).is_err());
}
