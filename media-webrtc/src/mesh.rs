//! A group call's media: one [`Session`] (peer connection) per other member's device, the
//! video member cap, and what the call-wide operations (plan, stats, leave) do over them.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use callapi_core::media::{MediaError, MediaEvent, MediaPeer, MediaPlan, MediaRole, MediaStats};
use callapi_core::protocol::{CallId, CallType};

use crate::context::Shared;
use crate::payload::Payload;
use crate::session::{Join, Session};

/// The mesh of one group call.
pub(crate) struct GroupMedia {
    call_id: CallId,
    call_type: CallType,
    plan: MediaPlan,
    peers: BTreeMap<MediaPeer, Session>,
    /// One `FirstLocalFramePublished` for the call, from whichever connection sends first.
    first_local: Arc<AtomicBool>,
}

impl GroupMedia {
    /// The call's media joined, with no peer yet; reports `LocalJoined` for the call.
    pub(crate) fn join(
        shared: &Shared,
        call_id: CallId,
        call_type: CallType,
        plan: MediaPlan,
    ) -> Self {
        let _ = shared.events.send(MediaEvent::LocalJoined { call_id });
        Self {
            call_id,
            call_type,
            plan,
            peers: BTreeMap::new(),
            first_local: Arc::default(),
        }
    }

    /// Opens the connection with `peer` (closing an earlier one with it first). A video call
    /// refuses a peer beyond [`WebRtcConfig::max_video_members`](crate::WebRtcConfig).
    pub(crate) async fn add_peer(
        &mut self,
        shared: &Arc<Shared>,
        peer: MediaPeer,
        offerer: bool,
    ) -> Result<(), MediaError> {
        if let Some(old) = self.peers.remove(&peer) {
            old.close().await;
        }
        let cap = shared.config.max_video_members;
        // Members = the peers, the new one and this device.
        if self.call_type == CallType::Video && self.peers.len() + 2 > cap {
            tracing::warn!(call_id = %self.call_id, %peer, cap, "video member cap reached");
            return Err(MediaError::VideoMemberCap { cap });
        }
        let join = Join {
            call_id: self.call_id,
            peer: Some(peer.clone()),
            first_local: self.first_local.clone(),
            role: if offerer {
                MediaRole::Caller
            } else {
                MediaRole::Callee
            },
            call_type: self.call_type,
            plan: self.plan,
        };
        let session = Session::open(shared.clone(), join)
            .await
            .map_err(|e| MediaError::Join(e.to_string()))?;
        tracing::debug!(call_id = %self.call_id, %peer, offerer, "mesh peer added");
        self.peers.insert(peer, session);
        Ok(())
    }

    /// Closes the connection with `peer`, if any.
    pub(crate) async fn remove_peer(&mut self, peer: &MediaPeer) {
        if let Some(session) = self.peers.remove(peer) {
            session.close().await;
            tracing::debug!(call_id = %self.call_id, %peer, "mesh peer removed");
        }
    }

    /// A negotiation payload from `peer`; one that does not parse is logged and skipped.
    pub(crate) async fn signal(
        &mut self,
        peer: &MediaPeer,
        payload: serde_json::Value,
    ) -> Result<(), MediaError> {
        let session = self
            .peers
            .get_mut(peer)
            .ok_or(MediaError::UnknownCall(self.call_id))?;
        match Payload::parse(payload) {
            Ok(p) => session.remote(p).await.map_err(MediaError::from),
            Err(err) => {
                tracing::warn!(call_id = %self.call_id, %peer, %err, "ignoring a negotiation payload");
                Ok(())
            }
        }
    }

    /// Applies a new plan to every connection (and to those opened later).
    pub(crate) fn update_plan(&mut self, plan: MediaPlan) {
        self.plan = plan;
        for session in self.peers.values() {
            session.update_plan(plan);
        }
    }

    /// The call's figures over all its connections: the mean RTT of those that know one, the
    /// sums of losses and bitrates.
    pub(crate) async fn stats(&mut self) -> MediaStats {
        let mut total = MediaStats::default();
        let mut rtts = Vec::new();
        for session in self.peers.values_mut() {
            let s = session.stats().await;
            rtts.extend(s.rtt_ms);
            total.packets_lost += s.packets_lost;
            total.recv_bitrate_bps += s.recv_bitrate_bps;
            total.send_bitrate_bps += s.send_bitrate_bps;
        }
        if !rtts.is_empty() {
            // A handful of connections: the count fits an f64 exactly.
            total.rtt_ms = Some(rtts.iter().sum::<f64>() / rtts.len() as f64);
        }
        total
    }

    /// Closes every connection.
    pub(crate) async fn close(self) {
        for (_, session) in self.peers {
            session.close().await;
        }
    }
}
