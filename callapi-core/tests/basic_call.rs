//! The complete happy path of a 1:1 video call, as both sides see it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::CallType;
use common::*;

#[test]
fn caller_rings_callee_accepts_both_connect_then_hang_up() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));

    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall]
    );

    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
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

    w.run_for(Duration::from_secs(5));
    w.command(
        a,
        Command::Hangup {
            reason: Some("bye".into()),
        },
    )
    .unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a).last(), Some(&(Prepared, R::LocalHangup)));
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::RemoteHangup)));
    let end_b = last_change(&w, b);
    assert_eq!(end_b.event_reason.as_deref(), Some("bye"));
    let dur = last_change(&w, a)
        .duration
        .expect("duration of a connected call");
    assert!(
        dur >= Duration::from_secs(5) && dur < Duration::from_secs(7),
        "{dur:?}"
    );
    assert_eq!(call_events(&w, b).last(), Some(&E::RemoteHangup));
    // Everything was acknowledged: nothing is left to retransmit.
    assert_eq!(w.device(a).machine.pending_messages(), 0);
    assert_eq!(w.device(b).machine.pending_messages(), 0);
}
