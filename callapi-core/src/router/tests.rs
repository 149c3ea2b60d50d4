#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use super::*;

fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn dev(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

const T0_MS: u64 = 1_700_000_000_000;

/// A clock starting at `T0_MS`.
#[derive(Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn new() -> Self {
        Self(Instant::now())
    }
    fn at(self, ms: u64) -> Now {
        Now {
            at: self.0 + Duration::from_millis(ms),
            unix_ms: T0_MS + ms,
        }
    }
}

/// An owned envelope header for tests.
struct Env {
    id: MessageId,
    ts: u64,
    from: UserId,
    from_device: DeviceId,
    to: UserId,
    to_device: Option<DeviceId>,
    call_id: CallId,
    lifetime_ms: u64,
    room: Option<String>,
}

impl Env {
    fn new(from: &str, to: &str) -> Self {
        Self {
            id: MessageId::new_v4(),
            ts: T0_MS,
            from: user(from),
            from_device: dev(&format!("{from}-1")),
            to: user(to),
            to_device: None,
            call_id: CallId::new_v4(),
            lifetime_ms: 15_000,
            room: None,
        }
    }
    fn for_device(mut self, d: &str) -> Self {
        self.to_device = Some(dev(d));
        self
    }
    fn invite(mut self, room: &str) -> Self {
        self.room = Some(room.into());
        self
    }
    fn lifetime(mut self, ms: u64) -> Self {
        self.lifetime_ms = ms;
        self
    }
    fn header(&self) -> Header<'_> {
        Header {
            id: self.id,
            ts: self.ts,
            from: &self.from,
            from_device: &self.from_device,
            to: &self.to,
            to_device: self.to_device.as_ref(),
            call_id: self.call_id,
            lifetime_ms: self.lifetime_ms,
            invite: self.room.is_some(),
            room_id: self.room.as_deref(),
        }
    }
}

type R = Router<u32, u32>;

fn router() -> R {
    Router::new(RouterConfig::default())
}

fn registered() -> R {
    Router::new(RouterConfig {
        devices: DeviceMemory::Registered,
        ..RouterConfig::default()
    })
}

/// Routes `env` carrying message `m`; returns (connections delivered to, kept, pushed).
fn route(r: &mut R, env: &Env, m: u32, now: Now) -> (Vec<u32>, Kept, bool) {
    let routed = r.route(None, &env.header(), m, now).unwrap();
    assert_eq!(routed.message, m);
    (
        routed.deliver.iter().map(|c| **c).collect(),
        routed.kept,
        routed.push.is_some(),
    )
}

fn flush_all(r: &mut R, u: &str, d: &str, now: Now) -> Vec<u32> {
    let mut got = Vec::new();
    r.flush(&user(u), &dev(d), now, |m| {
        got.push(*m);
        true
    });
    got
}

#[test]
fn fans_out_to_every_connected_device_of_the_user() {
    let c = Clock::new();
    let mut r = router();
    r.connect(&user("bob"), &dev("b1"), 1, None);
    r.connect(&user("bob"), &dev("b2"), 2, None);
    r.connect(&user("carol"), &dev("c1"), 3, None);
    let (to, kept, push) = route(&mut r, &Env::new("alice", "bob"), 7, c.at(0));
    assert_eq!(to, vec![1, 2]);
    assert_eq!(kept, Kept::NotNeeded);
    assert!(!push);
    assert_eq!(
        r.counts(),
        RouterCounts {
            devices: 3,
            users: 2,
            queued: 0
        }
    );
}

#[test]
fn to_device_reaches_only_that_device() {
    let c = Clock::new();
    let mut r = router();
    r.connect(&user("bob"), &dev("b1"), 1, None);
    r.connect(&user("bob"), &dev("b2"), 2, None);
    let (to, kept, _) = route(
        &mut r,
        &Env::new("alice", "bob").for_device("b2"),
        7,
        c.at(0),
    );
    assert_eq!((to, kept), (vec![2], Kept::NotNeeded));
}

