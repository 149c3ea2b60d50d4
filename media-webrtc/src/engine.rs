//! [`WebRtcMedia`]: the [`MediaEngine`] with one peer connection per call, and its
//! [`WebRtcHandle`] for the app.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use callapi_core::media::{
    JoinRequest, MediaEngine, MediaError, MediaEvent, MediaPeer, MediaPlan, MediaStats,
};
use callapi_core::protocol::CallId;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::clip::TestClip;
use crate::config::WebRtcConfig;
use crate::context::Shared;
use crate::counters::MediaCounters;
use crate::error::WebRtcError;
use crate::mesh::GroupMedia;
use crate::payload::Payload;
use crate::session::{Join, Session};
use crate::sink::SampleReceiver;
use crate::source::MediaSource;

/// WebRTC media for `CallApi`: one peer connection per call (in a group call, one per other
/// member's device: a full mesh), negotiated through `media` envelopes on whatever signaling
/// the app uses.
///
/// Take a [`WebRtcHandle`] with [`WebRtcMedia::handle`] before moving the engine into
/// `CallApi::new`: it receives the remote samples and reads the counters.
pub struct WebRtcMedia {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    sessions: HashMap<CallId, Session>,
    groups: HashMap<CallId, GroupMedia>,
}

impl std::fmt::Debug for WebRtcMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcMedia")
            .field("config", &self.shared.config)
            .field("calls", &self.sessions.len())
            .field("group_calls", &self.groups.len())
            .finish_non_exhaustive()
    }
}

impl WebRtcMedia {
    /// An engine publishing the embedded looping test clip (VP8 + Opus).
    pub fn new(config: WebRtcConfig) -> Result<Self, WebRtcError> {
        Ok(Self::with_source(config, Arc::new(TestClip::new()?)))
    }

    /// An engine publishing what `source` produces.
    pub fn with_source(config: WebRtcConfig, source: Arc<dyn MediaSource>) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (live, _) = watch::channel(0);
        Self {
            shared: Arc::new(Shared {
                events: events_tx,
                counters: Default::default(),
                subscribers: Default::default(),
                live,
                source,
                config,
                peer_counters: Default::default(),
            }),
            events,
            sessions: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    /// A handle for the app: remote samples, counters, live peer connections.
    pub fn handle(&self) -> WebRtcHandle {
        WebRtcHandle {
            shared: self.shared.clone(),
        }
    }
}

/// The app's view of a [`WebRtcMedia`] that `CallApi` owns: cheap to clone.
#[derive(Clone)]
pub struct WebRtcHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for WebRtcHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebRtcHandle")
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl WebRtcHandle {
    /// Receives every remote sample released from now on (video frames from the first
    /// keyframe; audio only once the call is `Connected`). A subscriber that falls behind by
    /// [`WebRtcConfig::sample_queue`] samples loses the newest ones; drop the receiver to stop.
    pub fn subscribe_samples(&self) -> SampleReceiver {
        self.shared
            .subscribers
            .subscribe(self.shared.config.sample_queue)
    }

    /// What was sent and received so far, over all calls.
    pub fn counters(&self) -> MediaCounters {
        self.shared.counters.snapshot()
    }

    /// Group calls: what was sent to and received from each member's device, over all the
    /// connections with it so far (they stay listed after they close, so a summary at the end
    /// of a call sees everyone who was in it).
    pub fn counters_by_peer(&self) -> std::collections::BTreeMap<MediaPeer, MediaCounters> {
        self.shared
            .peer_counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(peer, c)| (peer.clone(), c.snapshot()))
            .collect()
    }

    /// Peer connections not yet freed (a closed connection whose memory, sockets and tasks are
    /// gone no longer counts).
    pub fn live_peer_connections(&self) -> usize {
        *self.shared.live.borrow()
    }

    /// Waits until at most `n` peer connections are alive, for up to `limit`; returns whether
    /// that happened.
    pub async fn wait_live_peer_connections(&self, n: usize, limit: Duration) -> bool {
        let mut live = self.shared.live.subscribe();
        let freed = tokio::time::timeout(
            limit,
            async move { live.wait_for(|l| *l <= n).await.is_ok() },
        )
        .await;
        matches!(freed, Ok(true))
    }
}

