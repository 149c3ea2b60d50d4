//! A client given several server URLs (`WsTransport::with_failover`, the nodes of a fleet)
//! reaches the next one when a server is down or dies, within its reconnect schedule, and
//! does not try a refused token on the other nodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::{CallState, Notification, StateReason};
use callapi_core::signal::LinkState;
use callapi_signal_ws::client::{ClientError, WsTransport};
use common::*;

/// A loopback URL nothing listens on (a port bound and released again).
fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("ws://{addr}/v1/signal")
}

fn fleet_transport(urls: &[String]) -> WsTransport {
    WsTransport::with_failover(urls)
        .unwrap()
        .with_options(client_options())
}

#[tokio::test]
async fn a_device_reaches_the_next_url_in_its_first_attempt_when_the_first_is_down() {
    let server = start(config()).await;
    let urls = [dead_url(), server.url()];
    let mut alice = Device::start_with(
        fleet_transport(&urls),
        "alice",
        "a1",
        1,
        credentials("alice"),
    );
    alice.ready().await;
    alice.drain();

    assert_eq!(server.stats().devices, 1);
    // Connected by the first attempt: no reconnect was scheduled on the way.
    let links = alice.links();
    assert!(
        !links
            .iter()
            .any(|l| matches!(l, LinkState::Reconnecting { .. })),
        "{links:?}"
    );
}

#[tokio::test]
async fn devices_of_a_killed_node_reconnect_to_the_next_and_the_call_goes_on() {
    let first = start(config()).await;
    let second = start(config()).await;
    let urls = [first.url(), second.url()];
    let mut alice = Device::start_with(
        fleet_transport(&urls),
        "alice",
        "a1",
        1,
        credentials("alice"),
    );
    let mut bob = Device::start_with(fleet_transport(&urls), "bob", "b1", 2, credentials("bob"));
    alice.ready().await;
    bob.ready().await;
    assert_eq!(first.stats().devices, 2, "both start on the first URL");
    assert_eq!(second.stats().devices, 0);
    let call_id = connected_call(&mut alice, &mut bob).await;

    first.abort().await;
    for d in [&mut alice, &mut bob] {
        // One reconnect attempt: the dead node refuses, the next one in the same attempt takes it.
        d.wait_for("a reconnect", |n| {
            matches!(
                n,
                Notification::Link(LinkState::Reconnecting { attempt: 1, .. })
            )
        })
        .await;
        d.wait_link(&LinkState::Connected).await;
        let after: Vec<_> = d
            .links()
            .into_iter()
            .skip_while(|l| !matches!(l, LinkState::Reconnecting { attempt: 1, .. }))
            .collect();
        assert!(
            !after
                .iter()
                .any(|l| matches!(l, LinkState::Reconnecting { attempt, .. } if *attempt > 1)),
            "{}: {after:?}",
            d.user
        );
    }
    assert_eq!(second.stats().devices, 2);
    for d in [&alice, &bob] {
        assert_eq!(d.api.state(), CallState::Connected, "{}", d.user);
        assert_eq!(d.api.call_info().await.unwrap().unwrap().call_id, call_id);
    }

    alice.api.send_message("after the failover").await.unwrap();
    bob.wait_for(
        "message",
        |n| matches!(n, Notification::MessageReceived { data, .. } if data == "after the failover"),
    )
    .await;
    alice.api.hangup(None).await.unwrap();
    bob.wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
}

#[tokio::test]
async fn a_refused_token_is_not_tried_on_the_other_nodes() {
    // The first node has another secret: it refuses the token for good.
    let mut other = config();
    other.secret = b"another-secret-another-secret-0123".to_vec();
    let refusing = start(other).await;
    let accepting = start(config()).await;
    let urls = [refusing.url(), accepting.url()];
    let mut alice = Device::start_with(
        fleet_transport(&urls),
        "alice",
        "a1",
        1,
        credentials("alice"),
    );
    alice
        .wait_for("the link failing", |n| {
            matches!(n, Notification::Link(LinkState::Failed { .. }))
        })
        .await;
    assert_eq!(accepting.stats().connections, 0);
    assert_eq!(accepting.stats().devices, 0);
}

#[test]
fn the_url_list_is_checked_up_front() {
    let none: [&str; 0] = [];
    assert_eq!(
        WsTransport::with_failover(none).unwrap_err(),
        ClientError::NoUrl
    );
    let err = WsTransport::with_failover(["ws://127.0.0.1:1", "http://127.0.0.1:2"]).unwrap_err();
    assert!(
        matches!(&err, ClientError::InvalidUrl { url, .. } if url == "http://127.0.0.1:2"),
        "{err}"
    );
    let t = WsTransport::with_failover(["ws://127.0.0.1:1", "ws://127.0.0.1:2/"]).unwrap();
    assert_eq!(
        t.urls(),
        ["ws://127.0.0.1:1/v1/signal", "ws://127.0.0.1:2/v1/signal"]
    );
    assert_eq!(t.url(), "ws://127.0.0.1:1/v1/signal");
}
