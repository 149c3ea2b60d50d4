//! A signaling link that drops in the middle of a call — while `Calling`, `Connecting` or
//! `Connected`, on either side — and comes back within the grace: the call completes or goes on,
//! and neither side sees a notification twice or misses one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lifecycle;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, CallState as S, Notification, StateReason as R};
use callapi_core::connection::ConnectError;
use callapi_core::media::{MediaEvent, MediaKind};
use callapi_core::protocol::{CallId, CallType};
use callapi_core::signal::LinkState;
use callapi_signal_mock::{MockMediaBehavior, ScriptedConnect};
use lifecycle::*;
use tokio::time::Instant;

fn transient() -> ScriptedConnect {
    ScriptedConnect::Fail(ConnectError::Transient("elevator".into()))
}

/// Caller's states in a call that is accepted, connects and ends with `end`.
fn caller_states(end: R) -> Vec<(S, R)> {
    vec![
        (S::Prepared, R::None),
        (S::Calling, R::LocalVideoCall),
        (S::Connecting, R::RemoteAccepted),
        (S::Connected, R::RecvRemoteFirstFrame),
        (S::Prepared, end),
    ]
}

/// Callee's states in a call that it accepts, that connects and ends with `end`.
fn callee_states(end: R) -> Vec<(S, R)> {
    vec![
        (S::Prepared, R::None),
        (S::Calling, R::RemoteVideoCall),
        (S::Connecting, R::LocalAccepted),
        (S::Connected, R::RecvRemoteFirstFrame),
        (S::Prepared, end),
    ]
}

const CALLER_EVENTS: [E; 7] = [
    E::OnCalling,
    E::JoinMediaStart,
    E::LocalJoined,
    E::RemoteUserRecvCall,
    E::RemoteAccepted,
    E::RemoteJoined,
    E::RecvRemoteFirstFrame,
];

const CALLEE_EVENTS: [E; 5] = [
    E::JoinMediaStart,
    E::LocalJoined,
    E::RemoteJoined,
    E::RecvRemoteFirstFrame,
    E::LocalAccepted,
];

fn with(events: &[E], more: E) -> Vec<E> {
    let mut v = events.to_vec();
    v.push(more);
    v
}

/// Drops `d`'s link with one failed reconnect attempt scripted (so the outage lasts until the
/// second attempt, 3 s + jitter later) and waits until the device sees it.
async fn drop_for_a_while(d: &mut Device) -> Instant {
    d.transport.script([transient()]);
    let at = Instant::now();
    assert!(d.transport.drop_link());
    let LinkState::Reconnecting { attempt: 1, .. } = d.next_link().await else {
        panic!("expected Reconnecting");
    };
    at
}

/// The link notifications of a device that connected, dropped once and came back.
fn dropped_once(links: &[LinkState]) -> bool {
    matches!(
        links,
        [
            LinkState::Connecting,
            LinkState::Connected,
            LinkState::Reconnecting { attempt: 1, .. },
            LinkState::Reconnecting { attempt: 2, .. },
            LinkState::Connected
        ]
    )
}

/// Ends the test run: lets retransmissions and late copies settle, then logs everything.
async fn settle(a: &mut Device, b: &mut Device) {
    tokio::time::sleep(Duration::from_secs(120)).await;
    a.drain();
    b.drain();
}

fn no_errors(d: &Device) {
    assert!(
        d.error_codes().is_empty(),
        "{}: {:?}",
        d.user,
        d.notifications()
    );
}

