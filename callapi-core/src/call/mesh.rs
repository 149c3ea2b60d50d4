//! A group call's media as a full mesh (`docs/PROTOCOL.md` §10.9): which members' devices this
//! device's media engine connects to, derived from the roster, and the `media` payloads that
//! arrive before their peer is known here (the roster that names it is still on its way).
//!
//! A pair's connection belongs to two memberships: the `seq` of each side's `accepted` record.
//! A member that leaves and joins again writes a new record, so its peers start a new
//! connection, and a payload of the old one (tagged with the old `seq`s) is told apart.

use std::collections::VecDeque;

use serde_json::Value;

use crate::media::MediaPeer;

/// At most this many payloads wait for their peer; beyond, the oldest is dropped (a peer
/// that stays unknown that long is not coming: its offer is retransmitted anyway until acked,
/// and the payloads held are those already acknowledged).
pub(crate) const MAX_HELD: usize = 256;

/// A member's device in the call, with the `seq` of its `accepted` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MeshPeer {
    pub peer: MediaPeer,
    pub seq: u64,
}

/// What to do with a `media` payload of the group call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Arrival {
    /// Hand it to the engine for this peer now.
    Deliver(MediaPeer),
    /// Its peer (or this device's own membership) is not known yet: held for later.
    Held,
    /// It belongs to a connection that is over (an earlier membership of either side).
    Stale,
}

/// The connections the engine was asked to make, as a change of them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct MeshChange {
    /// Peers to disconnect, first.
    pub removed: Vec<MediaPeer>,
    /// Peers to connect, after.
    pub added: Vec<MediaPeer>,
}

#[derive(Debug)]
struct HeldPayload {
    peer: MediaPeer,
    seq: u64,
    to_seq: u64,
    payload: Value,
}

/// The mesh of one group call on this device.
#[derive(Debug, Default)]
pub(crate) struct Mesh {
    /// The `seq` of this device's own `accepted` record while its media is in the call.
    own_seq: Option<u64>,
    /// The peers the engine was asked to connect to, sorted.
    peers: Vec<MeshPeer>,
    held: VecDeque<HeldPayload>,
}

impl Mesh {
    /// This device's own membership the mesh is for (`None`: not in the call's media).
    pub(crate) fn own_seq(&self) -> Option<u64> {
        self.own_seq
    }

    /// The `accepted` seq of a connected peer.
    pub(crate) fn peer_seq(&self, peer: &MediaPeer) -> Option<u64> {
        self.peers.iter().find(|p| &p.peer == peer).map(|p| p.seq)
    }

    /// Connected peers.
    pub(crate) fn peers(&self) -> impl Iterator<Item = &MeshPeer> {
        self.peers.iter()
    }

    /// Brings the mesh to `desired` (the other members' devices in the call) for this device's
    /// membership `own` (`None`: out of the call, so nobody). A peer whose `seq` changed is
    /// removed and added again; a change of `own` reconnects everyone.
    pub(crate) fn sync(&mut self, own: Option<u64>, mut desired: Vec<MeshPeer>) -> MeshChange {
        let mut change = MeshChange::default();
        if own != self.own_seq {
            change.removed.extend(self.peers.drain(..).map(|p| p.peer));
            self.own_seq = own;
        }
        if own.is_none() {
            desired.clear();
        }
        desired.sort_by(|a, b| a.peer.cmp(&b.peer));
        desired.dedup_by(|a, b| a.peer == b.peer);
        for old in &self.peers {
            if !desired.contains(old) {
                change.removed.push(old.peer.clone());
            }
        }
        for new in &desired {
            if !self.peers.contains(new) {
                change.added.push(new.peer.clone());
            }
        }
        self.peers = desired;
        change
    }

    /// Classifies a payload from `peer` tagged with the sender's membership `seq` and the
    /// receiver's `to_seq`; a payload to hold is kept (see [`Mesh::release`]).
    pub(crate) fn arrive(
        &mut self,
        peer: MediaPeer,
        seq: u64,
        to_seq: u64,
        payload: Value,
    ) -> (Arrival, Option<Value>) {
        match self.classify(&peer, seq, to_seq) {
            Arrival::Held => {
                if self.held.len() >= MAX_HELD {
                    self.held.pop_front();
                }
                self.held.push_back(HeldPayload {
                    peer,
                    seq,
                    to_seq,
                    payload,
                });
                (Arrival::Held, None)
            }
            other => (other, Some(payload)),
        }
    }

    fn classify(&self, peer: &MediaPeer, seq: u64, to_seq: u64) -> Arrival {
        if let Some(own) = self.own_seq {
            if to_seq < own {
                return Arrival::Stale;
            }
            if to_seq > own {
                return Arrival::Held;
            }
        } else {
            return Arrival::Held;
        }
        match self.peer_seq(peer) {
            Some(known) if known == seq => Arrival::Deliver(peer.clone()),
            Some(known) if seq < known => Arrival::Stale,
            _ => Arrival::Held,
        }
    }

    /// The held payloads that can go to the engine now, in their order of arrival; those that
    /// turned stale are dropped.
    pub(crate) fn release(&mut self) -> Vec<(MediaPeer, Value)> {
        let mut out = Vec::new();
        let mut keep = VecDeque::new();
        for h in std::mem::take(&mut self.held) {
            match self.classify(&h.peer, h.seq, h.to_seq) {
                Arrival::Deliver(peer) => out.push((peer, h.payload)),
                Arrival::Held => keep.push_back(h),
                Arrival::Stale => {}
            }
        }
        self.held = keep;
        out
    }

