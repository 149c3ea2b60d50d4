//! Over signal-mqtt, a `CallApi` is at most two tokio tasks: its own, and the pump that
//! rumqttc's event loop needs (publishing from the task that polls the event loop deadlocks
//! rumqttc). Mosquitto is watched from a runtime of its own, so tokio's runtime metrics count
//! only the clients' tasks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::CallConfig;
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Supervisor, SupervisorConfig};
use callapi_core::media::NoMedia;
use callapi_core::CallApi;
use callapi_signal_mock::{alive_tasks, call_through, wait_linked};
use callapi_signal_mqtt::{MqttConfig, MqttTransport};
use common::*;

fn phone(config: MqttConfig, u: &str, d: &str, password: &str) -> CallApi {
    CallApi::new(
        CallConfig::new(user(u), device(d)),
        Supervisor::start(
            MqttTransport::new(config),
            SupervisorConfig::new(identity(u, d), fixed_token(password))
                .with_schedule(RetrySchedule::immediate_first_attempt()),
        ),
        NoMedia,
    )
}

#[test]
fn a_call_api_over_mqtt_is_at_most_two_tasks_through_a_whole_call() {
    let broker_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let broker = broker_rt.block_on(Mosquitto::start(&[
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
    ]));
    let clients = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    clients.block_on(async {
        assert_eq!(alive_tasks(), 0);
        let alice = phone(broker.mqtt_config(), "alice", "a1", "alice-pw");
        let bob = phone(broker.mqtt_config(), "bob", "b1", "bob-pw");
        assert_eq!(
            alive_tasks(),
            2,
            "one task per CallApi before the link is up"
        );
        for p in [&alice, &bob] {
            wait_linked(p, WAIT).await.expect("link up");
        }
        assert_eq!(alive_tasks(), 4, "linked: one rumqttc pump per link");
        call_through(&alice, &bob, WAIT, |stage| {
            assert_eq!(alive_tasks(), 4, "{stage}")
        })
        .await
        .unwrap();

        alice.shutdown().await.unwrap();
        bob.shutdown().await.unwrap();
        tokio::task::yield_now().await;
        assert_eq!(alive_tasks(), 0, "shutdown ends both tasks");
    });
    drop(broker);
}