#[test]
fn to_an_unconnected_device_of_an_online_user_is_kept_for_that_device() {
    let c = Clock::new();
    let mut r = router();
    r.connect(&user("bob"), &dev("b1"), 1, None);
    let (to, kept, push) = route(
        &mut r,
        &Env::new("alice", "bob").for_device("b2"),
        7,
        c.at(0),
    );
    assert!(to.is_empty());
    assert!(matches!(kept, Kept::Queued { copies: 1, .. }));
    // The user has a device connected: no push.
    assert!(!push);
    assert_eq!(r.queued_for(&user("bob"), &dev("b1")), 0);
    r.connect(&user("bob"), &dev("b2"), 2, None);
    assert_eq!(flush_all(&mut r, "bob", "b2", c.at(10)), vec![7]);
    assert_eq!(
        r.counts().queued,
        0,
        "a device-addressed envelope goes once delivered"
    );
}

#[test]
fn user_addressed_envelopes_go_to_each_device_that_connects_within_the_lifetime_in_order() {
    let c = Clock::new();
    let mut r = router();
    for m in 1..=3 {
        route(&mut r, &Env::new("alice", "bob"), m, c.at(0));
    }
    r.connect(&user("bob"), &dev("b1"), 1, None);
    assert_eq!(flush_all(&mut r, "bob", "b1", c.at(1_000)), vec![1, 2, 3]);
    // Once per device.
    assert!(flush_all(&mut r, "bob", "b1", c.at(1_000)).is_empty());
    r.connect(&user("bob"), &dev("b2"), 2, None);
    assert_eq!(flush_all(&mut r, "bob", "b2", c.at(2_000)), vec![1, 2, 3]);
    // They stay for later devices until their lifetime ends.
    assert_eq!(r.counts().queued, 3);
    assert_eq!(r.sweep(c.at(15_001).at), 3);
    assert_eq!(r.counts().queued, 0);
}

#[test]
fn expired_envelopes_are_never_kept_nor_delivered() {
    let c = Clock::new();
    let mut r = router();
    // Already expired when routed: not kept.
    let old = Env::new("alice", "bob").lifetime(1_000);
    let (_, kept, _) = route(&mut r, &old, 1, c.at(1_001));
    assert_eq!(kept, Kept::Expired { copies: 1 });
    // At exactly ts + lifetime it is still alive (expired means strictly after).
    let (_, kept, _) = route(&mut r, &old, 2, c.at(1_000));
    assert!(matches!(kept, Kept::Queued { .. }));
    route(
        &mut r,
        &Env::new("alice", "bob").lifetime(5_000),
        3,
        c.at(0),
    );
    route(
        &mut r,
        &Env::new("alice", "bob").lifetime(30_000),
        4,
        c.at(0),
    );
    r.connect(&user("bob"), &dev("b1"), 1, None);
    let mut got = Vec::new();
    let flushed = r.flush(&user("bob"), &dev("b1"), c.at(6_000), |m| {
        got.push(*m);
        true
    });
    assert_eq!(got, vec![4]);
    assert_eq!(
        flushed,
        Flushed {
            delivered: 1,
            expired: 2
        }
    );
}

#[test]
fn the_lifetime_is_capped_by_max_lifetime() {
    let c = Clock::new();
    let mut r = router();
    let long = Env::new("alice", "bob").lifetime(3_600_000);
    route(&mut r, &long, 1, c.at(0));
    assert_eq!(r.poll_timeout(), Some(c.at(600_000).at));
    r.connect(&user("bob"), &dev("b1"), 1, None);
    assert!(flush_all(&mut r, "bob", "b1", c.at(600_001)).is_empty());
}

#[test]
fn poll_timeout_is_the_next_expiry() {
    let c = Clock::new();
    let mut r = router();
    assert_eq!(r.poll_timeout(), None);
    route(
        &mut r,
        &Env::new("alice", "bob").lifetime(9_000),
        1,
        c.at(0),
    );
    route(
        &mut r,
        &Env::new("alice", "bob").lifetime(4_000),
        2,
        c.at(1_000),
    );
    assert_eq!(r.poll_timeout(), Some(c.at(4_000).at));
    assert_eq!(r.sweep(c.at(4_000).at), 0);
    assert_eq!(r.sweep(c.at(4_001).at), 1);
    assert_eq!(r.poll_timeout(), Some(c.at(9_000).at));
}

