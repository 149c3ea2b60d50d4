//! The softphone's signaling backends: a `callapi-signal-server` over WebSocket, or an MQTT
//! broker. Each gives the phone a supervised `SignalClient` (tokens, reconnection) and a watch
//! of its link.

use std::time::Duration;

use callapi_core::call::CallConfig;
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, Supervisor, SupervisorConfig, TokenError};
use callapi_core::media::MediaEngine;
use callapi_core::signal::LinkState;
use callapi_core::{CallApi, NotificationStream};
use callapi_examples::dev_tokens;
use callapi_signal_mqtt::{AuthRejection, MqttConfig, MqttTransport};
use callapi_signal_ws::client::WsTransport;
use callapi_signal_ws::WsSignalClient;
use tokio::sync::watch;

/// What [`Signaling::connect`] starts.
pub struct Connected {
    /// The device's call API.
    pub api: CallApi,
    /// Its notifications from the first one on.
    pub events: NotificationStream,
    /// A watch of its link.
    pub link: watch::Receiver<LinkState>,
}

/// How long a development token minted with `--secret` lives (it is renewed before it ends).
const DEV_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// How the phone authenticates to a `callapi-signal-server`.
pub enum WsAuth {
    /// A fixed token.
    Token(String),
    /// Tokens minted with the server's secret (development).
    Secret(Vec<u8>),
}

impl std::fmt::Debug for WsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WsAuth::Token(_) => "Token(..)",
            WsAuth::Secret(_) => "Secret(..)",
        })
    }
}

/// How the phone logs in to an MQTT broker (user name = user id).
#[derive(Clone)]
pub enum MqttLogin {
    /// A static password (a Mosquitto password file): a refusal is final.
    Password(String),
    /// A token the broker checks: a first refusal is taken as an expired token.
    Token(String),
}

impl MqttLogin {
    /// What the broker gets as the MQTT password.
    pub fn secret(&self) -> &str {
        match self {
            MqttLogin::Password(s) | MqttLogin::Token(s) => s,
        }
    }
}

impl std::fmt::Debug for MqttLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MqttLogin::Password(_) => "Password(..)",
            MqttLogin::Token(_) => "Token(..)",
        })
    }
}

/// Where the phone's signaling goes, and with what credentials.
#[derive(Debug)]
pub enum Signaling {
    /// A `callapi-signal-server`.
    Ws {
        /// `ws://` or `wss://` URL.
        url: String,
        /// Its credentials.
        auth: WsAuth,
    },
    /// An MQTT 3.1.1 broker (user name = user id).
    Mqtt {
        /// Broker host.
        host: String,
        /// Broker port.
        port: u16,
        /// The password or token.
        login: MqttLogin,
    },
}

impl Signaling {
    /// `server=ws://...` or `broker=mqtt://host:port`, for the `ready` line.
    pub fn describe(&self) -> String {
        match self {
            Signaling::Ws { url, .. } => format!("server={url}"),
            Signaling::Mqtt { host, port, .. } if host.contains(':') => {
                format!("broker=mqtt://[{host}]:{port}")
            }
            Signaling::Mqtt { host, port, .. } => format!("broker=mqtt://{host}:{port}"),
        }
    }

    /// A `CallApi` for `identity` on this backend with `media`. The link connects in the
    /// background: watch it, or the `link ...` notifications.
    pub fn connect<M: MediaEngine>(
        &self,
        identity: Identity,
        media: M,
    ) -> Result<Connected, String> {
        let config = CallConfig::new(identity.user.clone(), identity.device.clone());
        let user = identity.user.as_str().to_owned();
        // A person starts one softphone: no fleet to spread out, so connect without the
        // start-up jitter (reconnects keep theirs).
        let supervised = |credentials: Credentials| {
            SupervisorConfig::new(identity, credentials)
                .with_schedule(RetrySchedule::immediate_first_attempt())
        };
        match self {
            Signaling::Ws { url, auth } => {
                let transport = WsTransport::new(url).map_err(|e| format!("--server: {e}"))?;
                let credentials = match auth {
                    WsAuth::Token(token) => fixed(token.clone()),
                    WsAuth::Secret(secret) => dev_tokens(secret.clone(), &user, DEV_TOKEN_TTL)
                        .map(Credentials::token)
                        .map_err(|e| e.to_string())?,
                };
                let signal = WsSignalClient::start(transport, supervised(credentials));
                let link = signal.link_state();
                let (api, events) = CallApi::new_subscribed(config, signal, media);
                Ok(Connected { api, events, link })
            }
            Signaling::Mqtt { host, port, login } => {
                let rejection = match login {
                    MqttLogin::Password(_) => AuthRejection::Permanent,
                    MqttLogin::Token(_) => AuthRejection::RefreshTokenOnce,
                };
                let mqtt = MqttConfig::new(host.clone(), *port).with_auth_rejection(rejection);
                let signal = Supervisor::start(
                    MqttTransport::new(mqtt),
                    supervised(fixed(login.secret().to_owned())),
                );
                let link = signal.link_state();
                let (api, events) = CallApi::new_subscribed(config, signal, media);
                Ok(Connected { api, events, link })
            }
        }
    }
}

/// Credentials that always hand over `secret`.
fn fixed(secret: String) -> Credentials {
    Credentials::token(move || {
        let s = secret.clone();
        async move { Ok::<_, TokenError>(s) }
    })
}

/// `mqtt://host:port` (or `tcp://`; the port defaults to 1883; `[v6]:port` too) → host, port.
pub fn parse_mqtt_url(url: &str) -> Result<(String, u16), &'static str> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .ok_or("expected mqtt://host:port (mqtts:// and TLS are not supported here)")?
        .trim_end_matches('/');
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("unclosed [ in the host")?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or("expected :port after ]")?),
                ),
            }
        }
        None => match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        },
    };
    if host.is_empty() {
        return Err("no host");
    }
    let port = match port {
        Some(p) => p.parse().map_err(|_| "the port is not a number")?,
        None => 1883,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls() {
        let ok = |u: &str| parse_mqtt_url(u).ok();
        assert_eq!(
            ok("mqtt://127.0.0.1:1884"),
            Some(("127.0.0.1".into(), 1884))
        );
        assert_eq!(
            ok("tcp://broker.local/"),
            Some(("broker.local".into(), 1883))
        );
        assert_eq!(ok("mqtt://[::1]:1885"), Some(("::1".into(), 1885)));
        assert_eq!(ok("mqtt://[::1]"), Some(("::1".into(), 1883)));
        assert!(parse_mqtt_url("ws://h:1").is_err());
        assert!(parse_mqtt_url("mqtt://:1883").is_err());
        assert!(parse_mqtt_url("mqtt://h:port").is_err());
        assert!(parse_mqtt_url("mqtt://").is_err());
    }

    #[test]
    fn ready_line_names_the_backend() {
        let mqtt = Signaling::Mqtt {
            host: "::1".into(),
            port: 1883,
            login: MqttLogin::Password("p".into()),
        };
        assert_eq!(mqtt.describe(), "broker=mqtt://[::1]:1883");
        let ws = Signaling::Ws {
            url: "ws://h:1".into(),
            auth: WsAuth::Token("t".into()),
        };
        assert_eq!(ws.describe(), "server=ws://h:1");
    }
}
