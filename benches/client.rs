//! One blocking client doing send-then-receive round trips against the
//! `zerows` echo server in another process: `zerows::Client` against
//! tungstenite's blocking client. Not a Criterion bench: a fixed workload,
//! run as
//!
//! ```text
//! cargo bench --bench client -- [REPS] [SECONDS]
//! ```
//!
//! (defaults 7 and 2; the words `zerows`, `tungstenite`, `text` or
//! `binary` narrow the run, for a profiler). `cargo bench` builds the server binary
//! (target/release/zerows) before the bench, so a fresh clone needs nothing
//! else. When `taskset` and two cores are there, the server runs on core 1
//! and this process on core 0, so the client's CPU time is its own.
//!
//! Cases: 32 B text and 16 KiB binary. In each repetition, each case runs
//! both clients, interleaved (zerows first in odd repetitions, tungstenite
//! first in even ones), each on a fresh connection, with a
//! short warm-up (echoes compared byte for byte) and then SECONDS of round
//! trips (kind and length checked). Reported per client: round trips per
//! second (median and min–max of the repetitions), the client thread's CPU
//! time per round trip (from /proc/thread-self: on-CPU nanoseconds, and
//! the user/system split in clock ticks), the server's CPU per round trip,
//! and allocation calls on the client thread per round trip and per
//! connect, counted by a global allocator.
//!
//! Each side sends the way it sends cheapest: zerows from a borrowed
//! `&str`/`&[u8]`; tungstenite a `Utf8Bytes`/`Bytes` built once and cloned
//! per message (a reference count, no copy).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Bytes, Utf8Bytes};

struct Counting;

thread_local! {
    // Per thread, so counting adds no shared cache line to the hot path
    // and the banner thread's allocations stay out of the client's count.
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    // `try_with`: the allocator also runs while thread-locals are torn down.
    let _ = CALLS.try_with(|c| c.set(c.get() + 1));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: forwarding the caller's layout to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        // SAFETY: ptr came from System with this layout.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> u64 {
    CALLS.with(Cell::get)
}

/// Longest any socket operation, or the server's start, may block.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Warm-up per run: whichever bound comes first.
const WARM_TIME: Duration = Duration::from_millis(200);
const WARM_MAX: u64 = 5_000;
/// A cap on round trips per run, far above what loopback allows, so the
/// loop is bounded in count as well as in time.
const MAX_ROUND_TRIPS: u64 = 100_000_000;
/// Linux exports CPU times in /proc in units of USER_HZ, 100 on every
/// architecture this runs on.
const TICK_NS: u64 = 10_000_000;

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    text: bool,
    size: usize,
}

const CASES: [Case; 2] = [
    Case {
        name: "32 B text",
        text: true,
        size: 32,
    },
    Case {
        name: "16 KiB binary",
        text: false,
        size: 16 << 10,
    },
];

#[derive(Clone, Copy, PartialEq)]
enum Side {
    Zerows,
    Tungstenite,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Zerows => "zerows::Client",
            Side::Tungstenite => "tungstenite",
        }
    }
}

/// What one measured run gives.
#[derive(Clone, Copy, Default)]
struct Run {
    round_trips: u64,
    secs: f64,
    /// The client thread's on-CPU time (schedstat), or user + system ticks
    /// when schedstat is missing.
    cpu_ns: u64,
    user_ticks: u64,
    sys_ticks: u64,
    server_ticks: u64,
    allocs: u64,
    /// Allocation calls of connecting (dial and handshake).
    connect_allocs: u64,
}

impl Run {
    fn per_sec(&self) -> f64 {
        self.round_trips as f64 / self.secs
    }
    fn cpu_us(&self) -> f64 {
        self.cpu_ns as f64 / 1e3 / self.round_trips as f64
    }
    fn user_us(&self) -> f64 {
        (self.user_ticks * TICK_NS) as f64 / 1e3 / self.round_trips as f64
    }
    fn sys_us(&self) -> f64 {
        (self.sys_ticks * TICK_NS) as f64 / 1e3 / self.round_trips as f64
    }
    fn server_us(&self) -> f64 {
        (self.server_ticks * TICK_NS) as f64 / 1e3 / self.round_trips as f64
    }
    fn allocs_per(&self) -> f64 {
        self.allocs as f64 / self.round_trips as f64
    }
}

