//! [`MockMedia`]: a scriptable fake [`MediaEngine`] for tests.
//!
//! Joins, first frames and failures follow a [`MockMediaBehavior`] on tokio timers (so they work
//! under the paused clock); a [`MockMediaControl`] handle changes the behaviour, emits events by
//! hand and reads the log of commands the engine received.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use callapi_core::media::{
    JoinRequest, MediaEngine, MediaError, MediaEvent, MediaKind, MediaPeer, MediaPlan, MediaRole,
    MediaStats,
};
use callapi_core::protocol::{CallId, CallType};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// How a [`MockMedia`] behaves when a call's media is joined.
///
/// Times after `join_delay` are measured from the `LocalJoined` event. With the [`Default`]
/// (join 10 ms, remote joined 20 ms and first frames 50 ms after that) a `join` at `t` yields
/// `LocalJoined` at `t+10ms`, `RemoteJoined` at `t+30ms`, `FirstLocalFramePublished` and
/// `FirstRemoteFrame` at `t+60ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockMediaBehavior {
    /// From `join` to `LocalJoined`.
    pub join_delay: Duration,
    /// From `LocalJoined` to `FirstLocalFramePublished`, and (once the remote side joined) to
    /// `FirstRemoteFrame`; `None`: no frames ever.
    pub first_frame_delay: Option<Duration>,
    /// From `LocalJoined` to `RemoteJoined`; `None`: the remote side never joins (and no remote
    /// frame arrives).
    pub remote_joined_delay: Option<Duration>,
    /// When set, `join` fails with `MediaError::Join(message)` and nothing is scheduled.
    pub fail_join: Option<String>,
    /// When `true`, one `MediaEvent::Signal` with `{"sdp": "mock-offer"}` (caller) or
    /// `{"sdp": "mock-answer"}` (callee) follows `LocalJoined`.
    pub emit_signal: bool,
}

impl Default for MockMediaBehavior {
    fn default() -> Self {
        Self {
            join_delay: Duration::from_millis(10),
            first_frame_delay: Some(Duration::from_millis(50)),
            remote_joined_delay: Some(Duration::from_millis(20)),
            fail_join: None,
            emit_signal: false,
        }
    }
}

/// A command a [`MockMedia`] received, in the order received.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaCommandRecord {
    /// `join`.
    Join(JoinRequest),
    /// `update_plan`.
    UpdatePlan {
        /// The call.
        call_id: CallId,
        /// The new plan.
        plan: MediaPlan,
    },
    /// `remote_signal`.
    RemoteSignal {
        /// The call.
        call_id: CallId,
        /// The peer's payload.
        payload: Value,
    },
    /// `leave`.
    Leave {
        /// The call.
        call_id: CallId,
    },
    /// `stats`.
    Stats {
        /// The call.
        call_id: CallId,
    },
    /// `add_peer` (group calls).
    AddPeer {
        /// The call.
        call_id: CallId,
        /// The member's device.
        peer: MediaPeer,
        /// This device offers.
        offerer: bool,
    },
    /// `remove_peer` (group calls).
    RemovePeer {
        /// The call.
        call_id: CallId,
        /// The member's device.
        peer: MediaPeer,
    },
    /// `peer_signal` (group calls).
    PeerSignal {
        /// The call.
        call_id: CallId,
        /// The member's device.
        peer: MediaPeer,
        /// Its payload.
        payload: Value,
    },
}

/// An event on its way to `next_event`.
#[derive(Debug)]
enum Queued {
    /// Produced by a join session; dropped if that session has ended meanwhile.
    Scheduled { session: u64, event: MediaEvent },
    /// Produced by a peer of a group call; dropped if that peer was removed meanwhile.
    PeerScheduled {
        peer: (CallId, MediaPeer),
        session: u64,
        event: MediaEvent,
    },
    /// Emitted through the control handle; always delivered.
    Manual(MediaEvent),
}

#[derive(Debug)]
struct ActiveCall {
    session: u64,
    timers: Option<AbortHandle>,
}

#[derive(Debug, Default)]
struct State {
    behavior: MockMediaBehavior,
    commands: Vec<MediaCommandRecord>,
    active: HashMap<CallId, ActiveCall>,
    /// Group calls: the connected peers, each with its session and timers.
    peers: HashMap<(CallId, MediaPeer), ActiveCall>,
    /// Group calls joined (and not left), each with whether it is a video call.
    group_calls: HashMap<CallId, bool>,
    next_session: u64,
}

impl State {
    fn is_current(&self, call_id: CallId, session: u64) -> bool {
        self.active
            .get(&call_id)
            .is_some_and(|a| a.session == session)
    }

