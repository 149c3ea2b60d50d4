//! Who a call is with: on the caller side the members this device invited (one [`Invitation`]
//! each), on the callee side the member who invited it ([`Inviter`]), and what each remote
//! device has said. A 1:1 call has exactly one member; group calls (a later step) add more
//! invitations to the same table.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::media::MediaRole;
use crate::protocol::{DeviceId, UserId};

/// Shortest wait for other devices to ring after a busy reply.
const BUSY_GRACE_MIN: Duration = Duration::from_millis(250);
/// Longest wait for other devices to ring after a busy reply.
const BUSY_GRACE_MAX: Duration = Duration::from_secs(2);

/// What a remote device has told us about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceStatus {
    /// Sent `ringing`.
    Ringing,
    /// Declined because it is in another call.
    Busy,
    /// Declined.
    Rejected,
    /// Answered (the winning device).
    Accepted,
    /// Told to stop (answered or rejected elsewhere).
    Cancelled,
}

/// One remote device and what it last told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeviceEntry {
    pub device: DeviceId,
    pub status: DeviceStatus,
}

/// The devices of one member that took part, in the order they were first heard from (that
/// order is the order cancels go out in, so it must stay stable).
#[derive(Debug, Clone, Default)]
pub(crate) struct DeviceTable {
    entries: Vec<DeviceEntry>,
}

impl DeviceTable {
    pub(crate) fn status(&self, device: &DeviceId) -> Option<DeviceStatus> {
        self.entries
            .iter()
            .find(|e| &e.device == device)
            .map(|e| e.status)
    }

    pub(crate) fn set_status(&mut self, device: &DeviceId, status: DeviceStatus) {
        match self.entries.iter_mut().find(|e| &e.device == device) {
            Some(entry) => entry.status = status,
            None => self.entries.push(DeviceEntry {
                device: device.clone(),
                status,
            }),
        }
    }

    /// Devices that are ringing, except `but`.
    pub(crate) fn ringing_except(&self, but: Option<&DeviceId>) -> Vec<DeviceId> {
        self.entries
            .iter()
            .filter(|e| e.status == DeviceStatus::Ringing && Some(&e.device) != but)
            .map(|e| e.device.clone())
            .collect()
    }
}

/// Caller side: one member this device invited, with the replies of that member's devices.
#[derive(Debug)]
pub(crate) struct Invitation {
    pub user: UserId,
    pub devices: DeviceTable,
    /// The device that answered, once one accepted: the call is with it.
    pub answered: Option<DeviceId>,
    /// When the invite went out (the busy grace is measured from it).
    pub sent_at: Instant,
    /// An `ack` for the invite arrived.
    pub acked: bool,
    /// Some device of the member rang.
    pub ringing_seen: bool,
    /// A device answered busy; unless another rings by then, the member is busy.
    pub busy_until: Option<Instant>,
    /// The busy device's reason.
    pub busy_reason: Option<String>,
    /// The device media payloads go to (first ringing device, then the answering one).
    pub media_peer: Option<DeviceId>,
    /// Media payloads produced before a media peer was known.
    pub media_outbox: Vec<Value>,
}

impl Invitation {
    pub(crate) fn new(user: UserId, sent_at: Instant) -> Self {
        Self {
            user,
            devices: DeviceTable::default(),
            answered: None,
            sent_at,
            acked: false,
            ringing_seen: false,
            busy_until: None,
            busy_reason: None,
            media_peer: None,
            media_outbox: Vec::new(),
        }
    }

    /// Device `dev` rang. A device already heard from keeps its status (a late `ringing` does
    /// not undo a busy or an accept). Answers whether this is the member's first ring.
    pub(crate) fn ring(&mut self, dev: &DeviceId) -> bool {
        if self.devices.status(dev).is_none() {
            self.devices.set_status(dev, DeviceStatus::Ringing);
        }
        !std::mem::replace(&mut self.ringing_seen, true)
    }

