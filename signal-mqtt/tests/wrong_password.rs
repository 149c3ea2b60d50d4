//! A wrong password: the broker refuses the credentials, the link ends `Failed` (unauthorized)
//! after at most one retry with a freshly fetched token, and nothing reconnects afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::connection::ConnectError;
use callapi_core::signal::LinkState;
use callapi_signal_mqtt::AuthRejection;
use common::*;

fn is_failed(s: &LinkState) -> bool {
    matches!(s, LinkState::Failed { .. })
}

#[tokio::test]
async fn a_wrong_password_fails_after_one_token_refresh_and_never_retries() {
    init_tracing();
    let broker = Mosquitto::start(&[("bob", "bob-token")]).await;
    // The first attempt and its token fetch start at once; short jitter for the retry and the
    // retry's token fetch.
    let seed = seed_where(&[(2, 0, 150), (3, 0, 150)]);
    let mut bob = Device::start(broker.mqtt_config(), "bob", "b1", "not-the-token", seed).await;

    let failed = bob.wait_link_where(is_failed).await;
    let LinkState::Failed { reason } = failed else {
        unreachable!()
    };
    assert!(reason.contains("unauthorized"), "{reason}");
    assert!(
        reason.contains("refused the credentials of user \"bob\""),
        "{reason}"
    );

    // Exactly two attempts, on the core's schedule: the refusal first reads as an expired
    // token (so the supervisor fetches a new one and waits for its second reconnect slot,
    // 3 s + jitter), the second refusal is final.
    let attempts = bob.attempts.all();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].result, Err(ConnectError::TokenExpired));
    assert!(matches!(
        attempts[1].result,
        Err(ConnectError::Unauthorized(_))
    ));
    let gap = attempts[1].at - attempts[0].at;
    assert!(gap >= Duration::from_secs(3), "retried after {gap:?}");
    assert!(
        !bob.attempts.wait_for(3, Duration::from_secs(1)).await,
        "a third attempt after Failed"
    );
    // The broker saw the same: two refused logins, no client connected.
    assert_eq!(broker.count("not authorised"), 2, "{:#?}", broker.log());
    assert_eq!(broker.count(&connected_line("bob", "b1")), 0);
}

#[tokio::test]
async fn with_static_passwords_the_first_refusal_is_final() {
    init_tracing();
    let broker = Mosquitto::start(&[("bob", "bob-token")]).await;
    let config = broker
        .mqtt_config()
        .with_auth_rejection(AuthRejection::Permanent);
    let mut bob = Device::start(config, "bob", "b1", "not-the-token", 1).await;

    let LinkState::Failed { reason } = bob.wait_link_where(is_failed).await else {
        unreachable!()
    };
    assert!(reason.contains("unauthorized"), "{reason}");
    assert_eq!(bob.attempts.len(), 1);
    assert!(
        !bob.attempts.wait_for(2, Duration::from_secs(1)).await,
        "a second attempt after Failed"
    );
    assert_eq!(broker.count("not authorised"), 1, "{:#?}", broker.log());
}
