//! Reading a process's memory and CPU time from /proc, and our own CPU time.
//!
//! Invariants: every reader returns `None` rather than failing when the
//! process is gone or the file has an unexpected shape; values are converted
//! to bytes and seconds here, so callers never see kB or clock ticks.

/// A `kB` field of /proc/PID/status (e.g. "VmRSS", "VmHWM"), in bytes.
pub fn status_bytes(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_kb(&text, field)
}

/// A `kB` field of a /proc file in "Name:  N kB" lines (status, meminfo), in bytes.
pub fn parse_kb(text: &str, field: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// User plus system CPU seconds of a process (/proc/PID/stat fields 14, 15).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    cpu_split(pid).map(|(user, system)| user + system)
}

/// User and system CPU seconds of a process, apart.
pub fn cpu_split(pid: u32) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<(f64, f64)> {
    // The command name may hold spaces and parentheses; fields resume after
    // the last ')'. utime is then the 12th field, stime the 13th.
    let rest = &text[text.rfind(')')? + 1..];
    let mut f = rest.split_whitespace().skip(11);
    let utime: u64 = f.next()?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = if hz > 0 { hz as f64 } else { 100.0 };
    Some((utime as f64 / hz, stime as f64 / hz))
}

/// This process's CPU seconds (user + system), all threads.
pub fn self_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let s = "Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(parse_kb(s, "VmRSS"), Some(1024 * 1024));
        assert_eq!(parse_kb(s, "VmHWM"), Some(2048 * 1024));
        assert_eq!(parse_kb(s, "VmSwap"), None);
        let st = "12 (a) b) S 1 2 3 4 5 6 7 8 9 10 300 200 0 0";
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        assert_eq!(parse_stat(st), Some((300.0 / hz, 200.0 / hz)));
    }

    #[test]
    fn reads_ourselves() {
        let me = std::process::id();
        assert!(status_bytes(me, "VmRSS").unwrap() > 0);
        assert!(cpu_seconds(me).is_some());
        let (user, system) = cpu_split(me).unwrap();
        assert!(user >= 0.0 && system >= 0.0);
        assert!(self_cpu_seconds() >= 0.0);
    }
}
