//! In-call messages and DTMF ride the reliable channel: delivered exactly once even when the
//! network duplicates, validated on send, and refused before the call is accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::CommandError;
use callapi_core::call::{
    CallEvent as E, Command, Notification, StateReason as R, MAX_DTMF_DIGITS, MAX_MESSAGE_BYTES,
};
use callapi_core::protocol::{Body, CallType};
use callapi_signal_mock::world::{SimMedia, SimWorld};
use callapi_signal_mock::FaultPlan;
use common::*;

fn received(w: &SimWorld, d: usize) -> Vec<(String, String)> {
    w.device(d)
        .notifications
        .iter()
        .filter_map(|(_, n)| match n {
            Notification::MessageReceived { from, data, .. } => {
                Some(("message".to_owned(), format!("{from}:{data}")))
            }
            Notification::DtmfReceived { from, digits, .. } => {
                Some(("dtmf".to_owned(), format!("{from}:{digits}")))
            }
            _ => None,
        })
        .collect()
}

fn connected(mut w: SimWorld, a: usize, b: usize) -> SimWorld {
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connected);
    assert_eq!(w.device(b).machine.state(), Connected);
    w
}

fn msg(data: &str) -> Command {
    Command::SendMessage { data: data.into() }
}

fn dtmf(digits: &str) -> Command {
    Command::SendDtmf {
        digits: digits.into(),
    }
}

#[test]
fn messages_and_dtmf_arrive_exactly_once_on_a_duplicating_network() {
    let plan = FaultPlan::default()
        .with_duplicate_rate(0.5)
        .with_delay(Duration::from_millis(10), Duration::from_millis(10));
    let (w, a, b) = two_party_on(21, plan, Some(SimMedia::default()));
    let mut w = connected(w, a, b);
    let call_id = current_call_id(&w, a);

    let mut expected_b = Vec::new();
    let mut expected_a = Vec::new();
    for i in 0..20 {
        w.command(a, msg(&format!("hello {i}"))).unwrap();
        expected_b.push(("message".to_owned(), format!("alice:hello {i}")));
        w.command(a, dtmf(&format!("{}#", i % 10))).unwrap();
        expected_b.push(("dtmf".to_owned(), format!("alice:{}#", i % 10)));
        w.command(b, msg(&format!("reply {i}"))).unwrap();
        expected_a.push(("message".to_owned(), format!("bob:reply {i}")));
        w.run_for(Duration::from_millis(100));
    }
    w.command(b, dtmf("*0")).unwrap();
    expected_a.push(("dtmf".to_owned(), "bob:*0".to_owned()));
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert!(
        w.net.stats().duplicated >= 10,
        "the network duplicated {} copies",
        w.net.stats().duplicated
    );
    assert_eq!(received(&w, b), expected_b);
    assert_eq!(received(&w, a), expected_a);
    for (_, n) in &w.device(b).notifications {
        if let Notification::MessageReceived { call_id: c, .. } = n {
            assert_eq!(*c, call_id);
        }
    }
    // The messages changed nothing else.
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::RemoteAccepted]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted]);
    assert_eq!(w.device(a).machine.pending_messages(), 0);
    assert_eq!(w.device(b).machine.pending_messages(), 0);
}

#[test]
fn messages_go_to_the_peer_device_of_the_call() {
    let (w, a, b) = two_party();
    let mut w = connected(w, a, b);
    w.command(a, msg("x")).unwrap();
    w.command(b, dtmf("5")).unwrap();
    let env_a = sent_without_acks(&w, a).pop().unwrap();
    assert_eq!(env_a.body, Body::Message { data: "x".into() });
    assert_eq!(env_a.to.as_str(), "bob");
    assert_eq!(env_a.to_device.as_ref().unwrap().as_str(), "b1");
    assert_eq!(env_a.call_id, current_call_id(&w, a));
    let env_b = sent_without_acks(&w, b).pop().unwrap();
    assert_eq!(env_b.body, Body::Dtmf { digits: "5".into() });
    assert_eq!(env_b.to_device.as_ref().unwrap().as_str(), "a1");
}

