//! Why a `fanout` run could not be made, as opposed to a run that found
//! faults (a [`FanoutSummary`](super::FanoutSummary) with errors counted).
//!
//! Invariants: every variant is a failure of the run itself (arguments,
//! the open-file limit, epoll, strace, writing the output) and means exit
//! status 2; faults of the server or of a connection are counted in the
//! summary and never become a `FanoutError`.

use std::path::PathBuf;

use crate::strace;

#[derive(Debug)]
pub enum FanoutError {
    Args(String),
    /// The open-file limit (soft, after raising it) and what is needed.
    Files(u64, u64),
    Io(&'static str, std::io::Error),
    Strace(strace::StraceError),
    Output(PathBuf, std::io::Error),
}

impl std::fmt::Display for FanoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FanoutError::Args(e) => write!(f, "{e}"),
            FanoutError::Files(have, need) => write!(
                f,
                "the open-file limit is {have}, and {need} descriptors are needed (the subscribers and a few more)"
            ),
            FanoutError::Io(what, e) => write!(f, "{what}: {e}"),
            FanoutError::Strace(e) => write!(f, "{e}"),
            FanoutError::Output(p, e) => write!(f, "cannot write {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for FanoutError {}
