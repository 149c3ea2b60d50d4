//! The signaling backends: a WebSocket server started in-process (or a running one), an MQTT
//! broker (embedded or given), or signal-mock's in-memory network. Each gives a device a
//! [`CallApi`] and a way to wait until its link is up.

use std::time::Duration;

use callapi_core::call::CallConfig;
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, Supervisor, SupervisorConfig, TokenError};
use callapi_core::protocol::{DeviceId, UserId};
use callapi_core::signal::LinkState;
use callapi_core::CallApi;
use callapi_examples::{dev_tokens, link_name, random_secret};
use callapi_signal_mock::{FaultPlan, MockNetwork};
use callapi_signal_mqtt::{EmbeddedBroker, MqttConfig, MqttTransport};
use callapi_signal_ws::auth::read_secret_file;
use callapi_signal_ws::client::WsTransport;
use callapi_signal_ws::server::{ServerConfig, ServerHandle, SignalServer};
use callapi_signal_ws::WsSignalClient;
use tokio::sync::watch;

use crate::args::{Args, BackendKind};
use crate::error::DemoError;
use crate::media::Engine;

/// Tokens live this long (the demo is over long before).
const TOKEN_TTL: Duration = Duration::from_secs(3600);

enum Inner {
    /// A server in this process, or a running one (`server` is `None`).
    Ws {
        url: String,
        secret: Vec<u8>,
        server: Option<ServerHandle>,
    },
    Mqtt {
        config: MqttConfig,
        password: String,
        /// Kept for the process's lifetime (rumqttd cannot be stopped).
        _broker: Option<EmbeddedBroker>,
    },
    Mock {
        net: MockNetwork,
    },
}

/// A started backend.
pub struct Backend {
    inner: Inner,
    /// One line about it, for the header.
    pub description: String,
}

/// A device's link, until it is up.
pub struct LinkWait(Option<watch::Receiver<LinkState>>);

impl LinkWait {
    /// Waits until the link is connected; fails if it fails for good.
    pub async fn connected(self, who: &str) -> Result<(), DemoError> {
        let Some(mut rx) = self.0 else {
            return Ok(()); // the in-memory network is connected from the start
        };
        let state = rx
            .wait_for(|s| matches!(s, LinkState::Connected | LinkState::Failed { .. }))
            .await
            .map_err(|_| DemoError::Setup(format!("{who}: the signaling client stopped")))?
            .clone();
        match state {
            LinkState::Connected => Ok(()),
            other => Err(DemoError::Setup(format!(
                "{who}: signaling link {}",
                link_name(&other)
            ))),
        }
    }

    /// The current state, for error messages.
    pub fn current(&self) -> Option<String> {
        self.0.as_ref().map(|rx| link_name(&rx.borrow()))
    }
}

fn parse_mqtt_url(url: &str) -> Result<(String, u16), DemoError> {
    let bad = |why: &str| DemoError::Setup(format!("--broker {url:?}: {why}"));
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or_else(|| bad("expected mqtt://host:port"))?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            let port = port.parse().map_err(|_| bad("the port is not a number"))?;
            Ok((host.trim_matches(['[', ']']).to_owned(), port))
        }
        Some(_) => Err(bad("no host")),
        None if !rest.is_empty() => Ok((rest.to_owned(), 1883)),
        None => Err(bad("no host")),
    }
}

impl Backend {
    /// Starts (or points at) the backend the flags ask for.
    pub async fn start(args: &Args) -> Result<Self, DemoError> {
        match args.backend {
            BackendKind::Ws => match &args.server {
                Some(url) => {
                    let secret = match (&args.secret_file, &args.secret) {
                        (Some(path), _) => {
                            read_secret_file(path).map_err(|e| DemoError::Setup(e.to_string()))?
                        }
                        (None, Some(s)) => s.clone().into_bytes(),
                        (None, None) => {
                            return Err(DemoError::Setup(
                                "--server needs --secret-file or --secret".into(),
                            ))
                        }
                    };
                    // Checks the URL now, for a clear message.
                    WsTransport::new(url).map_err(|e| DemoError::Setup(e.to_string()))?;
                    Ok(Self {
                        description: format!("WebSocket, server at {url}"),
                        inner: Inner::Ws {
                            url: url.clone(),
                            secret,
                            server: None,
                        },
                    })
                }
                None => {
                    let secret = random_secret();
                    let listen = if args.callee_web {
                        args.web_listen
                    } else {
                        "127.0.0.1:0"
                            .parse()
                            .map_err(|_| DemoError::Setup("loopback address".into()))?
                    };
                    let mut config = ServerConfig::new(listen, secret.clone());
                    // --callee-web: the softphone page at `/` and `POST /dev/token`.
                    config.web.enabled = args.callee_web;
                    config.web.dev_tokens = args.callee_web;
                    let server = SignalServer::start(config).await.map_err(|e| {
                        DemoError::Setup(format!("signaling server on {listen}: {e}"))
                    })?;
                    let url = server.url();
                    let web = if args.callee_web {
                        " with the web softphone page and development tokens"
                    } else {
                        ""
                    };
                    Ok(Self {
                        description: format!(
                            "WebSocket, callapi-signal-server started in-process on {url}{web}"
                        ),
                        inner: Inner::Ws {
                            url,
                            secret,
                            server: Some(server),
                        },
                    })
                }
            },
            BackendKind::Mqtt => match &args.broker {
                Some(url) => {
                    let (host, port) = parse_mqtt_url(url)?;
                    Ok(Self {
                        description: format!("MQTT, broker at {host}:{port}"),
                        inner: Inner::Mqtt {
                            config: MqttConfig::new(host, port),
                            password: args.broker_password.clone(),
                            _broker: None,
                        },
                    })
                }
                None => {
                    let broker = tokio::task::spawn_blocking(EmbeddedBroker::start)
                        .await
                        .map_err(|e| DemoError::Setup(format!("embedded broker: {e}")))?
                        .map_err(|e| DemoError::Setup(format!("embedded broker: {e}")))?;
                    Ok(Self {
                        description: format!(
                            "MQTT, embedded rumqttd broker on mqtt://{}",
                            broker.addr()
                        ),
                        inner: Inner::Mqtt {
                            config: broker.mqtt_config(),
                            password: "demo".into(),
                            _broker: Some(broker),
                        },
                    })
                }
            },
            BackendKind::Mock => {
                // 20–40 ms one way, no loss: a calm network, in memory.
                let plan = FaultPlan::default()
                    .with_delay(Duration::from_millis(20), Duration::from_millis(40));
                Ok(Self {
                    description: "in-memory (callapi-signal-mock, 20–40 ms one-way delay)".into(),
                    inner: Inner::Mock {
                        net: MockNetwork::new(rand::random(), plan),
                    },
                })
            }
        }
    }

