//! The shipped client id plugin (`signal-mqtt/mosquitto/plugin/`) on a real Mosquitto: a client
//! id is bound to its user name, so no authenticated user can take over another user's device.
//! Without the plugin, Mosquitto would close that device's connection (session takeover) and
//! give its persistent session to the intruder, who resumes it (clean session 0) or wipes it
//! (clean session 1): the envelopes queued for the device never reach it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::connection::{LinkEvent, TransportLink};
use callapi_signal_mqtt::client_id;
use common::*;
use rumqttc::ConnectReturnCode;

const USERS: [(&str, &str); 3] = [
    ("alice", "alice-token"),
    ("bob", "bob-token"),
    ("mallory", "mallory-token"),
];

/// The plugin's log line for a refused client id.
fn refusal_line(client_id: &str, user: &str) -> String {
    format!("callapi_clientid: refused client id \"{client_id}\" for user \"{user}\"")
}

/// `user`, with its right password, tries `client_id` twice — resuming the session (clean
/// session 0, which would hand over its queue) and starting afresh (clean session 1, which
/// would wipe it): the broker refuses both ("not authorized") and the plugin logs why.
async fn assert_refused(broker: &Mosquitto, client_id: &str, user: &str, password: &str) {
    let line = refusal_line(client_id, user);
    let before = broker.count(&line);
    let refused = broker.count("not authorised");
    for clean_session in [false, true] {
        let attempt =
            RawClient::try_connect_as(broker.port(), client_id, user, password, clean_session)
                .await;
        assert!(
            matches!(attempt, Err(ConnectReturnCode::NotAuthorized)),
            "{user} connecting as {client_id} (clean session {clean_session}): {:?}; log: {:#?}",
            attempt.as_ref().map(|_| "accepted"),
            broker.log()
        );
    }
    broker
        .wait_log("the plugin's two refusals", |log| {
            count(log, &line) == before + 2
        })
        .await;
    // Mosquitto's own lines for them come last.
    broker.assert_count("not authorised", refused + 2).await;
}

/// `user` connects with `client_id` (clean session).
async fn assert_accepted(broker: &Mosquitto, client_id: &str, user: &str, password: &str) {
    let attempt = RawClient::try_connect_as(broker.port(), client_id, user, password, true).await;
    assert!(
        attempt.is_ok(),
        "{user} connecting as {client_id}: {:?}; log: {:#?}",
        attempt.as_ref().map(|_| "accepted"),
        broker.log()
    );
}

#[tokio::test]
async fn another_user_cannot_take_over_a_connected_device() {
    init_tracing();
    let broker = Mosquitto::start(&USERS).await;
    let mut bob = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    let mut alice = connect_link(broker.mqtt_config(), "alice", "a1", "alice-token").await;

    assert_refused(&broker, "callapi-bob-b1", "mallory", "mallory-token").await;

    // bob's connection is still up: an envelope sent after the attempts arrives on it.
    let after = envelope("alice", "a1", "bob", None, message("still yours"));
    alice.send(after.clone()).await.unwrap();
    assert_eq!(next_link_event(&mut bob).await, LinkEvent::Message(after));
    assert_eq!(
        broker.count("already connected, closing old connection"),
        0,
        "{:#?}",
        broker.log()
    );
    assert_eq!(broker.count(&connected_line("bob", "b1")), 1);
    bob.close().await;
    alice.close().await;
}

#[tokio::test]
async fn the_envelopes_queued_for_an_offline_device_wait_for_it_alone() {
    init_tracing();
    let broker = Mosquitto::start(&USERS).await;
    // bob's device opens its persistent session and goes away cleanly.
    let mut bob = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    bob.close().await;
    broker
        .wait_log("bob's disconnection", |log| {
            count(log, "Client callapi-bob-b1 disconnected") == 1
        })
        .await;

    let mut alice = connect_link(broker.mqtt_config(), "alice", "a1", "alice-token").await;
    let queued = envelope("alice", "a1", "bob", None, message("queued for bob"));
    alice.send(queued.clone()).await.unwrap();
    broker
        .wait_log("the envelope at the broker", |log| {
            log.iter().any(|l| {
                l.contains("Received PUBLISH from callapi-alice-a1")
                    && l.contains("'callapi/v1/inbox/bob/alice'")
            })
        })
        .await;

    assert_refused(&broker, "callapi-bob-b1", "mallory", "mallory-token").await;

    // bob's device comes back to its session, and the envelope is still there for it.
    let mut bob = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    assert_eq!(next_link_event(&mut bob).await, LinkEvent::Message(queued));
    // A resumed session (session present = 1).
    broker
        .assert_count("Sending CONNACK to callapi-bob-b1 (1, 0)", 1)
        .await;
    bob.close().await;
    alice.close().await;
}

