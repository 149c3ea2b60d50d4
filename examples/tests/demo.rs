//! The `demo` binary, run as a child process (bounded in time) on every backend and mode: a call
//! that connects and ends, printed transitions, the timing table, the media section, exit 0; and
//! a clear message with a non-zero exit when it cannot work.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_demo");
/// The demo's own default bound is 30 s; the test gives it a little more to report.
const WITHIN: Duration = Duration::from_secs(40);

async fn demo(args: &[&str]) -> String {
    let (status, out, err) = common::run(BIN, args, WITHIN).await;
    assert!(
        status.success(),
        "demo {args:?} exited with {status:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}"
    );
    out
}

fn has(out: &str, needle: &str) {
    assert!(out.contains(needle), "no {needle:?} in:\n{out}");
}

/// Position of the first line containing `needle`.
fn at(out: &str, needle: &str) -> usize {
    out.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in:\n{out}"))
}

/// Asserts that `steps` are printed in this order.
fn in_order(out: &str, steps: &[String]) {
    let mut last = 0;
    for step in steps {
        let i = at(out, step);
        assert!(i >= last, "{step:?} printed out of order in:\n{out}");
        last = i;
    }
}

/// Everything a successful single call prints. Each side's lines come in order, and the demo's
/// own lines come after what they wait for (the two sides print concurrently, so lines of
/// alice and bob within the same millisecond may interleave either way).
fn check_call(out: &str, kind: &str) {
    let (local, remote) = match kind {
        "video" => ("(LocalVideoCall)", "(RemoteVideoCall)"),
        _ => ("(LocalAudioCall)", "(RemoteAudioCall)"),
    };
    let s = |t: &str| t.to_owned();
    // alice's side.
    in_order(
        out,
        &[
            format!("alice calls bob ({kind})"),
            format!("alice Prepared → Calling  {local}"),
            s("alice   · RemoteUserRecvCall"),
            s("alice Calling → Connecting  (RemoteAccepted)"),
            s("alice Connecting → Connected"),
            s("alice hangs up"),
            s("alice Connected → Prepared  (LocalHangup) \"demo done\""),
            s("timings (ms from the call's start"),
        ],
    );
    // bob's side.
    in_order(
        out,
        &[
            format!("alice calls bob ({kind})"),
            format!("bob   Prepared → Calling  {remote}"),
            s("bob accepts"),
            s("bob   Calling → Connecting  (LocalAccepted)"),
            s("bob   Connecting → Connected"),
            s("alice hangs up"),
            s("bob   Connected → Prepared  (RemoteHangup) \"demo done\""),
            s("timings (ms from the call's start"),
        ],
    );
    // The timing table: every milestone, a number for connected on both sides.
    for milestone in [
        "remote_user_recv_call",
        "accept",
        "local_joined",
        "remote_joined",
        "first_local_frame_published",
        "first_remote_frame",
    ] {
        has(out, &format!("  {milestone} "));
    }
    let connected = out
        .lines()
        .find(|l| l.trim_start().starts_with("connected "))
        .unwrap_or_else(|| panic!("no connected row in:\n{out}"));
    let cells: Vec<f64> = connected
        .split_whitespace()
        .skip(1)
        .map(|c| c.parse().unwrap_or_else(|_| panic!("{connected:?}")))
        .collect();
    assert_eq!(cells.len(), 2, "{connected:?}");
    let first = out
        .lines()
        .find(|l| l.trim_start().starts_with("first_remote_frame "))
        .unwrap_or_else(|| panic!("no first_remote_frame row in:\n{out}"));
    assert_eq!(
        first
            .split_whitespace()
            .skip(1)
            .filter(|c| c.parse::<f64>().is_ok())
            .count(),
        2,
        "{first:?}"
    );
    check_media(out, kind);
    has(out, "demo: OK — ");
}

/// The media section: frames and packets flowed both ways (video unless audio-only).
fn check_media(out: &str, kind: &str) {
    has(out, "media that flowed (each side's engine counters)");
    for dir in ["alice → bob", "bob → alice"] {
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(dir))
            .unwrap_or_else(|| panic!("no {dir:?} row in:\n{out}"));
        let cells: Vec<&str> = row[row.find(dir).unwrap() + dir.len()..]
            .split_whitespace()
            .collect();
        let nums: Vec<u64> = cells.iter().filter_map(|c| c.parse().ok()).collect();
        if kind == "video" {
            assert_eq!(nums.len(), 4, "{row:?}");
            assert!(nums.iter().all(|&n| n > 0), "nothing flowed: {row:?}");
        } else {
            assert!(row.contains("- (audio only)"), "{row:?}");
            assert_eq!(nums.len(), 2, "{row:?}");
            assert!(nums.iter().all(|&n| n > 0), "nothing flowed: {row:?}");
        }
    }
}

#[tokio::test]
async fn demo_over_websocket_with_defaults() {
    let out = demo(&[]).await;
    has(
        &out,
        "signaling  WebSocket, callapi-signal-server started in-process on ws://127.0.0.1:",
    );
    has(&out, "both devices connected");
    check_call(&out, "video");
}

#[tokio::test]
async fn demo_over_mqtt_with_the_embedded_broker() {
    let out = demo(&["--backend", "mqtt", "--hold", "500ms"]).await;
    has(
        &out,
        "signaling  MQTT, embedded rumqttd broker on mqtt://127.0.0.1:",
    );
    check_call(&out, "video");
}

