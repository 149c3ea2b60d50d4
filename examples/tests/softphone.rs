//! Two `softphone` processes call each other through a real signaling server, driven over their
//! stdin: call, ringing, accept, DTMF, a message, status, hangup, quit — and what each prints.
//!
//! The server is `callapi-signal-ws`'s `SignalServer` started in this test process
//! (`common::softphone`). Group calls are in `softphone_group.rs`, MQTT in `softphone_mqtt.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::softphone::{field, online, phone, server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_softphones_call_accept_send_dtmf_and_hang_up() {
    let server = server().await;
    let url = server.url();
    let mut alice = phone(&url, "alice", "a1", &[]);
    let mut bob = phone(&url, "bob", "b1", &[]);
    online(&mut alice).await;
    online(&mut bob).await;

    alice.send("call bob video").await;
    let ok = alice.expect_prefix("ok call ").await;
    let call_id = field(&ok, "call").to_owned();
    assert_eq!(field(&ok, "remote"), "bob");
    assert_eq!(field(&ok, "type"), "video");
    let calling = alice.expect_prefix("state Calling ").await;
    assert!(
        calling.contains("reason=LocalVideoCall prev=Prepared"),
        "{calling}"
    );

    let ringing = bob.expect_prefix("state Calling ").await;
    assert!(
        ringing.contains("reason=RemoteVideoCall prev=Prepared"),
        "{ringing}"
    );
    assert_eq!(field(&ringing, "call"), call_id);
    assert_eq!(field(&ringing, "remote"), "alice");
    let recv = alice.expect_prefix("event RemoteUserRecvCall").await;
    assert_eq!(field(&recv, "call"), call_id);

    bob.send("accept").await;
    bob.expect_prefix("ok accept").await;
    let up = alice.expect_prefix("state Connected ").await;
    assert!(up.contains("reason=RemoteAccepted"), "{up}");
    let up = bob.expect_prefix("state Connected ").await;
    assert!(up.contains("reason=LocalAccepted"), "{up}");

    alice.send("dtmf 12#").await;
    alice.expect_prefix("ok dtmf").await;
    let dtmf = bob.expect_prefix("dtmf ").await;
    assert_eq!(dtmf, "dtmf from=alice digits=12#");

    bob.send("msg hello from bob").await;
    bob.expect_prefix("ok msg").await;
    let msg = alice.expect_prefix("msg ").await;
    assert_eq!(msg, r#"msg from=bob text="hello from bob""#);

    alice.send("status").await;
    let status = alice.expect_prefix("status ").await;
    assert_eq!(
        status,
        format!("status state=Connected link=connected call={call_id} remote=bob type=video role=caller")
    );

    alice.send("hangup see you").await;
    alice.expect_prefix("ok hangup").await;
    let down = alice.expect_prefix("state Prepared ").await;
    assert!(down.contains("reason=LocalHangup prev=Connected"), "{down}");
    assert!(down.contains(r#"text="see you""#), "{down}");
    let down = bob.expect_prefix("state Prepared ").await;
    assert!(
        down.contains("reason=RemoteHangup prev=Connected"),
        "{down}"
    );
    assert!(down.contains(r#"text="see you""#), "{down}");
    assert_eq!(field(&down, "call"), call_id);

    bob.send("status").await;
    assert_eq!(
        bob.expect_prefix("status ").await,
        "status state=Prepared link=connected"
    );

    for p in [&mut alice, &mut bob] {
        p.send("quit").await;
        p.expect_prefix("bye").await;
        let status = p.finish(Duration::from_secs(10)).await;
        assert!(status.success(), "{status:?}\n{}", p.output());
        assert!(
            !p.log.iter().any(|l| l.starts_with("error")),
            "{}",
            p.output()
        );
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_answer_rejects_and_bad_commands() {
    let server = server().await;
    let url = server.url();
    let mut alice = phone(&url, "alice", "a1", &[]);
    let mut bob = phone(&url, "bob", "b1", &["--auto-answer"]);
    let mut carol = phone(&url, "carol", "c1", &[]);
    online(&mut alice).await;
    online(&mut bob).await;
    online(&mut carol).await;

    // bob answers by himself.
    alice.send("call bob audio").await;
    bob.expect_prefix("state Calling reason=RemoteAudioCall")
        .await;
    bob.expect_prefix("ok accept (auto-answer)").await;
    alice
        .expect_prefix("state Connected reason=RemoteAccepted")
        .await;

    // carol calls alice, who is busy: rejected automatically, alice's call goes on.
    carol.send("call alice").await;
    let busy = carol.expect_prefix("state Prepared ").await;
    assert!(
        busy.contains("reason=RemoteCallBusy prev=Calling"),
        "{busy}"
    );
    alice.send("status").await;
    assert!(alice
        .expect_prefix("status ")
        .await
        .starts_with("status state=Connected link=connected"));

    bob.send("hangup").await;
    alice
        .expect_prefix("state Prepared reason=RemoteHangup")
        .await;

    // alice declines carol with a reason.
    carol.send("call alice video").await;
    alice
        .expect_prefix("state Calling reason=RemoteVideoCall")
        .await;
    alice.send("reject in a meeting").await;
    alice.expect_prefix("ok reject").await;
    let rejected = carol.expect_prefix("state Prepared ").await;
    assert!(
        rejected.contains("reason=RemoteRejected prev=Calling"),
        "{rejected}"
    );
    assert!(rejected.contains(r#"text="in a meeting""#), "{rejected}");

    // carol cancels before anyone answers.
    carol.send("call alice").await;
    alice
        .expect_prefix("state Calling reason=RemoteVideoCall")
        .await;
    carol.send("cancel").await;
    carol
        .expect_prefix("state Prepared reason=LocalCancelled")
        .await;
    alice
        .expect_prefix("state Prepared reason=RemoteCancelled")
        .await;

    // Mistakes are reported, not fatal.
    alice.send("dance").await;
    assert_eq!(
        alice.expect_prefix("error ").await,
        r#"error unknown command "dance" (try help)"#
    );
    alice.send("dtmf 1").await;
    assert!(alice.expect_prefix("error dtmf: ").await.len() > "error dtmf: ".len());

    // End of input quits a phone; the auto-answering one keeps running until told.
    alice.close_stdin();
    alice.expect_prefix("bye").await;
    assert!(alice.finish(Duration::from_secs(10)).await.success());
    bob.send("quit").await;
    bob.expect_prefix("bye").await;
    assert!(bob.finish(Duration::from_secs(10)).await.success());
    carol.send("quit").await;
    assert!(carol.finish(Duration::from_secs(10)).await.success());
    server.shutdown().await;
}
