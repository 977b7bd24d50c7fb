//! Whether this process can use io_uring, asked once: a kernel that is too
//! old (the backend needs 6.1), `kernel.io_uring_disabled`, or a seccomp
//! filter all make setting up a ring fail, and the loop then serves with
//! epoll, saying so once.

use std::sync::OnceLock;

/// `Ok` if a ring with everything the backend needs can be set up, else why
/// not.
pub fn available() -> Result<(), String> {
    static PROBE: OnceLock<Result<(), String>> = OnceLock::new();
    PROBE
        .get_or_init(|| {
            // On a thread of its own: a ring leaves per-thread kernel state
            // behind (and may signal its thread), which the caller's threads
            // should not inherit.
            std::thread::spawn(|| {
                super::Ring::new(8, 1, 64)
                    .and_then(|mut r| r.enable())
                    .map_err(|e| format!("io_uring unavailable ({e})"))
            })
            .join()
            .unwrap_or_else(|_| Err("io_uring probe failed".into()))
        })
        .clone()
}
