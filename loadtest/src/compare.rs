//! Comparing servers: the same matrix of runs against each, interleaved.
//!
//! Invariants: servers run one at a time, each freshly started for each run
//! (so peak RSS belongs to that run) on a loopback port, pinned to CPU 0 with
//! the generator on CPU 1 when `taskset` exists; runs are interleaved
//! (A B C A B C …) so slow drift on a noisy machine spreads over all servers;
//! every child process is waited for with a deadline and killed if late.
//! Every server in the table has a distinct label. With `--reply json` each
//! server is its JSON variant (or skipped when it has none) and every reply is
//! verified as that JSON. Results are reported as medians with min–max and
//! the ratio to the first server of the table. Allocations per message are
//! a measurement only for the servers that count them (the Go servers, see
//! `go`); a server that should have counted and did not fails its run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;
use serde_json::Value;

use crate::args::Mode;
use crate::payload::Pattern;
use crate::reply::ReplyMode;

mod go;

use go::{Allocs, Counted};

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Servers to compare, in order; ratios are to the first one that runs.
    /// Besides the built-in names, `NAME=PATH` runs the binary at PATH the
    /// way zerows is run (`PATH --listen ADDR`; with --reply json, `PATH
    /// ADDR` like the json_reply example), labelled NAME.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "zerows,tokio-tungstenite,tokio-tungstenite-current,tungstenite-threads,fastwebsockets"
    )]
    pub servers: Vec<String>,
    /// Append the Go echo servers (go-gorilla, go-nhooyr, go-x-net; the
    /// group `go` in --servers names the same), built next to this program
    /// by `loadtest/peers-go/build.sh`. Their allocations per message are
    /// read from the Go runtime.
    #[arg(long)]
    pub go: bool,
    /// The zerows server binary [default: `zerows` next to this program].
    #[arg(long)]
    pub zerows: Option<PathBuf>,
    /// The zerows JSON server (`cargo build --release --examples`), run for
    /// `zerows` with --reply json; it takes the address as its argument
    /// [default: `examples/json_reply` next to this program].
    #[arg(long)]
    pub zerows_json: Option<PathBuf>,
    /// Listen on ports from this one up (the first free), rather than on
    /// ports the kernel picks: keeps the servers inside a chosen range.
    #[arg(long)]
    pub port_base: Option<u16>,
    /// What the servers answer: echo, or a JSON object for each text
    /// message (see `run --reply`). Passed on to every generator run.
    #[arg(long, value_enum, default_value = "echo")]
    pub reply: ReplyMode,
    /// What follows each payload's header (see `run --payload`). Passed on
    /// to every generator run.
    #[arg(long, value_enum, default_value = "random")]
    pub payload: Pattern,
    /// Offer permessage-deflate in every generator run (see `run
    /// --deflate`); servers that decline it run uncompressed.
    #[arg(long)]
    pub deflate: bool,
    /// Connection counts of the matrix [default: 100,1000; --quick: 100].
    #[arg(long, value_delimiter = ',')]
    pub connections: Option<Vec<u32>>,
    /// Payload sizes of the matrix [default: 32,1024,16384; --quick: 32,1024].
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
    /// Modes of the matrix.
    #[arg(
        long,
        value_delimiter = ',',
        value_enum,
        default_value = "pingpong,pipelined"
    )]
    pub modes: Vec<Mode>,
    /// Messages in flight per connection when pipelined.
    #[arg(long, default_value_t = 16)]
    pub inflight: u32,
    /// Runs per cell and server [default: 3; --quick: 1].
    #[arg(long)]
    pub repetitions: Option<u32>,
    /// Seconds of sending per run, after the warm-up [default: 3; --quick: 1].
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seconds of warm-up per run [default: 1; --quick: 0.25].
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Small matrix: 1 repetition, 1 s runs, 100 connections, 32 B and 1 KiB
    /// (options given explicitly still apply).
    #[arg(long)]
    pub quick: bool,
    /// Do not pin server and generator to separate CPUs.
    #[arg(long)]
    pub no_pin: bool,
    /// Also write the markdown table here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also write every run's raw figures here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug)]
