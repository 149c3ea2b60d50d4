//! A full video call through `CallApi` on both sides (with `MockMedia`) over a real server on
//! 127.0.0.1: ringing, accept, `Connected`, an in-call message, DTMF and the hang-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::{CallEvent, CallState, Notification, StateReason};
use callapi_core::protocol::CallType;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_call_over_websocket_connects_and_hangs_up() {
    let server = start(config()).await;
    let mut alice = Device::start(&server.url(), "alice", "a1", 1);
    let mut bob = Device::start(&server.url(), "bob", "b1", 2);
    alice.ready().await;
    bob.ready().await;

    let call_id = alice.api.call("bob", CallType::Video).await.unwrap();
    let ring = bob
        .wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    let info = ring.call.expect("call info on ringing");
    assert_eq!(info.call_id, call_id);
    assert_eq!(info.room_id, "alice-room");
    alice.wait_event(CallEvent::RemoteUserRecvCall).await;

    bob.api.accept().await.unwrap();
    let connected = alice.wait_state(CallState::Connected).await;
    assert_eq!(connected.reason, StateReason::RecvRemoteFirstFrame);
    let timings = connected.timings.expect("timings on Connected");
    assert!(timings.remote_user_recv_call.is_some());
    assert!(timings.first_remote_frame.is_some());
    bob.wait_state(CallState::Connected).await;

    bob.api.send_message("over the socket").await.unwrap();
    let m = alice
        .wait_for("message", |n| {
            matches!(n, Notification::MessageReceived { .. })
        })
        .await;
    assert!(matches!(m, Notification::MessageReceived { data, .. } if data == "over the socket"));
    alice.api.send_dtmf("42#").await.unwrap();
    let d = bob
        .wait_for("dtmf", |n| matches!(n, Notification::DtmfReceived { .. }))
        .await;
    assert!(matches!(d, Notification::DtmfReceived { digits, .. } if digits == "42#"));

    alice.api.hangup(None).await.unwrap();
    let end = bob
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    assert!(end.duration.is_some());
    alice
        .wait_change(CallState::Prepared, StateReason::LocalHangup)
        .await;

    let relayed = server_metric(&server, "callapi_signal_envelopes_relayed_total");
    assert!(relayed >= 10.0, "relayed {relayed}");
    assert_eq!(server.stats().devices, 2);
    alice.api.shutdown().await.unwrap();
    bob.api.shutdown().await.unwrap();
    server.shutdown().await;
}

#[tokio::test]
async fn ws_signal_client_connect_is_a_supervised_signal_client() {
    use callapi_core::connection::TokenError;
    use callapi_core::signal::{LinkState, SignalClient, SignalEvent};
    use callapi_signal_ws::WsSignalClient;

    let server = start(config()).await;
    let provider = || async { Ok::<_, TokenError>(token("alice")) };
    let mut alice =
        WsSignalClient::connect(&server.url(), identity("alice", "a1"), provider).unwrap();
    // The first attempt follows the reconnect schedule: within 0–2 s (+ 0–2 s token fetch).
    // The client has no task: it connects while polled.
    let state = alice.link_state();
    tokio::time::timeout(WAIT, async {
        while alice.next_event().await.unwrap() != SignalEvent::Link(LinkState::Connected) {}
    })
    .await
    .unwrap();
    assert_eq!(*state.borrow(), LinkState::Connected);
    alice
        .send(message(("alice", "a1"), "alice", "note to self"))
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, async {
        loop {
            if let SignalEvent::Message(env) = alice.next_event().await.unwrap() {
                return env;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        got.body,
        callapi_core::protocol::Body::Message {
            data: "note to self".into()
        }
    );
    assert!(WsSignalClient::connect("http://nope", identity("a", "b"), provider).is_err());
    alice.close().await;
}
