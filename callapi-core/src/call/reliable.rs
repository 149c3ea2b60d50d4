//! End-to-end reliable delivery over a best-effort pipe (`docs/PROTOCOL.md` §7): retransmission with
//! exponential backoff until acknowledged or expired, and de-duplication of received envelopes.
//!
//! Pure data structure: no clock reads, no I/O.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::protocol::{DeviceId, Envelope, MessageId, UserId};

use super::config::Reliability;

#[derive(Debug)]
struct Pending {
    envelope: Envelope,
    next_at: Instant,
    interval: Duration,
    expires_at: Instant,
}

/// What [`Reliable::poll`] found due.
#[derive(Debug, Default)]
pub(crate) struct Due {
    /// Envelopes to send again.
    pub retransmit: Vec<Envelope>,
    /// Envelopes whose lifetime ended without an ack.
    pub expired: Vec<Envelope>,
}

/// What identifies a received envelope for de-duplication: its id and a fingerprint of its
/// sender (`from`, `from_device`). A fixed-size copyable key, so remembering an envelope for the
/// de-duplication window costs no allocation and no copy of the sender's ids. Two different
/// senders collide only if their fingerprints match *and* they chose the same random 128-bit
/// message id.
type SeenKey = (MessageId, u64);

/// A 64-bit fingerprint of a sender (SipHash with fixed keys: the same on every run).
fn sender_fingerprint(user: &UserId, device: &DeviceId) -> u64 {
    use std::hash::{Hash, Hasher};
    #[allow(deprecated)] // SipHasher is deprecated only in favour of the randomly keyed one
    let mut h = std::hash::SipHasher::new();
    user.as_str().hash(&mut h);
    device.as_str().hash(&mut h);
    h.finish()
}

/// Retransmission queue and duplicate filter of one device.
#[derive(Debug)]
pub(crate) struct Reliable {
    cfg: Reliability,
    pending: Vec<Pending>,
    seen: HashSet<SeenKey>,
    seen_order: VecDeque<(SeenKey, Instant)>,
}

impl Reliable {
    pub(crate) fn new(cfg: Reliability) -> Self {
        Self {
            cfg,
            pending: Vec::new(),
            seen: HashSet::new(),
            seen_order: VecDeque::new(),
        }
    }

    /// Tracks an envelope that has just been sent for the first time; `lifetime` bounds its
    /// retransmission.
    pub(crate) fn track(&mut self, envelope: Envelope, now: Instant, lifetime: Duration) {
        self.pending.push(Pending {
            envelope,
            next_at: now + self.cfg.initial_rto,
            interval: self.cfg.initial_rto,
            expires_at: now + lifetime,
        });
    }

    /// An ack for `ack_id` arrived from `from`/`from_device`. Returns the acknowledged envelope.
    ///
    /// A user-addressed envelope is satisfied by the first ack from any device of its user; a
    /// device-addressed one only by that device.
    pub(crate) fn on_ack(
        &mut self,
        from: &UserId,
        from_device: &DeviceId,
        ack_id: MessageId,
    ) -> Option<Envelope> {
        let idx = self.pending.iter().position(|p| {
            p.envelope.id == ack_id
                && &p.envelope.to == from
                && p.envelope
                    .to_device
                    .as_ref()
                    .is_none_or(|d| d == from_device)
        })?;
        let acked = self.pending.swap_remove(idx).envelope;
        if self.pending.is_empty() {
            // Nothing in flight: keep no burst-sized buffer (an envelope is ~200 bytes).
            self.pending.shrink_to_fit();
        }
        Some(acked)
    }

    /// Records a received envelope; returns `true` if it was seen before (a duplicate).
    pub(crate) fn is_duplicate(&mut self, env: &Envelope, now: Instant) -> bool {
        self.expire_seen(now);
        let key = (env.id, sender_fingerprint(&env.from, &env.from_device));
        if !self.seen.insert(key) {
            return true;
        }
        self.seen_order.push_back((key, now));
        false
    }

