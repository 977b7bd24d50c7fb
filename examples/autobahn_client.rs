//! The Autobahn TestSuite's client under test: it asks a fuzzing server
//! how many cases it has, echoes every message of each case back as it
//! came (text as text, binary as binary) until the server closes, then
//! asks for the reports. `tests/autobahn/client.sh` runs it against
//! kosoku in fuzzingserver mode.
//!
//! ```text
//! cargo run --release --example autobahn_client -- ws://127.0.0.1:9001 zerows
//! ```
//!
//! A case ending in an error is not the driver's failure: many cases send
//! frames a client must refuse, and the report judges how it refused. The
//! exit status is non-zero only when the driver itself cannot do its part:
//! no case count, a case it could not connect to, the reports not asked
//! for, or a case past its time.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use zerows::{Client, ClientConfig, ClientError, DeflateOffer, Message, MessageKind};

/// The largest cases (9.1.6, 9.2.6) send 16 MiB messages; leave room.
const MAX_MESSAGE: u64 = 32 << 20;
/// How long one receive may wait: the cases send without pauses longer than
/// a few seconds, so silence past this means a case is stuck.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one case may take in all (the slowest, in 9.x, take under a
/// second here).
const CASE_TIME: Duration = Duration::from_secs(120);
/// More messages than any case sends (9.7.x and 9.8.x send 1,000).
const CASE_MESSAGES: u64 = 100_000;
/// More cases than the suite has (about 520 with compression).
const MAX_CASES: u32 = 10_000;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or("ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or("zerows".into());
    let base = base.trim_end_matches('/');
    match run(base, &agent) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(bad) => {
            eprintln!("autobahn_client: {bad} case(s) could not be driven to their end");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("autobahn_client: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Drive every case; returns how many could not be driven.
fn run(base: &str, agent: &str) -> Result<u32, String> {
    let count = case_count(base)?;
    println!("{count} cases");
    let mut bad = 0;
    for case in 1..=count {
        let url = format!("{base}/runCase?case={case}&agent={agent}");
        let t0 = Instant::now();
        match run_case(&url) {
            Ok(outcome) => println!("case {case}: {outcome} ({} ms)", t0.elapsed().as_millis()),
            Err(e) => {
                println!("case {case}: DRIVER FAILURE: {e}");
                bad += 1;
            }
        }
    }
    update_reports(base, agent)?;
    Ok(bad)
}

/// permessage-deflate is offered as a browser offers it, and used as a
/// browser uses it: every message compressed, whatever its size. (The
/// server accepts it in the compression cases, groups 12 and 13, only.
/// There kosoku 0.1.0 errors on an echo sent uncompressed, which RFC 7692
/// allows: its Python 3 port of the cases hashes such a message as a
/// string. With the default threshold, 56 of the 216 cases ended so.)
fn config() -> ClientConfig {
    let offer = DeflateOffer {
        threshold: 0,
        ..DeflateOffer::default()
    };
    ClientConfig::new().max_message(MAX_MESSAGE).deflate(offer)
}

fn case_count(base: &str) -> Result<u32, String> {
    let url = format!("{base}/getCaseCount");
    let mut ws = Client::connect_with(&url, &config()).map_err(|e| format!("{url}: {e}"))?;
    ws.set_read_timeout(Some(READ_TIMEOUT));
    let count = match ws.recv() {
        Ok(Some(Message::Text(t))) => t.trim().parse::<u32>().ok(),
        Ok(_) => None,
        Err(e) => return Err(format!("{url}: {e}")),
    };
    let count = count
        .filter(|n| *n <= MAX_CASES)
        .ok_or_else(|| format!("{url}: no case count"))?;
    // The server closes after the count; answer it.
    let _ = ws.close(1000, "");
    Ok(count)
}

/// Echo one case's messages until the server closes; what ended it, or
/// why the driver could not play its part.
fn run_case(url: &str) -> Result<String, String> {
    let mut ws = Client::connect_with(url, &config()).map_err(|e| format!("connect: {e}"))?;
    ws.set_read_timeout(Some(READ_TIMEOUT));
    let deadline = Instant::now() + CASE_TIME;
    // The message is copied out of the client's buffers because sending
    // needs the client, which the received message borrows.
    let mut copy = Vec::new();
    let mut echoed = 0u64;
    while echoed < CASE_MESSAGES {
        if Instant::now() >= deadline {
            return Err(format!("still open after {CASE_TIME:?}"));
        }
        let kind = match ws.recv() {
            Ok(Some(msg)) => {
                copy.clear();
                copy.extend_from_slice(msg.as_bytes());
                msg.kind()
            }
            Ok(None) => {
                let code = ws.close_frame().and_then(|c| c.code);
                return Ok(format!("closed by the server ({code:?}), {echoed} echoed"));
            }
            Err(e) => return ended(e, echoed),
        };
        let msg = match kind {
            MessageKind::Text => match std::str::from_utf8(&copy) {
                Ok(text) => Message::Text(text),
                Err(_) => return Err("a text message that is not UTF-8".into()),
            },
            MessageKind::Binary => Message::Binary(&copy),
        };
        if let Err(e) = ws.send(msg) {
            return ended(e, echoed);
        }
        echoed += 1;
    }
    Err(format!("more than {CASE_MESSAGES} messages"))
}

/// A case that ended in an error: the client's answer to a broken rule or
/// a dropped connection is for the report to judge; a receive that timed
/// out is a stuck case.
fn ended(e: ClientError, echoed: u64) -> Result<String, String> {
    match e {
        ClientError::Io(ref io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(format!(
                "no frame for {READ_TIMEOUT:?} after {echoed} echoed"
            ))
        }
        e => Ok(format!("ended: {e}, {echoed} echoed")),
    }
}

fn update_reports(base: &str, agent: &str) -> Result<(), String> {
    let url = format!("{base}/updateReports?agent={agent}");
    let mut ws = Client::connect_with(&url, &config()).map_err(|e| format!("{url}: {e}"))?;
    ws.set_read_timeout(Some(READ_TIMEOUT));
    // The server writes the reports and ends the connection, with or
    // without a close: either way is fine.
    for _ in 0..CASE_MESSAGES {
        if !matches!(ws.recv(), Ok(Some(_))) {
            return Ok(());
        }
    }
    Err(format!("{url}: the connection did not end"))
}
