//! Glare: two users call each other at the same moment. The invite with the smaller call id wins
//! on both sides without a round trip; the loser drops its call (`Glare`) and rings for the winner.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::CallType;
use callapi_signal_mock::world::SimMedia;
use callapi_signal_mock::world::SimWorld;
use common::*;

fn simultaneous_calls(seed: u64) -> (SimWorld, usize, usize) {
    let mut w = SimWorld::new(seed, clean_plan());
    let a = w.add_device("alice", "a1", Some(SimMedia::default()));
    let b = w.add_device("bob", "b1", Some(SimMedia::default()));
    w.prepare_default(a).unwrap();
    w.prepare_default(b).unwrap();
    w.call(a, "bob", CallType::Video).unwrap();
    w.call(b, "alice", CallType::Video).unwrap();
    (w, a, b)
}

#[test]
fn smaller_call_id_wins_and_the_loser_rings_for_it() {
    // Try several seeds so both "alice wins" and "bob wins" occur.
    let mut winners = std::collections::HashSet::new();
    for seed in 0..8 {
        let (mut w, a, b) = simultaneous_calls(seed);
        let ida = w.device(a).machine.call_info().unwrap().call_id;
        let idb = w.device(b).machine.call_info().unwrap().call_id;
        let (win, lose, win_id) = if ida < idb { (a, b, ida) } else { (b, a, idb) };
        winners.insert(win);
        w.run_for(Duration::from_secs(1));

        assert_eq!(
            states(&w, win),
            vec![(Calling, R::LocalVideoCall)],
            "seed {seed}"
        );
        assert_eq!(
            states(&w, lose),
            vec![
                (Calling, R::LocalVideoCall),
                (Prepared, R::Glare),
                (Calling, R::RemoteVideoCall)
            ],
            "seed {seed}"
        );
        assert!(call_events(&w, lose).contains(&E::Glare));
        assert!(!call_events(&w, win).contains(&E::Glare));
        assert_eq!(
            w.device(lose).machine.call_info().unwrap().call_id,
            win_id,
            "the loser rings for the winning call"
        );
        assert!(call_events(&w, win).contains(&E::RemoteUserRecvCall));
        // Neither side declined the other as busy.
        assert!(!call_events(&w, win).contains(&E::RemoteCallBusy));
        assert!(!call_events(&w, lose).contains(&E::BusyAutoRejected));

        w.command(lose, Command::Accept).unwrap();
        w.run_for(Duration::from_secs(1));
        assert_eq!(
            states(&w, win).last(),
            Some(&(Connected, R::RecvRemoteFirstFrame))
        );
        assert_eq!(
            states(&w, lose).last(),
            Some(&(Connected, R::RecvRemoteFirstFrame))
        );
    }
    assert_eq!(winners.len(), 2, "both sides won in some seed");
}

#[test]
fn glare_resolves_the_same_way_when_the_invites_cross_with_different_delays() {
    for seed in 0..20 {
        let mut w = SimWorld::new(
            seed,
            callapi_signal_mock::FaultPlan::default()
                .with_delay(Duration::from_millis(5), Duration::from_millis(900)),
        );
        let a = w.add_device("alice", "a1", None);
        let b = w.add_device("bob", "b1", None);
        w.prepare_default(a).unwrap();
        w.prepare_default(b).unwrap();
        w.call(a, "bob", CallType::Audio).unwrap();
        w.call(b, "alice", CallType::Audio).unwrap();
        w.run_for(Duration::from_secs(3));
        let ia = w.device(a).machine.call_info().unwrap();
        let ib = w.device(b).machine.call_info().unwrap();
        assert_eq!(
            ia.call_id, ib.call_id,
            "seed {seed}: both sides settled on one call"
        );
        assert_ne!(ia.role, ib.role, "seed {seed}: one caller, one callee");
        let loser = if ia.role == callapi_core::media::MediaRole::Caller {
            b
        } else {
            a
        };
        assert!(call_events(&w, loser).contains(&E::Glare), "seed {seed}");
    }
}

#[test]
fn other_devices_of_the_winner_stop_ringing_for_the_dropped_call() {
    let mut w = SimWorld::new(5, clean_plan());
    let a = w.add_device("alice", "a1", None);
    let b1 = w.add_device("bob", "b1", None);
    let b2 = w.add_device("bob", "b2", None);
    for d in [a, b1, b2] {
        w.prepare_default(d).unwrap();
    }
    // The invites cross; b2, idle, rings for alice's call.
    w.call(a, "bob", CallType::Video).unwrap();
    w.call(b1, "alice", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(2));
    let ia = w.device(a).machine.call_info().unwrap();
    let ib1 = w.device(b1).machine.call_info().unwrap();
    assert_eq!(ia.call_id, ib1.call_id);
    // b2 rang for alice's call; if that call lost the glare, b2 was told to stop.
    let b2_state = w.device(b2).machine.state();
    if ia.caller.as_str() == "bob" {
        assert_eq!(b2_state, Prepared);
        assert_eq!(states(&w, b2).last(), Some(&(Prepared, R::RemoteCancelled)));
    } else {
        assert_eq!(b2_state, Calling);
    }
}
