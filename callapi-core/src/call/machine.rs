//! The sans-IO call machine: all call logic, no clock reads, no I/O, no tasks.
//!
//! Feed it with [`CallMachine::handle_input`] and [`CallMachine::handle_timeout`]; drain what it
//! wants done with [`CallMachine::poll_output`]; ask [`CallMachine::poll_timeout`] when to wake it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::media::{JoinRequest, MediaEvent, MediaKind, MediaRole};
use crate::protocol::{
    Body, CallId, CallType, DecodeError, DeviceId, Elsewhere, Envelope, Extension, MessageId,
    UserId, MAX_ENVELOPE_BYTES, PROTOCOL_VERSION,
};
use crate::signal::LinkState;

use super::command::{Command, CommandError};
use super::config::{
    CallConfig, CallPolicy, DefaultPolicy, IncomingInvite, PrepareConfig, MAX_CALL_TIMEOUT,
};
use super::io::{Input, LinkCommand, MediaCommand, Output};
use super::reliable::Reliable;
use super::session::{Call, DeviceStatus, Ended, LateReply, Participant};
use super::state::{
    codes, CallError, CallErrorEvent, CallEvent, CallInfo, CallState, ErrorCodeType, EventInfo,
    Notification, StateChange, StateReason,
};
use super::timings::{CallTimings, Milestone};

/// Most recently ended calls remembered to answer late messages.
const ENDED_MEMORY: usize = 64;
/// Largest in-call message payload, leaving room for the envelope around it.
pub const MAX_MESSAGE_BYTES: usize = MAX_ENVELOPE_BYTES - 2048;
/// Shortest wait for other devices to ring after a busy reply.
const BUSY_GRACE_MIN: Duration = Duration::from_millis(250);
/// Longest wait for other devices to ring after a busy reply.
const BUSY_GRACE_MAX: Duration = Duration::from_secs(2);
/// Most DTMF digits in one message.
pub const MAX_DTMF_DIGITS: usize = 64;

/// How the link closes once the call is over and its messages are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Closing {
    /// A pause asked for during the call.
    Pause,
    /// The end of an access-link session: disconnect and clear saved data.
    EndSession,
}

/// The call logic of one device, as a plain state machine (sans-IO: see `docs/ARCHITECTURE.md`, "Layers").
pub struct CallMachine {
    cfg: CallConfig,
    anchor: Instant,
    anchor_unix_ms: u64,
    rng: ChaCha8Rng,
    state: CallState,
    prepared: Option<PrepareConfig>,
    call: Option<Call>,
    ended: VecDeque<Ended>,
    reliable: Reliable,
    outputs: VecDeque<Output>,
    reports_frames: bool,
    policy: Box<dyn CallPolicy>,
    link: LinkState,
    link_down_since: Option<Instant>,
    last_timings: Option<CallTimings>,
    room_scope: Option<String>,
    /// How the link closes once no call is up and no message awaits its ack (closing it at
    /// once would cut off an ended call's hangup before it is acknowledged).
    closing: Option<Closing>,
    /// A call ended since the link policy last looked.
    call_ended: bool,
}

impl std::fmt::Debug for CallMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallMachine")
            .field("user", &self.cfg.user_id)
            .field("device", &self.cfg.device_id)
            .field("state", &self.state)
            .field("call", &self.call.as_ref().map(|c| c.id))
            .finish_non_exhaustive()
    }
}

impl CallMachine {
    /// A machine in state `Idle`. `now` and `unix_ms` anchor the wall clock: envelope timestamps
    /// are `unix_ms` plus the time elapsed since `now`.
    pub fn new(cfg: CallConfig, now: Instant, unix_ms: u64) -> Self {
        let seed = cfg.seed.unwrap_or_else(rand::random);
        let reliable = Reliable::new(cfg.reliability);
        Self {
            cfg,
            anchor: now,
            anchor_unix_ms: unix_ms,
            rng: ChaCha8Rng::seed_from_u64(seed),
            state: CallState::Idle,
            prepared: None,
            call: None,
            ended: VecDeque::new(),
            reliable,
            outputs: VecDeque::new(),
            reports_frames: true,
            policy: Box::new(DefaultPolicy),
            link: LinkState::Connected,
            link_down_since: None,
            last_timings: None,
            room_scope: None,
            closing: None,
            call_ended: false,
        }
    }

    /// Limits the machine to calls in `room` (an access-link session), or lifts the limit.
    /// Prepare must then use that room, and invites for other rooms are declined as busy.
    pub fn set_room_scope(&mut self, room: Option<String>) {
        self.room_scope = room;
    }

    /// Forgets everything saved across calls: pending retransmissions, the memory of ended
    /// calls and received message ids, and the last call's timings. A call in progress keeps
    /// running.
    pub fn clear_saved_data(&mut self) {
        let current = self.current_id();
        self.reliable.retain(|e| Some(e.call_id) == current);
        self.reliable.clear_seen();
        self.ended.clear();
        self.last_timings = None;
    }

    /// Tells the machine whether its media engine reports remote frames. Without frames (for
    /// example [`NoMedia`](crate::media::NoMedia)) a call is `Connected` at accept.
    pub fn set_reports_frames(&mut self, reports_frames: bool) {
        self.reports_frames = reports_frames;
    }

    /// Installs app hooks (see [`CallPolicy`]).
    pub fn set_policy(&mut self, policy: Box<dyn CallPolicy>) {
        self.policy = policy;
    }

    /// The current state.
    pub fn state(&self) -> CallState {
        self.state
    }

    /// The local user.
    pub fn user_id(&self) -> &UserId {
        &self.cfg.user_id
    }

    /// The local device.
    pub fn device_id(&self) -> &DeviceId {
        &self.cfg.device_id
    }

    /// The call in progress, if any.
    pub fn call_info(&self) -> Option<CallInfo> {
        self.call.as_ref().map(Call::info)
    }

    /// Timings of the call in progress, or of the last call once it ended.
    pub fn call_timings(&self) -> Option<CallTimings> {
        self.call.as_ref().map(|c| c.timings).or(self.last_timings)
    }

    /// Number of envelopes waiting for an ack.
    pub fn pending_messages(&self) -> usize {
        self.reliable.pending_len()
    }

