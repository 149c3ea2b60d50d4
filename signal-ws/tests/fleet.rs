//! A fleet on real processes: a 3-node nats-server cluster (JetStream, the servers' NATS user
//! the only one allowed on `callapi.fleet.>`) and two or three `callapi-signal-server serve
//! --nats ...` child processes, with `CallApi` devices and raw clients on different nodes.
//!
//! Calls and multi-device across nodes; an invite to an offline user kept in JetStream (R3)
//! surviving the `kill -9` of the node that took it, ringing on another node within its
//! lifetime and never after it, with one push per invite across the fleet; a server node
//! `kill -9`ed mid-call (its clients fail over, the call goes on, nothing acknowledged is
//! lost); a NATS node `kill -9`ed mid-call; spoofing through a second node, and a non-server
//! NATS user, refused.
//!
//! Needs `nats-server` (Debian's package; ./scripts/test installs it): without it each test
//! prints `SKIP: <reason>` and returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallState, Notification, StateReason};
use callapi_core::protocol::{encode_string, CallType};
use callapi_core::signal::LinkState;
use callapi_signal_mock::nats_cluster::NatsCluster;
use common::fleet::*;
use common::*;
use futures::StreamExt;

/// A cluster and `n` server nodes (`s1`, `s2`, ...), all posting pushes to one receiver.
struct Fleet {
    nodes: Vec<Node>,
    push: PushReceiver,
    // Dropped last: the server nodes go first.
    cluster: NatsCluster,
}

async fn fleet(n: usize) -> Option<Fleet> {
    let cluster = nats().await?;
    let push = PushReceiver::start().await;
    let mut nodes = Vec::new();
    for i in 1..=n {
        nodes.push(Node::start(&cluster, &format!("s{i}"), Some(&push.url)).await);
    }
    Some(Fleet {
        nodes,
        push,
        cluster,
    })
}

impl Fleet {
    fn url(&self, i: usize) -> &str {
        &self.nodes[i].url
    }