    /// Payloads waiting for their peer.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::protocol::{DeviceId, UserId};
    use serde_json::json;

    fn p(user: &str) -> MediaPeer {
        MediaPeer::new(UserId::new(user).unwrap(), DeviceId::new("d1").unwrap())
    }

    fn mp(user: &str, seq: u64) -> MeshPeer {
        MeshPeer { peer: p(user), seq }
    }

    #[test]
    fn connects_the_members_in_the_call_and_drops_those_who_leave() {
        let mut m = Mesh::default();
        let c = m.sync(Some(3), vec![mp("carol", 3), mp("bob", 3)]);
        assert_eq!(c.added, vec![p("bob"), p("carol")]);
        assert!(c.removed.is_empty());
        let c = m.sync(Some(3), vec![mp("bob", 3)]);
        assert_eq!(c.removed, vec![p("carol")]);
        assert!(c.added.is_empty());
        assert_eq!(m.sync(Some(3), vec![mp("bob", 3)]), MeshChange::default());
    }

    #[test]
    fn a_member_who_joined_again_gets_a_new_connection() {
        let mut m = Mesh::default();
        m.sync(Some(1), vec![mp("bob", 3)]);
        let c = m.sync(Some(1), vec![mp("bob", 5)]);
        assert_eq!(c.removed, vec![p("bob")]);
        assert_eq!(c.added, vec![p("bob")]);
    }

    #[test]
    fn out_of_the_call_means_no_peers_and_a_new_membership_reconnects_all() {
        let mut m = Mesh::default();
        m.sync(Some(3), vec![mp("bob", 3), mp("carol", 3)]);
        let c = m.sync(None, vec![mp("bob", 3)]);
        assert_eq!(c.removed, vec![p("bob"), p("carol")]);
        assert!(c.added.is_empty());
        m.sync(Some(3), vec![mp("bob", 3)]);
        let c = m.sync(Some(6), vec![mp("bob", 3)]);
        assert_eq!(c.removed, vec![p("bob")]);
        assert_eq!(c.added, vec![p("bob")]);
    }

    #[test]
    fn payloads_of_the_current_pair_go_through_and_old_ones_are_stale() {
        let mut m = Mesh::default();
        m.sync(Some(4), vec![mp("bob", 3)]);
        assert_eq!(
            m.arrive(p("bob"), 3, 4, json!(1)),
            (Arrival::Deliver(p("bob")), Some(json!(1)))
        );
        // An earlier membership of bob, or one of this device.
        assert_eq!(m.arrive(p("bob"), 2, 4, json!(2)).0, Arrival::Stale);
        assert_eq!(m.arrive(p("bob"), 3, 1, json!(3)).0, Arrival::Stale);
        assert_eq!(m.held(), 0);
    }

    #[test]
    fn a_payload_ahead_of_the_roster_waits_for_it_in_order() {
        let mut m = Mesh::default();
        // Not in the call yet (the confirm is still on its way): held.
        assert_eq!(m.arrive(p("bob"), 3, 3, json!("offer")).0, Arrival::Held);
        assert_eq!(m.arrive(p("bob"), 3, 3, json!("cand")).0, Arrival::Held);
        // carol joined by bob's roster but not by this device's yet.
        assert_eq!(m.arrive(p("carol"), 5, 3, json!("c")).0, Arrival::Held);
        m.sync(Some(3), vec![mp("bob", 3)]);
        assert_eq!(
            m.release(),
            vec![(p("bob"), json!("offer")), (p("bob"), json!("cand"))]
        );
        assert_eq!(m.held(), 1);
        m.sync(Some(3), vec![mp("bob", 3), mp("carol", 5)]);
        assert_eq!(m.release(), vec![(p("carol"), json!("c"))]);
        assert_eq!(m.held(), 0);
    }

    #[test]
    fn held_payloads_that_turn_stale_are_dropped_and_the_hold_is_bounded() {
        let mut m = Mesh::default();
        m.arrive(p("bob"), 3, 3, json!(0));
        // By the time this device is in, bob rejoined (seq 7): the held offer is for nothing.
        m.sync(Some(3), vec![mp("bob", 7)]);
        assert!(m.release().is_empty());
        assert_eq!(m.held(), 0);
        for i in 0..MAX_HELD + 10 {
            m.arrive(p("dave"), 1, 3, json!(i));
        }
        assert_eq!(m.held(), MAX_HELD);
        m.sync(Some(3), vec![mp("dave", 1)]);
        let out = m.release();
        assert_eq!(out.len(), MAX_HELD);
        assert_eq!(out[0].1, json!(10), "the oldest were dropped");
    }

    #[test]
    fn the_lower_user_and_device_offers() {
        let a = MediaPeer::new(UserId::new("alice").unwrap(), DeviceId::new("z").unwrap());
        let b = MediaPeer::new(UserId::new("bob").unwrap(), DeviceId::new("a").unwrap());
        let a2 = MediaPeer::new(UserId::new("alice").unwrap(), DeviceId::new("zz").unwrap());
        assert!(MediaPeer::offers_to(&a, &b));
        assert!(!MediaPeer::offers_to(&b, &a));
        assert!(MediaPeer::offers_to(&a, &a2));
    }
}