pub enum CompareError {
    UnknownServer(String),
    BadEntry(String),
    Duplicate(String),
    Missing(String, PathBuf),
    NoServers,
    Io(&'static str, std::io::Error),
}

impl std::fmt::Display for CompareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompareError::UnknownServer(s) => write!(
                f,
                "unknown server {s:?} (zerows, tokio-tungstenite, tokio-tungstenite-current, tungstenite-threads, fastwebsockets, go-gorilla, go-nhooyr, go-x-net, go, or NAME=PATH)"
            ),
            CompareError::BadEntry(s) => write!(
                f,
                "--servers entry {s:?}: NAME=PATH needs a NAME of letters, digits, '.', '_' or '-' and a PATH"
            ),
            CompareError::Duplicate(s) => write!(f, "server {s:?} is listed twice"),
            CompareError::Missing(s, p) => write!(f, "{s}: {} not found (build it first)", p.display()),
            CompareError::NoServers => write!(f, "no server to run"),
            CompareError::Io(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for CompareError {}

/// How a server is told its listening address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Listen {
    /// `PROGRAM --listen ADDR EXTRA…` (zerows and the peers).
    Flag,
    /// `PROGRAM ADDR EXTRA…` (the zerows examples).
    Positional,
}

#[derive(Debug, Clone, PartialEq)]
struct Server {
    /// Its label in the table.
    name: String,
    program: PathBuf,
    listen: Listen,
    extra: Vec<&'static str>,
    allocs: Counted,
}

/// What one `--servers` entry stands for, given the reply mode; `None` when
/// it has no server for that mode. `peers` is the directory of the peer
/// binaries.
fn resolve(entry: &str, args: &CompareArgs, peers: &Path) -> Result<Option<Server>, CompareError> {
    let json = args.reply == ReplyMode::Json;
    let server = |name: &str, program: PathBuf, listen, extra| Server {
        name: name.to_string(),
        program,
        listen,
        extra,
        allocs: Counted::No,
    };
    // The zerows way: its echo server, or the json_reply example.
    let zerows_like = |name: &str, echo: PathBuf, json_reply: PathBuf| match json {
        false => server(name, echo, Listen::Flag, vec![]),
        true => server(name, json_reply, Listen::Positional, vec![]),
    };
    let service = if json { "json" } else { "echo" };
    let tokio = |name: &str, runtime| {
        server(
            name,
            peers.join("peer-tokio-tungstenite"),
            Listen::Flag,
            vec!["--runtime", runtime, "--service", service],
        )
    };
    if let Some((name, path)) = entry.split_once('=') {
        let label_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !label_ok || path.is_empty() {
            return Err(CompareError::BadEntry(entry.into()));
        }
        return Ok(Some(zerows_like(name, path.into(), path.into())));
    }
    if let Some(binary) = go::binary(entry) {
        if json {
            return Ok(None);
        }
        return Ok(Some(Server {
            allocs: Counted::Memstats,
            ..server(entry, peers.join(binary), Listen::Flag, vec![])
        }));
    }
    Ok(Some(match entry {
        // Found next to this program, where the workspace builds both, not
        // where the source was: a build elsewhere (CARGO_TARGET_DIR) works.
        "zerows" => Server {
            allocs: if json { Counted::No } else { Counted::ByTest },
            ..zerows_like(
                entry,
                args.zerows.clone().unwrap_or_else(|| peers.join("zerows")),
                args.zerows_json
                    .clone()
                    .unwrap_or_else(|| peers.join("examples").join("json_reply")),
            )
        },
        "tokio-tungstenite" => tokio(entry, "multi"),
        "tokio-tungstenite-current" => tokio(entry, "current"),
        "tungstenite-threads" | "fastwebsockets" if json => return Ok(None),
        "tungstenite-threads" => server(
            entry,
            peers.join("peer-tungstenite-threads"),
            Listen::Flag,
            vec![],
        ),
        "fastwebsockets" => server(
            entry,
            peers.join("peer-fastwebsockets"),
            Listen::Flag,
            vec![],
        ),
        other => return Err(CompareError::UnknownServer(other.into())),
    }))
}

/// The servers to run, in order: resolved and deduplicated by label; those
/// without a JSON variant are skipped with a message, and a missing binary
/// is an error.
fn servers(args: &CompareArgs, peers: &Path) -> Result<Vec<Server>, CompareError> {
    let mut out: Vec<Server> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for entry in &go::expand(&args.servers, args.go) {
        let Some(s) = resolve(entry, args, peers)? else {
            eprintln!("skipping {entry}: it has no JSON reply variant (--reply json)");
            continue;
        };
        if labels.contains(&s.name) {
            return Err(CompareError::Duplicate(s.name));
        }
        labels.push(s.name.clone());
        out.push(s);
    }
    if let Some(s) = out.iter().find(|s| !s.program.exists()) {
        // Loudly: a comparison quietly missing a server reads as if it had
        // been run.
        return Err(CompareError::Missing(s.name.clone(), s.program.clone()));
    }
    if out.is_empty() {
        return Err(CompareError::NoServers);
    }
    Ok(out)
}

/// The matrix and timings: what was given, else the defaults of `--quick`
/// or of a full comparison.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    connections: Vec<u32>,
    sizes: Vec<usize>,
    repetitions: u32,
    duration: f64,
    warmup: f64,
}

