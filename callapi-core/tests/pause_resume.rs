//! Background and foreground: `pause()` closes the link unless a call is up (then
//! when the call ends), `resume()` reconnects, `disconnect()` stops reconnecting and hangs up any
//! call, `reset()` also forgets tokens and goes `Idle`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lifecycle;

use std::iter::repeat_n;
use std::time::Duration;

use callapi_core::call::{CallEvent, CallState, StateReason};
use callapi_core::connection::ConnectError;
use callapi_core::protocol::CallType;
use callapi_core::signal::LinkState;
use callapi_signal_mock::ScriptedConnect;
use lifecycle::*;
use tokio::time::Instant;

fn transient() -> ScriptedConnect {
    ScriptedConnect::Fail(ConnectError::Transient("no network".into()))
}

#[tokio::test(start_paused = true)]
async fn pause_without_a_call_closes_the_link_and_resume_reconnects() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    alice.wait_link(&LinkState::Connected).await;
    alice.prepare("alice-room").await;
    let mut rng = Replay::new(alice.sup_seed);
    rng.reconnect(0);
    rng.token_series();

    alice.api.pause().await.unwrap();
    assert_eq!(alice.next_link().await, LinkState::Disconnected);
    assert!(!alice.transport.is_linked());
    assert!(!net.is_online(&alice.user, &alice.device));
    tokio::time::sleep(TEN_MINUTES).await;
    assert_eq!(
        alice.transport.attempts().len(),
        1,
        "paused: no reconnection"
    );
    assert_eq!(
        alice.api.state(),
        CallState::Prepared,
        "pausing keeps the call state"
    );

    let resumed = Instant::now();
    alice.api.resume().await.unwrap();
    let after = rng.reconnect(0);
    assert_eq!(
        alice.next_link().await,
        LinkState::Reconnecting {
            attempt: 1,
            next_in: after
        }
    );
    assert_eq!(alice.next_link().await, LinkState::Connected);
    let attempts = alice.transport.attempts();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1].at, resumed + after);
    assert_eq!(attempts[1].token, "alice-t1", "the saved token is reused");
    assert_eq!(alice.tokens.calls().len(), 1);
    alice.drain();
    assert_eq!(
        alice.links(),
        vec![
            LinkState::Connecting,
            LinkState::Connected,
            LinkState::Disconnected,
            LinkState::Reconnecting {
                attempt: 1,
                next_in: after
            },
            LinkState::Connected,
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_device_rings_for_an_invite_sent_meanwhile_once_it_resumes() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    bob.api.pause().await.unwrap();
    bob.wait_link(&LinkState::Disconnected).await;

    let call_id = alice.api.call("bob", CallType::Audio).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(bob.api.state(), CallState::Prepared);
    alice.drain();
    assert!(!alice.events().contains(&CallEvent::RemoteUserRecvCall));

    bob.api.resume().await.unwrap();
    let ring = bob.wait_state(CallState::Calling).await;
    assert_eq!(ring.reason, StateReason::RemoteAudioCall);
    assert_eq!(ring.call.unwrap().call_id, call_id);
    alice.wait_event(CallEvent::RemoteUserRecvCall).await;
    bob.api.accept().await.unwrap();
    alice.wait_state(CallState::Connected).await;
    bob.wait_state(CallState::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn pause_during_a_call_keeps_the_link_until_the_call_ends() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;

    alice.api.pause().await.unwrap();
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert!(alice.transport.is_linked(), "the call keeps the link up");
    assert_eq!(alice.api.state(), CallState::Connected);
    // Signaling still flows both ways.
    bob.api.send_message("still there?").await.unwrap();
    alice
        .wait_for("bob's message", |n| {
            matches!(n, callapi_core::call::Notification::MessageReceived { data, .. } if data == "still there?")
        })
        .await;
    alice.api.send_message("yes").await.unwrap();
    bob.wait_for("alice's message", |n| {
        matches!(n, callapi_core::call::Notification::MessageReceived { data, .. } if data == "yes")
    })
    .await;

    // The call ends: now the link closes.
    bob.api.hangup(None).await.unwrap();
    let end = alice.wait_state(CallState::Prepared).await;
    assert_eq!(end.reason, StateReason::RemoteHangup);
    assert_eq!(alice.next_link().await, LinkState::Disconnected);
    assert!(!alice.transport.is_linked());
    tokio::time::sleep(TEN_MINUTES).await;
    alice.drain();
    assert_eq!(
        alice.links(),
        vec![
            LinkState::Connecting,
            LinkState::Connected,
            LinkState::Disconnected
        ]
    );
    assert_eq!(alice.transport.attempts().len(), 1);
    assert!(
        alice.error_codes().is_empty(),
        "{:?}",
        alice.notifications()
    );

    alice.api.resume().await.unwrap();
    alice.wait_link(&LinkState::Connected).await;
    assert_eq!(alice.transport.links_opened(), 2);
}

#[tokio::test(start_paused = true)]
async fn hanging_up_after_a_deferred_pause_still_tells_the_peer() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;
    alice.api.pause().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;

    alice.api.hangup(None).await.unwrap();
    let end = bob.wait_state(CallState::Prepared).await;
    assert_eq!(end.reason, StateReason::RemoteHangup);
    alice.wait_link(&LinkState::Disconnected).await;
    // The hangup was delivered and acknowledged: nothing is reported as failed later.
    tokio::time::sleep(TEN_MINUTES).await;
    alice.drain();
    assert!(
        alice.error_codes().is_empty(),
        "{:?}",
        alice.notifications()
    );
    assert!(!alice.events().contains(&CallEvent::MessageFailed));
    assert_eq!(
        alice.states().last(),
        Some(&(CallState::Prepared, StateReason::LocalHangup))
    );
}

#[tokio::test(start_paused = true)]
async fn a_deferred_pause_waits_until_the_hangup_is_acknowledged() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;
    alice.api.pause().await.unwrap();

    // The hangup is lost at first: the link must stay up for its retransmissions.
    net.partition(&alice.user, &bob.user);
    let hung_up = Instant::now();
    alice.api.hangup(None).await.unwrap();
    alice
        .wait_change(CallState::Prepared, StateReason::LocalHangup)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        alice.transport.is_linked(),
        "the hangup is not acknowledged yet"
    );
    assert_eq!(bob.api.state(), CallState::Connected);
    net.heal(&alice.user, &bob.user);

    // Retransmitted at 3.5 s (500 ms doubling), acknowledged, then the link closes.
    bob.wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    assert_eq!(
        Instant::now(),
        hung_up + Duration::from_millis(3500 + 10),
        "the retransmission at 3.5 s, 10 ms in flight"
    );
    alice.wait_link(&LinkState::Disconnected).await;
    assert!(!alice.transport.is_linked());
    tokio::time::sleep(TEN_MINUTES).await;
    alice.drain();
    assert!(
        alice.error_codes().is_empty(),
        "{:?}",
        alice.notifications()
    );
}