/// utime and stime, in ticks, from a /proc stat line.
fn stat_ticks(path: &str) -> (u64, u64) {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    // The command name may hold spaces: fields are counted after its ')'.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    (
        f.get(11).copied().unwrap_or(0),
        f.get(12).copied().unwrap_or(0),
    )
}

/// Nanoseconds this thread has spent on a CPU, when the kernel keeps it.
fn schedstat_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

struct Snapshot {
    at: Instant,
    sched: Option<u64>,
    user: u64,
    sys: u64,
    server: u64,
    allocs: u64,
}

fn snapshot(server_pid: u32) -> Snapshot {
    let (user, sys) = stat_ticks("/proc/thread-self/stat");
    let (su, ss) = stat_ticks(&format!("/proc/{server_pid}/stat"));
    let sched = schedstat_ns();
    // Read last, and first again in `since`, so the /proc reads above
    // stay outside the counted window.
    let allocs = allocs();
    Snapshot {
        at: Instant::now(),
        sched,
        user,
        sys,
        server: su + ss,
        allocs,
    }
}

fn since(a: &Snapshot, server_pid: u32, round_trips: u64) -> Run {
    let allocs = allocs() - a.allocs;
    let secs = a.at.elapsed().as_secs_f64();
    let b = snapshot(server_pid);
    let (user_ticks, sys_ticks) = (b.user - a.user, b.sys - a.sys);
    let cpu_ns = match (a.sched, b.sched) {
        (Some(x), Some(y)) => y - x,
        _ => (user_ticks + sys_ticks) * TICK_NS,
    };
    Run {
        round_trips,
        secs,
        cpu_ns,
        user_ticks,
        sys_ticks,
        server_ticks: b.server - a.server,
        allocs,
        connect_allocs: 0,
    }
}

/// Warm up with round trips whose echo is compared in full, then run
/// round trips for `secs` (each echo's kind and length checked).
fn measure(secs: f64, server_pid: u32, mut round_trip: impl FnMut(bool)) -> Run {
    let warm_until = Instant::now() + WARM_TIME;
    for _ in 0..WARM_MAX {
        round_trip(true);
        if Instant::now() >= warm_until {
            break;
        }
    }
    let span = Duration::from_secs_f64(secs);
    let start = snapshot(server_pid);
    let mut n = 0;
    while n < MAX_ROUND_TRIPS {
        round_trip(false);
        n += 1;
        if start.at.elapsed() >= span {
            break;
        }
    }
    since(&start, server_pid, n)
}

fn payload(case: Case) -> Vec<u8> {
    if case.text {
        b"zerows client bench, text case. "
            .iter()
            .copied()
            .cycle()
            .take(case.size)
            .collect()
    } else {
        (0..case.size).map(|i| (i * 31 + 7) as u8).collect()
    }
}

// The round trips are kept out of line so that a profiler's call count
// of each is the number of round trips (callgrind's Ir per call).

/// `text`: the payload as `&str` for the text case (made once, so UTF-8
/// checking is not charged to the round trip).
#[inline(never)]
fn zerows_round_trip(ws: &mut zerows::Client, text: Option<&str>, p: &[u8], full: bool) {
    match text {
        Some(t) => ws.send_text(t).unwrap(),
        None => ws.send_binary(p).unwrap(),
    }
    let m = ws.recv().unwrap().expect("the server closed");
    assert_eq!(m.kind() == zerows::MessageKind::Text, text.is_some());
    let got = m.as_bytes();
    assert_eq!(got.len(), p.len());
    if full {
        assert!(got == p, "echo differs");
    }
}

type Tungstenite = tungstenite::WebSocket<MaybeTlsStream<TcpStream>>;

#[inline(never)]
fn tungstenite_round_trip(ws: &mut Tungstenite, msg: &tungstenite::Message, p: &[u8], full: bool) {
    ws.send(msg.clone()).unwrap();
    let got = match (msg, ws.read().unwrap()) {
        (tungstenite::Message::Text(_), tungstenite::Message::Text(t)) => Bytes::from(t),
        (tungstenite::Message::Binary(_), tungstenite::Message::Binary(b)) => b,
        (_, other) => panic!("unexpected {other:?}"),
    };
    assert_eq!(got.len(), p.len());
    if full {
        assert!(got == p, "echo differs");
    }
}

