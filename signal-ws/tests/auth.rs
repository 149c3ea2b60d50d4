//! Authentication and identity: missing, malformed, badly signed and expired tokens get HTTP 401
//! and no socket (with the client mapping each to the right `ConnectError`); the server never
//! relays an envelope whose sender is not the token's identity; access-link tokens only reach
//! calls in their room.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallState, StateReason};
use callapi_core::connection::{ConnectError, Credentials, Transport};
use callapi_core::protocol::{Body, CallType};
use callapi_signal_ws::auth::{Claims, TokenAuthority};
use callapi_signal_ws::client::WsTransport;
use common::*;

const QUIET: Duration = Duration::from_millis(300);

#[tokio::test]
async fn upgrades_without_a_valid_token_get_401_and_no_socket() {
    let server = start(config()).await;
    let url = server.url();
    let other_secret = TokenAuthority::new(b"another-secret").unwrap();
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "Bearer realm=\"callapi\""),
        ("malformed", Some("not.a.jwt".into()), "invalid_token"),
        (
            "bad_signature",
            Some(other_secret.mint(&Claims::new("alice", HOUR)).unwrap()),
            "bad signature",
        ),
        (
            "expired",
            Some(mint(
                &Claims::new("alice", HOUR).expiring_at(now_secs() - 30),
            )),
            "error_description=\"token expired\"",
        ),
    ];
    for (reason, token, www) in &cases {
        let err = raw_connect(&url, token.as_deref(), "a1")
            .await
            .err()
            .unwrap_or_else(|| panic!("{reason}: the upgrade must be refused"));
        let tokio_tungstenite::tungstenite::Error::Http(resp) = &err else {
            panic!("{reason}: expected an HTTP refusal, got {err}");
        };
        assert_eq!(resp.status().as_u16(), 401, "{reason}");
        let header = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            header.contains(www),
            "{reason}: WWW-Authenticate {header:?}"
        );
        let metric_name = format!("callapi_signal_auth_failures_total{{reason=\"{reason}\"}}");
        assert_eq!(server_metric(&server, &metric_name), 1.0, "{reason}");
    }
    assert_eq!(server.stats().connections, 0);
    assert_eq!(
        server_metric(&server, "callapi_signal_connections_accepted_total"),
        0.0
    );
}

#[tokio::test]
async fn the_client_maps_refusals_to_connect_errors() {
    let server = start(config()).await;
    let mut transport = WsTransport::new(&server.url()).unwrap();
    let id = identity("alice", "a1");

    let expired = mint(&Claims::new("alice", HOUR).expiring_at(now_secs() - 30));
    let err = transport.connect(&id, &expired).await.err().unwrap();
    assert_eq!(err, ConnectError::TokenExpired);

    let forged = TokenAuthority::new(b"another-secret")
        .unwrap()
        .mint(&Claims::new("alice", HOUR))
        .unwrap();
    let err = transport.connect(&id, &forged).await.err().unwrap();
    assert!(matches!(err, ConnectError::Unauthorized(_)), "{err:?}");
    assert!(err.is_permanent());

    // A token for another user: the server accepts it, the client refuses to speak as bob.
    let err = transport.connect(&id, &token("bob")).await.err().unwrap();
    assert!(matches!(err, ConnectError::Unauthorized(_)), "{err:?}");

    // A token bound to another device.
    let other_device = mint(&Claims::new("alice", HOUR).with_device("a2"));
    let err = transport.connect(&id, &other_device).await.err().unwrap();
    assert!(matches!(err, ConnectError::Unauthorized(_)), "{err:?}");
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_auth_failures_total{reason=\"device_mismatch\"}"
        ),
        1.0
    );

    // Nobody listening: transient.
    let dead = WsTransport::new("ws://127.0.0.1:9/v1/signal").unwrap();
    let err = { dead }.connect(&id, &token("alice")).await.err().unwrap();
    assert!(matches!(err, ConnectError::Transient(_)), "{err:?}");
}

#[tokio::test]
async fn a_token_in_the_query_string_works_for_browsers() {
    let server = start(config()).await;
    let url = format!("{}?token={}", server.url(), token("alice"));
    let mut raw = raw_connect(&url, None, "a1").await.expect("upgrade");
    let hello = raw.json().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["user"], "alice");
    assert_eq!(hello["device"], "a1");
}

