//! Over signal-ws, a `CallApi` is one tokio task: its supervisor and its WebSocket link run
//! inside it (the link has no task of its own). The server runs on a runtime of its own so that
//! tokio's runtime metrics count only the clients' tasks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::CallConfig;
use callapi_core::connection::SupervisorConfig;
use callapi_core::media::NoMedia;
use callapi_core::CallApi;
use callapi_signal_mock::{alive_tasks, call_through, wait_linked};
use callapi_signal_ws::server::SignalServer;
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

#[test]
fn a_call_api_over_websocket_is_one_task_through_a_whole_call() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = server_rt.block_on(SignalServer::start(config())).unwrap();
    let url = server.url();
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    clients.block_on(async {
        assert_eq!(alive_tasks(), 0);
        let alice = phone(&url, "alice", "a1");
        let bob = phone(&url, "bob", "b1");
        assert_eq!(alive_tasks(), 2, "one task per CallApi");
        for p in [&alice, &bob] {
            wait_linked(p, WAIT).await.expect("link up");
        }
        assert_eq!(alive_tasks(), 2, "linked: the WebSocket link has no task");
        call_through(&alice, &bob, WAIT, |stage| {
            assert_eq!(alive_tasks(), 2, "{stage}")
        })
        .await
        .unwrap();

        alice.shutdown().await.unwrap();
        bob.shutdown().await.unwrap();
        tokio::task::yield_now().await;
        assert_eq!(alive_tasks(), 0, "shutdown ends the task");
    });
    server_rt.block_on(server.shutdown());
}
