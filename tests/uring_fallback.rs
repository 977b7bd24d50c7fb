//! The io_uring backend of the binary: it runs where the kernel allows it,
//! and where io_uring is refused (a seccomp filter, as in containers) the
//! binary serves with epoll and says so in one log line, however many
//! loops it runs.
//!
//! The filter is installed by `tests/tools/without_uring.py` with Debian's
//! python3-seccomp (`.ci/run` installs it); the test fails if it is missing.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod common;

struct Run {
    child: Child,
    addr: String,
}

fn start(prefix: &[&str], args: &[&str]) -> Run {
    let bin = env!("CARGO_BIN_EXE_zerows");
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("ZEROWS_IO")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn zerows");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .strip_prefix("zerows listening on ws://")
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("no banner: {line:?}"))
        .to_string();
    Run { child, addr }
}

/// Echo one message, stop the server, and return what it logged.
fn echo_and_stop(mut run: Run) -> String {
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/", run.addr)).expect("connect");
    ws.send(tungstenite::Message::text("over whichever backend"))
        .unwrap();
    let back = ws.read().unwrap();
    assert_eq!(back.into_text().unwrap().as_str(), "over whichever backend");
    ws.close(None).unwrap();
    common::send_signal(&run.child, "TERM");
    assert_eq!(
        common::wait_exit(&mut run.child, Duration::from_secs(10)),
        Some(0)
    );
    let mut log = String::new();
    run.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    log
}

#[test]
fn io_uring_serves_where_the_kernel_allows_it() {
    // This machine (and CI's) allows io_uring: a fallback here would mean
    // the suites run with ZEROWS_IO=uring tested epoll.
    let log = echo_and_stop(start(&[], &["--io", "uring", "--threads", "2"]));
    assert!(log.contains("2 event loop(s) on uring"), "{log}");
    assert!(!log.contains("unavailable"), "{log}");
}

#[test]
fn refused_io_uring_falls_back_to_epoll_with_one_log_line() {
    let wrapper = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/without_uring.py");
    let log = echo_and_stop(start(
        &["/usr/bin/python3", wrapper],
        &["--io", "uring", "--threads", "2"],
    ));
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("unavailable")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("io_uring unavailable") && warnings[0].contains("serving with epoll"),
        "{log}"
    );
    assert!(log.contains("2 event loop(s) on epoll"), "{log}");
}
