//! A real nats-server cluster for tests (feature `nats`; needs the `nats-server` binary, 2.9 or
//! later: Debian's `nats-server` package).
//!
//! [`NatsCluster::start`] writes one configuration per node into a temp dir — `server_name`,
//! client, cluster and monitoring listeners on free loopback ports, JetStream with its store in
//! the temp dir, routes to every other node, optionally an MQTT listener, plus whatever block the
//! test adds (users and permissions, say) — starts the nodes as child processes and returns once
//! the cluster has formed: every node routes to every other one and reports itself healthy
//! (`/healthz`: a JetStream meta leader is known and this node is current with it). Nodes are
//! killed on drop. [`NatsCluster::kill`] sends one node `SIGKILL` (no goodbye to its clients or
//! routes, no final sync); [`NatsCluster::restart`] starts it again on the same ports and store.
//!
//! Every wait polls the node's monitoring endpoint, is bounded in time and reports what it saw
//! last. Each node's log (stderr) is kept for failure messages ([`NatsCluster::logs`]), and
//! printed when the cluster is dropped during a panic (a failing test).
//!
//! ```no_run
//! # async fn demo() -> Result<(), callapi_signal_mock::nats_cluster::NatsClusterError> {
//! use callapi_signal_mock::nats_cluster::{NatsCluster, NatsClusterConfig};
//!
//! let Some(mut cluster) = NatsCluster::start_or_skip(NatsClusterConfig::new(3)).await? else {
//!     return Ok(()); // printed `SKIP: nats-server not found ...`
//! };
//! let url = cluster.node(0)?.client_url();
//! cluster.kill(1)?;
//! cluster.restart(1).await?;
//! # let _ = url;
//! # Ok(())
//! # }
//! ```

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// How long [`NatsCluster::start`] and [`NatsCluster::restart`] wait for the cluster to form.
pub const FORM_TIMEOUT: Duration = Duration::from_secs(20);

/// Pause between two polls of a monitoring endpoint.
const POLL_EVERY: Duration = Duration::from_millis(25);

/// Bound of one monitoring request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// How many times [`NatsCluster::start`] picks new ports when a node cannot bind one.
const PORT_TRIES: usize = 4;

/// Why a cluster could not be started, changed or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsClusterError {
    /// No `nats-server` binary; tests skip with this reason.
    #[error(
        "nats-server not found on PATH nor in /usr/sbin, /usr/local/sbin, /usr/bin: install it \
         (Debian: `apt-get install nats-server`; ./scripts/test installs it)"
    )]
    NotInstalled,
    /// A file or process operation failed.
    #[error("{what}: {source}; check that the temp dir is writable")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A node exited while starting (a port taken, a configuration error).
    #[error("nats node {node} exited while starting; its log:\n{log}")]
    Exited {
        /// The node's name.
        node: String,
        /// Its log.
        log: String,
    },
    /// The cluster did not form (or recover) in time.
    #[error(
        "the nats cluster did not {what} within {waited:?}; last seen: {last}; nodes' logs:\n{logs}"
    )]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// What the last poll saw.
        last: String,
        /// Every node's log.
        logs: String,
    },
    /// A monitoring request failed or answered something else than JSON.
    #[error("GET {path} on node {node}: {reason}")]
    Monitor {
        /// The node's name.
        node: String,
        /// The request path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// No node with that index.
    #[error("no nats node {0} (the cluster has fewer nodes)")]
    NoNode(usize),
}

/// What a [`NatsCluster`] runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NatsClusterConfig {
    /// How many nodes (at least 1; JetStream clustering needs 3 for a quorum that survives one
    /// node's death).
    pub nodes: usize,
    /// Give every node an MQTT listener (on by default).
    pub mqtt: bool,
    /// Configuration text appended to every node's file: an `authorization { ... }` or
    /// `accounts { ... }` block, `mqtt`-independent settings, ...
    pub extra: String,
}

