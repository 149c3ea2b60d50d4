//! One call's media: its peer connection (codecs, interceptors, ICE settings), its tracks, the
//! offer/answer exchange with held-back candidates, the media timeout, stats, and the close that
//! frees it all.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callapi_core::media::{MediaEvent, MediaKind, MediaPeer, MediaPlan, MediaRole};
use callapi_core::protocol::{CallId, CallType};
use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::Slot;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::watch;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    RTCConfigurationBuilder, RTCIceCandidateInit, RTCIceServer, RTCSdpType, Registry,
    SettingEngineBuilder, StatsSelector,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::config::WebRtcConfig;
use crate::context::{CallCtx, Shared};
use crate::error::WebRtcError;
use crate::handler::Handler;
use crate::keyframe::{KeyframeRequestForwarder, SLOT};
use crate::payload::Payload;
use crate::send;

/// How long one operation on a peer connection may take before the call's media counts as
/// broken (they normally take microseconds: a round trip to the connection's driver task).
const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// The byte counters at one stats request, for the bitrates of the next.
#[derive(Debug, Clone, Copy)]
struct StatsMark {
    at: Instant,
    received: u64,
    sent: u64,
}

/// One call's media as the engine holds it.
pub(crate) struct Session {
    pub ctx: Arc<CallCtx>,
    pc: Arc<dyn PeerConnection>,
    role: MediaRole,
    remote_description_set: bool,
    pending_candidates: Vec<RTCIceCandidateInit>,
    /// Bytes counted at the last stats request, for bitrates.
    last_stats: StatsMark,
    /// `close` ran.
    pc_closed: bool,
}

async fn op<T>(
    name: &'static str,
    fut: impl std::future::Future<Output = webrtc::error::Result<T>>,
) -> Result<T, WebRtcError> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(WebRtcError::Timeout(name)),
    }
}

fn ssrc_for(call_id: CallId, peer: Option<&MediaPeer>, kind: MediaKind) -> u32 {
    let mut h = DefaultHasher::new();
    call_id.to_string().hash(&mut h);
    peer.hash(&mut h);
    kind.hash(&mut h);
    std::process::id().hash(&mut h);
    Instant::now().hash(&mut h);
    // Truncation intended: any 32 bits of the hash make a fine SSRC.
    (h.finish() as u32).max(1)
}

fn video_codec(config: &WebRtcConfig) -> RTCRtpCodecParameters {
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.to_owned(),
        parameter: parameter.to_owned(),
    };
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: config.video_codec.mime_type().to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![fb("nack", ""), fb("nack", "pli"), fb("ccm", "fir")],
        },
        payload_type: config.video_payload_type,
    }
}

fn audio_codec(config: &WebRtcConfig) -> RTCRtpCodecParameters {
    RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: config.audio_codec.mime_type().to_owned(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
            rtcp_feedback: vec![],
        },
        payload_type: config.audio_payload_type,
    }
}

/// What a new session needs.
pub(crate) struct Join {
    pub call_id: CallId,
    /// In a group call: the member's device this connection is with.
    pub peer: Option<MediaPeer>,
    /// The call's "first local frame reported" flag (a group call's connections share one).
    pub first_local: Arc<AtomicBool>,
    pub role: MediaRole,
    pub call_type: CallType,
    pub plan: MediaPlan,
}

