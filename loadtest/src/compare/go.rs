//! The Go echo servers of the comparison (`loadtest/peers-go/`, built by
//! its `build.sh`) and their allocations per message.
//!
//! Invariants: the Go servers are named in one place ([`GO_PEERS`]); the
//! `go` group stands for all of them, in that order. Allocations per message
//! are the growth of the Go runtime's `Mallocs` over the growth of the
//! server's echoed-message count, both read from its `/memstats` page, over
//! a window that opens a warm-up after every connection is upgraded (no
//! handshake inside) and closes well before the generator stops sending
//! (no close inside). Every wait is bounded and gives up if the generator ends.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant};

use serde::Serialize;

/// `--servers` name and binary (next to zerows-loadtest) of each Go server.
pub const GO_PEERS: [(&str, &str); 3] = [
    ("go-gorilla", "peer-go-gorilla"),
    ("go-nhooyr", "peer-go-nhooyr"),
    ("go-x-net", "peer-go-xnet"),
];

/// The `--servers` entry that stands for every Go server.
pub const GROUP: &str = "go";

/// The binary of the Go server called `name`, if it is one.
pub fn binary(name: &str) -> Option<&'static str> {
    GO_PEERS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// `--servers` entries with the `go` group written out, and the group
/// appended when `go` (the `--go` flag) is set.
pub fn expand(entries: &[String], go: bool) -> Vec<String> {
    let all = || GO_PEERS.iter().map(|(n, _)| n.to_string());
    let mut out = Vec::new();
    for e in entries {
        if e == GROUP {
            out.extend(all());
        } else {
            out.push(e.clone());
        }
    }
    if go {
        out.extend(all());
    }
    out
}

/// What is known of a server's heap allocations per echoed message.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allocs {
    /// Not measured.
    Unmeasured,
    /// Zero, as tests/alloc.rs proves for the zerows echo path; not
    /// measured by the run.
    ZeroByTest,
    /// Measured over the run's window.
    PerMessage(f64),
}

/// Where a server's allocations per message come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    No,
    /// tests/alloc.rs (the zerows echo server).
    ByTest,
    /// The server's `/memstats` (the Go servers).
    Memstats,
}

/// The table's allocations cell of a server proven not to allocate.
pub const BY_TEST: &str = "0¹";

/// The footnote of [`BY_TEST`].
pub const BY_TEST_NOTE: &str = "\n¹ Not measured by this run: tests/alloc.rs proves that the zerows echo path allocates nothing per message once warm.\n";

/// The header's words on the allocations column, when a server has it.
pub const HEADER_NOTE: &str = " allocs/msg: the Go runtime's heap allocations (`Mallocs`) per echoed message, from the server's /memstats over the first half of the measured window; – where not measured.";

/// The table's allocations cell of a server's error-free runs: the median
/// of the measured ones.
pub fn cell(runs: impl Iterator<Item = Allocs>) -> String {
    let mut measured = Vec::new();
    let mut by_test = false;
    for a in runs {
        match a {
            Allocs::PerMessage(v) => measured.push(v),
            Allocs::ZeroByTest => by_test = true,
            Allocs::Unmeasured => {}
        }
    }
    if !measured.is_empty() {
        format!("{:.1}", super::median(&mut measured))
    } else if by_test {
        BY_TEST.into()
    } else {
        "–".into()
    }
}

/// One reading of a Go server's `/memstats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemStats {
    pub mallocs: u64,
    pub messages: u64,
    pub connections: u64,
}

/// Parse a whole HTTP response from `/memstats`: status 200, then a body of
/// `mallocs N`, `messages M` and `connections C` lines in any order.
pub fn parse(response: &str) -> Result<MemStats, String> {
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("no end of the response head")?;
    let status = head.lines().next().unwrap_or("");
    let mut words = status.split_whitespace();
    if !words.next().is_some_and(|v| v.starts_with("HTTP/1.")) || words.next() != Some("200") {
        return Err(format!("status {status:?}"));
    }
    let (mut mallocs, mut messages, mut connections) = (None, None, None);
    for line in body.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let slot = match key {
            "mallocs" => &mut mallocs,
            "messages" => &mut messages,
            "connections" => &mut connections,
            _ => continue,
        };
        *slot = Some(
            value
                .trim()
                .parse::<u64>()
                .map_err(|e| format!("{key} {value:?}: {e}"))?,
        );
    }
    match (mallocs, messages, connections) {
        (Some(mallocs), Some(messages), Some(connections)) => Ok(MemStats {
            mallocs,
            messages,
            connections,
        }),
        _ => Err(format!("incomplete body {body:?}")),
    }
}

