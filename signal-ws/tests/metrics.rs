//! `/metrics` (Prometheus / OpenMetrics text) and `/healthz` over plain HTTP: the counters and
//! gauges move as clients connect, relay, queue, fail authentication and leave.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[tokio::test]
async fn healthz_and_metrics_answer_and_other_paths_do_not() {
    let server = start(config()).await;
    let addr = server.local_addr();
    let (status, _, body) = http_get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, head, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    for name in [
        "callapi_signal_connections",
        "callapi_signal_devices",
        "callapi_signal_users",
        "callapi_signal_offline_queued",
        "callapi_signal_envelopes_relayed_total",
        "callapi_signal_envelopes_queued_total",
        "callapi_signal_keepalive_drops_total",
    ] {
        assert!(
            body.contains(&format!("\n{name} ")),
            "{name} missing:\n{body}"
        );
    }
    assert!(body.trim_end().ends_with("# EOF"));
    assert_eq!(http_get(addr, "/nope").await.0, 404);
    // A plain GET of the signaling endpoint without a token: 401, like an upgrade.
    assert_eq!(http_get(addr, "/v1/signal").await.0, 401);
}

#[tokio::test]
async fn counters_move_as_clients_act() {
    let server = start(config()).await;
    let addr = server.local_addr();
    let scrape = || async move { http_get(addr, "/metrics").await.2 };
    let m = scrape().await;
    assert_eq!(metric(&m, "callapi_signal_connections"), 0.0);
    assert_eq!(metric(&m, "callapi_signal_envelopes_relayed_total"), 0.0);

    let mut alice = raw_user(&server, "alice", "a1").await;
    let mut bob = raw_user(&server, "bob", "b1").await;
    let bob2 = raw_user(&server, "bob", "b2").await;
    let m = scrape().await;
    assert_eq!(metric(&m, "callapi_signal_connections"), 3.0);
    assert_eq!(metric(&m, "callapi_signal_devices"), 3.0);
    assert_eq!(metric(&m, "callapi_signal_users"), 2.0);
    assert_eq!(metric(&m, "callapi_signal_connections_accepted_total"), 3.0);

    // Fan-out: one envelope to bob, two copies relayed.
    alice.send_env(&message(("alice", "a1"), "bob", "hi")).await;
    bob.json().await;
    let m = scrape().await;
    assert_eq!(metric(&m, "callapi_signal_envelopes_received_total"), 1.0);
    assert_eq!(metric(&m, "callapi_signal_envelopes_relayed_total"), 2.0);

    // Queued for a user with no device online.
    alice
        .send_env(&message(("alice", "a1"), "carol", "later"))
        .await;
    alice
        .send_env(&message(("alice", "a1"), "alice", "marker"))
        .await;
    alice.json().await;
    let m = scrape().await;
    assert_eq!(metric(&m, "callapi_signal_envelopes_queued_total"), 1.0);
    assert_eq!(metric(&m, "callapi_signal_offline_queued"), 1.0);
    assert_eq!(metric(&m, "callapi_signal_envelopes_relayed_total"), 3.0);

    // Refused tokens.
    let _ = raw_connect(&server.url(), Some("garbage"), "x1").await;
    let _ = raw_connect(&server.url(), None, "x1").await;
    let m = scrape().await;
    assert_eq!(
        metric(
            &m,
            "callapi_signal_auth_failures_total{reason=\"malformed\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "callapi_signal_auth_failures_total{reason=\"missing\"}"),
        1.0
    );

    // Leaving: bob's second device closes; the gauges go down by the time it sees the end.
    let mut bob2 = bob2;
    bob2.ws.close(None).await.unwrap();
    while !matches!(bob2.next().await, Frame::End) {}
    let m = scrape().await;
    assert_eq!(metric(&m, "callapi_signal_connections"), 2.0);
    assert_eq!(metric(&m, "callapi_signal_devices"), 2.0);
    assert_eq!(metric(&m, "callapi_signal_users"), 2.0);
}