async fn calling_with_a_drop(drop_caller: bool) {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    let call_id = alice.api.call("bob", CallType::Video).await.unwrap();
    bob.wait_state(S::Calling).await;
    alice.wait_event(E::RemoteUserRecvCall).await;

    // The link drops while bob rings; bob answers during the outage.
    let down = if drop_caller {
        drop_for_a_while(&mut alice).await
    } else {
        drop_for_a_while(&mut bob).await
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    bob.api.accept().await.unwrap();
    assert_eq!(bob.api.state(), S::Connecting);
    assert_eq!(
        alice.api.state(),
        S::Calling,
        "the accept waits for the link"
    );

    alice.wait_state(S::Connected).await;
    bob.wait_state(S::Connected).await;
    let dropped = if drop_caller { &alice } else { &bob };
    assert!(Instant::now() - down >= Duration::from_secs(3));
    assert_eq!(dropped.transport.links_opened(), 2);

    alice.api.hangup(None).await.unwrap();
    bob.wait_change(S::Prepared, R::RemoteHangup).await;
    settle(&mut alice, &mut bob).await;
    assert_eq!(alice.states(), caller_states(R::LocalHangup));
    assert_eq!(bob.states(), callee_states(R::RemoteHangup));
    assert_events_once(
        "alice",
        &alice.events(),
        &with(&CALLER_EVENTS, E::LocalHangup),
    );
    assert_events_once("bob", &bob.events(), &with(&CALLEE_EVENTS, E::RemoteHangup));
    let dropped = if drop_caller { &alice } else { &bob };
    assert!(dropped_once(&dropped.links()), "{:?}", dropped.links());
    no_errors(&alice);
    no_errors(&bob);
    assert!(alice.log.iter().all(|(_, n)| match n {
        Notification::StateChanged(c) => c.call.as_ref().is_none_or(|i| i.call_id == call_id),
        _ => true,
    }));
}

#[tokio::test(start_paused = true)]
async fn caller_link_drops_while_calling_and_the_callee_answers_meanwhile() {
    calling_with_a_drop(true).await;
}

#[tokio::test(start_paused = true)]
async fn callee_link_drops_while_ringing_and_it_answers_offline() {
    calling_with_a_drop(false).await;
}

#[tokio::test(start_paused = true)]
async fn an_invite_sent_while_the_callee_is_reconnecting_rings_once_it_is_back() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    let down = drop_for_a_while(&mut bob).await;
    alice.api.call("bob", CallType::Video).await.unwrap();
    // The invite is stored for bob and retransmitted meanwhile: bob rings once, on reconnect.
    bob.wait_state(S::Calling).await;
    assert!(Instant::now() - down >= Duration::from_secs(3));
    alice.wait_event(E::RemoteUserRecvCall).await;
    bob.api.accept().await.unwrap();
    alice.wait_state(S::Connected).await;
    bob.wait_state(S::Connected).await;
    bob.api.hangup(None).await.unwrap();
    alice.wait_change(S::Prepared, R::RemoteHangup).await;
    settle(&mut alice, &mut bob).await;
    assert_eq!(alice.states(), caller_states(R::RemoteHangup));
    assert_eq!(bob.states(), callee_states(R::LocalHangup));
    assert_events_once(
        "alice",
        &alice.events(),
        &with(&CALLER_EVENTS, E::RemoteHangup),
    );
    assert_events_once("bob", &bob.events(), &with(&CALLEE_EVENTS, E::LocalHangup));
    assert!(dropped_once(&bob.links()), "{:?}", bob.links());
    no_errors(&alice);
    no_errors(&bob);
}

/// Media that joins but reports no frames by itself: the test emits them.
fn frameless() -> Media {
    Media::Mock(MockMediaBehavior {
        first_frame_delay: None,
        ..MockMediaBehavior::default()
    })
}

fn frame(d: &Device, call_id: CallId) {
    d.media
        .as_ref()
        .unwrap()
        .emit(MediaEvent::FirstRemoteFrame {
            call_id,
            kind: MediaKind::Video,
        });
}

async fn connecting_with_a_drop(drop_caller: bool) {
    let net = network();
    let ta = Tokens::new("alice-t");
    let tb = Tokens::new("bob-t");
    let (ca, cb) = (ta.credentials(), tb.credentials());
    let mut alice = Device::start_with(&net, "alice", "a1", 1, ta, ca, frameless());
    let mut bob = Device::start_with(&net, "bob", "b1", 2, tb, cb, frameless());
    ready(&mut alice, &mut bob).await;
    let call_id = alice.api.call("bob", CallType::Video).await.unwrap();
    bob.wait_state(S::Calling).await;
    bob.api.accept().await.unwrap();
    alice.wait_state(S::Connecting).await;
    assert_eq!(bob.api.state(), S::Connecting);

    // Both wait for a first frame when the link drops; the frames arrive during the outage.
    let down = if drop_caller {
        drop_for_a_while(&mut alice).await
    } else {
        drop_for_a_while(&mut bob).await
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    frame(&alice, call_id);
    frame(&bob, call_id);
    // The caller connects on its frame; the callee needs the caller's confirmation, which
    // crosses the link that is down.
    alice.wait_state(S::Connected).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bob.api.state(), S::Connecting);
    bob.wait_state(S::Connected).await;
    assert!(Instant::now() - down >= Duration::from_secs(3));

    bob.api.hangup(None).await.unwrap();
    alice.wait_change(S::Prepared, R::RemoteHangup).await;
    settle(&mut alice, &mut bob).await;
    assert_eq!(alice.states(), caller_states(R::RemoteHangup));
    assert_eq!(bob.states(), callee_states(R::LocalHangup));
    assert_events_once(
        "alice",
        &alice.events(),
        &with(&CALLER_EVENTS, E::RemoteHangup),
    );
    assert_events_once("bob", &bob.events(), &with(&CALLEE_EVENTS, E::LocalHangup));
    let dropped = if drop_caller { &alice } else { &bob };
    assert!(dropped_once(&dropped.links()), "{:?}", dropped.links());
    no_errors(&alice);
    no_errors(&bob);
}