    /// Device `dev` answered busy. Other devices of the member may still be about to ring:
    /// their replies travel about as long as this one did, so the grace lasts that long
    /// (bounded) before concluding that the member is busy. A running grace is not extended.
    pub(crate) fn busy(&mut self, dev: &DeviceId, reason: Option<String>, now: Instant) {
        self.devices.set_status(dev, DeviceStatus::Busy);
        if self.busy_until.is_none() {
            let rtt = now.saturating_duration_since(self.sent_at);
            self.busy_until = Some(now + rtt.clamp(BUSY_GRACE_MIN, BUSY_GRACE_MAX));
            self.busy_reason = reason;
        }
    }

    /// Ends the busy grace, answering the busy device's reason.
    pub(crate) fn end_busy_grace(&mut self) -> Option<String> {
        self.busy_until = None;
        self.busy_reason.take()
    }

    /// Device `dev` declined: answers the other ringing devices, which must be told it was
    /// rejected elsewhere.
    pub(crate) fn reject(&mut self, dev: &DeviceId) -> Vec<DeviceId> {
        self.devices.set_status(dev, DeviceStatus::Rejected);
        self.devices.ringing_except(Some(dev))
    }

    /// Device `dev` answered first: the call is with it from now on. Answers the other ringing
    /// devices, which must be told it was answered elsewhere.
    pub(crate) fn answer(&mut self, dev: &DeviceId) -> Vec<DeviceId> {
        self.answered = Some(dev.clone());
        self.devices.set_status(dev, DeviceStatus::Accepted);
        self.devices.ringing_except(Some(dev))
    }

    /// The devices that may be alerting and must be told when the call stops: the answering
    /// device once there is one, else every ringing device (none: nobody rang yet).
    pub(crate) fn alerting(&self) -> Vec<DeviceId> {
        match &self.answered {
            Some(d) => vec![d.clone()],
            None => self.devices.ringing_except(None),
        }
    }

    /// When this invitation next needs the machine: the end of its busy grace.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.busy_until
    }
}

/// Callee side: the member who invited this device.
#[derive(Debug)]
pub(crate) struct Inviter {
    pub user: UserId,
    /// The inviting device: the call is with it, and media payloads go to it.
    pub device: DeviceId,
    /// When the invite's lifetime ends.
    pub expiry: Instant,
    /// Media payloads received before joining.
    pub media_inbox: Vec<Value>,
}

impl Inviter {
    pub(crate) fn new(user: UserId, device: DeviceId, expiry: Instant) -> Self {
        Self {
            user,
            device,
            expiry,
            media_inbox: Vec::new(),
        }
    }

    /// How long to wait for the caller's `confirm` after accepting at `now`: the caller may
    /// still act on the invite until it expires, plus `grace` for the confirm to arrive.
    pub(crate) fn confirm_deadline(&self, now: Instant, grace: Duration) -> Instant {
        self.expiry.max(now) + grace
    }
}

/// The member table of a call.
#[derive(Debug)]
pub(crate) enum Members {
    /// Caller side: the members this device invited (a 1:1 call has exactly one).
    Invited(Vec<Invitation>),
    /// Callee side: the member whose invitation this is.
    InvitedBy(Inviter),
}

impl Members {
    pub(crate) fn role(&self) -> MediaRole {
        match self {
            Self::Invited(_) => MediaRole::Caller,
            Self::InvitedBy(_) => MediaRole::Callee,
        }
    }

    /// The device the call is with (1:1): callee side, the inviting device; caller side, the
    /// answering device once one accepted.
    pub(crate) fn peer_device(&self) -> Option<&DeviceId> {
        match self {
            Self::Invited(invitations) => invitations.first().and_then(|i| i.answered.as_ref()),
            Self::InvitedBy(inviter) => Some(&inviter.device),
        }
    }

