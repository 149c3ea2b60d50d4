//! Group calls, call-wide rules (`docs/PROTOCOL.md` §10): the roster every member's device
//! keeps, keeping rosters in step (`members` envelopes), when the call ends for this device,
//! leaving, ending for everyone, joining late, and the expiry of invitations whose inviter
//! vanished. The invitations themselves (this device's, and the one that invited it) are in
//! `group_invites.rs`. A 1:1 call never reaches this code: its rules are `invited.rs` and
//! `inviter.rs`, and its wire messages are those of `docs/PROTOCOL.md` §8.

use std::time::{Duration, Instant};

use crate::protocol::{Body, CallId, DeviceId, Envelope, Member, MemberState, UserId};

use super::command::CommandError;
use super::ended::LateReply;
use super::machine::CallMachine;
use super::members::{Invitation, Inviter, Members};
use super::mesh::Mesh;
use super::roster::{MemberChange, Roster};
use super::session::Call;
use super::state::{CallEvent, CallState, Notification, StateReason};

/// How long after an invitation's `until_ms` a device other than its inviter records it as
/// `timeout` (the inviter's own timer normally writes first; the slack covers clock skew).
pub(super) const EXPIRY_SLACK: Duration = Duration::from_secs(2);

/// The reason of a `left` record written for a device that acknowledged no roster within its
/// lifetime.
pub(super) const UNREACHABLE: &str = "unreachable";

/// Default cap on the users invited at once or in total by one device (`CallConfig`).
pub const DEFAULT_MAX_INVITEES: usize = 9;

/// One member this device invited into a group call.
#[derive(Debug)]
pub(crate) struct GroupInvitation {
    /// The per-device replies, as in a 1:1 call.
    pub inv: Invitation,
    /// The seq of the `inviting` record this invitation wrote (`s`).
    pub base_seq: u64,
    /// When the invitation times out (its invite's lifetime).
    pub deadline: Instant,
    /// The invite's lifetime end, in Unix ms (the record's `until_ms`).
    pub until_ms: u64,
    /// How the invitation ended, once it did.
    pub outcome: Option<MemberState>,
}

impl GroupInvitation {
    pub(crate) fn is_pending(&self) -> bool {
        self.outcome.is_none()
    }

    /// The invitation's next timer: its busy grace, else its deadline.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        if !self.is_pending() {
            return None;
        }
        [self.inv.next_timeout(), Some(self.deadline)]
            .into_iter()
            .flatten()
            .min()
    }
}

/// What a group call adds to [`Call`].
#[derive(Debug)]
pub(crate) struct Group {
    pub roster: Roster,
    /// The members this device invited.
    pub invitations: Vec<GroupInvitation>,
    /// Inviters other than the first (two members invited this user at once), each with the
    /// seq of this user's record in its invite: they are sent `ringing` and the answer, but the
    /// call is with the first.
    pub other_inviters: Vec<(UserId, DeviceId, u64)>,
    /// The smallest seq this device's own writes of its record use (`s + 3`, where `s` is the
    /// seq of its record in the invite it rings for).
    pub min_own_seq: u64,
    /// This device created the call.
    pub creator: bool,
    /// Joining late: in the call once a member's roster comes back.
    pub joining: bool,
    /// Someone other than this device was in the call at some point.
    pub answered: bool,
    /// The call's media: one connection per other member's device in the call.
    pub mesh: Mesh,
}

impl Group {
    /// The seq of this device's record in the invite it rings for (`s`; its own writes use
    /// `s + 3` and up).
    pub(crate) fn invited_seq(&self) -> u64 {
        self.min_own_seq.saturating_sub(3)
    }

    pub(crate) fn invitation_mut(&mut self, user: &UserId) -> Option<&mut GroupInvitation> {
        self.invitations.iter_mut().find(|i| &i.inv.user == user)
    }

    pub(crate) fn pending_invitations(&self) -> usize {
        self.invitations.iter().filter(|i| i.is_pending()).count()
    }

