//! What the end-to-end tests of the generator share: servers on free
//! loopback ports, stopped when their guard drops, and bounded runs of the
//! generator with its `--json` summary.

// Each test file uses part of this.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const GENERATOR: &str = env!("CARGO_BIN_EXE_zerows-loadtest");

/// A child process, killed and reaped on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_listening(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        assert!(Instant::now() < deadline, "server on {port} never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Run the generator's `subcommand` against `url` with `extra` arguments,
/// within 60 s; returns (exit code, parsed --json summary).
pub fn run_generator(subcommand: &str, url: &str, extra: &[&str]) -> (i32, Value) {
    let port = url.rsplit(':').next().unwrap_or("0");
    let port: String = port.chars().take_while(char::is_ascii_digit).collect();
    let dir = std::env::temp_dir().join(format!(
        "zerows-lt-{subcommand}-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("out.json");
    let mut child = Command::new(GENERATOR)
        .arg(subcommand)
        .arg(url)
        .args(["--quiet", "--json"])
        .arg(&json)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("start generator");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("generator did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json written")).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    (status.code().unwrap_or(-1), v)
}