impl Settings {
    fn of(a: &CompareArgs) -> Self {
        let q = a.quick;
        Settings {
            connections: a.connections.clone().unwrap_or_else(|| {
                if q {
                    vec![100]
                } else {
                    vec![100, 1000]
                }
            }),
            sizes: a.sizes.clone().unwrap_or_else(|| {
                if q {
                    vec![32, 1024]
                } else {
                    vec![32, 1024, 16384]
                }
            }),
            repetitions: a.repetitions.unwrap_or(if q { 1 } else { 3 }),
            duration: a.duration.unwrap_or(if q { 1.0 } else { 3.0 }),
            warmup: a.warmup.unwrap_or(if q { 0.25 } else { 1.0 }),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
struct Cell {
    connections: u32,
    size: usize,
    mode: Mode,
}

#[derive(Debug, Clone, Serialize)]
struct Sample {
    server: String,
    cell: Cell,
    repetition: u32,
    ok: bool,
    messages_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    server_cpu_percent: f64,
    generator_cpu_percent: f64,
    server_cpu_us_per_message: f64,
    server_peak_rss_bytes: u64,
    allocs_per_message: Allocs,
    errors: u64,
    note: String,
}

fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn command(pin: Option<&str>, program: &Path) -> Command {
    match pin {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// A free loopback port: the kernel's choice, or the first free from
/// `base` up.
fn free_port(base: Option<u16>) -> std::io::Result<u16> {
    let Some(base) = base else {
        return Ok(std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port());
    };
    (base..=u16::MAX)
        .take(1000)
        .find(|&p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("no free port among the 1000 from {base}"),
            )
        })
}

/// Wait for `child` until `deadline`, then kill it.
fn wait_bounded(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut child: Child) {
    // SIGTERM first so servers can exit tidily; SIGKILL if they linger.
    // SAFETY: kill(2) on the pid of a child we have not reaped yet.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    wait_bounded(&mut child, Instant::now() + Duration::from_secs(3));
}

fn wait_listening(port: u16, child: &mut Child) -> bool {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn one_run(
    args: &CompareArgs,
    set: &Settings,
    s: &Server,
    cell: Cell,
    rep: u32,
    pin: bool,
    tmp: &Path,
) -> Sample {
    let mut sample = Sample {
        server: s.name.clone(),
        cell,
        repetition: rep,
        ok: false,
        messages_per_sec: 0.0,
        p50_us: 0.0,
        p99_us: 0.0,
        server_cpu_percent: 0.0,
        generator_cpu_percent: 0.0,
        server_cpu_us_per_message: 0.0,
        server_peak_rss_bytes: 0,
        allocs_per_message: match s.allocs {
            Counted::ByTest => Allocs::ZeroByTest,
            _ => Allocs::Unmeasured,
        },
        errors: 0,
        note: String::new(),
    };
    let port = match free_port(args.port_base) {
        Ok(p) => p,
        Err(e) => {
            sample.note = format!("no free port: {e}");
            return sample;
        }
    };
    let listen = format!("127.0.0.1:{port}");
    let mut server = command(pin.then_some("0"), &s.program);
    match s.listen {
        Listen::Flag => server.arg("--listen").arg(&listen),
        Listen::Positional => server.arg(&listen),
    };
    let mut server = match server
        .args(&s.extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            sample.note = format!("cannot start: {e}");
            return sample;
        }
    };
    if !wait_listening(port, &mut server) {
        sample.note = "server did not listen".into();
        stop(server);
        return sample;
    }
    let json = tmp.join(format!("run-{}-{port}.json", s.name));
    let me = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("zerows-loadtest"));
    let mode = match cell.mode {
        Mode::Pingpong => "pingpong",
        Mode::Pipelined => "pipelined",
        Mode::Rate => "rate",
    };
    let generator = command(pin.then_some("1"), &me)
        .args([
            "run",
            &format!("ws://{listen}/"),
            "--quiet",
            "--threads",
            "1",
        ])
        .args([
            "-c",
            &cell.connections.to_string(),
            "--size",
            &cell.size.to_string(),
        ])
        .args(["--mode", mode, "--inflight", &args.inflight.to_string()])
        .args(["--reply", reply_name(args.reply)])
        .args(payload_args(args))
        .args(["--duration", &(set.warmup + set.duration).to_string()])
        .args(["--warmup", &set.warmup.to_string(), "--drain", "2"])
        .args(["--server-pid", &server.id().to_string()])
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut generator = match generator {
        Ok(g) => g,
        Err(e) => {
            sample.note = format!("cannot start generator: {e}");
            stop(server);
            return sample;
        }
    };
    let limit = Duration::from_secs_f64(set.warmup + set.duration + 60.0);
    let deadline = Instant::now() + limit;
    let allocs = (s.allocs == Counted::Memstats).then(|| {
        go::measure(
            port,
            &mut generator,
            cell.connections,
            set.warmup,
            set.duration,
        )
    });
    let status = wait_bounded(&mut generator, deadline);
    stop(server);
    if status.is_none() {
        sample.note = "generator timed out".into();
        return sample;
    }
    let v: Value = match std::fs::read_to_string(&json)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        Some(v) => v,
        None => {
            sample.note = "no result".into();
            return sample;
        }
    };
    std::fs::remove_file(&json).ok();
    let f = |p: &str| v.pointer(p).and_then(Value::as_f64).unwrap_or(0.0);
    sample.messages_per_sec = f("/messages_per_sec");
    sample.p50_us = f("/latency_us/p50");
    sample.p99_us = f("/latency_us/p99");
    sample.generator_cpu_percent = f("/generator_cpu_percent");
    sample.server_cpu_percent = f("/server/cpu_percent");
    sample.server_cpu_us_per_message = f("/server/cpu_us_per_message");
    sample.server_peak_rss_bytes = f("/server/peak_rss_bytes") as u64;
    sample.errors = f("/error_total") as u64;
    sample.ok = sample.errors == 0;
    if !sample.ok {
        let first = v
            .pointer("/first_error")
            .and_then(Value::as_str)
            .unwrap_or("");
        sample.note = format!("{} errors, first: {first}", sample.errors);
        return sample;
    }
    match allocs {
        Some(Ok(a)) => sample.allocs_per_message = Allocs::PerMessage(a),
        // A server that should have been counted and was not fails the
        // run: a blank cell would read as if nothing were allocated.
        Some(Err(e)) => {
            sample.ok = false;
            sample.note = format!("allocations not counted: {e}");
        }
        None => {}
    }
    sample
}

/// The generator options for the payload pattern and compression.
fn payload_args(a: &CompareArgs) -> Vec<&'static str> {
    let pattern = match a.payload {
        Pattern::Random => "random",
        Pattern::Json => "json",
    };
    let mut v = vec!["--payload", pattern];
    if a.deflate {
        v.push("--deflate");
    }
    v
}

