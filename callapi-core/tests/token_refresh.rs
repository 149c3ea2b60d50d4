//! Tokens: fetch attempts at 0, 1 and 4 s plus seeded jitter, each bounded by 15 s;
//! an expiry warning renews the token on the live link without reconnecting; a token refused as
//! expired at connect is fetched again before the next attempt; an expired access link is
//! permanent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lifecycle;

use std::time::Duration;

use callapi_core::call::Notification;
use callapi_core::connection::schedule::{ATTEMPT_TIMEOUT, JITTER};
use callapi_core::connection::{ConnectError, Credentials};
use callapi_core::signal::{LinkState, SignalEvent};
use callapi_signal_mock::ScriptedConnect;
use lifecycle::*;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn an_expiry_warning_renews_the_token_in_band_without_reconnecting() {
    let seed = 31;
    let net = network();
    let tokens = Tokens::new("t");
    let t0 = Instant::now();
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    let mut rng = Replay::new(seed);
    let connected_at = t0 + rng.reconnect(0) + rng.token_series()[0];

    let mut seen = sup_run_for(&mut sup, Duration::from_secs(50)).await;
    let warned = Instant::now();
    assert!(control.warn_token_expiry());
    // The renewal fetch draws its own three offsets and asks at the first.
    let renew_at = warned + rng.token_series()[0];
    // Past the largest jitter: the renewal is done.
    seen.extend(sup_run_for(&mut sup, JITTER).await);
    assert_eq!(tokens.calls(), vec![connected_at, renew_at]);
    assert_eq!(control.renewals(), vec!["t2".to_owned()]);
    assert_eq!(control.links_opened(), 1, "renewed on the live link");
    assert_eq!(control.attempts().len(), 1);
    assert!(control.is_linked());
    seen.extend(sup_pending_events(&mut sup).await);
    assert!(
        seen.is_empty(),
        "no link change and no warning passed on to the app: {seen:?}"
    );

    // The renewed token is the one used after a later drop.
    assert!(control.drop_link());
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    assert_eq!(control.attempts()[1].token, "t2");
    assert_eq!(tokens.calls().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn callapi_keeps_its_link_and_call_state_through_a_renewal() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 3);
    alice.wait_link(&LinkState::Connected).await;
    alice.prepare("alice-room").await;
    alice.transport.warn_token_expiry();
    tokio::time::sleep(JITTER).await;
    assert_eq!(alice.transport.renewals(), vec!["alice-t2".to_owned()]);
    assert_eq!(alice.transport.links_opened(), 1);
    alice.drain();
    assert_eq!(
        alice.links(),
        vec![LinkState::Connecting, LinkState::Connected],
        "a renewal is no link change"
    );

    // A token handed over by the app goes to the live link too.
    alice.api.renew_token("from-the-app").await.unwrap();
    // The supervisor takes commands in order: once the pause that follows has closed the
    // link, the renewal before it was handed to the link.
    alice.api.pause().await.unwrap();
    alice.wait_link(&LinkState::Disconnected).await;
    assert_eq!(
        alice.transport.renewals(),
        vec!["alice-t2".to_owned(), "from-the-app".to_owned()]
    );
    assert_eq!(alice.transport.links_opened(), 1);
}

#[tokio::test(start_paused = true)]
async fn token_fetch_attempts_follow_0_1_4_s_with_jitter() {
    let seed = 12;
    let net = network();
    let tokens = Tokens::scripted("t", [Answer::Fail, Answer::Fail]);
    let t0 = Instant::now();
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    let seen = sup_wait_link(&mut sup, &LinkState::Connected).await;
    assert_eq!(seen, vec![LinkState::Connecting, LinkState::Connected]);

    let mut rng = Replay::new(seed);
    let start = t0 + rng.reconnect(0);
    let [o0, o1, o2] = rng.token_series();
    let c0 = start + o0;
    let c1 = c0.max(start + o1);
    let c2 = c1.max(start + o2);
    assert_eq!(tokens.calls(), vec![c0, c1, c2]);
    for (call, base) in tokens.calls().iter().zip([0u64, 1, 4]) {
        let off = *call - start;
        let base = Duration::from_secs(base);
        assert!(off >= base && off < base + JITTER, "token fetch at {off:?}");
    }
    // The connection attempt follows the successful fetch at once, with its token.
    let attempts = control.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].at, c2);
    assert_eq!(attempts[0].token, "t3");
}

