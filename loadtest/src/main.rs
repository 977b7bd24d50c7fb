//! zerows-loadtest: a verifying load generator for WebSocket echo (and JSON
//! reply) servers, a fan-out (publish to N subscribers) measurement for
//! chat-like servers, and a harness comparing zerows with reference servers.
//!
//! Invariants: only loopback targets are ever contacted (checked when the URL
//! is parsed); every run ends on its own (all loops are bounded in count and
//! time); the exit status is non-zero whenever any message or connection went
//! wrong, so scripts can rely on it. `run` is the default subcommand. With
//! `--procs`, this executable is also each child process (a hidden
//! `--child K`), reporting to its parent instead of printing.

mod args;
mod child;
mod client;
mod compare;
mod fanout;
mod idle;
mod idle_report;
mod limits;
mod payload;
mod plot;
mod probe;
mod procfs;
mod procs;
mod reply;
mod report;
mod rng;
mod run;
mod socket;
mod split;
mod stats;
mod strace;
mod target;
mod window;
mod wire;
mod worker;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// Put `run` in front of the arguments when no subcommand is named, so
/// `zerows-loadtest ws://…` works.
fn with_default_subcommand() -> Vec<std::ffi::OsString> {
    let mut argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let first = argv.get(1).and_then(|a| a.to_str()).unwrap_or("");
    let known = [
        "run",
        "idle",
        "compare",
        "fanout",
        "help",
        "-h",
        "--help",
        "-V",
        "--version",
    ];
    if argv.len() > 1 && !known.contains(&first) {
        argv.insert(1, "run".into());
    }
    argv
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(with_default_subcommand());
    match cli.command {
        Command::Run(a) if a.conn.child.is_some() => child::run(&a),
        Command::Idle(a) if a.conn.child.is_some() => child::idle(&a),
        Command::Run(a) => match run::run(&a) {
            Ok(s) => {
                if !a.quiet {
                    print!("{}", s.table());
                }
                if let Some(p) = &a.json {
                    if let Err(e) = report::write_json(p, &s) {
                        eprintln!("error: {}", run::RunError::Output(p.clone(), e));
                        return ExitCode::from(2);
                    }
                }
                if let Some(p) = &a.plot {
                    if let Err(e) = std::fs::write(p, plot::svg(&s)) {
                        eprintln!("error: {}", run::RunError::Output(p.clone(), e));
                        return ExitCode::from(2);
                    }
                }
                if s.error_total > 0 || s.messages == 0 {
                    if s.messages == 0 && s.error_total == 0 {
                        eprintln!("error: no message was answered in the measured window");
                    }
                    return ExitCode::from(1);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Idle(a) => match idle::idle(&a) {
            Ok(s) => {
                if !a.quiet {
                    print!("{}", s.table());
                }
                if let Some(p) = &a.json {
                    if let Err(e) = report::write_json(p, &s) {
                        eprintln!("error: {}", run::RunError::Output(p.clone(), e));
                        return ExitCode::from(2);
                    }
                }
                if s.failed() {
                    if a.quiet {
                        eprintln!(
                            "error: {}",
                            s.first_error
                                .as_deref()
                                .unwrap_or("not every connection held")
                        );
                    }
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Fanout(a) => match fanout::fanout(&a) {
            Ok(s) => {
                if !a.quiet {
                    print!("{}", s.table());
                }
                if let Some(p) = &a.json {
                    if let Err(e) = report::write_json(p, &s) {
                        eprintln!("error: {}", fanout::FanoutError::Output(p.clone(), e));
                        return ExitCode::from(2);
                    }
                }
                if s.failed() {
                    if s.error_total == 0 {
                        eprintln!("error: not every measured message reached every subscriber");
                    } else if a.quiet {
                        eprintln!(
                            "error: {}",
                            s.first_error.as_deref().unwrap_or("the run had errors")
                        );
                    }
                    return ExitCode::from(1);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Compare(a) => match compare::compare(a) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
    }
}
