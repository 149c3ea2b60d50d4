//! The embedded looping test clip: 3 s of VP8 (320x240, a moving test pattern, a keyframe every
//! second) and Opus (a 440 Hz tone), made by `assets/make-clip.sh`.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use callapi_core::media::MediaKind;
use rtc::media::io::ivf_reader::IVFReader;
use rtc::media::io::ogg_reader::OggReader;

use crate::error::WebRtcError;
use crate::source::{Codec, EncodedSample, MediaSource, SampleStream};

const CLIP_IVF: &[u8] = include_bytes!("../assets/clip.ivf");
const CLIP_OGG: &[u8] = include_bytes!("../assets/clip.ogg");

/// The embedded test clip as a [`MediaSource`]: each call gets its own looping streams, video
/// starting on a keyframe. A browser can decode what it sends.
#[derive(Debug, Clone)]
pub struct TestClip {
    video: Arc<[EncodedSample]>,
    audio: Arc<[EncodedSample]>,
}

impl TestClip {
    /// Parses the embedded clip.
    pub fn new() -> Result<Self, WebRtcError> {
        Ok(Self {
            video: parse_ivf(CLIP_IVF)?.into(),
            audio: parse_ogg_opus(CLIP_OGG)?.into(),
        })
    }

    /// The clip's video frames, in order.
    pub fn video_frames(&self) -> &[EncodedSample] {
        &self.video
    }

    /// The clip's Opus packets, in order.
    pub fn audio_packets(&self) -> &[EncodedSample] {
        &self.audio
    }
}

impl MediaSource for TestClip {
    fn open(&self, kind: MediaKind) -> Option<Box<dyn SampleStream>> {
        let samples = match kind {
            MediaKind::Video => self.video.clone(),
            MediaKind::Audio => self.audio.clone(),
            _ => return None,
        };
        if samples.is_empty() {
            return None;
        }
        Some(Box::new(Looping { samples, next: 0 }))
    }
}

/// Plays samples in a loop.
struct Looping {
    samples: Arc<[EncodedSample]>,
    next: usize,
}

impl SampleStream for Looping {
    fn next_sample(&mut self) -> Option<EncodedSample> {
        let sample = self.samples.get(self.next)?.clone();
        self.next = (self.next + 1) % self.samples.len();
        Some(sample)
    }

    fn request_keyframe(&mut self) {
        // Go back to the start of the current group of pictures: the next frame is a keyframe.
        if let Some(key) = self.samples[..=self.next.min(self.samples.len() - 1)]
            .iter()
            .rposition(|s| s.keyframe)
        {
            self.next = key;
        }
    }
}

/// Whether a VP8 frame is a keyframe (RFC 6386 §9.1: P bit clear, then the start code).
pub(crate) fn is_vp8_keyframe(frame: &[u8]) -> bool {
    frame.len() >= 6 && frame[0] & 0x01 == 0 && frame[3..6] == [0x9d, 0x01, 0x2a]
}

fn parse_ivf(data: &'static [u8]) -> Result<Vec<EncodedSample>, WebRtcError> {
    let (mut reader, header) =
        IVFReader::new(Cursor::new(data)).map_err(|e| WebRtcError::Source(e.to_string()))?;
    if &header.four_cc != b"VP80" {
        return Err(WebRtcError::Source("the clip's video is not VP8".into()));
    }
    let (num, den) = (
        u64::from(header.timebase_numerator.max(1)),
        u64::from(header.timebase_denominator.max(1)),
    );
    let mut frames = Vec::new();
    let mut last_ts: Option<u64> = None;
    while let Ok((frame, frame_header)) = reader.parse_next_frame() {
        let ticks = last_ts.map_or(1, |t| frame_header.timestamp.saturating_sub(t).max(1));
        last_ts = Some(frame_header.timestamp);
        let data = frame.freeze();
        frames.push(EncodedSample {
            codec: Codec::Vp8,
            keyframe: is_vp8_keyframe(&data),
            data,
            duration: Duration::from_micros(ticks * num * 1_000_000 / den),
        });
    }
    match frames.first() {
        Some(first) if first.keyframe => Ok(frames),
        _ => Err(WebRtcError::Source(
            "the clip's video must start with a keyframe".into(),
        )),
    }
}

fn parse_ogg_opus(data: &'static [u8]) -> Result<Vec<EncodedSample>, WebRtcError> {
    let (mut reader, _header) =
        OggReader::new(Cursor::new(data), true).map_err(|e| WebRtcError::Source(e.to_string()))?;
    let mut packets = Vec::new();
    while let Ok((page, page_header)) = reader.parse_next_page() {
        if page_header.opus_header_type(&page).is_some() {
            continue; // OpusHead / OpusTags
        }
        let data: Bytes = page.freeze();
        let Some(duration) = opus_packet_duration(&data) else {
            continue;
        };
        packets.push(EncodedSample {
            codec: Codec::Opus,
            data,
            duration,
            keyframe: true,
        });
    }
    if packets.is_empty() {
        return Err(WebRtcError::Source("the clip has no Opus packets".into()));
    }
    Ok(packets)
}

/// The duration of an Opus packet from its TOC byte (RFC 6716 §3.1).
pub(crate) fn opus_packet_duration(packet: &[u8]) -> Option<Duration> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    let frame_us: u64 = match config {
        0..=11 => [10_000, 20_000, 40_000, 60_000][usize::from(config % 4)],
        12..=15 => [10_000, 20_000][usize::from(config % 2)],
        _ => [2_500, 5_000, 10_000, 20_000][usize::from(config % 4)],
    };
    let frames: u64 = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => u64::from(*packet.get(1)? & 0x3f),
    };
    (frames > 0).then(|| Duration::from_micros(frame_us * frames))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_clip_parses_into_seconds_of_vp8_and_opus_with_a_keyframe_each_second() {
        let clip = TestClip::new().unwrap();
        let video: Duration = clip.video_frames().iter().map(|s| s.duration).sum();
        let audio: Duration = clip.audio_packets().iter().map(|s| s.duration).sum();
        assert!(
            video >= Duration::from_millis(2900) && video <= Duration::from_millis(3100),
            "{video:?}"
        );
        assert!(
            audio >= Duration::from_millis(2900) && audio <= Duration::from_millis(3100),
            "{audio:?}"
        );
        let keys = clip.video_frames().iter().filter(|s| s.keyframe).count();
        assert_eq!(keys, 3, "one keyframe per second");
        assert!(clip
            .audio_packets()
            .iter()
            .all(|p| p.duration == Duration::from_millis(20)));
    }

    #[test]
    fn a_keyframe_request_rewinds_to_the_start_of_the_group() {
        let clip = TestClip::new().unwrap();
        let mut stream = clip.open(MediaKind::Video).unwrap();
        for _ in 0..40 {
            stream.next_sample().unwrap();
        }
        stream.request_keyframe();
        assert!(stream.next_sample().unwrap().keyframe);
    }
}
