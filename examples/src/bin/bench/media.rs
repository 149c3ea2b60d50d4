//! Figure 5: `call()` → caller `Connected` with `WebRtcMedia` video on loopback (the
//! `connected` call timing: accept and the first complete remote video frame), callee
//! joining on ringing (early media) and on accept, N sequential calls each over the
//! `signal-mock` network; the callee accepts as soon as it rings. Baseline in the same run:
//! the same calls with `NoMedia` (connected at accept) on the same network.

use std::time::{Duration, Instant};

use callapi_core::call::{CallConfig, CallState, Notification, PrepareConfig};
use callapi_core::media::{MediaEngine, NoMedia};
use callapi_core::protocol::{CallType, DeviceId, UserId};
use callapi_core::CallApi;
use callapi_media_webrtc::{WebRtcConfig, WebRtcMedia};
use callapi_signal_mock::{FaultPlan, MockNetwork};

use crate::common::*;
use crate::report::{verdict, Report};
use crate::stats::{ms, round3, Samples};

async fn calls<M: MediaEngine, F: Fn() -> Res<M>>(
    media: F,
    early: bool,
    n: usize,
    net_seed: u64,
) -> Res<Samples> {
    let net = MockNetwork::new(net_seed, FaultPlan::none());
    let (ua, da) = (UserId::new("alice")?, DeviceId::new("a1")?);
    let (ub, db) = (UserId::new("bob")?, DeviceId::new("b1")?);
    let alice = CallApi::new(
        CallConfig::new(ua.clone(), da.clone()),
        net.connect(ua, da),
        media()?,
    );
    let bob = CallApi::new(
        CallConfig::new(ub.clone(), db.clone()),
        net.connect(ub, db),
        media()?,
    );
    let mut a_stream = alice.subscribe();
    let mut b_stream = bob.subscribe();
    alice.prepare(PrepareConfig::new("alice-room")).await?;
    let mut cfg = PrepareConfig::new("bob-room");
    cfg.join_media_on_ringing = early;
    bob.prepare(cfg).await?;
    let callee = bob.clone();
    let answering = tokio::spawn(async move {
        while let Some(n) = b_stream.recv().await {
            if matches!(&n, Notification::StateChanged(c) if c.state == CallState::Calling) {
                let _ = callee.accept().await;
            }
        }
    });
    let mut bob_state = bob.state_watch();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        alice.call("bob", CallType::Video).await?;
        wait_state(&mut a_stream, CallState::Connected).await?;
        samples.push(t0.elapsed());
        alice.hangup(None).await?;
        wait_state(&mut a_stream, CallState::Prepared).await?;
        wait_watch(&mut bob_state, CallState::Prepared).await?;
    }
    answering.abort();
    let _ = alice.shutdown().await;
    let _ = bob.shutdown().await;
    Ok(Samples::new(samples))
}

fn webrtc() -> Res<WebRtcMedia> {
    Ok(WebRtcMedia::new(WebRtcConfig::loopback())?)
}

/// Runs the figure with `n` calls per mode.
pub async fn run(report: &mut Report, n: usize) -> Res<()> {
    let early = calls(webrtc, true, n, 51).await?;
    let late = calls(webrtc, false, n, 52).await?;
    let base = calls(|| Ok(NoMedia), true, n, 53).await?;
    report.set("media.early_p50_ms", round3(ms(early.p50())));
    report.set("media.early_p99_ms", round3(ms(early.p99())));
    report.set("media.late_p50_ms", round3(ms(late.p50())));
    report.set("media.late_p99_ms", round3(ms(late.p99())));
    report.set("media.nomedia_p50_ms", round3(ms(base.p50())));
    report.set("media.nomedia_p99_ms", round3(ms(base.p99())));
    report.set("media.calls", n as u64);
    report.row(
        format!("5. media, WebRtcMedia video, loopback, mock signaling ({n} calls each)"),
        format!(
            "join on ringing: p50 {:.1} ms, p99 {:.1} ms; on accept: p50 {:.1} ms, p99 {:.1} ms",
            ms(early.p50()),
            ms(early.p99()),
            ms(late.p50()),
            ms(late.p99())
        ),
        format!(
            "NoMedia: p50 {:.2} ms, p99 {:.2} ms",
            ms(base.p50()),
            ms(base.p99())
        ),
        format!(
            "early p50 ≤ 40 ms and late p50 ≤ 40 ms: {}",
            verdict(
                early.p50() <= Duration::from_millis(40) && late.p50() <= Duration::from_millis(40)
            )
        ),
    );
    Ok(())
}
