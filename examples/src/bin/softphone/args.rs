//! Command-line flags of the softphone, and the signaling set-up they ask for.

use std::path::PathBuf;

use callapi_signal_ws::auth::read_secret_file;
use clap::{Parser, ValueEnum};

use crate::backend::{parse_mqtt_url, MqttLogin, Signaling, WsAuth};
use crate::media::MediaChoice;

/// The WebSocket server used when `--server` is not given.
pub const DEFAULT_SERVER: &str = "ws://127.0.0.1:8765";
/// The MQTT broker used when `--broker` is not given.
pub const DEFAULT_BROKER: &str = "mqtt://127.0.0.1:1883";

/// Which signaling backend carries the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// WebSocket: a running `callapi-signal-server` (`--server`).
    Ws,
    /// MQTT: a running MQTT 3.1.1 broker (`--broker`), such as Mosquitto with the configuration
    /// in `signal-mqtt/mosquitto/`.
    Mqtt,
}

/// An interactive callapi softphone for a running callapi-signal-server or MQTT broker:
/// signaling only, or with `--media webrtc` real WebRTC media (a VP8/Opus test clip).
#[derive(Debug, Parser)]
#[command(
    name = "softphone",
    about = "Interactive callapi softphone: 1:1 and group calls (call, accept, reject, cancel, \
             hang up, invite, leave, end, join, members), DTMF and messages through a \
             callapi-signal-server or an MQTT broker",
    after_help = "Commands (one per line on stdin):\n  \
        call <user> [audio|video]            place a 1:1 call (video by default)\n  \
        call <user> <user>... [audio|video]  place a group call\n  \
        accept | reject [reason]             answer or decline the ringing call\n  \
        cancel                               withdraw the outgoing call\n  \
        hangup [reason]                      leave the call (ends a 1:1 call)\n  \
        invite <user>...                     invite more users into the group call\n  \
        leave [reason]                       leave the group call (the others stay)\n  \
        end [reason]                         end the group call for everyone\n  \
        join <call-id>                       join a group call again after leaving or declining\n  \
        members                              list the group call's members\n  \
        counters                             media counters (with --media webrtc)\n  \
        dtmf <digits>                        send DTMF (0-9 * # A-D)\n  \
        msg <text>                           send an in-call message\n  \
        status | help | quit\n\n\
        Backends:\n  \
        --backend ws   (default) --server ws://host:port, with --token, or for development the \
        server's secret (--secret-file, --secret)\n  \
        --backend mqtt --broker mqtt://host:port, with the user's broker password \
        (--password-file, --password; user name = --user), or --token for a broker that \
        checks tokens"
)]
pub struct Args {
    /// Signaling backend.
    #[arg(long, value_enum, env = "CALLAPI_BACKEND", default_value_t = BackendKind::Ws)]
    pub backend: BackendKind,
    /// With --backend ws: the signaling server (ws:// or wss://) [default: ws://127.0.0.1:8765].
    #[arg(long, value_name = "URL", env = "CALLAPI_SERVER")]
    pub server: Option<String>,
    /// With --backend mqtt: the broker (mqtt://host:port) [default: mqtt://127.0.0.1:1883].
    #[arg(long, value_name = "URL", env = "CALLAPI_BROKER")]
    pub broker: Option<String>,
    /// Who this phone is.
    #[arg(long, env = "CALLAPI_USER")]
    pub user: String,
    /// This phone's device id.
    #[arg(long, env = "CALLAPI_DEVICE", default_value = "softphone")]
    pub device: String,
    /// A token from your backend (or `callapi-signal-server token --user ...`); over MQTT, the
    /// token the broker's authentication checks.
    #[arg(long, env = "CALLAPI_TOKEN", conflicts_with_all = ["secret", "secret_file"])]
    pub token: Option<String>,
    /// Development, --backend ws: the server's token secret; the phone mints its own tokens.
    #[arg(long, env = "CALLAPI_SECRET", conflicts_with = "secret_file")]
    pub secret: Option<String>,
    /// Development, --backend ws: a file holding the server's token secret.
    #[arg(long, env = "CALLAPI_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// With --backend mqtt: this user's password in the broker's password file (prefer
    /// --password-file: arguments are visible to other users of the machine).
    #[arg(long, env = "CALLAPI_MQTT_PASSWORD", conflicts_with_all = ["password_file", "token"])]
    pub password: Option<String>,
    /// With --backend mqtt: a file holding this user's broker password.
    #[arg(
        long,
        value_name = "PATH",
        env = "CALLAPI_MQTT_PASSWORD_FILE",
        conflicts_with = "token"
    )]
    pub password_file: Option<PathBuf>,
    /// Answer every incoming call at once (and keep running when stdin ends).
    #[arg(long)]
    pub auto_answer: bool,
    /// The room of this phone's outgoing calls [default: USER-room].
    #[arg(long)]
    pub room: Option<String>,
    /// The media the calls carry: none (signaling only: a call is connected when accepted) or
    /// webrtc (peer connections with a looping VP8/Opus test clip; `counters` prints what
    /// flowed).
    #[arg(long, value_enum, env = "CALLAPI_MEDIA", default_value_t = MediaChoice::None)]
    pub media: MediaChoice,
    /// With --media webrtc: the local address the peer connections bind (host candidates
    /// there); 127.0.0.1 keeps the media on loopback.
    #[arg(
        long,
        value_name = "IP",
        env = "CALLAPI_MEDIA_BIND",
        default_value = "127.0.0.1"
    )]
    pub media_bind: std::net::IpAddr,
}

