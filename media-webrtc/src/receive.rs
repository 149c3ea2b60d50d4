//! Receiving: one task per remote track turns RTP into complete frames (video: VP8 frames
//! assembled at their marker packet, from the first keyframe on) and releases them to the
//! subscribers as the plan allows.

mod assembler;

use std::sync::Arc;
use std::time::{Duration, Instant};

use callapi_core::media::MediaKind;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use self::assembler::FrameAssembler;
use crate::clip::{is_vp8_keyframe, opus_packet_duration};
use crate::context::CallCtx;
use crate::counters::{add, Stat};
use crate::sink::RemoteSample;
use crate::source::Codec;

/// How often keyframe requests repeat while no keyframe has arrived.
const PLI_INTERVAL: Duration = Duration::from_millis(500);
/// Newer packets after which a missing one is given up (reordering window).
const MAX_LATE_PACKETS: u16 = 128;
/// How long a complete frame waits behind a missing packet (a NACK retransmission) before
/// the packet is given up.
const MAX_LATE_TIME: Duration = Duration::from_millis(300);

pub(crate) async fn run(ctx: Arc<CallCtx>, track: Arc<dyn TrackRemote>) {
    let kind = match track.kind().await {
        RtpCodecKind::Video => MediaKind::Video,
        _ => MediaKind::Audio,
    };
    tracing::debug!(call_id = %ctx.call_id, ?kind, "remote track opened");
    let mut receiver = Receiver {
        kind,
        assembler: (kind == MediaKind::Video)
            .then(|| FrameAssembler::new(MAX_LATE_PACKETS, MAX_LATE_TIME)),
        seen_keyframe: false,
        awaiting_keyframe: false,
        last_pli: None,
        media_ssrc: track.ssrcs().await.first().copied(),
    };
    if kind == MediaKind::Video && ctx.shared.config.request_keyframe_on_open {
        receiver.request_keyframe(&ctx, &*track).await;
    }
    while let Some(event) = track.poll().await {
        match event {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                receiver.on_packet(&ctx, &*track, packet).await;
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    tracing::debug!(call_id = %ctx.call_id, ?kind, "remote track ended");
}

struct Receiver {
    kind: MediaKind,
    assembler: Option<FrameAssembler>,
    seen_keyframe: bool,
    /// A frame was lost since the last keyframe: the picture is broken until the next one,
    /// so keyframe requests repeat (a request can be lost too).
    awaiting_keyframe: bool,
    last_pli: Option<Instant>,
    media_ssrc: Option<u32>,
}

impl Receiver {
    async fn request_keyframe(&mut self, ctx: &CallCtx, track: &dyn TrackRemote) {
        let Some(media_ssrc) = self.media_ssrc else {
            return;
        };
        let now = Instant::now();
        if self
            .last_pli
            .is_some_and(|at| now.duration_since(at) < PLI_INTERVAL)
        {
            return;
        }
        self.last_pli = Some(now);
        tracing::debug!(call_id = %ctx.call_id, media_ssrc, "requesting a keyframe (PLI)");
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc,
        };
        match track.write_rtcp(vec![Box::new(pli)]).await {
            Ok(()) => ctx.count(self.kind, Stat::KeyframeRequestsSent, 1),
            Err(err) => tracing::debug!(%err, "PLI not sent"),
        }
    }

    async fn on_packet(
        &mut self,
        ctx: &CallCtx,
        track: &dyn TrackRemote,
        packet: rtc::rtp::Packet,
    ) {
        let len = packet.payload.len() as u64;
        ctx.count(self.kind, Stat::PacketsReceived, 1);
        ctx.count(self.kind, Stat::BytesReceived, len);
        add(&ctx.bytes_received, len);
        if self.media_ssrc.is_none() {
            self.media_ssrc = Some(packet.header.ssrc);
            if self.kind == MediaKind::Video && ctx.shared.config.request_keyframe_on_open {
                self.request_keyframe(ctx, track).await;
            }
        }
        let Some(assembler) = &mut self.assembler else {
            // Audio: every Opus packet is a frame.
            if packet.payload.is_empty() {
                return;
            }
            let sample = RemoteSample {
                call_id: ctx.call_id,
                from: ctx.peer.clone(),
                codec: Codec::Opus,
                duration: opus_packet_duration(&packet.payload).unwrap_or_default(),
                rtp_timestamp: packet.header.timestamp,
                keyframe: true,
                data: packet.payload,
            };
            deliver(ctx, sample, ctx.plan().subscribe_audio);
            return;
        };
        let now = Instant::now();
        assembler.push(now, packet);
        let mut frames = Vec::new();
        while let Some(frame) = assembler.pop(now) {
            frames.push(frame);
        }
        for frame in frames {
            let keyframe = is_vp8_keyframe(&frame.data);
            if !self.seen_keyframe {
                if !keyframe {
                    // Undecodable without a keyframe: ask for one (rate-limited) and skip it.
                    self.request_keyframe(ctx, track).await;
                    continue;
                }
                self.seen_keyframe = true;
            } else if keyframe {
                self.awaiting_keyframe = false;
            } else if frame.after_loss || self.awaiting_keyframe {
                // Frames were lost before this one: the decoder needs a keyframe to recover,
                // and asks again (rate-limited) until one comes.
                if frame.after_loss {
                    tracing::debug!(call_id = %ctx.call_id, "video packets lost");
                }
                self.awaiting_keyframe = true;
                self.request_keyframe(ctx, track).await;
            }
            if keyframe {
                ctx.count(self.kind, Stat::KeyframesReceived, 1);
            }
            let sample = RemoteSample {
                call_id: ctx.call_id,
                from: ctx.peer.clone(),
                codec: Codec::Vp8,
                data: frame.data,
                duration: frame.interval,
                keyframe,
                rtp_timestamp: frame.rtp_timestamp,
            };
            deliver(ctx, sample, ctx.plan().subscribe_video);
        }
    }
}

/// Counts a complete frame, reports the first of its kind, and releases it to the subscribers
/// when the plan plays it.
fn deliver(ctx: &CallCtx, sample: RemoteSample, play: bool) {
    let kind = sample.kind();
    ctx.count(kind, Stat::FramesReceived, 1);
    ctx.remote_frame(kind);
    if play {
        ctx.count(kind, Stat::FramesDelivered, 1);
        let dropped = ctx.shared.subscribers.publish(&sample);
        add(&ctx.shared.counters.samples_dropped, dropped);
    }
}
