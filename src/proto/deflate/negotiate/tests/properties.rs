//! Random input: negotiate never panics, answers consistently with its
//! response and the configuration, and the same list gets the same answer
//! however it is split over headers.

use super::*;
use proptest::prelude::*;

fn config() -> impl Strategy<Value = DeflateConfig> {
    (any::<bool>(), 0u8..20, 0u8..20, any::<bool>()).prop_map(|(e, s, c, t)| DeflateConfig {
        enabled: e,
        server_max_window_bits: s,
        client_max_window_bits: c,
        client_context_takeover: t,
        ..DeflateConfig::default()
    })
}

/// One list element, mostly near-valid offers.
fn element() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "permessage-deflate",
        "PERMESSAGE-DEFLATE",
        "x-webkit-deflate-frame",
        "",
    ]);
    let param = prop::sample::select(vec![
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
        "Client_Max_Window_Bits",
        "foo",
    ]);
    let value = prop::sample::select(vec![
        "", "=8", "=9", "=10", "=15", "=7", "=16", "=08", "=\"12\"", "=\"1 0\"", "=",
    ]);
    let ows = prop::sample::select(vec!["", " ", "\t "]);
    let params = prop::collection::vec((ows.clone(), param, value), 0..5);
    (name, params, ows).prop_map(|(name, params, ows)| {
        let mut s = name.to_owned();
        for (w, p, v) in params {
            s += &format!("{w};{w}{p}{v}");
        }
        s + ows
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..80), 0..4),
        cfg in config(),
    ) {
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        if let Some(a) = negotiate(&headers(&refs), &cfg) {
            check_consistent(&a, &cfg);
        }
    }

    #[test]
    fn offers_answer_consistently_however_listed(
        elements in prop::collection::vec(element(), 1..4),
        cfg in config(),
    ) {
        let one = elements.join(",");
        let a = negotiate(&headers(&[one.as_bytes()]), &cfg);
        if let Some(a) = &a {
            check_consistent(a, &cfg);
        }
        // One header per element: the same list.
        let refs: Vec<&[u8]> = elements.iter().map(|e| e.as_bytes()).collect();
        prop_assert_eq!(negotiate(&headers(&refs), &cfg), a);
    }
}
