//! Real networks for tests: hosts in Linux network namespaces the test creates, joined by a
//! router namespace whose nftables rules drop packets at random or cut a path (feature
//! `netns`; needs root, `ip` from iproute2 and `nft` from nftables).
//!
//! A [`Lab`] is a star: one router namespace and one namespace per host, each host on its own
//! `/24` (`10.201.<n>.2`, the router `10.201.<n>.1`, its default route), so every packet between
//! two hosts crosses the router once and its `forward` hook sees it exactly once each way. There
//! [`Lab::set_loss`] drops a share of all packets (`numgen random mod 100 < p`) and
//! [`Lab::cut`] drops everything to and from one host's TCP port (a signaling path), or
//! [`Lab::cut_udp`] all its UDP (a media path), until [`Lab::heal`]. The kernel needs no
//! netem: loss and cuts are plain nftables rules.
//!
//! A [`Host`] is a thread that entered its namespace (`setns`) and runs its own tokio runtime:
//! every socket a task spawned on it creates lives in that namespace. Namespaces are deleted
//! when the lab is dropped, on panic too. Names carry the process id and a counter, so parallel
//! test processes never collide.
//!
//! ```no_run
//! # async fn demo() -> Result<(), callapi_signal_mock::netns::NetnsError> {
//! use callapi_signal_mock::netns::Lab;
//!
//! let Some(lab) = Lab::new_or_skip(&["server", "alice"])? else { return Ok(()) };
//! let server = lab.host("server")?;
//! let addr = lab.addr("server")?;
//! let listener = server
//!     .spawn(async move { tokio::net::TcpListener::bind((addr, 0)).await })
//!     .await;
//! lab.set_loss(10)?;
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::future::Future;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use callapi_core::connection::schedule::RetrySchedule;
use nix::sched::{setns, CloneFlags};

/// Why a lab could not be set up or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetnsError {
    /// This machine cannot run the lab at all (not root, a tool missing, namespaces refused);
    /// tests skip with this reason.
    #[error("network namespaces unavailable: {0}")]
    Unavailable(String),
    /// A command that configures the lab failed.
    #[error("`{command}` failed: {stderr}; check that iproute2 and nftables are installed and this kernel has nf_tables")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr (or why it could not start).
        stderr: String,
    },
    /// No host of that name in this lab.
    #[error("no host `{0}` in this lab; name it in Lab::new")]
    NoSuchHost(String),
    /// A host thread could not enter its namespace or build its runtime.
    #[error(
        "host `{host}` could not start: {reason}; run as root on a kernel with network namespaces"
    )]
    Host {
        /// The host.
        host: String,
        /// What failed.
        reason: String,
    },
}

/// First two octets of every lab address (a private range, inside the lab's namespaces only).
const NET: [u8; 2] = [10, 201];

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// One network namespace, deleted on drop.
#[derive(Debug)]
struct Netns {
    name: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A star of network namespaces: a router and one namespace per host. See the module docs.
#[derive(Debug)]
pub struct Lab {
    // Declared (and so dropped) before the router: hosts' links go with their namespaces.
    hosts: Vec<(String, Netns, Ipv4Addr)>,
    router: Netns,
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Result<Output, NetnsError> {
    let line = format!("{cmd:?}");
    let failed = |stderr: String| NetnsError::Command {
        command: line.clone(),
        stderr,
    };
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| failed(e.to_string()))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

fn ip(args: &[&str]) -> Result<Output, NetnsError> {
    let mut cmd = Command::new("ip");
    cmd.args(args);
    run(cmd, None)
}

fn tool_missing(tool: &str) -> bool {
    Command::new(tool)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
}

impl Lab {
    /// Why this machine cannot run a lab, if it cannot: not root, `ip` or `nft` missing.
    /// (Whether the kernel allows namespaces shows when [`Lab::new`] tries.)
    pub fn unavailable() -> Option<String> {
        if !nix::unistd::Uid::effective().is_root() {
            return Some("not root (network namespaces and nftables need CAP_NET_ADMIN)".into());
        }
        if tool_missing("ip") {
            return Some("`ip` (iproute2) not found".into());
        }
        if tool_missing("nft") {
            return Some("`nft` (nftables) not found".into());
        }
        None
    }

