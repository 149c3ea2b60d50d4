//! The async `CallApi` shell over `signal-mock`'s `MockNetwork` and `MockMedia`, under tokio's
//! paused clock: the same call as the machine tests, through the public async API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use callapi_core::call::CommandError;
use callapi_core::call::{
    CallConfig, CallEvent, CallState, Notification, PrepareConfig, StateReason,
};
use callapi_core::media::NoMedia;
use callapi_core::protocol::{CallType, DeviceId, UserId};
use callapi_core::signal::LinkState;
use callapi_core::{CallApi, CallApiError, NotificationStream};
use callapi_signal_mock::{FaultPlan, MockMedia, MockNetwork};

fn ids(user: &str, device: &str) -> (UserId, DeviceId) {
    (UserId::new(user).unwrap(), DeviceId::new(device).unwrap())
}

fn net() -> MockNetwork {
    MockNetwork::new(
        3,
        FaultPlan::default().with_delay(Duration::from_millis(5), Duration::from_millis(15)),
    )
}

fn api_with_media(net: &MockNetwork, user: &str, device: &str) -> CallApi {
    let (u, d) = ids(user, device);
    let client = net.connect(u.clone(), d.clone());
    let (media, _control) = MockMedia::new();
    CallApi::new(CallConfig::new(u, d).with_seed(11), client, media)
}

/// Waits (in paused time) for the first notification matching `pred`; fails after 60 s.
async fn wait_for(
    stream: &mut NotificationStream,
    mut pred: impl FnMut(&Notification) -> bool,
) -> Notification {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let n = stream.recv().await.expect("stream open");
            if pred(&n) {
                return n;
            }
        }
    })
    .await
    .expect("notification within 60 s")
}

fn is_state(n: &Notification, state: CallState) -> bool {
    matches!(n, Notification::StateChanged(c) if c.state == state)
}

async fn wait_state(api: &CallApi, state: CallState) {
    let mut w = api.state_watch();
    tokio::time::timeout(Duration::from_secs(60), w.wait_for(|s| *s == state))
        .await
        .expect("state within 60 s")
        .expect("watch open");
}

#[tokio::test(start_paused = true)]
async fn video_call_through_callapi_connects_and_hangs_up() {
    let net = net();
    let alice = api_with_media(&net, "alice", "a1");
    let bob = api_with_media(&net, "bob", "b1");
    let mut a_events = alice.subscribe();
    let mut b_events = bob.subscribe();
    alice
        .prepare(PrepareConfig::new("alice-room"))
        .await
        .unwrap();
    bob.prepare(PrepareConfig::new("bob-room")).await.unwrap();
    assert_eq!(alice.state(), CallState::Prepared);

    let call_id = alice.call("bob", CallType::Video).await.unwrap();
    let ring = wait_for(&mut b_events, |n| is_state(n, CallState::Calling)).await;
    let Notification::StateChanged(ring) = ring else {
        unreachable!()
    };
    assert_eq!(ring.reason, StateReason::RemoteVideoCall);
    let info = ring.call.unwrap();
    assert_eq!(info.call_id, call_id);
    assert_eq!(info.room_id, "alice-room");
    wait_for(
        &mut a_events,
        |n| matches!(n, Notification::Event(e) if e.event == CallEvent::RemoteUserRecvCall),
    )
    .await;

    bob.accept().await.unwrap();
    let connected = wait_for(&mut a_events, |n| is_state(n, CallState::Connected)).await;
    let Notification::StateChanged(connected) = connected else {
        unreachable!()
    };
    assert_eq!(connected.reason, StateReason::RecvRemoteFirstFrame);
    let timings = connected.timings.expect("timings on Connected");
    assert!(timings.remote_user_recv_call.is_some());
    assert!(timings.accept.is_some());
    assert!(timings.local_joined.is_some());
    assert!(timings.first_remote_frame.is_some());
    assert!(timings.connected >= timings.accept);
    wait_state(&bob, CallState::Connected).await;

    bob.send_dtmf("12#").await.unwrap();
    let dtmf = wait_for(&mut a_events, |n| {
        matches!(n, Notification::DtmfReceived { .. })
    })
    .await;
    assert!(matches!(dtmf, Notification::DtmfReceived { digits, .. } if digits == "12#"));

    tokio::time::sleep(Duration::from_secs(3)).await; // the call lasts 3 s of (paused) time
    alice.hangup(None).await.unwrap();
    let end = wait_for(&mut b_events, |n| is_state(n, CallState::Prepared)).await;
    let Notification::StateChanged(end) = end else {
        unreachable!()
    };
    assert_eq!(end.reason, StateReason::RemoteHangup);
    assert!(end.duration.unwrap() >= Duration::from_secs(3));
    assert_eq!(alice.state(), CallState::Prepared);
    let t = alice.call_timings().await.unwrap().unwrap();
    assert_eq!(t, timings);
}

