//! The offline queue: envelopes kept for devices that are not connected, bounded by each
//! envelope's lifetime (capped), by a count per user and by a count in all.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::protocol::{CallId, DeviceId, MessageId, UserId};

use super::eviction::{evict_for, Eviction};
use super::scope::CallScopes;
use super::{Flushed, Header, Kept, Now};

/// Which devices an entry is still owed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owed {
    /// These devices, each once; the entry goes when the last one got it.
    Devices(Vec<DeviceId>),
    /// Every device that connects within the lifetime, once each, except these (which got
    /// it already); the entry stays until it expires.
    AnyExcept(Vec<DeviceId>),
}

impl Owed {
    fn wants(&self, device: &DeviceId) -> bool {
        match self {
            Owed::Devices(ds) => ds.contains(device),
            Owed::AnyExcept(got) => !got.contains(device),
        }
    }

    /// How many device copies the entry stands for (for counting what is lost).
    fn copies(&self) -> usize {
        match self {
            Owed::Devices(ds) => ds.len(),
            Owed::AnyExcept(_) => 1,
        }
    }

    /// Records delivery to `device`; returns whether the entry is spent.
    fn delivered(&mut self, device: &DeviceId) -> bool {
        match self {
            Owed::Devices(ds) => {
                ds.retain(|d| d != device);
                ds.is_empty()
            }
            Owed::AnyExcept(got) => {
                got.push(device.clone());
                false
            }
        }
    }

    /// Merges the devices a retransmission is for; returns how many were added.
    fn merge(&mut self, other: Owed) -> usize {
        match (self, other) {
            (Owed::Devices(ds), Owed::Devices(more)) => {
                let before = ds.len();
                for d in more {
                    if !ds.contains(&d) {
                        ds.push(d);
                    }
                }
                ds.len() - before
            }
            _ => 0,
        }
    }
}

#[derive(Debug)]
struct Entry<M> {
    msg: M,
    from: UserId,
    from_device: DeviceId,
    id: MessageId,
    call_id: CallId,
    /// The room of an invite.
    invite_room: Option<String>,
    expires_at: Instant,
    owed: Owed,
}

/// The bounds of an [`OfflineQueue`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub(crate) per_user: usize,
    pub(crate) total: usize,
    pub(crate) max_lifetime: Duration,
}

/// Per user, the kept envelopes in the order they were sent.
#[derive(Debug)]
pub(crate) struct OfflineQueue<M> {
    users: HashMap<UserId, VecDeque<Entry<M>>>,
    total: usize,
    pub(crate) limits: QueueLimits,
}

impl<M: Clone> OfflineQueue<M> {
    pub(crate) fn new(limits: QueueLimits) -> Self {
        Self {
            users: HashMap::new(),
            total: 0,
            limits,
        }
    }

    /// Envelopes kept, in all.
    pub(crate) fn len(&self) -> usize {
        self.total
    }

    /// Envelopes kept that `device` of `user` would get if it connected now (expired ones
    /// not yet swept included).
    pub(crate) fn queued_for(&self, user: &UserId, device: &DeviceId) -> usize {
        self.users
            .get(user)
            .map_or(0, |q| q.iter().filter(|e| e.owed.wants(device)).count())
    }

