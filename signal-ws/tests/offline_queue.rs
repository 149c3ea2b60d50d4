//! The offline queue: an envelope for a user with no device online waits until its lifetime
//! ends (bounded per user, oldest dropped first, counted) and is delivered when a device
//! connects; invites to offline users also go to the `PushNotifier` (and the webhook
//! implementation posts them as JSON).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use callapi_core::call::{CallState, PrepareConfig, StateReason};
use callapi_core::protocol::CallType;
use callapi_signal_ws::server::{PushError, PushNotification, WebhookNotifier};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// bob's device connects this long after it starts: time to `prepare` before its link is up,
/// so that the queued invite finds it ready.
const BOB_CONNECTS_AFTER: Duration = Duration::from_millis(200);

/// A server whose push notifier sends every push to the returned channel.
async fn server_with_push() -> (
    callapi_signal_ws::ServerHandle,
    mpsc::UnboundedReceiver<PushNotification>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut c = config();
    c.push = Some(Arc::new(move |p: PushNotification| {
        let tx = tx.clone();
        async move {
            tx.send(p)
                .map_err(|e| PushError::Unreachable(e.to_string()))?;
            Ok(())
        }
    }));
    (start(c).await, rx)
}

async fn next_push(rx: &mut mpsc::UnboundedReceiver<PushNotification>) -> PushNotification {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a push in time")
        .expect("push channel open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_to_an_offline_user_is_pushed_and_rings_when_they_connect() {
    let (server, mut pushes) = server_with_push().await;
    let mut alice = Device::start(&server.url(), "alice", "a1", 1);
    alice.ready().await;

    let call_id = alice.api.call("bob", CallType::Video).await.unwrap();
    let push = next_push(&mut pushes).await;
    assert_eq!(push.to, "bob");
    assert_eq!(push.from, "alice");
    assert_eq!(push.from_device, "a1");
    assert_eq!(push.call_id, call_id.to_string());
    assert_eq!(push.room_id, "alice-room");
    assert_eq!(push.call_type, CallType::Video);
    assert!(push.expires_at_ms > now_ms());
    assert_eq!(server.stats().offline_queued, 1);

    // bob's phone wakes up, prepares, and connects (200 ms later): it rings.
    let mut bob = bob_waking_up(&server);
    bob.prepare("bob-room").await;
    let ring = bob
        .wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    assert_eq!(ring.call.unwrap().call_id, call_id);
    bob.api.accept().await.unwrap();
    alice.wait_state(CallState::Connected).await;
    bob.wait_state(CallState::Connected).await;

    // Retransmissions of the invite while bob was away were not queued (nor pushed) again.
    assert!(pushes.try_recv().is_err());
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_push_notifications_total{result=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        server_metric(&server, "callapi_signal_envelopes_queued_total"),
        1.0
    );
    alice.api.hangup(None).await.unwrap();
    bob.wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_whose_lifetime_ended_never_rings() {
    let (server, mut pushes) = server_with_push().await;
    let mut alice = Device::start(&server.url(), "alice", "a1", 1);
    alice
        .wait_link(&callapi_core::signal::LinkState::Connected)
        .await;
    let mut short = PrepareConfig::new("alice-room");
    short.call_timeout = Duration::from_secs(1);
    alice.api.prepare(short).await.unwrap();

    let first = alice.api.call("bob", CallType::Video).await.unwrap();
    next_push(&mut pushes).await;
    // The invite's lifetime (= the call timeout) ends without any device acknowledging it.
    alice
        .wait_change(CallState::Prepared, StateReason::MessageFailed)
        .await;

    // bob connects only now (200 ms later still): the invite is gone.
    let mut bob = bob_waking_up(&server);
    bob.prepare("bob-room").await;
    bob.wait_link(&callapi_core::signal::LinkState::Connected)
        .await;
    // A new call rings; it is the first thing that rings on bob's device.
    alice
        .api
        .prepare(PrepareConfig::new("alice-room"))
        .await
        .unwrap();
    let second = alice.api.call("bob", CallType::Audio).await.unwrap();
    let ring = bob.wait_state(CallState::Calling).await;
    assert_eq!(ring.call.unwrap().call_id, second);
    assert_ne!(first, second);
    assert_eq!(
        bob.states()
            .iter()
            .filter(|(s, _)| *s == CallState::Calling)
            .count(),
        1
    );
    assert!(
        server_metric(
            &server,
            "callapi_signal_envelopes_dropped_total{reason=\"expired\"}"
        ) >= 1.0
    );
}

#[tokio::test]
async fn the_queue_keeps_the_newest_envelopes_per_user() {
    let mut c = config();
    c.limits.offline_queue_per_user = 3;
    let server = start(c).await;
    let mut alice = raw_user(&server, "alice", "a1").await;
    let sent: Vec<_> = (0..5)
        .map(|i| message(("alice", "a1"), "bob", &format!("m{i}")))
        .collect();
    for env in &sent {
        alice.send_env(env).await;
    }
    // The same envelope again (a retransmission) is not queued twice.
    alice.send_env(&sent[4]).await;
    // alice's own envelopes are processed in order: a marker round trip through the server.
    let marker = message(("alice", "a1"), "alice", "marker");
    alice.send_env(&marker).await;
    assert_eq!(alice.json().await["data"], "marker");
    assert_eq!(server.stats().offline_queued, 3);

    let mut bob = raw_user(&server, "bob", "b1").await;
    for i in 2..5 {
        assert_eq!(bob.json().await["data"], format!("m{i}"));
    }
    bob.expect_silence(Duration::from_millis(200)).await;
    let m = server.metrics_text();
    assert_eq!(metric(&m, "callapi_signal_envelopes_queued_total"), 5.0);
    assert_eq!(
        metric(
            &m,
            "callapi_signal_envelopes_dropped_total{reason=\"queue_full\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "callapi_signal_limit_hits_total{limit=\"offline_queue\"}"
        ),
        2.0
    );
    // User-addressed envelopes stay (for bob's other devices) until their lifetime ends.
    assert_eq!(server.stats().offline_queued, 3);
}

#[tokio::test]
async fn a_device_that_connects_later_gets_the_user_addressed_invite_too() {
    let server = start(config()).await;
    let mut alice = raw_user(&server, "alice", "a1").await;
    let inv = invite(("alice", "a1"), "bob", "alice-room");
    alice.send_env(&inv).await;
    let marker = message(("alice", "a1"), "alice", "marker");
    alice.send_env(&marker).await;
    alice.json().await;

    let mut phone = raw_user(&server, "bob", "phone").await;
    assert_eq!(phone.json().await["id"], inv.id.to_string());
    drop(phone);
    let mut tablet = raw_user(&server, "bob", "tablet").await;
    assert_eq!(tablet.json().await["id"], inv.id.to_string());
    // Reconnecting devices do not get it twice.
    let mut phone = raw_user(&server, "bob", "phone").await;
    phone.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn the_webhook_notifier_posts_the_invite_as_json() {
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/push?app=demo", hook.local_addr().unwrap());
    let mut c = config();
    c.push = Some(Arc::new(
        WebhookNotifier::new(&hook_url)
            .unwrap()
            .with_bearer("hook-secret"),
    ));
    let server = start(c).await;
    let mut alice = raw_user(&server, "alice", "a1").await;
    let inv = invite(("alice", "a1"), "bob", "alice-room");
    alice.send_env(&inv).await;

    let request = next_webhook_post(&hook, NO_CONTENT).await;
    let (head, body) = request;
    assert!(head.starts_with("POST /push?app=demo HTTP/1.1"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("authorization: bearer hook-secret"));
    assert!(head
        .to_ascii_lowercase()
        .contains("content-type: application/json"));
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["type"], "invite");
    assert_eq!(json["to"], "bob");
    assert_eq!(json["from"], "alice");
    assert_eq!(json["call_id"], inv.call_id.to_string());
    assert_eq!(json["envelope_id"], inv.id.to_string());
    assert_eq!(json["room_id"], "alice-room");
    assert_eq!(json["call_type"], "video");
}

#[tokio::test]
async fn a_flood_from_one_sender_never_evicts_another_senders_queued_invite() {
    // The default bound: 64 envelopes per offline user.
    let server = start(config()).await;
    let per_user = 64;
    let mut alice = raw_user(&server, "alice", "a1").await;
    let inv = invite(("alice", "a1"), "bob", "alice-room");
    alice.send_env(&inv).await;
    let marker = message(("alice", "a1"), "alice", "marker");
    alice.send_env(&marker).await;
    assert_eq!(alice.json().await["data"], "marker");

    // mallory sends bob 80 envelopes, more than the whole queue holds.
    let mut mallory = raw_user(&server, "mallory", "m1").await;
    let flood: Vec<_> = (0..80)
        .map(|i| message(("mallory", "m1"), "bob", &format!("spam{i}")))
        .collect();
    for env in &flood {
        mallory.send_env(env).await;
    }
    let marker = message(("mallory", "m1"), "mallory", "marker");
    mallory.send_env(&marker).await;
    assert_eq!(mallory.json().await["data"], "marker", "no error frame");
    assert_eq!(server.stats().offline_queued, per_user);

    // bob connects: alice's invite is there, first (it was sent first), then mallory's newest 63.
    let mut bob = raw_user(&server, "bob", "b1").await;
    assert_eq!(bob.json().await["id"], inv.id.to_string());
    for env in &flood[80 - (per_user - 1)..] {
        assert_eq!(bob.json().await["id"], env.id.to_string());
    }
    bob.expect_silence(Duration::from_millis(200)).await;
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_envelopes_dropped_total{reason=\"queue_full\"}"
        ),
        (80 - (per_user - 1)) as f64
    );
}

#[tokio::test]
async fn the_sender_holding_most_of_a_full_queue_loses_its_oldest() {
    let mut c = config();
    c.limits.offline_queue_per_user = 4;
    let server = start(c).await;
    let mut carol = raw_user(&server, "carol", "c1").await;
    let mut dave = raw_user(&server, "dave", "d1").await;
    // carol: 3 waiting, dave: 1; dave's second envelope (2 < 3) pushes out carol's oldest.
    let c_env: Vec<_> = (0..3)
        .map(|i| message(("carol", "c1"), "bob", &format!("c{i}")))
        .collect();
    for env in &c_env {
        carol.send_env(env).await;
    }
    let marker = message(("carol", "c1"), "carol", "marker");
    carol.send_env(&marker).await;
    carol.json().await;
    let d0 = message(("dave", "d1"), "bob", "d0");
    let d1 = message(("dave", "d1"), "bob", "d1");
    dave.send_env(&d0).await;
    dave.send_env(&d1).await;
    let marker = message(("dave", "d1"), "dave", "marker");
    dave.send_env(&marker).await;
    dave.json().await;

    let mut bob = raw_user(&server, "bob", "b1").await;
    for want in ["c1", "c2", "d0", "d1"] {
        assert_eq!(bob.json().await["data"], want);
    }
    bob.expect_silence(Duration::from_millis(200)).await;
}

/// Accepts one webhook request on `hook`, answers it with `answer` (a whole HTTP response) and
/// returns its head and body.
async fn next_webhook_post(hook: &tokio::net::TcpListener, answer: &[u8]) -> (String, String) {
    let (mut conn, _) = tokio::time::timeout(WAIT, hook.accept())
        .await
        .unwrap()
        .unwrap();
    let request = tokio::time::timeout(WAIT, async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.unwrap();
            assert!(n > 0, "request cut short");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap();
                if body.len() >= len {
                    return (head.to_owned(), body.to_owned());
                }
            }
        }
    })
    .await
    .unwrap();
    conn.write_all(answer).await.unwrap();
    request
}

