//! Two users call each other over MQTT, with the broker embedded in this process (rumqttd on a
//! free loopback port): `cargo run -p callapi-signal-mqtt --example embedded_call`.
//!
//! Point `MqttConfig::new(host, port)` at a real broker (Mosquitto with the configuration in
//! `signal-mqtt/mosquitto/`) to run the same code across machines.

use std::time::Duration;

use callapi_core::call::{CallConfig, CallState, Notification, PrepareConfig};
use callapi_core::connection::{Credentials, Identity, Supervisor, SupervisorConfig, TokenError};
use callapi_core::media::NoMedia;
use callapi_core::protocol::{CallType, DeviceId, UserId};
use callapi_core::signal::LinkState;
use callapi_core::CallApi;
use callapi_signal_mqtt::{EmbeddedBroker, MqttTransport};

fn device(
    broker: &EmbeddedBroker,
    user: &str,
    dev: &str,
) -> Result<CallApi, Box<dyn std::error::Error>> {
    let (user, dev) = (UserId::new(user)?, DeviceId::new(dev)?);
    // The embedded broker accepts any password; a real one checks the token.
    let tokens = || async { Ok::<_, TokenError>("demo-token".to_owned()) };
    let identity = Identity {
        user: user.clone(),
        device: dev.clone(),
    };
    let signal = Supervisor::start(
        MqttTransport::new(broker.mqtt_config()),
        SupervisorConfig::new(identity, Credentials::token(tokens)),
    );
    Ok(CallApi::new(CallConfig::new(user, dev), signal, NoMedia))
}

/// Subscribes now (so nothing is missed) and resolves at the first notification matching `what`.
fn until(
    api: &CallApi,
    what: impl Fn(&Notification) -> bool,
) -> impl std::future::Future<Output = Result<(), String>> {
    let mut events = api.subscribe();
    let who = api.user_id().clone();
    async move {
        let wait = async {
            while let Some(n) = events.recv().await {
                if what(&n) {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(15), wait)
            .await
            .map_err(|_| format!("{who}: timed out"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = EmbeddedBroker::start()?;
    println!("embedded MQTT broker on {}", broker.addr());
    let alice = device(&broker, "alice", "laptop")?;
    let bob = device(&broker, "bob", "phone")?;
    for api in [&alice, &bob] {
        let mut watch = api.subscribe();
        let who = api.user_id().clone();
        tokio::spawn(async move {
            while let Some(n) = watch.recv().await {
                match n {
                    Notification::StateChanged(c) => {
                        println!("{who:>5}: {:?} ({:?})", c.state, c.reason)
                    }
                    Notification::Link(s) => println!("{who:>5}: link {s:?}"),
                    _ => {}
                }
            }
        });
    }
    let connected = |n: &Notification| matches!(n, Notification::Link(LinkState::Connected));
    let (a, b) = tokio::join!(until(&alice, connected), until(&bob, connected));
    a?;
    b?;
    alice.prepare(PrepareConfig::new("alice-room")).await?;
    bob.prepare(PrepareConfig::new("bob-room")).await?;

    let ringing = until(
        &bob,
        |n| matches!(n, Notification::StateChanged(c) if c.state == CallState::Calling),
    );
    alice.call("bob", CallType::Audio).await?;
    ringing.await?;
    let up = until(
        &alice,
        |n| matches!(n, Notification::StateChanged(c) if c.state == CallState::Connected),
    );
    bob.accept().await?;
    up.await?;
    let down = until(
        &bob,
        |n| matches!(n, Notification::StateChanged(c) if c.state == CallState::Prepared),
    );
    alice.hangup(None).await?;
    down.await?;
    alice.shutdown().await?;
    bob.shutdown().await?;
    println!("done");
    Ok(())
}