    /// Keeps `msg` for the devices in `owed`. Also returns the device copies of expired
    /// entries removed to make room.
    pub(crate) fn keep(
        &mut self,
        header: &Header<'_>,
        msg: M,
        owed: Owed,
        now: Now,
    ) -> (Kept, usize) {
        let copies = owed.copies();
        let deadline = header.ts.saturating_add(header.lifetime_ms);
        // Expired means strictly after `ts + lifetime_ms` (as `Envelope::is_expired`).
        if now.unix_ms > deadline {
            return (Kept::Expired { copies }, 0);
        }
        let keep = Duration::from_millis(deadline - now.unix_ms).min(self.limits.max_lifetime);
        let limits = self.limits;
        let queue = self.users.entry(header.to.clone()).or_default();
        // A retransmission of an envelope already waiting.
        if let Some(e) = queue.iter_mut().find(|e| {
            e.id == header.id && &e.from == header.from && &e.from_device == header.from_device
        }) {
            let added = e.owed.merge(owed);
            return (Kept::Duplicate { added }, 0);
        }
        let mut expired = 0;
        if queue.len() >= limits.per_user {
            // Expired envelopes make room before anyone's live envelope is given up.
            let before = queue.len();
            queue.retain(|e| {
                let live = now.at <= e.expires_at;
                if !live {
                    expired += e.owed.copies();
                }
                live
            });
            self.total -= before - queue.len();
        }
        let mut evicted = None;
        if queue.len() >= limits.per_user {
            let senders: Vec<&UserId> = queue.iter().map(|e| &e.from).collect();
            match evict_for(&senders, header.from) {
                Eviction::Evict(pos) => {
                    evicted = queue.remove(pos).map(|e| e.owed.copies());
                    self.total -= 1;
                }
                Eviction::RefuseNew => {
                    if queue.is_empty() {
                        self.users.remove(header.to);
                    }
                    return (Kept::Refused { copies }, expired);
                }
            }
        } else if self.total >= limits.total {
            if queue.is_empty() {
                self.users.remove(header.to);
            }
            return (Kept::Refused { copies }, expired);
        }
        queue.push_back(Entry {
            msg,
            from: header.from.clone(),
            from_device: header.from_device.clone(),
            id: header.id,
            call_id: header.call_id,
            invite_room: header.room_id.map(str::to_owned),
            expires_at: now.at + keep,
            owed,
        });
        self.total += 1;
        let kept = Kept::Queued {
            copies,
            evicted: evicted.unwrap_or(0),
        };
        (kept, expired)
    }

    /// Offers `device` of `user` what waits for it, in the order it was sent, and removes
    /// every expired entry of the user on the way. Once `offer` refuses one, the rest stays.
    pub(crate) fn flush(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        scope: Option<&str>,
        calls: &mut CallScopes,
        now: Instant,
        mut offer: impl FnMut(&M) -> bool,
    ) -> Flushed {
        let mut flushed = Flushed::default();
        let Some(queue) = self.users.get_mut(user) else {
            return flushed;
        };
        let mut room_left = true;
        let mut removed = 0usize;
        queue.retain_mut(|e| {
            if now > e.expires_at {
                flushed.expired += e.owed.copies();
                removed += 1;
                return false;
            }
            if !room_left || !e.owed.wants(device) {
                return true;
            }
            if let Some(scope) = scope {
                let room = e.invite_room.as_deref().or_else(|| calls.room(&e.call_id));
                if room != Some(scope) {
                    return true;
                }
            }
            if !offer(&e.msg) {
                room_left = false;
                return true;
            }
            flushed.delivered += 1;
            if let (Some(s), Some(r)) = (scope, e.invite_room.as_deref()) {
                if s == r {
                    calls.track(e.call_id, r, now);
                }
            }
            let spent = e.owed.delivered(device);
            if spent {
                removed += 1;
            }
            !spent
        });
        self.total -= removed;
        if queue.is_empty() {
            self.users.remove(user);
        }
        flushed
    }

    /// Removes expired entries; returns the device copies they stood for.
    pub(crate) fn sweep(&mut self, now: Instant) -> usize {
        let mut lost = 0;
        let mut removed = 0;
        self.users.retain(|_, queue| {
            let before = queue.len();
            queue.retain(|e| {
                let live = now <= e.expires_at;
                if !live {
                    lost += e.owed.copies();
                }
                live
            });
            removed += before - queue.len();
            !queue.is_empty()
        });
        self.total -= removed;
        lost
    }

    /// When the next entry expires (a scan of every entry).
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.users
            .values()
            .flat_map(|q| q.iter().map(|e| e.expires_at))
            .min()
    }
}