    /// A `CallApi` for `user` on `device`, with `media`.
    pub fn device(
        &self,
        user: &str,
        device: &str,
        media: Engine,
    ) -> Result<(CallApi, LinkWait), DemoError> {
        let bad = |e: callapi_core::protocol::IdError| DemoError::Setup(e.to_string());
        let user_id = UserId::new(user).map_err(bad)?;
        let device_id = DeviceId::new(device).map_err(bad)?;
        let config = CallConfig::new(user_id.clone(), device_id.clone());
        let identity = Identity {
            user: user_id.clone(),
            device: device_id.clone(),
        };
        // The demo's devices connect at once: the start-up jitter spreads a fleet, and the
        // demo has two devices started by hand.
        let supervised = |credentials: Credentials| {
            SupervisorConfig::new(identity.clone(), credentials)
                .with_schedule(RetrySchedule::immediate_first_attempt())
        };
        Ok(match &self.inner {
            Inner::Ws { url, secret, .. } => {
                let tokens = dev_tokens(secret.clone(), user, TOKEN_TTL)
                    .map_err(|e| DemoError::Setup(e.to_string()))?;
                let transport =
                    WsTransport::new(url).map_err(|e| DemoError::Setup(e.to_string()))?;
                let signal =
                    WsSignalClient::start(transport, supervised(Credentials::token(tokens)));
                let link = signal.link_state();
                (CallApi::new(config, signal, media), LinkWait(Some(link)))
            }
            Inner::Mqtt {
                config: mqtt,
                password,
                ..
            } => {
                let password = password.clone();
                let tokens = move || {
                    let p = password.clone();
                    async move { Ok::<_, TokenError>(p) }
                };
                let signal = Supervisor::start(
                    MqttTransport::new(mqtt.clone()),
                    supervised(Credentials::token(tokens)),
                );
                let link = signal.link_state();
                (CallApi::new(config, signal, media), LinkWait(Some(link)))
            }
            Inner::Mock { net } => {
                let signal = net.connect(user_id, device_id);
                (CallApi::new(config, signal, media), LinkWait(None))
            }
        })
    }

    /// The web softphone page's URL (`http://ADDR/`), when this process serves it.
    pub fn page_url(&self) -> Option<String> {
        match &self.inner {
            Inner::Ws {
                server: Some(server),
                ..
            } => Some(format!("http://{}/", server.local_addr())),
            _ => None,
        }
    }

    /// How many users have a device connected, when the server runs in this process.
    pub fn users_online(&self) -> Option<usize> {
        match &self.inner {
            Inner::Ws {
                server: Some(server),
                ..
            } => Some(server.stats().users),
            _ => None,
        }
    }

    /// Stops what the demo started (the embedded MQTT broker lives until the process exits).
    pub async fn stop(self) {
        if let Inner::Ws {
            server: Some(server),
            ..
        } = self.inner
        {
            server.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_mqtt_url;

    #[test]
    fn mqtt_urls() {
        assert_eq!(
            parse_mqtt_url("mqtt://127.0.0.1:1884").ok(),
            Some(("127.0.0.1".into(), 1884))
        );
        assert_eq!(
            parse_mqtt_url("mqtt://broker.local").ok(),
            Some(("broker.local".into(), 1883))
        );
        assert!(parse_mqtt_url("http://x:1").is_err());
        assert!(parse_mqtt_url("mqtt://:1").is_err());
        assert!(parse_mqtt_url("mqtt://h:port").is_err());
    }
}
