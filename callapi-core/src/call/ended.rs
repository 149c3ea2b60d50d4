//! Memory of recently ended calls, so that a late message about one is answered and its
//! sender never gets stuck, and so that an invite overtaken by its own cancel never rings.

use std::time::Instant;

use crate::media::MediaRole;
use crate::protocol::{Body, CallId, DeviceId, Elsewhere, Envelope, UserId};

use super::group::GroupMemo;
use super::machine::CallMachine;

/// Most recently ended calls remembered to answer late messages.
const ENDED_MEMORY: usize = 64;

/// How to answer a late message about a call that has ended, so its sender never gets stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LateReply {
    /// Caller side: answer `ringing`/`accept` with a cancel of this kind.
    Cancel {
        timeout: bool,
        elsewhere: Option<Elsewhere>,
    },
    /// Answer with a hangup (the peer thinks the call is up).
    Hangup,
}

/// A call that ended recently.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub id: CallId,
    pub role: MediaRole,
    pub remote_user: UserId,
    /// Caller side: the device that answered, if any.
    pub answered: Option<DeviceId>,
    pub reply: LateReply,
    pub at: Instant,
    /// A group call's roster and settings, for late rosters and a late join.
    pub group: Option<Box<GroupMemo>>,
}

impl CallMachine {
    /// Remembers `ended`, forgetting the oldest beyond [`ENDED_MEMORY`] and those older than
    /// the de-duplication window (a copy of their messages can no longer arrive).
    pub(super) fn remember_ended(&mut self, ended: Ended) {
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

    /// Whether `from` invited us to `call_id` and that call already ended here (a copy of its
    /// invite must not ring again).
    pub(super) fn ended_from(&self, call_id: CallId, from: &UserId) -> bool {
        self.ended
            .iter()
            .any(|e| e.id == call_id && &e.remote_user == from)
    }

    /// A message (not an invite) for a call that is not the current one.
    pub(super) fn on_other_call(&mut self, env: Envelope, now: Instant) {
        if let Some(ended) = self
            .ended
            .iter()
            .rev()
            .find(|e| e.id == env.call_id)
            .cloned()
        {
            match &ended.group {
                Some(_) => self.on_late_group(env, now),
                None => self.on_late(&ended, env, now),
            }
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
                group: None,
            });
        } else {
            tracing::debug!(call_id = %env.call_id, kind = env.body.kind(), "message for an unknown call ignored");
        }
    }

    /// A message about a call that already ended here: answer so the sender does not get stuck.
    fn on_late(&mut self, ended: &Ended, env: Envelope, now: Instant) {
        if env.from != ended.remote_user {
            return;
        }
        let lifetime = self.message_lifetime();
        let body = match (&env.body, ended.role) {
            (Body::Ringing { .. } | Body::Accept { .. }, MediaRole::Caller) => {
                match (&ended.answered, &ended.reply) {
                    (Some(a), _) if a == &env.from_device => Body::Hangup { reason: None },
                    (Some(_), _) => Body::Cancel {
                        reason: None,
                        timeout: false,
                        elsewhere: Some(Elsewhere::Answered),
                        seq: None,
                    },
                    (None, LateReply::Cancel { timeout, elsewhere }) => Body::Cancel {
                        reason: None,
                        timeout: *timeout,
                        elsewhere: *elsewhere,
                        seq: None,
                    },
                    (None, LateReply::Hangup) => Body::Cancel {
                        reason: None,
                        timeout: false,
                        elsewhere: None,
                        seq: None,
                    },
                }
            }
            (Body::Confirm { .. }, MediaRole::Callee) => Body::Hangup { reason: None },
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
}
