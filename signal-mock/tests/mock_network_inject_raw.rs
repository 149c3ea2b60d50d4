//! Raw bytes injected into a device are decoded like wire input: valid envelopes become
//! messages, anything else an `Invalid` event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::protocol::{encode, DecodeError};
use callapi_core::signal::{LinkState, SignalClient, SignalEvent};
use callapi_signal_mock::{FaultPlan, MockNetwork, MockNetworkError};
use common::{dev, message, user};

#[tokio::test(start_paused = true)]
async fn invalid_json_becomes_an_invalid_event() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut bob = net.connect(user("bob"), dev("b1"));
    assert_eq!(
        bob.next_event().await,
        Some(SignalEvent::Link(LinkState::Connected))
    );
    net.inject_raw(&user("bob"), &dev("b1"), b"{not json")
        .unwrap();
    assert!(matches!(
        bob.next_event().await,
        Some(SignalEvent::Invalid(DecodeError::Malformed(_)))
    ));
    net.inject_raw(&user("bob"), &dev("b1"), &[0xff, 0xfe])
        .unwrap();
    assert_eq!(
        bob.next_event().await,
        Some(SignalEvent::Invalid(DecodeError::NotUtf8))
    );
}

#[tokio::test(start_paused = true)]
async fn valid_bytes_become_a_message() {
    let net = MockNetwork::new(1, FaultPlan::default().with_drop_rate(1.0));
    let mut bob = net.connect(user("bob"), dev("b1"));
    assert_eq!(
        bob.next_event().await,
        Some(SignalEvent::Link(LinkState::Connected))
    );
    let env = message("alice", "a1", "bob", 1, 5, 15_000);
    // Injection bypasses the fault plan.
    net.inject_raw(&user("bob"), &dev("b1"), &encode(&env).unwrap())
        .unwrap();
    assert_eq!(bob.next_event().await, Some(SignalEvent::Message(env)));
}

#[tokio::test(start_paused = true)]
async fn injecting_into_an_unconnected_device_is_an_error() {
    let net = MockNetwork::new(1, FaultPlan::default());
    assert_eq!(
        net.inject_raw(&user("bob"), &dev("b1"), b"{}"),
        Err(MockNetworkError::NotConnected {
            user: user("bob"),
            device: dev("b1")
        })
    );
    let _bob = net.connect(user("bob"), dev("b1"));
    net.set_online(user("bob"), dev("b1"), false);
    assert!(net.inject_raw(&user("bob"), &dev("b1"), b"{}").is_err());
    assert!(net
        .emit_token_will_expire(&user("bob"), &dev("b1"))
        .is_err());
}
