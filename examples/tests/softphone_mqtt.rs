//! The softphone's backends: a 1:1 call between two `softphone` processes over a real Mosquitto
//! (child process on a free loopback port, with the shipped policy, ACL, client id plugin and a
//! password file; `common::mosquitto`), a wrong broker password, and the messages for flags that
//! do not fit together.
//!
//! Without Mosquitto the broker tests fail in CI (`CI=true`) and are skipped with a printed
//! reason elsewhere; `./scripts/test` installs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::mosquitto::Mosquitto;
use common::softphone::{field, online, quit, spawn, BIN};

const USERS: &[(&str, &str)] = &[("alice", "alice-pw"), ("bob", "bob pw with spaces")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_softphones_call_over_mosquitto() {
    let Some(broker) = Mosquitto::start("two_softphones_call_over_mosquitto", USERS).await else {
        return;
    };
    let url = broker.url();
    // alice's password from a file (with the final newline an editor leaves), bob's inline.
    let alice_pw = broker.dir().join("alice.pw");
    std::fs::write(&alice_pw, "alice-pw\n").unwrap();
    let alice_pw = alice_pw.to_str().unwrap();
    let mqtt = ["--backend", "mqtt", "--broker", url.as_str()];
    let mut alice = spawn(
        "alice",
        &[
            &mqtt[..],
            &["--user", "alice", "--device", "a1"],
            &["--password-file", alice_pw],
        ]
        .concat(),
    );
    let mut bob = spawn(
        "bob",
        &[
            &mqtt[..],
            &["--user", "bob", "--device", "b1"],
            &["--password", "bob pw with spaces"],
        ]
        .concat(),
    );
    let ready = online(&mut alice).await;
    assert_eq!(ready, format!("ready user=alice device=a1 broker={url}"));
    online(&mut bob).await;

    alice.send("call bob audio").await;
    let ok = alice.expect_prefix("ok call ").await;
    let id = field(&ok, "call").to_owned();
    assert_eq!(ok, format!("ok call call={id} remote=bob type=audio"));
    let ringing = bob.expect_prefix("state Calling ").await;
    assert!(
        ringing.contains("reason=RemoteAudioCall prev=Prepared"),
        "{ringing}"
    );
    assert_eq!(field(&ringing, "call"), id);
    assert_eq!(field(&ringing, "remote"), "alice");
    alice.expect_prefix("event RemoteUserRecvCall").await;

    bob.send("accept").await;
    bob.expect_prefix("ok accept").await;
    let up = alice.expect_prefix("state Connected ").await;
    assert!(up.contains("reason=RemoteAccepted"), "{up}");
    bob.expect_prefix("state Connected reason=LocalAccepted")
        .await;

    alice.send("dtmf 42#").await;
    alice.expect_prefix("ok dtmf").await;
    assert_eq!(
        bob.expect_prefix("dtmf ").await,
        "dtmf from=alice digits=42#"
    );
    bob.send("msg over mqtt").await;
    bob.expect_prefix("ok msg").await;
    assert_eq!(
        alice.expect_prefix("msg ").await,
        r#"msg from=bob text="over mqtt""#
    );
    bob.send("status").await;
    assert_eq!(
        bob.expect_prefix("status ").await,
        format!(
            "status state=Connected link=connected call={id} remote=alice type=audio role=callee"
        )
    );

    bob.send("hangup bye").await;
    bob.expect_prefix("ok hangup").await;
    let down = alice.expect_prefix("state Prepared ").await;
    assert!(
        down.contains("reason=RemoteHangup prev=Connected"),
        "{down}"
    );
    assert!(down.contains(r#"text="bye""#), "{down}");
    bob.expect_prefix("state Prepared reason=LocalHangup").await;

    quit(&mut alice).await;
    quit(&mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_broker_password_fails_the_link() {
    let Some(broker) = Mosquitto::start("a_wrong_broker_password_fails_the_link", USERS).await
    else {
        return;
    };
    let url = broker.url();
    let mut alice = spawn(
        "alice",
        &[
            "--backend",
            "mqtt",
            "--broker",
            &url,
            "--user",
            "alice",
            "--device",
            "a1",
            "--password",
            "not-her-password",
        ],
    );
    alice.expect_prefix("ready user=alice").await;
    let failed = alice.expect_prefix("link failed ").await;
    assert!(failed.contains("reason="), "{failed}");
    alice.send("quit").await;
    alice.expect_prefix("bye").await;
    assert!(alice.finish(Duration::from_secs(10)).await.success());
}

/// Runs the softphone with flags that do not fit: exit 2, and the message names what to use.
async fn refused(args: &[&str], says: &str) {
    let (status, out, err) = common::run(BIN, args, Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(2), "{args:?}: {status:?}\n{out}\n{err}");
    assert!(err.contains(says), "{args:?}: no {says:?} in {err:?}");
    assert!(!out.contains("ready"), "{args:?}: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_flags_that_do_not_fit_are_refused() {
    let user = ["--user", "alice"];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--broker", "mqtt://127.0.0.1:1883", "--secret", "s"],
            "--broker is an MQTT broker: use it with --backend mqtt",
        ),
        (&["--password", "pw"], "use them with --backend mqtt"),
        (
            &[
                "--backend",
                "mqtt",
                "--server",
                "ws://127.0.0.1:8765",
                "--password",
                "pw",
            ],
            "with --backend mqtt name the broker with --broker",
        ),
        (
            &["--backend", "mqtt", "--secret", "s"],
            "--secret and --secret-file mint tokens for callapi-signal-server",
        ),
        (&["--backend", "mqtt"], "no credentials for the broker"),
        (
            &[
                "--backend",
                "mqtt",
                "--broker",
                "ws://127.0.0.1:1",
                "--password",
                "pw",
            ],
            "expected mqtt://host:port",
        ),
        (&["--backend", "carrier-pigeon"], "invalid value"),
        (&[], "no credentials"),
    ];
    for (args, says) in cases {
        refused(&[&user[..], args].concat(), says).await;
    }
}
