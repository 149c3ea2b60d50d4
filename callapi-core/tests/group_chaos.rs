//! Group chaos: thousands of seeded scenarios of random group calls among 3–6 users with 1–2
//! devices each (`docs/PROTOCOL.md` §10), over the fault plans of `chaos.rs` (drops up to 30 %,
//! duplicates up to 10 %, reordering, delays up to 2 s, a partition). Users place group calls,
//! invite more users mid-call, accept, reject, leave, end the call for everyone, cancel some
//! invitations and join late, at random. Then the world runs until quiet, the calls still up are
//! ended one step at a time (an `End`, or every member leaving in turn) with the world running
//! until quiet after each step. Every scenario checks:
//!
//! * no panic; the world goes quiet; every device ends `Prepared`, and every call segment of a
//!   device that never connected ends within its bound: an invitee by its invite's lifetime plus
//!   the confirmation grace, a creator by the call timeout after its last invite, a late joiner
//!   by the call timeout;
//! * rosters: at every quiet point, all devices in the same call hold identical rosters (full
//!   records and `ended`), which say exactly who is in the call (a member is `accepted` with a
//!   device if and only if that device is connected in the call), and the roster each device
//!   shows its app (its `MemberChanged` notifications) is the one it holds. When the call is over,
//!   the last rosters of the devices that were in it at the first quiet point agree on the record
//!   of every member, except the records written after one of the two devices had ended (see
//!   [`check_last_rosters`]);
//! * ringing: no device rings past its invite's `ts + lifetime_ms`, and a ringing device stops at
//!   once when a cancel from its inviter reaches it; the time a device still rang after its
//!   inviter ended its member's invitation is measured (p50/p99/max);
//! * the media mesh: at every quiet point, each device in a call is connected (by the media
//!   commands it issued) to exactly the other devices in it, and with media on it got a first
//!   frame over its latest connection with each of them;
//! * nobody stays in a call everyone else left: a device stops at once when it receives an
//!   `ended` roster, at a quiet point no device is alone in its call, and a device left alone
//!   in a call ends within a bound (its own pending invitations aside).
//!
//! `CALLAPI_GROUP_CHAOS_SCENARIOS=N` changes the count (default 10,000);
//! `CALLAPI_GROUP_CHAOS_SEED=S` replays one scenario and prints its timeline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod seeded;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use callapi_core::call::{
    CallState, Command, MediaCommand, Notification, PeerMediaEvent, StateReason,
};
use callapi_core::media::{MediaPeer, MediaRole};
use callapi_core::protocol::{
    Body, CallId, CallType, DeviceId, Envelope, Member, MemberState, MessageId, UserId,
};
use callapi_signal_mock::world::{SimWorld, SIM_UNIX_MS};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);
const CONFIRM_GRACE: Duration = Duration::from_secs(30);
const SIGNAL_GRACE: Duration = Duration::from_secs(30);
const ACTION_PHASE: Duration = Duration::from_secs(30);
const SLACK: Duration = Duration::from_millis(5);
/// How long a device may stay alone in a call after the last other member's device ended its
/// part (it has to hear of it: retransmissions through drops and a partition).
const ALONE_TAIL: Duration = Duration::from_secs(60);
const QUIET_LIMIT: Duration = Duration::from_secs(300);
const NAMES: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];

/// What a record says to the app: state, device, reason.
type Shown = (MemberState, Option<DeviceId>, Option<String>);
type ShownRoster = BTreeMap<UserId, Shown>;

