//! WebRTC media for callapi: [`WebRtcMedia`] is a
//! [`MediaEngine`](callapi_core::media::MediaEngine) over the `webrtc` crate (0.21 line), with
//! one peer connection per call — in a group call, one per other member's device (a full mesh:
//! the lower (user, device) of each pair offers; connections open as members come in and
//! close as they leave; video calls are capped at [`WebRtcConfig::max_video_members`], 4 by
//! default, audio-only calls are not; [`WebRtcHandle::counters_by_peer`] and
//! [`RemoteSample::from`] tell the members apart). The caller offers; offers, answers and trickled ICE candidates
//! travel as `media` envelopes through whatever `SignalClient` the app chose (WebSocket, MQTT,
//! the mock network), in the browser's JSON shapes.
//!
//! * **Media plan.** The callee may join while ringing and publish; the caller sees (and
//!   receives) remote video before accept; remote audio reaches the app only from `Connected`
//!   on. Audio-only calls carry no video track at all.
//! * **First frame.** A video call's first remote frame is a complete VP8 keyframe assembled
//!   from RTP (released at its last packet, the marker bit); a keyframe is requested (RTCP PLI)
//!   as soon as the remote video track opens. For audio, the first Opus packet.
//! * **Loss.** Lost RTP packets are asked for again (RTCP NACK, the `webrtc` crate's
//!   interceptors); a video frame whose packets never come (a gap longer than the reordering
//!   window) breaks the picture, and the receiver requests a keyframe (PLI) every 500 ms until
//!   one arrives; the sender answers a request by asking its [`SampleStream`] for a keyframe.
//!   [`KindCounters`] count keyframes and requests both ways.
//! * **Sources and sinks.** A [`MediaSource`] yields encoded samples; the default is the
//!   embedded looping [`TestClip`] (VP8 320x240 + Opus tone), so nothing needs a camera.
//!   [`WebRtcHandle::subscribe_samples`] receives the remote [`RemoteSample`]s.
//! * **Failures.** ICE/DTLS that does not connect within
//!   [`WebRtcConfig::connect_timeout`], or a peer connection that fails, is reported as
//!   `MediaEvent::Failed` and the call ends with `MediaFailed`.
//! * **Clean leave.** Leaving a call closes its peer connection and aborts its tasks;
//!   [`WebRtcHandle::live_peer_connections`] counts connections not yet freed.
//!
//! ```no_run
//! use callapi_core::call::{CallConfig, PrepareConfig};
//! use callapi_core::protocol::{CallType, DeviceId, UserId};
//! use callapi_core::CallApi;
//! use callapi_media_webrtc::{WebRtcConfig, WebRtcMedia};
//! use callapi_signal_mock::{FaultPlan, MockNetwork};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let net = MockNetwork::new(1, FaultPlan::default()); // any SignalClient works here
//! let (me, phone) = (UserId::new("alice")?, DeviceId::new("phone")?);
//! let media = WebRtcMedia::new(WebRtcConfig::loopback())?; // publishes the test clip
//! let handle = media.handle(); // keep it: samples and counters
//! let mut samples = handle.subscribe_samples();
//! let api = CallApi::new(CallConfig::new(me.clone(), phone.clone()), net.connect(me, phone), media);
//! api.prepare(PrepareConfig::new("alice-room")).await?;
//! api.call("bob", CallType::Video).await?;
//! while let Some(sample) = samples.recv().await {
//!     println!("{:?} {} bytes", sample.codec, sample.data.len()); // VP8 frames, Opus packets
//! }
//! println!("{:?}", handle.counters());
//! # Ok(()) }
//! ```

mod clip;
mod config;
mod context;
mod counters;
mod engine;
mod error;
mod handler;
mod keyframe;
mod mesh;
mod payload;
mod receive;
mod send;
mod session;
mod sink;
mod source;

pub use clip::TestClip;
pub use config::{AudioCodec, IceServer, VideoCodec, WebRtcConfig};
pub use counters::{KindCounters, MediaCounters};
pub use engine::{WebRtcHandle, WebRtcMedia};
pub use error::WebRtcError;
pub use sink::{RemoteSample, SampleReceiver};
pub use source::{Codec, EncodedSample, MediaSource, SampleStream};