#[tokio::test(start_paused = true)]
async fn three_failed_token_fetches_fall_back_to_the_reconnect_schedule() {
    let seed = 13;
    let net = network();
    let tokens = Tokens::scripted("t", [Answer::Fail, Answer::Fail, Answer::Fail]);
    let t0 = Instant::now();
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    let seen = sup_wait_link(&mut sup, &LinkState::Connected).await;

    let mut rng = Replay::new(seed);
    let start = t0 + rng.reconnect(0);
    let [o0, o1, o2] = rng.token_series();
    let c0 = start + o0;
    let c1 = c0.max(start + o1);
    let c2 = c1.max(start + o2);
    // Reconnect attempt 2 (due at 3 s + jitter), with a new fetch series.
    let due = t0 + rng.reconnect(1);
    let c3 = c2.max(due) + rng.token_series()[0];
    assert_eq!(tokens.calls(), vec![c0, c1, c2, c3]);
    assert_eq!(
        seen,
        vec![
            LinkState::Connecting,
            LinkState::Reconnecting {
                attempt: 2,
                next_in: due.saturating_duration_since(c2)
            },
            LinkState::Connected
        ]
    );
    let attempts = control.attempts();
    assert_eq!(attempts.len(), 1, "no connection attempt without a token");
    assert_eq!((attempts[0].at, attempts[0].token.as_str()), (c3, "t4"));
}

#[tokio::test(start_paused = true)]
async fn a_token_provider_that_never_answers_is_abandoned_after_15_s() {
    let seed = 14;
    let net = network();
    let tokens = Tokens::scripted("t", [Answer::Hang, Answer::Hang, Answer::Hang]);
    let t0 = Instant::now();
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    sup_wait_link(&mut sup, &LinkState::Connected).await;

    let mut rng = Replay::new(seed);
    let start = t0 + rng.reconnect(0);
    let c0 = start + rng.token_series()[0];
    // The 1 s and 4 s fetches were due long before the hanging ones gave up: each starts
    // when the previous one hits its 15 s bound.
    let c1 = c0 + ATTEMPT_TIMEOUT;
    let c2 = c1 + ATTEMPT_TIMEOUT;
    let due = t0 + rng.reconnect(1);
    assert!(due < c2 + ATTEMPT_TIMEOUT);
    let c3 = c2 + ATTEMPT_TIMEOUT + rng.token_series()[0];
    assert_eq!(tokens.calls(), vec![c0, c1, c2, c3]);
    let attempts = control.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].at, attempts[0].token.as_str()), (c3, "t4"));
}

