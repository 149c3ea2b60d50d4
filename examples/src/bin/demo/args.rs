//! Command-line flags of the demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::media::MediaChoice;

/// Which signaling backend carries the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendKind {
    /// WebSocket: `callapi-signal-server` started in-process (or `--server`).
    Ws,
    /// MQTT: an embedded rumqttd broker (or `--broker`).
    Mqtt,
    /// signal-mock's in-memory network (20–40 ms one-way delay).
    Mock,
}

fn duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

/// Two users, alice and bob, place a full call through callapi and show what happened.
#[derive(Debug, Parser)]
#[command(
    name = "demo",
    about = "callapi demo: alice calls bob (invite → ringing → accept → first frames → connected \
             → media → hangup) and prints each transition, the timing diagnostics and the media \
             that flowed",
    after_help = "Examples:\n  \
        cargo run --release -p callapi-examples --bin demo\n  \
        cargo run --release -p callapi-examples --bin demo -- --backend mqtt --audio-only\n  \
        cargo run --release -p callapi-examples --bin demo -- --calls 20\n  \
        cargo run --release -p callapi-examples --bin demo -- --callee-web\n  \
        cargo run --release -p callapi-examples --bin demo -- --server ws://127.0.0.1:8765 --secret-file secret.txt"
)]
pub struct Args {
    /// Signaling backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Ws)]
    pub backend: BackendKind,

    /// Use a running signaling server (ws:// or wss://) instead of one started in-process.
    /// Needs the server's token secret (--secret-file or --secret) to mint alice's and bob's
    /// tokens.
    #[arg(long, value_name = "URL", conflicts_with = "broker")]
    pub server: Option<String>,

    /// File holding the --server's HS256 token secret.
    #[arg(
        long,
        value_name = "PATH",
        env = "CALLAPI_SECRET_FILE",
        requires = "server"
    )]
    pub secret_file: Option<PathBuf>,

    /// The --server's token secret itself (prefer --secret-file: arguments are visible to
    /// other users of the machine).
    #[arg(
        long,
        value_name = "SECRET",
        env = "CALLAPI_SECRET",
        requires = "server",
        conflicts_with = "secret_file"
    )]
    pub secret: Option<String>,

    /// With --backend mqtt: use this broker (mqtt://host:port) instead of the embedded one.
    #[arg(long, value_name = "URL")]
    pub broker: Option<String>,

    /// With --broker: the MQTT password of both users (user name = user id). Brokers that
    /// check tokens need a token here; the embedded broker accepts anything.
    #[arg(
        long,
        value_name = "PASSWORD",
        requires = "broker",
        default_value = "demo"
    )]
    pub broker_password: String,

    /// Media of the calls: WebRTC with a test clip, or none (signaling only).
    #[arg(long, value_enum, default_value_t = MediaChoice::Webrtc)]
    pub media: MediaChoice,

    /// Place audio-only calls (no video is negotiated).
    #[arg(long)]
    pub audio_only: bool,

    /// Sequential calls to place; more than one prints a latency summary.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub calls: u32,

    /// How long each call stays connected before alice hangs up
    /// [default: 3s for one call, 300ms for several].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub hold: Option<Duration>,

    /// How long bob lets the call ring before answering
    /// [default: 500ms for one call, 0s for several].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub answer_after: Option<Duration>,

    /// Give up (exit 1) if the whole demo has not finished within this time
    /// [default: 30s; 10m with --callee-web, which waits for a person].
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub timeout: Option<Duration>,

    /// alice calls the web softphone page instead of bob: the in-process server serves the
    /// page and development tokens (`--web --dev-tokens`, loopback only), the demo prints the
    /// page's URL, waits until someone signs in there as --web-user, and alice calls them
    /// (accept on the page; alice hangs up after --hold, or the page does).
    #[arg(long, conflicts_with_all = ["server", "group", "broker"])]
    pub callee_web: bool,

    /// With --callee-web: the user the printed URL signs in as, whom alice calls.
    #[arg(
        long,
        value_name = "USER",
        default_value = "web",
        requires = "callee_web"
    )]
    pub web_user: String,

    /// With --callee-web: where the server (page and signaling) listens. Keep it on loopback:
    /// its development tokens are handed to anyone who asks.
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:0",
        requires = "callee_web"
    )]
    pub web_listen: SocketAddr,

    /// A group call instead: alice calls these users at once (comma-separated, e.g.
    /// `bob,carol`); each accepts when it rings. Media is a WebRTC full mesh.
    #[arg(long, value_name = "USERS", value_delimiter = ',')]
    pub group: Vec<String>,

    /// With --group: once everyone is in, bob (the first invitee) invites these users
    /// mid-call (comma-separated).
    #[arg(long, value_name = "USERS", value_delimiter = ',', requires = "group")]
    pub add: Vec<String>,

    /// With --group: these members quit mid-call (after --add's users joined), the others
    /// staying in (comma-separated).
    #[arg(long, value_name = "USERS", value_delimiter = ',', requires = "group")]
    pub leave: Vec<String>,

    /// Print every call's transitions (with --calls N, only the first call's are printed by
    /// default, and one line per call after it).
    #[arg(long, short)]
    pub verbose: bool,
}