    /// The wall clock at `now`, in Unix milliseconds.
    pub fn unix_ms(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.anchor).as_millis();
        self.anchor_unix_ms
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// The next thing the shell must do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let call = self
            .call
            .as_ref()
            .and_then(|c| [c.deadline, c.busy_until].into_iter().flatten().min());
        let grace = match (&self.call, self.link_down_since) {
            (Some(_), Some(since)) => Some(since + self.cfg.signal_grace),
            _ => None,
        };
        [call, grace, self.reliable.next_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs everything due at `now`: retransmissions, expiries, call timeouts.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due = self.reliable.poll(now);
        for env in due.retransmit {
            self.outputs.push_back(Output::Send(env));
        }
        for env in due.expired {
            self.on_undelivered(env, now);
        }
        if let (Some(since), true) = (self.link_down_since, self.call.is_some()) {
            if now >= since + self.cfg.signal_grace {
                self.link_down_since = Some(now);
                self.on_signal_lost(now);
            }
        }
        if self
            .call
            .as_ref()
            .and_then(|c| c.busy_until)
            .is_some_and(|t| now >= t)
        {
            self.on_busy_grace_over(now);
        }
        if let Some(deadline) = self.call.as_ref().and_then(|c| c.deadline) {
            if now >= deadline {
                self.on_deadline(now);
            }
        }
        self.link_policy(now);
    }

    /// Feeds one input (an envelope, a media event, a link change). Inputs are facts: the
    /// machine reacts to each and never refuses one.
    pub fn handle_input(&mut self, input: Input, now: Instant) {
        self.handle_timeout(now);
        match input {
            Input::Envelope(env) => self.on_envelope(env, now),
            Input::InvalidEnvelope(err) => self.on_invalid(&err),
            Input::Media(ev) => self.on_media(ev, now),
            Input::MediaJoinFailed { call_id, message } => {
                if self.current_id() == Some(call_id) {
                    self.on_media_failure(true, message, now);
                }
            }
            Input::Link(state) => self.on_link(state, now),
        }
        self.link_policy(now);
    }

    /// Runs an app command. A command that does not fit the state is refused with a
    /// [`CommandError`] and changes nothing.
    pub fn handle_command(&mut self, cmd: Command, now: Instant) -> Result<(), CommandError> {
        self.handle_timeout(now);
        let result = self.on_command(cmd, now);
        self.link_policy(now);
        result
    }

    /// Places a call to `remote` (`Prepared` → `Calling`) and answers its id. `extension` is
    /// merged over the prepare extension.
    pub fn call(
        &mut self,
        remote: UserId,
        call_type: CallType,
        extension: Extension,
        now: Instant,
    ) -> Result<CallId, CommandError> {
        self.handle_timeout(now);
        let result = self.place_call(remote, call_type, extension, now);
        self.link_policy(now);
        result
    }

    // ---------------------------------------------------------------- helpers

    fn current_id(&self) -> Option<CallId> {
        self.call.as_ref().map(|c| c.id)
    }

    fn next_id(&mut self) -> MessageId {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        MessageId::from_random_bytes(bytes)
    }

    fn next_call_id(&mut self) -> CallId {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        CallId::from_random_bytes(bytes)
    }

    fn notify(&mut self, n: Notification) {
        self.outputs.push_back(Output::Notify(n));
    }

    fn event(&mut self, event: CallEvent, call_id: Option<CallId>, reason: Option<String>) {
        self.notify(Notification::Event(EventInfo {
            event,
            call_id,
            reason,
        }));
    }

    fn error(
        &mut self,
        call_id: Option<CallId>,
        event: CallErrorEvent,
        code_type: ErrorCodeType,
        code: i32,
        message: String,
    ) {
        self.notify(Notification::Error(CallError {
            call_id,
            event,
            code_type,
            code,
            message,
        }));
    }

    fn media(&mut self, cmd: MediaCommand) {
        self.outputs.push_back(Output::Media(cmd));
    }

    /// Changes state and notifies. `info` describes the call concerned.
    fn set_state(
        &mut self,
        state: CallState,
        reason: StateReason,
        event_reason: Option<String>,
        info: Option<CallInfo>,
        timings: Option<CallTimings>,
        duration: Option<Duration>,
    ) {
        let previous = self.state;
        self.state = state;
        if previous.is_active() && !state.is_active() {
            self.call_ended = true;
        }
        self.notify(Notification::StateChanged(StateChange {
            state,
            previous,
            reason,
            event_reason,
            call: info,
            timings,
            duration,
        }));
    }

    /// Sends an envelope; everything but acks is tracked for retransmission.
    fn send(
        &mut self,
        to: UserId,
        to_device: Option<DeviceId>,
        call_id: CallId,
        body: Body,
        lifetime: Duration,
        now: Instant,
    ) {
        let is_ack = matches!(body, Body::Ack { .. });
        let env = Envelope {
            v: PROTOCOL_VERSION,
            id: self.next_id(),
            ts: self.unix_ms(now),
            from: self.cfg.user_id.clone(),
            from_device: self.cfg.device_id.clone(),
            to,
            to_device,
            call_id,
            lifetime_ms: u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
            body,
        };
        if !is_ack {
            self.reliable.track(env.clone(), now, lifetime);
        }
        self.outputs.push_back(Output::Send(env));
    }

    /// Sends to the peer of the current call (the remote user, the peer device when known).
    fn send_to_peer(&mut self, body: Body, lifetime: Duration, now: Instant) {
        let Some(call) = &self.call else { return };
        let (to, dev, id) = (
            call.remote.user.clone(),
            call.remote.peer_device.clone(),
            call.id,
        );
        self.send(to, dev, id, body, lifetime, now);
    }

    fn message_lifetime(&self) -> Duration {
        self.cfg.message_lifetime
    }

    /// Takes the current call out, stops its media and retransmissions, remembers it as ended,
    /// and moves to `Prepared` (or `Idle` when not prepared, as during `Deinitialize`).
    fn finish_call(
        &mut self,
        reason: StateReason,
        event_reason: Option<String>,
        reply: LateReply,
        now: Instant,
    ) -> Option<Call> {
        let call = self.call.take()?;
        let id = call.id;
        // Stop retransmitting the call's progress messages; its closing messages (cancel,
        // reject, hangup) keep going until acknowledged, so the peer never gets stuck.
        self.reliable.retain(|e| {
            e.call_id != id
                || matches!(
                    e.body,
                    Body::Cancel { .. } | Body::Reject { .. } | Body::Hangup { .. }
                )
        });
        if call.media_joined {
            self.media(MediaCommand::Leave { call_id: id });
        }
        let duration = call
            .connected_at
            .map(|at| now.saturating_duration_since(at));
        self.last_timings = Some(call.timings);
        self.remember_ended(Ended {
            id,
            role: call.role,
            remote_user: call.remote.user.clone(),
            answered: if call.is_caller() {
                call.remote.peer_device.clone()
            } else {
                None
            },
            reply,
            at: now,
        });
        let target = if self.prepared.is_some() {
            CallState::Prepared
        } else {
            CallState::Idle
        };
        tracing::info!(call_id = %id, ?reason, duration_ms = ?duration.map(|d| d.as_millis()), "call ended");
        self.set_state(
            target,
            reason,
            event_reason,
            Some(call.info()),
            None,
            duration,
        );
        Some(call)
    }

