//! `softphone`: an interactive command-line phone for a running `callapi-signal-server` or MQTT
//! broker.
//!
//! ```text
//! # terminal 1: the server (development secret in secret.txt)
//! callapi-signal-server serve --listen 127.0.0.1:8765 --secret-file secret.txt
//! # terminals 2, 3 and 4
//! softphone --server ws://127.0.0.1:8765 --user alice --secret-file secret.txt
//! softphone --server ws://127.0.0.1:8765 --user bob --secret-file secret.txt --auto-answer
//! softphone --server ws://127.0.0.1:8765 --user carol --secret-file secret.txt
//!
//! # or over MQTT: Mosquitto with signal-mqtt/mosquitto/ and a password per user
//! softphone --backend mqtt --broker mqtt://127.0.0.1:1883 --user alice --password-file alice.pw
//! ```
//!
//! Commands (one per line on stdin, so it can be scripted through a pipe):
//!
//! * 1:1: `call <user> [audio|video]`, `accept`, `reject [reason]`, `cancel`,
//!   `hangup [reason]`, `dtmf <digits>`, `msg <text>`;
//! * group calls (`docs/PROTOCOL.md` §10): `call <user> <user>... [audio|video]` (two users or
//!   more), `invite <user>...`, `leave [reason]` (the others stay), `end [reason]` (for
//!   everyone), `join <call-id>` (back in after declining, missing or leaving), `members` (one
//!   `members user=... state=... seq=...` line per record, then `ok members count=N
//!   in_call=K`);
//! * `counters` (with `--media webrtc`): one `counters peer=bob/b1 video_sent=N
//!   video_received=N audio_sent=N audio_received=N` line per group member's device, then
//!   `ok counters video_sent=N video_received=N audio_sent=N audio_received=N
//!   first_remote_frame=yes|no` (video in frames, audio in packets, totals since the phone
//!   started);
//! * `status`, `help`, `quit`.
//!
//! Every notification is printed as it arrives, one line each, in the format of
//! `callapi_examples::describe` (`state Calling reason=RemoteVideoCall ...`, `dtmf from=alice
//! digits=12#`, `member user=carol from=Ringing to=Accepted device=c1 call=...`, `link
//! connected`, ...); command results print as `ok <command> ...` or `error <command>: <why>`.
//!
//! Backends: `--backend ws` (the default; `--server`, with `--token` or for development the
//! server's secret, `--secret-file`/`--secret`) or `--backend mqtt` (`--broker mqtt://host:port`,
//! with the user's password in the broker's password file, `--password-file`/`--password`, or
//! `--token` for a broker that checks tokens; user name = `--user`). Flags of the other backend
//! are refused with a message saying what to use.
//!
//! Media: by default the softphone carries signaling only (the core's `NoMedia`): a call is
//! connected when it is accepted. With `--media webrtc` it runs a `callapi-media-webrtc` engine
//! (sockets on `--media-bind`, 127.0.0.1 by default) that publishes a looping VP8/Opus test
//! clip: a call is connected at its first remote video frame (audio calls: first audio packet),
//! and it talks to any peer of the protocol's media payloads, browsers (`clients/web`)
//! included.

mod args;
mod backend;
mod commands;
mod execute;
mod media;

use std::io::Write;
use std::process::ExitCode;

use callapi_core::call::{CallState, Notification, PrepareConfig, StateReason};
use callapi_core::connection::Identity;
use callapi_core::media::NoMedia;
use callapi_core::protocol::{DeviceId, UserId};
use callapi_examples::describe;
use callapi_media_webrtc::WebRtcMedia;
use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::args::Args;
use crate::backend::{Connected, Signaling};
use crate::commands::Command;
use crate::execute::Outcome;
use crate::media::{webrtc_config, MediaChoice, MediaWatch};

/// Prints one line and flushes (stdout may be a pipe).
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

async fn run(args: Args, signaling: Signaling) -> Result<(), String> {
    let user = UserId::new(&args.user).map_err(|e| format!("--user: {e}"))?;
    let device = DeviceId::new(&args.device).map_err(|e| format!("--device: {e}"))?;
    let identity = Identity { user, device };
    let (
        Connected {
            api,
            mut events,
            link,
        },
        media,
    ) = match args.media {
        MediaChoice::None => (signaling.connect(identity, NoMedia)?, MediaWatch::none()),
        MediaChoice::Webrtc => {
            let engine = WebRtcMedia::new(webrtc_config(args.media_bind))
                .map_err(|e| format!("--media webrtc: {e}"))?;
            let watch = MediaWatch::webrtc(&engine);
            (signaling.connect(identity, engine)?, watch)
        }
    };
    say(format!(
        "ready user={} device={} {}{}{}",
        args.user,
        args.device,
        signaling.describe(),
        match args.media {
            MediaChoice::None => String::new(),
            MediaChoice::Webrtc => format!(" media=webrtc bind={}", args.media_bind),
        },
        if args.auto_answer { " auto-answer" } else { "" }
    ));

    let printer_api = api.clone();
    let auto_answer = args.auto_answer;
    let watch = media.clone();
    tokio::spawn(async move {
        while let Some(n) = events.recv().await {
            watch.observe(&n);
            if let Some(line) = describe(&n) {
                say(line);
            }
            if auto_answer {
                if let Notification::StateChanged(c) = &n {
                    let ringing = c.state == CallState::Calling
                        && matches!(
                            c.reason,
                            StateReason::RemoteVideoCall | StateReason::RemoteAudioCall
                        );
                    if ringing {
                        match printer_api.accept().await {
                            Ok(()) => say("ok accept (auto-answer)"),
                            Err(e) => say(format!("error accept: {e}")),
                        }
                    }
                }
            }
        }
    });

    let room = args
        .room
        .clone()
        .unwrap_or_else(|| format!("{}-room", args.user));
    api.prepare(PrepareConfig::new(room))
        .await
        .map_err(|e| format!("prepare: {e}"))?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        let line = tokio::select! {
            line = lines.next_line(), if stdin_open => line,
            _ = tokio::signal::ctrl_c() => break,
        };
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => {
                // End of input: quit, unless answering calls is all this phone does.
                if auto_answer {
                    stdin_open = false;
                    continue;
                }
                break;
            }
        };
        match Command::parse(&line) {
            Ok(None) => {}
            Ok(Some(cmd)) => {
                if execute::execute(&api, &link, &media, cmd).await == Outcome::Quit {
                    break;
                }
            }
            Err(e) => say(format!("error {e}")),
        }
    }
    let _ = api.shutdown().await;
    say("bye");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    // Flags that do not fit together are a usage error, like those clap finds (exit 2).
    let signaling = match args.signaling() {
        Ok(signaling) => signaling,
        Err(e) => {
            eprintln!("softphone: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args, signaling).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("softphone: {e}");
            ExitCode::FAILURE
        }
    }
}
