//! Helpers of the fleet tests: a real 3-node NATS cluster (JetStream, no MQTT) whose
//! configuration has the servers' user (the only one allowed on `callapi.fleet.>`) and a
//! second, non-server user; `callapi-signal-server serve --nats ...` child processes (killed
//! with SIGKILL on drop or by [`Node::kill9`]); a loopback push-webhook receiver that records
//! every POST; raw clients and plain NATS clients.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callapi_signal_mock::nats_cluster::{NatsCluster, NatsClusterConfig};
use callapi_signal_ws::server::FleetConfig;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::*;

/// The servers' NATS user: may publish and subscribe on `callapi.fleet.>`, JetStream's API
/// and inboxes.
pub const SERVER_USER: &str = "callapi-server";
pub const SERVER_PASSWORD: &str = "server-secret-0123";
/// Another NATS user of the same account (an app's own service, say): refused on
/// `callapi.fleet.>`.
pub const OTHER_USER: &str = "app";
pub const OTHER_PASSWORD: &str = "app-secret-0123";

/// Bound of a wait for something that crosses processes (a node, NATS and another node).
pub const FLEET_WAIT: Duration = Duration::from_secs(20);

/// Bound of a wait that spans a NATS node's death (JetStream's Raft elects new leaders
/// 4–9 s after it loses one).
pub const NATS_FAILOVER_WAIT: Duration = Duration::from_secs(30);

/// Pause between two polls of something another process changes.
pub const POLL: Duration = Duration::from_millis(50);

/// The `authorization` block every NATS node gets: the servers' user as the fleet documents it,
/// and an app user denied the fleet's subjects.
pub fn nats_authorization() -> String {
    format!(
        r#"authorization {{
  users = [
    {},
    {{
      user: "{OTHER_USER}", password: "{OTHER_PASSWORD}",
      permissions: {{
        publish: {{ allow: [">"], deny: ["callapi.fleet.>", "$JS.API.>"] }},
        subscribe: {{ allow: [">"], deny: ["callapi.fleet.>"] }}
      }}
    }}
  ]
}}"#,
        FleetConfig::nats_server_user(SERVER_USER, SERVER_PASSWORD)
    )
}

/// A 3-node cluster with JetStream and [`nats_authorization`], no MQTT; `None` (after
/// printing `SKIP: ...`) without `nats-server`.
pub async fn nats() -> Option<NatsCluster> {
    let config = NatsClusterConfig::new(3)
        .with_mqtt(false)
        .with_config(nats_authorization());
    let cluster = NatsCluster::start_or_skip(config).await.unwrap()?;
    // Every node runs with the users (a node without them would let anyone on the subjects).
    for node in cluster.nodes() {
        let conf = cluster.dir().join(node.name()).join("nats.conf");
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(
            text.contains(SERVER_USER) && text.contains(OTHER_USER),
            "{}: {text}",
            conf.display()
        );
    }
    Some(cluster)
}

/// A `callapi-signal-server serve --nats ...` child process on 127.0.0.1 port 0.
pub struct Node {
    child: tokio::process::Child,
    /// Its `--node` name.
    pub name: String,
    /// The `ws://` URL it printed.
    pub url: String,
    /// Its listening address (`/metrics`, `/healthz`).
    pub addr: std::net::SocketAddr,
    dir: std::path::PathBuf,
}