fn shown(records: &[Member]) -> ShownRoster {
    records
        .iter()
        .map(|m| {
            (
                m.user.clone(),
                (m.state, m.device.clone(), m.reason.clone()),
            )
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Placed the call.
    Creator,
    /// Rang for an invite.
    Invitee,
    /// Joined late by the call id.
    Joiner,
}

/// One device's part in one group call: from its first active state to its end.
#[derive(Debug, Clone)]
struct Segment {
    device: usize,
    call_id: CallId,
    kind: Kind,
    start: Duration,
    end: Option<Duration>,
    end_reason: Option<StateReason>,
    /// When it stopped ringing (`Calling`), for an invitee.
    rang_until: Option<Duration>,
    connected_at: Option<Duration>,
    /// The roster the app was shown at the segment's end, from its notifications.
    last: ShownRoster,
}

/// Every device's segments, with the roster each showed, rebuilt from its notifications (a
/// fresh invitation starts from an empty roster, a join from the last roster of the call).
fn segments(w: &SimWorld) -> Vec<Segment> {
    let mut out = Vec::new();
    for (i, d) in w.devices.iter().enumerate() {
        let mut open: Option<Segment> = None;
        let mut memo: HashMap<CallId, ShownRoster> = HashMap::new();
        for (at, n) in &d.notifications {
            match n {
                Notification::MemberChanged { call_id, change } => {
                    let shown = (change.state, change.device.clone(), change.reason.clone());
                    if let Some(s) = open.as_mut().filter(|s| s.call_id == *call_id) {
                        s.last.insert(change.user.clone(), shown);
                    } else {
                        // A call that ended here still learns (late rosters): the app is told,
                        // with the call's id, and a later join starts from that.
                        memo.entry(*call_id)
                            .or_default()
                            .insert(change.user.clone(), shown);
                    }
                }
                Notification::StateChanged(c) => {
                    let active = c.state.is_active();
                    let info = c.call.as_ref();
                    if active {
                        let Some(info) = info else { continue };
                        if open.as_ref().map(|s| s.call_id) != Some(info.call_id) {
                            if let Some(s) = open.take() {
                                memo.insert(s.call_id, s.last.clone());
                                out.push(s);
                            }
                            let kind = match (c.state, info.role) {
                                (CallState::Calling, MediaRole::Callee) => Kind::Invitee,
                                (CallState::Calling, _) => Kind::Creator,
                                _ => Kind::Joiner,
                            };
                            let last = if kind == Kind::Joiner {
                                memo.get(&info.call_id).cloned().unwrap_or_default()
                            } else {
                                ShownRoster::new()
                            };
                            open = Some(Segment {
                                device: i,
                                call_id: info.call_id,
                                kind,
                                start: *at,
                                end: None,
                                end_reason: None,
                                rang_until: None,
                                connected_at: None,
                                last,
                            });
                        }
                        let s = open.as_mut().unwrap();
                        if c.state != CallState::Calling && s.rang_until.is_none() {
                            s.rang_until = Some(*at);
                        }
                        if c.state == CallState::Connected && s.connected_at.is_none() {
                            s.connected_at = Some(*at);
                        }
                    } else if let Some(mut s) = open.take() {
                        s.end = Some(*at);
                        s.end_reason = Some(c.reason);
                        if s.rang_until.is_none() {
                            s.rang_until = Some(*at);
                        }
                        memo.insert(s.call_id, s.last.clone());
                        out.push(s);
                    }
                }
                _ => {}
            }
        }
        if let Some(s) = open {
            out.push(s);
        }
    }
    out
}

fn at_ms(ts: u64) -> Duration {
    Duration::from_millis(ts - SIM_UNIX_MS)
}

/// A virtual time as the envelopes' `ts` have it: whole milliseconds.
fn trunc(d: Duration) -> Duration {
    Duration::from_millis(u64::try_from(d.as_millis()).unwrap())
}

/// What each device received (first copy), rebuilt from its acks: an ack goes out the instant an
/// envelope arrives, so its `ts` is the arrival time.
fn received(w: &SimWorld) -> Vec<Vec<(Duration, Envelope)>> {
    let mut by_id: HashMap<(&UserId, &DeviceId, MessageId), &Envelope> = HashMap::new();
    for d in &w.devices {
        for e in &d.sent {
            by_id.entry((&e.from, &e.from_device, e.id)).or_insert(e);
        }
    }
    w.devices
        .iter()
        .map(|d| {
            let mut seen = HashMap::new();
            let mut out = Vec::new();
            for a in &d.sent {
                let Body::Ack { ack_id } = a.body else {
                    continue;
                };
                let Some(dev) = a.to_device.as_ref() else {
                    continue;
                };
                if seen.insert(ack_id, ()).is_some() {
                    continue;
                }
                if let Some(e) = by_id.get(&(&a.to, dev, ack_id)) {
                    out.push((at_ms(a.ts), (*e).clone()));
                }
            }
            out
        })
        .collect()
}

#[derive(Default)]
struct Outcome {
    calls: usize,
    connected: usize,
    /// How long a device still rang after its inviter ended its member's invitation.
    ring_after_end: Vec<Duration>,
    /// Time from a final-phase step (a leave or an end) until every device still in the call
    /// had taken it in.
    convergence: Vec<Duration>,
    final_steps: usize,
}

/// Checks, at a quiet point, the calls still up: identical rosters that say who is in, nobody
/// alone, and the notifications agree with what the machines hold.
fn check_quiet(w: &SimWorld, when: &str) -> Result<(), String> {
    let segs = segments(w);
    let mut by_call: BTreeMap<CallId, Vec<usize>> = BTreeMap::new();
    for (i, d) in w.devices.iter().enumerate() {
        let s = d.machine.state();
        match s {
            CallState::Prepared | CallState::Idle => continue,
            CallState::Connected => {}
            _ => return Err(format!("{when}: device {i} is {s:?} although all is quiet")),
        }
        let info = d.machine.call_info().ok_or("connected without a call")?;
        let roster = d
            .machine
            .members()
            .ok_or_else(|| format!("{when}: device {i} is connected without a roster"))?;
        let mine = roster.get(&d.user);
        if mine.map(|m| (m.state, m.device.as_ref()))
            != Some((MemberState::Accepted, Some(&d.device)))
        {
            return Err(format!(
                "{when}: device {i} is connected in {} but its own record is {mine:?}",
                info.call_id
            ));
        }
        let seg = segs
            .iter()
            .find(|s| s.device == i && s.end.is_none())
            .ok_or_else(|| format!("{when}: device {i} has no open segment"))?;
        if seg.call_id != info.call_id || seg.last != shown(roster.records()) {
            return Err(format!(
                "{when}: device {i} showed its app the roster {:?} but holds {:?}",
                seg.last,
                roster.records()
            ));
        }
        by_call.entry(info.call_id).or_default().push(i);
    }
    for (id, devs) in &by_call {
        let first = w.devices[devs[0]].machine.members().unwrap();
        for &i in &devs[1..] {
            let r = w.devices[i].machine.members().unwrap();
            if r != first {
                return Err(format!(
                    "{when}: call {id}: device {} holds {:?} (ended {}), device {i} holds {:?} \
                     (ended {})",
                    devs[0],
                    first.records(),
                    first.ended(),
                    r.records(),
                    r.ended()
                ));
            }
        }
        if first.ended() {
            return Err(format!(
                "{when}: call {id} is ended but devices {devs:?} are in it"
            ));
        }
        if first.pending().next().is_some() {
            return Err(format!(
                "{when}: call {id} has pending invitations although all is quiet: {:?}",
                first.records()
            ));
        }
        // Accepted on a device ⇔ that device is connected in the call.
        let in_call: Vec<(&UserId, &DeviceId)> = devs
            .iter()
            .map(|&i| (&w.devices[i].user, &w.devices[i].device))
            .collect();
        let accepted: Vec<(&UserId, &DeviceId)> = first
            .members_in_call()
            .map(|m| (&m.user, m.device.as_ref().unwrap()))
            .collect();
        if accepted != in_call {
            return Err(format!(
                "{when}: call {id}: the roster has {accepted:?} in the call, but the devices \
                 connected are {in_call:?}"
            ));
        }
        if devs.len() < 2 {
            return Err(format!(
                "{when}: device {} is alone in call {id}, which every other member left",
                devs[0]
            ));
        }
        check_mesh(w, *id, devs, when)?;
    }
    Ok(())
}

/// The media mesh of a call at a quiet point: each device in it is connected (by the media
/// commands it issued since it joined the call's media) to exactly the other devices in it,
/// and, with media on, got a first frame over the latest connection with each of them.
fn check_mesh(w: &SimWorld, id: CallId, devs: &[usize], when: &str) -> Result<(), String> {
    for &i in devs {
        let d = &w.devices[i];
        let mut peers: Vec<MediaPeer> = Vec::new();
        for c in &d.media_commands {
            match c {
                MediaCommand::Join(r) if r.call_id == id => peers.clear(),
                MediaCommand::AddPeer { call_id, peer, .. } if *call_id == id => {
                    peers.push(peer.clone())
                }
                MediaCommand::RemovePeer { call_id, peer } if *call_id == id => {
                    peers.retain(|p| p != peer)
                }
                MediaCommand::Leave { call_id } if *call_id == id => peers.clear(),
                _ => {}
            }
        }
        peers.sort();
        let mut expected: Vec<MediaPeer> = devs
            .iter()
            .filter(|&&j| j != i)
            .map(|&j| MediaPeer::new(w.devices[j].user.clone(), w.devices[j].device.clone()))
            .collect();
        expected.sort();
        if peers != expected {
            return Err(format!(
                "{when}: call {id}: device {i}'s media is connected to {peers:?}, but the \
                 devices in the call are {expected:?}"
            ));
        }
        if d.media.is_none() {
            continue;
        }
        for peer in &expected {
            let events: Vec<&PeerMediaEvent> = d
                .notifications
                .iter()
                .filter_map(|(_, n)| match n {
                    Notification::PeerMedia {
                        call_id,
                        peer: p,
                        event,
                    } if *call_id == id && p == peer => Some(event),
                    _ => None,
                })
                .collect();
            let last = events
                .iter()
                .rposition(|e| **e == PeerMediaEvent::Connecting)
                .ok_or_else(|| format!("{when}: device {i} never connected to {peer}"))?;
            if !events[last..]
                .iter()
                .any(|e| matches!(e, PeerMediaEvent::FirstFrame(_)))
            {
                return Err(format!(
                    "{when}: call {id}: device {i} got no frame from {peer} over its latest \
                     connection: {events:?}"
                ));
            }
        }
    }
    Ok(())
}

/// The last rosters of the devices that were in `call` at the first quiet point (`present`),
/// after it was ended step by step with quiet in between. `wrote[u]` is when user `u`'s device
/// wrote its own record in the final phase (its leave, or its end as the last one left); records
/// of others did not change after that point. Two devices must agree on the record of every
/// member, except a record written after one of them had ended (it could not know it), or at
/// the same instant.
fn check_last_rosters(
    segs: &[Segment],
    call: CallId,
    present: &[usize],
    wrote: &HashMap<UserId, Duration>,
    users: &[UserId],
) -> Result<(), String> {
    let last: Vec<&Segment> = present
        .iter()
        .map(|&i| {
            segs.iter()
                .rev()
                .find(|s| s.device == i && s.call_id == call)
                .unwrap()
        })
        .collect();
    for a in &last {
        for b in &last {
            if a.device >= b.device {
                continue;
            }
            let (ea, eb) = (a.end.unwrap(), b.end.unwrap());
            for u in users {
                // At the same virtual instant the times do not tell the order: a record
                // written in reaction to the other's end (its leave delivered at once) has the
                // time of that end and could not have reached it either.
                if wrote.get(u).is_some_and(|t| *t >= ea.min(eb)) {
                    continue;
                }
                let (ra, rb) = (a.last.get(u), b.last.get(u));
                if ra != rb {
                    return Err(format!(
                        "call {call} is over: device {} (ended at {ea:?}) last had {u}: {ra:?}, \
                         device {} (ended at {eb:?}) last had {u}: {rb:?}",
                        a.device, b.device
                    ));
                }
            }
        }
    }
    Ok(())
}

fn run_scenario(seed: u64, verbose: bool) -> Result<Outcome, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n_users = rng.gen_range(3..=6);
    let mut w = seeded::world(seed, &mut rng, &NAMES[..n_users]);
    let users: Vec<UserId> = NAMES[..n_users]
        .iter()
        .map(|n| UserId::new(*n).unwrap())
        .collect();
    let n_dev = w.devices.len();
    // The group calls each device has been part of (what it may join again).
    let mut known: Vec<Vec<CallId>> = vec![Vec::new(); n_dev];

    let start = w.now();
    let mut t = Duration::ZERO;
    loop {
        t += Duration::from_millis(rng.gen_range(50..3_000));
        if t > ACTION_PHASE {
            break;
        }
        w.run_until(start + t);
        let i = rng.gen_range(0..n_dev);
        let d = &w.devices[i];
        let state = d.machine.state();
        let info = d.machine.call_info();
        if let Some(info) = &info {
            if !known[i].contains(&info.call_id) {
                known[i].push(info.call_id);
            }
        }
        let role = info.as_ref().map(|c| c.role);
        let me = d.user.clone();
        let roster: Vec<Member> = d
            .machine
            .members()
            .map(|r| r.records().to_vec())
            .unwrap_or_default();
        let others: Vec<UserId> = users.iter().filter(|u| **u != me).cloned().collect();
        // Users this device may invite: not in the roster, or out of the call for good.
        let invitable: Vec<UserId> = others
            .iter()
            .filter(|u| {
                roster
                    .iter()
                    .find(|m| &m.user == *u)
                    .is_none_or(|m| m.state.is_terminal())
            })
            .cloned()
            .collect();
        let pending: Vec<UserId> = roster
            .iter()
            .filter(|m| m.state.is_pending())
            .map(|m| m.user.clone())
            .collect();
        let pick = |rng: &mut ChaCha8Rng, from: &[UserId], most: usize| -> Vec<UserId> {
            let k = rng.gen_range(1..=from.len().min(most));
            from.choose_multiple(rng, k).cloned().collect()
        };
        let roll: f64 = rng.gen();
        let link_roll: f64 = rng.gen();
        let cmd: Option<Command> = match (state, role) {
            _ if link_roll < 0.03 => Some(Command::Pause),
            _ if link_roll < 0.06 => Some(Command::Resume),
            (CallState::Prepared, _) => {
                if roll < 0.2 && !known[i].is_empty() {
                    let call_id = *known[i].choose(&mut rng).unwrap();
                    Some(Command::Join { call_id })
                } else if roll < 0.85 {
                    let to = pick(&mut rng, &others, 3);
                    let call_type = if rng.gen_bool(0.7) {
                        CallType::Video
                    } else {
                        CallType::Audio
                    };
                    let to: Vec<&str> = to.iter().map(UserId::as_str).collect();
                    if verbose {
                        eprintln!(
                            "[{:>8.3}s] device {i} ({state:?}): call_group {to:?}",
                            t.as_secs_f64()
                        );
                    }
                    if let Ok(id) = w.call_group(i, &to, call_type) {
                        known[i].push(id);
                    }
                    None
                } else {
                    None
                }
            }
            (CallState::Calling, Some(MediaRole::Callee)) => match roll {
                r if r < 0.55 => Some(Command::Accept),
                r if r < 0.8 => Some(Command::Reject {
                    reason: Some("no".into()),
                }),
                r if r < 0.9 => Some(Command::Leave { reason: None }),
                _ => None,
            },
            (CallState::Calling, _) => match roll {
                r if r < 0.15 => Some(Command::Cancel { reason: None }),
                r if r < 0.25 => Some(Command::Leave { reason: None }),
                r if r < 0.45 && !invitable.is_empty() => Some(Command::Invite {
                    users: pick(&mut rng, &invitable, 2),
                }),
                r if r < 0.65 && !pending.is_empty() => Some(Command::CancelInvites {
                    users: pick(&mut rng, &pending, 2),
                }),
                _ => None,
            },
            (CallState::Connecting, _) => match roll {
                r if r < 0.2 => Some(Command::Leave {
                    reason: Some("gave up".into()),
                }),
                r if r < 0.25 => Some(Command::End { reason: None }),
                _ => None,
            },
            (CallState::Connected, _) => match roll {
                r if r < 0.2 && !invitable.is_empty() => Some(Command::Invite {
                    users: pick(&mut rng, &invitable, 2),
                }),
                r if r < 0.35 && !pending.is_empty() => Some(Command::CancelInvites {
                    users: pick(&mut rng, &pending, 2),
                }),
                r if r < 0.55 => Some(Command::Leave {
                    reason: Some("bye".into()),
                }),
                r if r < 0.63 => Some(Command::End {
                    reason: Some("over".into()),
                }),
                r if r < 0.8 => Some(Command::SendMessage {
                    data: format!("m{seed}"),
                }),
                _ => None,
            },
            // Anything else, now and then: it may well be refused, which is fine.
            _ => match rng.gen_range(0..8) {
                0 => Some(Command::Accept),
                1 => Some(Command::Leave { reason: None }),
                2 => Some(Command::End { reason: None }),
                _ => None,
            },
        };
        if let Some(cmd) = cmd {
            if verbose {
                eprintln!(
                    "[{:>8.3}s] device {i} ({state:?}): {cmd:?}",
                    t.as_secs_f64()
                );
            }
            let _ = w.command(i, cmd);
        }
    }

    // The world settles: every call that is still up has nothing pending.
    let mut quiet = w.run_until_quiet(QUIET_LIMIT);
    let q_at = w.elapsed();
    if verbose {
        eprintln!("[{:>8.3}s] first quiet point: {quiet}", q_at.as_secs_f64());
    }
    let mut result = if quiet {
        check_quiet(&w, "first quiet point")
    } else {
        Ok(())
    };

    // The calls still up end one step at a time, with quiet after each step.
    let mut calls_up: BTreeMap<CallId, Vec<usize>> = BTreeMap::new();
    for (i, d) in w.devices.iter().enumerate() {
        if d.machine.state() == CallState::Connected {
            if let Some(info) = d.machine.call_info() {
                calls_up.entry(info.call_id).or_default().push(i);
            }
        }
    }
    let mut out = Outcome::default();
    let mut finals: Vec<(CallId, Vec<usize>, HashMap<UserId, Duration>)> = Vec::new();
    for (id, present) in &calls_up {
        let mut wrote: HashMap<UserId, Duration> = HashMap::new();
        let mut order = present.clone();
        order.shuffle(&mut rng);
        let end_all = rng.gen_bool(0.5);
        for (k, &i) in order.iter().enumerate() {
            if w.devices[i].machine.call_info().map(|c| c.call_id) != Some(*id) {
                // It already ended: the last one left (everyone else left).
                continue;
            }
            let step_at = w.elapsed();
            let cmd = if end_all {
                Command::End {
                    reason: Some("done".into()),
                }
            } else {
                Command::Leave {
                    reason: Some(format!("leave{k}")),
                }
            };
            if verbose {
                eprintln!(
                    "[{:>8.3}s] final step: device {i}: {cmd:?}",
                    step_at.as_secs_f64()
                );
            }
            if let Err(e) = w.command(i, cmd) {
                result = result.and(Err(format!("final step of device {i} refused: {e}")));
            }
            wrote.insert(w.devices[i].user.clone(), step_at);
            let remaining: Vec<usize> = present
                .iter()
                .copied()
                .filter(|&j| w.devices[j].machine.call_info().map(|c| c.call_id) == Some(*id))
                .collect();
            quiet &= w.run_until_quiet(QUIET_LIMIT);
            // When each remaining device took the step in (the leaver's record, or its end).
            let leaver = w.devices[i].user.clone();
            let mut took = Duration::ZERO;
            for &j in &remaining {
                let d = &w.devices[j];
                let seen = d.notifications.iter().find(|(at, n)| {
                    *at >= step_at
                        && match n {
                            Notification::MemberChanged { call_id, change } => {
                                call_id == id
                                    && change.user == leaver
                                    && change.state == MemberState::Left
                            }
                            Notification::StateChanged(c) => !c.state.is_active(),
                            _ => false,
                        }
                });
                match seen {
                    Some((at, _)) => took = took.max(*at - step_at),
                    None => {
                        result = result.and(Err(format!(
                            "final step at {step_at:?}: device {j} never took in device {i}'s \
                             step in call {id}"
                        )))
                    }
                }
            }
            out.convergence.push(took);
            out.final_steps += 1;
            // Anyone still in the call ended as the last one: it wrote its own record then.
            for &j in present {
                let d = &w.devices[j];
                if d.machine.call_info().is_some() || wrote.contains_key(&d.user) {
                    continue;
                }
                let last_end = d.notifications.iter().rev().find_map(|(at, n)| match n {
                    Notification::StateChanged(c) => Some((*at, c.reason)),
                    _ => None,
                });
                if let Some((at, StateReason::EveryoneLeft)) = last_end {
                    wrote.insert(d.user.clone(), at);
                }
            }
            if quiet && result.is_ok() {
                result = check_quiet(&w, &format!("after the final step at {step_at:?}"));
            }
            if end_all {
                break;
            }
        }
        finals.push((*id, present.clone(), wrote));
    }
    quiet &= w.run_until_quiet(QUIET_LIMIT);
    let end_of_world = w.elapsed();

    if verbose {
        eprintln!("plan: {:?}", w.net.plan());
        for (i, d) in w.devices.iter().enumerate() {
            for e in &d.sent {
                let extra = match &e.body {
                    Body::Members { members, ended } => format!(
                        " ended={ended} {:?}",
                        members
                            .iter()
                            .map(|m| format!(
                                "{}:{}@{}{}",
                                m.user,
                                m.state.as_str(),
                                m.seq,
                                m.device
                                    .as_ref()
                                    .map(|d| format!("/{d}"))
                                    .unwrap_or_default()
                            ))
                            .collect::<Vec<_>>()
                    ),
                    Body::Cancel {
                        timeout, elsewhere, ..
                    } => format!(" timeout={timeout} elsewhere={elsewhere:?}"),
                    Body::Ack { ack_id } => format!(" ack_id={ack_id}"),
                    _ => String::new(),
                };
                eprintln!(
                    "sent by device {i}: ts={} {} to {}/{:?} call {} id {} life {}{extra}",
                    e.ts - SIM_UNIX_MS,
                    e.body.kind(),
                    e.to,
                    e.to_device,
                    e.call_id,
                    e.id,
                    e.lifetime_ms
                );
            }
        }
        for (i, d) in w.devices.iter().enumerate() {
            for (at, n) in &d.notifications {
                let text = match n {
                    Notification::StateChanged(c) => format!(
                        "state {:?} -> {:?} ({:?}) call {:?}",
                        c.previous,
                        c.state,
                        c.reason,
                        c.call.as_ref().map(|c| c.call_id)
                    ),
                    Notification::MemberChanged { call_id, change } => format!(
                        "member {call_id}: {} {:?} -> {:?} dev {:?} reason {:?}",
                        change.user, change.previous, change.state, change.device, change.reason
                    ),
                    other => format!("{other:?}"),
                };
                eprintln!(
                    "[{:>8.3}s] device {i} {}/{}: {text}",
                    at.as_secs_f64(),
                    d.user,
                    d.device
                );
            }
        }
    }

    result?;
    for (i, d) in w.devices.iter().enumerate() {
        let s = d.machine.state();
        if s != CallState::Prepared {
            return Err(format!("device {i} ended in {s:?}"));
        }
    }

    let segs = segments(&w);
    let recv = received(&w);
    for (id, present, wrote) in &finals {
        check_last_rosters(&segs, *id, present, wrote, &users)?;
    }

    // Every device's sent invites, by (inviter device, call, invitee).
    let mut calls: HashMap<CallId, Vec<&Segment>> = HashMap::new();
    for s in &segs {
        calls.entry(s.call_id).or_default().push(s);
        let end = s
            .end
            .ok_or_else(|| format!("device {} never ended call {}", s.device, s.call_id))?;
        let d = &w.devices[s.device];
        // A received `ended` roster ends the call at once.
        if let Some((r, _)) = recv[s.device].iter().find(|(r, e)| {
            e.call_id == s.call_id
                && *r > trunc(s.start)
                && *r < trunc(end)
                && matches!(e.body, Body::Members { ended: true, .. })
        }) {
            return Err(format!(
                "device {} received an ended roster for call {} at {r:?} but stayed until {end:?}",
                s.device, s.call_id
            ));
        }
        match s.kind {
            Kind::Invitee => {
                // The device rang for the invite of the inviter device it sent its `ringing` to.
                let ring = d
                    .sent
                    .iter()
                    .find(|e| {
                        e.call_id == s.call_id
                            && at_ms(e.ts) >= trunc(s.start)
                            && matches!(e.body, Body::Ringing { .. })
                    })
                    .ok_or_else(|| {
                        format!("device {} rang for {} without ringing", s.device, s.call_id)
                    })?;
                let inviter = w
                    .devices
                    .iter()
                    .position(|x| x.user == ring.to && Some(&x.device) == ring.to_device.as_ref())
                    .ok_or("ringing to an unknown device")?;
                let invite = w.devices[inviter]
                    .sent
                    .iter()
                    .filter(|e| {
                        e.call_id == s.call_id
                            && e.to == d.user
                            && matches!(e.body, Body::Invite { .. })
                            && at_ms(e.ts) <= trunc(s.start)
                    })
                    .max_by_key(|e| e.ts)
                    .ok_or("rang without an invite")?;
                let until = at_ms(invite.ts + invite.lifetime_ms);
                let rang = s.rang_until.unwrap_or(end);
                if rang > until + SLACK {
                    return Err(format!(
                        "device {} rang for call {} until {rang:?}, past its invite's lifetime \
                         ({until:?})",
                        s.device, s.call_id
                    ));
                }
                if s.connected_at.is_none() && end > until + CONFIRM_GRACE + SLACK {
                    return Err(format!(
                        "device {} was in call {} until {end:?} without connecting (invite \
                         lifetime {until:?} + confirm grace)",
                        s.device, s.call_id
                    ));
                }
                // A cancel from its inviter stops it at once.
                let cancel = recv[s.device].iter().find(|(r, e)| {
                    e.call_id == s.call_id
                        && *r >= trunc(s.start)
                        && e.ts >= invite.ts
                        && e.from == ring.to
                        && Some(&e.from_device) == ring.to_device.as_ref()
                        && matches!(e.body, Body::Cancel { .. })
                });
                if let Some((r, _)) = cancel {
                    if trunc(rang) > *r {
                        return Err(format!(
                            "device {} got its inviter's cancel of call {} at {r:?} but rang \
                             until {rang:?}",
                            s.device, s.call_id
                        ));
                    }
                }
                // How long it rang after its inviter ended the invitation (or its call).
                let inv_dev = &w.devices[inviter];
                let ended_inv = inv_dev
                    .notifications
                    .iter()
                    .find(|(at, n)| {
                        *at >= at_ms(invite.ts)
                            && match n {
                                Notification::MemberChanged { call_id, change } => {
                                    *call_id == s.call_id
                                        && change.user == d.user
                                        && change.previous.is_some_and(MemberState::is_pending)
                                        && !change.state.is_pending()
                                }
                                Notification::StateChanged(c) => {
                                    !c.state.is_active()
                                        && c.call.as_ref().map(|c| c.call_id) == Some(s.call_id)
                                }
                                _ => false,
                            }
                    })
                    .map(|(at, _)| *at);
                if let Some(e) = ended_inv {
                    if rang > e {
                        out.ring_after_end.push(rang - e);
                    }
                }
            }
            Kind::Creator if s.connected_at.is_none() => {
                let last_invite = d
                    .sent
                    .iter()
                    .filter(|e| {
                        e.call_id == s.call_id
                            && at_ms(e.ts) >= trunc(s.start)
                            && matches!(e.body, Body::Invite { .. })
                    })
                    .map(|e| at_ms(e.ts))
                    .max()
                    .unwrap_or(s.start);
                if end > last_invite + CALL_TIMEOUT + SLACK {
                    return Err(format!(
                        "device {} called for {} until {end:?} without anyone answering (last \
                         invite at {last_invite:?})",
                        s.device, s.call_id
                    ));
                }
            }
            Kind::Joiner if s.connected_at.is_none() && end > s.start + CALL_TIMEOUT + SLACK => {
                return Err(format!(
                    "device {} tried to join {} from {:?} until {end:?}",
                    s.device, s.call_id, s.start
                ));
            }
            _ => {}
        }
        if end > end_of_world.max(s.start) + CALL_TIMEOUT + CONFIRM_GRACE + SIGNAL_GRACE {
            return Err(format!(
                "device {} never ended call {}",
                s.device, s.call_id
            ));
        }
    }

    // Nobody stays in a call that everyone else left.
    for (id, list) in &calls {
        out.calls += 1;
        if list.iter().filter(|s| s.connected_at.is_some()).count() >= 2 {
            out.connected += 1;
        }
        for s in list.iter().filter(|s| s.connected_at.is_some()) {
            let me = &w.devices[s.device].user;
            let end = s.end.unwrap();
            let overlapping: Vec<Duration> = list
                .iter()
                .filter(|o| &w.devices[o.device].user != me)
                .filter(|o| o.start < end && o.end.unwrap() > s.start)
                .map(|o| o.end.unwrap())
                .collect();
            let alone_since = overlapping.iter().copied().max().unwrap_or(s.start);
            if alone_since >= end {
                continue;
            }
            let last_invite = w.devices[s.device]
                .sent
                .iter()
                .filter(|e| e.call_id == *id && matches!(e.body, Body::Invite { .. }))
                .map(|e| at_ms(e.ts))
                .filter(|t| *t <= trunc(end))
                .max()
                .unwrap_or_default();
            let bound = (alone_since + ALONE_TAIL).max(last_invite + CALL_TIMEOUT + ALONE_TAIL);
            if end > bound {
                return Err(format!(
                    "device {} stayed in call {id} until {end:?}, alone since {alone_since:?}",
                    s.device
                ));
            }
        }
    }
    let _ = q_at;
    if !quiet {
        // Checked last, so that a scenario shows any other broken invariant first.
        let now = w.now();
        let busy: Vec<String> = w
            .devices
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                d.machine.poll_timeout().map(|t| {
                    format!(
                        "device {i} ({:?}, {} unacknowledged) wakes in {:?}",
                        d.machine.state(),
                        d.machine.pending_messages(),
                        t.saturating_duration_since(now)
                    )
                })
            })
            .collect();
        return Err(format!(
            "the world never went quiet (timers or retransmissions left): {busy:?}"
        ));
    }
    Ok(out)
}