    /// Pending records that no pending invitation of this device looks after (nor `me`'s own):
    /// the ones this device expires by their `until_ms` as a last resort.
    pub(crate) fn others_pending<'a>(&'a self, me: &'a UserId) -> impl Iterator<Item = &'a Member> {
        self.roster.pending().filter(move |m| {
            &m.user != me
                && !self
                    .invitations
                    .iter()
                    .any(|i| i.is_pending() && i.inv.user == m.user)
        })
    }

    /// The earliest timer of the group: an invitation's, or another device's expired
    /// invitation to record (`anchor` converts Unix ms to `Instant`).
    pub(crate) fn next_timeout(
        &self,
        me: &UserId,
        to_instant: impl Fn(u64) -> Instant,
    ) -> Option<Instant> {
        let own = self
            .invitations
            .iter()
            .filter_map(GroupInvitation::next_timeout)
            .min();
        let others = self
            .others_pending(me)
            .filter_map(|m| m.until_ms)
            .map(|until| to_instant(until) + EXPIRY_SLACK)
            .min();
        [own, others].into_iter().flatten().min()
    }
}

/// What a device remembers of a group call that ended for it: enough to answer late rosters
/// and to join again.
#[derive(Debug, Clone)]
pub(crate) struct GroupMemo {
    pub roster: Roster,
    pub room_id: String,
    pub call_type: crate::protocol::CallType,
    pub extension: crate::protocol::Extension,
    pub min_own_seq: u64,
    /// The greatest `seq` of an invitation of this user withdrawn by a `cancel` that arrived
    /// after the call ended here: a re-invite it overtook (same or lower `seq`) must not ring.
    pub withdrawn_seq: Option<u64>,
}

impl CallMachine {
    /// The roster of the group call in progress, if any.
    pub fn members(&self) -> Option<&Roster> {
        self.call
            .as_ref()
            .and_then(|c| c.group.as_ref())
            .map(|g| &g.roster)
    }

    pub(super) fn group(&self) -> Option<&Group> {
        self.call.as_ref().and_then(|c| c.group.as_deref())
    }

    pub(super) fn group_mut(&mut self) -> Option<&mut Group> {
        self.call.as_mut().and_then(|c| c.group.as_deref_mut())
    }

    pub(super) fn is_group_call(&self) -> bool {
        self.group().is_some()
    }

    /// Unix ms → `Instant` on this machine's clock.
    pub(super) fn instant_at(&self, unix_ms: u64) -> Instant {
        self.anchor + Duration::from_millis(unix_ms.saturating_sub(self.anchor_unix_ms))
    }

    /// Tells the app about roster changes.
    pub(super) fn notify_members(&mut self, changes: Vec<MemberChange>) {
        if let Some(id) = self.current_id() {
            self.notify_members_of(id, changes);
        }
    }

    /// Tells the app about roster changes of call `id` (also of one that ended here).
    pub(super) fn notify_members_of(&mut self, id: CallId, changes: Vec<MemberChange>) {
        for change in changes {
            tracing::info!(call_id = %id, user = %change.user, state = change.state.as_str(), "member changed");
            self.notify(Notification::MemberChanged {
                call_id: id,
                change,
            });
        }
    }

