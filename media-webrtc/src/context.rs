//! What a call's tasks and its peer connection's event handler share: [`CallCtx`], and what
//! every call of an engine shares: [`Shared`].

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use callapi_core::media::{MediaEvent, MediaKind, MediaPeer, MediaPlan};
use callapi_core::protocol::CallId;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use crate::config::WebRtcConfig;
use crate::counters::{add, Counters, Stat};
use crate::sink::Subscribers;
use crate::source::MediaSource;

/// What every call of an engine shares.
pub(crate) struct Shared {
    pub(crate) events: mpsc::UnboundedSender<MediaEvent>,
    pub(crate) counters: Counters,
    pub(crate) subscribers: Subscribers,
    /// Peer connections whose event handler is still alive (not yet freed).
    pub(crate) live: watch::Sender<usize>,
    pub(crate) source: Arc<dyn MediaSource>,
    pub(crate) config: WebRtcConfig,
    /// Group calls: the counters of the connections with each member's device, kept after
    /// they close (for summaries).
    pub(crate) peer_counters: Mutex<BTreeMap<MediaPeer, Arc<Counters>>>,
}

impl Shared {
    /// The counters of the connections with `peer`, created on first use.
    pub(crate) fn counters_of(&self, peer: &MediaPeer) -> Arc<Counters> {
        self.peer_counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(peer.clone())
            .or_default()
            .clone()
    }
}

/// The state of one call that the handler and the tasks share. It never holds the peer
/// connection, so nothing here keeps a closed connection alive.
pub(crate) struct CallCtx {
    pub(crate) call_id: CallId,
    /// In a group call: the member's device this connection is with (events are `Peer*`).
    pub(crate) peer: Option<MediaPeer>,
    /// In a group call: the counters of this peer (besides the engine's totals).
    pub(crate) peer_counters: Option<Arc<Counters>>,
    pub(crate) video_call: bool,
    pub(crate) shared: Arc<Shared>,
    pub(crate) plan: Mutex<MediaPlan>,
    pub(crate) closed: AtomicBool,
    pub(crate) connected: watch::Sender<bool>,
    pub(crate) remote_joined: AtomicBool,
    /// The call's first local frame was reported (shared by a group call's connections: it
    /// is one event for the call).
    pub(crate) first_local: Arc<AtomicBool>,
    pub(crate) first_remote_audio: AtomicBool,
    pub(crate) first_remote_video: AtomicBool,
    pub(crate) tasks: Mutex<Vec<AbortHandle>>,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
}

impl CallCtx {
    /// Reports an event unless the call's media was left.
    pub(crate) fn emit(&self, event: MediaEvent) {
        if !self.closed.load(Ordering::Acquire) {
            let _ = self.shared.events.send(event);
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn plan(&self) -> MediaPlan {
        *self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn set_plan(&self, plan: MediaPlan) {
        *self
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = plan;
    }

    /// Runs a task that [`Session::close`] aborts.
    pub(crate) fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let handle = tokio::spawn(fut).abort_handle();
        let mut tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tasks.retain(|t| !t.is_finished());
        if self.is_closed() {
            handle.abort();
        } else {
            tasks.push(handle);
        }
    }

    pub(crate) fn abort_tasks(&self) {
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in tasks {
            t.abort();
        }
    }

    /// Adds `n` to a counter of `kind`: the engine's total and, in a group call, the peer's.
    pub(crate) fn count(&self, kind: MediaKind, stat: Stat, n: u64) {
        add(self.shared.counters.kind(kind).get(stat), n);
        if let Some(peer) = &self.peer_counters {
            add(peer.kind(kind).get(stat), n);
        }
    }

    /// Negotiation data for the peer.
    pub(crate) fn signal(&self, payload: serde_json::Value) {
        let call_id = self.call_id;
        self.emit(match &self.peer {
            Some(peer) => MediaEvent::PeerSignal {
                call_id,
                peer: peer.clone(),
                payload,
            },
            None => MediaEvent::Signal { call_id, payload },
        });
    }

    /// The connection is up: the remote side's media is present.
    pub(crate) fn remote_joined(&self) {
        let call_id = self.call_id;
        self.emit(match &self.peer {
            Some(peer) => MediaEvent::PeerJoined {
                call_id,
                peer: peer.clone(),
            },
            None => MediaEvent::RemoteJoined { call_id },
        });
    }

    /// The remote side closed.
    pub(crate) fn remote_left(&self) {
        let call_id = self.call_id;
        self.emit(match &self.peer {
            Some(peer) => MediaEvent::PeerLeft {
                call_id,
                peer: peer.clone(),
            },
            None => MediaEvent::RemoteLeft { call_id },
        });
    }

    /// The connection failed: in 1:1 the call's media, in a group call this peer's.
    pub(crate) fn failed(&self, message: String) {
        let call_id = self.call_id;
        self.emit(match &self.peer {
            Some(peer) => MediaEvent::PeerFailed {
                call_id,
                peer: peer.clone(),
                message,
            },
            None => MediaEvent::Failed { call_id, message },
        });
    }

    /// The first local sample of `kind` went out; reports it once per call for the call's main
    /// kind (in a group call, by whichever connection sends first).
    pub(crate) fn local_published(&self, kind: MediaKind) {
        let main = if self.video_call {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        if kind == main && !self.first_local.swap(true, Ordering::AcqRel) {
            self.emit(MediaEvent::FirstLocalFramePublished {
                call_id: self.call_id,
            });
        }
    }

    /// A complete remote frame of `kind` arrived; reports the first of each kind.
    pub(crate) fn remote_frame(&self, kind: MediaKind) {
        let flag = match kind {
            MediaKind::Video => &self.first_remote_video,
            _ => &self.first_remote_audio,
        };
        if !flag.swap(true, Ordering::AcqRel) {
            tracing::debug!(call_id = %self.call_id, peer = ?self.peer, ?kind, "first remote frame");
            let call_id = self.call_id;
            self.emit(match &self.peer {
                Some(peer) => MediaEvent::PeerFirstFrame {
                    call_id,
                    peer: peer.clone(),
                    kind,
                },
                None => MediaEvent::FirstRemoteFrame { call_id, kind },
            });
        }
    }
}
