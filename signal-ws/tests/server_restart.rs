//! The server is killed (or shut down gracefully) in the middle of a connected call and a new
//! one starts on the same port: both clients reconnect on their schedule, the call goes on (it
//! outlives a signaling outage shorter than its grace), and the hang-up afterwards is delivered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::{CallState, StateReason};
use callapi_core::signal::LinkState;
use common::*;

#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill,
    Graceful,
}

async fn call_survives_a_restart(stop: Stop) {
    let server = start(config()).await;
    let addr = server.local_addr();
    // The first connections start at once; the reconnects follow the default schedule (the
    // first reconnect attempt is at 0 s + 0–2 s jitter).
    let mut alice = Device::start(&server.url(), "alice", "a1", 1);
    let mut bob = Device::start(&server.url(), "bob", "b1", 2);
    alice.ready().await;
    bob.ready().await;
    let call_id = connected_call(&mut alice, &mut bob).await;

    match stop {
        Stop::Kill => server.abort().await,
        Stop::Graceful => server.shutdown().await,
    }
    let mut c = config();
    c.listen = addr;
    let server = start(c).await;
    assert_eq!(server.local_addr(), addr);

    for d in [&mut alice, &mut bob] {
        d.wait_for("a reconnect", |n| {
            matches!(
                n,
                callapi_core::call::Notification::Link(LinkState::Reconnecting { attempt: 1, .. })
            )
        })
        .await;
        d.wait_link(&LinkState::Connected).await;
    }
    assert_eq!(server.stats().devices, 2);
    for d in [&alice, &bob] {
        assert_eq!(d.api.state(), CallState::Connected, "{}", d.user);
        assert_eq!(d.api.call_info().await.unwrap().unwrap().call_id, call_id);
    }

    alice.api.send_message("after the restart").await.unwrap();
    bob.wait_for("message", |n| {
        matches!(n, callapi_core::call::Notification::MessageReceived { data, .. } if data == "after the restart")
    })
    .await;
    alice.api.hangup(None).await.unwrap();
    bob.wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    alice
        .wait_change(CallState::Prepared, StateReason::LocalHangup)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_the_server_being_killed_and_restarted() {
    call_survives_a_restart(Stop::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_survives_a_graceful_restart_and_clients_reconnect_at_once() {
    call_survives_a_restart(Stop::Graceful).await;
}

#[tokio::test]
async fn a_graceful_shutdown_closes_sockets_with_going_away() {
    let server = start(config()).await;
    let addr = server.local_addr();
    let mut raw = raw_user(&server, "alice", "a1").await;
    let stopping = tokio::spawn(server.shutdown());
    assert_eq!(
        raw.expect_close().await,
        callapi_signal_ws::frames::close_code::GOING_AWAY
    );
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