    fn end(&mut self, call_id: CallId) {
        if let Some(ActiveCall {
            timers: Some(timers),
            ..
        }) = self.active.remove(&call_id)
        {
            timers.abort();
        }
        self.group_calls.remove(&call_id);
        let gone: Vec<_> = self
            .peers
            .keys()
            .filter(|(c, _)| *c == call_id)
            .cloned()
            .collect();
        for key in gone {
            self.end_peer(&key);
        }
    }

    fn end_peer(&mut self, key: &(CallId, MediaPeer)) {
        if let Some(ActiveCall {
            timers: Some(timers),
            ..
        }) = self.peers.remove(key)
        {
            timers.abort();
        }
    }
}

type Shared = Arc<Mutex<State>>;

fn lock(shared: &Shared) -> MutexGuard<'_, State> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fake [`MediaEngine`] whose events follow a script.
///
/// * `join` records the request and, unless [`MockMediaBehavior::fail_join`] is set, schedules
///   `LocalJoined`, (optionally) `Signal`, `RemoteJoined`, `FirstLocalFramePublished` and
///   `FirstRemoteFrame { kind }` (`Video` for video calls, else `Audio`) per the behaviour in
///   force at the time of the join. Joining a call again restarts its schedule.
/// * `leave` cancels the call's pending events: none of its scheduled events is reported after
///   `leave` returns (events emitted by hand still are).
/// * `update_plan` and `stats` fail with `MediaError::UnknownCall` for a call that is not
///   joined; `remote_signal` is accepted (and recorded) in any case, as real engines buffer
///   early negotiation data. `stats` reports `MediaStats::default()` at once.
/// * Group calls (a join with `group` set): the join schedules `LocalJoined` and
///   `FirstLocalFramePublished` only; each `add_peer` schedules that peer's `PeerJoined` after
///   `remote_joined_delay` and `PeerFirstFrame` after `first_frame_delay` (or the former, if
///   later); `remove_peer` cancels them; `add_peer` for a call not joined as a group fails
///   with `MediaError::UnknownCall`.
/// * [`reports_frames`](MediaEngine::reports_frames) is `true`.
///
/// ```
/// use std::time::Duration;
/// use callapi_core::media::{JoinRequest, MediaEngine, MediaEvent, MediaPlan, MediaRole};
/// use callapi_core::protocol::{CallId, CallType, UserId};
/// use callapi_signal_mock::MockMedia;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let (mut media, control) = MockMedia::new();
/// let call_id = CallId::new_v4();
/// media.join(JoinRequest {
///     call_id,
///     room_id: "alice-room".into(),
///     role: MediaRole::Caller,
///     call_type: CallType::Video,
///     local_user: UserId::new("alice").unwrap(),
///     remote_user: UserId::new("bob").unwrap(),
///     plan: MediaPlan::default(),
///     group: false,
/// }).await.unwrap();
/// assert_eq!(media.next_event().await, Some(MediaEvent::LocalJoined { call_id }));
/// assert_eq!(control.active_calls(), vec![call_id]);
/// # }
/// ```
#[derive(Debug)]
pub struct MockMedia {
    shared: Shared,
    tx: mpsc::UnboundedSender<Queued>,
    rx: mpsc::UnboundedReceiver<Queued>,
}

/// A test's handle on a [`MockMedia`]: script it, emit events, read what it was told.
#[derive(Debug, Clone)]
pub struct MockMediaControl {
    shared: Shared,
    tx: mpsc::UnboundedSender<Queued>,
}

impl MockMedia {
    /// An engine with the default behaviour, and its control handle.
    pub fn new() -> (Self, MockMediaControl) {
        Self::with_behavior(MockMediaBehavior::default())
    }

    /// An engine with the given behaviour, and its control handle.
    pub fn with_behavior(behavior: MockMediaBehavior) -> (Self, MockMediaControl) {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Mutex::new(State {
            behavior,
            ..State::default()
        }));
        let media = Self {
            shared: Arc::clone(&shared),
            tx: tx.clone(),
            rx,
        };
        (media, MockMediaControl { shared, tx })
    }

    /// Another control handle for this engine.
    pub fn control(&self) -> MockMediaControl {
        MockMediaControl {
            shared: Arc::clone(&self.shared),
            tx: self.tx.clone(),
        }
    }

    fn record(&self, command: MediaCommandRecord) {
        lock(&self.shared).commands.push(command);
    }
}