fn run_zerows(url: &str, case: Case, secs: f64, server_pid: u32) -> Run {
    let before = allocs();
    let mut ws = zerows::Client::connect(url).expect("zerows connect");
    let connect_allocs = allocs() - before;
    ws.set_read_timeout(Some(TIMEOUT));
    ws.set_write_timeout(Some(TIMEOUT)).unwrap();
    let p = payload(case);
    let text = String::from_utf8(p.clone()).ok().filter(|_| case.text);
    let run = measure(secs, server_pid, |full| {
        zerows_round_trip(&mut ws, text.as_deref(), &p, full)
    });
    ws.close(1000, "").unwrap();
    Run {
        connect_allocs,
        ..run
    }
}

fn run_tungstenite(url: &str, case: Case, secs: f64, server_pid: u32) -> Run {
    let before = allocs();
    let (mut ws, _) = tungstenite::connect(url).expect("tungstenite connect");
    let connect_allocs = allocs() - before;
    match ws.get_ref() {
        MaybeTlsStream::Plain(s) => {
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.set_write_timeout(Some(TIMEOUT)).unwrap();
        }
        _ => unreachable!("ws:// is plain TCP"),
    }
    let p = payload(case);
    // Built once; each send clones it, which bumps a reference count.
    let msg = if case.text {
        tungstenite::Message::Text(Utf8Bytes::from(String::from_utf8(p.clone()).unwrap()))
    } else {
        tungstenite::Message::Binary(Bytes::from(p.clone()))
    };
    let run = measure(secs, server_pid, |full| {
        tungstenite_round_trip(&mut ws, &msg, &p, full)
    });
    ws.close(None).unwrap();
    // Read until the server's close answer, then the end of the stream.
    for _ in 0..16 {
        if ws.read().is_err() {
            break;
        }
    }
    Run {
        connect_allocs,
        ..run
    }
}

/// The echo server, killed when dropped (a failed run leaves nothing).
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(core: Option<usize>) -> Server {
    let bin = env!("CARGO_BIN_EXE_zerows");
    let mut cmd = match core {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &c.to_string(), bin]);
            cmd
        }
        None => Command::new(bin),
    };
    let mut child = cmd
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the zerows binary");
    let out = child.stdout.take().unwrap();
    // The banner is read on another thread so a server that never prints
    // it fails the bench after TIMEOUT instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let r = BufReader::new(out).read_line(&mut line).map(|_| line);
        let _ = tx.send(r);
    });
    let line = match rx.recv_timeout(TIMEOUT) {
        Ok(Ok(line)) => line,
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zerows printed no banner: {other:?}");
        }
    };
    let addr = line
        .strip_prefix("zerows listening on ws://")
        .and_then(|rest| rest.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected banner {line:?}"));
    Server { child, addr }
}

/// Pin this process (all its threads so far, and those it starts later)
/// to core 0; whether it worked.
fn pin_self() -> bool {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        return false;
    }
    Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `median (min–max)` of one figure over the runs.
fn summary(runs: &[Run], f: impl Fn(&Run) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    let med = median(&mut v);
    (med, v[0], v[v.len() - 1])
}

