//! Access links: a room-scoped session only calls in its room (other rooms are
//! refused at `prepare`, invites for them are declined as busy), ends with its call (`Idle`,
//! link `Disconnected`, saved data cleared), fails for good when the link expires; and token and
//! access-link credentials cannot be mixed on a live session.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lifecycle;

use callapi_core::call::CommandError;
use callapi_core::call::{CallEvent, CallState, StateReason};
use callapi_core::connection::{ConnectError, Credentials};
use callapi_core::protocol::CallType;
use callapi_core::signal::{LinkState, SignalError};
use callapi_core::CallApiError;
use callapi_signal_mock::{MockMediaBehavior, ScriptedConnect};
use lifecycle::*;

/// A guest device whose access link is limited to `room`.
fn guest(net: &callapi_signal_mock::MockNetwork, room: &str, seed: u64) -> Device {
    Device::start_with(
        net,
        "guest",
        "g1",
        seed,
        Tokens::new("unused"),
        Credentials::access_link("guest-link", room),
        Media::Mock(MockMediaBehavior::default()),
    )
}

fn is_mixing_refusal(err: &CallApiError) -> bool {
    matches!(err, CallApiError::Signal(SignalError::Rejected(msg))
        if msg.contains("token and access-link") && msg.contains("disconnect first"))
}

#[tokio::test(start_paused = true)]
async fn prepare_in_another_room_is_refused() {
    let net = network();
    let mut g = guest(&net, "room-1", 1);
    g.wait_link(&LinkState::Connected).await;
    let err = g
        .api
        .prepare(callapi_core::call::PrepareConfig::new("room-2"))
        .await
        .unwrap_err();
    let CallApiError::Command(CommandError::InvalidArgument(msg)) = &err else {
        panic!("expected InvalidArgument, got {err:?}");
    };
    assert!(msg.contains("room-1") && msg.contains("room-2"), "{msg}");
    assert_eq!(g.api.state(), CallState::Idle);
    g.prepare("room-1").await;
    assert_eq!(g.api.state(), CallState::Prepared);
    let attempts = g.transport.attempts();
    assert_eq!(attempts[0].token, "guest-link");
}

#[tokio::test(start_paused = true)]
async fn an_invite_for_another_room_is_declined_as_busy() {
    let net = network();
    let mut g = guest(&net, "room-1", 1);
    let mut alice = Device::start(&net, "alice", "a1", 2);
    g.wait_link(&LinkState::Connected).await;
    alice.wait_link(&LinkState::Connected).await;
    g.prepare("room-1").await;
    alice.prepare("alice-room").await;

    alice.api.call("guest", CallType::Video).await.unwrap();
    alice
        .wait_change(CallState::Prepared, StateReason::RemoteCallBusy)
        .await;
    g.wait_event(CallEvent::BusyAutoRejected).await;
    assert_eq!(g.api.state(), CallState::Prepared);
    g.drain();
    assert_eq!(g.states(), vec![(CallState::Prepared, StateReason::None)]);
    assert!(
        g.transport.is_linked(),
        "a declined invite does not end the session"
    );

    // An invite for the link's room rings.
    let mut host = Device::start(&net, "host", "h1", 3);
    host.wait_link(&LinkState::Connected).await;
    host.prepare("room-1").await;
    host.api.call("guest", CallType::Video).await.unwrap();
    let ring = g.wait_state(CallState::Calling).await;
    assert_eq!(ring.call.unwrap().room_id, "room-1");
}