#[tokio::test]
async fn no_user_name_reaches_another_users_client_ids_through_the_escaping() {
    init_tracing();
    let broker = Mosquitto::start(&[
        ("al-ice", "al-ice-token"),
        ("al_2dice", "al_2dice-token"),
        ("al", "al-token"),
        ("bob", "bob-token"),
    ])
    .await;
    let victim_id = client_id(&user("al-ice"), &device("d1"));
    assert_eq!(victim_id, "callapi-al_2dice-d1");
    let mut victim = connect_link(broker.mqtt_config(), "al-ice", "d1", "al-ice-token").await;

    // "al_2dice" is the victim's user part as it stands in the client id: a check that
    // compared the client id with the user name unescaped would let this user in.
    assert_refused(&broker, &victim_id, "al_2dice", "al_2dice-token").await;
    // "al" is a prefix of it: a prefix check without the `-` after the user would let it in.
    assert_refused(&broker, &victim_id, "al", "al-token").await;

    // Both have client ids of their own (al_2dice escaped is al_5f2dice).
    for (u, token, own_id) in [
        ("al_2dice", "al_2dice-token", "callapi-al_5f2dice-d1"),
        ("al", "al-token", "callapi-al-d1"),
    ] {
        assert_eq!(client_id(&user(u), &device("d1")), own_id);
        let mut own = connect_link(broker.mqtt_config(), u, "d1", token).await;
        own.close().await;
    }

    // al-ice kept her connection all along.
    let mut bob = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    let after = envelope("bob", "b1", "al-ice", None, message("still yours"));
    bob.send(after.clone()).await.unwrap();
    assert_eq!(
        next_link_event(&mut victim).await,
        LinkEvent::Message(after)
    );
    assert_eq!(broker.count("already connected, closing old connection"), 0);
    victim.close().await;
    bob.close().await;
}

#[tokio::test]
async fn a_user_connects_with_conforming_client_ids_of_its_own_only() {
    init_tracing();
    let broker = Mosquitto::start(&[("bob", "bob-token"), ("al-ice", "al-ice-token")]).await;

    // Conforming: callapi-{escaped user}-{anything of letters, digits, '.', '_'}.
    let mut device = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    for id in [
        "callapi-bob-raw",
        "callapi-bob-debug.cli_5f2",
        "callapi-bob-_",
    ] {
        assert_accepted(&broker, id, "bob", "bob-token").await;
    }
    let mut escaped = connect_link(broker.mqtt_config(), "al-ice", "tab 2", "al-ice-token").await;
    broker
        .wait_log("al-ice's escaped client id", |log| {
            count(log, &connected_line("al_2dice", "tab_202")) == 1
        })
        .await;

    // Not conforming, though they name bob: refused, with bob's right password.
    for id in [
        "bob-b1",
        "raw-bob",
        "callapi-bob",
        "callapi-bob-",
        "callapi-bob-b1-x",
        "callapi-bob-b/1",
        "callapi-BOB-b1",
        "callapi-bobb1",
        "xcallapi-bob-b1",
    ] {
        assert_refused(&broker, id, "bob", "bob-token").await;
    }
    // al-ice's id unescaped is not hers.
    assert_refused(&broker, "callapi-al-ice-d1", "al-ice", "al-ice-token").await;
    // An empty client id (clean session only; Mosquitto names the client auto-…) is refused.
    let empty = RawClient::try_connect_as(broker.port(), "", "bob", "bob-token", true).await;
    assert!(
        matches!(empty, Err(ConnectReturnCode::NotAuthorized)),
        "{:?}",
        empty.as_ref().map(|_| "accepted")
    );
    broker
        .wait_log("the plugin's refusal of auto-…", |log| {
            count(log, "callapi_clientid: refused client id \"auto-") == 1
        })
        .await;

    device.close().await;
    escaped.close().await;
}

#[tokio::test]
async fn the_binding_survives_a_configuration_reload() {
    init_tracing();
    let broker = Mosquitto::start(&USERS).await;
    let mut bob = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;

    // A reload re-registers the password file's check; the plugin's must still come first.
    broker.reload().await;
    assert_refused(&broker, "callapi-bob-b1", "mallory", "mallory-token").await;

    // The password file still decides for conforming client ids.
    let refused = broker.count("not authorised");
    let wrong =
        RawClient::try_connect_as(broker.port(), "callapi-bob-raw", "bob", "not-it", true).await;
    assert!(matches!(wrong, Err(ConnectReturnCode::NotAuthorized)));
    // Mosquitto logs the refusal after the plugin would have: then the plugin said nothing.
    broker.assert_count("not authorised", refused + 1).await;
    assert_eq!(broker.count(&refusal_line("callapi-bob-raw", "bob")), 0);
    assert_accepted(&broker, "callapi-bob-raw", "bob", "bob-token").await;

    // bob's device kept its connection through the reload and the attempts.
    let mut alice = connect_link(broker.mqtt_config(), "alice", "a1", "alice-token").await;
    let after = envelope("alice", "a1", "bob", None, message("still yours"));
    alice.send(after.clone()).await.unwrap();
    assert_eq!(next_link_event(&mut bob).await, LinkEvent::Message(after));
    bob.close().await;
    alice.close().await;
}