impl Args {
    /// The backend, address and credentials the flags ask for, or what is wrong with them.
    pub fn signaling(&self) -> Result<Signaling, String> {
        match self.backend {
            BackendKind::Ws => self.ws(),
            BackendKind::Mqtt => self.mqtt(),
        }
    }

    fn ws(&self) -> Result<Signaling, String> {
        if self.broker.is_some() {
            return Err(
                "--broker is an MQTT broker: use it with --backend mqtt (the WebSocket \
                        backend takes --server ws://host:port)"
                    .into(),
            );
        }
        if self.password.is_some() || self.password_file.is_some() {
            return Err(
                "--password and --password-file are MQTT broker passwords: use them with \
                 --backend mqtt (the WebSocket server takes --token, or for development its \
                 secret with --secret-file or --secret)"
                    .into(),
            );
        }
        let auth = match (&self.token, &self.secret, &self.secret_file) {
            (Some(t), _, _) => WsAuth::Token(t.trim().to_owned()),
            (None, Some(s), _) if !s.is_empty() => WsAuth::Secret(s.clone().into_bytes()),
            (None, _, Some(path)) => {
                WsAuth::Secret(read_secret_file(path).map_err(|e| e.to_string())?)
            }
            _ => {
                return Err(
                    "no credentials: pass --token TOKEN, or for development the \
                            server's secret with --secret-file PATH or --secret S"
                        .into(),
                )
            }
        };
        Ok(Signaling::Ws {
            url: self
                .server
                .clone()
                .unwrap_or_else(|| DEFAULT_SERVER.to_owned()),
            auth,
        })
    }

    fn mqtt(&self) -> Result<Signaling, String> {
        if self.server.is_some() {
            return Err(
                "--server (or CALLAPI_SERVER) is a WebSocket server: with --backend \
                        mqtt name the broker with --broker mqtt://host:port"
                    .into(),
            );
        }
        if self.secret.is_some() || self.secret_file.is_some() {
            return Err(
                "--secret and --secret-file mint tokens for callapi-signal-server: with \
                 --backend mqtt pass this user's broker password with --password-file PATH or \
                 --password P (or --token TOKEN for a broker that checks tokens)"
                    .into(),
            );
        }
        let url = self
            .broker
            .clone()
            .unwrap_or_else(|| DEFAULT_BROKER.to_owned());
        let (host, port) =
            parse_mqtt_url(&url).map_err(|why| format!("--broker {url:?}: {why}"))?;
        let login = match (&self.password, &self.password_file, &self.token) {
            (Some(p), _, _) if !p.is_empty() => MqttLogin::Password(p.clone()),
            (None, Some(path), _) => MqttLogin::Password(read_password_file(path)?),
            (None, None, Some(t)) if !t.trim().is_empty() => MqttLogin::Token(t.trim().to_owned()),
            _ => {
                return Err(
                    "no credentials for the broker: pass this user's password with \
                            --password-file PATH or --password P (user name = --user), or \
                            --token TOKEN for a broker that checks tokens"
                        .into(),
                )
            }
        };
        Ok(Signaling::Mqtt { host, port, login })
    }
}