/// Allocations per message from `a` to `b`; an error when no message was
/// echoed in between or a counter went back (another server on the port).
pub fn per_message(a: MemStats, b: MemStats) -> Result<f64, String> {
    if b.mallocs < a.mallocs || b.messages < a.messages {
        return Err(format!("counters went back: {a:?} then {b:?}"));
    }
    match b.messages - a.messages {
        0 => Err("no message echoed in the window".into()),
        n => Ok((b.mallocs - a.mallocs) as f64 / n as f64),
    }
}

/// Read `/memstats` from the server on the loopback `port`.
pub fn fetch(port: u16) -> Result<MemStats, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let limit = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&addr, limit).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(limit)).ok();
    s.set_write_timeout(Some(limit)).ok();
    // HTTP/1.0: the server closes after its answer, which ends the read.
    s.write_all(b"GET /memstats HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut text = String::new();
    s.take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    parse(&text)
}

/// Sleep until `until`, in short steps, unless the generator ends first.
fn sleep_while_running(generator: &mut Child, until: Instant) -> Result<(), String> {
    while Instant::now() < until {
        if let Ok(Some(st)) = generator.try_wait() {
            return Err(format!(
                "the generator ended ({st}) before the window closed"
            ));
        }
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    Ok(())
}

/// Allocations per message of the Go server on `port` while `generator`
/// runs `connections` connections for `warmup` + `duration` seconds.
///
/// The window opens `warmup` seconds after the server counts every
/// connection upgraded (the generator's own clock starts then too) and
/// closes half of `duration` later, both on that schedule however long a
/// reading takes: the other half is the margin that keeps the window inside
/// the generator's sending when a loaded server answers the polls late.
pub fn measure(
    port: u16,
    generator: &mut Child,
    connections: u32,
    warmup: f64,
    duration: f64,
) -> Result<f64, String> {
    // The generator gives up connecting after its 10 s connect timeout.
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        let m = fetch(port)?;
        if m.connections >= u64::from(connections) {
            break;
        }
        if Instant::now() >= give_up {
            return Err(format!(
                "{} of {connections} connections upgraded after 30 s",
                m.connections
            ));
        }
        let step = Instant::now() + Duration::from_millis(20);
        sleep_while_running(generator, step)?;
    }
    let open = Instant::now() + Duration::from_secs_f64(warmup);
    let close = open + Duration::from_secs_f64(duration * 0.5);
    sleep_while_running(generator, open)?;
    let before = fetch(port)?;
    sleep_while_running(generator, close)?;
    let after = fetch(port)?;
    per_message(before, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_group() {
        assert_eq!(binary("go-gorilla"), Some("peer-go-gorilla"));
        assert_eq!(binary("go-x-net"), Some("peer-go-xnet"));
        assert_eq!(binary("zerows"), None);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let go = ["go-gorilla", "go-nhooyr", "go-x-net"];
        assert_eq!(expand(&s(&["zerows"]), false), s(&["zerows"]));
        let mut want = vec!["zerows"];
        want.extend(go);
        assert_eq!(expand(&s(&["zerows"]), true), s(&want));
        assert_eq!(expand(&s(&["zerows", "go"]), false), s(&want));
    }

    #[test]
    fn memstats_replies() {
        let ok = "HTTP/1.0 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
                  mallocs 1200\nmessages 100\nconnections 4\n";
        let m = parse(ok).unwrap();
        assert_eq!(
            m,
            MemStats {
                mallocs: 1200,
                messages: 100,
                connections: 4
            }
        );
        let later = MemStats {
            mallocs: 1500,
            messages: 200,
            ..m
        };
        assert_eq!(per_message(m, later), Ok(3.0));
        assert!(per_message(m, m).unwrap_err().contains("no message"));
        assert!(per_message(later, m).unwrap_err().contains("went back"));
        let bad = [
            "HTTP/1.1 404 Not Found\r\n\r\n404 page not found\n",
            "HTTP/1.0 200 OK\r\n\r\nmallocs 1\nmessages 2\n",
            "HTTP/1.0 200 OK\r\n\r\nmallocs x\nmessages 2\nconnections 1\n",
            "HTTP/1.0 200 OK\r\nmallocs 1",
            "",
        ];
        for b in bad {
            assert!(parse(b).is_err(), "{b:?}");
        }
    }

    fn args(extra: &[&str]) -> super::super::CompareArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            c: super::super::CompareArgs,
        }
        let mut argv = vec!["compare"];
        argv.extend_from_slice(extra);
        Wrap::try_parse_from(argv).unwrap().c
    }

    #[test]
    fn go_servers_resolve_next_to_this_program() {
        use super::super::{resolve, Listen};
        let p = std::path::Path::new("/p");
        let g = resolve("go-gorilla", &args(&[]), p).unwrap().unwrap();
        assert_eq!(g.program, p.join("peer-go-gorilla"));
        assert_eq!((g.listen, g.extra.len()), (Listen::Flag, 0));
        assert_eq!(g.allocs, Counted::Memstats);
        let x = resolve("go-x-net", &args(&[]), p).unwrap().unwrap();
        assert_eq!(x.program, p.join("peer-go-xnet"));
        let z = resolve("zerows", &args(&[]), p).unwrap().unwrap();
        assert_eq!(z.allocs, Counted::ByTest);
        // No JSON variants: skipped with --reply json, like tungstenite-threads.
        let json = args(&["--reply", "json"]);
        assert_eq!(resolve("go-nhooyr", &json, p).unwrap(), None);
        assert_eq!(
            resolve("zerows", &json, p).unwrap().unwrap().allocs,
            Counted::No
        );
        assert!(resolve("go-quic", &args(&[]), p).is_err());
    }

    #[test]
    fn the_go_flag_appends_the_group_and_a_missing_one_is_an_error() {
        use super::super::{servers, CompareError};
        let dir = std::env::temp_dir().join(format!("zerows-go-peers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["zerows", "peer-go-gorilla", "peer-go-nhooyr"] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let missing = servers(&args(&["--servers", "zerows", "--go"]), &dir);
        std::fs::write(dir.join("peer-go-xnet"), "").unwrap();
        let flag = servers(&args(&["--servers", "zerows", "--go"]), &dir);
        let group = servers(&args(&["--servers", "go,zerows"]), &dir);
        let twice = servers(&args(&["--servers", "go-nhooyr", "--go"]), &dir);
        std::fs::remove_dir_all(&dir).ok();
        match missing {
            Err(CompareError::Missing(name, _)) => assert_eq!(name, "go-x-net"),
            other => panic!("{other:?}"),
        }
        let names =
            |l: Vec<super::super::Server>| l.into_iter().map(|s| s.name).collect::<Vec<_>>();
        assert_eq!(
            names(flag.unwrap()),
            ["zerows", "go-gorilla", "go-nhooyr", "go-x-net"]
        );
        assert_eq!(
            names(group.unwrap()),
            ["go-gorilla", "go-nhooyr", "go-x-net", "zerows"]
        );
        assert!(matches!(twice, Err(CompareError::Duplicate(n)) if n == "go-nhooyr"));
    }

    #[test]
    fn table_cells() {
        use Allocs::*;
        assert_eq!(
            cell([PerMessage(3.0), PerMessage(1.0), PerMessage(2.0)].into_iter()),
            "2.0"
        );
        assert_eq!(cell([ZeroByTest].into_iter()), BY_TEST);
        assert_eq!(cell([Unmeasured].into_iter()), "–");
        assert_eq!(cell([].into_iter()), "–");
    }

    #[test]
    fn a_refused_fetch_is_an_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(fetch(port).unwrap_err().starts_with("connect"));
    }
}
