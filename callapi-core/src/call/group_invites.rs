//! Group calls, invitations (`docs/PROTOCOL.md` §10.3, §10.6): the members this device invites
//! (placing a group call, inviting more mid-call, the replies of each member's devices, busy
//! grace, cancelling, timeouts), and the invitation this device rings for (a group invite,
//! accepting, declining, the inviter's `confirm` and `cancel`). Between an invitee's devices and
//! its inviter's device the rules are those of a 1:1 call, per member.

use std::time::{Duration, Instant};

use crate::protocol::{
    Body, CallId, CallType, DeviceId, Elsewhere, Envelope, Extension, Member, MemberState, UserId,
};

use super::command::CommandError;
use super::config::MAX_CALL_TIMEOUT;
use super::group::{Group, GroupInvitation};
use super::machine::CallMachine;
use super::members::{DeviceStatus, Invitation, Inviter, Members};
use super::mesh::Mesh;
use super::session::Call;
use super::state::{CallEvent, CallState, Notification, StateReason};

/// The reason a device that does not speak group calls is cancelled with.
pub(super) const GROUP_UNSUPPORTED: &str = "group_unsupported";

impl CallMachine {
    fn group_invite_lifetime(&self) -> Duration {
        match &self.prepared {
            Some(p) if !p.call_timeout.is_zero() => p.call_timeout,
            _ => MAX_CALL_TIMEOUT,
        }
    }

    /// Checks a list of users to invite: not empty, within the cap, no duplicates, not self.
    fn check_invitees(&self, users: &[UserId], already: usize) -> Result<(), CommandError> {
        if users.is_empty() {
            return Err(CommandError::InvalidArgument(
                "no users to invite: give at least one".into(),
            ));
        }
        let cap = self.cfg.max_invitees;
        if users.len() + already > cap {
            return Err(CommandError::InvalidArgument(format!(
                "{} invitees exceed this device's cap of {cap} (CallConfig::max_invitees)",
                users.len() + already
            )));
        }
        for (i, u) in users.iter().enumerate() {
            if u == &self.cfg.user_id {
                return Err(CommandError::InvalidArgument(
                    "cannot invite yourself".into(),
                ));
            }
            if users[..i].contains(u) {
                return Err(CommandError::InvalidArgument(format!(
                    "user {u} is given twice"
                )));
            }
        }
        Ok(())
    }

    /// Places a group call to `users` (see [`CallMachine::call_group`]).
    pub(super) fn place_group_call(
        &mut self,
        users: Vec<UserId>,
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
        self.check_invitees(&users, 0)?;
        let mut merged = prep.user_extension.clone();
        merged.extend(extension);
        let id = self.next_call_id();
        let me = self.cfg.user_id.clone();
        let mut call = Call::group(
            id,
            call_type,
            prep.room_id.clone(),
            me.clone(),
            users[0].clone(),
            Members::Invited(Vec::new()),
            now,
        );
        call.extension = merged;
        call.group = Some(Box::new(Group {
            roster: super::roster::Roster::new(),
            invitations: Vec::new(),
            other_inviters: Vec::new(),
            min_own_seq: 2,
            creator: true,
            joining: false,
            answered: false,
            mesh: Mesh::default(),
        }));
        self.call = Some(call);
        let reason = if call_type == CallType::Video {
            StateReason::LocalVideoCall
        } else {
            StateReason::LocalAudioCall
        };
        tracing::info!(call_id = %id, invitees = users.len(), ?call_type, "placing group call");
        self.event(CallEvent::OnCalling, Some(id), None);
        let info = self.call_info();
        self.set_state(CallState::Calling, reason, None, info, None, None);
        let dev = self.cfg.device_id.clone();
        self.write_member(&me, MemberState::Accepted, Some(dev), None, None, 1);
        self.invite_members(users, now);
        Ok(id)
    }