#[tokio::test(start_paused = true)]
async fn caller_link_drops_while_connecting() {
    connecting_with_a_drop(true).await;
}

#[tokio::test(start_paused = true)]
async fn callee_link_drops_while_connecting() {
    connecting_with_a_drop(false).await;
}

async fn connected_with_a_drop(drop_caller: bool) {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;
    alice.api.send_message("a-before").await.unwrap();
    bob.wait_for("a-before", |n| {
        matches!(n, Notification::MessageReceived { .. })
    })
    .await;

    let down = if drop_caller {
        drop_for_a_while(&mut alice).await
    } else {
        drop_for_a_while(&mut bob).await
    };
    // Both sides keep talking while one of them is offline.
    for i in 0..3 {
        alice.api.send_message(format!("a-{i}")).await.unwrap();
        bob.api.send_message(format!("b-{i}")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    alice.api.send_dtmf("12#").await.unwrap();
    bob.api.send_dtmf("*0").await.unwrap();

    let dropped = if drop_caller { &mut alice } else { &mut bob };
    dropped.wait_link(&LinkState::Connected).await;
    assert!(Instant::now() - down >= Duration::from_secs(3));
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(alice.api.state(), S::Connected);
    assert_eq!(bob.api.state(), S::Connected);

    alice.api.hangup(None).await.unwrap();
    bob.wait_change(S::Prepared, R::RemoteHangup).await;
    settle(&mut alice, &mut bob).await;
    assert_eq!(alice.states(), caller_states(R::LocalHangup));
    assert_eq!(bob.states(), callee_states(R::RemoteHangup));
    assert_events_once(
        "alice",
        &alice.events(),
        &with(&CALLER_EVENTS, E::LocalHangup),
    );
    assert_events_once("bob", &bob.events(), &with(&CALLEE_EVENTS, E::RemoteHangup));
    // Every message and digit exactly once, in the order sent.
    assert_eq!(alice.messages(), vec!["b-0", "b-1", "b-2"]);
    assert_eq!(bob.messages(), vec!["a-before", "a-0", "a-1", "a-2"]);
    let dtmf = |d: &Device| -> Vec<String> {
        d.log
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::DtmfReceived { digits, .. } => Some(digits.clone()),
                _ => None,
            })
            .collect()
    };
    assert_eq!(dtmf(&alice), vec!["*0"]);
    assert_eq!(dtmf(&bob), vec!["12#"]);
    let dropped = if drop_caller { &alice } else { &bob };
    assert!(dropped_once(&dropped.links()), "{:?}", dropped.links());
    no_errors(&alice);
    no_errors(&bob);
}

#[tokio::test(start_paused = true)]
async fn caller_link_drops_while_connected() {
    connected_with_a_drop(true).await;
}

#[tokio::test(start_paused = true)]
async fn callee_link_drops_while_connected() {
    connected_with_a_drop(false).await;
}

#[tokio::test(start_paused = true)]
async fn a_hangup_during_the_peers_outage_reaches_it_after_reconnect() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;
    let down = drop_for_a_while(&mut bob).await;
    alice.api.hangup(None).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(bob.api.state(), S::Connected, "bob has not heard yet");
    bob.wait_change(S::Prepared, R::RemoteHangup).await;
    assert!(Instant::now() - down >= Duration::from_secs(3));
    settle(&mut alice, &mut bob).await;
    assert_eq!(alice.states(), caller_states(R::LocalHangup));
    assert_eq!(bob.states(), callee_states(R::RemoteHangup));
    assert_events_once(
        "alice",
        &alice.events(),
        &with(&CALLER_EVENTS, E::LocalHangup),
    );
    assert_events_once("bob", &bob.events(), &with(&CALLEE_EVENTS, E::RemoteHangup));
    no_errors(&alice);
    no_errors(&bob);
}
