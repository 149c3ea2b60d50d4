//! `callapi-signal-server` as a child process (this binary re-executed with `--serve-ws`), so
//! that its RSS and descriptors in /proc are the server's alone.

use std::time::Duration;

use callapi_examples::child::announce_and_wait;
pub use callapi_examples::child::ChildServer;
use callapi_signal_ws::server::{ServerConfig, SignalServer};

use crate::Res;

/// The token secret shared by the soak and its server.
pub const SECRET: &[u8] = b"callapi-soak-secret-0123456789abcdef";

/// Longest wait for the child to start or to stop.
pub const START_STOP: Duration = Duration::from_secs(15);

/// Starts the server child (this binary with `--serve-ws`) and waits for its address.
pub async fn spawn() -> Res<ChildServer> {
    Ok(ChildServer::start("--serve-ws", START_STOP).await?)
}

/// The `--serve-ws` mode: a server with the default limits on a free loopback port; prints
/// `listening on <url>` and runs until stdin closes.
pub async fn serve() -> Res<()> {
    let config = ServerConfig::new("127.0.0.1:0".parse()?, SECRET.to_vec());
    let server = SignalServer::start(config).await?;
    announce_and_wait(&server.url()).await?;
    server.shutdown().await;
    Ok(())
}
