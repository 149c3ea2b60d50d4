//! A `CallApi` is one tokio task: the call machine, the connection supervisor, the transport
//! link and the media engine's events all live in it. Counted with tokio's runtime metrics
//! through a whole call, over a supervised `MockTransport` and over a bare `MockSignalClient`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lifecycle;

use callapi_core::call::{CallConfig, CallState};
use callapi_core::media::NoMedia;
use callapi_core::protocol::CallType;
use callapi_core::signal::LinkState;
use callapi_core::CallApi;
use callapi_signal_mock::{alive_tasks, FaultPlan, MockNetwork};
use lifecycle::*;

/// A device over a supervised `MockTransport`, with `NoMedia` (a media engine's own tasks,
/// such as `MockMedia`'s event timers, are the engine's, not the `CallApi`'s).
fn device_without_media(net: &MockNetwork, u: &str, d: &str, seed: u64) -> Device {
    let tokens = Tokens::new(&format!("{u}-t"));
    let creds = tokens.credentials();
    Device::start_with(net, u, d, seed, tokens, creds, Media::None)
}

/// A network without delays: it spawns no delivery timers, so only the devices' tasks count.
fn instant_network() -> MockNetwork {
    MockNetwork::new(5, FaultPlan::none())
}

#[tokio::test(start_paused = true)]
async fn a_supervised_call_api_is_one_task_through_a_whole_call() {
    let net = instant_network();
    assert_eq!(alive_tasks(), 0);
    let mut alice = device_without_media(&net, "alice", "a1", 1);
    assert_eq!(
        alive_tasks(),
        1,
        "one task per CallApi, supervisor included"
    );
    let mut bob = device_without_media(&net, "bob", "b1", 2);
    assert_eq!(alive_tasks(), 2);
    alice.wait_link(&LinkState::Connected).await;
    bob.wait_link(&LinkState::Connected).await;
    alice.prepare("alice-room").await;
    bob.prepare("bob-room").await;
    assert_eq!(alive_tasks(), 2, "linked: the link has no task either");

    alice.api.call("bob", CallType::Video).await.unwrap();
    bob.wait_state(CallState::Calling).await;
    assert_eq!(alive_tasks(), 2, "ringing");
    bob.api.accept().await.unwrap();
    alice.wait_state(CallState::Connected).await;
    bob.wait_state(CallState::Connected).await;
    assert_eq!(alive_tasks(), 2, "in a call");
    alice.api.hangup(None).await.unwrap();
    bob.wait_state(CallState::Prepared).await;
    assert_eq!(alive_tasks(), 2, "after the call");

    alice.api.shutdown().await.unwrap();
    bob.api.shutdown().await.unwrap();
    tokio::task::yield_now().await;
    assert_eq!(alive_tasks(), 0, "shutdown ends the task");
}

#[tokio::test(start_paused = true)]
async fn a_call_api_over_a_bare_signal_client_is_one_task() {
    let net = instant_network();
    let (a, b) = (user("alice"), user("bob"));
    let alice = CallApi::new(
        CallConfig::new(a.clone(), device("a1")),
        net.connect(a, device("a1")),
        NoMedia,
    );
    let bob = CallApi::new(
        CallConfig::new(b.clone(), device("b1")),
        net.connect(b, device("b1")),
        NoMedia,
    );
    assert_eq!(alive_tasks(), 2);
    let mut bob_state = bob.state_watch();
    alice
        .prepare(callapi_core::call::PrepareConfig::new("alice-room"))
        .await
        .unwrap();
    bob.prepare(callapi_core::call::PrepareConfig::new("bob-room"))
        .await
        .unwrap();
    alice.call("bob", CallType::Audio).await.unwrap();
    bob_state
        .wait_for(|s| *s == CallState::Calling)
        .await
        .unwrap();
    bob.accept().await.unwrap();
    let mut alice_state = alice.state_watch();
    alice_state
        .wait_for(|s| *s == CallState::Connected)
        .await
        .unwrap();
    assert_eq!(alive_tasks(), 2);
    alice.shutdown().await.unwrap();
    bob.shutdown().await.unwrap();
}