fn reply_name(r: ReplyMode) -> &'static str {
    match r {
        ReplyMode::Echo => "echo",
        ReplyMode::Json => "json",
    }
}

/// The 1-minute load average, to show how busy the shared machine was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

/// Which side ran out of CPU, judged from percent of one core.
fn saturated(server: f64, generator: f64) -> &'static str {
    match (server >= 90.0, generator >= 90.0) {
        (true, true) => "both",
        (true, false) => "server",
        (false, true) => "generator",
        (false, false) => "neither",
    }
}

/// The markdown table; `names` in table order, ratios are to `names[0]`.
fn table(samples: &[Sample], cells: &[Cell], names: &[String], header: &str) -> String {
    let mut o = String::new();
    let first = names.first().map(String::as_str).unwrap_or("");
    o.push_str(header);
    o.push_str(&format!("\n| conns | size | mode | server | msg/s median (min–max) | vs {first} | p50 µs | p99 µs | server µs CPU/msg | allocs/msg | peak RSS MiB | server CPU % | gen CPU % | saturated | errors |\n"));
    o.push_str("|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
    let mut by_test = false;
    for c in cells {
        let of = |name: &str| -> Vec<&Sample> {
            samples
                .iter()
                .filter(|s| s.cell == *c && s.server == name)
                .collect()
        };
        let base = {
            let mut v: Vec<f64> = of(first)
                .iter()
                .filter(|s| s.ok)
                .map(|s| s.messages_per_sec)
                .collect();
            median(&mut v)
        };
        for name in names {
            let runs = of(name);
            let ok: Vec<&&Sample> = runs.iter().filter(|s| s.ok).collect();
            let med = |g: &dyn Fn(&Sample) -> f64| {
                let mut v: Vec<f64> = ok.iter().map(|s| g(s)).collect();
                median(&mut v)
            };
            let rates: Vec<f64> = ok.iter().map(|s| s.messages_per_sec).collect();
            let (lo, hi) = rates
                .iter()
                .fold((f64::INFINITY, 0.0f64), |(a, b), &r| (a.min(r), b.max(r)));
            let m = med(&|s| s.messages_per_sec);
            let ratio = if base > 0.0 {
                format!("{:.2}×", m / base)
            } else {
                "–".into()
            };
            let scpu = med(&|s| s.server_cpu_percent);
            let gcpu = med(&|s| s.generator_cpu_percent);
            let rss = ok
                .iter()
                .map(|s| s.server_peak_rss_bytes)
                .max()
                .unwrap_or(0);
            let errors: u64 = runs.iter().map(|s| s.errors).sum();
            let failed = runs.len() - ok.len();
            let errs = if failed > 0 {
                let notes: Vec<&str> = runs
                    .iter()
                    .filter(|s| !s.ok)
                    .map(|s| s.note.as_str())
                    .collect();
                format!("{errors} ({failed} failed run(s): {})", notes.join("; "))
            } else {
                errors.to_string()
            };
            let mode = match c.mode {
                Mode::Pingpong => "pingpong",
                Mode::Pipelined => "pipelined",
                Mode::Rate => "rate",
            };
            let range = if ok.is_empty() {
                "–".to_string()
            } else {
                format!("**{}** ({}–{})", si(m), si(lo), si(hi))
            };
            let allocs = go::cell(ok.iter().map(|s| s.allocs_per_message));
            by_test |= allocs == go::BY_TEST;
            o.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {:.2} | {} | {:.1} | {:.0} | {:.0} | {} | {} |\n",
                c.connections,
                c.size,
                mode,
                name,
                range,
                ratio,
                med(&|s| s.p50_us),
                med(&|s| s.p99_us),
                med(&|s| s.server_cpu_us_per_message),
                allocs,
                rss as f64 / 1048576.0,
                scpu,
                gcpu,
                if ok.is_empty() { "–" } else { saturated(scpu, gcpu) },
                errs
            ));
        }
    }
    if by_test {
        o.push_str(go::BY_TEST_NOTE);
    }
    o
}

