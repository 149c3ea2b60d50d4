//! Timing diagnostics: CallAPI's cost map as typed data.

use std::time::{Duration, Instant};

/// Time from the call's start (caller: `call()`; callee: invite received) to each milestone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallTimings {
    /// The callee's device is ringing (caller side only).
    pub remote_user_recv_call: Option<Duration>,
    /// Accepted (locally on the callee, remotely on the caller).
    pub accept: Option<Duration>,
    /// The local side joined the media.
    pub local_joined: Option<Duration>,
    /// The remote side joined the media.
    pub remote_joined: Option<Duration>,
    /// The first local frame went out.
    pub first_local_frame_published: Option<Duration>,
    /// The first remote frame arrived.
    pub first_remote_frame: Option<Duration>,
    /// The call reached `Connected`.
    pub connected: Option<Duration>,
}

/// One milestone of [`CallTimings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Milestone {
    /// See [`CallTimings::remote_user_recv_call`].
    RemoteUserRecvCall,
    /// See [`CallTimings::accept`].
    Accept,
    /// See [`CallTimings::local_joined`].
    LocalJoined,
    /// See [`CallTimings::remote_joined`].
    RemoteJoined,
    /// See [`CallTimings::first_local_frame_published`].
    FirstLocalFramePublished,
    /// See [`CallTimings::first_remote_frame`].
    FirstRemoteFrame,
    /// See [`CallTimings::connected`].
    Connected,
}

impl CallTimings {
    /// Records `milestone` at `now` relative to `start`; the first record wins.
    pub fn mark(&mut self, milestone: Milestone, start: Instant, now: Instant) {
        let slot = match milestone {
            Milestone::RemoteUserRecvCall => &mut self.remote_user_recv_call,
            Milestone::Accept => &mut self.accept,
            Milestone::LocalJoined => &mut self.local_joined,
            Milestone::RemoteJoined => &mut self.remote_joined,
            Milestone::FirstLocalFramePublished => &mut self.first_local_frame_published,
            Milestone::FirstRemoteFrame => &mut self.first_remote_frame,
            Milestone::Connected => &mut self.connected,
        };
        if slot.is_none() {
            *slot = Some(now.saturating_duration_since(start));
        }
    }

    /// Milestones and their times in milliseconds, in call order (for tables and tracing).
    pub fn as_millis(&self) -> [(&'static str, Option<u128>); 7] {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis());
        [
            ("remote_user_recv_call", ms(self.remote_user_recv_call)),
            ("accept", ms(self.accept)),
            ("local_joined", ms(self.local_joined)),
            ("remote_joined", ms(self.remote_joined)),
            (
                "first_local_frame_published",
                ms(self.first_local_frame_published),
            ),
            ("first_remote_frame", ms(self.first_remote_frame)),
            ("connected", ms(self.connected)),
        ]
    }
}