    /// Waits until node `i` reports `devices` devices online.
    async fn wait_devices(&self, i: usize, devices: f64) {
        let node = &self.nodes[i];
        let deadline = tokio::time::Instant::now() + FLEET_WAIT;
        loop {
            let got = node.metric("callapi_signal_devices").await;
            if got == devices {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {}: {got} devices, not {devices}",
                node.name
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

fn messages(d: &Device) -> Vec<String> {
    d.log
        .iter()
        .filter_map(|n| match n {
            Notification::MessageReceived { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect()
}

async fn wait_message(d: &mut Device, want: &str, within: Duration) {
    d.wait_for_within(
        &format!("message {want:?}"),
        within,
        |n| matches!(n, Notification::MessageReceived { data, .. } if data == want),
    )
    .await;
}

/// Waits until `d` has received every message of `want`, in any order.
async fn wait_messages(d: &mut Device, want: &[&str], within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    let missing = |d: &Device| {
        let got = messages(d);
        want.iter()
            .filter(|w| !got.iter().any(|g| g == *w))
            .map(|w| (*w).to_owned())
            .collect::<Vec<_>>()
    };
    loop {
        let left = missing(d);
        if left.is_empty() {
            return;
        }
        let rest = deadline.saturating_duration_since(tokio::time::Instant::now());
        d.wait_for_within(
            &format!("messages {left:?}"),
            rest,
            |n| matches!(n, Notification::MessageReceived { data, .. } if left.contains(data)),
        )
        .await;
    }
}

async fn wait_reconnected(d: &mut Device, within: Duration) {
    d.wait_for_within("the link dropping", within, |n| {
        matches!(n, Notification::Link(LinkState::Reconnecting { .. }))
    })
    .await;
    d.wait_for_within("the link back up", within, |n| {
        matches!(n, Notification::Link(LinkState::Connected))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_between_users_on_different_nodes() {
    let Some(f) = fleet(2).await else { return };
    let mut alice = Device::start(f.url(0), "alice", "a1", 1);
    let mut bob = Device::start(f.url(1), "bob", "b1", 2);
    alice.ready().await;
    bob.ready().await;
    f.wait_devices(0, 1.0).await;
    f.wait_devices(1, 1.0).await;

    let call_id = alice.api.call("bob", CallType::Video).await.unwrap();
    let ring = bob
        .wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    assert_eq!(ring.call.unwrap().call_id, call_id);
    bob.api.accept().await.unwrap();
    alice.wait_state(CallState::Connected).await;
    bob.wait_state(CallState::Connected).await;

    bob.api.send_message("from node 2").await.unwrap();
    wait_message(&mut alice, "from node 2", FLEET_WAIT).await;
    alice.api.send_message("from node 1").await.unwrap();
    wait_message(&mut bob, "from node 1", FLEET_WAIT).await;

    alice.api.hangup(None).await.unwrap();
    bob.wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    alice
        .wait_change(CallState::Prepared, StateReason::LocalHangup)
        .await;
    alice.drain();
    bob.drain();

    assert_eq!(
        alice.states(),
        [
            (CallState::Prepared, StateReason::None),
            (CallState::Calling, StateReason::LocalVideoCall),
            (CallState::Connecting, StateReason::RemoteAccepted),
            (CallState::Connected, StateReason::RecvRemoteFirstFrame),
            (CallState::Prepared, StateReason::LocalHangup),
        ]
    );
    assert_eq!(
        bob.states(),
        [
            (CallState::Prepared, StateReason::None),
            (CallState::Calling, StateReason::RemoteVideoCall),
            (CallState::Connecting, StateReason::LocalAccepted),
            (CallState::Connected, StateReason::RecvRemoteFirstFrame),
            (CallState::Prepared, StateReason::RemoteHangup),
        ]
    );
    assert_eq!(messages(&alice), ["from node 2"]);
    assert_eq!(messages(&bob), ["from node 1"]);
    // Everything crossed the bus: each node relayed envelopes, and bob was never offline.
    for node in &f.nodes {
        let relayed = node.metric("callapi_signal_envelopes_relayed_total").await;
        assert!(relayed >= 4.0, "node {}: relayed {relayed}", node.name);
    }
    assert_eq!(f.push.pushes(), Vec::<serde_json::Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_of_one_user_on_different_nodes_ring_and_one_answers() {
    let Some(f) = fleet(3).await else { return };
    let mut alice = Device::start(f.url(0), "alice", "a1", 1);
    let mut phone = Device::start(f.url(1), "bob", "phone", 2);
    let mut laptop = Device::start(f.url(2), "bob", "laptop", 3);
    alice.ready().await;
    phone.ready().await;
    laptop.ready().await;
    for i in 0..3 {
        f.wait_devices(i, 1.0).await;
    }

    let call_id = alice.api.call("bob", CallType::Video).await.unwrap();
    for d in [&mut phone, &mut laptop] {
        let ring = d
            .wait_change(CallState::Calling, StateReason::RemoteVideoCall)
            .await;
        assert_eq!(ring.call.unwrap().call_id, call_id);
    }
    laptop.api.accept().await.unwrap();
    phone
        .wait_change(CallState::Prepared, StateReason::AnsweredElsewhere)
        .await;
    alice.wait_state(CallState::Connected).await;
    laptop.wait_state(CallState::Connected).await;
    assert_eq!(
        alice.api.call_info().await.unwrap().unwrap().remote_device,
        Some(device("laptop"))
    );

    laptop.api.send_message("on the laptop").await.unwrap();
    wait_message(&mut alice, "on the laptop", FLEET_WAIT).await;
    laptop.api.hangup(None).await.unwrap();
    alice
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    phone.drain();
    assert_eq!(
        phone.states(),
        [
            (CallState::Prepared, StateReason::None),
            (CallState::Calling, StateReason::RemoteVideoCall),
            (CallState::Prepared, StateReason::AnsweredElsewhere),
        ]
    );
    assert_eq!(messages(&phone), Vec::<String>::new());
    assert_eq!(f.push.pushes(), Vec::<serde_json::Value>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invite_kept_in_jetstream_survives_its_node_and_rings_within_its_lifetime_only() {
    let Some(mut f) = fleet(3).await else { return };
    // Alice sends (raw, so nothing retransmits behind the test's back) through node 1.
    let mut alice = raw_at(f.url(0), "alice", "a1").await;
    let to_bob = invite(("alice", "a1"), "bob", "alice-room");
    let mut to_dave = invite(("alice", "a1"), "dave", "alice-room");
    to_dave.lifetime_ms = 2_000;
    alice.send_env(&to_bob).await;
    alice.send_env(&to_dave).await;
    // Nobody holds bob or dave: both are kept (R3), and node 1 pushes each once.
    wait_queued(&f.cluster, 1, 2).await;
    let pushes = f.push.wait_pushes(2).await;
    f.nodes[0]
        .wait_metric("callapi_signal_envelopes_queued_total", 2.0)
        .await;

    // The node that took them dies.
    f.nodes[0].kill9().await;
    drop(alice);
    // Alice's retransmission of bob's invite, through node 2: a duplicate across the fleet
    // (no second push). A message to carol, kept after it in the same order, tells when node
    // 2 is done with the duplicate.
    let mut alice = raw_at(f.url(1), "alice", "a1").await;
    alice.send_env(&to_bob).await;
    let marker = message(("alice", "a1"), "carol", "marker");
    alice.send_env(&marker).await;
    wait_queued(&f.cluster, 1, 3).await;

    // Dave's invite outlives its lifetime before dave connects (checked on the clock).
    let expiry = to_dave.ts + to_dave.lifetime_ms;
    let deadline = tokio::time::Instant::now() + FLEET_WAIT;
    while now_ms() <= expiry {
        assert!(tokio::time::Instant::now() < deadline, "the clock stands");
        tokio::time::sleep(POLL).await;
    }
    assert!(
        now_ms() < to_bob.ts + to_bob.lifetime_ms,
        "bob's invite still lives"
    );

    // Bob connects to node 3 and rings; dave connects to node 2 and gets nothing.
    let mut bob = Device::start_scheduled(
        failover(&[f.url(2)]),
        "bob",
        "b1",
        2,
        credentials("bob"),
        starting_after(Duration::from_millis(300)),
    );
    bob.prepare("bob-room").await;
    let ring = bob
        .wait_for_within(
            "ringing",
            FLEET_WAIT,
            |n| matches!(n, Notification::StateChanged(c) if c.state == CallState::Calling),
        )
        .await;
    let Notification::StateChanged(ring) = ring else {
        unreachable!()
    };
    assert_eq!(ring.reason, StateReason::RemoteVideoCall);
    assert_eq!(ring.call.unwrap().call_id, to_bob.call_id);
    let mut dave = raw_at(f.url(1), "dave", "d1").await;
    // Bob's invite (delivered) and dave's (expired) leave the queue; carol's message stays.
    wait_queued(&f.cluster, 1, 1).await;
    f.nodes[1]
        .wait_metric(
            "callapi_signal_envelopes_dropped_total{reason=\"expired\"}",
            1.0,
        )
        .await;
    dave.expect_silence(Duration::from_millis(500)).await;

    // One push per invite across the fleet, from the node that first kept it.
    let again = f.push.pushes();
    assert_eq!(again.len(), 2, "{again:?}");
    assert_eq!(again, pushes);
    let mut got: Vec<(String, String)> = again
        .iter()
        .map(|p| {
            assert_eq!(p["type"], "invite", "{p}");
            assert_eq!(p["from"], "alice", "{p}");
            (
                p["to"].as_str().unwrap().to_owned(),
                p["envelope_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("bob".to_owned(), to_bob.id.to_string()),
            ("dave".to_owned(), to_dave.id.to_string()),
        ]
    );
    for node in &f.nodes[1..] {
        assert_eq!(
            node.metric("callapi_signal_push_notifications_total{result=\"ok\"}")
                .await,
            0.0,
            "node {}",
            node.name
        );
    }
    bob.drain();
    assert_eq!(
        bob.states(),
        [
            (CallState::Prepared, StateReason::None),
            (CallState::Calling, StateReason::RemoteVideoCall),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_node_killed_mid_call_its_clients_fail_over_and_nothing_is_lost() {
    let Some(mut f) = fleet(2).await else { return };
    let (u0, u1) = (f.url(0).to_owned(), f.url(1).to_owned());
    let mut alice = Device::start_with(
        failover(&[&u0, &u1]),
        "alice",
        "a1",
        1,
        credentials("alice"),
    );
    let mut bob = Device::start_with(failover(&[&u1, &u0]), "bob", "b1", 2, credentials("bob"));
    alice.ready().await;
    bob.ready().await;
    f.wait_devices(0, 1.0).await;
    f.wait_devices(1, 1.0).await;
    let call_id = connected_call(&mut alice, &mut bob).await;
    alice.api.send_message("before").await.unwrap();
    wait_message(&mut bob, "before", FLEET_WAIT).await;

    // Node 1 (alice's) dies; bob's messages sent meanwhile wait for her.
    f.nodes[0].kill9().await;
    bob.api.send_message("while you move").await.unwrap();
    wait_reconnected(&mut alice, FLEET_WAIT).await;
    f.wait_devices(1, 2.0).await;
    bob.api.send_message("after you moved").await.unwrap();
    // In either order: what was kept in JetStream while she moved is replayed by node 2 after
    // her subscription is in place, so bob's live message can overtake it (a `message` is not
    // ordered relative to other envelopes).
    wait_messages(
        &mut alice,
        &["while you move", "after you moved"],
        FLEET_WAIT,
    )
    .await;
    alice.api.send_message("from node 2").await.unwrap();
    wait_message(&mut bob, "from node 2", FLEET_WAIT).await;

    for d in [&alice, &bob] {
        assert_eq!(d.api.state(), CallState::Connected, "{}", d.user);
        assert_eq!(d.api.call_info().await.unwrap().unwrap().call_id, call_id);
    }
    bob.api.hangup(None).await.unwrap();
    alice
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    alice.drain();
    bob.drain();
    // Each message exactly once (alice's two in either order, see above).
    let mut got = messages(&alice);
    got.sort();
    assert_eq!(got, ["after you moved", "while you move"]);
    assert_eq!(messages(&bob), ["before", "from node 2"]);
    for d in [&alice, &bob] {
        let connected = d
            .states()
            .iter()
            .filter(|s| s.0 == CallState::Connected)
            .count();
        assert_eq!(connected, 1, "{}: {:?}", d.user, d.states());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_node_killed_mid_call_the_call_goes_on() {
    let Some(mut f) = fleet(2).await else { return };
    let mut alice = Device::start(f.url(0), "alice", "a1", 1);
    let mut bob = Device::start(f.url(1), "bob", "b1", 2);
    alice.ready().await;
    bob.ready().await;
    f.wait_devices(0, 1.0).await;
    f.wait_devices(1, 1.0).await;
    connected_call(&mut alice, &mut bob).await;

    // The NATS node node 1 (alice's server) is connected to.
    let held = nats_nodes_of_servers(&f.cluster).await;
    let victim = held
        .iter()
        .find(|(_, names)| names.iter().any(|n| n.ends_with(" s1")))
        .map(|(i, _)| *i)
        .unwrap_or_else(|| panic!("s1 on no NATS node: {held:?}"));
    f.cluster.kill(victim).unwrap();
    // Sent while node 1 finds another NATS node.
    bob.api.send_message("through the gap").await.unwrap();
    let deadline = tokio::time::Instant::now() + NATS_FAILOVER_WAIT;
    loop {
        let now = nats_nodes_of_servers(&f.cluster).await;
        let servers: Vec<&String> = now.iter().flat_map(|(_, n)| n).collect();
        if servers.len() == 2 && now.iter().all(|(i, _)| *i != victim) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server nodes did not reconnect to NATS: {now:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    wait_message(&mut alice, "through the gap", NATS_FAILOVER_WAIT).await;
    alice.api.send_message("still here").await.unwrap();
    wait_message(&mut bob, "still here", NATS_FAILOVER_WAIT).await;
    alice.api.hangup(None).await.unwrap();
    bob.wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    alice.drain();
    bob.drain();
    assert_eq!(messages(&alice), ["through the gap"]);
    assert_eq!(messages(&bob), ["still here"]);
    for d in [&alice, &bob] {
        // No reconnect of the devices: only the bus moved.
        assert!(
            !d.links()
                .iter()
                .any(|l| matches!(l, LinkState::Reconnecting { .. })),
            "{}: {:?}",
            d.user,
            d.links()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofing_through_a_second_node_and_a_non_server_nats_user_are_refused() {
    let Some(f) = fleet(2).await else { return };
    let mut bob = raw_at(f.url(0), "bob", "b1").await;
    let mut mallory = raw_at(f.url(1), "mallory", "m1").await;
    f.wait_devices(0, 1.0).await;
    // What goes over the bus, as a server sees it.
    let (observer, _) = nats_client(&f.cluster, SERVER_USER, SERVER_PASSWORD).await;
    let mut bus = observer.subscribe("callapi.fleet.>").await.unwrap();
    observer.flush().await.unwrap();

    // Mallory, on node 2, claims to be alice, then her own other device.
    let as_alice = message(("alice", "a1"), "bob", "I am alice");
    mallory.send_env(&as_alice).await;
    let err = mallory.expect_error("spoofed_from").await;
    assert_eq!(err["id"], as_alice.id.to_string());
    let as_sibling = message(("mallory", "m2"), "bob", "I am m2");
    mallory.send_env(&as_sibling).await;
    mallory.expect_error("spoofed_from").await;
    // Her honest envelope crosses the bus and is the first bob gets.
    let honest = message(("mallory", "m1"), "bob", "hello");
    mallory.send_env(&honest).await;
    let got = bob.json().await;
    assert_eq!(got["id"], honest.id.to_string());
    assert_eq!(got["from"], "mallory");
    assert_eq!(got["from_device"], "m1");
    let seen = tokio::time::timeout(FLEET_WAIT, async {
        let mut seen = Vec::new();
        while let Some(msg) = bus.next().await {
            let text = String::from_utf8_lossy(&msg.payload).into_owned();
            let done = text.contains(&honest.id.to_string());
            seen.push((msg.subject.to_string(), text));
            if done {
                return seen;
            }
        }
        panic!("the bus subscription ended: {seen:?}");
    })
    .await
    .expect("the honest envelope on the bus");
    for (subject, text) in &seen {
        assert!(
            !text.contains(&as_alice.id.to_string()) && !text.contains(&as_sibling.id.to_string()),
            "a spoof reached the bus on {subject}: {text}"
        );
    }
    assert_eq!(
        f.nodes[1]
            .metric("callapi_signal_envelopes_dropped_total{reason=\"spoofed\"}")
            .await,
        2.0
    );

    // A NATS user other than the servers' may neither read nor write the fleet's subjects.
    let (app, errors) = nats_client(&f.cluster, OTHER_USER, OTHER_PASSWORD).await;
    let mut spy = app.subscribe("callapi.fleet.>").await.unwrap();
    app.flush().await.unwrap();
    wait_error(
        &errors,
        "permissions violation for subscription to \"callapi.fleet.>\"",
    )
    .await;
    let forged = message(("alice", "a1"), "bob", "forged on the bus");
    app.publish(
        "callapi.fleet.user.bob",
        encode_string(&forged).unwrap().into(),
    )
    .await
    .unwrap();
    app.flush().await.unwrap();
    wait_error(
        &errors,
        "permissions violation for publish to \"callapi.fleet.user.bob\"",
    )
    .await;
    app.publish("$JS.API.STREAM.MSG.GET.CALLAPI_FLEET_QUEUE", "{}".into())
        .await
        .unwrap();
    app.flush().await.unwrap();
    wait_error(&errors, "permissions violation for publish to \"$JS.API.").await;
    // Bob got nothing of it; the next honest envelope reaches him, not the spy.
    let again = message(("mallory", "m1"), "bob", "again");
    mallory.send_env(&again).await;
    let got = bob.json().await;
    assert_eq!(got["id"], again.id.to_string(), "{got}");
    bob.expect_silence(Duration::from_millis(300)).await;
    let spied = tokio::time::timeout(Duration::from_millis(300), spy.next()).await;
    assert!(
        matches!(spied, Err(_) | Ok(None)),
        "the non-server user read {spied:?}"
    );
}
