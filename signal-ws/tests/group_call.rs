//! A three-user group call through a real callapi-signal-server (in process, loopback): invite
//! two, one accepts, the other declines and is invited again mid-call, she leaves, the creator
//! ends it for everyone. The server only relays: the group lives in the devices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::CallConfig;
use callapi_core::connection::SupervisorConfig;
use callapi_core::media::NoMedia;
use callapi_core::CallApi;
use callapi_signal_mock::{group_call_through, wait_linked};
use callapi_signal_ws::WsSignalClient;
use common::*;

fn phone(url: &str, u: &str, d: &str) -> CallApi {
    CallApi::new(
        CallConfig::new(user(u), device(d)),
        WsSignalClient::start(
            ws_transport(url),
            SupervisorConfig::new(identity(u, d), credentials(u)).with_schedule(quick_start()),
        ),
        NoMedia,
    )
}

#[tokio::test]
async fn a_three_user_group_call_through_the_signal_server() {
    let server = start(config()).await;
    let url = server.url();
    let phones = [
        phone(&url, "alice", "a1"),
        phone(&url, "bob", "b1"),
        phone(&url, "carol", "c1"),
    ];
    for p in &phones {
        wait_linked(p, WAIT).await.expect("link up");
    }
    group_call_through(&phones[0], &phones[1], &phones[2], WAIT)
        .await
        .unwrap();
    for p in &phones {
        p.shutdown().await.unwrap();
    }
}
