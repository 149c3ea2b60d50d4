//! Command-line flags of the softphone.

use std::path::PathBuf;

use callapi_signal_ws::auth::read_secret_file;
use clap::Parser;

/// An interactive callapi softphone (signaling only) for a running callapi-signal-server.
#[derive(Debug, Parser)]
#[command(
    name = "softphone",
    about = "Interactive callapi softphone: call, accept, reject, cancel, hang up, send DTMF and \
             messages through a callapi-signal-server",
    after_help = "Commands (one per line on stdin):\n  \
        call <user> [audio|video]   place a call (video by default)\n  \
        accept | reject [reason]    answer or decline the ringing call\n  \
        cancel                      withdraw the outgoing call\n  \
        hangup [reason]             leave the call\n  \
        dtmf <digits>               send DTMF (0-9 * # A-D)\n  \
        msg <text>                  send an in-call message\n  \
        status | help | quit"
)]
pub struct Args {
    /// The signaling server (ws:// or wss://).
    #[arg(long, env = "CALLAPI_SERVER", default_value = "ws://127.0.0.1:8765")]
    pub server: String,
    /// Who this phone is.
    #[arg(long, env = "CALLAPI_USER")]
    pub user: String,
    /// This phone's device id.
    #[arg(long, env = "CALLAPI_DEVICE", default_value = "softphone")]
    pub device: String,
    /// A token from your backend (or `callapi-signal-server token --user ...`).
    #[arg(long, env = "CALLAPI_TOKEN", conflicts_with_all = ["secret", "secret_file"])]
    pub token: Option<String>,
    /// Development: the server's token secret; the phone mints its own tokens.
    #[arg(long, env = "CALLAPI_SECRET", conflicts_with = "secret_file")]
    pub secret: Option<String>,
    /// Development: a file holding the server's token secret.
    #[arg(long, env = "CALLAPI_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// Answer every incoming call at once (and keep running when stdin ends).
    #[arg(long)]
    pub auto_answer: bool,
    /// The room of this phone's outgoing calls [default: USER-room].
    #[arg(long)]
    pub room: Option<String>,
}

/// How the phone authenticates.
pub enum Auth {
    /// A fixed token.
    Token(String),
    /// Tokens minted with the server's secret.
    Secret(Vec<u8>),
}

impl Args {
    /// The credentials asked for; one of `--token`, `--secret`, `--secret-file` is required.
    pub fn auth(&self) -> Result<Auth, String> {
        match (&self.token, &self.secret, &self.secret_file) {
            (Some(t), _, _) => Ok(Auth::Token(t.trim().to_owned())),
            (None, Some(s), _) if !s.is_empty() => Ok(Auth::Secret(s.clone().into_bytes())),
            (None, _, Some(path)) => read_secret_file(path)
                .map(Auth::Secret)
                .map_err(|e| e.to_string()),
            _ => Err(
                "no credentials: pass --token TOKEN, or for development the server's \
                      secret with --secret-file PATH or --secret S"
                    .into(),
            ),
        }
    }
}
