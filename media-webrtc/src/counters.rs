//! Counters of what was sent and received, for summaries and stats.

use std::sync::atomic::{AtomicU64, Ordering};

use callapi_core::media::MediaKind;

/// Totals for one kind of media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindCounters {
    /// Samples (video frames, audio packets) handed to the RTP packetizer.
    pub samples_sent: u64,
    /// Encoded bytes sent.
    pub bytes_sent: u64,
    /// RTP packets received.
    pub packets_received: u64,
    /// RTP payload bytes received.
    pub bytes_received: u64,
    /// Complete remote frames/packets assembled (video: from the first keyframe on).
    pub frames_received: u64,
    /// Frames/packets released to the sample subscribers (per the media plan).
    pub frames_delivered: u64,
    /// Keyframes handed to the RTP packetizer (video; 0 for audio). After the first, a source
    /// that makes keyframes only when asked sends one per answered request.
    pub keyframes_sent: u64,
    /// Complete keyframes assembled (video; 0 for audio).
    pub keyframes_received: u64,
    /// Keyframe requests (RTCP PLI) this side sent: one when the remote track opens, then
    /// while a frame was lost (packets never arrived, even retransmitted) and no keyframe has
    /// come since, at most one per 500 ms (video; 0 for audio).
    pub keyframe_requests_sent: u64,
    /// Keyframe requests (RTCP PLI or FIR) the remote side sent to this one (video; 0 for
    /// audio).
    pub keyframe_requests_received: u64,
}

/// A snapshot of an engine's counters, over all its calls (or, from
/// [`WebRtcHandle::counters_by_peer`](crate::WebRtcHandle::counters_by_peer), of its
/// connections with one member's device in group calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MediaCounters {
    /// Audio totals.
    pub audio: KindCounters,
    /// Video totals.
    pub video: KindCounters,
    /// Samples a slow subscriber lost to a full queue.
    pub samples_dropped: u64,
    /// Peer connections created.
    pub peer_connections_opened: u64,
    /// Peer connections closed by leaving a call.
    pub peer_connections_closed: u64,
}

#[derive(Debug, Default)]
pub(crate) struct KindAtomics {
    pub samples_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub packets_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub frames_received: AtomicU64,
    pub frames_delivered: AtomicU64,
    pub keyframes_sent: AtomicU64,
    pub keyframes_received: AtomicU64,
    pub keyframe_requests_sent: AtomicU64,
    pub keyframe_requests_received: AtomicU64,
}

/// One of the per-kind counters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stat {
    SamplesSent,
    BytesSent,
    PacketsReceived,
    BytesReceived,
    FramesReceived,
    FramesDelivered,
    KeyframesSent,
    KeyframesReceived,
    KeyframeRequestsSent,
    KeyframeRequestsReceived,
}

impl KindAtomics {
    pub(crate) fn get(&self, stat: Stat) -> &AtomicU64 {
        match stat {
            Stat::SamplesSent => &self.samples_sent,
            Stat::BytesSent => &self.bytes_sent,
            Stat::PacketsReceived => &self.packets_received,
            Stat::BytesReceived => &self.bytes_received,
            Stat::FramesReceived => &self.frames_received,
            Stat::FramesDelivered => &self.frames_delivered,
            Stat::KeyframesSent => &self.keyframes_sent,
            Stat::KeyframesReceived => &self.keyframes_received,
            Stat::KeyframeRequestsSent => &self.keyframe_requests_sent,
            Stat::KeyframeRequestsReceived => &self.keyframe_requests_received,
        }
    }

    fn snapshot(&self) -> KindCounters {
        KindCounters {
            samples_sent: self.samples_sent.load(Ordering::Relaxed),
            bytes_sent: self.bytes_sent.load(Ordering::Relaxed),
            packets_received: self.packets_received.load(Ordering::Relaxed),
            bytes_received: self.bytes_received.load(Ordering::Relaxed),
            frames_received: self.frames_received.load(Ordering::Relaxed),
            frames_delivered: self.frames_delivered.load(Ordering::Relaxed),
            keyframes_sent: self.keyframes_sent.load(Ordering::Relaxed),
            keyframes_received: self.keyframes_received.load(Ordering::Relaxed),
            keyframe_requests_sent: self.keyframe_requests_sent.load(Ordering::Relaxed),
            keyframe_requests_received: self.keyframe_requests_received.load(Ordering::Relaxed),
        }
    }
}

/// The live counters (atomics), shared by every task of an engine.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub audio: KindAtomics,
    pub video: KindAtomics,
    pub samples_dropped: AtomicU64,
    pub opened: AtomicU64,
    pub closed: AtomicU64,
}

impl Counters {
    pub(crate) fn kind(&self, kind: MediaKind) -> &KindAtomics {
        match kind {
            MediaKind::Video => &self.video,
            _ => &self.audio,
        }
    }

    pub(crate) fn snapshot(&self) -> MediaCounters {
        MediaCounters {
            audio: self.audio.snapshot(),
            video: self.video.snapshot(),
            samples_dropped: self.samples_dropped.load(Ordering::Relaxed),
            peer_connections_opened: self.opened.load(Ordering::Relaxed),
            peer_connections_closed: self.closed.load(Ordering::Relaxed),
        }
    }
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