/// The scripted events of one join, with their times after the join, in order.
fn script(request: &JoinRequest, b: &MockMediaBehavior) -> Vec<(Duration, MediaEvent)> {
    let call_id = request.call_id;
    let joined = b.join_delay;
    let mut events = vec![(joined, MediaEvent::LocalJoined { call_id })];
    if request.group {
        // The remote side is per peer (`peer_script`).
        if let Some(frame) = b.first_frame_delay {
            events.push((
                joined.saturating_add(frame),
                MediaEvent::FirstLocalFramePublished { call_id },
            ));
        }
        return events;
    }
    if b.emit_signal {
        let sdp = if request.role == MediaRole::Caller {
            "mock-offer"
        } else {
            "mock-answer"
        };
        events.push((
            joined,
            MediaEvent::Signal {
                call_id,
                payload: json!({ "sdp": sdp }),
            },
        ));
    }
    if let Some(remote) = b.remote_joined_delay {
        events.push((
            joined.saturating_add(remote),
            MediaEvent::RemoteJoined { call_id },
        ));
    }
    if let Some(frame) = b.first_frame_delay {
        events.push((
            joined.saturating_add(frame),
            MediaEvent::FirstLocalFramePublished { call_id },
        ));
        if let Some(remote) = b.remote_joined_delay {
            let kind = if request.call_type == CallType::Video {
                MediaKind::Video
            } else {
                MediaKind::Audio
            };
            events.push((
                joined.saturating_add(frame.max(remote)),
                MediaEvent::FirstRemoteFrame { call_id, kind },
            ));
        }
    }
    // Stable: events due at the same time keep the order above.
    events.sort_by_key(|(at, _)| *at);
    events
}

/// The scripted events of one peer of a group call, with their times after `add_peer`.
fn peer_script(
    call_id: CallId,
    peer: &MediaPeer,
    video: bool,
    b: &MockMediaBehavior,
) -> Vec<(Duration, MediaEvent)> {
    let mut events = Vec::new();
    if let Some(remote) = b.remote_joined_delay {
        events.push((
            remote,
            MediaEvent::PeerJoined {
                call_id,
                peer: peer.clone(),
            },
        ));
        if let Some(frame) = b.first_frame_delay {
            let kind = if video {
                MediaKind::Video
            } else {
                MediaKind::Audio
            };
            events.push((
                frame.max(remote),
                MediaEvent::PeerFirstFrame {
                    call_id,
                    peer: peer.clone(),
                    kind,
                },
            ));
        }
    }
    events
}

impl MediaEngine for MockMedia {
    async fn join(&mut self, request: JoinRequest) -> Result<(), MediaError> {
        let mut state = lock(&self.shared);
        state
            .commands
            .push(MediaCommandRecord::Join(request.clone()));
        if let Some(message) = &state.behavior.fail_join {
            return Err(MediaError::Join(message.clone()));
        }
        let call_id = request.call_id;
        state.end(call_id);
        state.next_session += 1;
        let session = state.next_session;
        if request.group {
            state
                .group_calls
                .insert(call_id, request.call_type == CallType::Video);
        }
        let events = script(&request, &state.behavior);
        let tx = self.tx.clone();
        let start = Instant::now();
        let timers = tokio::spawn(async move {
            for (at, event) in events {
                tokio::time::sleep_until(start + at).await;
                if tx.send(Queued::Scheduled { session, event }).is_err() {
                    return;
                }
            }
        });
        state.active.insert(
            call_id,
            ActiveCall {
                session,
                timers: Some(timers.abort_handle()),
            },
        );
        Ok(())
    }

    async fn update_plan(&mut self, call_id: CallId, plan: MediaPlan) -> Result<(), MediaError> {
        let mut state = lock(&self.shared);
        state
            .commands
            .push(MediaCommandRecord::UpdatePlan { call_id, plan });
        if state.active.contains_key(&call_id) {
            Ok(())
        } else {
            Err(MediaError::UnknownCall(call_id))
        }
    }

    async fn remote_signal(&mut self, call_id: CallId, payload: Value) -> Result<(), MediaError> {
        self.record(MediaCommandRecord::RemoteSignal { call_id, payload });
        Ok(())
    }

    async fn leave(&mut self, call_id: CallId) {
        let mut state = lock(&self.shared);
        state.commands.push(MediaCommandRecord::Leave { call_id });
        state.end(call_id);
    }