    /// Whether an envelope from `user`'s `device` concerns this call: on the caller side any
    /// device of an invited member (they all got the invite), on the callee side only the
    /// inviting device.
    pub(crate) fn is_from(&self, user: &UserId, device: &DeviceId) -> bool {
        match self {
            Self::Invited(invitations) => invitations.iter().any(|i| &i.user == user),
            Self::InvitedBy(inviter) => &inviter.user == user && &inviter.device == device,
        }
    }

    /// Caller side: the invitations (none on the callee side).
    pub(crate) fn invitations(&self) -> &[Invitation] {
        match self {
            Self::Invited(invitations) => invitations,
            Self::InvitedBy(_) => &[],
        }
    }

    /// Caller side: the invitations (none on the callee side).
    pub(crate) fn invitations_mut(&mut self) -> &mut [Invitation] {
        match self {
            Self::Invited(invitations) => invitations,
            Self::InvitedBy(_) => &mut [],
        }
    }

    /// Caller side: the invitation of `user`.
    pub(crate) fn invitation_mut(&mut self, user: &UserId) -> Option<&mut Invitation> {
        self.invitations_mut().iter_mut().find(|i| &i.user == user)
    }

    /// Callee side: who invited this device.
    pub(crate) fn inviter_mut(&mut self) -> Option<&mut Inviter> {
        match self {
            Self::Invited(_) => None,
            Self::InvitedBy(inviter) => Some(inviter),
        }
    }

