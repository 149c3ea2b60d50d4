//! The sans-IO call machine: no clock reads, no I/O, no tasks. This file holds the machine
//! itself, its public API, the dispatch of inputs and timers, and the helpers every rule uses
//! (send, notify, state changes, ending a call). The rules live beside it in `call/`:
//! `invited.rs` (the member this device invited, caller side), `inviter.rs` (the member who
//! invited this device, callee side), `command.rs` (the app's other commands), `ended.rs`
//! (late messages of ended calls), `media_glue.rs` (media and `Connected`) and `link.rs`
//! (the signaling link).
//!
//! Feed it with [`CallMachine::handle_input`] and [`CallMachine::handle_timeout`]; drain what it
//! wants done with [`CallMachine::poll_output`]; ask [`CallMachine::poll_timeout`] when to wake it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::protocol::{
    Body, CallId, CallType, DecodeError, DeviceId, Envelope, Extension, MessageId, UserId,
    PROTOCOL_VERSION,
};
use crate::signal::LinkState;

use super::command::{Command, CommandError};
use super::config::{CallConfig, CallPolicy, DefaultPolicy, PrepareConfig};
use super::ended::{Ended, LateReply};
use super::io::{Input, MediaCommand, Output};
use super::link::Closing;
use super::reliable::Reliable;
use super::session::Call;
use super::state::{
    codes, CallError, CallErrorEvent, CallEvent, CallInfo, CallState, ErrorCodeType, EventInfo,
    Notification, StateChange, StateReason,
};
use super::timings::CallTimings;

/// Output slots an idle machine keeps allocated.
const IDLE_OUTPUTS: usize = 0;