#[test]
fn a_full_queue_drops_the_oldest_of_the_sender_holding_the_most() {
    let c = Clock::new();
    let mut r = Router::<u32, u32>::new(RouterConfig {
        queue_per_user: 4,
        ..RouterConfig::default()
    });
    // alice's invite waits; mallory fills the queue.
    let (_, kept, push) = route(
        &mut r,
        &Env::new("alice", "bob").invite("room"),
        100,
        c.at(0),
    );
    assert!(matches!(kept, Kept::Queued { evicted: 0, .. }));
    assert!(push);
    for m in 1..=3 {
        route(&mut r, &Env::new("mallory", "bob"), m, c.at(0));
    }
    // Full: mallory (3 + 1) loses its own oldest, never alice's invite.
    for m in 4..=10 {
        let (_, kept, _) = route(&mut r, &Env::new("mallory", "bob"), m, c.at(0));
        assert_eq!(
            kept,
            Kept::Queued {
                copies: 1,
                evicted: 1
            }
        );
    }
    r.connect(&user("bob"), &dev("b1"), 1, None);
    assert_eq!(flush_all(&mut r, "bob", "b1", c.at(1)), vec![100, 8, 9, 10]);
}

#[test]
fn a_newcomer_is_refused_when_every_sender_holds_one() {
    let c = Clock::new();
    let mut r = Router::<u32, u32>::new(RouterConfig {
        queue_per_user: 2,
        ..RouterConfig::default()
    });
    route(&mut r, &Env::new("a", "bob"), 1, c.at(0));
    route(&mut r, &Env::new("b", "bob"), 2, c.at(0));
    let (_, kept, _) = route(&mut r, &Env::new("c", "bob").invite("x"), 3, c.at(0));
    assert_eq!(kept, Kept::Refused { copies: 1 });
    assert_eq!(r.counts().queued, 2);
}

#[test]
fn expired_envelopes_make_room_before_any_live_one_is_evicted() {
    let c = Clock::new();
    let mut r = Router::<u32, u32>::new(RouterConfig {
        queue_per_user: 2,
        ..RouterConfig::default()
    });
    route(&mut r, &Env::new("a", "bob").lifetime(1_000), 1, c.at(0));
    route(&mut r, &Env::new("b", "bob"), 2, c.at(0));
    let routed = r
        .route(None, &Env::new("c", "bob").header(), 3, c.at(2_000))
        .unwrap();
    assert_eq!(
        (routed.kept, routed.expired),
        (
            Kept::Queued {
                copies: 1,
                evicted: 0
            },
            1
        )
    );
    r.connect(&user("bob"), &dev("b1"), 1, None);
    assert_eq!(flush_all(&mut r, "bob", "b1", c.at(2_000)), vec![2, 3]);
}

#[test]
fn the_total_bound_refuses_new_envelopes() {
    let c = Clock::new();
    let mut r = Router::<u32, u32>::new(RouterConfig {
        queue_total: 2,
        ..RouterConfig::default()
    });
    route(&mut r, &Env::new("a", "bob"), 1, c.at(0));
    route(&mut r, &Env::new("a", "carol"), 2, c.at(0));
    let (_, kept, _) = route(&mut r, &Env::new("a", "dave"), 3, c.at(0));
    assert_eq!(kept, Kept::Refused { copies: 1 });
    assert_eq!(r.counts().queued, 2);
}

#[test]
fn push_exactly_once_per_invite_to_an_offline_user() {
    let c = Clock::new();
    let mut r = router();
    let invite = Env::new("alice", "bob").invite("room");
    let (_, kept, push) = route(&mut r, &invite, 1, c.at(0));
    assert!(matches!(kept, Kept::Queued { .. }));
    assert!(push);
    // Retransmissions: neither kept again nor pushed again.
    for t in [500, 1_500, 3_500] {
        let (_, kept, push) = route(&mut r, &invite, 1, c.at(t));
        assert_eq!(kept, Kept::Duplicate { added: 0 });
        assert!(!push);
    }
    assert_eq!(r.counts().queued, 1);
    // Not an invite: no push.
    let (_, _, push) = route(&mut r, &Env::new("alice", "bob"), 2, c.at(0));
    assert!(!push);
    // Online user: delivered, no push.
    r.connect(&user("bob"), &dev("b1"), 1, None);
    let (to, _, push) = route(&mut r, &Env::new("alice", "bob").invite("r2"), 3, c.at(0));
    assert_eq!((to, push), (vec![1], false));
    let routed = r
        .route(
            None,
            &Env::new("x", "carol").invite("r").header(),
            4,
            c.at(0),
        )
        .unwrap();
    assert_eq!(
        routed.push,
        Some(Push {
            user: user("carol"),
            message: 4
        })
    );
}

