//! Publishing: one task per published kind paces samples from the source into the track.

use std::sync::Arc;
use std::time::Duration;

use callapi_core::media::MediaKind;
use rtc::media::Sample;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::Track;
use webrtc::rtp_transceiver::RtpSender;

use crate::context::CallCtx;
use crate::counters::{add, Stat};
use crate::keyframe::is_keyframe_request;
use crate::source::SampleStream;

/// Shortest pause between two samples, whatever durations a source claims.
const MIN_PACE: Duration = Duration::from_millis(1);
/// A keyframe request is answered at once (not at the next frame's time) at most this often.
const KEYFRAME_GAP: Duration = Duration::from_millis(200);

/// Waits for the connection, then writes samples at their pace while the plan publishes `kind`;
/// answers keyframe requests by asking the stream for a keyframe.
pub(crate) async fn run(
    ctx: Arc<CallCtx>,
    kind: MediaKind,
    track: Arc<TrackLocalStaticSample>,
    sender: Arc<dyn RtpSender>,
    default_payload_type: u8,
    mut stream: Box<dyn SampleStream>,
) {
    let mut connected = ctx.connected.subscribe();
    if connected.wait_for(|c| *c).await.is_err() {
        return;
    }
    let payload_type = match sender.get_parameters().await {
        Ok(p) => p
            .rtp_parameters
            .codecs
            .first()
            .map_or(default_payload_type, |c| c.payload_type),
        Err(_) => default_payload_type,
    };
    drop(sender);
    let Some(ssrc) = track.ssrcs().await.first().copied() else {
        tracing::warn!(call_id = %ctx.call_id, ?kind, "local track has no SSRC");
        return;
    };
    let mut next = tokio::time::Instant::now();
    let mut feedback_open = true;
    let mut last_early: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            event = track.poll(), if feedback_open => {
                match event {
                    Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                        tracing::trace!(call_id = %ctx.call_id, ?kind, n = packets.len(), "RTCP feedback");
                        let requests = packets.iter().filter(|p| is_keyframe_request(p.as_ref())).count();
                        if requests > 0 {
                            tracing::debug!(call_id = %ctx.call_id, "keyframe requested");
                            ctx.count(kind, Stat::KeyframeRequestsReceived, requests as u64);
                            stream.request_keyframe();
                            // The receiver is waiting: send the keyframe now rather than at the
                            // next frame's time (up to a frame interval later), but at most one
                            // early frame per `KEYFRAME_GAP`, so a flood of requests cannot
                            // raise the send rate.
                            let now = tokio::time::Instant::now();
                            if last_early.is_none_or(|at| now.duration_since(at) >= KEYFRAME_GAP) {
                                last_early = Some(now);
                                next = next.min(now);
                            }
                        }
                    }
                    Some(_) => {}
                    None => {
                        tracing::debug!(call_id = %ctx.call_id, ?kind, "no more RTCP feedback for the track");
                        feedback_open = false;
                    }
                }
                continue;
            }
            () = tokio::time::sleep_until(next) => {}
        }
        let Some(sample) = stream.next_sample() else {
            tracing::info!(call_id = %ctx.call_id, ?kind, "media source ended");
            return;
        };
        next += sample.duration.max(MIN_PACE);
        let plan = ctx.plan();
        let publish = match kind {
            MediaKind::Video => plan.publish_video,
            _ => plan.publish_audio,
        };
        if !publish {
            continue;
        }
        let len = sample.data.len() as u64;
        let keyframe = kind == MediaKind::Video && sample.keyframe;
        let rtp = Sample {
            data: sample.data,
            duration: sample.duration,
            ..Sample::new(std::time::Instant::now())
        };
        match track
            .sample_writer(ssrc, payload_type)
            .write_sample(&rtp)
            .await
        {
            Ok(()) => {
                ctx.count(kind, Stat::SamplesSent, 1);
                ctx.count(kind, Stat::BytesSent, len);
                if keyframe {
                    ctx.count(kind, Stat::KeyframesSent, 1);
                }
                add(&ctx.bytes_sent, len);
                ctx.local_published(kind);
            }
            Err(err) => {
                if ctx.is_closed() {
                    return;
                }
                tracing::debug!(call_id = %ctx.call_id, ?kind, %err, "sample not sent");
            }
        }
    }
}
