//! The io_uring backend of the binary: it runs where the kernel allows it,
//! and where io_uring is refused (a seccomp filter, as in containers) the
//! binary serves with epoll and says so in one log line, however many
//! loops it runs.
//!
//! The filter is installed by `tests/tools/without_uring.py` with Debian's
//! python3-seccomp (`.ci/run` installs it); the test fails if it is missing.

mod common;

use common::ChildServer;

/// Echo one message, stop the server, and return what it logged.
fn echo_and_stop(mut server: ChildServer) -> String {
    let (mut ws, _) = tungstenite::connect(format!("ws://{}/", server.addr)).expect("connect");
    ws.send(tungstenite::Message::text("over whichever backend"))
        .unwrap();
    let back = ws.read().unwrap();
    assert_eq!(back.into_text().unwrap().as_str(), "over whichever backend");
    ws.close(None).unwrap();
    server.stop_and_log()
}

#[test]
fn io_uring_serves_where_the_kernel_allows_it() {
    // This machine (and CI's) allows io_uring: a fallback here would mean
    // the suites run with ZEROWS_IO=uring tested epoll.
    let args = ["--io", "uring", "--threads", "2"];
    let log = echo_and_stop(ChildServer::spawn_logging(&[], &args, Some("info")));
    assert!(log.contains("2 event loop(s) on uring"), "{log}");
    assert!(!log.contains("unavailable"), "{log}");
}

#[test]
fn refused_io_uring_falls_back_to_epoll_with_one_log_line() {
    let wrapper = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/without_uring.py");
    let args = ["--io", "uring", "--threads", "2"];
    let prefix = ["/usr/bin/python3", wrapper];
    let log = echo_and_stop(ChildServer::spawn_logging(&prefix, &args, Some("info")));
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("unavailable")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("io_uring unavailable") && warnings[0].contains("serving with epoll"),
        "{log}"
    );
    assert!(log.contains("2 event loop(s) on epoll"), "{log}");
}