#[test]
fn a_reconnecting_device_replaces_its_old_connection() {
    let c = Clock::new();
    let mut r = router();
    let first = r.connect(&user("bob"), &dev("b1"), 1, None);
    assert_eq!(
        first,
        Connected {
            replaced: None,
            first_local_device: true
        }
    );
    let again = r.connect(&user("bob"), &dev("b1"), 2, None);
    assert_eq!(
        again,
        Connected {
            replaced: Some(1),
            first_local_device: false
        }
    );
    assert_eq!(r.counts().devices, 1);
    let (to, _, _) = route(&mut r, &Env::new("alice", "bob"), 7, c.at(0));
    assert_eq!(to, vec![2]);
    // The old connection going away does not remove its replacement.
    assert!(!r.disconnect(&user("bob"), &1).removed);
    assert!(r.is_connected(&user("bob"), &dev("b1")));
    assert_eq!(
        r.disconnect(&user("bob"), &2),
        Disconnected {
            removed: true,
            last_local_device: true
        }
    );
    assert_eq!(r.counts(), RouterCounts::default());
}

#[test]
fn first_and_last_local_device_are_reported_for_a_fleet() {
    let mut r = router();
    assert!(
        r.connect(&user("bob"), &dev("b1"), 1, None)
            .first_local_device
    );
    assert!(
        !r.connect(&user("bob"), &dev("b2"), 2, None)
            .first_local_device
    );
    assert!(!r.disconnect(&user("bob"), &1).last_local_device);
    assert!(r.disconnect(&user("bob"), &2).last_local_device);
    // While-connected: the user is forgotten.
    assert_eq!(r.devices(&user("bob")).count(), 0);
}

#[test]
fn a_refusing_offer_keeps_the_rest_for_the_next_connection() {
    let c = Clock::new();
    let mut r = router();
    for m in 1..=4 {
        route(
            &mut r,
            &Env::new("alice", "bob").for_device("b1"),
            m,
            c.at(0),
        );
    }
    r.connect(&user("bob"), &dev("b1"), 1, None);
    let mut budget = 2;
    let mut got = Vec::new();
    let flushed = r.flush(&user("bob"), &dev("b1"), c.at(1), |m| {
        if budget == 0 {
            return false;
        }
        budget -= 1;
        got.push(*m);
        true
    });
    assert_eq!((got, flushed.delivered), (vec![1, 2], 2));
    r.disconnect(&user("bob"), &1);
    r.connect(&user("bob"), &dev("b1"), 2, None);
    assert_eq!(flush_all(&mut r, "bob", "b1", c.at(2)), vec![3, 4]);
}

#[test]
fn registered_devices_keep_envelopes_per_device() {
    let c = Clock::new();
    let mut r = registered();
    r.connect(&user("bob"), &dev("b1"), 1, None);
    r.register(&user("bob"), &dev("b2"));
    r.register(&user("bob"), &dev("b3"));
    let (to, kept, push) = route(&mut r, &Env::new("alice", "bob"), 7, c.at(0));
    assert_eq!(to, vec![1]);
    assert_eq!(
        kept,
        Kept::Queued {
            copies: 2,
            evicted: 0
        }
    );
    assert!(!push);
    assert_eq!(r.queued_for(&user("bob"), &dev("b1")), 0);
    assert_eq!(r.queued_for(&user("bob"), &dev("b2")), 1);
    r.connect(&user("bob"), &dev("b2"), 2, None);
    assert_eq!(flush_all(&mut r, "bob", "b2", c.at(1)), vec![7]);
    r.connect(&user("bob"), &dev("b3"), 3, None);
    assert_eq!(flush_all(&mut r, "bob", "b3", c.at(1)), vec![7]);
    assert_eq!(r.counts().queued, 0);
    // A disconnected device stays known, in registration order.
    r.disconnect(&user("bob"), &1);
    let known: Vec<_> = r.devices(&user("bob")).cloned().collect();
    assert_eq!(known, vec![dev("b1"), dev("b2"), dev("b3")]);
}