#[tokio::test(start_paused = true)]
async fn without_media_connected_follows_accept() {
    let net = net();
    let (ua, da) = ids("alice", "a1");
    let (ub, db) = ids("bob", "b1");
    let alice = CallApi::new(
        CallConfig::new(ua.clone(), da.clone()),
        net.connect(ua, da),
        NoMedia,
    );
    let bob = CallApi::new(
        CallConfig::new(ub.clone(), db.clone()),
        net.connect(ub, db),
        NoMedia,
    );
    alice.prepare(PrepareConfig::new("r")).await.unwrap();
    bob.prepare(PrepareConfig::new("r2")).await.unwrap();
    let mut a = alice.subscribe();
    alice.call("bob", CallType::Audio).await.unwrap();
    wait_state(&bob, CallState::Calling).await;
    bob.accept().await.unwrap();
    let n = wait_for(&mut a, |n| is_state(n, CallState::Connected)).await;
    assert!(matches!(n, Notification::StateChanged(c) if c.reason == StateReason::RemoteAccepted));
    wait_state(&bob, CallState::Connected).await;
}

#[tokio::test(start_paused = true)]
async fn every_subscriber_gets_every_notification_in_order() {
    let net = net();
    let alice = api_with_media(&net, "alice", "a1");
    let _bob = api_with_media(&net, "bob", "b1");
    let mut s1 = alice.subscribe();
    let mut s2 = alice.subscribe();
    alice.prepare(PrepareConfig::new("r")).await.unwrap();
    alice.call("bob", CallType::Video).await.unwrap(); // bob is not prepared: busy
    wait_state(&alice, CallState::Prepared).await;
    let _ = alice.call_info().await.unwrap();
    let mut got1 = Vec::new();
    while let Some(n) = s1.try_recv() {
        got1.push(n);
    }
    let mut got2 = Vec::new();
    while let Some(n) = s2.try_recv() {
        got2.push(n);
    }
    assert!(!got1.is_empty());
    assert_eq!(got1, got2);
    assert!(got1.iter().any(
        |n| matches!(n, Notification::StateChanged(c) if c.reason == StateReason::RemoteCallBusy)
    ));
}

#[tokio::test(start_paused = true)]
async fn commands_that_do_not_fit_the_state_fail_without_change() {
    let net = net();
    let alice = api_with_media(&net, "alice", "a1");
    assert!(matches!(
        alice.call("bob", CallType::Video).await,
        Err(CallApiError::Command(CommandError::NotPrepared))
    ));
    alice.prepare(PrepareConfig::new("r")).await.unwrap();
    assert!(matches!(
        alice.accept().await,
        Err(CallApiError::Command(CommandError::InvalidState {
            action: "accept",
            state: CallState::Prepared
        }))
    ));
    assert!(matches!(
        alice.call("", CallType::Video).await,
        Err(CallApiError::Command(CommandError::InvalidArgument(_)))
    ));
    assert!(matches!(
        alice.send_dtmf("1").await,
        Err(CallApiError::Command(CommandError::InvalidState { .. }))
    ));
    assert_eq!(alice.state(), CallState::Prepared);
    alice.shutdown().await.unwrap();
    assert_eq!(
        alice.prepare(PrepareConfig::new("r")).await,
        Err(CallApiError::Shutdown)
    );
}

#[tokio::test(start_paused = true)]
async fn link_state_changes_reach_subscribers() {
    let net = net();
    let alice = api_with_media(&net, "alice", "a1");
    let mut s = alice.subscribe();
    // The mock client reports its first connection, then the changes below.
    let n = wait_for(&mut s, |n| matches!(n, Notification::Link(_))).await;
    assert_eq!(n, Notification::Link(LinkState::Connected));
    let (u, d) = ids("alice", "a1");
    net.set_online(u.clone(), d.clone(), false);
    let n = wait_for(&mut s, |n| matches!(n, Notification::Link(_))).await;
    assert!(matches!(
        n,
        Notification::Link(LinkState::Reconnecting { .. })
    ));
    net.set_online(u, d, true);
    let n = wait_for(&mut s, |n| matches!(n, Notification::Link(_))).await;
    assert_eq!(n, Notification::Link(LinkState::Connected));
}

#[tokio::test(start_paused = true)]
async fn a_stream_from_new_subscribed_has_the_first_link_change_a_late_subscribe_misses() {
    let net = net();
    let (u, d) = ids("alice", "a1");
    let (media, _control) = MockMedia::new();
    let client = net.connect(u.clone(), d.clone());
    let (alice, mut early) =
        CallApi::new_subscribed(CallConfig::new(u, d).with_seed(11), client, media);
    // The task reports the link up before anyone else subscribes: the stream from the start
    // has it as its first notification.
    let first = tokio::time::timeout(Duration::from_secs(60), early.recv())
        .await
        .expect("a notification within 60 s");
    assert_eq!(first, Some(Notification::Link(LinkState::Connected)));
    let mut late = alice.subscribe();
    alice.prepare(PrepareConfig::new("r")).await.unwrap();
    let drain = |s: &mut NotificationStream| {
        let mut got = Vec::new();
        while let Some(n) = s.try_recv() {
            got.push(n);
        }
        got
    };
    let (got_early, got_late) = (drain(&mut early), drain(&mut late));
    // From the late subscription on, both have the same notifications, and no link change.
    assert!(
        got_late.iter().any(|n| is_state(n, CallState::Prepared)),
        "{got_late:?}"
    );
    assert_eq!(got_early, got_late);
    assert!(
        !got_late.iter().any(|n| matches!(n, Notification::Link(_))),
        "{got_late:?}"
    );
}