    /// The earliest timer of any member.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.invitations()
            .iter()
            .filter_map(Invitation::next_timeout)
            .min()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn dev(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    #[test]
    fn device_table_records_and_updates_in_first_heard_order() {
        let mut t = DeviceTable::default();
        assert_eq!(t.status(&dev("a")), None);
        t.set_status(&dev("a"), DeviceStatus::Ringing);
        t.set_status(&dev("b"), DeviceStatus::Ringing);
        t.set_status(&dev("a"), DeviceStatus::Busy);
        assert_eq!(t.status(&dev("a")), Some(DeviceStatus::Busy));
        assert_eq!(t.status(&dev("b")), Some(DeviceStatus::Ringing));
        t.set_status(&dev("c"), DeviceStatus::Ringing);
        t.set_status(&dev("a"), DeviceStatus::Ringing);
        assert_eq!(t.ringing_except(None), vec![dev("a"), dev("b"), dev("c")]);
        assert_eq!(t.ringing_except(Some(&dev("b"))), vec![dev("a"), dev("c")]);
    }

    #[test]
    fn ringing_keeps_an_earlier_status_and_reports_the_first_ring_once() {
        let mut inv = Invitation::new(user("bob"), Instant::now());
        assert!(inv.ring(&dev("a")));
        assert!(!inv.ring(&dev("b")));
        inv.busy(&dev("c"), None, inv.sent_at);
        assert!(!inv.ring(&dev("c")));
        assert_eq!(inv.devices.status(&dev("c")), Some(DeviceStatus::Busy));
        assert_eq!(inv.alerting(), vec![dev("a"), dev("b")]);
    }

    #[test]
    fn answering_picks_the_peer_and_names_the_devices_to_cancel() {
        let mut inv = Invitation::new(user("bob"), Instant::now());
        inv.ring(&dev("a"));
        inv.ring(&dev("b"));
        inv.ring(&dev("c"));
        assert_eq!(inv.answer(&dev("b")), vec![dev("a"), dev("c")]);
        assert_eq!(inv.answered, Some(dev("b")));
        assert_eq!(inv.devices.status(&dev("b")), Some(DeviceStatus::Accepted));
        // From now on only the answering device is told when the call stops.
        assert_eq!(inv.alerting(), vec![dev("b")]);
        let members = Members::Invited(vec![inv]);
        assert_eq!(members.peer_device(), Some(&dev("b")));
        assert_eq!(members.role(), MediaRole::Caller);
    }

    #[test]
    fn rejecting_names_the_other_ringing_devices() {
        let mut inv = Invitation::new(user("bob"), Instant::now());
        inv.ring(&dev("a"));
        inv.ring(&dev("b"));
        assert_eq!(inv.reject(&dev("a")), vec![dev("b")]);
        assert_eq!(inv.devices.status(&dev("a")), Some(DeviceStatus::Rejected));
        assert_eq!(inv.answered, None);
    }

    #[test]
    fn busy_grace_is_bounded_and_not_extended() {
        let t0 = Instant::now();
        let mut inv = Invitation::new(user("bob"), t0);
        assert_eq!(inv.next_timeout(), None);
        // A fast reply still waits the minimum grace.
        inv.busy(
            &dev("a"),
            Some("in a call".into()),
            t0 + Duration::from_millis(10),
        );
        assert_eq!(
            inv.next_timeout(),
            Some(t0 + Duration::from_millis(10) + BUSY_GRACE_MIN)
        );
        // A second busy device does not move the grace or its reason.
        inv.busy(
            &dev("b"),
            Some("other".into()),
            t0 + Duration::from_millis(100),
        );
        assert_eq!(
            inv.next_timeout(),
            Some(t0 + Duration::from_millis(10) + BUSY_GRACE_MIN)
        );
        assert_eq!(inv.end_busy_grace(), Some("in a call".into()));
        assert_eq!(inv.next_timeout(), None);
        // A slow reply waits as long as it took, up to the maximum.
        inv.busy(&dev("c"), None, t0 + Duration::from_millis(700));
        assert_eq!(inv.next_timeout(), Some(t0 + Duration::from_millis(1400)));
        inv.end_busy_grace();
        inv.busy(&dev("c"), None, t0 + Duration::from_secs(10));
        assert_eq!(
            inv.next_timeout(),
            Some(t0 + Duration::from_secs(10) + BUSY_GRACE_MAX)
        );
    }

    #[test]
    fn member_table_timers_and_lookups() {
        let t0 = Instant::now();
        let mut a = Invitation::new(user("bob"), t0);
        let b = Invitation::new(user("carol"), t0);
        a.busy(&dev("x"), None, t0);
        let mut members = Members::Invited(vec![a, b]);
        assert_eq!(members.next_timeout(), Some(t0 + BUSY_GRACE_MIN));
        assert!(members.is_from(&user("carol"), &dev("any")));
        assert!(!members.is_from(&user("dave"), &dev("any")));
        assert!(members.invitation_mut(&user("carol")).is_some());
        assert!(members.inviter_mut().is_none());
        // No device answered yet: no peer.
        assert_eq!(members.peer_device(), None);
    }

    #[test]
    fn inviter_matches_only_its_device_and_bounds_the_confirm_wait() {
        let t0 = Instant::now();
        let expiry = t0 + Duration::from_secs(30);
        let inviter = Inviter::new(user("alice"), dev("a1"), expiry);
        let grace = Duration::from_secs(5);
        // Accepting before the invite expires waits until the expiry, plus the grace.
        assert_eq!(inviter.confirm_deadline(t0, grace), expiry + grace);
        // Accepting after it (a slow app) still waits the grace.
        let late = t0 + Duration::from_secs(40);
        assert_eq!(inviter.confirm_deadline(late, grace), late + grace);
        let mut members = Members::InvitedBy(inviter);
        assert_eq!(members.role(), MediaRole::Callee);
        assert_eq!(members.peer_device(), Some(&dev("a1")));
        assert!(members.is_from(&user("alice"), &dev("a1")));
        assert!(!members.is_from(&user("alice"), &dev("a2")));
        assert!(members.invitations().is_empty());
        assert!(members.invitation_mut(&user("alice")).is_none());
        assert_eq!(members.next_timeout(), None);
        assert!(members.inviter_mut().is_some());
    }
}
