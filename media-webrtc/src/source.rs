//! Where published media comes from: encoded samples from a [`MediaSource`].

use std::time::Duration;

use bytes::Bytes;
use callapi_core::media::MediaKind;

/// The encoding of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// A VP8 frame (the bitstream, without RTP payload headers).
    Vp8,
    /// An Opus packet.
    Opus,
}

impl Codec {
    /// Audio or video.
    pub fn kind(self) -> MediaKind {
        match self {
            Codec::Vp8 => MediaKind::Video,
            Codec::Opus => MediaKind::Audio,
        }
    }
}

/// One encoded frame (video) or packet (audio), ready to be packetized into RTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedSample {
    /// The encoding.
    pub codec: Codec,
    /// The encoded bytes.
    pub data: Bytes,
    /// How long the sample plays; the sender paces samples by it.
    pub duration: Duration,
    /// Whether the sample can be decoded on its own (a video keyframe; every audio packet).
    pub keyframe: bool,
}

/// A running stream of samples of one kind for one call.
pub trait SampleStream: Send + 'static {
    /// The next sample; `None` ends the stream (the call goes on without that kind).
    fn next_sample(&mut self) -> Option<EncodedSample>;

    /// The receiver asked for a keyframe (RTCP PLI/FIR): make the next video sample a
    /// keyframe if the source can. The default does nothing.
    fn request_keyframe(&mut self) {}
}

/// A producer of encoded media: a camera and microphone behind encoders, a file, a test clip.
///
/// The engine opens one stream per kind for each call that publishes it and reads samples from
/// it at the pace their durations set.
pub trait MediaSource: Send + Sync + 'static {
    /// Opens a stream of `kind` for a new call; `None` if this source has no such media (the
    /// engine reports `CaptureFailed` and the call goes on without it).
    fn open(&self, kind: MediaKind) -> Option<Box<dyn SampleStream>>;
}
