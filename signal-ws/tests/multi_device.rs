//! Two devices of one user online at once: an invite rings both (fan-out), the first accept
//! wins and the other device ends with `AnsweredElsewhere`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::{CallState, StateReason};
use callapi_core::protocol::CallType;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_devices_ring_and_the_first_accept_wins() {
    let server = start(config()).await;
    let mut alice = Device::start(&server.url(), "alice", "a1", 1);
    let mut phone = Device::start(&server.url(), "bob", "phone", 2);
    let mut laptop = Device::start(&server.url(), "bob", "laptop", 3);
    alice.ready().await;
    phone.ready().await;
    laptop.ready().await;
    assert_eq!(server.stats().devices, 3);
    assert_eq!(server.stats().users, 2);

    let call_id = alice.api.call("bob", CallType::Video).await.unwrap();
    for d in [&mut phone, &mut laptop] {
        let ring = d
            .wait_change(CallState::Calling, StateReason::RemoteVideoCall)
            .await;
        assert_eq!(ring.call.unwrap().call_id, call_id);
    }

    laptop.api.accept().await.unwrap();
    phone
        .wait_change(CallState::Prepared, StateReason::AnsweredElsewhere)
        .await;
    alice.wait_state(CallState::Connected).await;
    laptop.wait_state(CallState::Connected).await;
    assert_eq!(
        alice.api.call_info().await.unwrap().unwrap().remote_device,
        Some(device("laptop"))
    );

    laptop.api.hangup(None).await.unwrap();
    alice
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    phone.drain();
    assert_eq!(phone.api.state(), CallState::Prepared);
    assert!(
        !phone
            .states()
            .contains(&(CallState::Connected, StateReason::LocalAccepted)),
        "{:?}",
        phone.states()
    );
}
