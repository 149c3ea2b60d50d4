//! The demo itself: start the backend, connect alice and bob, place the calls, print the results.

use std::time::Duration;

use callapi_core::call::{CallState, PrepareConfig, StateReason};
use callapi_core::protocol::CallType;
use tokio::time::Instant;

use crate::args::Args;
use crate::backend::Backend;
use crate::error::{ApiContext, DemoError};
use crate::media::{MediaCounts, MediaFactory};
use crate::progress::Progress;
use crate::report::{latency_summary, media_table, timing_table, CallSample, Echo};
use crate::side::Side;

fn delta(after: Option<MediaCounts>, before: Option<MediaCounts>) -> Option<MediaCounts> {
    let (a, b) = (after?, before.unwrap_or_default());
    Some(MediaCounts {
        video_frames_sent: a.video_frames_sent.saturating_sub(b.video_frames_sent),
        video_frames_received: a
            .video_frames_received
            .saturating_sub(b.video_frames_received),
        audio_packets_sent: a.audio_packets_sent.saturating_sub(b.audio_packets_sent),
        audio_packets_received: a
            .audio_packets_received
            .saturating_sub(b.audio_packets_received),
    })
}

/// What one call left behind.
struct CallRecord {
    sample: CallSample,
    media: Option<(MediaCounts, MediaCounts)>,
}

/// Runs the whole demo; `Ok` means every call connected and ended as planned.
pub async fn run(args: &Args, progress: &Progress) -> Result<(), DemoError> {
    if !args.group.is_empty() {
        return crate::group::run(args, progress).await;
    }
    if args.callee_web {
        return crate::web_callee::run(args, progress).await;
    }
    let call_type = if args.audio_only {
        CallType::Audio
    } else {
        CallType::Video
    };
    let media = MediaFactory::new(args.media);
    progress.phase("starting the signaling backend");
    let backend = Backend::start(args).await?;

    progress.line("callapi demo — alice calls bob");
    progress.line(format!("  signaling  {}", backend.description));
    progress.line(format!("  media      {}", media.describe()));
    progress.line(format!(
        "  calls      {} {} call{}, answered after {} ms, held {} ms",
        args.calls,
        callapi_examples::call_type_name(call_type),
        if args.calls == 1 { "" } else { "s" },
        args.answer_after().as_millis(),
        args.hold().as_millis()
    ));

    let echo = Echo::new(progress.clone());
    let mut sides = Vec::new();
    let mut links = Vec::new();
    for (name, device) in [("alice", "alice-laptop"), ("bob", "bob-phone")] {
        let (side, link) = Side::start(name, device, &backend, &media, &echo)?;
        sides.push(side);
        links.push((name, link));
    }
    let (mut alice, mut bob) = match (sides.pop(), sides.pop()) {
        (Some(bob), Some(alice)) => (alice, bob),
        _ => return Err(DemoError::Setup("devices".into())),
    };

    progress.phase("connecting alice and bob to the signaling backend");
    for (name, link) in links {
        let shown = link.current();
        link.connected(name).await.map_err(|e| match shown {
            Some(s) => DemoError::Setup(format!("{e} (link was {s})")),
            None => e,
        })?;
    }
    echo.stamped("both devices connected");
    alice
        .api
        .prepare(PrepareConfig::new("alice-room"))
        .await
        .ctx("alice", "prepare")?;
    bob.api
        .prepare(PrepareConfig::new("bob-room"))
        .await
        .ctx("bob", "prepare")?;
    alice.until(0, CallState::Prepared).await?;
    bob.until(0, CallState::Prepared).await?;

    let mut records = Vec::new();
    for n in 1..=args.calls {
        let detailed = n == 1 || args.verbose;
        echo.set_on(detailed);
        let record = one_call(n, args, call_type, &mut alice, &mut bob, &echo, progress).await?;
        if detailed {
            if let (Ok(Some(a)), Ok(Some(b))) =
                (alice.api.call_timings().await, bob.api.call_timings().await)
            {
                progress.line("");
                for l in timing_table(&a, &b) {
                    progress.line(l);
                }
            }
            progress.line("");
            match &record.media {
                Some((a, b)) => {
                    for l in media_table(a, b, call_type == CallType::Video) {
                        progress.line(l);
                    }
                }
                None => progress.line(media.no_counts_reason()),
            }
            if args.calls > 1 {
                progress.line("");
            }
        } else {
            let s = &record.sample;
            let ms = |d: Option<Duration>| {
                d.map_or_else(|| "-".to_owned(), |d| d.as_millis().to_string())
            };
            progress.line(format!(
                "call {n}/{}: ringing after {} ms, connected {} ms after call() ({} ms after \
                 accept), bob ended {} ms after hangup()",
                args.calls,
                ms(s.ringing),
                ms(s.call_to_connected),
                ms(s.accept_to_connected),
                s.hangup_to_ended.as_millis()
            ));
        }
        progress.call_done();
        records.push(record);
    }
    echo.set_on(true);

    if args.calls > 1 {
        progress.line("");
        let samples: Vec<CallSample> = records.iter().map(|r| r.sample).collect();
        for l in latency_summary(&samples) {
            progress.line(l);
        }
    }

    progress.phase("shutting down");
    alice.api.shutdown().await.ctx("alice", "shutdown")?;
    bob.api.shutdown().await.ctx("bob", "shutdown")?;
    backend.stop().await;
    progress.line("");
    progress.line(format!(
        "demo: OK — {} call{} connected and ended cleanly",
        args.calls,
        if args.calls == 1 { "" } else { "s" }
    ));
    Ok(())
}

