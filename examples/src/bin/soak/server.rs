//! `callapi-signal-server` as a child process (this binary re-executed with `--serve-ws`), so
//! that its RSS and descriptors in /proc are the server's alone.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use callapi_signal_ws::server::{ServerConfig, SignalServer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};

use crate::Res;

/// The token secret shared by the soak and its server.
pub const SECRET: &[u8] = b"callapi-soak-secret-0123456789abcdef";

/// Longest wait for the child to start or to stop.
const START_STOP: Duration = Duration::from_secs(15);

/// The running server child; killed on drop.
pub struct ServerChild {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Its process id.
    pub pid: u32,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The signaling path of its URL.
    pub path: String,
}

impl ServerChild {
    /// Starts the child and waits for its `listening on` line.
    pub async fn spawn() -> Res<Self> {
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("--serve-ws")
            .env("RUST_LOG", "error")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let pid = child.id().ok_or("server child has no pid")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().ok_or("server child has no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_STOP, lines.next_line())
            .await
            .map_err(|_| "server child did not start in time")??
            .ok_or("server child ended before listening")?;
        let url = line
            .strip_prefix("listening on ws://")
            .ok_or_else(|| format!("unexpected server output: {line}"))?;
        let (authority, path) = url.split_at(url.find('/').unwrap_or(url.len()));
        Ok(Self {
            child,
            stdin,
            pid,
            addr: authority.parse()?,
            path: path.to_owned(),
        })
    }

    /// Closes its stdin (it shuts down) and waits for it to exit; kills it if it does not.
    pub async fn stop(mut self) -> Res<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(START_STOP, self.child.wait()).await {
            Ok(status) => {
                let status = status?;
                if status.success() {
                    Ok(())
                } else {
                    Err(format!("server child exited with {status}").into())
                }
            }
            Err(_) => {
                self.child.kill().await?;
                Err("server child did not stop within 15 s of its stdin closing".into())
            }
        }
    }
}

/// The `--serve-ws` mode: a server with the default limits on a free loopback port; prints
/// `listening on <url>` and runs until stdin closes.
pub async fn serve() -> Res<()> {
    let config = ServerConfig::new("127.0.0.1:0".parse()?, SECRET.to_vec());
    let server = SignalServer::start(config).await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening on {}\n", server.url()).as_bytes())
        .await?;
    out.flush().await?;
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    server.shutdown().await;
    Ok(())
}
