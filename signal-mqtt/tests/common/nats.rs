//! The NATS side of the signal-mqtt tests: a 3-node nats-server cluster (JetStream, MQTT) with
//! the users of [`USERS`] and the permissions `callapi_signal_mqtt::nats` generates, MQTT
//! configurations that try its nodes in a given order, and a transport whose connection
//! attempts a test can hold (to keep a device offline while something happens).

use callapi_signal_mock::nats_cluster::{NatsCluster, NatsClusterConfig};
use callapi_signal_mqtt::nats::{nats_authorization, NatsUser};
use callapi_signal_mqtt::{AuthRejection, TopicRules};

use super::*;

/// The users every test cluster knows, with their passwords.
pub const USERS: [(&str, &str); 3] = [
    ("alice", "alice-token"),
    ("bob", "bob-token"),
    ("mallory", "mallory-token"),
];

/// Bound of the waits that span a node's death (JetStream's Raft elects new leaders 4–9 s
/// after it loses one).
pub const FAILOVER_WAIT: Duration = Duration::from_secs(30);

/// A 3-node cluster with [`USERS`]; `None` (after printing `SKIP: ...`) without nats-server.
pub async fn cluster() -> Option<NatsCluster> {
    let users: Vec<NatsUser> = USERS
        .iter()
        .map(|(u, p)| NatsUser::new(user(u), *p))
        .collect();
    let block = nats_authorization(&users).unwrap();
    let cluster = NatsCluster::start_or_skip(NatsClusterConfig::new(3).with_config(block))
        .await
        .unwrap()?;
    // Each node sets up its MQTT state (a JetStream consumer of retained messages) at its first
    // MQTT client: do it while the whole cluster is up.
    for port in cluster.mqtt_ports() {
        let raw = RawClient::connect(port, "mallory", "mallory-token").await;
        raw.client.disconnect().await.unwrap();
    }
    Some(cluster)
}

/// A transport configuration for the cluster's MQTT listeners, tried in `order` (node
/// indices), with NATS's id rules and static passwords.
pub fn nats_config(cluster: &NatsCluster, order: &[usize]) -> MqttConfig {
    let ports = cluster.mqtt_ports();
    let mut config = MqttConfig::new("127.0.0.1", ports[order[0]])
        .with_topic_rules(TopicRules::Nats)
        .with_auth_rejection(AuthRejection::Permanent);
    for i in &order[1..] {
        config = config.with_broker("127.0.0.1", ports[*i]);
    }
    config
}

/// Node `i`'s MQTT port.
pub fn mqtt_port(cluster: &NatsCluster, i: usize) -> u16 {
    cluster.mqtt_ports()[i]
}

/// Opens and closes a [`Gated`] transport.
#[derive(Debug, Clone)]
pub struct Gate(watch::Sender<bool>);

impl Gate {
    /// Connection attempts go through.
    pub fn open(&self) {
        self.0.send_replace(true);
    }

    /// Connection attempts wait (within the supervisor's attempt timeout) until [`open`].
    ///
    /// [`open`]: Self::open
    pub fn close(&self) {
        self.0.send_replace(false);
    }
}

/// A transport whose attempts wait while its [`Gate`] is closed, then go on as the inner one's.
pub struct Gated<T> {
    inner: T,
    gate: watch::Receiver<bool>,
}

impl<T> Gated<T> {
    /// An open gate around `inner`.
    pub fn new(inner: T) -> (Self, Gate) {
        let (tx, gate) = watch::channel(true);
        (Self { inner, gate }, Gate(tx))
    }
}

impl<T: Transport + Sync> Transport for Gated<T> {
    type Link = T::Link;

    fn connect(
        &mut self,
        identity: &Identity,
        token: &str,
    ) -> impl std::future::Future<Output = Result<T::Link, ConnectError>> + Send + 'static {
        let attempt = self.inner.connect(identity, token);
        let mut gate = self.gate.clone();
        async move {
            let _ = gate.wait_for(|open| *open).await;
            attempt.await
        }
    }
}

/// A device like [`Device::start`] over `transport` (counted here), prepared in `{u}-room`.
pub async fn device_over<T: Transport + Sync>(
    transport: T,
    u: &str,
    d: &str,
    token: &str,
    sup_seed: u64,
) -> Device {
    let (transport, attempts) = Counted::new(transport);
    let signal = Supervisor::start(
        transport,
        SupervisorConfig::new(identity(u, d), fixed_token(token))
            .with_seed(sup_seed)
            .with_schedule(RetrySchedule::immediate_first_attempt()),
    );
    let (media, control) = MockMedia::with_behavior(MockMediaBehavior {
        emit_signal: true,
        ..MockMediaBehavior::default()
    });
    let api = CallApi::new(
        CallConfig::new(user(u), device(d)).with_seed(sup_seed ^ 0x5eed),
        signal,
        media,
    );
    let stream = api.subscribe();
    api.prepare(PrepareConfig::new(format!("{u}-room")))
        .await
        .unwrap();
    Device {
        api,
        attempts,
        media: control,
        user: user(u),
        device: device(d),
        stream,
        log: Vec::new(),
    }
}

/// The MQTT client ids connected to node `i` (`/connz`).
pub async fn mqtt_clients_on(cluster: &NatsCluster, i: usize) -> Vec<String> {
    let connz = cluster.monitor(i, "/connz").await.unwrap();
    connz["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["mqtt_client"].as_str().map(str::to_owned))
        .collect()
}

/// Messages queued in the cluster for MQTT subscriptions (not yet delivered, or delivered and
/// not acknowledged), summed over the `$MQTT_msgs` stream's consumers, as node `via` sees them.
pub async fn queued_for_subscribers(cluster: &NatsCluster, via: usize) -> u64 {
    cluster
        .jetstream_leaders(via)
        .await
        .unwrap()
        .iter()
        .filter(|a| a.stream == "$MQTT_msgs" && a.consumer.is_some())
        .map(|a| a.pending)
        .sum()
}

/// [`queued_for_subscribers`] once it equals `want`, or its last value after [`WAIT`]: a
/// subscriber's PUBACK reaches the cluster a moment after the subscriber got the message, and
/// the monitoring endpoint is the only way to see it land, so it is read every 50 ms.
pub async fn queued_for_subscribers_settled(cluster: &NatsCluster, via: usize, want: u64) -> u64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = queued_for_subscribers(cluster, via).await;
        if now == want || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
