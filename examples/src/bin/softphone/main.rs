//! `softphone`: an interactive command-line phone for a running `callapi-signal-server`.
//!
//! ```text
//! # terminal 1: the server (development secret in secret.txt)
//! callapi-signal-server serve --listen 127.0.0.1:8765 --secret-file secret.txt
//! # terminal 2 and 3
//! softphone --server ws://127.0.0.1:8765 --user alice --secret-file secret.txt
//! softphone --server ws://127.0.0.1:8765 --user bob --secret-file secret.txt --auto-answer
//! ```
//!
//! Commands (one per line on stdin, so it can be scripted through a pipe): `call <user>
//! [audio|video]`, `accept`, `reject [reason]`, `cancel`, `hangup [reason]`, `dtmf <digits>`,
//! `msg <text>`, `status`, `help`, `quit`. Every notification is printed as it arrives, one
//! line each, in the format of `callapi_examples::describe` (`state Calling
//! reason=RemoteVideoCall ...`, `dtmf from=alice digits=12#`, `link connected`, ...); command
//! results print as `ok <command> ...` or `error <command>: <why>`.
//!
//! The softphone carries signaling only (the core's `NoMedia`): a call is connected when it is
//! accepted.

mod args;
mod commands;

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use callapi_core::call::{CallConfig, CallState, Notification, PrepareConfig, StateReason};
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, SupervisorConfig, TokenError};
use callapi_core::media::NoMedia;
use callapi_core::protocol::{DeviceId, UserId};
use callapi_core::CallApi;
use callapi_examples::{describe, dev_tokens};
use callapi_signal_ws::client::WsTransport;
use callapi_signal_ws::WsSignalClient;
use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::args::{Args, Auth};
use crate::commands::{Command, Outcome};

/// Prints one line and flushes (stdout may be a pipe).
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
    let _ = out.flush();
}

fn credentials(args: &Args) -> Result<Credentials, String> {
    match args.auth()? {
        Auth::Token(token) => Ok(Credentials::token(move || {
            let t = token.clone();
            async move { Ok::<_, TokenError>(t) }
        })),
        Auth::Secret(secret) => dev_tokens(secret, &args.user, Duration::from_secs(3600))
            .map(Credentials::token)
            .map_err(|e| e.to_string()),
    }
}

async fn run(args: Args) -> Result<(), String> {
    let user = UserId::new(&args.user).map_err(|e| format!("--user: {e}"))?;
    let device = DeviceId::new(&args.device).map_err(|e| format!("--device: {e}"))?;
    let transport = WsTransport::new(&args.server).map_err(|e| format!("--server: {e}"))?;
    let identity = Identity {
        user: user.clone(),
        device: device.clone(),
    };
    // A person starts one softphone: no fleet to spread out, so connect without the start-up
    // jitter (reconnects keep theirs).
    let signal = WsSignalClient::start(
        transport,
        SupervisorConfig::new(identity, credentials(&args)?)
            .with_schedule(RetrySchedule::immediate_first_attempt()),
    );
    let link = signal.link_state();
    let api = CallApi::new(CallConfig::new(user, device), signal, NoMedia);
    let mut events = api.subscribe();
    say(format!(
        "ready user={} device={} server={}{}",
        args.user,
        args.device,
        args.server,
        if args.auto_answer { " auto-answer" } else { "" }
    ));

    let printer_api = api.clone();
    let auto_answer = args.auto_answer;
    tokio::spawn(async move {
        while let Some(n) = events.recv().await {
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
                if commands::execute(&api, &link, cmd).await == Outcome::Quit {
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
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("softphone: {e}");
            ExitCode::FAILURE
        }
    }
}
