//! Where remote media goes: subscribers receive [`RemoteSample`]s.

use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use callapi_core::media::MediaKind;
use callapi_core::protocol::CallId;
use tokio::sync::mpsc;

use crate::source::Codec;

/// A complete remote frame (video: assembled from its RTP packets) or packet (audio), released
/// according to the call's media plan (remote audio only from `Connected` on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSample {
    /// The call it belongs to.
    pub call_id: CallId,
    /// In a group call: the member's device it came from (`None` in 1:1).
    pub from: Option<callapi_core::media::MediaPeer>,
    /// The encoding.
    pub codec: Codec,
    /// The encoded bytes (VP8 frame, Opus packet), ready for a decoder.
    pub data: Bytes,
    /// How long it plays: audio, from the Opus packet's TOC byte; video, the interval since the
    /// previous frame's RTP timestamp (a frame is released at its last packet, before the next
    /// frame's timestamp is known), zero for the first frame.
    pub duration: Duration,
    /// Whether it decodes on its own (a video keyframe; every audio packet).
    pub keyframe: bool,
    /// RTP timestamp of the sample.
    pub rtp_timestamp: u32,
}

impl RemoteSample {
    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.codec.kind()
    }
}

/// The receiving end of [`WebRtcHandle::subscribe_samples`](crate::WebRtcHandle::subscribe_samples).
pub type SampleReceiver = mpsc::Receiver<RemoteSample>;

/// Every subscriber's queue; a full queue loses the sample (media must not block the network).
#[derive(Debug, Default)]
pub(crate) struct Subscribers {
    senders: Mutex<Vec<mpsc::Sender<RemoteSample>>>,
}

impl Subscribers {
    pub(crate) fn subscribe(&self, capacity: usize) -> SampleReceiver {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.lock().push(tx);
        rx
    }

    /// Offers a sample to every subscriber; returns how many lost it to a full queue.
    pub(crate) fn publish(&self, sample: &RemoteSample) -> u64 {
        let mut dropped = 0;
        self.lock().retain(|tx| match tx.try_send(sample.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                dropped += 1;
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        dropped
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<mpsc::Sender<RemoteSample>>> {
        self.senders
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
