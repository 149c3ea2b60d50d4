//! `--callee-web`: alice calls the web softphone page. The in-process server also serves the
//! page and development tokens (`--web --dev-tokens`, on loopback by default); the demo prints
//! the page's URL (it signs in as `--web-user` by itself), waits until someone is signed in
//! there, and alice calls that user. The person accepts on the page; alice hangs up after
//! `--hold`, unless the page hangs up first. Prints alice's transitions, her timings and the
//! media her engine counted each way.

use std::time::Duration;

use callapi_core::call::{CallState, PrepareConfig, StateReason};
use callapi_core::protocol::CallType;

use crate::args::Args;
use crate::backend::Backend;
use crate::error::{ApiContext, DemoError};
use crate::media::MediaFactory;
use crate::progress::Progress;
use crate::report::{timing_column, Echo};
use crate::side::Side;

/// The call's number in errors (one call).
const CALL: u32 = 1;
/// Ring time plus connect time before alice's call gives up: a person has to click.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// How often the demo looks whether someone signed in.
const SIGN_IN_POLL: Duration = Duration::from_millis(200);

/// Runs the web-callee demo; `Ok` means the call connected and ended as planned.
pub async fn run(args: &Args, progress: &Progress) -> Result<(), DemoError> {
    let call_type = if args.audio_only {
        CallType::Audio
    } else {
        CallType::Video
    };
    let callee = args.web_user.as_str();
    let media = MediaFactory::new(args.media);
    progress.phase("starting the signaling server with the web page");
    let backend = Backend::start(args).await?;
    let page = backend
        .page_url()
        .ok_or_else(|| DemoError::Setup("--callee-web needs the in-process server".into()))?;

    progress.line(format!(
        "callapi demo — alice calls the web softphone page ({callee})"
    ));
    progress.line(format!("  signaling  {}", backend.description));
    progress.line(format!("  media      {}", media.describe()));
    progress.line(format!(
        "  call       one {} call, held {} ms (or until the page hangs up)",
        callapi_examples::call_type_name(call_type),
        args.hold().as_millis()
    ));

    let echo = Echo::new(progress.clone());
    let (mut alice, link) = Side::start("alice", "alice-laptop", &backend, &media, &echo)?;
    progress.phase("connecting alice to the signaling server");
    link.connected("alice").await?;
    let mut prepare = PrepareConfig::new("alice-room");
    prepare.call_timeout = CALL_TIMEOUT;
    alice.api.prepare(prepare).await.ctx("alice", "prepare")?;
    alice.until(0, CallState::Prepared).await?;

    // The page's own query parameters: prefill the sign-in form and sign in at once.
    let url = format!("{page}?user={callee}&device=browser&signin=1");
    progress.line("");
    progress.line(format!("page: {url}"));
    progress.line(format!(
        "  open it in a browser on this machine: it signs in as {callee} (with a development \
         token) and alice calls {callee}; accept the call there"
    ));
    progress.line("");
    progress.phase(format!("waiting for {callee} to sign in at {page}"));
    // alice is the one user online until the page's device connects.
    while backend.users_online().unwrap_or(0) < 2 {
        tokio::time::sleep(SIGN_IN_POLL).await;
    }
    echo.restart_clock();
    echo.stamped(format!("someone signed in: alice calls {callee}"));
    alice
        .api
        .call(callee, call_type)
        .await
        .ctx("alice", "call")?;
    progress.phase(format!("ringing {callee}: accept the call on the page"));
    alice
        .until_within(
            CALL,
            CallState::Connected,
            CALL_TIMEOUT + Duration::from_secs(5),
        )
        .await?;

    let hold = args.hold();
    progress.phase(format!("connected; alice hangs up in {} s", hold.as_secs()));
    let before = alice.counts();
    let ended_by_page = tokio::select! {
        () = tokio::time::sleep(hold) => None,
        ended = alice.until_within(CALL, CallState::Prepared, hold + Duration::from_secs(1)) => Some(ended?),
    };
    let after = alice.counts();
    let how = match ended_by_page {
        Some(change) if change.reason == StateReason::RemoteHangup => format!("{callee} hung up"),
        Some(change) => {
            return Err(DemoError::Call {
                call: CALL,
                message: format!("the call ended with {:?} while connected", change.reason),
            })
        }
        None => {
            echo.stamped("alice hangs up");
            alice
                .api
                .hangup(Some("demo done".into()))
                .await
                .ctx("alice", "hangup")?;
            let ended = alice.until(CALL, CallState::Prepared).await?;
            if ended.reason != StateReason::LocalHangup {
                return Err(DemoError::Call {
                    call: CALL,
                    message: format!("alice ended with {:?}, expected LocalHangup", ended.reason),
                });
            }
            "alice hung up".to_owned()
        }
    };

    if let Ok(Some(t)) = alice.api.call_timings().await {
        progress.line("");
        for l in timing_column("alice", "call()", &t) {
            progress.line(l);
        }
    }
    progress.line("");
    match after {
        Some(a) => {
            let b = before.unwrap_or_default();
            progress.line("media alice's engine counted while connected");
            progress.line(format!(
                "  alice → {callee}: {} video frames, {} audio packets sent",
                a.video_frames_sent.saturating_sub(b.video_frames_sent),
                a.audio_packets_sent.saturating_sub(b.audio_packets_sent)
            ));
            progress.line(format!(
                "  {callee} → alice: {} video frames, {} audio packets received",
                a.video_frames_received
                    .saturating_sub(b.video_frames_received),
                a.audio_packets_received
                    .saturating_sub(b.audio_packets_received)
            ));
        }
        None => progress.line(media.no_counts_reason()),
    }

    progress.phase("shutting down");
    alice.api.shutdown().await.ctx("alice", "shutdown")?;
    backend.stop().await;
    progress.line("");
    progress.line(format!(
        "demo: OK — alice's call to {callee} on the web page connected and ended ({how})"
    ));
    Ok(())
}