impl Node {
    /// Starts node `name` of the fleet on `cluster` (every NATS URL, replicas 3, the servers'
    /// user), posting pushes to `push` when given; returns once it listens (it joined the
    /// fleet first).
    pub async fn start(cluster: &NatsCluster, name: &str, push: Option<&str>) -> Self {
        static STARTED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("callapi-fleet-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, std::str::from_utf8(SECRET).unwrap()).unwrap();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_callapi-signal-server"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--secret-file")
            .arg(&secret)
            .args(["--nats", &cluster.client_urls()])
            .args([
                "--nats-user",
                SERVER_USER,
                "--nats-password",
                SERVER_PASSWORD,
            ])
            .args(["--node", name, "--nats-replicas", "3"]);
        if let Some(url) = push {
            cmd.args(["--push-webhook", url]);
        }
        let mut child = cmd
            .env("RUST_LOG", "callapi_signal_ws=debug,warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(FLEET_WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("node {name} did not listen within {FLEET_WAIT:?}"))
            .unwrap()
            .unwrap_or_else(|| panic!("node {name} exited before listening (see its stderr)"));
        let url = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("node {name} printed {line:?}"))
            .to_owned();
        let addr = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .unwrap()
            .parse()
            .unwrap();
        Self {
            child,
            name: name.to_owned(),
            url,
            addr,
            dir,
        }
    }

    /// SIGKILL: no goodbye to its clients nor to NATS.
    pub async fn kill9(&mut self) {
        self.child.start_kill().unwrap();
        let status = tokio::time::timeout(FLEET_WAIT, self.child.wait())
            .await
            .expect("a killed node exits")
            .unwrap();
        assert!(!status.success(), "{status:?}");
    }

    /// Its metrics text.
    pub async fn metrics(&self) -> String {
        let (status, _, body) = http_get(self.addr, "/metrics").await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The value of one sample of its metrics (0 when absent).
    pub async fn metric(&self, name: &str) -> f64 {
        metric(&self.metrics().await, name)
    }

    /// Waits until its sample `name` is at least `at_least`; returns the value.
    pub async fn wait_metric(&self, name: &str, at_least: f64) -> f64 {
        let deadline = Instant::now() + FLEET_WAIT;
        loop {
            let v = self.metric(name).await;
            if v >= at_least {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "node {}: {name} = {v}, not >= {at_least} within {FLEET_WAIT:?}",
                self.name
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback HTTP receiver of push webhooks: answers every POST with 204 and records its JSON
/// body.
pub struct PushReceiver {
    /// `http://127.0.0.1:<port>/push`.
    pub url: String,
    got: Recorder<Value>,
    task: tokio::task::JoinHandle<()>,
}

/// Most requests a receiver serves (its accept loop's bound).
const MAX_PUSHES: usize = 1000;

impl PushReceiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/push", listener.local_addr().unwrap());
        let got: Recorder<Value> = Arc::new(Mutex::new(Vec::new()));
        let record = got.clone();
        let task = tokio::spawn(async move {
            for _ in 0..MAX_PUSHES {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    if let Ok(Some(body)) = tokio::time::timeout(WAIT, read_post(conn)).await {
                        record.lock().unwrap().push(body);
                    }
                });
            }
        });
        Self { url, got, task }
    }

    /// The bodies received so far.
    pub fn pushes(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until at least `n` pushes came; returns them all.
    pub async fn wait_pushes(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + FLEET_WAIT;
        loop {
            let got = self.pushes();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} pushes within {FLEET_WAIT:?}: {got:?}",
                got.len()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for PushReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP request with a JSON body, answers 204; `None` when it is cut short.
async fn read_post(mut conn: tokio::net::TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // A request is a few KiB: 64 reads are plenty.
    for _ in 0..64 {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        let Some((head, body)) = text.split_once("\r\n\r\n") else {
            continue;
        };
        let len: usize = head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })?;
        if body.len() >= len {
            conn.write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                .await
                .ok()?;
            return serde_json::from_str(&body[..len]).ok();
        }
    }
    None
}

/// A raw socket to `url` as `u`/`d` that has read its `hello`.
pub async fn raw_at(url: &str, u: &str, d: &str) -> Raw {
    let mut raw = tokio::time::timeout(FLEET_WAIT, raw_connect(url, Some(&token(u)), d))
        .await
        .expect("upgrade in time")
        .expect("upgrade");
    let hello = raw.json().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    raw
}

/// A plain NATS client of `cluster` as `user`, recording the server's errors (permission
/// violations) it is told of.
pub async fn nats_client(
    cluster: &NatsCluster,
    user: &str,
    password: &str,
) -> (async_nats::Client, Recorder<String>) {
    let errors: Recorder<String> = Arc::new(Mutex::new(Vec::new()));
    let record = errors.clone();
    let addrs: Vec<async_nats::ServerAddr> = cluster
        .nodes()
        .iter()
        .map(|n| n.client_url().parse().unwrap())
        .collect();
    let client = async_nats::ConnectOptions::new()
        .user_and_password(user.into(), password.into())
        .event_callback(move |event| {
            let record = record.clone();
            async move {
                if let async_nats::Event::ServerError(e) = event {
                    record.lock().unwrap().push(e.to_string());
                }
            }
        })
        .connect(addrs)
        .await
        .unwrap();
    (client, errors)
}

/// Waits until `errors` holds one containing `needle` (case-insensitive).
pub async fn wait_error(errors: &Recorder<String>, needle: &str) -> String {
    let deadline = Instant::now() + FLEET_WAIT;
    let needle = needle.to_lowercase();
    loop {
        if let Some(e) = errors
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.to_lowercase().contains(&needle))
        {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no error with {needle:?} within {FLEET_WAIT:?}: {:?}",
            errors.lock().unwrap()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The NATS nodes (indices) holding a client connection named like a callapi server
/// (`/connz`).
pub async fn nats_nodes_of_servers(cluster: &NatsCluster) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    for i in 0..cluster.nodes().len() {
        let Ok(connz) = cluster.monitor(i, "/connz").await else {
            continue;
        };
        let names: Vec<String> = connz["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str())
            .filter(|n| n.starts_with("callapi-signal-server "))
            .map(str::to_owned)
            .collect();
        if !names.is_empty() {
            out.push((i, names));
        }
    }
    out
}

/// The messages kept in the fleet's offline queue, as NATS node `via` sees the stream.
pub async fn queued(cluster: &NatsCluster, via: usize) -> Option<u64> {
    let jsz = cluster
        .monitor(via, "/jsz?accounts=true&streams=true")
        .await
        .ok()?;
    jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
        .find(|s| s["name"] == "CALLAPI_FLEET_QUEUE")
        .and_then(|s| s["state"]["messages"].as_u64())
}

/// Waits until the offline queue holds `n` messages (as node `via` sees it).
pub async fn wait_queued(cluster: &NatsCluster, via: usize, n: u64) {
    let deadline = Instant::now() + FLEET_WAIT;
    loop {
        let got = queued(cluster, via).await;
        if got == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the offline queue holds {got:?}, not {n}, within {FLEET_WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// `fleet`-style transport over several node URLs.
pub fn failover(urls: &[&str]) -> WsTransport {
    WsTransport::with_failover(urls)
        .unwrap()
        .with_options(client_options())
}