#[tokio::test(start_paused = true)]
async fn the_session_ends_with_its_call() {
    let net = network();
    let mut g = guest(&net, "room-1", 1);
    let mut host = Device::start(&net, "host", "h1", 2);
    g.wait_link(&LinkState::Connected).await;
    host.wait_link(&LinkState::Connected).await;
    g.prepare("room-1").await;
    host.prepare("host-room").await;
    let call_id = connected_call(&mut g, &mut host).await;
    assert_eq!(host.call_id().await, call_id);

    g.api.hangup(None).await.unwrap();
    assert_eq!(
        host.wait_state(CallState::Prepared).await.reason,
        StateReason::RemoteHangup
    );
    g.wait_state(CallState::Idle).await;
    g.wait_link(&LinkState::Disconnected).await;
    assert!(!g.transport.is_linked());
    g.drain();
    assert_eq!(
        g.states(),
        vec![
            (CallState::Prepared, StateReason::None),
            (CallState::Calling, StateReason::LocalVideoCall),
            (CallState::Connecting, StateReason::RemoteAccepted),
            (CallState::Connected, StateReason::RecvRemoteFirstFrame),
            (CallState::Prepared, StateReason::LocalHangup),
            (CallState::Idle, StateReason::None),
        ]
    );
    assert_eq!(
        g.links(),
        vec![
            LinkState::Connecting,
            LinkState::Connected,
            LinkState::Disconnected
        ]
    );
    // Saved data is cleared: not even the last call's timings remain.
    assert_eq!(g.api.call_timings().await.unwrap(), None);
    tokio::time::sleep(TEN_MINUTES).await;
    g.drain();
    assert_eq!(g.transport.attempts().len(), 1, "the session stays ended");
    assert!(g.error_codes().is_empty(), "{:?}", g.notifications());
}

