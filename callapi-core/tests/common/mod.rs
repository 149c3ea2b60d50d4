//! Shared helpers for the behaviour tests: a two- or three-party world on a clean or faulty
//! simulated network, and compact assertions on what each device reported.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use callapi_core::call::{CallEvent, CallState, Notification, StateReason};
use callapi_signal_mock::world::{DeviceIndex, SimMedia, SimWorld};
use callapi_signal_mock::FaultPlan;

pub use CallState::*;

/// A fault-free network with a fixed 10 ms one-way delay.
pub fn clean_plan() -> FaultPlan {
    FaultPlan {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        ..FaultPlan::default()
    }
}

/// alice/a1 and bob/b1, both prepared, with simulated media.
pub fn two_party() -> (SimWorld, DeviceIndex, DeviceIndex) {
    two_party_with(Some(SimMedia::default()))
}

/// alice/a1 and bob/b1, both prepared, with the given media behaviour.
pub fn two_party_with(media: Option<SimMedia>) -> (SimWorld, DeviceIndex, DeviceIndex) {
    let mut w = SimWorld::new(7, clean_plan());
    let a = w.add_device("alice", "a1", media);
    let b = w.add_device("bob", "b1", media);
    w.prepare_default(a).unwrap();
    w.prepare_default(b).unwrap();
    (w, a, b)
}

/// The (state, reason) pairs a device went through, after the initial `Prepared`.
pub fn states(w: &SimWorld, d: DeviceIndex) -> Vec<(CallState, StateReason)> {
    w.device(d)
        .states()
        .into_iter()
        .skip_while(|(s, _)| *s == Prepared)
        .collect()
}

/// The events a device reported.
pub fn events(w: &SimWorld, d: DeviceIndex) -> Vec<CallEvent> {
    w.device(d).events()
}

/// Events a device reported, ignoring media progress events.
pub fn call_events(w: &SimWorld, d: DeviceIndex) -> Vec<CallEvent> {
    events(w, d)
        .into_iter()
        .filter(|e| {
            !matches!(
                e,
                CallEvent::JoinMediaStart
                    | CallEvent::LocalJoined
                    | CallEvent::RemoteJoined
                    | CallEvent::RecvRemoteFirstFrame
            )
        })
        .collect()
}

/// The last state change notification of a device.
pub fn last_change(w: &SimWorld, d: DeviceIndex) -> callapi_core::call::StateChange {
    w.device(d)
        .notifications
        .iter()
        .rev()
        .find_map(|(_, n)| match n {
            Notification::StateChanged(c) => Some(c.clone()),
            _ => None,
        })
        .expect("a state change")
}

/// Errors a device reported.
pub fn errors(w: &SimWorld, d: DeviceIndex) -> Vec<callapi_core::call::CallError> {
    w.device(d)
        .notifications
        .iter()
        .filter_map(|(_, n)| match n {
            Notification::Error(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}
