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
    Some(Duration::from_micros(
        (utime + stime) * 1_000_000 / clock_ticks(),
    ))
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

/// CPU time spent in processes so far, summed over all cores: user, nice,
/// system and steal from the `cpu` line of `/proc/stat`. Interrupt and
/// softirq time are left out: loopback TCP processing lands there, and it
/// belongs to the benchmark's own traffic, not to other programs.
pub fn machine_busy() -> Option<Duration> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let t: Vec<u64> = line
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // Fields: user nice system idle iowait irq softirq steal ...
    let busy = t.first()? + t.get(1)? + t.get(2)? + t.get(7)?;
    Some(Duration::from_micros(busy * 1_000_000 / clock_ticks()))
}

/// CPU time used by this process's waited-for children so far.
pub fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct we pass.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as u64
}