/// The call logic of one device, as a plain state machine (sans-IO: see `docs/ARCHITECTURE.md`, "Layers").
pub struct CallMachine {
    pub(super) cfg: CallConfig,
    pub(super) anchor: Instant,
    pub(super) anchor_unix_ms: u64,
    rng: ChaCha8Rng,
    pub(super) state: CallState,
    pub(super) prepared: Option<PrepareConfig>,
    pub(super) call: Option<Call>,
    pub(super) ended: VecDeque<Ended>,
    pub(super) reliable: Reliable,
    pub(super) outputs: VecDeque<Output>,
    pub(super) reports_frames: bool,
    pub(super) policy: Box<dyn CallPolicy>,
    pub(super) link: LinkState,
    pub(super) link_down_since: Option<Instant>,
    last_timings: Option<CallTimings>,
    pub(super) room_scope: Option<String>,
    /// How the link closes once no call is up and no message awaits its ack (closing it at
    /// once would cut off an ended call's hangup before it is acknowledged).
    pub(super) closing: Option<Closing>,
    /// A call ended since the link policy last looked.
    pub(super) call_ended: bool,
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
        let out = self.outputs.pop_front();
        if out.is_none() {
            // An idle machine keeps no burst-sized queue (outputs are a few hundred bytes each).
            self.outputs.shrink_to(IDLE_OUTPUTS);
        }
        out
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let call = self.call.as_ref().and_then(|c| {
            let group = c
                .group
                .as_ref()
                .and_then(|g| g.next_timeout(&self.cfg.user_id, |ms| self.instant_at(ms)));
            [c.deadline, c.members.next_timeout(), group]
                .into_iter()
                .flatten()
                .min()
        });
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
        if self.is_group_call() {
            self.on_group_timeout(now);
        } else {
            if self
                .call
                .as_ref()
                .and_then(|c| c.members.next_timeout())
                .is_some_and(|t| now >= t)
            {
                self.on_busy_grace_over(now);
            }
            if let Some(deadline) = self.call.as_ref().and_then(|c| c.deadline) {
                if now >= deadline {
                    self.on_deadline(now);
                }
            }
        }
        self.settle(now);
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
        self.settle(now);
    }

    /// Runs an app command. A command that does not fit the state is refused with a
    /// [`CommandError`] and changes nothing.
    pub fn handle_command(&mut self, cmd: Command, now: Instant) -> Result<(), CommandError> {
        self.handle_timeout(now);
        let result = self.on_command(cmd, now);
        self.settle(now);
        result
    }

    /// Places a group call to `users` (`Prepared` → `Calling`; `Connected` at the first
    /// accept) and answers its id. At most [`CallConfig::max_invitees`] users; `extension` is
    /// merged over the prepare extension. See `docs/PROTOCOL.md` §10.
    pub fn call_group(
        &mut self,
        users: Vec<UserId>,
        call_type: CallType,
        extension: Extension,
        now: Instant,
    ) -> Result<CallId, CommandError> {
        self.handle_timeout(now);
        let result = self.place_group_call(users, call_type, extension, now);
        self.settle(now);
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
        self.settle(now);
        result
    }

    // ---------------------------------------------------------------- helpers

    /// What follows every step: the group call's media follows the roster, and the link
    /// follows the call.
    fn settle(&mut self, now: Instant) {
        self.sync_group_media();
        self.link_policy(now);
    }

    pub(super) fn current_id(&self) -> Option<CallId> {
        self.call.as_ref().map(|c| c.id)
    }

    pub(super) fn next_id(&mut self) -> MessageId {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        MessageId::from_random_bytes(bytes)
    }

    pub(super) fn next_call_id(&mut self) -> CallId {
        let mut bytes = [0u8; 16];
        self.rng.fill_bytes(&mut bytes);
        CallId::from_random_bytes(bytes)
    }

    pub(super) fn notify(&mut self, n: Notification) {
        self.outputs.push_back(Output::Notify(n));
    }

    pub(super) fn event(
        &mut self,
        event: CallEvent,
        call_id: Option<CallId>,
        reason: Option<String>,
    ) {
        self.notify(Notification::Event(EventInfo {
            event,
            call_id,
            reason,
        }));
    }

    pub(super) fn error(
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

    pub(super) fn media(&mut self, cmd: MediaCommand) {
        self.outputs.push_back(Output::Media(cmd));
    }

    /// Changes state and notifies. `info` describes the call concerned.
    pub(super) fn set_state(
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
    pub(super) fn send(
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
    pub(super) fn send_to_peer(&mut self, body: Body, lifetime: Duration, now: Instant) {
        let Some(call) = &self.call else { return };
        let (to, dev, id) = (
            call.remote_user().clone(),
            call.peer_device().cloned(),
            call.id,
        );
        self.send(to, dev, id, body, lifetime, now);
    }

    pub(super) fn message_lifetime(&self) -> Duration {
        self.cfg.message_lifetime
    }

    /// Takes the current call out, stops its media and retransmissions, remembers it as ended,
    /// and moves to `Prepared` (or `Idle` when not prepared, as during `Deinitialize`).
    pub(super) fn finish_call(
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
                    Body::Cancel { .. }
                        | Body::Reject { .. }
                        | Body::Hangup { .. }
                        | Body::Members { .. }
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
            role: call.role(),
            remote_user: call.remote_user().clone(),
            answered: if call.is_caller() {
                call.peer_device().cloned()
            } else {
                None
            },
            reply,
            at: now,
            group: None,
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

    /// Ends the current call for a local cause, telling the peer (cancel, reject or hangup).
    pub(super) fn end_locally(&mut self, why: &str, reason: StateReason, now: Instant) {
        let Some(call) = &self.call else { return };
        if call.group.is_some() {
            // Leaving (or declining) tells the others; the state reason is the local cause.
            let _ = self.group_leave(Some(why.to_owned()), Some(reason), now);
            return;
        }
        let lifetime = self.message_lifetime();
        let text = Some(why.to_owned());
        match (call.is_caller(), self.state) {
            (true, CallState::Calling) => self.caller_stop(text.clone(), false, None, now),
            (false, CallState::Calling) => self.send_to_peer(
                Body::Reject {
                    reason: text.clone(),
                    busy: false,
                    seq: None,
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

    // ---------------------------------------------------------------- dispatch

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
                if matches!(acked.body, Body::Invite { .. }) {
                    self.on_invite_acked(&acked);
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
        if self.is_from_group(&env) {
            self.on_group_envelope(env, now);
            return;
        }
        let matches_call = self.call.as_ref().is_some_and(|c| {
            c.group.is_none()
                && c.id == env.call_id
                && c.members.is_from(&env.from, &env.from_device)
        });
        if matches_call {
            if self.call.as_ref().is_some_and(Call::is_caller) {
                self.on_invited_member(env, now);
            } else {
                self.on_inviter(env, now);
            }
        } else {
            self.on_other_call(env, now);
        }
    }

    /// The call's own deadline passed: the call timeout (caller) or the invite's expiry or the
    /// wait for `confirm` (callee).
    fn on_deadline(&mut self, now: Instant) {
        let Some(call) = &self.call else { return };
        if call.is_caller() {
            self.on_calling_timeout(now);
        } else {
            self.on_invite_timeout(now);
        }
    }

    fn on_undelivered(&mut self, env: Envelope, now: Instant) {
        tracing::warn!(id = %env.id, kind = env.body.kind(), to = %env.to, "message not acknowledged within its lifetime");
        let is_current = self.current_id() == Some(env.call_id);
        // The invite's and the ringing's expiry are handled by the call deadline (same instant).
        if is_current && matches!(env.body, Body::Invite { .. } | Body::Ringing { .. }) {
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
        if is_current && self.is_group_call() {
            self.on_roster_undelivered(&env, now);
        }
    }
}