#[tokio::test(start_paused = true)]
async fn resume_during_the_call_cancels_the_deferred_pause() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;
    alice.api.pause().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    alice.api.resume().await.unwrap();
    bob.api.hangup(None).await.unwrap();
    alice.wait_state(CallState::Prepared).await;
    tokio::time::sleep(TEN_MINUTES).await;
    alice.drain();
    assert_eq!(
        alice.links(),
        vec![LinkState::Connecting, LinkState::Connected],
        "the link stayed up"
    );
    assert!(alice.transport.is_linked());
    assert_eq!(alice.transport.links_opened(), 1);
}

#[tokio::test(start_paused = true)]
async fn pause_while_reconnecting_stops_the_attempts() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    alice.wait_link(&LinkState::Connected).await;
    alice.transport.script(repeat_n(transient(), 100));
    assert!(alice.transport.drop_link());
    let LinkState::Reconnecting { .. } = alice.next_link().await else {
        panic!("expected Reconnecting");
    };
    // Let two attempts fail (at 0 s and 3 s + jitter).
    alice.next_link().await;
    alice.next_link().await;
    let tried = alice.transport.attempts().len();
    assert_eq!(tried, 3);
    alice.api.pause().await.unwrap();
    assert_eq!(alice.next_link().await, LinkState::Disconnected);
    tokio::time::sleep(TEN_MINUTES).await;
    assert_eq!(alice.transport.attempts().len(), tried);
}