#[test]
fn invalid_dtmf_is_refused_and_nothing_is_sent() {
    let (w, a, b) = two_party();
    let mut w = connected(w, a, b);
    let sent = w.device(a).sent.len();
    let too_many = "1".repeat(MAX_DTMF_DIGITS + 1);
    for digits in ["12x", "", too_many.as_str(), "1 2", "E", "ab-", "١"] {
        let err = w.command(a, dtmf(digits)).unwrap_err();
        assert!(
            matches!(err, CommandError::InvalidArgument(_)),
            "{digits:?}: {err:?}"
        );
    }
    assert_eq!(w.device(a).sent.len(), sent);
    // Exactly the maximum, and every valid digit, are fine.
    w.command(a, dtmf(&"9".repeat(MAX_DTMF_DIGITS))).unwrap();
    w.command(a, dtmf("0123456789*#ABCD")).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        received(&w, b),
        vec![
            (
                "dtmf".to_owned(),
                format!("alice:{}", "9".repeat(MAX_DTMF_DIGITS))
            ),
            ("dtmf".to_owned(), "alice:0123456789*#ABCD".to_owned())
        ]
    );
}

#[test]
fn lowercase_dtmf_letters_are_normalized_to_upper_case() {
    let (w, a, b) = two_party();
    let mut w = connected(w, a, b);
    w.command(a, dtmf("abcd*1#")).unwrap();
    assert_eq!(
        sent_without_acks(&w, a).pop().unwrap().body,
        Body::Dtmf {
            digits: "ABCD*1#".into()
        }
    );
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        received(&w, b),
        vec![("dtmf".to_owned(), "alice:ABCD*1#".to_owned())]
    );
}

#[test]
fn messages_before_accept_are_refused() {
    let (mut w, a, b) = two_party();
    // No call at all.
    for d in [a, b] {
        for cmd in [msg("x"), dtmf("1")] {
            assert!(matches!(
                w.command(d, cmd).unwrap_err(),
                CommandError::InvalidState {
                    state: Prepared,
                    ..
                }
            ));
        }
    }
    // Ringing, on both sides.
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    let sent_a = w.device(a).sent.len();
    let sent_b = w.device(b).sent.len();
    for d in [a, b] {
        for cmd in [msg("x"), dtmf("1")] {
            assert!(matches!(
                w.command(d, cmd).unwrap_err(),
                CommandError::InvalidState { state: Calling, .. }
            ));
        }
    }
    assert_eq!(w.device(a).sent.len(), sent_a);
    assert_eq!(w.device(b).sent.len(), sent_b);
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
}

#[test]
fn messages_flow_once_accepted_even_before_connected() {
    // No first frame ever: both sides stay Connecting after accept.
    let media = SimMedia {
        first_frame_delay: None,
        ..SimMedia::default()
    };
    let (mut w, a, b) = two_party_with(Some(media));
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.command(b, msg("from bob")).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connecting);
    w.command(a, dtmf("7")).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        received(&w, a),
        vec![("message".to_owned(), "bob:from bob".to_owned())]
    );
    assert_eq!(
        received(&w, b),
        vec![("dtmf".to_owned(), "alice:7".to_owned())]
    );
}

#[test]
fn messages_after_the_call_ended_are_refused() {
    let (w, a, b) = two_party();
    let mut w = connected(w, a, b);
    w.command(a, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    for d in [a, b] {
        assert!(matches!(
            w.command(d, msg("late")).unwrap_err(),
            CommandError::InvalidState { .. }
        ));
    }
}

#[test]
fn an_oversize_message_is_refused_and_the_largest_allowed_one_arrives() {
    let (w, a, b) = two_party();
    let mut w = connected(w, a, b);
    let sent = w.device(a).sent.len();
    let err = w
        .command(a, msg(&"x".repeat(MAX_MESSAGE_BYTES + 1)))
        .unwrap_err();
    assert!(matches!(err, CommandError::InvalidArgument(_)), "{err:?}");
    assert_eq!(w.device(a).sent.len(), sent);

    let largest = "y".repeat(MAX_MESSAGE_BYTES);
    w.command(a, msg(&largest)).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        received(&w, b),
        vec![("message".to_owned(), format!("alice:{largest}"))]
    );
    // The envelope carrying it still fits the protocol's limit.
    let env = sent_without_acks(&w, a).pop().unwrap();
    let bytes = callapi_core::protocol::encode(&env).unwrap();
    assert!(bytes.len() <= callapi_core::protocol::MAX_ENVELOPE_BYTES);
}
