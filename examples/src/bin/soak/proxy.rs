//! A seeded TCP fault proxy on loopback between the devices and the server: it refuses some
//! connections (closes them before a byte flows), and on each connection it forwards, at
//! exponentially distributed times, either stalls both directions for a few seconds or cuts
//! the connection. Every connection draws its faults from its own RNG, seeded from the proxy's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Res;

/// What the proxy does to connections.
#[derive(Debug, Clone, Copy)]
pub struct FaultPlan {
    /// Mean time between two faults on one connection.
    pub fault_every: Duration,
    /// Probability that a fault is a stall rather than a cut.
    pub stall_share: f64,
    /// Shortest and longest stall.
    pub stall: (Duration, Duration),
    /// Probability that a connection is refused.
    pub refuse: f64,
}

/// What the proxy did so far.
#[derive(Debug, Default)]
pub struct FaultCounts {
    /// Connections accepted (refused ones included).
    pub accepted: AtomicU64,
    /// Connections refused.
    pub refused: AtomicU64,
    /// Connections cut.
    pub cuts: AtomicU64,
    /// Stalls.
    pub stalls: AtomicU64,
}

impl FaultCounts {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (accepted, refused, cuts, stalls).
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.accepted.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.cuts.load(Ordering::Relaxed),
            self.stalls.load(Ordering::Relaxed),
        )
    }
}

/// The running proxy.
pub struct FaultProxy {
    addr: SocketAddr,
    counts: Arc<FaultCounts>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr, plan: FaultPlan, seed: u64) -> Res<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(FaultCounts::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            plan,
            seed,
            counts.clone(),
            stopped,
        ));
        Ok(Self {
            addr,
            counts,
            stop,
            task,
        })
    }

    /// Where the devices connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What it did so far.
    pub fn counts(&self) -> &FaultCounts {
        &self.counts
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    plan: FaultPlan,
    seed: u64,
    counts: Arc<FaultCounts>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                FaultCounts::bump(&counts.accepted);
                let conn_seed: u64 = rng.gen();
                connections.spawn(proxy_one(client, upstream, plan, conn_seed, counts.clone()));
            }
        }
    }
    connections.shutdown().await;
}

/// An exponentially distributed delay of mean `mean`.
fn exponential(rng: &mut StdRng, mean: Duration) -> Duration {
    let u: f64 = rng.gen_range(0.0..1.0);
    mean.mul_f64(-(1.0 - u).ln()).min(mean * 20)
}

async fn proxy_one(
    client: TcpStream,
    upstream: SocketAddr,
    plan: FaultPlan,
    seed: u64,
    counts: Arc<FaultCounts>,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    if rng.gen_bool(plan.refuse) {
        FaultCounts::bump(&counts.refused);
        return; // dropped: closed before a byte flows
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let (stall_tx, stall_rx) = watch::channel(None::<Instant>);
    let up = pump(cr, sw, stall_rx.clone());
    let down = pump(sr, cw, stall_rx);
    tokio::pin!(up, down);
    loop {
        let gap = exponential(&mut rng, plan.fault_every);
        tokio::select! {
            _ = &mut up => break,
            _ = &mut down => break,
            _ = tokio::time::sleep(gap) => {
                if rng.gen_bool(plan.stall_share) {
                    let (lo, hi) = plan.stall;
                    let stall = rng.gen_range(lo..=hi);
                    stall_tx.send_replace(Some(Instant::now() + stall));
                    FaultCounts::bump(&counts.stalls);
                } else {
                    FaultCounts::bump(&counts.cuts);
                    break;
                }
            }
        }
    }
    // Dropping both halves of both sockets closes them.
}

/// Copies `from` to `to`, holding back what arrives during a stall until the stall ends.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    stall: watch::Receiver<Option<Instant>>,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        let until = *stall.borrow();
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        to.write_all(&buf[..n]).await?;
    }
}