impl NatsClusterConfig {
    /// `nodes` nodes with MQTT listeners and nothing extra (no authentication).
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            mqtt: true,
            extra: String::new(),
        }
    }

    /// Turns the MQTT listeners on or off.
    pub fn with_mqtt(mut self, mqtt: bool) -> Self {
        self.mqtt = mqtt;
        self
    }

    /// Appends configuration text to every node's file (for example the `authorization`
    /// block of `callapi_signal_mqtt::nats`).
    pub fn with_config(mut self, text: impl AsRef<str>) -> Self {
        self.extra.push_str(text.as_ref());
        self.extra.push('\n');
        self
    }
}

/// One node of a [`NatsCluster`].
#[derive(Debug)]
pub struct NatsNode {
    name: String,
    client_port: u16,
    cluster_port: u16,
    http_port: u16,
    mqtt_port: Option<u16>,
    conf: PathBuf,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl NatsNode {
    /// Its `server_name` (`n1`, `n2`, ...), as the monitoring endpoints report it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its NATS client port on 127.0.0.1.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// `nats://127.0.0.1:<client port>`.
    pub fn client_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// Its cluster (route) port on 127.0.0.1.
    pub fn cluster_port(&self) -> u16 {
        self.cluster_port
    }

    /// Its monitoring (HTTP) port on 127.0.0.1.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Its MQTT port on 127.0.0.1, when the cluster has MQTT listeners.
    pub fn mqtt_port(&self) -> Option<u16> {
        self.mqtt_port
    }

    /// Whether its process runs (it was not killed, and has not exited).
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Its log lines so far (all its runs).
    pub fn log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// How many of its log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .map(|l| l.iter().filter(|line| line.contains(needle)).count())
            .unwrap_or(0)
    }

    /// Waits until at least `n` of its log lines contain `needle` (the log reaches the test
    /// through a pipe and a thread, so it can lag behind what the test saw happen); `false`
    /// if that takes longer than `within`.
    pub async fn wait_count(&self, needle: &str, n: usize, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.count(needle) >= n {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self, bin: &Path) -> Result<(), NatsClusterError> {
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| NatsClusterError::Io {
                what: format!("starting {}", bin.display()),
                source,
            })?;
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&self.log);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Ok(mut log) = log.lock() {
                        log.push(line);
                    }
                }
            });
        }
        self.child = Some(child);
        Ok(())
    }
}

/// A nats-server cluster of child processes on loopback; see the [module docs](self).
#[derive(Debug)]
pub struct NatsCluster {
    dir: PathBuf,
    _temp: tempfile::TempDir,
    bin: PathBuf,
    nodes: Vec<NatsNode>,
}

impl NatsCluster {
    /// The `nats-server` binary: on `PATH`, or in `/usr/sbin` (where Debian puts it),
    /// `/usr/local/sbin`, `/usr/bin`.
    pub fn server_binary() -> Result<PathBuf, NatsClusterError> {
        let on_path = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        on_path
            .into_iter()
            .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
            .map(|dir| dir.join("nats-server"))
            .find(|p| p.is_file())
            .ok_or(NatsClusterError::NotInstalled)
    }

    /// [`start`](Self::start), or `None` after printing `SKIP: <reason>` to stderr when
    /// `nats-server` is not installed.
    pub async fn start_or_skip(
        config: NatsClusterConfig,
    ) -> Result<Option<Self>, NatsClusterError> {
        match Self::start(config).await {
            Ok(cluster) => Ok(Some(cluster)),
            Err(NatsClusterError::NotInstalled) => {
                eprintln!("SKIP: {}", NatsClusterError::NotInstalled);
                Ok(None)
            }
            Err(err) => Err(err),
        }
    }

