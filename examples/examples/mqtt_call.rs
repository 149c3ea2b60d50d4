//! A call over MQTT: the broker is embedded in this process (rumqttd on a free loopback port), so
//! nothing else needs to run. alice calls bob, bob answers, alice sends DTMF, bob hangs up.
//!
//! ```text
//! cargo run -p callapi-examples --example mqtt_call
//! ```
//!
//! Against a real broker, point `MqttConfig::new(host, port)` at it (Mosquitto with the
//! configuration in `signal-mqtt/mosquitto/`, or a cluster: see `signal-mqtt/README.md`) and
//! have the token provider return the password the broker expects.

use std::time::Duration;

use callapi_core::call::{CallConfig, CallState, Notification, PrepareConfig};
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, Supervisor, SupervisorConfig, TokenError};
use callapi_core::media::NoMedia;
use callapi_core::protocol::{CallType, DeviceId, UserId};
use callapi_core::signal::LinkState;
use callapi_core::{CallApi, NotificationStream};
use callapi_examples::describe;
use callapi_signal_mqtt::{EmbeddedBroker, MqttConfig, MqttTransport};

type Error = Box<dyn std::error::Error>;
type Link = tokio::sync::watch::Receiver<LinkState>;

/// A device on the broker, and a watch of its link. The embedded broker takes any password; a
/// real one checks it.
fn device(broker: MqttConfig, user: &str, dev: &str) -> Result<(CallApi, Link), Error> {
    let (user, dev) = (UserId::new(user)?, DeviceId::new(dev)?);
    let tokens = || async { Ok::<_, TokenError>("demo-password".to_owned()) };
    let identity = Identity {
        user: user.clone(),
        device: dev.clone(),
    };
    // Connect at once: one example has no fleet to spread out (apps keep the default schedule,
    // whose start-up jitter spreads clients that start together).
    let config = SupervisorConfig::new(identity, Credentials::token(tokens))
        .with_schedule(RetrySchedule::immediate_first_attempt());
    let signal = Supervisor::start(MqttTransport::new(broker), config);
    let link = signal.link_state();
    Ok((
        CallApi::new(CallConfig::new(user, dev), signal, NoMedia),
        link,
    ))
}

/// Waits (at most 15 s) until the link is up.
async fn linked(who: &str, mut link: Link) -> Result<(), Error> {
    let up = link.wait_for(LinkState::is_connected);
    tokio::time::timeout(Duration::from_secs(15), up)
        .await
        .map_err(|_| format!("{who}: no connection to the broker"))??;
    println!("{who:>5}: connected to the broker");
    Ok(())
}

/// Prints `who`'s notifications until `done` is seen; fails after 15 s.
async fn until(
    who: &str,
    events: &mut NotificationStream,
    done: impl Fn(&Notification) -> bool,
) -> Result<(), Error> {
    let wait = async {
        while let Some(n) = events.recv().await {
            if let Some(line) = describe(&n) {
                println!("{who:>5}: {line}");
            }
            if done(&n) {
                return Ok(());
            }
        }
        Err(format!("{who}: the call API stopped").into())
    };
    tokio::time::timeout(Duration::from_secs(15), wait)
        .await
        .map_err(|_| format!("{who}: timed out"))?
}

fn state(want: CallState) -> impl Fn(&Notification) -> bool {
    move |n| matches!(n, Notification::StateChanged(c) if c.state == want)
}

/// Runs the example (public so that `tests/examples.rs` can run it too).
#[tokio::main]
pub async fn main() -> Result<(), Error> {
    let broker = tokio::task::spawn_blocking(EmbeddedBroker::start).await??;
    println!("embedded MQTT broker on mqtt://{}", broker.addr());
    let (alice, alice_link) = device(broker.mqtt_config(), "alice", "laptop")?;
    let (bob, bob_link) = device(broker.mqtt_config(), "bob", "phone")?;
    let (mut a, mut b) = (alice.subscribe(), bob.subscribe());
    linked("alice", alice_link).await?;
    linked("bob", bob_link).await?;

    alice.prepare(PrepareConfig::new("alice-room")).await?;
    bob.prepare(PrepareConfig::new("bob-room")).await?;
    alice.call("bob", CallType::Audio).await?;
    until("bob", &mut b, state(CallState::Calling)).await?;
    bob.accept().await?;
    until("alice", &mut a, state(CallState::Connected)).await?;
    alice.send_dtmf("42#").await?;
    until("bob", &mut b, |n| {
        matches!(n, Notification::DtmfReceived { .. })
    })
    .await?;
    bob.hangup(Some("bye".into())).await?;
    until("alice", &mut a, state(CallState::Prepared)).await?;
    alice.shutdown().await?;
    bob.shutdown().await?;
    println!("done");
    Ok(())
}