#[tokio::test(start_paused = true)]
async fn the_session_ends_only_once_the_hangup_is_acknowledged() {
    let net = network();
    let mut g = guest(&net, "room-1", 1);
    let mut host = Device::start(&net, "host", "h1", 2);
    g.wait_link(&LinkState::Connected).await;
    host.wait_link(&LinkState::Connected).await;
    g.prepare("room-1").await;
    host.prepare("host-room").await;
    connected_call(&mut g, &mut host).await;

    net.partition(&g.user, &host.user);
    g.api.hangup(None).await.unwrap();
    g.wait_state(CallState::Idle).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(g.transport.is_linked(), "still retransmitting the hangup");
    assert_eq!(host.api.state(), CallState::Connected);
    net.heal(&g.user, &host.user);
    host.wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    g.wait_link(&LinkState::Disconnected).await;
    assert_eq!(
        g.api.call_timings().await.unwrap(),
        None,
        "saved data cleared"
    );
    tokio::time::sleep(TEN_MINUTES).await;
    g.drain();
    assert!(g.error_codes().is_empty(), "{:?}", g.notifications());
    assert_eq!(g.transport.attempts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_session_ends_when_the_peer_hangs_up_or_declines() {
    let net = network();
    let mut g = guest(&net, "room-1", 1);
    let mut host = Device::start(&net, "host", "h1", 2);
    g.wait_link(&LinkState::Connected).await;
    host.wait_link(&LinkState::Connected).await;
    g.prepare("room-1").await;
    host.prepare("room-1").await;

    // The host calls the guest; the host hangs up.
    connected_call(&mut host, &mut g).await;
    host.api.hangup(None).await.unwrap();
    assert_eq!(
        g.wait_state(CallState::Prepared).await.reason,
        StateReason::RemoteHangup
    );
    g.wait_state(CallState::Idle).await;
    g.wait_link(&LinkState::Disconnected).await;

    // A new session with the same link: the guest calls, the host declines.
    g.api.resume().await.unwrap();
    g.wait_link(&LinkState::Connected).await;
    g.prepare("room-1").await;
    g.api.call("host", CallType::Audio).await.unwrap();
    host.wait_state(CallState::Calling).await;
    host.api.reject(None).await.unwrap();
    g.wait_change(CallState::Prepared, StateReason::RemoteRejected)
        .await;
    g.wait_state(CallState::Idle).await;
    g.wait_link(&LinkState::Disconnected).await;
    assert_eq!(g.transport.links_opened(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_access_link_expiring_on_a_live_link_fails_for_good() {
    let net = network();
    let mut g = guest(&net, "room-1", 1);
    g.wait_link(&LinkState::Connected).await;
    assert!(g.transport.close_with(ConnectError::TokenExpired));
    g.wait_link(&LinkState::Failed {
        reason: "access link expired".into(),
    })
    .await;
    tokio::time::sleep(TEN_MINUTES).await;
    assert_eq!(g.transport.attempts().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn switching_from_token_to_access_link_is_refused_on_a_live_session() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    alice.wait_link(&LinkState::Connected).await;
    let err = alice
        .api
        .set_credentials(Credentials::access_link("link", "room-9"))
        .await
        .unwrap_err();
    assert!(is_mixing_refusal(&err), "{err:?}");
    assert!(err.to_string().contains("disconnect first"), "{err}");
    // Nothing changed: any room, the same token after a drop.
    alice.prepare("alice-room").await;
    assert!(alice.transport.drop_link());
    alice.wait_link(&LinkState::Connected).await;
    assert_eq!(alice.transport.attempts()[1].token, "alice-t1");

    // After disconnect, the switch is allowed and takes effect on resume.
    alice.api.disconnect(false).await.unwrap();
    alice.wait_link(&LinkState::Disconnected).await;
    alice
        .api
        .set_credentials(Credentials::access_link("link", "room-9"))
        .await
        .unwrap();
    alice.api.resume().await.unwrap();
    alice.wait_link(&LinkState::Connected).await;
    assert_eq!(alice.transport.attempts().last().unwrap().token, "link");
    // The room scope applies now.
    assert!(matches!(
        alice
            .api
            .prepare(callapi_core::call::PrepareConfig::new("alice-room"))
            .await,
        Err(CallApiError::Command(CommandError::InvalidArgument(_)))
    ));
    alice.prepare("room-9").await;
}

#[tokio::test(start_paused = true)]
async fn switching_from_access_link_to_token_is_refused_on_a_live_session() {
    let net = network();
    let mut g = guest(&net, "room-1", 1);
    g.wait_link(&LinkState::Connected).await;
    let tokens = Tokens::new("member-t");
    let err = g
        .api
        .set_credentials(tokens.credentials())
        .await
        .unwrap_err();
    assert!(is_mixing_refusal(&err), "{err:?}");
    assert!(matches!(
        g.api
            .prepare(callapi_core::call::PrepareConfig::new("room-2"))
            .await,
        Err(CallApiError::Command(CommandError::InvalidArgument(_)))
    ));

    g.api.disconnect(false).await.unwrap();
    g.wait_link(&LinkState::Disconnected).await;
    g.api.set_credentials(tokens.credentials()).await.unwrap();
    g.api.resume().await.unwrap();
    g.wait_link(&LinkState::Connected).await;
    assert_eq!(g.transport.attempts().last().unwrap().token, "member-t1");
    g.prepare("room-2").await; // the scope is lifted
}

#[tokio::test(start_paused = true)]
async fn same_kind_credentials_can_be_replaced_on_a_live_session() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    alice.wait_link(&LinkState::Connected).await;
    let fresh = Tokens::new("fresh-t");
    alice
        .api
        .set_credentials(fresh.credentials())
        .await
        .unwrap();
    // Used from the next connection on.
    assert!(alice.transport.drop_link());
    alice.wait_link(&LinkState::Connected).await;
    assert_eq!(alice.transport.attempts()[1].token, "fresh-t1");
    assert_eq!(alice.tokens.calls().len(), 1);
    assert_eq!(fresh.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn after_a_permanent_failure_other_credentials_are_accepted() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    alice
        .transport
        .script([ScriptedConnect::Fail(ConnectError::Unauthorized(
            "token users disabled".into(),
        ))]);
    alice
        .wait_link(&LinkState::Failed {
            reason: "unauthorized: token users disabled".into(),
        })
        .await;
    alice
        .api
        .set_credentials(Credentials::access_link("link", "room-3"))
        .await
        .unwrap();
    alice.api.resume().await.unwrap();
    alice.wait_link(&LinkState::Connected).await;
    assert_eq!(alice.transport.attempts().last().unwrap().token, "link");
}
