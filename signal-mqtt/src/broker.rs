//! [`EmbeddedBroker`]: an in-process MQTT broker (rumqttd) on a free loopback port, for the
//! demo's MQTT mode and for tests that need no external broker.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

use crate::error::BrokerError;
use crate::transport::{MqttConfig, DEFAULT_MAX_PACKET_SIZE};

/// How long [`EmbeddedBroker::start`] waits for the listener.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// An MQTT 3.1.1 broker running inside this process, listening on `127.0.0.1` on a free port.
///
/// It is a demo and test tool, not a deployment: it accepts **any** user name and password and
/// enforces **no ACL** (any client may read any inbox and write as anyone); it keeps sessions in
/// memory only. Use Mosquitto (or a cluster, see the crate README) with the shipped
/// configuration for anything real.
///
/// **It cannot be stopped.** rumqttd runs in its own threads and offers no shutdown; dropping
/// the handle leaves the broker running until the process exits. Start one per process (or per
/// test binary) and share it.
///
/// ```no_run
/// use callapi_signal_mqtt::{EmbeddedBroker, MqttTransport};
/// let broker = EmbeddedBroker::start()?;
/// let transport = MqttTransport::new(broker.mqtt_config());
/// # Ok::<(), callapi_signal_mqtt::BrokerError>(())
/// ```
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
}

impl EmbeddedBroker {
    /// Starts a broker on a free loopback port and returns once it accepts connections (it
    /// blocks the calling thread for that, usually a few milliseconds, at most 5 s).
    ///
    /// The port is found by binding port 0 and releasing it just before rumqttd binds it; if
    /// another process takes it in between, this returns [`BrokerError::NotListening`].
    pub fn start() -> Result<Self, BrokerError> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map_err(BrokerError::NoPort)?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut broker = Broker::new(config(addr));
        std::thread::Builder::new()
            .name("callapi-rumqttd".into())
            .spawn(move || {
                if let Err(err) = broker.start() {
                    tracing::error!(%err, "embedded MQTT broker stopped");
                }
            })
            .map_err(BrokerError::Thread)?;
        let started = Instant::now();
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if started.elapsed() > READY_TIMEOUT {
                return Err(BrokerError::NotListening {
                    addr,
                    waited_ms: u64::try_from(READY_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        tracing::info!(%addr, "embedded MQTT broker listening");
        Ok(Self { addr })
    }

    /// The address it listens on (`127.0.0.1:port`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A transport configuration pointing at this broker.
    pub fn mqtt_config(&self) -> MqttConfig {
        MqttConfig::new(self.addr.ip().to_string(), self.addr.port())
    }
}

fn config(listen: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 10_000,
        max_payload_size: DEFAULT_MAX_PACKET_SIZE,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "callapi-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1024,
            max_outgoing_packet_count: 200,
            max_segment_size: 16 * DEFAULT_MAX_PACKET_SIZE,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    }
}
