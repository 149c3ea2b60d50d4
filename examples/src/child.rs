//! A server run as a child process of a measuring program (the bench, the soak), so that its
//! `/proc` figures are its own: the program re-executes itself with a hidden flag; the child
//! prints `listening on <scheme>://<addr>[/path]` ([`announce_and_wait`]) and serves until
//! its stdin closes; the parent reads that line ([`ChildServer::start`]).

use std::io::{Error, ErrorKind, Result};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// The child's side: prints `listening on <url>` on stdout and returns when stdin closes (the
/// parent stopped or ended); the caller then shuts its server down.
pub async fn announce_and_wait(url: &str) -> Result<()> {
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening on {url}\n").as_bytes())
        .await?;
    out.flush().await?;
    let mut sink = Vec::new();
    // A read error means the same as end of input here: the parent is gone.
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    Ok(())
}

/// The parent's side: this program re-executed with `flag`; killed on drop.
#[derive(Debug)]
pub struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Its process id (for `/proc/<pid>/…`).
    pub pid: u32,
    /// The URL it printed.
    pub url: String,
    /// Its socket address.
    pub addr: SocketAddr,
}

impl ChildServer {
    /// Starts `<this program> <flag>` (logging at `RUST_LOG=warn`) and waits, at most
    /// `within`, for its `listening on` line.
    pub async fn start(flag: &str, within: Duration) -> Result<Self> {
        let bad = |what: String| Error::new(ErrorKind::InvalidData, what);
        let mut child = Command::new(std::env::current_exe()?)
            .arg(flag)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| bad("server child has no pid".into()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| bad("server child has no stdout".into()))?;
        let line = tokio::time::timeout(within, BufReader::new(stdout).lines().next_line())
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::TimedOut,
                    format!("server child {flag} did not start within {within:?}"),
                )
            })??
            .ok_or_else(|| bad(format!("server child {flag} ended before listening")))?;
        let url = line
            .strip_prefix("listening on ")
            .ok_or_else(|| bad(format!("unexpected server output: {line}")))?
            .to_owned();
        let addr = url
            .split("://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| bad(format!("no address in {url}")))?;
        Ok(Self {
            child,
            stdin,
            pid,
            url,
            addr,
        })
    }

    /// The path of its URL (`/v1/signal`, or empty).
    pub fn path(&self) -> &str {
        let rest = self.url.split("://").nth(1).unwrap_or_default();
        rest.find('/').map_or("", |i| &rest[i..])
    }

    /// Closes its stdin (it shuts down) and waits, at most `within`, for it to exit
    /// successfully; kills it if it does not.
    pub async fn stop(mut self, within: Duration) -> Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if status.success() {
                    Ok(())
                } else {
                    Err(Error::other(format!("server child exited with {status}")))
                }
            }
            Err(_) => {
                self.child.kill().await?;
                Err(Error::new(
                    ErrorKind::TimedOut,
                    format!("server child did not stop within {within:?} of its stdin closing"),
                ))
            }
        }
    }
}
