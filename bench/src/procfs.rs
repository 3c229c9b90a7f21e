//! Reading a process's CPU time and memory from `/proc` (Linux only).

use std::fs;
use std::time::Duration;

/// User + system CPU time consumed so far by process `pid` (all its threads).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces:
    // split after the last ')'. Then utime and stime are fields 14 and 15,
    // i.e. index 11 and 12 of what follows the name.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros((utime + stime) * 1_000_000 / ticks))
}

/// A `kB` field of `/proc/PID/status`, e.g. `VmRSS` (current resident set)
/// or `VmHWM` (peak resident set), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(field)?.strip_prefix(':')?;
        value.split_whitespace().next()?.parse().ok()
    })
}

/// Number of threads of process `pid`.
pub fn threads(pid: u32) -> Option<u64> {
    status_kib(pid, "Threads")
}