#[tokio::test(start_paused = true)]
async fn disconnect_stops_reconnecting_and_resume_starts_again_with_the_saved_token() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    alice.wait_link(&LinkState::Connected).await;
    alice.transport.script(repeat_n(transient(), 3));
    assert!(alice.transport.drop_link());
    let LinkState::Reconnecting { attempt: 1, .. } = alice.next_link().await else {
        panic!("expected Reconnecting");
    };
    alice.api.disconnect(false).await.unwrap();
    assert_eq!(alice.next_link().await, LinkState::Disconnected);
    tokio::time::sleep(TEN_MINUTES).await;
    assert_eq!(
        alice.transport.attempts().len(),
        1,
        "no attempt after disconnect"
    );

    alice.api.resume().await.unwrap();
    alice.wait_link(&LinkState::Connected).await;
    let attempts = alice.transport.attempts();
    assert_eq!(attempts.len(), 5, "three scripted failures, then success");
    assert!(attempts.iter().all(|a| a.token == "alice-t1"));
    assert_eq!(alice.tokens.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn disconnect_clearing_saved_data_forgets_the_token() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    alice.wait_link(&LinkState::Connected).await;
    alice.api.disconnect(true).await.unwrap();
    assert_eq!(alice.next_link().await, LinkState::Disconnected);
    alice.api.resume().await.unwrap();
    alice.wait_link(&LinkState::Connected).await;
    let tokens: Vec<_> = alice
        .transport
        .attempts()
        .into_iter()
        .map(|a| a.token)
        .collect();
    assert_eq!(tokens, vec!["alice-t1", "alice-t2"]);
    assert_eq!(alice.tokens.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn disconnect_during_a_call_hangs_up_first() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;
    alice.api.disconnect(false).await.unwrap();
    let end = alice.wait_state(CallState::Prepared).await;
    assert_eq!(end.reason, StateReason::LocalHangup);
    assert_eq!(end.event_reason.as_deref(), Some("disconnect"));
    alice.wait_link(&LinkState::Disconnected).await;
    let end = bob.wait_state(CallState::Prepared).await;
    assert_eq!(end.reason, StateReason::RemoteHangup);
    assert_eq!(end.event_reason.as_deref(), Some("disconnect"));
}

#[tokio::test(start_paused = true)]
async fn reset_goes_idle_disconnects_and_forgets_the_token() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    let mut bob = Device::start(&net, "bob", "b1", 2);
    ready(&mut alice, &mut bob).await;
    connected_call(&mut alice, &mut bob).await;
    alice.api.reset().await.unwrap();
    alice.wait_state(CallState::Idle).await;
    alice.wait_link(&LinkState::Disconnected).await;
    assert_eq!(
        bob.wait_state(CallState::Prepared).await.reason,
        StateReason::RemoteHangup
    );
    alice.drain();
    let states = alice.states();
    assert_eq!(
        &states[states.len() - 2..],
        &[
            (CallState::Prepared, StateReason::LocalHangup),
            (CallState::Idle, StateReason::None)
        ]
    );
    tokio::time::sleep(TEN_MINUTES).await;
    assert_eq!(alice.transport.attempts().len(), 1);

    alice.api.resume().await.unwrap();
    alice.wait_link(&LinkState::Connected).await;
    assert_eq!(alice.transport.attempts()[1].token, "alice-t2");
    assert_eq!(
        alice.api.state(),
        CallState::Idle,
        "unreachable until prepare"
    );
}