impl Args {
    /// Checks the group flags: valid, distinct user names; alice is the caller; `--leave`
    /// names members; at least two stay in after the leaves; one call.
    fn validate_group(&self) -> Result<(), String> {
        let all: Vec<&String> = self.group.iter().chain(&self.add).collect();
        for u in &all {
            callapi_core::protocol::UserId::new(u.as_str())
                .map_err(|e| format!("--group/--add: {u:?} is not a user id: {e}"))?;
            if u.as_str() == "alice" {
                return Err("--group/--add: alice places the call; name the others".into());
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = all.iter().find(|u| !seen.insert(u.as_str())) {
            return Err(format!("--group/--add: {dup} is named twice"));
        }
        if let Some(u) = self.leave.iter().find(|u| !all.contains(u)) {
            return Err(format!(
                "--leave {u}: not a member (name users of --group or --add)"
            ));
        }
        if all.len() + 1 < self.leave.len() + 2 {
            return Err("--leave: at least two members must stay in the call".into());
        }
        if all.len() + 1 > 4 && !self.audio_only {
            return Err(format!(
                "{} members in a video group call: the WebRTC mesh takes at most 4 (use \
                 --audio-only for more)",
                all.len() + 1
            ));
        }
        if self.calls != 1 {
            return Err("--group places one group call: drop --calls".into());
        }
        Ok(())
    }

    /// The whole demo's limit.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(if self.callee_web {
            Duration::from_secs(600)
        } else {
            Duration::from_secs(30)
        })
    }

    /// How long each call is held.
    pub fn hold(&self) -> Duration {
        if self.callee_web && self.hold.is_none() {
            return Duration::from_secs(20);
        }
        self.hold.unwrap_or(if self.calls > 1 {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(3)
        })
    }

    /// How long bob lets each call ring.
    pub fn answer_after(&self) -> Duration {
        self.answer_after.unwrap_or(if self.calls > 1 {
            Duration::ZERO
        } else {
            Duration::from_millis(500)
        })
    }

    /// Checks combinations clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.server.is_some() && self.backend != BackendKind::Ws {
            return Err("--server is a WebSocket server: use it with --backend ws".into());
        }
        if self.broker.is_some() && self.backend != BackendKind::Mqtt {
            return Err("--broker is an MQTT broker: use it with --backend mqtt".into());
        }
        if !self.group.is_empty() {
            self.validate_group()?;
        }
        if self.callee_web {
            if self.backend != BackendKind::Ws {
                return Err("--callee-web: the page speaks WebSocket: use --backend ws".into());
            }
            if self.calls != 1 {
                return Err("--callee-web places one call: drop --calls".into());
            }
            callapi_core::protocol::UserId::new(self.web_user.as_str())
                .map_err(|e| format!("--web-user {:?} is not a user id: {e}", self.web_user))?;
            if self.web_user == "alice" {
                return Err("--web-user: alice places the call; name another user".into());
            }
        }
        if self.server.is_some() && self.secret.is_none() && self.secret_file.is_none() {
            return Err(
                "--server needs the server's token secret (--secret-file PATH or \
                        --secret S) to mint tokens for alice and bob"
                    .into(),
            );
        }
        Ok(())
    }
}
