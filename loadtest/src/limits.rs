//! Raising the open-file limit so that many connections fit.
//!
//! Invariant: the soft limit is only ever raised, to at most what is needed;
//! the hard limit is raised only if that is needed too (which works as root
//! and fails harmlessly otherwise).

/// Descriptors kept for everything that is not a connection.
const SPARE: u64 = 256;

/// Make room for `connections` sockets; returns the soft limit in force.
pub fn raise_nofile(connections: u64) -> u64 {
    let want = connections + SPARE;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 0;
    }
    if lim.rlim_cur >= want {
        return lim.rlim_cur;
    }
    let mut new = lim;
    new.rlim_cur = want;
    new.rlim_max = lim.rlim_max.max(want);
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
        return want;
    }
    new.rlim_cur = lim.rlim_max;
    new.rlim_max = lim.rlim_max;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &new) } == 0 {
        new.rlim_cur
    } else {
        lim.rlim_cur
    }
}
