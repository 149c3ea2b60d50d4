//! What the call's state means for the signaling link is the machine's decision
//! (`Output::Link`), so the simulation sees it: `pause()` closes the link at once without a
//! call, and only after the call is over and its last messages are acknowledged with one; an
//! access-link session ends with its call (`Idle`, disconnect, saved data cleared) after the
//! same drain. The simulated world performs the commands (pause and disconnect take the device
//! offline).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallState, Command, LinkCommand, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use callapi_signal_mock::world::SimWorld;
use common::*;

fn link_commands(w: &SimWorld, d: usize) -> Vec<LinkCommand> {
    w.device(d).link_commands.iter().map(|(_, c)| *c).collect()
}

/// a calls b, b accepts, both connected.
fn connected(w: &mut SimWorld, a: usize, b: usize) {
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), CallState::Connected);
    assert_eq!(w.device(b).machine.state(), CallState::Connected);
}

/// When device `d` sent its (first) hangup, and when it got that hangup's ack.
fn hangup_and_its_ack(w: &SimWorld, d: usize, peer: usize) -> (Duration, Duration) {
    let hangup = w
        .device(d)
        .sent
        .iter()
        .find(|e| matches!(e.body, Body::Hangup { .. }))
        .expect("a hangup")
        .id;
    let sent_at = time_of(w, d, CallState::Prepared, R::LocalHangup);
    // The peer acknowledged it; it reached `d` one network delay (10 ms) later.
    assert!(w
        .device(peer)
        .sent
        .iter()
        .any(|e| matches!(e.body, Body::Ack { ack_id } if ack_id == hangup)));
    (sent_at, sent_at + Duration::from_millis(20))
}

#[test]
fn pause_without_a_call_closes_the_link_at_once() {
    let (mut w, a, _b) = two_party();
    w.command(a, Command::Pause).unwrap();
    assert_eq!(link_commands(&w, a), vec![LinkCommand::Pause]);
    w.command(a, Command::Resume).unwrap();
    assert_eq!(
        link_commands(&w, a),
        vec![LinkCommand::Pause, LinkCommand::Resume]
    );
}

#[test]
fn pause_during_a_call_waits_until_the_call_is_over_and_its_hangup_acknowledged() {
    let (mut w, a, b) = two_party();
    connected(&mut w, a, b);
    w.command(a, Command::Pause).unwrap();
    w.run_for(Duration::from_secs(5));
    // The call goes on: nothing closed the link.
    assert_eq!(link_commands(&w, a), vec![]);
    assert_eq!(w.device(a).machine.state(), CallState::Connected);

    w.command(a, Command::Hangup { reason: None }).unwrap();
    // The hangup is out but not yet acknowledged: the link stays.
    assert_eq!(link_commands(&w, a), vec![]);
    w.run_for(Duration::from_secs(1));
    assert_eq!(link_commands(&w, a), vec![LinkCommand::Pause]);
    let (_, acked_at) = hangup_and_its_ack(&w, a, b);
    assert_eq!(w.device(a).link_commands[0].0, acked_at);
    // The peer heard the hangup.
    assert_eq!(last_change(&w, b).reason, R::RemoteHangup);
}

#[test]
fn resume_cancels_a_pause_still_waiting_for_the_call() {
    let (mut w, a, b) = two_party();
    connected(&mut w, a, b);
    w.command(a, Command::Pause).unwrap();
    w.command(a, Command::Resume).unwrap();
    w.command(a, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(2));
    assert_eq!(link_commands(&w, a), vec![LinkCommand::Resume]);
}

#[test]
fn an_access_link_session_ends_with_its_call_after_the_hangup_is_acknowledged() {
    let (mut w, a, b) = two_party();
    w.devices[a]
        .machine
        .set_room_scope(Some("alice-room".into()));
    connected(&mut w, a, b);
    w.command(a, Command::Hangup { reason: None }).unwrap();
    assert_eq!(link_commands(&w, a), vec![]);
    // Ended with the call: Prepared, then Idle at once.
    assert_eq!(w.device(a).machine.state(), CallState::Idle);
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        link_commands(&w, a),
        vec![LinkCommand::Disconnect {
            clear_saved_data: true
        }]
    );
    let (_, acked_at) = hangup_and_its_ack(&w, a, b);
    assert_eq!(w.device(a).link_commands[0].0, acked_at);
    assert_eq!(last_change(&w, b).reason, R::RemoteHangup);
    // Saved data is gone: no last call timings.
    assert!(w.device(a).machine.call_timings().is_none());
}

#[test]
fn an_access_link_session_also_ends_when_the_peer_hangs_up() {
    let (mut w, a, b) = two_party();
    w.devices[a]
        .machine
        .set_room_scope(Some("alice-room".into()));
    connected(&mut w, a, b);
    w.command(b, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), CallState::Idle);
    assert_eq!(
        link_commands(&w, a),
        vec![LinkCommand::Disconnect {
            clear_saved_data: true
        }]
    );
    // A normal session keeps its link when a call ends.
    assert_eq!(link_commands(&w, b), vec![]);
}

#[test]
fn disconnect_hangs_up_first_and_ends_the_session_at_once() {
    let (mut w, a, b) = two_party();
    connected(&mut w, a, b);
    w.command(
        a,
        Command::Disconnect {
            clear_saved_data: false,
        },
    )
    .unwrap();
    assert_eq!(
        link_commands(&w, a),
        vec![LinkCommand::Disconnect {
            clear_saved_data: false
        }]
    );
    assert!(w.device(a).sent.iter().any(
        |e| matches!(&e.body, Body::Hangup { reason } if reason.as_deref() == Some("disconnect"))
    ));
}
