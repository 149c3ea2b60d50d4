//! The peer connection's event handler: candidates and state changes become `MediaEvent`s,
//! remote tracks get a receiving task.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
};

use crate::context::CallCtx;
use crate::payload::Payload;
use crate::receive;

/// The peer connection's event handler. Only the connection holds it, so its `Drop` tells that
/// the connection was freed (counted in [`Shared::live`]).
pub(crate) struct Handler {
    ctx: Arc<CallCtx>,
}

impl Handler {
    pub(crate) fn new(ctx: Arc<CallCtx>) -> Self {
        ctx.shared.live.send_modify(|n| *n += 1);
        Self { ctx }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        self.ctx
            .shared
            .live
            .send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        match event.candidate.to_json() {
            Ok(init) => match Payload::Candidate(init).to_value() {
                Ok(payload) => self.ctx.signal(payload),
                Err(err) => tracing::warn!(%err, "cannot encode a local ICE candidate"),
            },
            Err(err) => tracing::warn!(%err, "cannot encode a local ICE candidate"),
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let ctx = &self.ctx;
        tracing::debug!(call_id = %ctx.call_id, peer = ?ctx.peer, %state, "peer connection state");
        match state {
            RTCPeerConnectionState::Connected => {
                ctx.connected.send_replace(true);
                if !ctx.remote_joined.swap(true, Ordering::AcqRel) {
                    ctx.remote_joined();
                }
            }
            RTCPeerConnectionState::Failed => {
                ctx.failed("the peer connection failed (ICE or DTLS)".into())
            }
            RTCPeerConnectionState::Disconnected | RTCPeerConnectionState::Closed
                if ctx.remote_joined.swap(false, Ordering::AcqRel) =>
            {
                ctx.remote_left();
            }
            _ => {}
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let ctx = self.ctx.clone();
        self.ctx.spawn(receive::run(ctx, track));
    }
}
