//! Token expiry: the server warns before `exp` (`token_will_expire`), takes a renewed token
//! in-band (`renew` → `renewed`) and the connection stays up; without a renewal it closes with
//! 4001 at `exp`. Refused renewals: `bad_token` error (bad signature) or 4003 (another identity).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callapi_core::connection::schedule::{reconnect_attempt_at, token_attempt_at};
use callapi_core::connection::{
    ConnectError, Credentials, LinkEvent, Renewal, SupervisorConfig, TokenError, Transport,
    TransportLink,
};
use callapi_core::signal::{LinkState, SignalClient, SignalEvent};
use callapi_signal_ws::auth::{Claims, TokenAuthority};
use callapi_signal_ws::client::{WsLink, WsSignalClient, WsTransport};
use callapi_signal_ws::frames::close_code;
use common::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn expiring_config() -> callapi_signal_ws::ServerConfig {
    let mut c = config();
    c.timers.expiry_warning = Duration::from_millis(1500);
    c
}

/// A supervisor seed whose first connection and whose first renewal fetch both start within
/// 300 ms (the supervisor draws: reconnect jitter, three token fetch offsets, then three more
/// for the renewal).
fn renewing_seed() -> u64 {
    let quick = Duration::from_millis(300);
    (0u64..)
        .find(|&s| {
            let mut r = ChaCha8Rng::seed_from_u64(s);
            let first = reconnect_attempt_at(0, &mut r) + token_attempt_at(0, &mut r).unwrap();
            token_attempt_at(1, &mut r);
            token_attempt_at(2, &mut r);
            let renew = token_attempt_at(0, &mut r).unwrap();
            first < quick && renew < quick
        })
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_token_keeps_the_connection_up_and_an_unrenewed_one_closes_with_4001() {
    let server = start(expiring_config()).await;
    let exp = now_secs() + 2;

    // alice's app backend: the first token expires at `exp`, later ones in an hour.
    let fetches = Arc::new(AtomicUsize::new(0));
    let provider = {
        let fetches = fetches.clone();
        move || {
            let n = fetches.fetch_add(1, Ordering::SeqCst);
            let claims = if n == 0 {
                Claims::new("alice", HOUR).expiring_at(exp)
            } else {
                Claims::new("alice", HOUR)
            };
            let t = authority().mint(&claims);
            async move { t.map_err(|e| TokenError(e.to_string())) }
        }
    };
    let transport = WsTransport::new(&server.url())
        .unwrap()
        .with_options(client_options());
    let mut alice = WsSignalClient::start(
        transport,
        SupervisorConfig::new(identity("alice", "a1"), Credentials::token(provider))
            .with_seed(renewing_seed()),
    );
    // The client has no task of its own: a task of the test drives it, as a CallApi would,
    // and hands its events over.
    let mut link = alice.link_state();
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(ev) = alice.next_event().await {
            if events_tx.send(ev).is_err() {
                break;
            }
        }
        alice.close().await;
    });
    tokio::time::timeout(WAIT, link.wait_for(|s| *s == LinkState::Connected))
        .await
        .unwrap()
        .unwrap();

    // bob holds a token with the same expiry and never renews it.
    let bob_token = mint(&Claims::new("bob", HOUR).expiring_at(exp));
    let mut bob = raw_connect(&server.url(), Some(&bob_token), "b1")
        .await
        .unwrap();
    assert_eq!(bob.json().await["exp"], exp);
    let warning = bob.json().await;
    assert_eq!(warning["type"], "token_will_expire");
    assert_eq!(warning["exp"], exp);
    assert_eq!(bob.expect_close().await, close_code::TOKEN_EXPIRED);
    assert!(now_ms() >= exp * 1000, "closed before exp");

    // Past `exp`: alice is still on her first connection, with a renewed token.
    assert_eq!(*link.borrow(), LinkState::Connected);
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    let m = server.metrics_text();
    assert_eq!(
        metric(&m, "callapi_signal_token_renewals_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(metric(&m, "callapi_signal_token_expiry_closes_total"), 1.0);
    assert_eq!(metric(&m, "callapi_signal_connections_accepted_total"), 2.0);
    let mut carol = raw_user(&server, "carol", "c1").await;
    carol
        .send_env(&message(("carol", "c1"), "alice", "still there?"))
        .await;
    let got = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await.unwrap() {
                SignalEvent::Message(env) => return env,
                SignalEvent::Link(s) => assert!(
                    matches!(s, LinkState::Connecting | LinkState::Connected),
                    "the link dropped: {s:?}"
                ),
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got.from, user("carol"));
    drop(events);
    driver.abort();
}

#[tokio::test]
async fn the_link_reports_the_warning_renews_in_band_and_maps_4001() {
    let server = start(expiring_config()).await;
    let exp = now_secs() + 2;
    let id = identity("alice", "a1");
    let mut transport = WsTransport::new(&server.url()).unwrap();

    // Renewed: the link learns the new expiry.
    let mut renewing = transport
        .connect(&id, &mint(&Claims::new("alice", HOUR).expiring_at(exp)))
        .await
        .unwrap();
    assert_eq!(renewing.expires_at(), exp);
    let ev = tokio::time::timeout(WAIT, renewing.next_event())
        .await
        .unwrap();
    assert_eq!(ev, Some(LinkEvent::TokenWillExpire));
    let fresh = Claims::new("alice", HOUR);
    renew(&mut renewing, &mint(&fresh)).await.unwrap();
    assert_eq!(renewing.expires_at(), fresh.exp);

    // Not renewed: warned, then closed with 4001, which the client maps to TokenExpired.
    let mut lapsing = transport
        .connect(
            &id,
            &mint(
                &Claims::new("alice", HOUR)
                    .expiring_at(exp)
                    .with_device("a1"),
            ),
        )
        .await
        .unwrap();
    let ev = tokio::time::timeout(WAIT, lapsing.next_event())
        .await
        .unwrap();
    assert_eq!(ev, Some(LinkEvent::TokenWillExpire));
    let ev = tokio::time::timeout(WAIT, lapsing.next_event())
        .await
        .unwrap();
    // (The second connection of device a1 replaced the first one, which was closed with 4009.)
    assert_eq!(
        ev,
        Some(LinkEvent::Closed {
            error: Some(ConnectError::TokenExpired)
        })
    );
    let replaced = tokio::time::timeout(WAIT, renewing.next_event())
        .await
        .unwrap();
    assert!(
        matches!(replaced, Some(LinkEvent::Closed { error: Some(ConnectError::Transient(ref m)) }) if m.contains("4009")),
        "{replaced:?}"
    );
}

#[tokio::test]
async fn refused_renewals_are_answered_and_a_foreign_identity_closes_with_4003() {
    let server = start(config()).await;
    let mut alice = raw_user(&server, "alice", "a1").await;

    let forged = TokenAuthority::new(b"not-the-secret")
        .unwrap()
        .mint(&Claims::new("alice", HOUR))
        .unwrap();
    alice
        .send_text(serde_json::json!({"type": "renew", "token": forged}).to_string())
        .await;
    let e = alice.expect_error("bad_token").await;
    assert!(e["message"].as_str().unwrap().contains("signature"), "{e}");
    alice.send_text(r#"{"type":"renew"}"#).await;
    alice.expect_error("invalid_envelope").await;

    // Still connected: a valid renewal works.
    let fresh = Claims::new("alice", Duration::from_secs(7200));
    alice
        .send_text(serde_json::json!({"type": "renew", "token": mint(&fresh)}).to_string())
        .await;
    let ok = alice.json().await;
    assert_eq!(ok["type"], "renewed");
    assert_eq!(ok["exp"], fresh.exp);

    // A token for someone else: 4003.
    alice
        .send_text(serde_json::json!({"type": "renew", "token": token("mallory")}).to_string())
        .await;
    assert_eq!(alice.expect_close().await, close_code::UNAUTHORIZED);
    let m = server.metrics_text();
    assert_eq!(
        metric(
            &m,
            "callapi_signal_token_renewals_total{result=\"refused\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "callapi_signal_token_renewals_total{result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "callapi_signal_token_renewals_total{result=\"identity_mismatch\"}"
        ),
        1.0
    );

    // Over a client link, the same refusal maps to Unauthorized (permanent).
    let mut link = WsTransport::new(&server.url())
        .unwrap()
        .connect(&identity("alice", "a1"), &token("alice"))
        .await
        .unwrap();
    let err = renew(&mut link, &token("mallory")).await.unwrap_err();
    assert!(matches!(err, ConnectError::Unauthorized(_)), "{err:?}");
}

/// Renews in-band and waits for the server's answer.
async fn renew(link: &mut WsLink, token: &str) -> Result<(), ConnectError> {
    match link.renew(token).await {
        Renewal::Done(result) => result,
        Renewal::Pending => tokio::time::timeout(WAIT, async {
            loop {
                match link.next_event().await {
                    Some(LinkEvent::Renewed(result)) => return result,
                    Some(_) => {}
                    None => panic!("the link ended without answering the renewal"),
                }
            }
        })
        .await
        .expect("an answer to the renewal"),
        other => panic!("unexpected renewal {other:?}"),
    }
}
