//! Reconnection: attempts at 0, 3, 9, 27, 60, 120 s, then every 60 s, each plus
//! 0–2 s of seeded jitter and each bounded by 15 s, forever until a permanent error, which stops
//! with `LinkState::Failed`; and the link states on the way, as `CallApi` subscribers see them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod lifecycle;

use std::iter::repeat_n;
use std::time::Duration;

use callapi_core::connection::schedule::{ATTEMPT_TIMEOUT, JITTER};
use callapi_core::connection::ConnectError;
use callapi_core::signal::LinkState;
use callapi_signal_mock::ScriptedConnect;
use lifecycle::*;
use tokio::time::Instant;

fn transient() -> ScriptedConnect {
    ScriptedConnect::Fail(ConnectError::Transient("server restarting".into()))
}

fn reconnecting(attempt: u32, next_in: Duration) -> LinkState {
    LinkState::Reconnecting { attempt, next_in }
}

/// Base offsets of reconnect attempts 0...
const BASES: [u64; 10] = [0, 3, 9, 27, 60, 120, 180, 240, 300, 360];

#[tokio::test(start_paused = true)]
async fn a_failing_first_connection_retries_at_0_3_9_27_60_120_then_every_60_s() {
    let seed = 21;
    let net = network();
    let tokens = Tokens::new("t");
    let t0 = Instant::now();
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    control.script(repeat_n(transient(), 9));
    let seen = sup_wait_link(&mut sup, &LinkState::Connected).await;

    // Replay the supervisor's draws: one per reconnect attempt, and three when the first
    // attempt fetches the token (later attempts reuse it).
    let mut rng = Replay::new(seed);
    let mut now = t0;
    let mut expected_at = Vec::new();
    let mut expected_states = vec![LinkState::Connecting];
    for k in 0..10 {
        let at = t0 + rng.reconnect(k);
        if k > 0 {
            let attempt = u32::try_from(k + 1).unwrap();
            expected_states.push(reconnecting(attempt, at.saturating_duration_since(now)));
        }
        now = now.max(at);
        if k == 0 {
            now += rng.token_series()[0];
        }
        expected_at.push(now);
    }
    expected_states.push(LinkState::Connected);

    let attempts = control.attempts();
    let at: Vec<Instant> = attempts.iter().map(|a| a.at).collect();
    assert_eq!(at, expected_at);
    assert_eq!(seen, expected_states);
    // Every attempt lies within its jitter window: [base, base + 2 s) from the series start
    // (the first also carries the token fetch's own jitter).
    let first = at[0] - t0;
    assert!(first < JITTER + JITTER, "{first:?}");
    for (k, a) in at.iter().enumerate().skip(1) {
        let off = *a - t0;
        let base = Duration::from_secs(BASES[k]);
        assert!(off >= base && off < base + JITTER, "attempt {k} at {off:?}");
    }
    // One token for all of them, fetched once, just before the first attempt.
    assert!(attempts.iter().all(|a| a.token == "t1"));
    assert_eq!(tokens.calls(), vec![at[0]]);
    assert_eq!(control.links_opened(), 1);
    assert!(sup.link_state().borrow().is_connected());
}