    /// Starts the cluster and waits until it has formed ([`FORM_TIMEOUT`]). Ports are picked
    /// free and released just before the nodes bind them; when one was taken meanwhile, the
    /// whole cluster starts again on new ports.
    pub async fn start(config: NatsClusterConfig) -> Result<Self, NatsClusterError> {
        let bin = Self::server_binary()?;
        let temp = tempfile::Builder::new()
            .prefix("callapi-nats-")
            .tempdir()
            .map_err(|source| NatsClusterError::Io {
                what: "creating the cluster's temp dir".into(),
                source,
            })?;
        let mut cluster = Self {
            dir: temp.path().to_path_buf(),
            _temp: temp,
            bin,
            nodes: Vec::new(),
        };
        let mut last = None;
        for _ in 0..PORT_TRIES {
            cluster.kill_all();
            cluster.configure(&config)?;
            for node in &mut cluster.nodes {
                node.spawn(&cluster.bin)?;
            }
            match cluster.wait_formed(FORM_TIMEOUT).await {
                Ok(()) => return Ok(cluster),
                // A port was taken between picking and binding: try new ones.
                Err(err @ NatsClusterError::Exited { .. }) => last = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or(NatsClusterError::NoNode(0)))
    }

    /// Picks ports and writes each node's configuration file.
    fn configure(&mut self, config: &NatsClusterConfig) -> Result<(), NatsClusterError> {
        let n = config.nodes.max(1);
        let per_node = if config.mqtt { 4 } else { 3 };
        let ports = free_ports(n * per_node)?;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let p = &ports[i * per_node..(i + 1) * per_node];
            let name = format!("n{}", i + 1);
            let node_dir = self.dir.join(&name);
            std::fs::create_dir_all(node_dir.join("jetstream")).map_err(|source| {
                NatsClusterError::Io {
                    what: format!("creating {}", node_dir.display()),
                    source,
                }
            })?;
            nodes.push(NatsNode {
                conf: node_dir.join("nats.conf"),
                name,
                client_port: p[0],
                cluster_port: p[1],
                http_port: p[2],
                mqtt_port: config.mqtt.then(|| p[3]),
                child: None,
                log: Arc::new(Mutex::new(Vec::new())),
            });
        }
        for node in &nodes {
            // Every node, itself included (nats-server skips the route to itself): its MQTT
            // support sizes its streams' replicas by the configured routes (up to 3).
            let routes: Vec<String> = nodes
                .iter()
                .map(|other| format!("\"nats-route://127.0.0.1:{}\"", other.cluster_port))
                .collect();
            let store = self.dir.join(&node.name).join("jetstream");
            let mut text = format!(
                "server_name: \"{name}\"\n\
                 listen: \"127.0.0.1:{client}\"\n\
                 http: \"127.0.0.1:{http}\"\n\
                 jetstream {{\n  store_dir: {store}\n}}\n\
                 cluster {{\n  name: \"callapi-test\"\n  listen: \"127.0.0.1:{cluster}\"\n  \
                 routes: [{routes}]\n}}\n",
                name = node.name,
                client = node.client_port,
                http = node.http_port,
                store = quote(&store.display().to_string()),
                cluster = node.cluster_port,
                routes = routes.join(", "),
            );
            if let Some(mqtt) = node.mqtt_port {
                text.push_str(&format!("mqtt {{\n  listen: \"127.0.0.1:{mqtt}\"\n}}\n"));
            }
            text.push_str(&config.extra);
            std::fs::write(&node.conf, text).map_err(|source| NatsClusterError::Io {
                what: format!("writing {}", node.conf.display()),
                source,
            })?;
        }
        self.nodes = nodes;
        Ok(())
    }

    /// Its nodes.
    pub fn nodes(&self) -> &[NatsNode] {
        &self.nodes
    }

    /// Node `i` (0-based).
    pub fn node(&self, i: usize) -> Result<&NatsNode, NatsClusterError> {
        self.nodes.get(i).ok_or(NatsClusterError::NoNode(i))
    }

    /// The MQTT ports of all nodes, in order (empty without MQTT listeners).
    pub fn mqtt_ports(&self) -> Vec<u16> {
        self.nodes.iter().filter_map(|n| n.mqtt_port).collect()
    }