    /// Writes a record of the group call's roster and tells the app; answers whether it changed.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_member(
        &mut self,
        user: &UserId,
        state: MemberState,
        device: Option<DeviceId>,
        reason: Option<String>,
        until_ms: Option<u64>,
        min_seq: u64,
    ) -> bool {
        let Some(group) = self.group_mut() else {
            return false;
        };
        match group
            .roster
            .write(user.clone(), state, device, reason, until_ms, min_seq)
        {
            Some(change) => {
                self.notify_members(vec![change]);
                true
            }
            None => false,
        }
    }

    /// Sends the roster to the device of every member in the call but this one and `except`.
    pub(super) fn broadcast_roster(&mut self, except: Option<(&UserId, &DeviceId)>, now: Instant) {
        let Some(group) = self.group() else { return };
        let me = (&self.cfg.user_id, &self.cfg.device_id);
        let targets: Vec<(UserId, DeviceId)> = group
            .roster
            .members_in_call()
            .filter_map(|m| m.device.as_ref().map(|d| (&m.user, d)))
            .filter(|t| *t != me && Some(*t) != except)
            .map(|(u, d)| (u.clone(), d.clone()))
            .collect();
        for (user, device) in targets {
            self.send_roster(user, device, now);
        }
    }

    /// Sends the roster to one device.
    pub(super) fn send_roster(&mut self, user: UserId, device: DeviceId, now: Instant) {
        let Some(call) = &self.call else { return };
        let Some(group) = call.group.as_deref() else {
            return;
        };
        let body = Body::Members {
            members: group.roster.records().to_vec(),
            ended: group.roster.ended(),
        };
        let id = call.id;
        let lifetime = self.message_lifetime();
        self.send(user, Some(device), id, body, lifetime, now);
    }

    /// A roster to a device that the roster has in the call was not acknowledged within its
    /// lifetime: that device is gone (it ended without anyone to tell, or its link is down for
    /// longer than a message lives). It is recorded `left` ("unreachable"), so that the call
    /// does not wait for it; it is sent that roster too, for the day it comes back
    /// (docs/PROTOCOL.md §10.4).
    pub(super) fn on_roster_undelivered(&mut self, env: &Envelope, now: Instant) {
        let (Body::Members { .. }, Some(device)) = (&env.body, env.to_device.as_ref()) else {
            return;
        };
        if self.current_id() != Some(env.call_id) || !self.own_record_in_call() {
            return;
        }
        let Some(seq) = self.members().and_then(|r| r.get(&env.to)).and_then(|m| {
            (m.state.is_in_call() && m.device.as_ref() == Some(device)).then_some(m.seq)
        }) else {
            return;
        };
        tracing::info!(call_id = %env.call_id, user = %env.to, device = %device, "member unreachable: recording it left");
        let why = Some(UNREACHABLE.to_owned());
        if self.write_member(
            &env.to,
            MemberState::Left,
            Some(device.clone()),
            why,
            None,
            seq + 1,
        ) {
            self.broadcast_roster(None, now);
            self.send_roster(env.to.clone(), device.clone(), now);
        }
        self.check_group_end(now);
    }

    /// A roster arrived from a device of the call (`docs/PROTOCOL.md` §10.4).
    pub(super) fn on_members(
        &mut self,
        from: UserId,
        from_device: DeviceId,
        members: Vec<Member>,
        ended: bool,
        now: Instant,
    ) {
        let me = self.cfg.user_id.clone();
        let me_dev = self.cfg.device_id.clone();
        let Some(group) = self.group_mut() else {
            return;
        };
        let lacks = group.roster.lacks(&members, ended);
        let in_before: Vec<(UserId, DeviceId)> = group
            .roster
            .members_in_call()
            .filter_map(|m| m.device.clone().map(|d| (m.user.clone(), d)))
            .collect();
        let outcome = group.roster.merge(&members, ended);
        let welcome = outcome.changes.iter().any(|c| {
            c.user == from && c.state == MemberState::Accepted && c.previous != Some(c.state)
        });
        let changed = !outcome.is_empty();
        let sender_in = group
            .roster
            .get(&from)
            .is_some_and(|m| m.state.is_in_call());
        let own_in = group
            .roster
            .get(&me)
            .is_some_and(|m| m.state.is_in_call() && m.device.as_ref() == Some(&me_dev));
        let joined_now = group.joining && sender_in && own_in && !group.roster.ended();
        let join_lost = group.joining && !own_in;
        if joined_now {
            group.joining = false;
        }
        if group.roster.members_in_call().any(|m| m.user != me) {
            group.answered = true;
        }
        let ended_now = group.roster.ended();
        let creator_calling = group.creator && self.state == CallState::Calling;
        self.notify_members(outcome.changes);
        self.settle_superseded_invitations(now);
        if joined_now {
            self.group_connected(StateReason::LocalAccepted, now);
        }
        if creator_calling && self.group().is_some_and(|g| g.answered) {
            // Someone is in (a late joiner, say) before any of this device's invitees answered.
            self.group_connected(StateReason::RemoteAccepted, now);
        }
        let was_in = self.state == CallState::Connected && !own_in;
        if join_lost || was_in {
            // This device's record says it is not in the call (any more): another device of
            // its member joined, or a newer invitation or outcome superseded its join.
            self.on_own_record_lost(now);
            return;
        }
        let in_call = self.own_record_in_call();
        if in_call && changed {
            self.broadcast_roster(Some((&from, &from_device)), now);
            // A device that was in the call and is not any more by this roster (its member's
            // record moved to another device) must hear it, or it would stay in alone.
            let dropped: Vec<(UserId, DeviceId)> = in_before
                .into_iter()
                .filter(|(u, d)| {
                    (u, d) != (&me, &me_dev)
                        && (u, d) != (&from, &from_device)
                        && !self.members().is_some_and(|r| {
                            r.get(u).is_some_and(|m| {
                                m.state.is_in_call() && m.device.as_ref() == Some(d)
                            })
                        })
                })
                .collect();
            for (u, d) in dropped {
                self.send_roster(u, d, now);
            }
        }
        if lacks || welcome {
            self.send_roster(from, from_device, now);
        }
        if ended_now {
            self.on_group_ended(now);
        } else {
            self.expire_stale_invitations(now);
            self.check_group_end(now);
        }
    }

    /// Whether this device's member is in the call by its own roster.
    pub(super) fn own_record_in_call(&self) -> bool {
        self.group().is_some_and(|g| {
            g.roster.get(&self.cfg.user_id).is_some_and(|m| {
                m.state.is_in_call() && m.device.as_ref() == Some(&self.cfg.device_id)
            })
        })
    }

    /// This device is in the group call now (`Connected`).
    pub(super) fn group_connected(&mut self, reason: StateReason, now: Instant) {
        if self.state == CallState::Connected {
            return;
        }
        if let Some(call) = &mut self.call {
            call.accepted = true;
            call.confirmed = true;
            call.deadline = None;
            call.connected_at = Some(now);
        }
        let info = self.call_info();
        self.set_state(CallState::Connected, reason, None, info, None, None);
    }

    /// This device's record moved away from it (another device of its member is in the call
    /// now, or a newer record superseded its join): it is out; it tells nobody, since its record
    /// is not its own to write any more.
    fn on_own_record_lost(&mut self, now: Instant) {
        let me = self.cfg.user_id.clone();
        let elsewhere = self
            .group()
            .and_then(|g| g.roster.get(&me))
            .is_some_and(|m| m.state.is_in_call());
        let id = self.current_id();
        self.cancel_own_invitations(None, now);
        let reason = if elsewhere {
            self.event(CallEvent::AnsweredElsewhere, id, None);
            StateReason::AnsweredElsewhere
        } else {
            self.event(CallEvent::RemoteCancelled, id, None);
            StateReason::RemoteCancelled
        };
        self.finish_group(reason, None, now);
    }

    /// Someone ended the call for everyone: stop this device's invitations and end it here.
    fn on_group_ended(&mut self, now: Instant) {
        let id = self.current_id();
        self.cancel_own_invitations(None, now);
        self.broadcast_roster(None, now);
        self.event(CallEvent::RemoteHangup, id, Some("ended".into()));
        self.finish_group(StateReason::CallEnded, Some("ended".into()), now);
    }

    /// When the call ends for this device by itself (`docs/PROTOCOL.md` §10.5): nobody else is
    /// in it and none of this device's invitations is pending.
    pub(super) fn check_group_end(&mut self, now: Instant) {
        let me = self.cfg.user_id.clone();
        let Some(group) = self.group() else { return };
        if group.joining || !self.own_record_in_call() {
            return;
        }
        let others_in = group.roster.members_in_call().any(|m| m.user != me);
        if others_in || group.pending_invitations() > 0 {
            return;
        }
        let (reason, text) = if group.answered {
            (StateReason::EveryoneLeft, "everyone left")
        } else {
            let outcomes: Vec<MemberState> =
                group.invitations.iter().filter_map(|i| i.outcome).collect();
            if outcomes.contains(&MemberState::Rejected) {
                (StateReason::RemoteRejected, "rejected")
            } else if !outcomes.is_empty() && outcomes.iter().all(|s| *s == MemberState::Busy) {
                (StateReason::RemoteCallBusy, "busy")
            } else {
                (StateReason::CallingTimeout, "no answer")
            }
        };
        let min = group.min_own_seq;
        let dev = self.cfg.device_id.clone();
        self.write_member(
            &me,
            MemberState::Left,
            Some(dev),
            Some(text.into()),
            None,
            min,
        );
        self.finish_group(reason, Some(text.into()), now);
    }

    /// Records, as `timeout`, invitations of other inviters whose lifetime has passed.
    pub(super) fn expire_stale_invitations(&mut self, now: Instant) {
        let wall = self.unix_ms(now);
        let slack = u64::try_from(EXPIRY_SLACK.as_millis()).unwrap_or(u64::MAX);
        let me = self.cfg.user_id.clone();
        let Some(group) = self.group() else { return };
        let stale: Vec<(UserId, u64)> = group
            .others_pending(&me)
            .filter(|m| m.until_ms.is_some_and(|u| u.saturating_add(slack) <= wall))
            .map(|m| {
                let outcome_seq = match m.state {
                    MemberState::Inviting => m.seq + 2,
                    _ => m.seq + 1,
                };
                (m.user.clone(), outcome_seq)
            })
            .collect();
        let mut changed = false;
        for (user, seq) in stale {
            changed |= self.write_member(&user, MemberState::Timeout, None, None, None, seq);
        }
        if changed && self.own_record_in_call() {
            self.broadcast_roster(None, now);
        }
    }

    /// Leaves the group call: cancels this device's pending invitations, writes its record
    /// `left`, tells everyone in the call, and ends the call here. Before anyone answered the
    /// creator's leaving is a cancel of the whole call.
    /// `cause` overrides the state reason (a local failure such as a lost signal ended the call).
    pub(super) fn group_leave(
        &mut self,
        reason: Option<String>,
        cause: Option<StateReason>,
        now: Instant,
    ) -> Result<(), CommandError> {
        let state = self.state;
        let Some(group) = self.group() else {
            return Err(CommandError::InvalidState {
                action: "leave",
                state,
            });
        };
        // Still ringing: leaving is declining.
        if !group.creator && state == CallState::Calling && !group.joining {
            return self.group_reject(reason, cause, now);
        }
        let min = group.min_own_seq;
        let cancelled = group.creator && !group.answered;
        self.cancel_own_invitations(reason.clone(), now);
        let me = self.cfg.user_id.clone();
        let dev = self.cfg.device_id.clone();
        if self.write_member(&me, MemberState::Left, Some(dev), reason.clone(), None, min) {
            self.broadcast_roster(None, now);
        }
        let id = self.current_id();
        let st = if cancelled {
            self.event(CallEvent::LocalCancelled, id, reason.clone());
            StateReason::LocalCancelled
        } else {
            self.event(CallEvent::LocalHangup, id, reason.clone());
            StateReason::LocalHangup
        };
        self.finish_group(cause.unwrap_or(st), reason, now);
        Ok(())
    }

    /// Ends the group call for everyone (a member in the call only).
    pub(super) fn group_end(
        &mut self,
        reason: Option<String>,
        now: Instant,
    ) -> Result<(), CommandError> {
        let state = self.state;
        if !self.own_record_in_call() || self.group().is_some_and(|g| g.joining) {
            return Err(CommandError::InvalidState {
                action: "end the call",
                state,
            });
        }
        self.cancel_own_invitations(reason.clone(), now);
        if let Some(group) = self.group_mut() {
            group.roster.set_ended();
        }
        self.broadcast_roster(None, now);
        let id = self.current_id();
        self.event(CallEvent::LocalHangup, id, reason.clone());
        self.finish_group(StateReason::LocalHangup, reason, now);
        Ok(())
    }

    /// Joins a group call this device was in (or invited to) again, by its id.
    pub(super) fn group_join(&mut self, call_id: CallId, now: Instant) -> Result<(), CommandError> {
        if self.prepared.is_none() {
            return Err(CommandError::NotPrepared);
        }
        if self.call.is_some() {
            return Err(CommandError::Busy(self.state));
        }
        if self.state != CallState::Prepared {
            return Err(CommandError::InvalidState {
                action: "join",
                state: self.state,
            });
        }
        let Some(memo) = self
            .ended
            .iter()
            .rev()
            .find(|e| e.id == call_id)
            .and_then(|e| e.group.clone())
        else {
            return Err(CommandError::InvalidArgument(format!(
                "call {call_id} is not a group call this device knows; only a call it was \
                 invited to or took part in can be joined"
            )));
        };
        let me = self.cfg.user_id.clone();
        if memo.roster.ended() {
            return Err(CommandError::InvalidArgument(format!(
                "call {call_id} was ended for everyone"
            )));
        }
        if !memo.roster.members_in_call().any(|m| m.user != me) {
            return Err(CommandError::InvalidArgument(format!(
                "nobody is in call {call_id} any more, as far as this device knows"
            )));
        }
        let timeout = self
            .prepared
            .as_ref()
            .map_or(super::config::MAX_CALL_TIMEOUT, |p| {
                if p.call_timeout.is_zero() {
                    super::config::MAX_CALL_TIMEOUT
                } else {
                    p.call_timeout
                }
            });
        let mut call = Call::group(
            call_id,
            memo.call_type,
            memo.room_id.clone(),
            me.clone(),
            me.clone(),
            Members::Invited(Vec::new()),
            now,
        );
        call.extension = memo.extension.clone();
        call.deadline = Some(now + timeout);
        let min = memo
            .roster
            .get(&me)
            .map_or(memo.min_own_seq, |r| (r.seq + 1).max(memo.min_own_seq));
        call.group = Some(Box::new(Group {
            roster: memo.roster,
            invitations: Vec::new(),
            other_inviters: Vec::new(),
            min_own_seq: min,
            creator: false,
            joining: true,
            answered: true,
            mesh: Mesh::default(),
        }));
        self.call = Some(call);
        tracing::info!(call_id = %call_id, "joining a group call late");
        self.event(CallEvent::LocalJoined, Some(call_id), None);
        let info = self.call_info();
        self.set_state(
            CallState::Connecting,
            StateReason::LocalAccepted,
            None,
            info,
            None,
            None,
        );
        let dev = self.cfg.device_id.clone();
        self.write_member(&me, MemberState::Accepted, Some(dev), None, None, min);
        self.broadcast_roster(None, now);
        Ok(())
    }

    /// Group timers: invitations' busy graces and deadlines, the wait for a `confirm` or for a
    /// late join's answer, and other inviters' expired invitations.
    pub(super) fn on_group_timeout(&mut self, now: Instant) {
        self.on_invitation_timers(now);
        if self
            .call
            .as_ref()
            .and_then(|c| c.deadline)
            .is_some_and(|d| now >= d)
        {
            self.on_group_deadline(now);
        }
        self.expire_stale_invitations(now);
        self.check_group_end(now);
    }

    /// The call's own deadline in a group call: the invite this device rings for expired, the
    /// inviter's `confirm` never came, or nobody answered a late join.
    fn on_group_deadline(&mut self, now: Instant) {
        let Some(group) = self.group() else { return };
        let id = self.current_id();
        let joining = group.joining;
        let min = group.min_own_seq;
        self.event(CallEvent::RemoteCallingTimeout, id, None);
        let inviter = self.call.as_ref().and_then(|c| match &c.members {
            Members::InvitedBy(i) => Some((i.user.clone(), i.device.clone())),
            Members::Invited(_) => None,
        });
        if joining || self.own_record_in_call() {
            // This device's record says it is in: make sure nobody keeps it there.
            let me = self.cfg.user_id.clone();
            let dev = self.cfg.device_id.clone();
            let why = Some("timeout".to_owned());
            if self.write_member(&me, MemberState::Left, Some(dev), why, None, min) {
                self.broadcast_roster(None, now);
            }
        } else if let (CallState::Connecting, Some((to, dev)), Some(id)) = (self.state, inviter, id)
        {
            // Accepted, never confirmed: whether the inviter took this accept is its record to
            // write; tell it this device gave up (docs/PROTOCOL.md §10.3).
            let lifetime = self.message_lifetime();
            let seq = self.group().map(Group::invited_seq);
            let body = Body::Reject {
                reason: Some("timeout".into()),
                busy: false,
                seq,
            };
            self.send(to, Some(dev), id, body, lifetime, now);
        }
        let reason = if joining {
            StateReason::CallingTimeout
        } else {
            StateReason::RemoteCallingTimeout
        };
        self.finish_group(reason, None, now);
    }

    /// Ends the group call here, remembering its roster for late rosters and a later join.
    pub(super) fn finish_group(&mut self, reason: StateReason, text: Option<String>, now: Instant) {
        // Whatever ends the call here, a device still in it by its record says it left (glare,
        // a lost signal, ...), so nobody keeps it in.
        let still_in = self.own_record_in_call() && !self.group().is_some_and(|g| g.roster.ended());
        if still_in {
            let me = self.cfg.user_id.clone();
            let dev = self.cfg.device_id.clone();
            let min = self.group().map_or(2, |g| g.min_own_seq);
            if self.write_member(&me, MemberState::Left, Some(dev), text.clone(), None, min) {
                self.broadcast_roster(None, now);
            }
        }
        let memo = self.call.as_mut().and_then(|c| {
            let room_id = c.room_id.clone();
            let call_type = c.call_type;
            let extension = c.extension.clone();
            c.group.take().map(|g| GroupMemo {
                roster: g.roster,
                room_id,
                call_type,
                extension,
                min_own_seq: g.min_own_seq,
                withdrawn_seq: None,
            })
        });
        self.finish_call(reason, text, LateReply::Hangup, now);
        if let (Some(memo), Some(last)) = (memo, self.ended.back_mut()) {
            last.group = Some(Box::new(memo));
        }
    }

    /// A message for a group call that ended here: rosters are merged into what this device
    /// remembers and answered when the sender lacks something (a late joiner learns the call
    /// ended or that this member left; two ended devices settle instead of bouncing rosters),
    /// and devices still ringing for one of this device's invitations are stopped.
    pub(super) fn on_late_group(&mut self, env: Envelope, now: Instant) {
        let lifetime = self.message_lifetime();
        let Some(memo) = self
            .ended
            .iter_mut()
            .rev()
            .find(|e| e.id == env.call_id)
            .and_then(|e| e.group.as_deref_mut())
        else {
            return;
        };
        let mut changes = Vec::new();
        let reply = match env.body {
            Body::Members { members, ended } => {
                changes = memo.roster.merge(&members, ended).changes;
                memo.roster.lacks(&members, ended).then(|| Body::Members {
                    members: memo.roster.records().to_vec(),
                    ended: memo.roster.ended(),
                })
            }
            Body::Confirm { .. } => Some(Body::Members {
                members: memo.roster.records().to_vec(),
                ended: memo.roster.ended(),
            }),
            Body::Cancel { seq: Some(seq), .. } => {
                // It may withdraw a new invitation whose invite is still on its way.
                memo.withdrawn_seq = Some(memo.withdrawn_seq.map_or(seq, |w| w.max(seq)));
                None
            }
            Body::Ringing { seq, .. } | Body::Accept { seq, .. } => Some(Body::Cancel {
                reason: Some("left".into()),
                timeout: false,
                elsewhere: None,
                seq,
            }),
            _ => None,
        };
        self.notify_members_of(env.call_id, changes);
        if let Some(body) = reply {
            self.send(
                env.from,
                Some(env.from_device),
                env.call_id,
                body,
                lifetime,
                now,
            );
        }
    }

    /// Whether `user`'s `device` may speak in the group call in progress: a member of its
    /// roster (a roster may introduce its sender), one of this device's invitees, or its inviter.
    pub(super) fn is_from_group(&self, env: &Envelope) -> bool {
        let Some(call) = &self.call else { return false };
        let Some(group) = call.group.as_deref() else {
            return false;
        };
        if call.id != env.call_id {
            return false;
        }
        if let Members::InvitedBy(Inviter { user, device, .. }) = &call.members {
            if user == &env.from && device == &env.from_device {
                return true;
            }
        }
        group.roster.get(&env.from).is_some()
            || group.invitations.iter().any(|i| i.inv.user == env.from)
            || matches!(&env.body, Body::Members { members, .. } if members.iter().any(|m| m.user == env.from))
            // Group media can overtake the roster that names its sender: it is held until
            // then (and only ever delivered for a member in the call, `mesh.rs`).
            || matches!(&env.body, Body::Media { seq: Some(_), to_seq: Some(_), .. })
    }
}