#[tokio::test]
async fn spoofed_senders_are_refused_with_an_error_frame() {
    let server = start(config()).await;
    let mut alice = raw_user(&server, "alice", "a1").await;
    let mut bob = raw_user(&server, "bob", "b1").await;

    // alice claims to be carol.
    let spoof = message(("carol", "c1"), "bob", "I am carol");
    alice.send_env(&spoof).await;
    let err = alice.expect_error("spoofed_from").await;
    assert_eq!(err["id"], spoof.id.to_string());
    // alice claims to be her own other device.
    let sibling = message(("alice", "a2"), "bob", "I am a2");
    alice.send_env(&sibling).await;
    alice.expect_error("spoofed_from").await;
    bob.expect_silence(QUIET).await;

    // The honest envelope goes through, unchanged.
    let honest = message(("alice", "a1"), "bob", "hello");
    alice.send_env(&honest).await;
    let got = bob.json().await;
    assert_eq!(got["id"], honest.id.to_string());
    assert_eq!(got["from"], "alice");
    assert_eq!(got["data"], "hello");
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_envelopes_dropped_total{reason=\"spoofed\"}"
        ),
        2.0
    );
}

#[tokio::test]
async fn access_link_tokens_only_reach_calls_in_their_room() {
    let server = start(config()).await;
    let guest_token = mint(&Claims::new("guest", HOUR).with_room("r1"));
    let mut guest = raw_connect(&server.url(), Some(&guest_token), "g1")
        .await
        .unwrap();
    let hello = guest.json().await;
    assert_eq!(hello["room"], "r1");
    let mut host = raw_user(&server, "host", "h1").await;

    // An invite to another room, and a message in a call the guest is not part of: refused.
    let wrong_room = invite(("guest", "g1"), "host", "r2");
    guest.send_env(&wrong_room).await;
    let e = guest.expect_error("out_of_scope").await;
    assert_eq!(e["id"], wrong_room.id.to_string());
    guest
        .send_env(&message(("guest", "g1"), "host", "psst"))
        .await;
    guest.expect_error("out_of_scope").await;
    host.expect_silence(QUIET).await;

    // An invite in its room goes through, and so does the rest of that call, both ways.
    let good = invite(("guest", "g1"), "host", "r1");
    guest.send_env(&good).await;
    assert_eq!(host.json().await["id"], good.id.to_string());
    let ringing = envelope(
        ("host", "h1"),
        "guest",
        good.call_id,
        Body::Ringing {
            group: false,
            seq: None,
        },
    );
    host.send_env(&ringing).await;
    assert_eq!(guest.json().await["kind"], "ringing");
    let hangup = envelope(
        ("guest", "g1"),
        "host",
        good.call_id,
        Body::Hangup { reason: None },
    );
    guest.send_env(&hangup).await;
    assert_eq!(host.json().await["kind"], "hangup");

    // The host's invites for other rooms never reach the guest's session.
    host.send_env(&invite(("host", "h1"), "guest", "r9")).await;
    guest.expect_silence(QUIET).await;
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_envelopes_dropped_total{reason=\"out_of_scope\"}"
        ),
        3.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_link_guest_calls_through_callapi() {
    let server = start(config()).await;
    let guest_token = mint(&Claims::new("guest", HOUR).with_room("r1"));
    let mut guest = Device::start_with(
        ws_transport(&server.url()),
        "guest",
        "g1",
        1,
        Credentials::access_link(guest_token, "r1"),
    );
    let mut host = Device::start(&server.url(), "host", "h1", 2);
    guest
        .wait_link(&callapi_core::signal::LinkState::Connected)
        .await;
    guest.prepare("r1").await;
    host.ready().await;

    guest.api.call("host", CallType::Audio).await.unwrap();
    host.wait_change(CallState::Calling, StateReason::RemoteAudioCall)
        .await;
    host.api.accept().await.unwrap();
    guest.wait_state(CallState::Connected).await;
    host.wait_state(CallState::Connected).await;
    host.api.hangup(None).await.unwrap();
    guest
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    // The access-link session ends with its call.
    guest.wait_state(CallState::Idle).await;
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_envelopes_dropped_total{reason=\"out_of_scope\"}"
        ),
        0.0
    );
}

#[tokio::test]
async fn a_token_for_another_device_gets_401_with_www_authenticate_like_every_bad_token() {
    let server = start(config()).await;
    let token = mint(&Claims::new("alice", HOUR).with_device("a2"));
    let err = raw_connect(&server.url(), Some(&token), "a1")
        .await
        .err()
        .expect("the upgrade must be refused");
    let tokio_tungstenite::tungstenite::Error::Http(resp) = &err else {
        panic!("expected an HTTP refusal, got {err}");
    };
    assert_eq!(resp.status().as_u16(), 401);
    let header = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert_eq!(
        header,
        "Bearer realm=\"callapi\", error=\"invalid_token\", error_description=\"device mismatch\""
    );
    let body: serde_json::Value =
        serde_json::from_slice(resp.body().as_deref().unwrap_or_default()).unwrap();
    assert_eq!(body["code"], "bad_token", "{body}");
}