const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";

/// The `json push-webhook` example of docs/PROTOCOL.md.
fn documented_webhook_body() -> serde_json::Value {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .unwrap();
    let mut lines = doc
        .lines()
        .skip_while(|l| l.trim() != "```json push-webhook");
    lines.next().expect("a push-webhook example in PROTOCOL.md");
    let text: String = lines.take_while(|l| l.trim() != "```").collect();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn the_webhook_body_has_exactly_the_documented_members_and_a_refusal_is_not_retried() {
    let hook = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/push", hook.local_addr().unwrap());
    let mut c = config();
    c.push = Some(Arc::new(WebhookNotifier::new(&hook_url).unwrap()));
    let server = start(c).await;
    let mut alice = raw_user(&server, "alice", "a1").await;
    let inv = invite(("alice", "a1"), "bob", "alice-room");
    alice.send_env(&inv).await;

    // The backend refuses this push.
    let (_, body) = next_webhook_post(
        &hook,
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&body), keys(&documented_webhook_body()));
    assert_eq!(
        body["expires_at_ms"].as_u64().unwrap(),
        inv.ts + inv.lifetime_ms
    );

    // Counted as an error once; the invite stays queued and is not pushed again, not even for
    // its retransmission.
    let push_errors = r#"callapi_signal_push_notifications_total{result="error"}"#;
    tokio::time::timeout(WAIT, async {
        while server_metric(&server, push_errors) < 1.0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the refused push is counted");
    alice.send_env(&inv).await;
    let marker = message(("alice", "a1"), "alice", "marker");
    alice.send_env(&marker).await;
    alice.json().await;
    assert_eq!(server.stats().offline_queued, 1);
    let mut bob = raw_user(&server, "bob", "b1").await;
    assert_eq!(bob.json().await["id"], inv.id.to_string());
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), hook.accept())
            .await
            .is_err(),
        "no second push"
    );
    assert_eq!(server_metric(&server, push_errors), 1.0);
}

/// bob's phone, connecting [`BOB_CONNECTS_AFTER`] after it starts (time to prepare first).
fn bob_waking_up(server: &callapi_signal_ws::ServerHandle) -> Device {
    Device::start_scheduled(
        ws_transport(&server.url()),
        "bob",
        "b1",
        2,
        credentials("bob"),
        starting_after(BOB_CONNECTS_AFTER),
    )
}