/// Run the comparison; returns whether every run was free of errors.
pub fn compare(args: CompareArgs) -> Result<bool, CompareError> {
    let set = Settings::of(&args);
    let me = std::env::current_exe().map_err(|e| CompareError::Io("current_exe", e))?;
    let list = servers(&args, me.parent().unwrap_or(Path::new(".")))?;
    let pin = !args.no_pin && have_taskset();
    let tmp = std::env::temp_dir().join(format!("zerows-compare-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| CompareError::Io("temp dir", e))?;
    let mut cells = Vec::new();
    for &connections in &set.connections {
        for &size in &set.sizes {
            for &mode in &args.modes {
                cells.push(Cell {
                    connections,
                    size,
                    mode,
                });
            }
        }
    }
    let load_before = loadavg();
    let total = cells.len() * list.len() * set.repetitions as usize;
    let mut samples = Vec::with_capacity(total);
    for rep in 0..set.repetitions {
        for &cell in &cells {
            for s in &list {
                let r = one_run(&args, &set, s, cell, rep, pin, &tmp);
                eprintln!(
                    "[{}/{total}] {} {} conns {} B {:?}: {} msg/s{}",
                    samples.len() + 1,
                    s.name,
                    cell.connections,
                    cell.size,
                    cell.mode,
                    si(r.messages_per_sec),
                    if r.note.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", r.note)
                    }
                );
                samples.push(r);
            }
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
    let names: Vec<String> = list.iter().map(|s| s.name.clone()).collect();
    let what = match args.reply {
        ReplyMode::Echo => "Echo servers",
        ReplyMode::Json => "JSON reply servers (each text message p answered with {\"name\":p,\"age\":18,\"description\":p+\"很厉害!!!!\"}, verified byte for byte)",
    };
    let header = format!(
        "{what} on loopback, {} repetition(s) of {} s (+{} s warm-up) each, interleaved; server {}; generator: zerows-loadtest, 1 thread{}; pipelined = {} in flight per connection; {} payloads{}. Load average before/after: {} / {}. CPU % is of one core over the measured window; on loopback each side's sends also pay for the other side's TCP receive processing. Ratios are to {}.{}\n",
        set.repetitions,
        set.duration,
        set.warmup,
        if pin { "pinned to CPU 0" } else { "unpinned" },
        if pin { " pinned to CPU 1" } else { "" },
        args.inflight,
        match args.payload {
            Pattern::Random => "random",
            Pattern::Json => "JSON-like",
        },
        if args.deflate {
            ", permessage-deflate offered"
        } else {
            ""
        },
        load_before,
        loadavg(),
        names[0],
        if list.iter().any(|s| s.allocs == Counted::Memstats) {
            go::HEADER_NOTE
        } else {
            ""
        }
    );
    let md = table(&samples, &cells, &names, &header);
    println!("{md}");
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).map_err(|e| CompareError::Io("--markdown", e))?;
    }
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&samples)
            .map_err(|e| CompareError::Io("--json", std::io::Error::other(e)))?;
        std::fs::write(p, text).map_err(|e| CompareError::Io("--json", e))?;
    }
    Ok(samples.iter().all(|s| s.ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> CompareArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrap {
            #[command(flatten)]
            c: CompareArgs,
        }
        let mut argv = vec!["compare"];
        argv.extend_from_slice(extra);
        Wrap::try_parse_from(argv).unwrap().c
    }

    fn resolved(extra: &[&str], entry: &str) -> Option<Server> {
        resolve(entry, &args(extra), Path::new("/p")).unwrap()
    }

    #[test]
    fn echo_servers() {
        let z = resolved(&[], "zerows").unwrap();
        assert_eq!((z.listen, z.extra.len()), (Listen::Flag, 0));
        assert_eq!(z.program, Path::new("/p/zerows"), "next to this program");
        let z = resolved(&["--zerows", "/x/zerows"], "zerows").unwrap();
        assert_eq!(z.program, Path::new("/x/zerows"));
        let t = resolved(&[], "tokio-tungstenite-current").unwrap();
        assert_eq!(t.program, Path::new("/p/peer-tokio-tungstenite"));
        assert_eq!(t.extra, ["--runtime", "current", "--service", "echo"]);
        let f = resolved(&[], "fastwebsockets").unwrap();
        assert_eq!(f.program, Path::new("/p/peer-fastwebsockets"));
        let ab = resolved(&[], "base=/b/zerows").unwrap();
        assert_eq!(ab.name, "base");
        assert_eq!(ab.program, Path::new("/b/zerows"));
        assert_eq!((ab.listen, ab.extra.len()), (Listen::Flag, 0));
    }

    #[test]
    fn a_missing_binary_is_an_error_not_a_skip() {
        let a = args(&["--servers", "zerows", "--zerows", "/nonexistent/zerows"]);
        match servers(&a, Path::new("/p")) {
            Err(CompareError::Missing(name, path)) => {
                assert_eq!(
                    (name.as_str(), path),
                    ("zerows", "/nonexistent/zerows".into())
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ports_from_a_base() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = taken.local_addr().unwrap().port();
        let got = free_port(Some(p)).unwrap();
        assert!(got > p && got < p.saturating_add(1000), "{got} after {p}");
        assert!(free_port(None).unwrap() > 0);
    }

    #[test]
    fn json_servers() {
        let j = ["--reply", "json", "--zerows-json", "/x/json_reply"];
        let z = resolved(&j, "zerows").unwrap();
        assert_eq!(z.program, Path::new("/x/json_reply"));
        assert_eq!(z.listen, Listen::Positional);
        let t = resolved(&j, "tokio-tungstenite").unwrap();
        assert_eq!(t.extra, ["--runtime", "multi", "--service", "json"]);
        assert_eq!(resolved(&j, "tungstenite-threads"), None);
        assert_eq!(resolved(&j, "fastwebsockets"), None);
        let ab = resolved(&j, "new=/n/json_reply").unwrap();
        assert_eq!(ab.listen, Listen::Positional);
        assert_eq!(ab.program, Path::new("/n/json_reply"));
    }

    #[test]
    fn bad_entries() {
        let a = args(&[]);
        let p = Path::new("/p");
        for bad in ["=x", "a=", "a b=x", "a/b=x"] {
            assert!(
                matches!(resolve(bad, &a, p), Err(CompareError::BadEntry(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            resolve("nginx", &a, p),
            Err(CompareError::UnknownServer(_))
        ));
        let twice = args(&["--servers", "zerows,zerows=/bin/true"]);
        assert!(matches!(
            servers(&twice, p),
            Err(CompareError::Duplicate(_))
        ));
    }

    #[test]
    fn payload_and_deflate_pass_to_every_run() {
        assert_eq!(payload_args(&args(&[])), ["--payload", "random"]);
        let a = args(&["--payload", "json", "--deflate"]);
        assert_eq!(payload_args(&a), ["--payload", "json", "--deflate"]);
    }

    #[test]
    fn quick_keeps_explicit_options() {
        let q = Settings::of(&args(&["--quick"]));
        assert_eq!(q.connections, [100]);
        assert_eq!(q.sizes, [32, 1024]);
        assert_eq!((q.repetitions, q.duration, q.warmup), (1, 1.0, 0.25));
        let q = Settings::of(&args(&["--quick", "--sizes", "32", "--duration", "2"]));
        assert_eq!(q.sizes, [32]);
        assert_eq!(q.duration, 2.0);
        let full = Settings::of(&args(&[]));
        assert_eq!(full.connections, [100, 1000]);
        assert_eq!(full.sizes, [32, 1024, 16384]);
        assert_eq!(
            (full.repetitions, full.duration, full.warmup),
            (3, 3.0, 1.0)
        );
    }

    #[test]
    fn ratios_are_to_the_first_server() {
        let cell = Cell {
            connections: 1,
            size: 32,
            mode: Mode::Pingpong,
        };
        let sample = |server: &str, rate: f64| Sample {
            server: server.into(),
            cell,
            repetition: 0,
            ok: true,
            messages_per_sec: rate,
            p50_us: 0.0,
            p99_us: 0.0,
            server_cpu_percent: 0.0,
            generator_cpu_percent: 0.0,
            server_cpu_us_per_message: 0.0,
            server_peak_rss_bytes: 0,
            allocs_per_message: Allocs::Unmeasured,
            errors: 0,
            note: String::new(),
        };
        let samples = [sample("base", 100.0), sample("zerows", 150.0)];
        let names = ["base".to_string(), "zerows".to_string()];
        let t = table(&samples, &[cell], &names, "");
        assert!(t.contains("| vs base |"), "{t}");
        assert!(t.contains("| base | **100** (100–100) | 1.00× |"), "{t}");
        assert!(t.contains("| zerows | **150** (150–150) | 1.50× |"), "{t}");
    }

    #[test]
    fn medians_and_saturation() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(saturated(99.0, 40.0), "server");
        assert_eq!(saturated(50.0, 95.0), "generator");
        assert_eq!(saturated(10.0, 10.0), "neither");
        assert_eq!(si(1_234_567.0), "1.23M");
    }
}