    /// Every node's client URL, comma-separated (what a `--nats` flag takes).
    pub fn client_urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsNode::client_url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The temp dir holding the configurations and JetStream stores.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills node `i` with `SIGKILL` at once (its clients and routes see the connections reset;
    /// it saves nothing).
    pub fn kill(&mut self, i: usize) -> Result<(), NatsClusterError> {
        self.nodes
            .get_mut(i)
            .ok_or(NatsClusterError::NoNode(i))?
            .kill();
        Ok(())
    }

    /// Starts node `i` again (killing it first if it runs) with the same ports, configuration
    /// and store, and waits until the cluster has formed again ([`FORM_TIMEOUT`]).
    pub async fn restart(&mut self, i: usize) -> Result<(), NatsClusterError> {
        let bin = self.bin.clone();
        let node = self.nodes.get_mut(i).ok_or(NatsClusterError::NoNode(i))?;
        node.kill();
        node.spawn(&bin)?;
        self.wait_formed(FORM_TIMEOUT).await
    }

    /// Waits until every running node routes to every other running node and reports itself
    /// healthy (`/healthz`: JetStream has a meta leader, and every stream and consumer this
    /// node holds a replica of is current).
    pub async fn wait_formed(&mut self, within: Duration) -> Result<(), NatsClusterError> {
        let deadline = Instant::now() + within;
        loop {
            let last = match self.formed().await {
                Ok(None) => return Ok(()),
                Ok(Some(seen)) => seen,
                Err(err @ NatsClusterError::Exited { .. }) => return Err(err),
                Err(err) => err.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(self.timeout("form", within, last));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// `None` when formed, else what is missing.
    async fn formed(&mut self) -> Result<Option<String>, NatsClusterError> {
        let mut running = Vec::new();
        for node in &mut self.nodes {
            if node.child.is_some() && !node.is_running() {
                return Err(NatsClusterError::Exited {
                    node: node.name.clone(),
                    log: node.log().join("\n"),
                });
            }
            if node.child.is_some() {
                running.push(node.name.clone());
            }
        }
        let peers = running.len().saturating_sub(1) as u64;
        for node in &self.nodes {
            if node.child.is_none() {
                continue;
            }
            let routez = get_json(node, "/routez").await?;
            let routes = routez["num_routes"].as_u64().unwrap_or(0);
            if routes != peers {
                return Ok(Some(format!(
                    "{} has {routes} of {peers} routes",
                    node.name
                )));
            }
            let health = get_json(node, "/healthz").await?;
            if health["status"] != "ok" {
                return Ok(Some(format!("{} /healthz: {health}", node.name)));
            }
        }
        Ok(None)
    }

    /// GETs a monitoring endpoint of node `i` (`/varz`, `/routez`, `/jsz?consumers=true`, ...)
    /// and returns its JSON.
    pub async fn monitor(
        &self,
        i: usize,
        path: &str,
    ) -> Result<serde_json::Value, NatsClusterError> {
        get_json(self.node(i)?, path).await
    }

    /// The leader of every JetStream stream and consumer as node `via` sees them
    /// (`/jsz?accounts=true&streams=true&consumers=true`): `(stream, consumer or None, leader
    /// or None when it has none)`.
    pub async fn jetstream_leaders(
        &self,
        via: usize,
    ) -> Result<Vec<JetStreamAsset>, NatsClusterError> {
        let jsz = self
            .monitor(via, "/jsz?accounts=true&streams=true&consumers=true")
            .await?;
        let mut out = Vec::new();
        for account in jsz["account_details"].as_array().into_iter().flatten() {
            for stream in account["stream_detail"].as_array().into_iter().flatten() {
                let name = stream["name"].as_str().unwrap_or_default().to_owned();
                out.push(JetStreamAsset {
                    stream: name.clone(),
                    consumer: None,
                    leader: leader_of(&stream["cluster"]),
                    pending: stream["state"]["messages"].as_u64().unwrap_or(0),
                });
                for consumer in stream["consumer_detail"].as_array().into_iter().flatten() {
                    out.push(JetStreamAsset {
                        stream: name.clone(),
                        consumer: consumer["name"].as_str().map(str::to_owned),
                        leader: leader_of(&consumer["cluster"]),
                        pending: consumer["num_pending"].as_u64().unwrap_or(0)
                            + consumer["num_ack_pending"].as_u64().unwrap_or(0),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Waits until node `via` sees a leader for every JetStream stream and consumer, none of
    /// them on a node that is not running (after a [`kill`](Self::kill): until the survivors
    /// have elected new leaders; nats-server's Raft waits 4–9 s without heartbeats first).
    pub async fn wait_jetstream_led(
        &mut self,
        via: usize,
        within: Duration,
    ) -> Result<Vec<JetStreamAsset>, NatsClusterError> {
        let deadline = Instant::now() + within;
        loop {
            let running: Vec<String> = self
                .nodes
                .iter_mut()
                .filter_map(|n| n.is_running().then(|| n.name.clone()))
                .collect();
            let last = match self.jetstream_leaders(via).await {
                Ok(assets) => {
                    let unled: Vec<&JetStreamAsset> = assets
                        .iter()
                        .filter(|a| !a.leader.as_ref().is_some_and(|l| running.contains(l)))
                        .collect();
                    if unled.is_empty() {
                        return Ok(assets);
                    }
                    format!("without a running leader: {unled:?}")
                }
                Err(err) => err.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(self.timeout("elect JetStream leaders", within, last));
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Every node's log, each under its name (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!("--- {} ---\n", node.name));
            for line in node.log() {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }

    fn timeout(&self, what: &str, waited: Duration, last: String) -> NatsClusterError {
        NatsClusterError::Timeout {
            what: what.into(),
            waited,
            last,
            logs: self.logs(),
        }
    }

    fn kill_all(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        self.kill_all();
        // A failing test unwinds through here: show what the nodes said.
        if std::thread::panicking() {
            eprintln!("nats-server logs of the failed test:\n{}", self.logs());
        }
    }
}

/// A JetStream stream or consumer and its Raft leader ([`NatsCluster::jetstream_leaders`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JetStreamAsset {
    /// The stream's name (`$MQTT_msgs`, ...).
    pub stream: String,
    /// The consumer's name; `None` for the stream itself.
    pub consumer: Option<String>,
    /// The `server_name` of its leader, `None` while it has none.
    pub leader: Option<String>,
    /// A stream: its message count. A consumer: messages not yet delivered plus delivered
    /// and not yet acknowledged.
    pub pending: u64,
}

fn leader_of(cluster: &serde_json::Value) -> Option<String> {
    cluster["leader"]
        .as_str()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

/// A double-quoted configuration string.
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `n` distinct free loopback ports (bound together, then released).
fn free_ports(n: usize) -> Result<Vec<u16>, NatsClusterError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| NatsClusterError::Io {
            what: "reserving free loopback ports".into(),
            source,
        })?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| NatsClusterError::Io {
            what: "reading a reserved port".into(),
            source,
        })
}

/// `GET path` on a node's monitoring port (HTTP/1.0, loopback), parsed as JSON.
async fn get_json(node: &NatsNode, path: &str) -> Result<serde_json::Value, NatsClusterError> {
    let fail = |reason: String| NatsClusterError::Monitor {
        node: node.name.clone(),
        path: path.into(),
        reason,
    };
    let request = async {
        let mut stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, node.http_port))
            .await
            .map_err(|e| fail(format!("connect: {e}")))?;
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await
            .map_err(|e| fail(format!("write: {e}")))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| fail(format!("read: {e}")))?;
        Ok::<_, NatsClusterError>(response)
    };
    let response = tokio::time::timeout(REQUEST_TIMEOUT, request)
        .await
        .map_err(|_| fail(format!("no answer within {REQUEST_TIMEOUT:?}")))??;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or_else(|| fail("no HTTP body".into()))?;
    serde_json::from_str(body).map_err(|e| fail(format!("not JSON ({e}): {body}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(12).unwrap();
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 12);
    }

    #[test]
    fn strings_are_quoted_for_the_config() {
        assert_eq!(quote("/tmp/a b"), "\"/tmp/a b\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[tokio::test]
    async fn a_three_node_cluster_forms_survives_a_kill_and_takes_the_node_back() {
        let Some(mut cluster) = NatsCluster::start_or_skip(NatsClusterConfig::new(3))
            .await
            .unwrap()
        else {
            return;
        };
        for i in 0..3 {
            let routez = cluster.monitor(i, "/routez").await.unwrap();
            assert_eq!(routez["num_routes"], 2, "{}", cluster.logs());
        }
        assert_eq!(cluster.mqtt_ports().len(), 3);
        cluster.kill(2).unwrap();
        cluster.wait_formed(FORM_TIMEOUT).await.unwrap();
        let routez = cluster.monitor(0, "/routez").await.unwrap();
        assert_eq!(routez["num_routes"], 1);
        cluster.restart(2).await.unwrap();
        let routez = cluster.monitor(2, "/routez").await.unwrap();
        assert_eq!(routez["num_routes"], 2);
    }
}