#[tokio::test(start_paused = true)]
async fn token_expired_at_connect_fetches_a_new_token_before_the_next_attempt() {
    let seed = 15;
    let net = network();
    let tokens = Tokens::new("t");
    let t0 = Instant::now();
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    control.script([ScriptedConnect::Fail(ConnectError::TokenExpired)]);
    let seen = sup_wait_link(&mut sup, &LinkState::Connected).await;

    let mut rng = Replay::new(seed);
    let a0 = t0 + rng.reconnect(0) + rng.token_series()[0];
    let due = t0 + rng.reconnect(1);
    let a1 = a0.max(due) + rng.token_series()[0];
    let attempts = control.attempts();
    let got: Vec<_> = attempts.iter().map(|a| (a.at, a.token.as_str())).collect();
    assert_eq!(got, vec![(a0, "t1"), (a1, "t2")]);
    assert_eq!(tokens.calls(), vec![a0, a1], "a fetch before each attempt");
    assert_eq!(
        seen,
        vec![
            LinkState::Connecting,
            LinkState::Reconnecting {
                attempt: 2,
                next_in: due.saturating_duration_since(a0)
            },
            LinkState::Connected
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_link_closed_for_an_expired_token_reconnects_with_a_fresh_one() {
    let seed = 16;
    let net = network();
    let tokens = Tokens::new("t");
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    let mut rng = Replay::new(seed);
    rng.reconnect(0);
    rng.token_series();

    tokio::time::sleep(Duration::from_secs(3600)).await;
    let closed = Instant::now();
    assert!(control.close_with(ConnectError::TokenExpired));
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    let at = closed + rng.reconnect(0) + rng.token_series()[0];
    let last = control.attempts().last().cloned().unwrap();
    assert_eq!((last.at, last.token.as_str()), (at, "t2"));
    assert_eq!(tokens.calls().len(), 2);
    assert_eq!(control.links_opened(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_expired_access_link_is_permanent() {
    let net = network();
    let (mut sup, control) = supervisor(
        &net,
        identity("guest", "g1"),
        Credentials::access_link("link-token", "room-1"),
        17,
    );
    control.script([ScriptedConnect::Fail(ConnectError::TokenExpired)]);
    let failed = LinkState::Failed {
        reason: "access link expired".into(),
    };
    assert_eq!(
        sup_wait_link(&mut sup, &failed).await,
        vec![LinkState::Connecting, failed.clone()]
    );
    tokio::time::sleep(TEN_MINUTES).await;
    let attempts = control.attempts();
    assert_eq!(attempts.len(), 1, "no retry with an expired access link");
    assert_eq!(attempts[0].token, "link-token");
    assert!(sup_pending_events(&mut sup).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_expiry_warning_on_an_access_link_is_passed_to_the_app() {
    let net = network();
    let (mut sup, control) = supervisor(
        &net,
        identity("guest", "g1"),
        Credentials::access_link("link-token", "room-1"),
        18,
    );
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    assert!(control.warn_token_expiry());
    tokio::time::sleep(JITTER).await;
    assert_eq!(
        sup_pending_events(&mut sup).await,
        vec![SignalEvent::TokenWillExpire]
    );
    assert!(
        control.renewals().is_empty(),
        "nothing to renew an access link with"
    );
    assert_eq!(control.links_opened(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_renewal_refused_as_unauthorized_fails_the_link() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 19);
    alice.wait_link(&LinkState::Connected).await;
    alice
        .transport
        .set_renew_result(Some(ConnectError::Unauthorized("revoked".into())));
    assert!(alice.transport.warn_token_expiry());
    alice
        .wait_link(&LinkState::Failed {
            reason: "unauthorized: revoked".into(),
        })
        .await;
    assert_eq!(alice.transport.renewals(), vec!["alice-t2".to_owned()]);
    tokio::time::sleep(TEN_MINUTES).await;
    assert_eq!(alice.transport.attempts().len(), 1);
    assert!(!alice.transport.is_linked());
    alice.drain();
    assert!(matches!(
        alice.links().last(),
        Some(LinkState::Failed { .. })
    ));
    // The machine follows: the session is unusable.
    assert!(matches!(
        alice.notifications().last(),
        Some(Notification::StateChanged(c)) if c.state == callapi_core::call::CallState::Failed
    ));
}

#[tokio::test(start_paused = true)]
async fn a_renewal_refused_transiently_keeps_the_link() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 20);
    alice.wait_link(&LinkState::Connected).await;
    alice
        .transport
        .set_renew_result(Some(ConnectError::Transient("try later".into())));
    assert!(alice.transport.warn_token_expiry());
    tokio::time::sleep(JITTER).await;
    assert_eq!(alice.transport.renewals(), vec!["alice-t2".to_owned()]);
    assert!(alice.transport.is_linked());
    assert_eq!(alice.transport.links_opened(), 1);
    alice.drain();
    assert_eq!(
        alice.links(),
        vec![LinkState::Connecting, LinkState::Connected]
    );
}

#[tokio::test(start_paused = true)]
async fn a_renewal_whose_token_fetches_all_fail_keeps_the_link_and_the_supervisor() {
    let seed = 23;
    let net = network();
    let tokens = Tokens::scripted(
        "t",
        [Answer::Token, Answer::Fail, Answer::Fail, Answer::Fail],
    );
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    let mut rng = Replay::new(seed);
    rng.reconnect(0);
    rng.token_series();

    let warned = Instant::now();
    assert!(control.warn_token_expiry());
    let [o0, o1, o2] = rng.token_series();
    let c0 = warned + o0;
    let c1 = c0.max(warned + o1);
    let c2 = c1.max(warned + o2);
    let mut seen = sup_run_until(&mut sup, c2 + JITTER).await;
    assert_eq!(tokens.calls()[1..], [c0, c1, c2]);
    assert!(control.renewals().is_empty());
    assert!(control.is_linked(), "the link stays up on the old token");
    seen.extend(sup_pending_events(&mut sup).await);
    assert!(seen.is_empty(), "{seen:?}");

    // The supervisor still serves the link: a later warning renews, a drop reconnects.
    assert!(control.warn_token_expiry());
    sup_run_for(&mut sup, JITTER).await;
    assert_eq!(control.renewals(), vec!["t5".to_owned()]);
    assert!(control.drop_link());
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    assert_eq!(control.attempts().last().unwrap().token, "t5");
}