    fn remember_ended(&mut self, ended: Ended) {
        let now = ended.at;
        self.ended.push_back(ended);
        let window = self.cfg.reliability.dedupe_window;
        while self.ended.len() > ENDED_MEMORY
            || self
                .ended
                .front()
                .is_some_and(|e| now.saturating_duration_since(e.at) > window)
        {
            self.ended.pop_front();
        }
    }

    fn join_media(&mut self) {
        let Some(call) = &mut self.call else { return };
        if call.media_joined {
            return;
        }
        call.media_joined = true;
        let request = JoinRequest {
            call_id: call.id,
            room_id: call.room_id.clone(),
            role: call.role,
            call_type: call.call_type,
            local_user: self.cfg.user_id.clone(),
            remote_user: call.remote.user.clone(),
            plan: call.plan,
        };
        let id = call.id;
        let inbox = std::mem::take(&mut call.media_inbox);
        self.media(MediaCommand::Join(request));
        self.event(CallEvent::JoinMediaStart, Some(id), None);
        for payload in inbox {
            self.media(MediaCommand::RemoteSignal {
                call_id: id,
                payload,
            });
        }
    }

    fn mark(&mut self, milestone: Milestone, now: Instant) {
        if let Some(call) = &mut self.call {
            call.timings.mark(milestone, call.start, now);
        }
    }

    // ---------------------------------------------------------------- commands

    fn on_command(&mut self, cmd: Command, now: Instant) -> Result<(), CommandError> {
        match cmd {
            Command::Prepare(cfg) => self.prepare(cfg),
            Command::Accept => self.accept(now),
            Command::Reject { reason } => self.reject(reason, now),
            Command::Cancel { reason } => self.cancel(reason, now),
            Command::Hangup { reason } => self.hangup(reason, now),
            Command::SendMessage { data } => self.send_message(data, now),
            Command::SendDtmf { digits } => self.send_dtmf(&digits, now),
            Command::Deinitialize => {
                // Unprepared first, so that ending the call lands in `Idle` directly.
                let prepared = self.prepared.take();
                if self.call.is_some() {
                    if let Err(err) = self.hangup(Some("deinitialize".into()), now) {
                        self.prepared = prepared;
                        return Err(err);
                    }
                }
                if self.state != CallState::Idle {
                    self.set_state(CallState::Idle, StateReason::None, None, None, None, None);
                }
                Ok(())
            }
            Command::Pause => {
                if self.call.is_some() {
                    // Once the call is over (see `link_policy`).
                    self.closing.get_or_insert(Closing::Pause);
                } else {
                    self.outputs.push_back(Output::Link(LinkCommand::Pause));
                }
                Ok(())
            }
            Command::Resume => {
                if self.closing == Some(Closing::Pause) {
                    self.closing = None;
                }
                self.outputs.push_back(Output::Link(LinkCommand::Resume));
                Ok(())
            }
            Command::Disconnect { clear_saved_data } => {
                self.end_for("disconnect", now);
                self.closing = None;
                self.outputs
                    .push_back(Output::Link(LinkCommand::Disconnect { clear_saved_data }));
                if clear_saved_data {
                    self.clear_saved_data();
                }
                Ok(())
            }
            Command::Reset => {
                self.end_for("reset", now);
                let _ = self.on_command(Command::Deinitialize, now);
                self.link_policy(now);
                self.closing = None;
                self.outputs
                    .push_back(Output::Link(LinkCommand::Disconnect {
                        clear_saved_data: true,
                    }));
                self.clear_saved_data();
                Ok(())
            }
        }
    }

    /// Hangs up the call in progress, if any (`why` is sent as the reason), and applies what
    /// the end of a call means for the link.
    fn end_for(&mut self, why: &str, now: Instant) {
        if self.call.is_some() {
            let _ = self.hangup(Some(why.to_owned()), now);
        }
        self.link_policy(now);
    }

    /// What the call's state means for the link: an access-link session ends with its call
    /// (`Idle`, then disconnect and clear saved data), and a pause asked for during a call
    /// happens once it is over. Either closes the link only once the ended call's last
    /// messages are acknowledged (or expired), so the hangup is not cut off.
    fn link_policy(&mut self, now: Instant) {
        if std::mem::take(&mut self.call_ended) && self.room_scope.is_some() {
            tracing::info!("access-link session ends with its call");
            let _ = self.on_command(Command::Deinitialize, now);
            self.closing = Some(Closing::EndSession);
        }
        if self.closing.is_none() || self.call.is_some() || self.pending_messages() > 0 {
            return;
        }
        match self.closing.take() {
            Some(Closing::Pause) => self.outputs.push_back(Output::Link(LinkCommand::Pause)),
            Some(Closing::EndSession) => {
                self.outputs
                    .push_back(Output::Link(LinkCommand::Disconnect {
                        clear_saved_data: true,
                    }));
                self.clear_saved_data();
            }
            None => {}
        }
    }

    fn prepare(&mut self, cfg: PrepareConfig) -> Result<(), CommandError> {
        if self.call.is_some() {
            return Err(CommandError::Busy(self.state));
        }
        if cfg.call_timeout > MAX_CALL_TIMEOUT {
            return Err(CommandError::InvalidArgument(format!(
                "call_timeout {:?} exceeds the maximum {:?}",
                cfg.call_timeout, MAX_CALL_TIMEOUT
            )));
        }
        if cfg.room_id.is_empty() {
            return Err(CommandError::InvalidArgument("room_id is empty".into()));
        }
        if let Some(scope) = &self.room_scope {
            if &cfg.room_id != scope {
                return Err(CommandError::InvalidArgument(format!(
                    "this access-link session may only use room {scope:?}, not {:?}",
                    cfg.room_id
                )));
            }
        }
        self.prepared = Some(cfg);
        // While the session has failed, the new settings apply once the link is back.
        if self.state != CallState::Prepared && self.state != CallState::Failed {
            self.set_state(
                CallState::Prepared,
                StateReason::None,
                None,
                None,
                None,
                None,
            );
        }
        Ok(())
    }

    fn invite_lifetime(prep: &PrepareConfig) -> Duration {
        if prep.call_timeout.is_zero() {
            MAX_CALL_TIMEOUT
        } else {
            prep.call_timeout
        }
    }

