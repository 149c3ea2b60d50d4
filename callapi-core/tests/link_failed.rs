//! A signaling session that fails for good (`LinkState::Failed`, e.g. unauthorized) puts the
//! machine in `Failed`: a call in progress ends with `SignalLost`, no call can start, and the
//! machine comes back when the link does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::CommandError;
use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::CallType;
use callapi_core::signal::LinkState;
use common::*;

fn failed() -> LinkState {
    LinkState::Failed {
        reason: "unauthorized: revoked".into(),
    }
}

#[test]
fn a_failed_session_ends_the_call_and_refuses_new_ones_until_the_link_is_back() {
    let (mut w, a, b) = two_party_with(None);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connected);

    w.link_event(a, failed());
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RemoteAccepted),
            (Prepared, R::SignalLost),
            (Failed, R::SignalLost)
        ]
    );
    assert!(call_events(&w, a).contains(&E::SignalLost));
    assert_eq!(
        w.call(a, "bob", CallType::Audio),
        Err(CommandError::InvalidState {
            action: "call",
            state: Failed
        })
    );
    // Preparing again is remembered but does not make the device reachable by itself.
    w.prepare_default(a).unwrap();
    assert_eq!(w.device(a).machine.state(), Failed);

    w.link_event(a, LinkState::Connected);
    assert_eq!(states(&w, a).last(), Some(&(Prepared, R::None)));
    w.run_for(Duration::from_secs(1));
    // Bob got the hangup sent when the session failed (here the network stayed up; over a real
    // outage it is retransmitted after the reconnect).
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::RemoteHangup)));
    w.call(a, "bob", CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(b).machine.state(), Calling);
}

#[test]
fn a_failed_session_without_a_call_just_fails_and_recovers() {
    let (mut w, a, _b) = two_party_with(None);
    w.link_event(a, failed());
    assert_eq!(w.device(a).machine.state(), Failed);
    assert!(call_events(&w, a).is_empty());
    w.link_event(a, LinkState::Connected);
    assert_eq!(w.device(a).machine.state(), Prepared);
}
