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

// ---------------------------------------------------------------- behaviour-test helpers

/// A world on `plan` with alice/a1 and bob/b1, both prepared, with the given media behaviour.
pub fn two_party_on(
    seed: u64,
    plan: FaultPlan,
    media: Option<SimMedia>,
) -> (SimWorld, DeviceIndex, DeviceIndex) {
    let mut w = SimWorld::new(seed, plan);
    let a = w.add_device("alice", "a1", media);
    let b = w.add_device("bob", "b1", media);
    w.prepare_default(a).unwrap();
    w.prepare_default(b).unwrap();
    (w, a, b)
}

/// Prepares device `d` with `cfg`, panicking on refusal.
pub fn prepare_with(w: &mut SimWorld, d: DeviceIndex, cfg: callapi_core::call::PrepareConfig) {
    w.command(d, callapi_core::call::Command::Prepare(cfg))
        .unwrap();
}

/// The id of the call device `d` is in.
pub fn current_call_id(w: &SimWorld, d: DeviceIndex) -> callapi_core::protocol::CallId {
    w.device(d)
        .machine
        .call_info()
        .expect("a call in progress")
        .call_id
}

/// Every state change of a device with the virtual time it happened at (the initial
/// `Prepared` included).
pub fn state_changes(
    w: &SimWorld,
    d: DeviceIndex,
) -> Vec<(Duration, callapi_core::call::StateChange)> {
    w.device(d)
        .notifications
        .iter()
        .filter_map(|(t, n)| match n {
            Notification::StateChanged(c) => Some((*t, c.clone())),
            _ => None,
        })
        .collect()
}

/// When device `d` last entered `state` with `reason`.
pub fn time_of(w: &SimWorld, d: DeviceIndex, state: CallState, reason: StateReason) -> Duration {
    state_changes(w, d)
        .into_iter()
        .rev()
        .find(|(_, c)| c.state == state && c.reason == reason)
        .map(|(t, _)| t)
        .unwrap_or_else(|| panic!("device {d} never entered {state:?}({reason:?})"))
}

/// The envelopes device `d` sent, without acks.
pub fn sent_without_acks(w: &SimWorld, d: DeviceIndex) -> Vec<callapi_core::protocol::Envelope> {
    w.device(d)
        .sent
        .iter()
        .filter(|e| !matches!(e.body, callapi_core::protocol::Body::Ack { .. }))
        .cloned()
        .collect()
}

/// The kinds of the distinct envelopes device `d` sent (retransmissions and acks left out), in
/// order.
pub fn sent_kinds(w: &SimWorld, d: DeviceIndex) -> Vec<&'static str> {
    let mut seen = std::collections::HashSet::new();
    sent_without_acks(w, d)
        .into_iter()
        .filter(|e| seen.insert(e.id))
        .map(|e| e.body.kind())
        .collect()
}

/// Event notifications of a device with their details (call id, reason).
pub fn event_infos(w: &SimWorld, d: DeviceIndex) -> Vec<callapi_core::call::EventInfo> {
    w.device(d)
        .notifications
        .iter()
        .filter_map(|(_, n)| match n {
            Notification::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}