fn rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn main() {
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let args: Vec<f64> = words.iter().filter_map(|a| a.parse().ok()).collect();
    let reps = args.first().map_or(7, |&r| (r as usize).max(1));
    let secs = args.get(1).copied().unwrap_or(2.0).clamp(0.05, 600.0);
    // Optional words narrow the run to one client or one case, for a
    // profiler or strace: zerows, tungstenite, text, binary.
    let has = |w: &str| words.iter().any(|a| a == w);
    let sides: Vec<Side> = [Side::Zerows, Side::Tungstenite]
        .into_iter()
        .filter(|s| match s {
            Side::Zerows => has("zerows") || !has("tungstenite"),
            Side::Tungstenite => has("tungstenite") || !has("zerows"),
        })
        .collect();
    let cases: Vec<Case> = CASES
        .into_iter()
        .filter(|c| {
            (c.text && has("text")) || (!c.text && has("binary")) || !(has("text") || has("binary"))
        })
        .collect();

    // Before any thread starts, so every thread of this process is on it.
    let pinned = pin_self();
    let server = start_server(pinned.then_some(1));
    let pid = server.child.id();
    let url = format!("ws://{}/", server.addr);
    println!(
        "client bench: {reps} reps x {secs} s per client and case; server pid {pid} at {url}; {}",
        if pinned {
            "client on core 0, server on core 1"
        } else {
            "not pinned (no taskset or one core)"
        }
    );
    if schedstat_ns().is_none() {
        println!("no /proc/thread-self/schedstat: client CPU from 10 ms ticks");
    }

    let mut runs = vec![vec![Vec::new(); sides.len()]; cases.len()];
    for rep in 0..reps {
        for (ci, &case) in cases.iter().enumerate() {
            // A B in odd repetitions, B A in even ones: whatever the first
            // or second run of a pair gains (a warm cache, a quiet
            // neighbour) goes to both clients alike.
            let order: Vec<usize> = if rep % 2 == 0 {
                (0..sides.len()).collect()
            } else {
                (0..sides.len()).rev().collect()
            };
            for si in order {
                let side = sides[si];
                let r = match side {
                    Side::Zerows => run_zerows(&url, case, secs, pid),
                    Side::Tungstenite => run_tungstenite(&url, case, secs, pid),
                };
                println!(
                    "rep {}  {:<13}  {:<14}  {:>9} rt/s  {:6.2} us CPU/rt  {:.3} allocs/rt",
                    rep + 1,
                    case.name,
                    side.name(),
                    rate(r.per_sec()),
                    r.cpu_us(),
                    r.allocs_per(),
                );
                runs[ci][si].push(r);
            }
        }
    }

    println!();
    println!(
        "| case | client | round trips/s | ratio | client CPU µs/rt | of which user + sys | server CPU µs/rt | allocs/rt | allocs/connect |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (ci, case) in cases.iter().enumerate() {
        let base = summary(&runs[ci][0], Run::per_sec).0;
        for (si, side) in sides.iter().enumerate() {
            let r = &runs[ci][si];
            let (m, lo, hi) = summary(r, Run::per_sec);
            let (c, clo, chi) = summary(r, Run::cpu_us);
            let u = summary(r, Run::user_us).0;
            let s = summary(r, Run::sys_us).0;
            let sv = summary(r, Run::server_us).0;
            let (a, _, amax) = summary(r, Run::allocs_per);
            let ca = summary(r, |r| r.connect_allocs as f64).0;
            println!(
                "| {} | {} | {} ({}–{}) | {:.2}× | {:.2} ({:.2}–{:.2}) | {:.2} + {:.2} | {:.2} | {} | {:.0} |",
                case.name,
                side.name(),
                rate(m),
                rate(lo),
                rate(hi),
                m / base,
                c,
                clo,
                chi,
                u,
                s,
                sv,
                if amax == 0.0 {
                    "0".to_string()
                } else {
                    format!("{a:.2}")
                },
                ca,
            );
        }
    }
    println!();
    println!("ratio: round trips/s over the first client's (zerows::Client when both run)");
    if sides.len() == 2 {
        // Ratios within each repetition: the two runs of a pair are
        // seconds apart, so the machine's slower drifts cancel out.
        println!();
        for (ci, case) in cases.iter().enumerate() {
            let pairs: Vec<(Run, Run)> = runs[ci][0]
                .iter()
                .copied()
                .zip(runs[ci][1].iter().copied())
                .collect();
            let mut speed: Vec<f64> = pairs
                .iter()
                .map(|(z, t)| z.per_sec() / t.per_sec())
                .collect();
            let mut cpu: Vec<f64> = pairs.iter().map(|(z, t)| t.cpu_us() / z.cpu_us()).collect();
            let sm = median(&mut speed);
            let cm = median(&mut cpu);
            println!(
                "{}, paired by repetition: zerows/tungstenite round trips/s {:.2}× ({:.2}–{:.2}); \
                 tungstenite/zerows client CPU per round trip {:.2}× ({:.2}–{:.2})",
                case.name,
                sm,
                speed[0],
                speed[speed.len() - 1],
                cm,
                cpu[0],
                cpu[cpu.len() - 1],
            );
        }
    }
    drop(server);
}
