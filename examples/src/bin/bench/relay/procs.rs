//! The processes of the figure: `callapi-signal-server` as a child (this binary re-executed
//! with `--serve-ws`, as figure 4 runs it), and CPU time per process from `/proc/<pid>/stat`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::common::{Res, WAIT};

/// The signal server child process; killed on drop.
pub struct ServerChild {
    _child: Child,
    /// Its process id.
    pub pid: u32,
    /// Its listening address on loopback.
    pub addr: SocketAddr,
}

impl ServerChild {
    /// Starts it and waits for its `listening on <url>` line.
    pub async fn start() -> Res<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--serve-ws")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("server child has no pid")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let line = tokio::time::timeout(WAIT, BufReader::new(stdout).lines().next_line())
            .await
            .map_err(|_| "server child did not start")??
            .ok_or("server child ended")?;
        let addr = line
            .strip_prefix("listening on ws://")
            .and_then(|u| u.split('/').next())
            .ok_or_else(|| format!("unexpected server output: {line}"))?
            .parse()?;
        Ok(Self {
            _child: child,
            pid,
            addr,
        })
    }
}

/// CPU time (user + system, all threads) of process `pid` so far ("self" for this one).
pub fn cpu(pid: &str) -> Res<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let (_, rest) = stat.rsplit_once(')').ok_or("no command name in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Res<u64> { Ok(fields.get(i).ok_or("short stat")?.parse()?) };
    // `rest` starts at field 3: utime is field 14, stime field 15.
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_secs_f64(total as f64 / clock_ticks() as f64))
}

/// Clock ticks per second (`AT_CLKTCK` of the auxiliary vector; 100 if unreadable).
fn clock_ticks() -> u64 {
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
