//! A group call between four `softphone` processes through a real signaling server
//! (`docs/PROTOCOL.md` §10), driven over their stdin: alice calls bob and carol, bob answers by
//! himself and carol by command, `members` lists all three in the call, bob invites dave
//! mid-call, carol leaves and joins again, alice ends the call for everyone — and every phone
//! prints each member change as one `member ...` line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::softphone::{field, member, member_from, members, online, phone, quit, server};
use common::Proc;

/// The `members` listing of `p`: (user, state) per record, checking the call id.
async fn roster(p: &mut Proc, call_id: &str) -> Vec<(String, String)> {
    let lines = members(p).await;
    let ok = p
        .log
        .iter()
        .rev()
        .find(|l| l.starts_with("ok members "))
        .unwrap();
    assert_eq!(field(ok, "call"), call_id, "{ok}");
    lines
        .iter()
        .map(|l| {
            let user = l
                .strip_prefix("members user=")
                .and_then(|r| r.split(' ').next())
                .unwrap();
            (user.to_owned(), field(l, "state").to_owned())
        })
        .collect()
}

fn all(users: &[&str], state: &str) -> Vec<(String, String)> {
    users
        .iter()
        .map(|u| ((*u).to_owned(), state.to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_softphones_hold_a_group_call() {
    let server = server().await;
    let url = server.url();
    let mut alice = phone(&url, "alice", "a1", &[]);
    let mut bob = phone(&url, "bob", "b1", &["--auto-answer"]);
    let mut carol = phone(&url, "carol", "c1", &[]);
    let mut dave = phone(&url, "dave", "d1", &[]);
    for p in [&mut alice, &mut bob, &mut carol, &mut dave] {
        online(p).await;
    }

    // alice calls bob and carol: both ring, bob answers by himself.
    alice.send("call bob carol audio").await;
    let ok = alice.expect_prefix("ok call ").await;
    let id = field(&ok, "call").to_owned();
    assert_eq!(
        ok,
        format!("ok call call={id} invited=bob,carol type=audio group")
    );
    let calling = alice.expect_prefix("state Calling ").await;
    assert!(
        calling.contains("reason=LocalAudioCall prev=Prepared"),
        "{calling}"
    );
    for p in [&mut bob, &mut carol] {
        let ringing = p.expect_prefix("state Calling ").await;
        assert!(
            ringing.contains("reason=RemoteAudioCall prev=Prepared"),
            "{ringing}"
        );
        assert_eq!(field(&ringing, "call"), id);
        assert_eq!(field(&ringing, "remote"), "alice");
    }
    bob.expect_prefix("ok accept (auto-answer)").await;
    bob.expect_prefix("state Connected reason=LocalAccepted")
        .await;
    alice.expect_prefix("state Connected ").await;
    let bob_in = member(&mut alice, "bob", "Accepted").await;
    assert_eq!(field(&bob_in, "device"), "b1", "{bob_in}");
    assert_eq!(field(&bob_in, "call"), id, "{bob_in}");

    // carol answers by command; everyone sees her in.
    carol.send("accept").await;
    carol.expect_prefix("ok accept").await;
    carol
        .expect_prefix("state Connected reason=LocalAccepted")
        .await;
    for p in [&mut alice, &mut bob] {
        let line = member(p, "carol", "Accepted").await;
        assert_eq!(field(&line, "device"), "c1", "{line}");
    }
    member(&mut carol, "bob", "Accepted").await;
    for p in [&mut alice, &mut bob, &mut carol] {
        assert_eq!(
            roster(p, &id).await,
            all(&["alice", "bob", "carol"], "Accepted")
        );
    }

    // bob invites dave mid-call; dave rings for bob's invitation and answers.
    bob.send("invite dave").await;
    bob.expect_prefix("ok invite invited=dave").await;
    let ringing = dave.expect_prefix("state Calling ").await;
    assert!(ringing.contains("reason=RemoteAudioCall"), "{ringing}");
    assert_eq!(field(&ringing, "call"), id);
    assert_eq!(field(&ringing, "remote"), "bob");
    for p in [&mut alice, &mut bob, &mut carol] {
        member(p, "dave", "Ringing").await;
    }
    dave.send("accept").await;
    dave.expect_prefix("ok accept").await;
    dave.expect_prefix("state Connected reason=LocalAccepted")
        .await;
    for p in [&mut alice, &mut bob, &mut carol] {
        let line = member_from(p, "dave", "Ringing", "Accepted").await;
        assert_eq!(field(&line, "device"), "d1", "{line}");
    }
    assert_eq!(
        roster(&mut dave, &id).await,
        all(&["alice", "bob", "carol", "dave"], "Accepted")
    );

    // carol leaves: the others stay in the call and see her go.
    carol.send("leave see you").await;
    carol.expect_prefix("ok leave").await;
    let down = carol.expect_prefix("state Prepared ").await;
    assert!(down.contains("reason=LocalHangup prev=Connected"), "{down}");
    for p in [&mut alice, &mut bob, &mut dave] {
        let line = member_from(p, "carol", "Accepted", "Left").await;
        assert!(line.ends_with(r#" text="see you""#), "{line}");
    }
    alice.send("status").await;
    let status = alice.expect_prefix("status ").await;
    assert!(
        status.starts_with("status state=Connected link=connected"),
        "{status}"
    );
    assert!(status.ends_with(" group in_call=3 pending=0"), "{status}");
    let mut expected = all(&["alice", "bob", "carol", "dave"], "Accepted");
    expected[2].1 = "Left".into();
    assert_eq!(roster(&mut bob, &id).await, expected);

    // carol joins again by the call's id.
    carol.send(&format!("join {id}")).await;
    carol.expect_prefix(&format!("ok join call={id}")).await;
    carol.expect_prefix("state Connected ").await;
    for p in [&mut alice, &mut bob, &mut dave] {
        let line = member_from(p, "carol", "Left", "Accepted").await;
        assert_eq!(field(&line, "device"), "c1", "{line}");
    }

    // alice ends the call for everyone.
    alice.send("end that's all").await;
    alice.expect_prefix("ok end").await;
    let down = alice.expect_prefix("state Prepared ").await;
    assert!(down.contains("reason=LocalHangup prev=Connected"), "{down}");
    for p in [&mut bob, &mut carol, &mut dave] {
        let down = p.expect_prefix("state Prepared ").await;
        assert!(down.contains("reason=CallEnded prev=Connected"), "{down}");
        assert_eq!(field(&down, "call"), id);
    }
    for p in [&mut alice, &mut bob, &mut carol, &mut dave] {
        p.send("status").await;
        assert_eq!(
            p.expect_prefix("status ").await,
            "status state=Prepared link=connected"
        );
    }

    alice.send("help").await;
    let help = alice.expect_prefix("help commands: ").await;
    for cmd in [
        "call <user> <user>...",
        "invite <user>...",
        "leave [reason]",
        "end [reason]",
        "join <call-id>",
        "members",
    ] {
        assert!(help.contains(cmd), "{cmd:?} not in {help:?}");
    }
    for p in [&mut alice, &mut bob, &mut carol, &mut dave] {
        quit(p).await;
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commands_outside_a_group_call_are_reported() {
    let server = server().await;
    let url = server.url();
    let mut alice = phone(&url, "alice", "a1", &[]);
    online(&mut alice).await;
    alice.send("members").await;
    assert_eq!(
        alice.expect_prefix("ok members ").await,
        "ok members count=0 in_call=0"
    );
    for (line, prefix) in [
        ("invite bob", "error invite invited=bob: "),
        ("leave", "error leave: "),
        ("end", "error end: "),
        (
            "join 00000000-0000-4000-8000-000000000000",
            "error join call=",
        ),
        ("call bob bob", "error call: usage: "),
        ("join nope", "error join: "),
    ] {
        alice.send(line).await;
        let err = alice.expect_prefix(prefix).await;
        assert!(err.len() > prefix.len(), "{line}: {err}");
    }
    alice.send("quit").await;
    alice.expect_prefix("bye").await;
    assert!(alice
        .finish(std::time::Duration::from_secs(10))
        .await
        .success());
    server.shutdown().await;
}
