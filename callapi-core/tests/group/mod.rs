//! Shared helpers for the group-call behaviour tests: a world of users on a clean simulated
//! network (no media: group media is the media engine's business), and compact views of each
//! device's roster and member notifications.
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use callapi_core::call::{CallState, MemberChange, StateReason};
use callapi_core::protocol::MemberState;
use callapi_signal_mock::world::{DeviceIndex, SimWorld};
use callapi_signal_mock::FaultPlan;

pub use CallState::*;
pub use MemberState::{
    Accepted as In, Busy as MBusy, Cancelled as MCancelled, Inviting, Left, Rejected as MRejected,
    Ringing as MRinging, Timeout as Missed,
};

/// A fault-free network with a fixed 10 ms one-way delay.
pub fn clean_plan() -> FaultPlan {
    FaultPlan {
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
        ..FaultPlan::default()
    }
}

/// One prepared device per `(user, device)`, on a clean network, seeded.
pub fn world(devices: &[(&str, &str)]) -> (SimWorld, Vec<DeviceIndex>) {
    let mut w = SimWorld::new(21, clean_plan());
    let ids = devices
        .iter()
        .map(|(u, d)| {
            let i = w.add_device(u, d, None);
            w.prepare_default(i).unwrap();
            i
        })
        .collect();
    (w, ids)
}

/// A device's roster, as `(user, state)`.
pub fn roster(w: &SimWorld, d: DeviceIndex) -> Vec<(String, MemberState)> {
    w.roster(d)
}

/// The expected roster, from `(user, state)` pairs.
pub fn expect(pairs: &[(&str, MemberState)]) -> Vec<(String, MemberState)> {
    let mut v: Vec<_> = pairs.iter().map(|(u, s)| (u.to_string(), *s)).collect();
    v.sort_by(|x, y| x.0.cmp(&y.0));
    v
}

/// The member changes a device was told about, as `(user, previous, state)`.
pub fn changes(w: &SimWorld, d: DeviceIndex) -> Vec<(String, Option<MemberState>, MemberState)> {
    w.member_changes(d)
        .into_iter()
        .map(|c: MemberChange| (c.user.to_string(), c.previous, c.state))
        .collect()
}

/// The member changes of `user` a device was told about, as `(previous, state)`.
pub fn changes_of(
    w: &SimWorld,
    d: DeviceIndex,
    user: &str,
) -> Vec<(Option<MemberState>, MemberState)> {
    changes(w, d)
        .into_iter()
        .filter(|(u, _, _)| u == user)
        .map(|(_, p, s)| (p, s))
        .collect()
}

/// The (state, reason) pairs a device went through, after the initial `Prepared`.
pub fn states(w: &SimWorld, d: DeviceIndex) -> Vec<(CallState, StateReason)> {
    w.device(d)
        .states()
        .into_iter()
        .skip_while(|(s, _)| *s == Prepared)
        .collect()
}

/// A device's full record of `user` in its group call (`None`: no group call, or unknown user).
pub fn record_of(
    w: &SimWorld,
    d: DeviceIndex,
    user: &str,
) -> Option<callapi_core::protocol::Member> {
    w.device(d)
        .machine
        .members()
        .and_then(|r| r.iter().find(|m| m.user.as_str() == user).cloned())
}

/// One member change with what the new record carries: `(previous, state, reason, device)`.
pub type DetailedChange = (
    Option<MemberState>,
    MemberState,
    Option<String>,
    Option<String>,
);

/// The member changes of `user` a device was told about, with what the new record carries.
pub fn detailed_changes_of(w: &SimWorld, d: DeviceIndex, user: &str) -> Vec<DetailedChange> {
    w.member_changes(d)
        .into_iter()
        .filter(|c| c.user.as_str() == user)
        .map(|c| {
            (
                c.previous,
                c.state,
                c.reason,
                c.device.map(|x| x.to_string()),
            )
        })
        .collect()
}