#[tokio::test(start_paused = true)]
async fn after_a_drop_the_schedule_restarts_from_the_drop() {
    let seed = 5;
    let net = network();
    let tokens = Tokens::new("t");
    let t0 = Instant::now();
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    let mut rng = Replay::new(seed);
    let first = t0 + rng.reconnect(0) + rng.token_series()[0];
    assert_eq!(control.attempts()[0].at, first);

    tokio::time::sleep(Duration::from_secs(100)).await; // connected for a while
    control.script(repeat_n(transient(), 7));
    let dropped = Instant::now();
    assert!(control.drop_link());
    let seen = sup_wait_link(&mut sup, &LinkState::Connected).await;

    let mut now = dropped;
    let mut expected_at = vec![first];
    let mut expected_states = Vec::new();
    for k in 0..8 {
        let at = dropped + rng.reconnect(k);
        let attempt = u32::try_from(k + 1).unwrap();
        expected_states.push(reconnecting(attempt, at.saturating_duration_since(now)));
        now = now.max(at);
        expected_at.push(now);
    }
    expected_states.push(LinkState::Connected);
    let at: Vec<Instant> = control.attempts().iter().map(|a| a.at).collect();
    assert_eq!(at, expected_at);
    assert_eq!(seen, expected_states);
    for (k, a) in at[1..].iter().enumerate() {
        let off = *a - dropped;
        let base = Duration::from_secs(BASES[k]);
        assert!(off >= base && off < base + JITTER, "attempt {k} at {off:?}");
    }
    assert_eq!(control.links_opened(), 2);
    assert_eq!(
        tokens.calls().len(),
        1,
        "the token is reused across reconnects"
    );

    // A second drop starts over at attempt 1, not where the last series stopped.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let dropped = Instant::now();
    assert!(control.drop_link());
    let seen = sup_wait_link(&mut sup, &LinkState::Connected).await;
    let at = dropped + rng.reconnect(0);
    assert_eq!(
        seen,
        vec![reconnecting(1, at - dropped), LinkState::Connected]
    );
    assert_eq!(control.attempts().last().unwrap().at, at);
    assert_eq!(control.links_opened(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_hanging_connection_attempt_is_abandoned_after_15_s() {
    let seed = 8;
    let net = network();
    let tokens = Tokens::new("t");
    let t0 = Instant::now();
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), seed);
    control.script([ScriptedConnect::Hang]);
    let seen = sup_wait_link(&mut sup, &LinkState::Connected).await;
    let mut rng = Replay::new(seed);
    let first = t0 + rng.reconnect(0) + rng.token_series()[0];
    // Attempt 2 was due at 3 s + jitter, long before the hanging attempt gave up: it starts
    // the moment the 15 s bound ends the first.
    let second_due = t0 + rng.reconnect(1);
    assert!(second_due < first + ATTEMPT_TIMEOUT);
    let at: Vec<Instant> = control.attempts().iter().map(|a| a.at).collect();
    assert_eq!(at, vec![first, first + ATTEMPT_TIMEOUT]);
    assert_eq!(
        seen,
        vec![
            LinkState::Connecting,
            reconnecting(2, Duration::ZERO),
            LinkState::Connected
        ]
    );

    // Twice in a row after a drop: each hanging attempt gets exactly 15 s.
    control.script([ScriptedConnect::Hang, ScriptedConnect::Hang]);
    let dropped = Instant::now();
    assert!(control.drop_link());
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    let a = dropped + rng.reconnect(0);
    let at: Vec<Instant> = control.attempts()[2..].iter().map(|a| a.at).collect();
    assert_eq!(
        at,
        vec![
            a,
            a + ATTEMPT_TIMEOUT,
            a + ATTEMPT_TIMEOUT + ATTEMPT_TIMEOUT
        ]
    );
    assert_eq!(control.links_opened(), 2);
}

#[tokio::test(start_paused = true)]
async fn unauthorized_at_connect_fails_for_good() {
    let net = network();
    let tokens = Tokens::new("t");
    let (mut sup, control) = supervisor(&net, identity("mallory", "m1"), tokens.credentials(), 2);
    control.script([ScriptedConnect::Fail(ConnectError::Unauthorized(
        "unknown user".into(),
    ))]);
    let failed = LinkState::Failed {
        reason: "unauthorized: unknown user".into(),
    };
    let seen = sup_wait_link(&mut sup, &failed).await;
    assert_eq!(seen, vec![LinkState::Connecting, failed.clone()]);

    tokio::time::sleep(TEN_MINUTES).await;
    assert_eq!(
        control.attempts().len(),
        1,
        "no attempt after a permanent error"
    );
    assert_eq!(tokens.calls().len(), 1);
    assert_eq!(*sup.link_state().borrow(), failed);
    assert!(sup_pending_events(&mut sup).await.is_empty());
    assert!(!control.is_linked());
}

#[tokio::test(start_paused = true)]
async fn unauthorized_while_reconnecting_stops_the_series() {
    let net = network();
    let tokens = Tokens::new("t");
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), 4);
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    control.script([
        transient(),
        ScriptedConnect::Fail(ConnectError::Unauthorized("account deleted".into())),
    ]);
    assert!(control.drop_link());
    let failed = LinkState::Failed {
        reason: "unauthorized: account deleted".into(),
    };
    let seen = sup_wait_link(&mut sup, &failed).await;
    assert!(matches!(
        seen.as_slice(),
        [
            LinkState::Reconnecting { attempt: 1, .. },
            LinkState::Reconnecting { attempt: 2, .. },
            LinkState::Failed { .. }
        ]
    ));
    tokio::time::sleep(TEN_MINUTES).await;
    assert_eq!(control.attempts().len(), 3);
    assert!(sup_pending_events(&mut sup).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_service_closing_the_link_as_unauthorized_stops_reconnection() {
    let net = network();
    let tokens = Tokens::new("t");
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), 4);
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    assert!(control.close_with(ConnectError::Unauthorized("token revoked".into())));
    let failed = LinkState::Failed {
        reason: "unauthorized: token revoked".into(),
    };
    assert_eq!(sup_wait_link(&mut sup, &failed).await, vec![failed.clone()]);
    tokio::time::sleep(TEN_MINUTES).await;
    assert_eq!(control.attempts().len(), 1);
    assert!(!control.is_linked());
    assert!(sup_pending_events(&mut sup).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_transient_close_reconnects() {
    let net = network();
    let tokens = Tokens::new("t");
    let (mut sup, control) = supervisor(&net, identity("alice", "a1"), tokens.credentials(), 4);
    sup_wait_link(&mut sup, &LinkState::Connected).await;
    assert!(control.close_with(ConnectError::Transient("server shutting down".into())));
    let seen = sup_wait_link(&mut sup, &LinkState::Connected).await;
    assert!(matches!(
        seen.as_slice(),
        [
            LinkState::Reconnecting { attempt: 1, .. },
            LinkState::Connected
        ]
    ));
    assert_eq!(control.links_opened(), 2);
}

#[tokio::test(start_paused = true)]
async fn link_states_reach_callapi_subscribers() {
    let net = network();
    let mut alice = Device::start(&net, "alice", "a1", 1);
    alice.transport.script([transient()]);
    let t0 = Instant::now();

    // Connecting, one failure, Connected.
    assert_eq!(alice.next_link().await, LinkState::Connecting);
    let LinkState::Reconnecting { attempt, next_in } = alice.next_link().await else {
        panic!("expected Reconnecting");
    };
    assert_eq!(attempt, 2);
    let mut rng = Replay::new(alice.sup_seed);
    let first = t0 + rng.reconnect(0) + rng.token_series()[0];
    let second = t0 + rng.reconnect(1);
    assert_eq!(next_in, second - first);
    assert_eq!(alice.next_link().await, LinkState::Connected);

    // A drop: Reconnecting, then Connected.
    assert!(alice.transport.drop_link());
    let LinkState::Reconnecting { attempt: 1, .. } = alice.next_link().await else {
        panic!("expected Reconnecting {{ attempt: 1 }}");
    };
    assert_eq!(alice.next_link().await, LinkState::Connected);

    // disconnect: Disconnected; resume: Reconnecting, Connected.
    alice.api.disconnect(false).await.unwrap();
    assert_eq!(alice.next_link().await, LinkState::Disconnected);
    alice.api.resume().await.unwrap();
    let LinkState::Reconnecting { attempt: 1, .. } = alice.next_link().await else {
        panic!("expected Reconnecting {{ attempt: 1 }}");
    };
    assert_eq!(alice.next_link().await, LinkState::Connected);

    // A permanent error: Failed.
    assert!(alice
        .transport
        .close_with(ConnectError::Unauthorized("banned".into())));
    assert_eq!(
        alice.next_link().await,
        LinkState::Failed {
            reason: "unauthorized: banned".into()
        }
    );
    alice.drain();
    let after_drop = rng.reconnect(0);
    let after_resume = rng.reconnect(0);
    assert_eq!(
        alice.links(),
        vec![
            LinkState::Connecting,
            reconnecting(2, second - first),
            LinkState::Connected,
            reconnecting(1, after_drop),
            LinkState::Connected,
            LinkState::Disconnected,
            reconnecting(1, after_resume),
            LinkState::Connected,
            LinkState::Failed {
                reason: "unauthorized: banned".into()
            },
        ]
    );
}
