//! The signaling grace period: a call survives a link outage shorter than the grace
//! (30 s by default) — media keeps flowing and pending messages retransmit after reconnect —
//! and past it ends with `SignalLost`, exactly at the grace and not before; the peer whose link
//! stayed up learns of it from the hangup delivered after the reconnect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lifecycle;

use std::iter::repeat_n;
use std::time::Duration;

use callapi_core::call::{
    codes, CallConfig, CallEvent, CallState, Notification, PrepareConfig, StateReason,
};
use callapi_core::connection::ConnectError;
use callapi_core::protocol::CallType;
use callapi_core::signal::LinkState;
use callapi_signal_mock::{MockMediaBehavior, MockNetwork, ScriptedConnect};
use lifecycle::*;
use tokio::time::Instant;

const GRACE: Duration = Duration::from_secs(30);

fn transient() -> ScriptedConnect {
    ScriptedConnect::Fail(ConnectError::Transient("tunnel".into()))
}

/// alice and bob in a connected video call (alice called).
async fn in_a_call(net: &MockNetwork) -> (Device, Device) {
    let mut alice = Device::start(net, "alice", "a1", 1);
    let mut bob = Device::start(net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;
    (alice, bob)
}

/// Replays alice's supervisor RNG past the first connection.
fn replay_after_connect(d: &Device) -> Replay {
    let mut rng = Replay::new(d.sup_seed);
    rng.reconnect(0);
    rng.token_series();
    rng
}

/// When `d` read the state change to `state` for `reason`.
fn read_at(d: &Device, state: CallState, reason: StateReason) -> Instant {
    d.log
        .iter()
        .find_map(|(t, n)| match n {
            Notification::StateChanged(c) if c.state == state && c.reason == reason => Some(*t),
            _ => None,
        })
        .unwrap()
}

const CONNECTED_CALL: [(CallState, StateReason); 4] = [
    (CallState::Prepared, StateReason::None),
    (CallState::Calling, StateReason::LocalVideoCall),
    (CallState::Connecting, StateReason::RemoteAccepted),
    (CallState::Connected, StateReason::RecvRemoteFirstFrame),
];

const ANSWERED_CALL: [(CallState, StateReason); 4] = [
    (CallState::Prepared, StateReason::None),
    (CallState::Calling, StateReason::RemoteVideoCall),
    (CallState::Connecting, StateReason::LocalAccepted),
    (CallState::Connected, StateReason::RecvRemoteFirstFrame),
];

#[tokio::test(start_paused = true)]
async fn the_call_ends_with_signal_lost_at_the_grace_and_not_before() {
    let net = network();
    let (mut alice, mut bob) = in_a_call(&net).await;
    let mut rng = replay_after_connect(&alice);
    // Attempts at 0, 3, 9, 27 s fail; the one at 60 s (+ jitter) succeeds.
    alice.transport.script(repeat_n(transient(), 4));
    let down = Instant::now();
    assert!(alice.transport.drop_link());
    let LinkState::Reconnecting { attempt: 1, .. } = alice.next_link().await else {
        panic!("expected Reconnecting");
    };

    tokio::time::sleep_until(down + GRACE - Duration::from_millis(100)).await;
    assert_eq!(
        alice.api.state(),
        CallState::Connected,
        "still in the call at 29.9 s"
    );
    alice.drain();
    assert!(!alice.events().contains(&CallEvent::SignalLost));

    let end = alice
        .wait_change(CallState::Prepared, StateReason::SignalLost)
        .await;
    assert_eq!(
        read_at(&alice, CallState::Prepared, StateReason::SignalLost),
        down + GRACE,
        "ended exactly at the grace"
    );
    assert_eq!(end.event_reason.as_deref(), Some("signal_lost"));
    alice.drain();
    assert_eq!(alice.error_codes(), vec![codes::SIGNAL_LOST]);
    assert_each_once("alice", &alice.events(), &[CallEvent::SignalLost]);
    // Bob's link stayed up: he is still in the call.
    assert_eq!(bob.api.state(), CallState::Connected);

    // Alice reconnects at 60 s + jitter; the retransmitted hangup ends bob's side then.
    let back = down + (0..5).map(|k| rng.reconnect(k)).last().unwrap();
    alice.wait_link(&LinkState::Connected).await;
    assert_eq!(alice.transport.attempts().last().unwrap().at, back);
    let bob_end = bob
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    assert_eq!(bob_end.event_reason.as_deref(), Some("signal_lost"));
    let bob_end_at = read_at(&bob, CallState::Prepared, StateReason::RemoteHangup);
    assert!(
        bob_end_at >= back && bob_end_at < back + Duration::from_secs(1),
        "bob ended {:?} after alice came back",
        bob_end_at - back
    );

    tokio::time::sleep(Duration::from_secs(120)).await;
    alice.drain();
    bob.drain();
    let mut a_expected = CONNECTED_CALL.to_vec();
    a_expected.push((CallState::Prepared, StateReason::SignalLost));
    assert_eq!(alice.states(), a_expected);
    let mut b_expected = ANSWERED_CALL.to_vec();
    b_expected.push((CallState::Prepared, StateReason::RemoteHangup));
    assert_eq!(bob.states(), b_expected);
    assert_no_duplicate_events("alice", &alice.events());
    assert_no_duplicate_events("bob", &bob.events());
    assert_eq!(alice.error_codes(), vec![codes::SIGNAL_LOST]);
    assert!(bob.error_codes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_call_survives_an_outage_shorter_than_the_grace() {
    let net = network();
    let (mut alice, mut bob) = in_a_call(&net).await;
    let mut rng = replay_after_connect(&alice);
    // Attempts at 0, 3 and 9 s fail; the one at 27 s (+ jitter, so before 29 s) succeeds.
    alice.transport.script(repeat_n(transient(), 3));
    let down = Instant::now();
    assert!(alice.transport.drop_link());
    alice
        .wait_for("Reconnecting", |n| {
            matches!(n, Notification::Link(LinkState::Reconnecting { .. }))
        })
        .await;

    // Both talk while alice is offline; media keeps flowing.
    tokio::time::sleep(Duration::from_secs(2)).await;
    alice.api.send_message("from alice, offline").await.unwrap();
    bob.api
        .send_message("from bob, to offline alice")
        .await
        .unwrap();

    alice.wait_link(&LinkState::Connected).await;
    let back = down + (0..4).map(|k| rng.reconnect(k)).last().unwrap();
    assert!(back < down + GRACE);
    assert_eq!(alice.transport.attempts().last().unwrap().at, back);
    alice
        .wait_for("bob's message", |n| {
            matches!(n, Notification::MessageReceived { .. })
        })
        .await;
    bob.wait_for("alice's message", |n| {
        matches!(n, Notification::MessageReceived { .. })
    })
    .await;

    // Well past where the grace would have ended: the call is still up on both sides.
    tokio::time::sleep_until(down + GRACE + GRACE).await;
    assert_eq!(alice.api.state(), CallState::Connected);
    assert_eq!(bob.api.state(), CallState::Connected);
    bob.api.hangup(None).await.unwrap();
    alice
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    alice.drain();
    bob.drain();
    let mut a_expected = CONNECTED_CALL.to_vec();
    a_expected.push((CallState::Prepared, StateReason::RemoteHangup));
    assert_eq!(alice.states(), a_expected);
    let mut b_expected = ANSWERED_CALL.to_vec();
    b_expected.push((CallState::Prepared, StateReason::LocalHangup));
    assert_eq!(bob.states(), b_expected);
    assert_eq!(alice.messages(), vec!["from bob, to offline alice"]);
    assert_eq!(bob.messages(), vec!["from alice, offline"]);
    assert!(
        alice.error_codes().is_empty(),
        "{:?}",
        alice.notifications()
    );
    assert!(bob.error_codes().is_empty(), "{:?}", bob.notifications());
    assert!(!alice.events().contains(&CallEvent::SignalLost));
    assert_no_duplicate_events("alice", &alice.events());
    assert_no_duplicate_events("bob", &bob.events());
    let links: Vec<_> = alice.links();
    assert_eq!(links.len(), 7, "{links:?}"); // Connecting, Connected, 4 × Reconnecting, Connected
}

#[tokio::test(start_paused = true)]
async fn each_side_ends_at_its_own_grace() {
    let net = network();
    let (mut alice, mut bob) = in_a_call(&net).await;
    alice.transport.script(repeat_n(transient(), 100));
    bob.transport.script(repeat_n(transient(), 100));
    let t = Instant::now();
    assert!(alice.transport.drop_link());
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(bob.transport.drop_link());

    alice
        .wait_change(CallState::Prepared, StateReason::SignalLost)
        .await;
    assert_eq!(
        read_at(&alice, CallState::Prepared, StateReason::SignalLost),
        t + GRACE
    );
    assert_eq!(bob.api.state(), CallState::Connected);
    bob.wait_change(CallState::Prepared, StateReason::SignalLost)
        .await;
    assert_eq!(
        read_at(&bob, CallState::Prepared, StateReason::SignalLost),
        t + Duration::from_secs(10) + GRACE
    );
}

#[tokio::test(start_paused = true)]
async fn the_grace_is_configurable() {
    let net = network();
    let grace = Duration::from_secs(5);
    let mut cfg = CallConfig::new(user("alice"), device("a1")).with_seed(1);
    cfg.signal_grace = grace;
    let tokens = Tokens::new("alice-t");
    let creds = tokens.credentials();
    let mut alice = Device::start_configured(
        &net,
        cfg,
        1,
        tokens,
        creds,
        Media::Mock(MockMediaBehavior::default()),
    );
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;
    alice.transport.script(repeat_n(transient(), 2));
    let down = Instant::now();
    assert!(alice.transport.drop_link());
    alice
        .wait_change(CallState::Prepared, StateReason::SignalLost)
        .await;
    assert_eq!(
        read_at(&alice, CallState::Prepared, StateReason::SignalLost),
        down + grace
    );
}

#[tokio::test(start_paused = true)]
async fn a_ringing_call_without_timeout_ends_with_signal_lost_and_the_callee_is_told() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    alice.wait_link(&LinkState::Connected).await;
    bob.wait_link(&LinkState::Connected).await;
    let no_timeout = |room: &str| PrepareConfig {
        call_timeout: Duration::ZERO,
        ..PrepareConfig::new(room)
    };
    alice.api.prepare(no_timeout("alice-room")).await.unwrap();
    bob.api.prepare(no_timeout("bob-room")).await.unwrap();
    alice.api.call("bob", CallType::Audio).await.unwrap();
    bob.wait_state(CallState::Calling).await;
    alice.wait_event(CallEvent::RemoteUserRecvCall).await;

    alice.transport.script(repeat_n(transient(), 4));
    let down = Instant::now();
    assert!(alice.transport.drop_link());
    alice
        .wait_change(CallState::Prepared, StateReason::SignalLost)
        .await;
    assert_eq!(
        read_at(&alice, CallState::Prepared, StateReason::SignalLost),
        down + GRACE
    );
    assert_eq!(bob.api.state(), CallState::Calling, "still ringing");
    // After alice reconnects (60 s + jitter), the cancel reaches bob.
    bob.wait_change(CallState::Prepared, StateReason::RemoteCancelled)
        .await;
    assert!(alice.transport.is_linked());
    bob.drain();
    assert_eq!(
        bob.states(),
        vec![
            (CallState::Prepared, StateReason::None),
            (CallState::Calling, StateReason::RemoteAudioCall),
            (CallState::Prepared, StateReason::RemoteCancelled),
        ]
    );
}