impl Session {
    /// Builds the call's peer connection with its tracks (audio, plus video for video calls),
    /// starts the publishing tasks, and (caller) sends the offer.
    pub(crate) async fn open(shared: Arc<Shared>, join: Join) -> Result<Self, WebRtcError> {
        let config = &shared.config;
        if config.bind_addrs.is_empty() {
            return Err(WebRtcError::Config("no bind address".into()));
        }
        let video_call = join.call_type == CallType::Video;
        let (connected, _) = watch::channel(false);
        let ctx = Arc::new(CallCtx {
            call_id: join.call_id,
            peer: join.peer.clone(),
            peer_counters: join.peer.as_ref().map(|p| shared.counters_of(p)),
            video_call,
            shared: shared.clone(),
            plan: Mutex::new(join.plan),
            closed: AtomicBool::new(false),
            connected,
            remote_joined: AtomicBool::new(false),
            first_local: join.first_local.clone(),
            first_remote_audio: AtomicBool::new(false),
            first_remote_video: AtomicBool::new(false),
            tasks: Mutex::new(Vec::new()),
            bytes_received: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
        });

        let mut media_engine = MediaEngine::default();
        let video = video_codec(config);
        let audio = audio_codec(config);
        media_engine.register_codec(audio.clone(), RtpCodecKind::Audio)?;
        if video_call {
            media_engine.register_codec(video.clone(), RtpCodecKind::Video)?;
        }
        let registry = register_default_interceptors(Registry::new(), &mut media_engine)?
            .with(Slot::from(SLOT), KeyframeRequestForwarder::default());
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(config.include_loopback_candidates)
            .with_ice_connection_attempts(
                Some(config.ice_check_interval),
                Some(config.ice_max_binding_requests),
            )
            .with_prflx_acceptance_min_wait(Some(config.ice_prflx_acceptance_min_wait))
            .with_ice_timeouts(
                Some(config.ice_disconnected_timeout),
                Some(config.ice_failed_timeout),
                None,
            )
            .build();
        let ice_servers = config
            .ice_servers
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone(),
                credential: s.credential.clone(),
            })
            .collect();
        let handler = Arc::new(Handler::new(ctx.clone()));
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(ice_servers)
                    .build(),
            )
            .with_media_engine(media_engine)
            .with_interceptor_registry(registry)
            .with_setting_engine(settings)
            .with_handler(handler)
            .with_udp_addrs(config.bind_addrs.clone())
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        crate::counters::add(&shared.counters.opened, 1);
        if let Some(peer) = &ctx.peer_counters {
            crate::counters::add(&peer.opened, 1);
        }

        let mut session = Session {
            ctx: ctx.clone(),
            pc,
            role: join.role,
            remote_description_set: false,
            pending_candidates: Vec::new(),
            last_stats: StatsMark {
                at: Instant::now(),
                received: 0,
                sent: 0,
            },
            pc_closed: false,
        };
        if let Err(err) = session.add_tracks(&audio, &video).await {
            session.close().await;
            return Err(err);
        }
        if ctx.peer.is_none() {
            // A group call's engine reports it once for the call.
            ctx.emit(MediaEvent::LocalJoined {
                call_id: ctx.call_id,
            });
        }
        if session.role == MediaRole::Caller {
            if let Err(err) = session.offer().await {
                session.close().await;
                return Err(err);
            }
        }
        Ok(session)
    }

    async fn add_tracks(
        &mut self,
        audio: &RTCRtpCodecParameters,
        video: &RTCRtpCodecParameters,
    ) -> Result<(), WebRtcError> {
        let mut kinds = vec![(MediaKind::Audio, audio)];
        if self.ctx.video_call {
            kinds.push((MediaKind::Video, video));
        }
        for (kind, codec) in kinds {
            let rtp_kind = match kind {
                MediaKind::Video => RtpCodecKind::Video,
                _ => RtpCodecKind::Audio,
            };
            let name = if kind == MediaKind::Video {
                "video"
            } else {
                "audio"
            };
            // Track ids must differ from the peer's: the connection routes RTCP (a keyframe
            // request) by track id, local and remote alike.
            let ssrc = ssrc_for(self.ctx.call_id, self.ctx.peer.as_ref(), kind);
            let track = Arc::new(TrackLocalStaticSample::new(
                Instant::now(),
                MediaStreamTrack::new(
                    format!("callapi-{}", self.ctx.call_id),
                    format!("callapi-{name}-{ssrc:08x}"),
                    format!("callapi {name}"),
                    rtp_kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            ..Default::default()
                        },
                        codec: codec.rtp_codec.clone(),
                        ..Default::default()
                    }],
                ),
            )?);
            let sender: Arc<dyn RtpSender> = op(
                "add_track",
                self.pc.add_track(track.clone() as Arc<dyn TrackLocal>),
            )
            .await?;
            match self.ctx.shared.source.open(kind) {
                Some(stream) => self.ctx.spawn(send::run(
                    self.ctx.clone(),
                    kind,
                    track,
                    sender,
                    codec.payload_type,
                    stream,
                )),
                None => self.ctx.emit(MediaEvent::CaptureFailed {
                    call_id: self.ctx.call_id,
                    message: format!("the media source has no {name}"),
                }),
            }
        }
        Ok(())
    }

    async fn offer(&mut self) -> Result<(), WebRtcError> {
        let offer = op("create_offer", self.pc.create_offer(None)).await?;
        op(
            "set_local_description",
            self.pc.set_local_description(offer.clone()),
        )
        .await?;
        self.signal(Payload::Description(Box::new(offer)))
    }

    fn signal(&self, payload: Payload) -> Result<(), WebRtcError> {
        self.ctx.signal(payload.to_value()?);
        Ok(())
    }

    /// A negotiation payload from the peer.
    pub(crate) async fn remote(&mut self, payload: Payload) -> Result<(), WebRtcError> {
        match payload {
            Payload::Description(desc) => {
                let is_offer = desc.sdp_type == RTCSdpType::Offer;
                match (self.role, is_offer) {
                    (MediaRole::Callee, true) | (MediaRole::Caller, false) => {}
                    _ => {
                        tracing::warn!(call_id = %self.ctx.call_id, sdp_type = %desc.sdp_type, "unexpected description ignored");
                        return Ok(());
                    }
                }
                op(
                    "set_remote_description",
                    self.pc.set_remote_description(*desc),
                )
                .await?;
                self.remote_description_set = true;
                for candidate in std::mem::take(&mut self.pending_candidates) {
                    self.add_candidate(candidate).await;
                }
                if is_offer {
                    let answer = op("create_answer", self.pc.create_answer(None)).await?;
                    op(
                        "set_local_description",
                        self.pc.set_local_description(answer.clone()),
                    )
                    .await?;
                    self.signal(Payload::Description(Box::new(answer)))?;
                }
                self.start_watchdog();
            }
            Payload::Candidate(candidate) => {
                if self.remote_description_set {
                    self.add_candidate(candidate).await;
                } else {
                    self.pending_candidates.push(candidate);
                }
            }
        }
        Ok(())
    }

    /// A bad candidate is the peer's problem, not the call's: it is logged and skipped.
    async fn add_candidate(&self, candidate: RTCIceCandidateInit) {
        if candidate.candidate.is_empty() {
            return; // end of candidates
        }
        if let Err(err) = op("add_ice_candidate", self.pc.add_ice_candidate(candidate)).await {
            tracing::debug!(call_id = %self.ctx.call_id, %err, "remote ICE candidate refused");
        }
    }

    /// Both descriptions are set: ICE and DTLS must connect within the media timeout.
    fn start_watchdog(&self) {
        let ctx = self.ctx.clone();
        let limit = ctx.shared.config.connect_timeout;
        let mut connected = ctx.connected.subscribe();
        self.ctx.spawn(async move {
            let ok = tokio::time::timeout(limit, connected.wait_for(|c| *c)).await;
            if !matches!(ok, Ok(Ok(_))) {
                ctx.failed(format!("ICE/DTLS did not connect within {limit:?}"));
            }
        });
    }

    pub(crate) fn update_plan(&self, plan: MediaPlan) {
        self.ctx.set_plan(plan);
    }

    /// Figures for `MediaEngine::stats`: RTT of the selected pair, packets lost, bitrates since
    /// the previous request (or since the call started).
    pub(crate) async fn stats(&mut self) -> callapi_core::media::MediaStats {
        let now = Instant::now();
        let report = self.pc.get_stats(now, StatsSelector::None).await;
        let rtt_ms = report
            .candidate_pairs()
            .filter(|p| p.nominated && p.current_round_trip_time > 0.0)
            .map(|p| p.current_round_trip_time * 1000.0)
            .next();
        let packets_lost = report
            .inbound_rtp_streams()
            .map(|s| {
                s.received_rtp_stream_stats
                    .packets_lost
                    .max(0)
                    .unsigned_abs()
            })
            .sum();
        let rx = self.ctx.bytes_received.load(Ordering::Relaxed);
        let tx = self.ctx.bytes_sent.load(Ordering::Relaxed);
        let last = std::mem::replace(
            &mut self.last_stats,
            StatsMark {
                at: now,
                received: rx,
                sent: tx,
            },
        );
        let (rx0, tx0) = (last.received, last.sent);
        let secs = now.duration_since(last.at).as_secs_f64().max(0.001);
        // Rounding to whole bits per second is intended.
        let rate = |bytes: u64| (bytes as f64 * 8.0 / secs) as u64;
        callapi_core::media::MediaStats {
            rtt_ms,
            packets_lost,
            recv_bitrate_bps: rate(rx.saturating_sub(rx0)),
            send_bitrate_bps: rate(tx.saturating_sub(tx0)),
        }
    }

    /// Closes the peer connection and stops every task of the call; afterwards nothing of the
    /// call is left running and its sockets are closed.
    pub(crate) async fn close(mut self) {
        self.stop_tasks();
        self.pc_closed = true;
        if let Err(err) = op("close", self.pc.close()).await {
            tracing::debug!(call_id = %self.ctx.call_id, %err, "closing the peer connection");
        }
        crate::counters::add(&self.ctx.shared.counters.closed, 1);
        if let Some(peer) = &self.ctx.peer_counters {
            crate::counters::add(&peer.closed, 1);
        }
        // Dropping `self` drops the last handle on the connection.
    }

    fn stop_tasks(&self) {
        self.ctx.closed.store(true, Ordering::Release);
        self.ctx.abort_tasks();
    }
}

impl Drop for Session {
    /// A session dropped without `close` (the engine dropped mid-call) still stops its tasks
    /// and closes its connection: a connection only dropped, not closed, is not freed.
    fn drop(&mut self) {
        self.stop_tasks();
        if !self.pc_closed {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let pc = self.pc.clone();
                runtime.spawn(async move {
                    let _ = op("close", pc.close()).await;
                });
            }
        }
    }
}