    /// Invites more users into the group call this device is in.
    pub(super) fn group_invite(
        &mut self,
        users: Vec<UserId>,
        now: Instant,
    ) -> Result<(), CommandError> {
        let state = self.state;
        let Some(group) = self.group() else {
            return Err(CommandError::InvalidState {
                action: "invite (only into a group call)",
                state,
            });
        };
        if !self.own_record_in_call() || group.joining {
            return Err(CommandError::InvalidState {
                action: "invite (only members in the call invite)",
                state,
            });
        }
        self.check_invitees(&users, group.pending_invitations())?;
        for u in &users {
            if let Some(m) = group.roster.get(u) {
                if !m.state.is_terminal() {
                    return Err(CommandError::InvalidArgument(format!(
                        "user {u} is already {} in this call",
                        m.state.as_str()
                    )));
                }
            }
        }
        self.invite_members(users, now);
        Ok(())
    }

    /// Writes each user's `inviting` record, then sends each its invite (with the roster that
    /// has them all), then tells the members in the call.
    fn invite_members(&mut self, users: Vec<UserId>, now: Instant) {
        let lifetime = self.group_invite_lifetime();
        let until_ms = self
            .unix_ms(now)
            .saturating_add(u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX));
        let mut invited = Vec::new();
        for user in users {
            self.write_member(&user, MemberState::Inviting, None, None, Some(until_ms), 1);
            let Some(group) = self.group_mut() else {
                return;
            };
            let base_seq = group.roster.get(&user).map_or(1, |m| m.seq);
            group.invitations.retain(|i| i.inv.user != user);
            group.invitations.push(GroupInvitation {
                inv: Invitation::new(user.clone(), now),
                base_seq,
                deadline: now + lifetime,
                until_ms,
                outcome: None,
            });
            invited.push(user);
        }
        let Some(call) = &self.call else { return };
        let (id, room_id, call_type, extension) = (
            call.id,
            call.room_id.clone(),
            call.call_type,
            call.extension.clone(),
        );
        let members = self.members().map(|r| r.records().to_vec());
        for user in invited {
            let body = Body::Invite {
                room_id: room_id.clone(),
                call_type,
                extension: extension.clone(),
                members: members.clone(),
            };
            self.send(user, None, id, body, lifetime, now);
        }
        self.broadcast_roster(None, now);
    }

    /// Withdraws this device's pending invitations of `users`.
    pub(super) fn group_cancel_invites(
        &mut self,
        users: Vec<UserId>,
        now: Instant,
    ) -> Result<(), CommandError> {
        let state = self.state;
        let Some(group) = self.group() else {
            return Err(CommandError::InvalidState {
                action: "cancel invitations (only in a group call)",
                state,
            });
        };
        if let Some(u) = users.iter().find(|u| {
            !group
                .invitations
                .iter()
                .any(|i| &i.inv.user == *u && i.is_pending())
        }) {
            return Err(CommandError::InvalidArgument(format!(
                "user {u} has no pending invitation from this device"
            )));
        }
        for user in users {
            self.end_invitation(&user, MemberState::Cancelled, None, now);
        }
        self.broadcast_roster(None, now);
        self.check_group_end(now);
        Ok(())
    }

    /// Cancels every pending invitation of this device (it leaves, or the call ended).
    pub(super) fn cancel_own_invitations(&mut self, reason: Option<String>, now: Instant) {
        let pending: Vec<UserId> = self
            .group()
            .map(|g| {
                g.invitations
                    .iter()
                    .filter(|i| i.is_pending())
                    .map(|i| i.inv.user.clone())
                    .collect()
            })
            .unwrap_or_default();
        for user in pending {
            self.end_invitation(&user, MemberState::Cancelled, reason.clone(), now);
        }
    }

    /// Ends this device's invitation of `user` with `outcome` (`Cancelled` or `Timeout`): tells
    /// whatever device of the member may be ringing, writes the record.
    fn end_invitation(
        &mut self,
        user: &UserId,
        outcome: MemberState,
        reason: Option<String>,
        now: Instant,
    ) {
        let Some(call) = &mut self.call else { return };
        let id = call.id;
        let Some(gi) = call
            .group
            .as_deref_mut()
            .and_then(|g| g.invitation_mut(user))
        else {
            return;
        };
        if !gi.is_pending() {
            return;
        }
        gi.outcome = Some(outcome);
        let base = gi.base_seq;
        let ringing = gi.inv.devices.ringing_except(None);
        for d in &ringing {
            gi.inv.devices.set_status(d, DeviceStatus::Cancelled);
        }
        let timeout = outcome == MemberState::Timeout;
        let lifetime = self.message_lifetime();
        let body = Body::Cancel {
            reason: reason.clone(),
            timeout,
            elsewhere: None,
            seq: Some(base),
        };
        if ringing.is_empty() {
            self.send(user.clone(), None, id, body, lifetime, now);
        } else {
            for d in ringing {
                self.send(user.clone(), Some(d), id, body.clone(), lifetime, now);
            }
        }
        let reason = if outcome == MemberState::Cancelled {
            reason
        } else {
            None
        };
        if self.invitation_owns_record(user, base) {
            self.write_member(user, outcome, None, reason, None, base + 2);
        }
    }

    /// Whether `user`'s record is still the pending record of the invitation that wrote
    /// `inviting` at `base` (nobody else has written past it).
    fn invitation_owns_record(&self, user: &UserId, base: u64) -> bool {
        self.members()
            .and_then(|r| r.get(user))
            .is_some_and(|m| m.state.is_pending() && m.seq <= base + 1)
    }

    /// Ends, without writing, this device's invitations whose record someone else moved past
    /// them (the member was accepted through another inviter, say), and stops whatever of the
    /// member's devices still rings for them (docs/PROTOCOL.md §10.3, last point).
    pub(super) fn settle_superseded_invitations(&mut self, now: Instant) {
        let Some(group) = self.group() else { return };
        let superseded: Vec<(UserId, MemberState, Option<DeviceId>)> = group
            .invitations
            .iter()
            .filter(|i| i.is_pending())
            .filter_map(|i| {
                let m = group.roster.get(&i.inv.user)?;
                let moved = !m.state.is_pending() || m.seq > i.base_seq + 1;
                moved.then(|| (i.inv.user.clone(), m.state, m.device.clone()))
            })
            .collect();
        for (user, state, device) in superseded {
            let Some(call) = &mut self.call else { return };
            let id = call.id;
            let Some(gi) = call
                .group
                .as_deref_mut()
                .and_then(|g| g.invitation_mut(&user))
            else {
                continue;
            };
            gi.outcome = Some(state);
            gi.inv.end_busy_grace();
            let base = gi.base_seq;
            let ringing = gi.inv.devices.ringing_except(device.as_ref());
            for d in &ringing {
                gi.inv.devices.set_status(d, DeviceStatus::Cancelled);
            }
            let elsewhere = match state {
                MemberState::Accepted => Some(Elsewhere::Answered),
                MemberState::Rejected => Some(Elsewhere::Rejected),
                _ => None,
            };
            let lifetime = self.message_lifetime();
            for d in ringing {
                let body = Body::Cancel {
                    reason: None,
                    timeout: false,
                    elsewhere,
                    seq: Some(base),
                };
                self.send(user.clone(), Some(d), id, body, lifetime, now);
            }
        }
    }

    /// Busy graces and deadlines of this device's invitations.
    pub(super) fn on_invitation_timers(&mut self, now: Instant) {
        let Some(group) = self.group() else { return };
        let due: Vec<(UserId, bool)> = group
            .invitations
            .iter()
            .filter(|i| i.is_pending())
            .filter_map(|i| {
                if now >= i.deadline {
                    Some((i.inv.user.clone(), true))
                } else if i.inv.busy_until.is_some_and(|t| now >= t) {
                    Some((i.inv.user.clone(), false))
                } else {
                    None
                }
            })
            .collect();
        if due.is_empty() {
            return;
        }
        for (user, deadline) in due {
            if deadline {
                let id = self.current_id();
                self.event(CallEvent::CallingTimeout, id, Some(user.to_string()));
                self.end_invitation(&user, MemberState::Timeout, None, now);
            } else {
                self.on_group_busy_grace_over(&user);
            }
        }
        self.broadcast_roster(None, now);
        self.check_group_end(now);
    }

    /// Whether an invitee's `ringing`, `accept` or `reject` answers an invitation of `user` that
    /// came before this device's current one (its `seq` is below the current `inviting`).
    fn answers_earlier_invitation(&self, user: &UserId, seq: Option<u64>) -> bool {
        let base = self
            .group()
            .and_then(|g| g.invitations.iter().find(|i| &i.inv.user == user))
            .map(|i| i.base_seq);
        matches!((seq, base), (Some(s), Some(b)) if s < b)
    }

    /// A busy grace ran out: unless another device of the member rings, it is busy.
    fn on_group_busy_grace_over(&mut self, user: &UserId) {
        let Some(gi) = self.group_mut().and_then(|g| g.invitation_mut(user)) else {
            return;
        };
        let reason = gi.inv.end_busy_grace();
        if !gi.inv.devices.ringing_except(None).is_empty() || gi.inv.answered.is_some() {
            return;
        }
        gi.outcome = Some(MemberState::Busy);
        let base = gi.base_seq;
        self.write_member(user, MemberState::Busy, None, reason, None, base + 2);
    }

    /// An envelope of the group call in progress.
    pub(super) fn on_group_envelope(&mut self, env: Envelope, now: Instant) {
        let from_invitee = self
            .group()
            .is_some_and(|g| g.invitations.iter().any(|i| i.inv.user == env.from));
        let from_inviter = self.call.as_ref().is_some_and(|c| {
            matches!(&c.members, Members::InvitedBy(i) if i.user == env.from && i.device == env.from_device)
        });
        let from_other_inviter = self.group().is_some_and(|g| {
            g.other_inviters
                .iter()
                .any(|(u, d, _)| u == &env.from && d == &env.from_device)
        });
        match env.body {
            Body::Members { members, ended } => {
                self.on_members(env.from, env.from_device, members, ended, now)
            }
            // A reply to an earlier invitation of the member (it declined that one, say, and
            // this one crossed its reply) is not about this invitation.
            Body::Ringing { seq, .. } | Body::Accept { seq, .. } | Body::Reject { seq, .. }
                if from_invitee && self.answers_earlier_invitation(&env.from, seq) => {}
            Body::Ringing { group, .. } if from_invitee => {
                self.on_invitee_ringing(&env.from, env.from_device, group, now)
            }
            Body::Accept { group, .. } if from_invitee => {
                self.on_invitee_accept(&env.from, env.from_device, group, now)
            }
            Body::Reject { reason, busy, .. } if from_invitee => {
                self.on_invitee_reject(&env.from, env.from_device, reason, busy, now)
            }
            Body::Confirm { members } if from_inviter => {
                if self.state == CallState::Connecting {
                    if let Some(members) = members {
                        let outcome = self.group_mut().map(|g| g.roster.merge(&members, false));
                        if let Some(outcome) = outcome {
                            self.notify_members(outcome.changes);
                        }
                        self.settle_superseded_invitations(now);
                    }
                    if self.own_record_in_call() {
                        if let Some(g) = self.group_mut() {
                            g.answered = true;
                        }
                        self.group_connected(StateReason::LocalAccepted, now);
                        self.broadcast_roster(Some((&env.from, &env.from_device)), now);
                    }
                }
            }
            Body::Cancel {
                reason,
                timeout,
                elsewhere,
                seq,
            } if matches!(self.state, CallState::Calling | CallState::Connecting)
                && !self.own_record_in_call()
                && (from_inviter || (from_other_inviter && elsewhere.is_some()))
                && !self.withdraws_earlier_invitation(&env.from, &env.from_device, seq) =>
            {
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
                let id = self.current_id();
                self.event(ev, id, reason.clone());
                self.finish_group(st, reason, now);
            }
            Body::Media {
                payload,
                seq,
                to_seq,
            } => self.on_group_media(env.from, env.from_device, payload, (seq, to_seq)),
            Body::Message { data } if self.state == CallState::Connected => {
                let id = env.call_id;
                self.notify(Notification::MessageReceived {
                    call_id: id,
                    from: env.from,
                    data,
                });
            }
            Body::Dtmf { digits } if self.state == CallState::Connected => {
                let id = env.call_id;
                self.notify(Notification::DtmfReceived {
                    call_id: id,
                    from: env.from,
                    digits,
                });
            }
            _ => {
                tracing::debug!(kind = env.body.kind(), from = %env.from, "group message does not fit the state");
            }
        }
    }

    /// Tells one device of an invitee to stop (`elsewhere`, or group calls not spoken).
    fn cancel_invitee_device(
        &mut self,
        user: &UserId,
        device: DeviceId,
        elsewhere: Option<Elsewhere>,
        reason: Option<String>,
        now: Instant,
    ) {
        let Some(call) = &mut self.call else { return };
        let id = call.id;
        if let Some(gi) = call
            .group
            .as_deref_mut()
            .and_then(|g| g.invitation_mut(user))
        {
            gi.inv.devices.set_status(&device, DeviceStatus::Cancelled);
        }
        let seq = call
            .group
            .as_deref()
            .and_then(|g| g.invitations.iter().find(|i| &i.inv.user == user))
            .map(|i| i.base_seq);
        let lifetime = self.message_lifetime();
        let body = Body::Cancel {
            reason,
            timeout: false,
            elsewhere,
            seq,
        };
        self.send(user.clone(), Some(device), id, body, lifetime, now);
    }

    /// The reply to a device whose invitation is over, so that it does not keep ringing.
    fn late_invitee_reply(&mut self, user: &UserId, device: DeviceId, now: Instant) {
        let Some(gi) = self.group_mut().and_then(|g| g.invitation_mut(user)) else {
            return;
        };
        if gi.inv.answered.as_ref() == Some(&device) {
            return;
        }
        let (elsewhere, timeout) = match gi.outcome {
            Some(MemberState::Accepted) => (Some(Elsewhere::Answered), false),
            Some(MemberState::Rejected) => (Some(Elsewhere::Rejected), false),
            Some(MemberState::Timeout) => (None, true),
            _ => (None, false),
        };
        let seq = Some(gi.base_seq);
        let Some(call) = &self.call else { return };
        let id = call.id;
        let lifetime = self.message_lifetime();
        let body = Body::Cancel {
            reason: None,
            timeout,
            elsewhere,
            seq,
        };
        self.send(user.clone(), Some(device), id, body, lifetime, now);
    }

    /// A device of a member that does not speak group calls answered: stop it; with no other
    /// device of the member left, the member is `rejected` for that reason.
    fn on_unsupported_device(&mut self, user: &UserId, device: DeviceId, now: Instant) {
        self.cancel_invitee_device(user, device, None, Some(GROUP_UNSUPPORTED.into()), now);
        let Some(gi) = self.group_mut().and_then(|g| g.invitation_mut(user)) else {
            return;
        };
        if gi.inv.devices.ringing_except(None).is_empty() && gi.inv.answered.is_none() {
            gi.outcome = Some(MemberState::Rejected);
            let base = gi.base_seq;
            self.write_member(
                user,
                MemberState::Rejected,
                None,
                Some("group calls not supported by this device".into()),
                None,
                base + 2,
            );
            self.broadcast_roster(None, now);
            self.check_group_end(now);
        }
    }

    fn on_invitee_ringing(&mut self, user: &UserId, device: DeviceId, group: bool, now: Instant) {
        let Some(gi) = self.group_mut().and_then(|g| g.invitation_mut(user)) else {
            return;
        };
        if !gi.is_pending() {
            return self.late_invitee_reply(user, device, now);
        }
        if !group {
            return self.on_unsupported_device(user, device, now);
        }
        let first = gi.inv.ring(&device);
        if gi.inv.busy_until.is_some() {
            gi.inv.end_busy_grace();
        }
        let (base, until) = (gi.base_seq, gi.until_ms);
        if first {
            let id = self.current_id();
            self.event(CallEvent::RemoteUserRecvCall, id, Some(user.to_string()));
            // A concurrent inviter may have recorded the ring already: its record stands (a
            // rewrite would only move the record past both invitations' `inviting`, and then
            // neither would own it).
            let already = self
                .members()
                .and_then(|r| r.get(user))
                .is_some_and(|m| m.state == MemberState::Ringing && m.seq > base);
            if !already
                && self.write_member(
                    user,
                    MemberState::Ringing,
                    None,
                    None,
                    Some(until),
                    base + 1,
                )
            {
                self.broadcast_roster(None, now);
            }
        }
    }

    fn on_invitee_accept(&mut self, user: &UserId, device: DeviceId, group: bool, now: Instant) {
        let Some(gi) = self.group_mut().and_then(|g| g.invitation_mut(user)) else {
            return;
        };
        if !gi.is_pending() {
            return self.late_invitee_reply(user, device, now);
        }
        if !group {
            return self.on_unsupported_device(user, device, now);
        }
        let others = gi.inv.answer(&device);
        gi.outcome = Some(MemberState::Accepted);
        let base = gi.base_seq;
        for d in others {
            self.cancel_invitee_device(user, d, Some(Elsewhere::Answered), None, now);
        }
        self.write_member(
            user,
            MemberState::Accepted,
            Some(device.clone()),
            None,
            None,
            base + 2,
        );
        if let Some(g) = self.group_mut() {
            g.answered = true;
        }
        let id = self.current_id();
        self.event(CallEvent::RemoteAccepted, id, Some(user.to_string()));
        // The confirm carries the roster with the member in it.
        let Some(call) = &self.call else { return };
        let call_id = call.id;
        let members = self.members().map(|r| r.records().to_vec());
        let lifetime = self.message_lifetime();
        self.send(
            user.clone(),
            Some(device.clone()),
            call_id,
            Body::Confirm { members },
            lifetime,
            now,
        );
        self.broadcast_roster(Some((user, &device)), now);
        if self.state == CallState::Calling {
            self.group_connected(StateReason::RemoteAccepted, now);
        }
    }

    fn on_invitee_reject(
        &mut self,
        user: &UserId,
        device: DeviceId,
        reason: Option<String>,
        busy: bool,
        now: Instant,
    ) {
        let Some(gi) = self.group_mut().and_then(|g| g.invitation_mut(user)) else {
            return;
        };
        if !gi.is_pending() {
            // The device whose accept was taken gave up waiting for its confirm: it is out —
            // unless the member's record has moved on (another of its devices joined, say):
            // then that device's exit is not the member's.
            let still_its_record = self.members().and_then(|r| r.get(user)).is_some_and(|m| {
                m.state == MemberState::Accepted && m.device.as_ref() == Some(&device)
            });
            let Some(gi) = self.group_mut().and_then(|g| g.invitation_mut(user)) else {
                return;
            };
            if gi.outcome == Some(MemberState::Accepted)
                && gi.inv.answered.as_ref() == Some(&device)
                && still_its_record
            {
                let base = gi.base_seq;
                gi.outcome = Some(MemberState::Left);
                if self.write_member(
                    user,
                    MemberState::Left,
                    Some(device),
                    reason,
                    None,
                    base + 3,
                ) {
                    self.broadcast_roster(None, now);
                }
                self.check_group_end(now);
            }
            return;
        }
        if busy {
            gi.inv.busy(&device, reason, now);
            return;
        }
        let others = gi.inv.reject(&device);
        gi.outcome = Some(MemberState::Rejected);
        let base = gi.base_seq;
        for d in others {
            self.cancel_invitee_device(user, d, Some(Elsewhere::Rejected), None, now);
        }
        let id = self.current_id();
        self.event(CallEvent::RemoteRejected, id, reason.clone());
        self.write_member(user, MemberState::Rejected, None, reason, None, base + 2);
        self.broadcast_roster(None, now);
        self.check_group_end(now);
    }

    // ------------------------------------------------------------ the invitation I ring for

    /// A group invite arrived (`Body::Invite` with `members`); expiry is already checked.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_group_invite(
        &mut self,
        (from, from_device, call_id): (UserId, DeviceId, CallId),
        room_id: String,
        call_type: CallType,
        extension: Extension,
        members: Vec<Member>,
        remaining: Duration,
        now: Instant,
    ) {
        let me = self.cfg.user_id.clone();
        // The same call: a second inviter while ringing (ring once), or already in it.
        if self.current_id() == Some(call_id) {
            let ringing = self.state == CallState::Calling
                && self.group().is_some_and(|g| !g.creator && !g.joining);
            let Some(group) = self.group_mut() else {
                return;
            };
            let outcome = group.roster.merge(&members, false);
            let known = group
                .other_inviters
                .iter()
                .any(|(u, d, _)| u == &from && d == &from_device);
            let seq = members.iter().find(|m| m.user == me).map_or(1, |m| m.seq);
            if ringing && !known {
                group
                    .other_inviters
                    .push((from.clone(), from_device.clone(), seq));
            }
            self.notify_members(outcome.changes);
            self.settle_superseded_invitations(now);
            if ringing && !known {
                let lifetime = remaining.max(Duration::from_millis(1));
                let body = Body::Ringing {
                    group: true,
                    seq: Some(seq),
                };
                self.send(
                    from.clone(),
                    Some(from_device.clone()),
                    call_id,
                    body,
                    lifetime,
                    now,
                );
            }
            return;
        }
        // A copy of an invitation this device already answered, or one a cancel overtook (of
        // a call unknown here, or of a re-invitation after the call ended here).
        if let Some(ended) = self.ended.iter().rev().find(|e| e.id == call_id) {
            let fresh = match (&ended.group, members.iter().find(|m| m.user == me)) {
                (Some(memo), Some(invited)) => {
                    memo.roster
                        .get(&me)
                        .is_none_or(|known| invited.supersedes(known))
                        && memo.withdrawn_seq.is_none_or(|w| invited.seq > w)
                }
                _ => false,
            };
            if !fresh {
                return;
            }
        }
        if from == me || self.glare_we_win(call_id, &from, now) {
            return;
        }
        let out_of_scope = self.room_scope.as_ref().is_some_and(|r| r != &room_id);
        if self.state != CallState::Prepared || self.call.is_some() || out_of_scope {
            tracing::info!(call_id = %call_id, from = %from, "busy: declining group invite");
            self.event(CallEvent::BusyAutoRejected, Some(call_id), None);
            let lifetime = self.message_lifetime();
            let seq = members.iter().find(|m| m.user == me).map(|m| m.seq);
            let body = Body::Reject {
                reason: Some("busy".into()),
                busy: true,
                seq,
            };
            self.send(
                from.clone(),
                Some(from_device.clone()),
                call_id,
                body,
                lifetime,
                now,
            );
            return;
        }
        let base = members.iter().find(|m| m.user == me).map_or(1, |m| m.seq);
        let mut call = Call::group(
            call_id,
            call_type,
            room_id,
            from.clone(),
            me.clone(),
            Members::InvitedBy(Inviter::new(
                from.clone(),
                from_device.clone(),
                now + remaining,
            )),
            now,
        );
        call.extension = extension;
        call.deadline = Some(now + remaining);
        call.group = Some(Box::new(Group {
            roster: super::roster::Roster::new(),
            invitations: Vec::new(),
            other_inviters: Vec::new(),
            min_own_seq: base + 3,
            creator: false,
            joining: false,
            answered: false,
            mesh: Mesh::default(),
        }));
        self.call = Some(call);
        let reason = if call_type == CallType::Video {
            StateReason::RemoteVideoCall
        } else {
            StateReason::RemoteAudioCall
        };
        tracing::info!(call_id = %call_id, from = %from, "ringing for a group call");
        let info = self.call_info();
        self.set_state(CallState::Calling, reason, None, info, None, None);
        let outcome = self.group_mut().map(|g| g.roster.merge(&members, false));
        if let Some(outcome) = outcome {
            self.notify_members(outcome.changes);
        }
        let lifetime = remaining.max(Duration::from_millis(1));
        self.send(
            from.clone(),
            Some(from_device.clone()),
            call_id,
            Body::Ringing {
                group: true,
                seq: Some(base),
            },
            lifetime,
            now,
        );
    }

    /// Whether a `cancel` from an inviter withdraws an invitation of this user that came before
    /// the one this device rings for (its `seq` is below that invite's record of this user).
    fn withdraws_earlier_invitation(
        &self,
        from: &UserId,
        from_device: &DeviceId,
        seq: Option<u64>,
    ) -> bool {
        let Some(s) = seq else { return false };
        self.inviters()
            .iter()
            .find(|(u, d, _)| u == from && d == from_device)
            .is_some_and(|(_, _, base)| s < *base)
    }

    /// Every device this device's answer goes to: its inviter and any other inviter.
    /// Each with the seq of this user's record in that inviter's invite.
    fn inviters(&self) -> Vec<(UserId, DeviceId, u64)> {
        let Some(call) = &self.call else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let base = call.group.as_deref().map_or(1, Group::invited_seq);
        if let Members::InvitedBy(i) = &call.members {
            out.push((i.user.clone(), i.device.clone(), base));
        }
        if let Some(g) = call.group.as_deref() {
            out.extend(g.other_inviters.iter().cloned());
        }
        out
    }

    /// The app answers the group invitation: `accept` to the inviter; in the call at its
    /// `confirm`.
    pub(super) fn group_accept(&mut self, now: Instant) -> Result<(), CommandError> {
        let state = self.state;
        let Some(call) = &mut self.call else {
            return Err(CommandError::InvalidState {
                action: "accept",
                state,
            });
        };
        let Members::InvitedBy(inviter) = &call.members else {
            return Err(CommandError::InvalidState {
                action: "accept",
                state,
            });
        };
        if state != CallState::Calling {
            return Err(CommandError::InvalidState {
                action: "accept",
                state,
            });
        }
        let deadline = inviter.confirm_deadline(now, self.cfg.confirm_grace);
        let (to, dev) = (inviter.user.clone(), inviter.device.clone());
        let seq = call.group.as_deref().map_or(1, Group::invited_seq);
        call.accepted = true;
        call.deadline = Some(deadline);
        let id = call.id;
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
        let lifetime = deadline.saturating_duration_since(now);
        self.send(
            to,
            Some(dev),
            id,
            Body::Accept {
                group: true,
                seq: Some(seq),
            },
            lifetime,
            now,
        );
        Ok(())
    }

    /// The app declines the group invitation: `reject` to every inviter; the call goes on for
    /// the others.
    pub(super) fn group_reject(
        &mut self,
        reason: Option<String>,
        cause: Option<StateReason>,
        now: Instant,
    ) -> Result<(), CommandError> {
        let state = self.state;
        let ringing =
            state == CallState::Calling && self.group().is_some_and(|g| !g.creator && !g.joining);
        if !ringing {
            return Err(CommandError::InvalidState {
                action: "reject",
                state,
            });
        }
        let Some(id) = self.current_id() else {
            return Ok(());
        };
        self.event(CallEvent::LocalRejected, Some(id), reason.clone());
        // The inviter writes this very record (rejected at s + 2); writing it here too keeps this
        // device's memory of the call current, which a later join relies on.
        let me = self.cfg.user_id.clone();
        if let Some(base) = self.group().map(Group::invited_seq) {
            self.write_member(
                &me,
                MemberState::Rejected,
                None,
                reason.clone(),
                None,
                base + 2,
            );
        }
        let lifetime = self.message_lifetime();
        for (to, dev, seq) in self.inviters() {
            let body = Body::Reject {
                reason: reason.clone(),
                busy: false,
                seq: Some(seq),
            };
            self.send(to, Some(dev), id, body, lifetime, now);
        }
        self.finish_group(cause.unwrap_or(StateReason::LocalRejected), reason, now);
        Ok(())
    }

    /// Sends app data (`message` or `dtmf`) to every other member in the call.
    pub(super) fn group_send_to_all(
        &mut self,
        body: Body,
        now: Instant,
    ) -> Result<(), CommandError> {
        let state = self.state;
        if state != CallState::Connected {
            return Err(CommandError::InvalidState {
                action: "send to the call",
                state,
            });
        }
        let me = self.cfg.user_id.clone();
        let Some(call) = &self.call else {
            return Ok(());
        };
        let id = call.id;
        let targets: Vec<(UserId, DeviceId)> = self
            .members()
            .map(|r| {
                r.members_in_call()
                    .filter(|m| m.user != me)
                    .filter_map(|m| m.device.clone().map(|d| (m.user.clone(), d)))
                    .collect()
            })
            .unwrap_or_default();
        let lifetime = self.message_lifetime();
        for (to, dev) in targets {
            self.send(to, Some(dev), id, body.clone(), lifetime, now);
        }
        Ok(())
    }
}