/// A password file's text, without its trailing whitespace (a final newline).
fn read_password_file(path: &std::path::Path) -> Result<String, String> {
    let bytes = read_secret_file(path).map_err(|e| format!("--password-file: {e}"))?;
    String::from_utf8(bytes)
        .map_err(|_| format!("--password-file: {} is not UTF-8 text", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(extra: &[&str]) -> Args {
        let mut argv = vec!["softphone", "--user", "alice"];
        argv.extend_from_slice(extra);
        Args::try_parse_from(argv).unwrap()
    }

    fn refused(extra: &[&str]) -> String {
        match parse(extra).signaling() {
            Err(e) => e,
            Ok(s) => panic!("{extra:?} accepted: {s:?}"),
        }
    }

    #[test]
    fn websocket_is_the_default() {
        match parse(&["--secret", "s3cret"]).signaling().unwrap() {
            Signaling::Ws { url, auth } => {
                assert_eq!(url, DEFAULT_SERVER);
                assert!(matches!(auth, WsAuth::Secret(s) if s == b"s3cret"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mqtt_takes_a_broker_and_a_password() {
        let s = parse(&[
            "--backend",
            "mqtt",
            "--broker",
            "mqtt://10.0.0.2:1884",
            "--password",
            "pw",
        ])
        .signaling()
        .unwrap();
        match s {
            Signaling::Mqtt { host, port, login } => {
                assert_eq!((host.as_str(), port), ("10.0.0.2", 1884));
                assert!(matches!(login, MqttLogin::Password(p) if p == "pw"));
            }
            other => panic!("{other:?}"),
        }
        let s = parse(&["--backend", "mqtt", "--token", "jwt"])
            .signaling()
            .unwrap();
        assert!(
            matches!(&s, Signaling::Mqtt { host, port: 1883, login: MqttLogin::Token(t) } if host == "127.0.0.1" && t == "jwt"),
            "{s:?}"
        );
    }

    #[test]
    fn media_is_signaling_only_unless_asked() {
        assert_eq!(parse(&[]).media, MediaChoice::None);
        let a = parse(&["--media", "webrtc", "--media-bind", "::1"]);
        assert_eq!(a.media, MediaChoice::Webrtc);
        assert_eq!(
            a.media_bind,
            std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        );
        assert!(Args::try_parse_from(["softphone", "--user", "a", "--media", "sfu"]).is_err());
    }

    #[test]
    fn bad_combinations_say_what_to_do() {
        let e = refused(&["--broker", "mqtt://h:1883", "--secret", "s"]);
        assert!(e.contains("--backend mqtt"), "{e}");
        let e = refused(&["--password", "pw"]);
        assert!(e.contains("--backend mqtt"), "{e}");
        let e = refused(&[
            "--backend",
            "mqtt",
            "--server",
            "ws://h:1",
            "--password",
            "p",
        ]);
        assert!(e.contains("--broker"), "{e}");
        let e = refused(&["--backend", "mqtt", "--secret", "s"]);
        assert!(e.contains("--password-file"), "{e}");
        let e = refused(&["--backend", "mqtt"]);
        assert!(e.starts_with("no credentials for the broker"), "{e}");
        let e = refused(&[
            "--backend",
            "mqtt",
            "--broker",
            "ws://h:1",
            "--password",
            "p",
        ]);
        assert!(e.contains("mqtt://host:port"), "{e}");
        let e = refused(&[]);
        assert!(e.starts_with("no credentials"), "{e}");
    }
}