fn other(err: WebRtcError) -> MediaError {
    MediaError::Other(err.to_string())
}

impl MediaEngine for WebRtcMedia {
    async fn join(&mut self, request: JoinRequest) -> Result<(), MediaError> {
        if let Some(old) = self.sessions.remove(&request.call_id) {
            old.close().await; // a restart with another device of the callee
        }
        if let Some(old) = self.groups.remove(&request.call_id) {
            old.close().await;
        }
        if request.group {
            let group = GroupMedia::join(
                &self.shared,
                request.call_id,
                request.call_type,
                request.plan,
            );
            tracing::debug!(call_id = %request.call_id, "group media joined");
            self.groups.insert(request.call_id, group);
            return Ok(());
        }
        let join = Join {
            call_id: request.call_id,
            peer: None,
            first_local: Default::default(),
            role: request.role,
            call_type: request.call_type,
            plan: request.plan,
        };
        let session = Session::open(self.shared.clone(), join)
            .await
            .map_err(|e| MediaError::Join(e.to_string()))?;
        tracing::debug!(call_id = %request.call_id, role = ?request.role, "media joined");
        self.sessions.insert(request.call_id, session);
        Ok(())
    }

    async fn update_plan(&mut self, call_id: CallId, plan: MediaPlan) -> Result<(), MediaError> {
        if let Some(group) = self.groups.get_mut(&call_id) {
            group.update_plan(plan);
            return Ok(());
        }
        let session = self
            .sessions
            .get(&call_id)
            .ok_or(MediaError::UnknownCall(call_id))?;
        session.update_plan(plan);
        Ok(())
    }

    async fn remote_signal(&mut self, call_id: CallId, payload: Value) -> Result<(), MediaError> {
        let session = self
            .sessions
            .get_mut(&call_id)
            .ok_or(MediaError::UnknownCall(call_id))?;
        let payload = match Payload::parse(payload) {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(%call_id, %err, "ignoring a negotiation payload");
                return Ok(());
            }
        };
        session.remote(payload).await.map_err(other)
    }

    async fn leave(&mut self, call_id: CallId) {
        if let Some(session) = self.sessions.remove(&call_id) {
            session.close().await;
            tracing::debug!(%call_id, "media left");
        }
        if let Some(group) = self.groups.remove(&call_id) {
            group.close().await;
            tracing::debug!(%call_id, "group media left");
        }
    }

    async fn add_peer(
        &mut self,
        call_id: CallId,
        peer: MediaPeer,
        offerer: bool,
    ) -> Result<(), MediaError> {
        let group = self
            .groups
            .get_mut(&call_id)
            .ok_or(MediaError::UnknownCall(call_id))?;
        group.add_peer(&self.shared, peer, offerer).await
    }

    async fn remove_peer(&mut self, call_id: CallId, peer: MediaPeer) {
        if let Some(group) = self.groups.get_mut(&call_id) {
            group.remove_peer(&peer).await;
        }
    }

    async fn peer_signal(
        &mut self,
        call_id: CallId,
        peer: MediaPeer,
        payload: Value,
    ) -> Result<(), MediaError> {
        let group = self
            .groups
            .get_mut(&call_id)
            .ok_or(MediaError::UnknownCall(call_id))?;
        group.signal(&peer, payload).await
    }

    async fn stats(&mut self, call_id: CallId) -> Result<(), MediaError> {
        let stats: MediaStats = if let Some(group) = self.groups.get_mut(&call_id) {
            group.stats().await
        } else {
            let session = self
                .sessions
                .get_mut(&call_id)
                .ok_or(MediaError::UnknownCall(call_id))?;
            session.stats().await
        };
        let _ = self
            .shared
            .events
            .send(MediaEvent::Stats { call_id, stats });
        Ok(())
    }

    async fn next_event(&mut self) -> Option<MediaEvent> {
        self.events.recv().await
    }
}