    /// A router namespace and one namespace per name in `hosts`, linked and routed; host `i`
    /// gets `10.201.<i+1>.2`. [`NetnsError::Unavailable`] when this machine cannot.
    pub fn new(hosts: &[&str]) -> Result<Self, NetnsError> {
        if let Some(reason) = Self::unavailable() {
            return Err(NetnsError::Unavailable(reason));
        }
        let id = format!(
            "callapi-{}-{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::Relaxed)
        );
        let router = Netns {
            name: format!("{id}-router"),
        };
        ip(&["netns", "add", &router.name])
            .map_err(|e| NetnsError::Unavailable(format!("the kernel refused a namespace: {e}")))?;
        let mut lab = Lab {
            hosts: Vec::new(),
            router,
        };
        let r = lab.router.name.clone();
        ip(&["-n", &r, "link", "set", "lo", "up"])?;
        lab.exec_router(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])?;
        for (i, host) in hosts.iter().enumerate() {
            let n = u8::try_from(i + 1)
                .map_err(|_| NetnsError::NoSuchHost(format!("{host} (at most 254 hosts)")))?;
            let ns = Netns {
                name: format!("{id}-{host}"),
            };
            ip(&["netns", "add", &ns.name])?;
            let addr = Ipv4Addr::new(NET[0], NET[1], n, 2);
            let gw = Ipv4Addr::new(NET[0], NET[1], n, 1);
            lab.hosts.push((host.to_string(), ns, addr));
            let h = &lab.hosts[i].1.name;
            let link = format!("h{n}");
            ip(&["-n", h, "link", "set", "lo", "up"])?;
            ip(&[
                "-n", &r, "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", h,
            ])?;
            ip(&["-n", &r, "addr", "add", &format!("{gw}/24"), "dev", &link])?;
            ip(&["-n", &r, "link", "set", &link, "up"])?;
            ip(&["-n", h, "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            ip(&["-n", h, "link", "set", "eth0", "up"])?;
            ip(&["-n", h, "route", "add", "default", "via", &gw.to_string()])?;
        }
        Ok(lab)
    }

    /// [`Lab::new`], or `None` after printing `SKIP: <reason>` to stderr when this machine
    /// cannot run it (the test then returns: skipped, never silently).
    pub fn new_or_skip(hosts: &[&str]) -> Result<Option<Self>, NetnsError> {
        match Self::new(hosts) {
            Ok(lab) => Ok(Some(lab)),
            Err(NetnsError::Unavailable(reason)) => {
                eprintln!("SKIP: {reason}");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn find(&self, host: &str) -> Result<&(String, Netns, Ipv4Addr), NetnsError> {
        self.hosts
            .iter()
            .find(|(h, _, _)| h == host)
            .ok_or_else(|| NetnsError::NoSuchHost(host.to_owned()))
    }

    /// The address of `host`.
    pub fn addr(&self, host: &str) -> Result<Ipv4Addr, NetnsError> {
        Ok(self.find(host)?.2)
    }

    /// The namespace name of `host` (for `ip netns exec`).
    pub fn namespace(&self, host: &str) -> Result<&str, NetnsError> {
        Ok(&self.find(host)?.1.name)
    }

    /// A command that runs `program` inside `host`'s namespace (`ip netns exec`), for a child
    /// process such as a broker.
    pub fn command(&self, host: &str, program: &str) -> Result<Command, NetnsError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.namespace(host)?, program]);
        Ok(cmd)
    }

    /// A thread in `host`'s namespace with its own tokio runtime.
    pub fn host(&self, host: &str) -> Result<Host, NetnsError> {
        let ns = format!("/run/netns/{}", self.namespace(host)?);
        Host::start(host, Path::new(&ns))
    }

    fn exec_router(&self, args: &[&str]) -> Result<Output, NetnsError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.router.name]).args(args);
        run(cmd, None)
    }

