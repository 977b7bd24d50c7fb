//! Counting another process's system calls with `strace -c` over a window.
//!
//! Invariants: strace is attached (`-f`: every thread, and threads started
//! later) only between [`attach`] and [`Tracer::detach`], so the counts
//! cover that window and nothing before it. Detaching interrupts strace
//! with SIGINT, as Ctrl-C would, which makes it detach and write its
//! summary. Its stderr is drained until it exits, so it never blocks on a
//! full pipe. Every wait is bounded and a strace that outlives its deadline
//! is killed. A summary that cannot be read is an error, never a zero.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long strace may take to attach, and to write its summary after
/// SIGINT (it detaches from every thread first).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(10);
const DETACH_TIMEOUT: Duration = Duration::from_secs(20);
/// strace reports each thread it attaches to; after the first report the
/// rest of the process's threads follow within this time.
const ATTACH_SETTLE: Duration = Duration::from_millis(300);

/// The system calls counted, in all threads of the process.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// The `total` row of the summary.
    pub total: u64,
    /// Every system call by name with its count, most frequent first.
    pub calls: Vec<(String, u64)>,
}

/// A running `strace -c -f -p PID`.
pub struct Tracer {
    child: Child,
    out: PathBuf,
    stderr: Option<std::thread::JoinHandle<Vec<String>>>,
}

#[derive(Debug)]
pub struct StraceError(pub String);

impl std::fmt::Display for StraceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "strace: {}", self.0)
    }
}

impl std::error::Error for StraceError {}

/// Attach to every thread of `pid`; returns once strace has reported its
/// first attachment (and a short settle time has passed).
pub fn attach(pid: u32) -> Result<Tracer, StraceError> {
    let out =
        std::env::temp_dir().join(format!("zerows-lt-strace-{}-{pid}.txt", std::process::id()));
    let mut child = Command::new("strace")
        .args(["-c", "-f", "-p", &pid.to_string(), "-o"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StraceError(format!("cannot start strace: {e}")))?;
    let pipe = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel::<String>();
    // Drain stderr until strace exits, passing lines on while anyone listens.
    let stderr = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            tx.send(line.clone()).ok();
            if lines.len() < 64 {
                lines.push(line);
            }
        }
        lines
    });
    let mut tracer = Tracer {
        child,
        out,
        stderr: Some(stderr),
    };
    let deadline = Instant::now() + ATTACH_TIMEOUT;
    let mut said = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left.min(Duration::from_millis(100))) {
            Ok(line) if line.contains("attached") => break,
            Ok(line) => said.push(line),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                tracer.kill();
                return Err(StraceError(format!(
                    "exited before attaching: {}",
                    said.join(" / ")
                )));
            }
        }
        if left.is_zero() {
            tracer.kill();
            return Err(StraceError(format!(
                "did not attach within {ATTACH_TIMEOUT:?}: {}",
                said.join(" / ")
            )));
        }
    }
    std::thread::sleep(ATTACH_SETTLE);
    Ok(tracer)
}

impl Tracer {
    fn kill(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
        if let Some(h) = self.stderr.take() {
            h.join().ok();
        }
        std::fs::remove_file(&self.out).ok();
    }

    /// Stop counting and read the summary.
    pub fn detach(mut self) -> Result<Counts, StraceError> {
        // SAFETY: kill(2) on the pid of a child we have not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
        let deadline = Instant::now() + DETACH_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    self.kill();
                    return Err(StraceError(format!(
                        "did not finish within {DETACH_TIMEOUT:?} of SIGINT"
                    )));
                }
            }
        }
        let said = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&self.out);
        std::fs::remove_file(&self.out).ok();
        let text = text.map_err(|e| StraceError(format!("no summary ({e})")))?;
        parse(&text).ok_or_else(|| {
            StraceError(format!(
                "cannot read the summary {:?} (stderr: {})",
                text.lines().take(4).collect::<Vec<_>>(),
                said.join(" / ")
            ))
        })
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if self.stderr.is_some() {
            self.kill();
        }
    }
}

/// Read the table `strace -c` writes:
///
/// ```text
/// % time     seconds  usecs/call     calls    errors syscall
/// ------ ----------- ----------- --------- --------- ----------------
///  71.05    0.031245           3     10001           writev
/// 100.00    0.043977           4     10206        12 total
/// ```
///
/// The errors column is blank for calls that never failed, so the call
/// count is the fourth field and the name the last.
pub fn parse(text: &str) -> Option<Counts> {
    let mut calls = Vec::new();
    let mut total = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 5 || f.len() > 6 || f[0].parse::<f64>().is_err() {
            continue;
        }
        let (Ok(n), Some(&name)) = (f[3].parse::<u64>(), f.last()) else {
            continue;
        };
        if name == "total" {
            total = Some(n);
        } else {
            calls.push((name.to_string(), n));
        }
    }
    calls.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Some(Counts {
        total: total?,
        calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_summary() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
            \x20 71.05    0.031245           3     10001           writev\n\
            \x20 20.00    0.008000           1       200        12 read\n\
            \x20  8.95    0.004732          23       205           epoll_wait\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
            100.00    0.043977           4     10406        12 total\n";
        let c = parse(text).unwrap();
        assert_eq!(c.total, 10406);
        assert_eq!(
            c.calls,
            [
                ("writev".to_string(), 10001),
                ("epoll_wait".to_string(), 205),
                ("read".to_string(), 200)
            ]
        );
    }

    #[test]
    fn no_total_is_no_summary() {
        assert_eq!(parse(""), None);
        assert_eq!(
            parse("strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n"),
            None
        );
        let empty = "% time     seconds  usecs/call     calls    errors syscall\n\
            ------ ----------- ----------- --------- --------- ----------------\n\
            100.00    0.000000           0         0           total\n";
        assert_eq!(parse(empty).unwrap().total, 0);
    }
}