    fn place_call(
        &mut self,
        remote: UserId,
        call_type: CallType,
        extension: Extension,
        now: Instant,
    ) -> Result<CallId, CommandError> {
        let Some(prep) = self.prepared.clone() else {
            return Err(CommandError::NotPrepared);
        };
        if self.call.is_some() {
            return Err(CommandError::Busy(self.state));
        }
        if self.state != CallState::Prepared {
            return Err(CommandError::InvalidState {
                action: "call",
                state: self.state,
            });
        }
        if remote == self.cfg.user_id {
            return Err(CommandError::InvalidArgument(
                "cannot call yourself".to_owned(),
            ));
        }
        let mut merged = prep.user_extension.clone();
        merged.extend(extension);
        let id = self.next_call_id();
        let lifetime = Self::invite_lifetime(&prep);
        let video = call_type == CallType::Video;
        let mut call = Call::new(
            id,
            MediaRole::Caller,
            call_type,
            prep.room_id.clone(),
            &self.cfg.user_id,
            Participant::new(remote.clone(), None),
            now,
        );
        call.extension = merged.clone();
        call.deadline = Some(now + lifetime);
        call.first_frame_wait = prep.first_frame_wait && self.reports_frames;
        self.call = Some(call);
        let reason = if video {
            StateReason::LocalVideoCall
        } else {
            StateReason::LocalAudioCall
        };
        tracing::info!(call_id = %id, remote = %remote, ?call_type, "placing call");
        self.event(CallEvent::OnCalling, Some(id), None);
        let info = self.call_info();
        self.set_state(CallState::Calling, reason, None, info, None, None);
        self.send(
            remote,
            None,
            id,
            Body::Invite {
                room_id: prep.room_id,
                call_type,
                extension: merged,
            },
            lifetime,
            now,
        );
        self.join_media();
        Ok(id)
    }

    fn accept(&mut self, now: Instant) -> Result<(), CommandError> {
        let state = self.state;
        let Some(call) = &mut self.call else {
            return Err(CommandError::InvalidState {
                action: "accept",
                state,
            });
        };
        if call.is_caller() || state != CallState::Calling {
            return Err(CommandError::InvalidState {
                action: "accept",
                state,
            });
        }
        call.accepted = true;
        let expiry = call.invite_expiry.unwrap_or(now);
        call.deadline = Some(expiry.max(now) + self.cfg.confirm_grace);
        let lifetime = call.deadline.map_or(self.cfg.message_lifetime, |d| {
            d.saturating_duration_since(now)
        });
        let id = call.id;
        self.mark(Milestone::Accept, now);
        self.event(CallEvent::LocalAccepted, Some(id), None);
        let info = self.call_info();
        self.set_state(
            CallState::Connecting,
            StateReason::LocalAccepted,
            None,
            info,
            None,
            None,
        );
        self.send_to_peer(Body::Accept, lifetime, now);
        self.join_media();
        self.check_connected(now);
        Ok(())
    }

    fn reject(&mut self, reason: Option<String>, now: Instant) -> Result<(), CommandError> {
        let state = self.state;
        match &self.call {
            Some(c) if !c.is_caller() && state == CallState::Calling => {}
            _ => {
                return Err(CommandError::InvalidState {
                    action: "reject",
                    state,
                })
            }
        }
        let id = self.current_id();
        self.event(CallEvent::LocalRejected, id, reason.clone());
        let lifetime = self.message_lifetime();
        self.send_to_peer(
            Body::Reject {
                reason: reason.clone(),
                busy: false,
            },
            lifetime,
            now,
        );
        self.finish_call(StateReason::LocalRejected, reason, LateReply::Hangup, now);
        Ok(())
    }

    fn cancel(&mut self, reason: Option<String>, now: Instant) -> Result<(), CommandError> {
        let state = self.state;
        match &self.call {
            Some(c)
                if c.is_caller() && matches!(state, CallState::Calling | CallState::Connecting) => {
            }
            _ => {
                return Err(CommandError::InvalidState {
                    action: "cancel",
                    state,
                })
            }
        }
        let id = self.current_id();
        self.event(CallEvent::LocalCancelled, id, reason.clone());
        self.caller_stop(reason.clone(), false, None, now);
        self.finish_call(
            StateReason::LocalCancelled,
            reason,
            LateReply::Cancel {
                timeout: false,
                elsewhere: None,
            },
            now,
        );
        Ok(())
    }

    /// Caller side: tells every device that may be alerting to stop.
    fn caller_stop(
        &mut self,
        reason: Option<String>,
        timeout: bool,
        elsewhere: Option<Elsewhere>,
        now: Instant,
    ) {
        let Some(call) = &self.call else { return };
        let targets: Vec<DeviceId> = match &call.remote.peer_device {
            Some(d) => vec![d.clone()],
            None => call.remote.ringing_except(None),
        };
        let (user, id) = (call.remote.user.clone(), call.id);
        let lifetime = self.message_lifetime();
        let body = Body::Cancel {
            reason,
            timeout,
            elsewhere,
        };
        if targets.is_empty() {
            // Nobody rang yet: address the user, so any device that has the invite stops.
            self.send(user, None, id, body, lifetime, now);
        } else {
            for d in targets {
                self.send(user.clone(), Some(d), id, body.clone(), lifetime, now);
            }
        }
    }

    fn hangup(&mut self, reason: Option<String>, now: Instant) -> Result<(), CommandError> {
        let state = self.state;
        let Some(call) = &self.call else {
            return Err(CommandError::InvalidState {
                action: "hangup",
                state,
            });
        };
        match (call.is_caller(), state) {
            (true, CallState::Calling) => return self.cancel(reason, now),
            (false, CallState::Calling) => return self.reject(reason, now),
            _ => {}
        }
        let id = call.id;
        self.event(CallEvent::LocalHangup, Some(id), reason.clone());
        let lifetime = self.message_lifetime();
        self.send_to_peer(
            Body::Hangup {
                reason: reason.clone(),
            },
            lifetime,
            now,
        );
        self.finish_call(StateReason::LocalHangup, reason, LateReply::Hangup, now);
        Ok(())
    }

    fn in_call_peer_ready(&self, action: &'static str) -> Result<(), CommandError> {
        match &self.call {
            Some(c)
                if c.accepted
                    && matches!(self.state, CallState::Connecting | CallState::Connected) =>
            {
                Ok(())
            }
            _ => Err(CommandError::InvalidState {
                action,
                state: self.state,
            }),
        }
    }

