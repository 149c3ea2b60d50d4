//! `demo`: the README's main command.
//!
//! ```text
//! cargo run --release -p callapi-examples --bin demo                 # WebSocket, server in-process
//! cargo run --release -p callapi-examples --bin demo -- --backend mqtt
//! cargo run --release -p callapi-examples --bin demo -- --backend mock --audio-only
//! cargo run --release -p callapi-examples --bin demo -- --calls 20   # with a latency summary
//! cargo run --release -p callapi-examples --bin demo -- --group bob,carol --add dave --leave carol
//! cargo run --release -p callapi-examples --bin demo -- --callee-web  # alice calls a browser
//! ```
//!
//! alice calls bob through the chosen signaling backend: invite → ringing → accept → first frames
//! → connected → a few seconds of media → hangup. Prints each side's state changes and events as
//! they happen, then the timing diagnostics of both sides and the media that flowed. With
//! `--group`, alice calls several users at once instead (a WebRTC full mesh), `--add` users
//! are invited mid-call and `--leave` members quit mid-call; every member's state and member
//! changes are printed, then a media table per pair of members. With `--callee-web`, the
//! server also serves the web softphone page: the demo prints its URL and alice calls whoever
//! signs in there (see `web_callee.rs`). Exits 0 on
//! success, 1 with a message on failure (including the global `--timeout`, 30 s by default),
//! 2 on bad flags.

mod args;
mod backend;
mod error;
mod group;
mod media;
mod progress;
mod report;
mod scenario;
mod side;
mod web_callee;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::args::Args;
use crate::progress::Progress;

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(message) = args.validate() {
        eprintln!("demo: {message}");
        return ExitCode::from(2);
    }
    // Quiet by default (RUST_LOG=info shows what the backends do). The embedded MQTT broker
    // logs an error for its own readiness probe, so it stays off unless asked for.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,rumqttd=off")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("demo failed: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let progress = Progress::new(args.calls);
        let outcome = tokio::time::timeout(args.timeout(), scenario::run(&args, &progress)).await;
        progress.finish();
        match outcome {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(err)) => {
                eprintln!("demo failed: {err}");
                ExitCode::FAILURE
            }
            Err(_) => {
                eprintln!(
                    "demo failed: timed out after {} while {} (raise --timeout, or see \
                     RUST_LOG=info for what the backend was doing)",
                    humantime::format_duration(args.timeout()),
                    progress.current()
                );
                ExitCode::FAILURE
            }
        }
    });
    // Media and network tasks may still be winding down; do not wait for them.
    runtime.shutdown_timeout(Duration::from_millis(500));
    code
}
