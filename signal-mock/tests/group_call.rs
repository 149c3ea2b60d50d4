//! A three-user group call over `MockNetwork` (in-memory, paused clock): invite two, one
//! accepts, the other declines and is invited again mid-call, she leaves, the creator ends it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use callapi_core::call::CallConfig;
use callapi_core::protocol::{DeviceId, UserId};
use callapi_core::CallApi;
use callapi_signal_mock::{group_call_through, FaultPlan, MockMedia, MockNetwork};

fn phone(net: &MockNetwork, u: &str, d: &str) -> CallApi {
    let (user, device) = (UserId::new(u).unwrap(), DeviceId::new(d).unwrap());
    let client = net.connect(user.clone(), device.clone());
    let (media, _control) = MockMedia::new();
    CallApi::new(CallConfig::new(user, device), client, media)
}

#[tokio::test(start_paused = true)]
async fn a_three_user_group_call_over_the_mock_network() {
    let net = MockNetwork::new(5, FaultPlan::default());
    let alice = phone(&net, "alice", "a1");
    let bob = phone(&net, "bob", "b1");
    let carol = phone(&net, "carol", "c1");
    group_call_through(&alice, &bob, &carol, Duration::from_secs(10))
        .await
        .unwrap();
}