    async fn add_peer(
        &mut self,
        call_id: CallId,
        peer: MediaPeer,
        offerer: bool,
    ) -> Result<(), MediaError> {
        let mut state = lock(&self.shared);
        state.commands.push(MediaCommandRecord::AddPeer {
            call_id,
            peer: peer.clone(),
            offerer,
        });
        let Some(video) = state.group_calls.get(&call_id).copied() else {
            return Err(MediaError::UnknownCall(call_id));
        };
        let key = (call_id, peer);
        state.end_peer(&key);
        state.next_session += 1;
        let session = state.next_session;
        let events = peer_script(call_id, &key.1, video, &state.behavior);
        let tx = self.tx.clone();
        let start = Instant::now();
        let tag = key.clone();
        let timers = tokio::spawn(async move {
            for (at, event) in events {
                tokio::time::sleep_until(start + at).await;
                let queued = Queued::PeerScheduled {
                    peer: tag.clone(),
                    session,
                    event,
                };
                if tx.send(queued).is_err() {
                    return;
                }
            }
        });
        state.peers.insert(
            key,
            ActiveCall {
                session,
                timers: Some(timers.abort_handle()),
            },
        );
        Ok(())
    }

    async fn remove_peer(&mut self, call_id: CallId, peer: MediaPeer) {
        let mut state = lock(&self.shared);
        state.commands.push(MediaCommandRecord::RemovePeer {
            call_id,
            peer: peer.clone(),
        });
        state.end_peer(&(call_id, peer));
    }

    async fn peer_signal(
        &mut self,
        call_id: CallId,
        peer: MediaPeer,
        payload: Value,
    ) -> Result<(), MediaError> {
        self.record(MediaCommandRecord::PeerSignal {
            call_id,
            peer,
            payload,
        });
        Ok(())
    }

    async fn stats(&mut self, call_id: CallId) -> Result<(), MediaError> {
        let mut state = lock(&self.shared);
        state.commands.push(MediaCommandRecord::Stats { call_id });
        let session = state
            .active
            .get(&call_id)
            .map(|a| a.session)
            .ok_or(MediaError::UnknownCall(call_id))?;
        let event = MediaEvent::Stats {
            call_id,
            stats: MediaStats::default(),
        };
        // The receiver lives in `self`, so this cannot fail.
        let _ = self.tx.send(Queued::Scheduled { session, event });
        Ok(())
    }

    async fn next_event(&mut self) -> Option<MediaEvent> {
        loop {
            match self.rx.recv().await? {
                Queued::Manual(event) => return Some(event),
                Queued::Scheduled { session, event } => {
                    if lock(&self.shared).is_current(event.call_id(), session) {
                        return Some(event);
                    }
                }
                Queued::PeerScheduled {
                    peer,
                    session,
                    event,
                } => {
                    if lock(&self.shared)
                        .peers
                        .get(&peer)
                        .is_some_and(|a| a.session == session)
                    {
                        return Some(event);
                    }
                }
            }
        }
    }

    fn reports_frames(&self) -> bool {
        true
    }
}

impl Drop for MockMedia {
    fn drop(&mut self) {
        let mut state = lock(&self.shared);
        let peers: Vec<ActiveCall> = state.peers.drain().map(|(_, p)| p).collect();
        let calls: Vec<ActiveCall> = state.active.drain().map(|(_, c)| c).collect();
        for call in calls.into_iter().chain(peers) {
            if let Some(timers) = call.timers {
                timers.abort();
            }
        }
    }
}

impl MockMediaControl {
    /// The behaviour used for joins from now on.
    pub fn behavior(&self) -> MockMediaBehavior {
        lock(&self.shared).behavior.clone()
    }

    /// Changes the behaviour for joins from now on (calls already joined keep their schedule).
    pub fn set_behavior(&self, behavior: MockMediaBehavior) {
        lock(&self.shared).behavior = behavior;
    }

    /// Reports `event` from the engine now, whether or not its call is joined.
    pub fn emit(&self, event: MediaEvent) {
        // Fails only when the engine is gone, and then nobody is listening.
        let _ = self.tx.send(Queued::Manual(event));
    }

    /// Every command the engine received so far, in order.
    pub fn commands(&self) -> Vec<MediaCommandRecord> {
        lock(&self.shared).commands.clone()
    }

    /// Forgets the commands recorded so far.
    pub fn clear_commands(&self) {
        lock(&self.shared).commands.clear();
    }

    /// The calls whose media is joined (joined and not left), sorted.
    pub fn active_calls(&self) -> Vec<CallId> {
        let mut calls: Vec<CallId> = lock(&self.shared).active.keys().copied().collect();
        calls.sort();
        calls
    }

    /// Whether the call's media is joined.
    pub fn is_active(&self, call_id: CallId) -> bool {
        lock(&self.shared).active.contains_key(&call_id)
    }
}