    fn send_message(&mut self, data: String, now: Instant) -> Result<(), CommandError> {
        self.in_call_peer_ready("send a message")?;
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(CommandError::InvalidArgument(format!(
                "message is {} bytes; at most {MAX_MESSAGE_BYTES} fit in an envelope",
                data.len()
            )));
        }
        let lifetime = self.message_lifetime();
        self.send_to_peer(Body::Message { data }, lifetime, now);
        Ok(())
    }

    fn send_dtmf(&mut self, digits: &str, now: Instant) -> Result<(), CommandError> {
        self.in_call_peer_ready("send DTMF")?;
        let digits = validate_dtmf(digits)?;
        let lifetime = self.message_lifetime();
        self.send_to_peer(Body::Dtmf { digits }, lifetime, now);
        Ok(())
    }

    // ---------------------------------------------------------------- envelopes

    fn on_invalid(&mut self, err: &DecodeError) {
        self.error(
            None,
            CallErrorEvent::NormalError,
            ErrorCodeType::Signal,
            codes::INVALID_ENVELOPE,
            err.to_string(),
        );
    }

    fn on_envelope(&mut self, env: Envelope, now: Instant) {
        if env.to != self.cfg.user_id
            || env
                .to_device
                .as_ref()
                .is_some_and(|d| d != &self.cfg.device_id)
        {
            tracing::debug!(id = %env.id, "ignoring envelope addressed elsewhere");
            return;
        }
        if let Body::Ack { ack_id } = env.body {
            if let Some(acked) = self.reliable.on_ack(&env.from, &env.from_device, ack_id) {
                if let (Body::Invite { .. }, Some(call)) = (&acked.body, &mut self.call) {
                    if call.id == acked.call_id {
                        call.invite_acked = true;
                    }
                }
            }
            return;
        }
        // Acknowledge every copy: the previous ack may have been lost.
        let ack_lifetime = self.cfg.reliability.ack_lifetime;
        self.send(
            env.from.clone(),
            Some(env.from_device.clone()),
            env.call_id,
            Body::Ack { ack_id: env.id },
            ack_lifetime,
            now,
        );
        if self.reliable.is_duplicate(&env, now) {
            return;
        }
        if matches!(env.body, Body::Invite { .. }) {
            self.on_invite(env, now);
            return;
        }
        let matches_call = self.call.as_ref().is_some_and(|c| {
            c.id == env.call_id
                && c.remote.user == env.from
                && (c.is_caller() || c.remote.peer_device.as_ref() == Some(&env.from_device))
        });
        if matches_call {
            if self.call.as_ref().is_some_and(Call::is_caller) {
                self.caller_on(env, now);
            } else {
                self.callee_on(env, now);
            }
        } else if let Some(ended) = self.ended.iter().find(|e| e.id == env.call_id).cloned() {
            self.on_late(&ended, env, now);
        } else if matches!(env.body, Body::Cancel { .. }) {
            // A cancel overtook its invite: remember the call so the invite never rings.
            tracing::debug!(call_id = %env.call_id, "cancel for an unknown call: invite will not ring");
            self.remember_ended(Ended {
                id: env.call_id,
                role: MediaRole::Callee,
                remote_user: env.from,
                answered: None,
                reply: LateReply::Hangup,
                at: now,
            });
        } else {
            tracing::debug!(call_id = %env.call_id, kind = env.body.kind(), "message for an unknown call ignored");
        }
    }

    fn on_invite(&mut self, env: Envelope, now: Instant) {
        let wall = self.unix_ms(now);
        let remaining = Duration::from_millis(env.remaining_ms(wall));
        let Body::Invite {
            room_id,
            call_type,
            extension,
        } = env.body
        else {
            return;
        };
        if env.ts.saturating_add(env.lifetime_ms) < wall {
            tracing::info!(call_id = %env.call_id, "expired invite dropped");
            self.event(CallEvent::InviteExpired, Some(env.call_id), None);
            return;
        }
        if self.current_id() == Some(env.call_id)
            || self
                .ended
                .iter()
                .any(|e| e.id == env.call_id && e.remote_user == env.from)
            || env.from == self.cfg.user_id
        {
            return;
        }
        // Glare: we are calling the user who is calling us.
        if let Some(call) = &self.call {
            if call.is_caller()
                && self.state == CallState::Calling
                && !call.accepted
                && call.remote.user == env.from
            {
                if env.call_id < call.id {
                    let own = call.id;
                    tracing::info!(own = %own, winner = %env.call_id, "glare: the other call wins");
                    self.event(CallEvent::Glare, Some(own), None);
                    // Other devices of the winner may be ringing for our call: stop them.
                    self.caller_stop(Some("glare".into()), false, None, now);
                    self.finish_call(
                        StateReason::Glare,
                        None,
                        LateReply::Cancel {
                            timeout: false,
                            elsewhere: None,
                        },
                        now,
                    );
                } else {
                    tracing::info!(own = %call.id, loser = %env.call_id, "glare: our call wins");
                    return;
                }
            }
        }
        let out_of_scope = self.room_scope.as_ref().is_some_and(|r| r != &room_id);
        if self.state != CallState::Prepared || self.call.is_some() || out_of_scope {
            tracing::info!(call_id = %env.call_id, from = %env.from, "busy: declining invite");
            self.event(CallEvent::BusyAutoRejected, Some(env.call_id), None);
            let lifetime = self.message_lifetime();
            self.send(
                env.from,
                Some(env.from_device),
                env.call_id,
                Body::Reject {
                    reason: Some("busy".into()),
                    busy: true,
                },
                lifetime,
                now,
            );
            return;
        }
        let Some(prep) = self.prepared.clone() else {
            return;
        };
        let invite = IncomingInvite {
            from: env.from.clone(),
            from_device: env.from_device.clone(),
            call_id: env.call_id,
            call_type,
            room_id: room_id.clone(),
            extension: extension.clone(),
        };
        let join_early = self
            .policy
            .join_media_on_ringing(&invite)
            .unwrap_or(prep.join_media_on_ringing);
        let video = call_type == CallType::Video;
        let mut call = Call::new(
            env.call_id,
            MediaRole::Callee,
            call_type,
            room_id,
            &self.cfg.user_id,
            Participant::new(env.from.clone(), Some(env.from_device.clone())),
            now,
        );
        call.extension = extension;
        call.deadline = Some(now + remaining);
        call.invite_expiry = Some(now + remaining);
        call.invite_acked = true;
        call.ringing_seen = true;
        call.first_frame_wait = prep.first_frame_wait && self.reports_frames;
        call.media_peer = Some(env.from_device.clone());
        self.call = Some(call);
        let reason = if video {
            StateReason::RemoteVideoCall
        } else {
            StateReason::RemoteAudioCall
        };
        tracing::info!(call_id = %env.call_id, from = %env.from, "ringing");
        let info = self.call_info();
        self.set_state(CallState::Calling, reason, None, info, None, None);
        let lifetime = remaining.max(Duration::from_millis(1));
        self.send_to_peer(Body::Ringing, lifetime, now);
        if join_early {
            self.join_media();
        }
    }

    fn caller_on(&mut self, env: Envelope, now: Instant) {
        let dev = env.from_device.clone();
        let state = self.state;
        let Some(call) = &mut self.call else { return };
        let id = call.id;
        let answered = call.remote.peer_device.clone();
        match env.body {
            Body::Ringing => {
                if answered.as_ref().is_some_and(|a| a != &dev) {
                    self.send_cancel_elsewhere(dev, Elsewhere::Answered, now);
                    return;
                }
                if call.remote.status(&dev).is_none() {
                    call.remote.set_status(&dev, DeviceStatus::Ringing);
                }
                let first = !call.ringing_seen;
                call.ringing_seen = true;
                if call.media_peer.is_none() {
                    call.media_peer = Some(dev.clone());
                    let outbox = std::mem::take(&mut call.media_outbox);
                    let user = call.remote.user.clone();
                    let lifetime = self.message_lifetime();
                    for payload in outbox {
                        self.send(
                            user.clone(),
                            Some(dev.clone()),
                            id,
                            Body::Media { payload },
                            lifetime,
                            now,
                        );
                    }
                }
                if first {
                    self.mark(Milestone::RemoteUserRecvCall, now);
                    self.event(CallEvent::RemoteUserRecvCall, Some(id), None);
                }
            }
            Body::Accept => {
                if let Some(a) = answered {
                    if a != dev {
                        self.send_cancel_elsewhere(dev, Elsewhere::Answered, now);
                    }
                    return;
                }
                if state != CallState::Calling {
                    self.event(CallEvent::StateMismatch, Some(id), None);
                    return;
                }
                self.caller_accepted(dev, now);
            }
            Body::Reject { reason, busy } => {
                if answered.is_some() || state != CallState::Calling {
                    return;
                }
                if busy {
                    call.remote.set_status(&dev, DeviceStatus::Busy);
                    if call.busy_until.is_none() {
                        // Other devices of the callee may still be about to ring: their replies
                        // travel about as long as this one did. Wait that long (bounded) before
                        // concluding that the user is busy.
                        let rtt = now.saturating_duration_since(call.start);
                        call.busy_until = Some(now + rtt.clamp(BUSY_GRACE_MIN, BUSY_GRACE_MAX));
                        call.busy_reason = reason;
                    }
                } else {
                    call.remote.set_status(&dev, DeviceStatus::Rejected);
                    let others = call.remote.ringing_except(Some(&dev));
                    self.event(CallEvent::RemoteRejected, Some(id), reason.clone());
                    for d in others {
                        self.send_cancel_elsewhere(d, Elsewhere::Rejected, now);
                    }
                    self.finish_call(
                        StateReason::RemoteRejected,
                        reason,
                        LateReply::Cancel {
                            timeout: false,
                            elsewhere: Some(Elsewhere::Rejected),
                        },
                        now,
                    );
                }
            }
            Body::Hangup { reason } => {
                if answered.as_ref() != Some(&dev) {
                    return;
                }
                self.event(CallEvent::RemoteHangup, Some(id), reason.clone());
                self.finish_call(StateReason::RemoteHangup, reason, LateReply::Hangup, now);
            }
            Body::Media { payload } => {
                if call.media_peer.as_ref() == Some(&dev) {
                    self.media(MediaCommand::RemoteSignal {
                        call_id: id,
                        payload,
                    });
                }
            }
            Body::Message { data } => {
                if answered.as_ref() == Some(&dev) {
                    self.notify(Notification::MessageReceived {
                        call_id: id,
                        from: env.from,
                        data,
                    });
                } else {
                    self.event(CallEvent::StateMismatch, Some(id), None);
                }
            }
            Body::Dtmf { digits } => {
                if answered.as_ref() == Some(&dev) {
                    self.notify(Notification::DtmfReceived {
                        call_id: id,
                        from: env.from,
                        digits,
                    });
                } else {
                    self.event(CallEvent::StateMismatch, Some(id), None);
                }
            }
            _ => self.event(CallEvent::StateMismatch, Some(id), None),
        }
    }

    fn send_cancel_elsewhere(&mut self, device: DeviceId, why: Elsewhere, now: Instant) {
        let Some(call) = &mut self.call else { return };
        call.remote.set_status(&device, DeviceStatus::Cancelled);
        let (user, id) = (call.remote.user.clone(), call.id);
        let lifetime = self.message_lifetime();
        self.send(
            user,
            Some(device),
            id,
            Body::Cancel {
                reason: None,
                timeout: false,
                elsewhere: Some(why),
            },
            lifetime,
            now,
        );
    }

    /// Caller side: device `dev` answered first.
    fn caller_accepted(&mut self, dev: DeviceId, now: Instant) {
        let Some(call) = &mut self.call else { return };
        let id = call.id;
        call.accepted = true;
        call.confirmed = true;
        call.remote.peer_device = Some(dev.clone());
        call.remote.set_status(&dev, DeviceStatus::Accepted);
        let others = call.remote.ringing_except(Some(&dev));
        let user = call.remote.user.clone();
        // Early media went to another device: start the media again with the answering one.
        let restart = call.media_peer.as_ref().is_some_and(|p| p != &dev);
        let outbox = if call.media_peer.is_none() {
            std::mem::take(&mut call.media_outbox)
        } else {
            Vec::new()
        };
        call.media_peer = Some(dev.clone());
        if restart {
            call.first_frame = false;
            call.media_joined = false;
            self.media(MediaCommand::Leave { call_id: id });
        }
        let lifetime = self.message_lifetime();
        for payload in outbox {
            self.send(
                user.clone(),
                Some(dev.clone()),
                id,
                Body::Media { payload },
                lifetime,
                now,
            );
        }
        for d in others {
            self.send_cancel_elsewhere(d, Elsewhere::Answered, now);
        }
        if restart {
            self.join_media();
        }
        self.mark(Milestone::Accept, now);
        self.event(CallEvent::RemoteAccepted, Some(id), None);
        let info = self.call_info();
        self.set_state(
            CallState::Connecting,
            StateReason::RemoteAccepted,
            None,
            info,
            None,
            None,
        );
        self.check_connected(now);
    }

    fn callee_on(&mut self, env: Envelope, now: Instant) {
        let state = self.state;
        let Some(call) = &mut self.call else { return };
        let id = call.id;
        match env.body {
            Body::Cancel {
                reason,
                timeout,
                elsewhere,
            } => {
                let (st, ev) = match (elsewhere, timeout) {
                    (Some(Elsewhere::Answered), _) => {
                        (StateReason::AnsweredElsewhere, CallEvent::AnsweredElsewhere)
                    }
                    (Some(Elsewhere::Rejected), _) => {
                        (StateReason::RejectedElsewhere, CallEvent::RejectedElsewhere)
                    }
                    (_, true) => (
                        StateReason::RemoteCallingTimeout,
                        CallEvent::RemoteCallingTimeout,
                    ),
                    _ => (StateReason::RemoteCancelled, CallEvent::RemoteCancelled),
                };
                self.event(ev, Some(id), reason.clone());
                self.finish_call(st, reason, LateReply::Hangup, now);
            }
            Body::Confirm => {
                if call.accepted && !call.confirmed {
                    call.confirmed = true;
                    self.check_connected(now);
                }
            }
            Body::Hangup { reason } => {
                self.event(CallEvent::RemoteHangup, Some(id), reason.clone());
                self.finish_call(StateReason::RemoteHangup, reason, LateReply::Hangup, now);
            }
            Body::Media { payload } => {
                if call.media_joined {
                    self.media(MediaCommand::RemoteSignal {
                        call_id: id,
                        payload,
                    });
                } else {
                    call.media_inbox.push(payload);
                }
            }
            Body::Message { data } if call.accepted => {
                self.notify(Notification::MessageReceived {
                    call_id: id,
                    from: env.from,
                    data,
                });
            }
            Body::Dtmf { digits } if call.accepted => {
                self.notify(Notification::DtmfReceived {
                    call_id: id,
                    from: env.from,
                    digits,
                });
            }
            _ => {
                tracing::debug!(
                    ?state,
                    kind = env.body.kind(),
                    "message does not fit the state"
                );
                self.event(CallEvent::StateMismatch, Some(id), None);
            }
        }
    }

    /// A message about a call that already ended here: answer so the sender does not get stuck.
    fn on_late(&mut self, ended: &Ended, env: Envelope, now: Instant) {
        if env.from != ended.remote_user {
            return;
        }
        let lifetime = self.message_lifetime();
        let body = match (&env.body, ended.role) {
            (Body::Ringing | Body::Accept, MediaRole::Caller) => {
                match (&ended.answered, &ended.reply) {
                    (Some(a), _) if a == &env.from_device => Body::Hangup { reason: None },
                    (Some(_), _) => Body::Cancel {
                        reason: None,
                        timeout: false,
                        elsewhere: Some(Elsewhere::Answered),
                    },
                    (None, LateReply::Cancel { timeout, elsewhere }) => Body::Cancel {
                        reason: None,
                        timeout: *timeout,
                        elsewhere: *elsewhere,
                    },
                    (None, LateReply::Hangup) => Body::Cancel {
                        reason: None,
                        timeout: false,
                        elsewhere: None,
                    },
                }
            }
            (Body::Confirm, MediaRole::Callee) => Body::Hangup { reason: None },
            _ => return,
        };
        tracing::debug!(call_id = %ended.id, kind = env.body.kind(), "answering a late message of an ended call");
        self.send(
            env.from,
            Some(env.from_device),
            ended.id,
            body,
            lifetime,
            now,
        );
    }

    // ---------------------------------------------------------------- progress

    fn check_connected(&mut self, now: Instant) {
        if self.state != CallState::Connecting {
            return;
        }
        let Some(call) = &mut self.call else { return };
        if !(call.accepted && call.confirmed && (call.first_frame || !call.first_frame_wait)) {
            return;
        }
        call.connected_at = Some(now);
        // The call timeout covers Calling and Connecting only.
        call.deadline = None;
        call.timings.mark(Milestone::Connected, call.start, now);
        let reason = if call.first_frame_wait {
            StateReason::RecvRemoteFirstFrame
        } else if call.is_caller() {
            StateReason::RemoteAccepted
        } else {
            StateReason::LocalAccepted
        };
        // Remote audio plays from `Connected` on.
        call.plan.subscribe_audio = true;
        let plan = call.plan;
        let joined = call.media_joined;
        let timings = call.timings;
        let id = call.id;
        let ms = timings.as_millis();
        tracing::info!(
            call_id = %id,
            remote_user_recv_call_ms = ?ms[0].1,
            accept_ms = ?ms[1].1,
            local_joined_ms = ?ms[2].1,
            remote_joined_ms = ?ms[3].1,
            first_local_frame_published_ms = ?ms[4].1,
            first_remote_frame_ms = ?ms[5].1,
            connected_ms = ?ms[6].1,
            "call connected"
        );
        let is_caller = call.is_caller();
        if joined {
            self.media(MediaCommand::UpdatePlan { call_id: id, plan });
        }
        if is_caller {
            // The caller is committed now: the answering device may connect too.
            let lifetime = self.message_lifetime();
            self.send_to_peer(Body::Confirm, lifetime, now);
        }
        let info = self.call_info();
        self.set_state(
            CallState::Connected,
            reason,
            None,
            info,
            Some(timings),
            None,
        );
    }

    fn on_deadline(&mut self, now: Instant) {
        let Some(call) = &self.call else { return };
        let id = call.id;
        if call.is_caller() {
            if !call.invite_acked && !call.ringing_seen && !call.accepted {
                // Nothing ever reached a callee device.
                self.error(
                    Some(id),
                    CallErrorEvent::SendMessageFail,
                    ErrorCodeType::Signal,
                    codes::MESSAGE_UNDELIVERED,
                    "the invitation was not delivered within its lifetime".into(),
                );
                self.event(CallEvent::MessageFailed, Some(id), None);
                self.caller_stop(None, true, None, now);
                self.finish_call(
                    StateReason::MessageFailed,
                    None,
                    LateReply::Cancel {
                        timeout: true,
                        elsewhere: None,
                    },
                    now,
                );
                return;
            }
            self.event(CallEvent::CallingTimeout, Some(id), None);
            self.caller_stop(None, true, None, now);
            self.finish_call(
                StateReason::CallingTimeout,
                None,
                LateReply::Cancel {
                    timeout: true,
                    elsewhere: None,
                },
                now,
            );
        } else {
            let accepted = call.accepted;
            self.event(CallEvent::RemoteCallingTimeout, Some(id), None);
            if accepted {
                // The caller never confirmed (or never connected): make sure it stops too.
                let lifetime = self.message_lifetime();
                self.send_to_peer(
                    Body::Hangup {
                        reason: Some("timeout".into()),
                    },
                    lifetime,
                    now,
                );
            }
            self.finish_call(
                StateReason::RemoteCallingTimeout,
                None,
                LateReply::Hangup,
                now,
            );
        }
    }

    /// A device answered busy a while ago: unless another device rings by now, the user is busy.
    fn on_busy_grace_over(&mut self, now: Instant) {
        let state = self.state;
        let Some(call) = &mut self.call else { return };
        call.busy_until = None;
        let reason = call.busy_reason.take();
        if call.accepted
            || state != CallState::Calling
            || !call.remote.ringing_except(None).is_empty()
        {
            return; // another device rings (or answered): the call goes on
        }
        let id = call.id;
        self.event(CallEvent::RemoteCallBusy, Some(id), reason.clone());
        self.finish_call(
            StateReason::RemoteCallBusy,
            reason,
            LateReply::Cancel {
                timeout: false,
                elsewhere: None,
            },
            now,
        );
    }

    fn on_undelivered(&mut self, env: Envelope, _now: Instant) {
        tracing::warn!(id = %env.id, kind = env.body.kind(), to = %env.to, "message not acknowledged within its lifetime");
        let is_current = self.current_id() == Some(env.call_id);
        // The invite's and the ringing's expiry are handled by the call deadline (same instant).
        if is_current && matches!(env.body, Body::Invite { .. } | Body::Ringing) {
            return;
        }
        self.error(
            Some(env.call_id),
            CallErrorEvent::SendMessageFail,
            ErrorCodeType::Signal,
            codes::MESSAGE_UNDELIVERED,
            format!(
                "{} to {} was not acknowledged in time",
                env.body.kind(),
                env.to
            ),
        );
        self.event(
            CallEvent::MessageFailed,
            Some(env.call_id),
            Some(env.body.kind().to_owned()),
        );
    }

    // ---------------------------------------------------------------- media & link

    fn on_media(&mut self, ev: MediaEvent, now: Instant) {
        let Some(call) = &mut self.call else { return };
        if ev.call_id() != call.id {
            return;
        }
        let id = call.id;
        match ev {
            MediaEvent::Signal { payload, .. } => {
                if call.is_caller() && call.media_peer.is_none() {
                    call.media_outbox.push(payload);
                    return;
                }
                let (user, dev) = (call.remote.user.clone(), call.media_peer.clone());
                let lifetime = self.message_lifetime();
                self.send(user, dev, id, Body::Media { payload }, lifetime, now);
            }
            MediaEvent::LocalJoined { .. } => {
                self.mark(Milestone::LocalJoined, now);
                self.event(CallEvent::LocalJoined, Some(id), None);
            }
            MediaEvent::RemoteJoined { .. } => {
                self.mark(Milestone::RemoteJoined, now);
                self.event(CallEvent::RemoteJoined, Some(id), None);
            }
            MediaEvent::FirstLocalFramePublished { .. } => {
                self.mark(Milestone::FirstLocalFramePublished, now);
            }
            MediaEvent::FirstRemoteFrame { kind, .. } => {
                let wanted = if call.is_video() {
                    MediaKind::Video
                } else {
                    MediaKind::Audio
                };
                if kind != wanted || call.first_frame {
                    return;
                }
                call.first_frame = true;
                self.mark(Milestone::FirstRemoteFrame, now);
                self.event(CallEvent::RecvRemoteFirstFrame, Some(id), None);
                self.check_connected(now);
            }
            MediaEvent::RemoteLeft { .. } => {
                self.event(CallEvent::RemoteLeft, Some(id), None);
            }
            MediaEvent::CaptureFailed { message, .. } => {
                self.error(
                    Some(id),
                    CallErrorEvent::StartCaptureFail,
                    ErrorCodeType::Media,
                    codes::CAPTURE_FAILED,
                    message,
                );
            }
            MediaEvent::Failed { message, .. } => self.on_media_failure(false, message, now),
            MediaEvent::Stats { stats, .. } => {
                self.notify(Notification::MediaStats { call_id: id, stats });
            }
        }
    }

    /// Ends the call after a media failure, telling the peer in the way that fits the state.
    fn on_media_failure(&mut self, at_join: bool, message: String, now: Instant) {
        let id = self.current_id();
        let (reason, event, code) = if at_join {
            (
                StateReason::JoinMediaFailed,
                CallEvent::JoinMediaFailed,
                codes::JOIN_FAILED,
            )
        } else {
            (
                StateReason::MediaFailed,
                CallEvent::MediaFailed,
                codes::MEDIA_FAILED,
            )
        };
        self.error(
            id,
            CallErrorEvent::MediaError,
            ErrorCodeType::Media,
            code,
            message,
        );
        self.event(event, id, None);
        self.end_locally("media_failed", reason, now);
    }

    /// Ends the current call for a local cause, telling the peer (cancel, reject or hangup).
    fn end_locally(&mut self, why: &str, reason: StateReason, now: Instant) {
        let Some(call) = &self.call else { return };
        let lifetime = self.message_lifetime();
        let text = Some(why.to_owned());
        match (call.is_caller(), self.state) {
            (true, CallState::Calling) => self.caller_stop(text.clone(), false, None, now),
            (false, CallState::Calling) => self.send_to_peer(
                Body::Reject {
                    reason: text.clone(),
                    busy: false,
                },
                lifetime,
                now,
            ),
            _ => self.send_to_peer(
                Body::Hangup {
                    reason: text.clone(),
                },
                lifetime,
                now,
            ),
        }
        self.finish_call(reason, text, LateReply::Hangup, now);
    }

    fn on_signal_lost(&mut self, now: Instant) {
        let id = self.current_id();
        self.error(
            id,
            CallErrorEvent::SendMessageFail,
            ErrorCodeType::Signal,
            codes::SIGNAL_LOST,
            format!(
                "signaling link down for longer than the {:?} grace period",
                self.cfg.signal_grace
            ),
        );
        self.event(CallEvent::SignalLost, id, None);
        self.end_locally("signal_lost", StateReason::SignalLost, now);
    }

    fn on_link(&mut self, state: LinkState, now: Instant) {
        let was_up = self.link.is_connected();
        let up = state.is_connected();
        self.link = state.clone();
        if up && !was_up {
            self.link_down_since = None;
            for env in self.reliable.flush_all(now) {
                self.outputs.push_back(Output::Send(env));
            }
        } else if !up && was_up {
            self.link_down_since = Some(now);
        }
        let failed = matches!(state, LinkState::Failed { .. });
        self.notify(Notification::Link(state));
        if failed && self.state != CallState::Failed {
            // The signaling session is over for good: no call can go on or start.
            if self.call.is_some() {
                self.event(CallEvent::SignalLost, self.current_id(), None);
                self.end_locally("signal_lost", StateReason::SignalLost, now);
            }
            self.set_state(
                CallState::Failed,
                StateReason::SignalLost,
                None,
                None,
                None,
                None,
            );
        } else if up && self.state == CallState::Failed {
            let back = if self.prepared.is_some() {
                CallState::Prepared
            } else {
                CallState::Idle
            };
            self.set_state(back, StateReason::None, None, None, None, None);
        }
    }
}

/// Checks and normalizes DTMF digits: `0-9`, `*`, `#`, `A-D` (lower case accepted).
pub fn validate_dtmf(digits: &str) -> Result<String, CommandError> {
    if digits.is_empty() {
        return Err(CommandError::InvalidArgument("no DTMF digits given".into()));
    }
    if digits.chars().count() > MAX_DTMF_DIGITS {
        return Err(CommandError::InvalidArgument(format!(
            "at most {MAX_DTMF_DIGITS} DTMF digits per message"
        )));
    }
    digits
        .chars()
        .map(|c| match c {
            '0'..='9' | '*' | '#' | 'A'..='D' => Ok(c),
            'a'..='d' => Ok(c.to_ascii_uppercase()),
            other => Err(CommandError::InvalidArgument(format!(
                "{other:?} is not a DTMF digit (0-9 * # A-D)"
            ))),
        })
        .collect()
}