    fn expire_seen(&mut self, now: Instant) {
        while let Some((_, at)) = self.seen_order.front() {
            if now.saturating_duration_since(*at) < self.cfg.dedupe_window {
                break;
            }
            if let Some((key, _)) = self.seen_order.pop_front() {
                self.seen.remove(&key);
            }
        }
    }

    /// Collects retransmissions and expiries due at `now`.
    pub(crate) fn poll(&mut self, now: Instant) -> Due {
        let mut due = Due::default();
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            if now >= p.expires_at {
                due.expired.push(self.pending.swap_remove(i).envelope);
                continue;
            }
            if now >= p.next_at {
                p.interval = (p.interval * 2).min(self.cfg.max_rto);
                p.next_at = now + p.interval;
                if p.next_at > p.expires_at {
                    p.next_at = p.expires_at;
                }
                due.retransmit.push(p.envelope.clone());
            }
            i += 1;
        }
        due
    }

    /// Sends everything pending again now and restarts its backoff (after a reconnect).
    pub(crate) fn flush_all(&mut self, now: Instant) -> Vec<Envelope> {
        self.pending
            .iter_mut()
            .map(|p| {
                p.interval = self.cfg.initial_rto;
                p.next_at = now + p.interval;
                p.envelope.clone()
            })
            .collect()
    }

    /// Stops retransmitting everything that `keep` rejects (for example a dropped call's messages).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Envelope) -> bool) {
        self.pending.retain(|p| keep(&p.envelope));
    }

    /// Forgets the ids of received envelopes.
    pub(crate) fn clear_seen(&mut self) {
        self.seen.clear();
        self.seen_order.clear();
    }

    /// The next instant something is due.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.pending
            .iter()
            .map(|p| p.next_at.min(p.expires_at))
            .min()
    }

    /// Number of envelopes awaiting an ack.
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::protocol::{Body, CallId, PROTOCOL_VERSION};

    fn env(id: u8) -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            id: MessageId::from_random_bytes([id; 16]),
            ts: 0,
            from: UserId::new("a").unwrap(),
            from_device: DeviceId::new("a1").unwrap(),
            to: UserId::new("b").unwrap(),
            to_device: None,
            call_id: CallId::from_random_bytes([9; 16]),
            lifetime_ms: 15_000,
            body: Body::Ringing {
                group: false,
                seq: None,
            },
        }
    }

    #[test]
    fn backoff_doubles_to_cap_until_lifetime() {
        let t0 = Instant::now();
        let mut r = Reliable::new(Reliability::default());
        r.track(env(1), t0, Duration::from_secs(15));
        let mut sends = Vec::new();
        let mut expired_at = None;
        while let Some(t) = r.next_timeout() {
            let due = r.poll(t);
            for _ in due.retransmit {
                sends.push((t - t0).as_millis());
            }
            if !due.expired.is_empty() {
                expired_at = Some((t - t0).as_millis());
            }
        }
        assert_eq!(sends, vec![500, 1500, 3500, 7500, 11500]);
        assert_eq!(expired_at, Some(15_000));
    }

    #[test]
    fn ack_from_wrong_device_does_not_count_for_device_addressed() {
        let t0 = Instant::now();
        let mut r = Reliable::new(Reliability::default());
        let mut e = env(1);
        e.to_device = Some(DeviceId::new("b1").unwrap());
        r.track(e.clone(), t0, Duration::from_secs(15));
        let b = UserId::new("b").unwrap();
        assert!(r.on_ack(&b, &DeviceId::new("b2").unwrap(), e.id).is_none());
        assert!(r.on_ack(&b, &DeviceId::new("b1").unwrap(), e.id).is_some());
        assert_eq!(r.pending_len(), 0);
    }

    #[test]
    fn duplicates_are_detected_within_window_only() {
        let t0 = Instant::now();
        let mut r = Reliable::new(Reliability::default());
        let e = env(3);
        assert!(!r.is_duplicate(&e, t0));
        assert!(r.is_duplicate(&e, t0 + Duration::from_secs(599)));
        assert!(!r.is_duplicate(&e, t0 + Duration::from_secs(601)));
    }
}