/// invite → ringing → accept → (first frames) → connected → media → hangup.
async fn one_call(
    n: u32,
    args: &Args,
    call_type: CallType,
    alice: &mut Side,
    bob: &mut Side,
    echo: &Echo,
    progress: &Progress,
) -> Result<CallRecord, DemoError> {
    let before = (alice.counts(), bob.counts());
    let shown = echo.is_on();
    let phase = |text: String| progress.phase_shown(text, shown);
    phase(format!("call {n}: alice calls bob"));
    echo.restart_clock();
    echo.stamped(format!(
        "alice calls bob ({})",
        callapi_examples::call_type_name(call_type)
    ));
    alice
        .api
        .call(bob.api.user_id().as_str(), call_type)
        .await
        .ctx("alice", "call")?;

    phase(format!("call {n}: waiting for bob's phone to ring"));
    let ring = bob.until(n, CallState::Calling).await?;
    let expected = match call_type {
        CallType::Audio => StateReason::RemoteAudioCall,
        _ => StateReason::RemoteVideoCall,
    };
    if ring.reason != expected {
        return Err(DemoError::Call {
            call: n,
            message: format!("bob rang with {:?}, expected {expected:?}", ring.reason),
        });
    }
    if !args.answer_after().is_zero() {
        phase(format!("call {n}: bob's phone rings"));
        tokio::time::sleep(args.answer_after()).await; // bob reaches for the phone
    }
    echo.stamped("bob accepts");
    bob.api.accept().await.ctx("bob", "accept")?;

    phase(format!("call {n}: connecting (first frames)"));
    alice.until(n, CallState::Connected).await?;
    bob.until(n, CallState::Connected).await?;

    let hold = args.hold();
    phase(format!("call {n}: connected, media flowing"));
    let start = Instant::now();
    while start.elapsed() < hold {
        let left = hold.saturating_sub(start.elapsed());
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
        let flowing = match alice.counts() {
            Some(c) => format!(
                ", alice sent {} video frames / {} audio packets",
                c.video_frames_sent, c.audio_packets_sent
            ),
            None => String::new(),
        };
        progress.tick(format!(
            "call {n}: connected {:.1}/{:.1} s{flowing}",
            start.elapsed().as_secs_f64(),
            hold.as_secs_f64()
        ));
    }
    let after = (alice.counts(), bob.counts());

    phase(format!("call {n}: alice hangs up"));
    echo.stamped("alice hangs up");
    let hung_up = Instant::now();
    alice
        .api
        .hangup(Some("demo done".into()))
        .await
        .ctx("alice", "hangup")?;
    let ended = bob.until(n, CallState::Prepared).await?;
    let hangup_to_ended = hung_up.elapsed();
    let local = alice.until(n, CallState::Prepared).await?;
    for (who, change, want) in [
        ("alice", &local, StateReason::LocalHangup),
        ("bob", &ended, StateReason::RemoteHangup),
    ] {
        if change.reason != want {
            return Err(DemoError::Call {
                call: n,
                message: format!("{who} ended with {:?}, expected {want:?}", change.reason),
            });
        }
    }

    let timings = alice
        .api
        .call_timings()
        .await
        .ctx("alice", "call_timings")?
        .unwrap_or_default();
    let media = delta(after.0, before.0).zip(delta(after.1, before.1));
    Ok(CallRecord {
        sample: CallSample::new(&timings, hangup_to_ended),
        media,
    })
}
