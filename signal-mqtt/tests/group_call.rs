//! A three-user group call through a real Mosquitto (child process, loopback): invite two, one
//! accepts, the other declines and is invited again mid-call, she leaves, the creator ends it
//! for everyone. The broker only relays: the group lives in the devices.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::CallConfig;
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Supervisor, SupervisorConfig};
use callapi_core::media::NoMedia;
use callapi_core::CallApi;
use callapi_signal_mock::{group_call_through, wait_linked};
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

#[tokio::test]
async fn a_three_user_group_call_over_mosquitto() {
    let broker = Mosquitto::start(&[
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
    ])
    .await;
    let phones = [
        phone(broker.mqtt_config(), "alice", "a1", "alice-pw"),
        phone(broker.mqtt_config(), "bob", "b1", "bob-pw"),
        phone(broker.mqtt_config(), "carol", "c1", "carol-pw"),
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