    fn nft(&self, script: &str) -> Result<(), NetnsError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.router.name, "nft", "-f", "-"]);
        run(cmd, Some(script)).map(drop)
    }

    /// Drops `percent` % of all packets between hosts, each way, chosen at random per packet
    /// (replaces an earlier loss; 0 removes it).
    pub fn set_loss(&self, percent: u8) -> Result<(), NetnsError> {
        self.nft(&format!(
            "table inet callapi_loss {{}}\ndelete table inet callapi_loss\n\
             table inet callapi_loss {{\n chain forward {{\n  \
             type filter hook forward priority 0; policy accept;\n  \
             numgen random mod 100 < {percent} drop\n }}\n}}\n"
        ))
    }

    /// Drops every packet to and from TCP port `port` of `host`, both ways, until
    /// [`Lab::heal`]: a cut of that path (other traffic flows on).
    pub fn cut(&self, host: &str, port: u16) -> Result<(), NetnsError> {
        let addr = self.addr(host)?;
        self.nft(&format!(
            "table inet callapi_cut {{}}\ndelete table inet callapi_cut\n\
             table inet callapi_cut {{\n chain forward {{\n  \
             type filter hook forward priority -10; policy accept;\n  \
             ip daddr {addr} tcp dport {port} drop\n  \
             ip saddr {addr} tcp sport {port} drop\n }}\n}}\n"
        ))
    }

    /// Drops every UDP packet to and from `host`, both ways, until [`Lab::heal`]: a cut of its
    /// media path (WebRTC's ICE, DTLS, RTP and RTCP) while TCP signaling flows on. Independent
    /// of [`Lab::cut`] and [`Lab::set_loss`] (the loss applies to what the cut lets through).
    pub fn cut_udp(&self, host: &str) -> Result<(), NetnsError> {
        let addr = self.addr(host)?;
        self.nft(&format!(
            "table inet callapi_cut_udp {{}}\ndelete table inet callapi_cut_udp\n\
             table inet callapi_cut_udp {{\n chain forward {{\n  \
             type filter hook forward priority -10; policy accept;\n  \
             ip daddr {addr} meta l4proto udp drop\n  \
             ip saddr {addr} meta l4proto udp drop\n }}\n}}\n"
        ))
    }

    /// Removes every cut ([`Lab::cut`], [`Lab::cut_udp`]), if any; the loss stays.
    pub fn heal(&self) -> Result<(), NetnsError> {
        self.nft(
            "table inet callapi_cut {}\ndelete table inet callapi_cut\n\
             table inet callapi_cut_udp {}\ndelete table inet callapi_cut_udp\n",
        )
    }

    /// The router's nftables ruleset, for a failure message.
    pub fn ruleset(&self) -> Result<String, NetnsError> {
        let out = self.exec_router(&["nft", "list", "ruleset"])?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A reconnect schedule for clients in a lab, where tests cut paths for seconds: the first
/// attempt at once, retries every second (jitter under 200 ms), each attempt given up after
/// 2 s. (The default schedule backs off to a minute and waits 15 s on an attempt, longer than
/// a test should.) Pair it with a keepalive that notices a dead link within about 2 s.
pub fn fast_reconnects() -> RetrySchedule {
    let mut schedule = RetrySchedule::immediate_first_attempt();
    schedule.reconnect_at = vec![Duration::ZERO, Duration::from_secs(1)];
    schedule.reconnect_every = Duration::from_secs(1);
    schedule.jitter = Duration::from_millis(200);
    schedule.attempt_timeout = Duration::from_secs(2);
    schedule
}

/// A thread inside one namespace, running a tokio runtime (two workers); stopped on drop.
#[derive(Debug)]
pub struct Host {
    name: String,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Host {
    fn start(name: &str, ns: &Path) -> Result<Self, NetnsError> {
        let failed = |reason: String| NetnsError::Host {
            host: name.to_owned(),
            reason,
        };
        let ns = ns.to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("netns-{name}"))
            .spawn(move || {
                let runtime = File::open(&ns)
                    .map_err(|e| format!("open {}: {e}", ns.display()))
                    .and_then(|f| {
                        setns(&f, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))
                    })
                    .and_then(|()| {
                        // Built after setns: its worker threads are spawned from this thread
                        // and so live in the namespace too.
                        tokio::runtime::Builder::new_multi_thread()
                            .worker_threads(2)
                            .enable_all()
                            .build()
                            .map_err(|e| format!("tokio runtime: {e}"))
                    });
                match runtime {
                    Ok(rt) => {
                        let _ = ready_tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async {
                            let _ = stop_rx.await;
                        });
                        rt.shutdown_timeout(Duration::from_secs(2));
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| failed(e.to_string()))?;
        let handle = ready_rx
            .recv()
            .map_err(|e| failed(e.to_string()))?
            .map_err(failed)?;
        Ok(Self {
            name: name.to_owned(),
            handle,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The host's name in its lab.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its runtime (spawn tasks here; do not call `spawn_blocking` on it from another thread,
    /// whose new thread would not be in the namespace).
    pub fn handle(&self) -> &tokio::runtime::Handle {
        &self.handle
    }

    /// Runs `fut` on this host (in its namespace) and returns its output. Panics in `fut`
    /// propagate.
    pub async fn spawn<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self.handle.spawn(fut).await {
            Ok(out) => out,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("task on host {} cancelled: {e}", self.name),
            },
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