fn pct(v: &[Duration], p: usize) -> Duration {
    v.get(v.len().saturating_sub(1) * p / 100)
        .copied()
        .unwrap_or_default()
}

#[test]
fn ten_thousand_seeded_group_scenarios_keep_every_invariant() {
    if let Ok(seed) = std::env::var("CALLAPI_GROUP_CHAOS_SEED") {
        let seed: u64 = seed.parse().expect("CALLAPI_GROUP_CHAOS_SEED is a number");
        let r = run_scenario(seed, true);
        assert!(r.is_ok(), "seed {seed}: {}", r.err().unwrap_or_default());
        return;
    }
    let count = seeded::count_from_env("CALLAPI_GROUP_CHAOS_SCENARIOS", 10_000);
    let (results, elapsed) = seeded::run_seeds(count, run_scenario);
    let mut failures: Vec<(u64, &String)> = results
        .iter()
        .filter_map(|(seed, r)| r.as_ref().err().map(|e| (*seed, e)))
        .collect();
    failures.sort_by_key(|(s, _)| *s);
    let ok: Vec<&Outcome> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .collect();
    let calls: usize = ok.iter().map(|o| o.calls).sum();
    let connected: usize = ok.iter().map(|o| o.connected).sum();
    let steps: usize = ok.iter().map(|o| o.final_steps).sum();
    let mut rings: Vec<Duration> = ok.iter().flat_map(|o| o.ring_after_end.clone()).collect();
    rings.sort();
    let mut conv: Vec<Duration> = ok.iter().flat_map(|o| o.convergence.clone()).collect();
    conv.sort();
    eprintln!(
        "group chaos: {} rings went on after the inviter ended the invitation: p50 {:?}, p99 \
         {:?}, max {:?}",
        rings.len(),
        pct(&rings, 50),
        pct(&rings, 99),
        rings.last().copied().unwrap_or_default()
    );
    eprintln!(
        "group chaos: {} final steps, time until every device in the call took the step in: \
         p50 {:?}, p99 {:?}, max {:?}",
        conv.len(),
        pct(&conv, 50),
        pct(&conv, 99),
        conv.last().copied().unwrap_or_default()
    );
    eprintln!(
        "group chaos: {count} scenarios ({} failed), {calls} calls ({connected} with two or more \
         members connected), {steps} final steps, wall time {elapsed:.2?}",
        failures.len()
    );
    // Failures by kind (the message up to its first number or id), with the smallest seed.
    let mut kinds: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for (seed, e) in &failures {
        let kind: String = e
            .split(|c: char| c.is_ascii_digit())
            .next()
            .unwrap_or_default()
            .chars()
            .take(60)
            .collect();
        let k = kinds.entry(kind).or_insert((0, *seed));
        k.0 += 1;
    }
    for (kind, (n, seed)) in &kinds {
        eprintln!("group chaos: {n} failures like {kind:?}, smallest seed {seed}");
    }
    assert!(
        failures.is_empty(),
        "{} of {count} scenarios failed (replay one with CALLAPI_GROUP_CHAOS_SEED=<seed>):\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .map(|(s, e)| format!("seed {s}: {e}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
