//! The softphone's media: none (signaling only, the default: a call is connected at accept) or
//! `--media webrtc`, a `callapi-media-webrtc` engine publishing its looping VP8/Opus test clip
//! (no camera needed), whose counters the `counters` command prints.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use callapi_core::call::{CallEvent, Notification, PeerMediaEvent};
use callapi_core::media::MediaKind;
use callapi_media_webrtc::{MediaCounters, WebRtcConfig, WebRtcHandle, WebRtcMedia};
use clap::ValueEnum;

/// Which media the phone's calls carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MediaChoice {
    /// Signaling only: a call is connected when it is accepted.
    None,
    /// WebRTC peer connections (VP8 + Opus test clip), negotiated through the signaling backend.
    Webrtc,
}

/// The engine settings for `--media webrtc` with `--media-bind ip`: a loopback address gives
/// [`WebRtcConfig::loopback`] (host candidates on loopback), any other address binds the peer
/// connections' sockets there.
pub fn webrtc_config(bind: IpAddr) -> WebRtcConfig {
    if bind.is_loopback() && bind.is_ipv4() {
        return WebRtcConfig::loopback();
    }
    let mut config = WebRtcConfig {
        bind_addrs: vec![std::net::SocketAddr::new(bind, 0)],
        ..WebRtcConfig::default()
    };
    config.include_loopback_candidates = bind.is_loopback();
    config
}

/// What the phone can tell about its media: the engine's counters and whether a remote video
/// frame has arrived.
#[derive(Debug, Clone, Default)]
pub struct MediaWatch {
    handle: Option<WebRtcHandle>,
    first_remote_frame: Arc<AtomicBool>,
}

impl MediaWatch {
    /// A watch of a WebRTC engine.
    pub fn webrtc(media: &WebRtcMedia) -> Self {
        Self {
            handle: Some(media.handle()),
            first_remote_frame: Arc::default(),
        }
    }

    /// A watch with nothing to watch (signaling only).
    pub fn none() -> Self {
        Self::default()
    }

    /// Notes a first remote video frame (1:1: `RecvRemoteFirstFrame`; group: a member's first
    /// video frame).
    pub fn observe(&self, n: &Notification) {
        let first = match n {
            Notification::Event(e) => e.event == CallEvent::RecvRemoteFirstFrame,
            Notification::PeerMedia { event, .. } => {
                *event == PeerMediaEvent::FirstFrame(MediaKind::Video)
            }
            _ => false,
        };
        if first {
            self.first_remote_frame.store(true, Ordering::Relaxed);
        }
    }

    /// The `counters` command's lines: one `counters peer=bob/b1 ...` per group member's device
    /// this phone exchanged media with, then `ok counters video_sent=N video_received=N
    /// audio_sent=N audio_received=N first_remote_frame=yes|no` (totals since the phone
    /// started), or why there are none.
    pub fn lines(&self) -> Result<Vec<String>, String> {
        let handle = self.handle.as_ref().ok_or(
            "no media counters: this phone carries signaling only (start it with --media webrtc)",
        )?;
        let mut lines: Vec<String> = handle
            .counters_by_peer()
            .iter()
            .map(|(peer, c)| format!("counters peer={peer} {}", figures(c)))
            .collect();
        lines.push(format!(
            "ok counters {} first_remote_frame={}",
            figures(&handle.counters()),
            if self.first_remote_frame.load(Ordering::Relaxed) {
                "yes"
            } else {
                "no"
            }
        ));
        Ok(lines)
    }
}

/// `video_sent=N video_received=N audio_sent=N audio_received=N` (video: frames; audio:
/// packets).
fn figures(c: &MediaCounters) -> String {
    format!(
        "video_sent={} video_received={} audio_sent={} audio_received={}",
        c.video.samples_sent,
        c.video.frames_received,
        c.audio.samples_sent,
        c.audio.frames_received
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn signaling_only_phones_say_how_to_get_counters() {
        let e = MediaWatch::none().lines().unwrap_err();
        assert!(e.contains("--media webrtc"), "{e}");
    }

    #[test]
    fn a_fresh_engine_counts_nothing() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let media = WebRtcMedia::new(webrtc_config(IpAddr::V4(Ipv4Addr::LOCALHOST))).unwrap();
            let watch = MediaWatch::webrtc(&media);
            assert_eq!(
                watch.lines().unwrap(),
                [
                    "ok counters video_sent=0 video_received=0 audio_sent=0 audio_received=0 \
                  first_remote_frame=no"
                ]
            );
        });
    }

    #[test]
    fn bind_addresses() {
        assert_eq!(
            webrtc_config(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            WebRtcConfig::loopback()
        );
        let c = webrtc_config("10.1.2.3".parse().unwrap());
        assert_eq!(
            c.bind_addrs,
            ["10.1.2.3:0".parse::<std::net::SocketAddr>().unwrap()]
        );
        assert!(!c.include_loopback_candidates);
        let c = webrtc_config("::1".parse().unwrap());
        assert!(c.include_loopback_candidates);
    }
}