#[test]
fn registered_mode_drops_envelopes_for_unknown_recipients() {
    let c = Clock::new();
    let mut r = registered();
    r.connect(&user("bob"), &dev("b1"), 1, None);
    let (_, kept, _) = route(&mut r, &Env::new("alice", "nobody"), 1, c.at(0));
    assert_eq!(kept, Kept::UnknownRecipient);
    let (_, kept, _) = route(
        &mut r,
        &Env::new("alice", "bob").for_device("b9"),
        2,
        c.at(0),
    );
    assert_eq!(kept, Kept::UnknownRecipient);
    assert_eq!(r.counts().queued, 0);
}

#[test]
fn hold_keeps_a_copy_for_one_known_device_once() {
    let c = Clock::new();
    let mut r = registered();
    r.register(&user("bob"), &dev("b1"));
    let env = Env::new("alice", "bob");
    let held = r.hold(&user("bob"), &dev("b1"), &env.header(), 1, c.at(0));
    assert!(matches!(held.kept, Kept::Queued { copies: 1, .. }));
    // A duplicate copy of the same envelope is kept once.
    let held = r.hold(&user("bob"), &dev("b1"), &env.header(), 1, c.at(5));
    assert_eq!(held.kept, Kept::Duplicate { added: 0 });
    let held = r.hold(&user("bob"), &dev("b9"), &env.header(), 1, c.at(5));
    assert_eq!(held.kept, Kept::UnknownRecipient);
    r.connect(&user("bob"), &dev("b1"), 1, None);
    assert_eq!(flush_all(&mut r, "bob", "b1", c.at(10)), vec![1]);
}

#[test]
fn a_queue_per_user_of_zero_keeps_nothing() {
    let c = Clock::new();
    let mut r = registered();
    r.set_queue_per_user(0);
    r.register(&user("bob"), &dev("b1"));
    let (_, kept, _) = route(&mut r, &Env::new("alice", "bob"), 1, c.at(0));
    assert_eq!(kept, Kept::Refused { copies: 1 });
}

#[test]
fn access_links_send_and_receive_only_their_rooms_calls() {
    let c = Clock::new();
    let mut r = router();
    r.connect(&user("guest"), &dev("g1"), 1, Some("room-a".into()));
    r.connect(&user("host"), &dev("h1"), 2, None);
    // The guest may invite only into its room.
    let wrong = Env::new("guest", "host").invite("room-b");
    assert!(r
        .route(Some("room-a"), &wrong.header(), 1, c.at(0))
        .is_err());
    let invite = Env::new("guest", "host").invite("room-a");
    let routed = r
        .route(Some("room-a"), &invite.header(), 2, c.at(0))
        .unwrap();
    assert_eq!(routed.deliver, vec![&2]);
    // And send only for calls of its room.
    let mut reply = Env::new("guest", "host");
    reply.call_id = invite.call_id;
    assert!(r.route(Some("room-a"), &reply.header(), 3, c.at(1)).is_ok());
    let other = Env::new("guest", "host");
    assert!(r
        .route(Some("room-a"), &other.header(), 4, c.at(1))
        .is_err());
    // The guest receives the call's envelopes, not those of other calls.
    let mut answer = Env::new("host", "guest");
    answer.call_id = invite.call_id;
    let routed = r.route(None, &answer.header(), 5, c.at(2)).unwrap();
    assert_eq!(routed.deliver, vec![&1]);
    let routed = r
        .route(None, &Env::new("host", "guest").header(), 6, c.at(2))
        .unwrap();
    assert!(routed.deliver.is_empty());
    assert_eq!(routed.out_of_scope, 1);
    assert_eq!(routed.kept, Kept::NotNeeded);
}

#[test]
fn a_flush_to_an_access_link_offers_only_its_rooms_envelopes() {
    let c = Clock::new();
    let mut r = router();
    route(
        &mut r,
        &Env::new("host", "guest").invite("room-b"),
        1,
        c.at(0),
    );
    route(
        &mut r,
        &Env::new("host", "guest").invite("room-a"),
        2,
        c.at(0),
    );
    r.connect(&user("guest"), &dev("g1"), 1, Some("room-a".into()));
    assert_eq!(flush_all(&mut r, "guest", "g1", c.at(1)), vec![2]);
}
