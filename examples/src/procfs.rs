//! What `/proc` says about a process: resident memory, open descriptors, CPU time (Linux
//! only; the bench and the soak measure their server child processes with it).

use std::io::{Error, ErrorKind, Result};
use std::time::Duration;

/// Resident set size of process `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no VmRSS in /proc status"))?;
    Ok(kib * 1024)
}

/// Open file descriptors of process `pid` (entries of `/proc/<pid>/fd`).
pub fn fd_count(pid: u32) -> Result<u64> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64)
}

/// CPU time (user + system, all threads) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    stat_cpu(&pid.to_string())
}

/// CPU time (user + system, all threads, exited ones included) of this process so far.
pub fn own_cpu_time() -> Result<Duration> {
    stat_cpu("self")
}

/// utime + stime of `/proc/<pid>/stat` (`pid` a number or `self`).
fn stat_cpu(pid: &str) -> Result<Duration> {
    let bad = |what: &str| Error::new(ErrorKind::InvalidData, format!("/proc/{pid}/stat: {what}"));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| bad("no command name"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |k: usize| -> Result<u64> {
        fields
            .get(k)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("short or malformed"))
    };
    // utime and stime: fields 14 and 15 of stat(5), so indices 11 and 12 after the name.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks() as f64))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`): `AT_CLKTCK` (17) of the auxiliary vector,
/// 100 if it cannot be read.
pub fn clock_ticks() -> u64 {
    const AT_CLKTCK: u64 = 17;
    let word = |b: &[u8]| -> Option<u64> { Some(u64::from_ne_bytes(b.try_into().ok()?)) };
    std::fs::read("/proc/self/auxv")
        .ok()
        .and_then(|auxv| {
            auxv.chunks_exact(16).find_map(|pair| {
                let (key, value) = pair.split_at(8);
                (word(key)? == AT_CLKTCK).then(|| word(value)).flatten()
            })
        })
        .filter(|t| *t > 0)
        .unwrap_or(100)
}