#[tokio::test]
async fn demo_over_the_mock_network_audio_only() {
    let out = demo(&["--backend", "mock", "--audio-only", "--hold", "500ms"]).await;
    has(&out, "signaling  in-memory (callapi-signal-mock");
    check_call(&out, "audio");
}

#[tokio::test]
async fn demo_audio_only_over_websocket() {
    let out = demo(&["--audio-only", "--hold", "500ms"]).await;
    check_call(&out, "audio");
}

#[tokio::test]
async fn demo_sequential_calls_print_a_latency_summary() {
    let out = demo(&["--calls", "5"]).await;
    check_call(&out, "video");
    for n in 2..=5 {
        has(&out, &format!("call {n}/5: ringing after "));
    }
    has(&out, "latency over 5 calls");
    for measure in [
        "call() → ringing",
        "accept → connected",
        "call() → connected",
        "hangup() → callee ended",
    ] {
        let row = out
            .lines()
            .find(|l| l.trim_start().starts_with(measure))
            .unwrap_or_else(|| panic!("no {measure:?} row in:\n{out}"));
        let n: u32 = row[row.find(measure).unwrap() + measure.len()..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(n, 5, "{row:?}");
    }
    has(&out, "demo: OK — 5 calls connected and ended cleanly");
}

#[tokio::test]
async fn demo_fails_with_a_clear_message_when_the_server_is_unreachable() {
    // Nothing listens on port 1: the devices never connect, the global timeout reports where.
    let (status, out, err) = common::run(
        BIN,
        &[
            "--server",
            "ws://127.0.0.1:1",
            "--secret",
            "s",
            "--timeout",
            "3s",
        ],
        WITHIN,
    )
    .await;
    assert_eq!(status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains(
            "demo failed: timed out after 3s while connecting alice and bob to the signaling \
             backend"
        ),
        "{err}"
    );
    assert!(!out.contains("demo: OK"), "{out}");
}

#[tokio::test]
async fn demo_refuses_inconsistent_flags() {
    let (status, _, err) = common::run(
        BIN,
        &["--backend", "mock", "--broker", "mqtt://h:1"],
        WITHIN,
    )
    .await;
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("--broker is an MQTT broker: use it with --backend mqtt"),
        "{err}"
    );
}

#[tokio::test]
async fn demo_without_media_connects_at_accept() {
    let out = demo(&["--backend", "mock", "--media", "none", "--hold", "200ms"]).await;
    has(&out, "media      none (--media none)");
    has(&out, "alice Connecting → Connected  (RemoteAccepted)");
    has(&out, "media: none — run without --media none");
    has(&out, "demo: OK — ");
}

/// The README's group command: alice calls bob and carol, bob invites dave mid-call, carol
/// leaves; real WebRTC mesh over the in-process server. Every member's changes are printed,
/// and the pair table shows frames and packets each way for every pair that was in the call
/// together (all six pairs: dave joined before carol left).
#[tokio::test]
async fn demo_group_call_with_a_late_joiner_and_a_leaver() {
    let out = demo(&["--group", "bob,carol", "--add", "dave", "--leave", "carol"]).await;
    in_order(
        &out,
        &[
            "alice calls bob, carol (video group call)".to_owned(),
            "bob   Prepared → Calling  (RemoteVideoCall)".to_owned(),
            "alice   ◦ member bob: Ringing → Accepted on bob-phone".to_owned(),
            "media flows between all 3 members".to_owned(),
            "] bob invites dave".to_owned(),
            "dave  Prepared → Calling  (RemoteVideoCall)".to_owned(),
            "media flows between all 4 members".to_owned(),
            "carol leaves the call".to_owned(),
            "carol's peer connections are closed on every side".to_owned(),
            "alice ends the call for everyone".to_owned(),
            "media that flowed between members".to_owned(),
            "demo: OK — group call with 4 members connected, 1 joined mid-call, 1 left".to_owned(),
        ],
    );
    for who in ["alice", "bob", "dave"] {
        has(
            &out,
            &format!("{who:<5}   ~ media with carol/carol-phone: closed"),
        );
    }
    has(&out, "bob   Connected → Prepared  (CallEnded)");
    has(&out, "dave  Connected → Prepared  (CallEnded)");
    let users = ["alice", "bob", "carol", "dave"];
    for from in users {
        for to in users.iter().filter(|u| **u != from) {
            let row = format!("  {from} → {to} ");
            let line = out
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("no row {row:?} in:\n{out}"));
            let numbers: Vec<u64> = line
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|t| t.parse().ok())
                .collect();
            assert_eq!(numbers.len(), 4, "{line}");
            assert!(numbers.iter().all(|n| *n > 0), "no media in {line:?}");
        }
    }
}

#[tokio::test]
async fn demo_refuses_bad_group_flags() {
    for (args, want) in [
        (
            &["--group", "bob", "--leave", "erin"][..],
            "--leave erin: not a member",
        ),
        (&["--group", "bob,bob"][..], "bob is named twice"),
        (&["--add", "dave"][..], "--group"),
        (
            &["--group", "bob,carol,dave,erin"][..],
            "the WebRTC mesh takes at most 4",
        ),
    ] {
        let (status, _, err) = common::run(BIN, args, WITHIN).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
