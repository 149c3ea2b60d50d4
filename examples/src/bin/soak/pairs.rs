//! The pairs loop: each pair (caller `c<i>`, callee `e<i>`) places calls in a loop, each drawn
//! from the pair's seeded RNG: answered (ring 0–3 s, a message or two, held 1–20 s, hung up by
//! either side), rejected, cancelled while ringing, or left unanswered until the call timeout.
//! Every wait is bounded; a call whose ending is not the scripted one counts as failed (by
//! reason). A watchdog checks every second that no device stays in a call longer than its
//! call's bound plus the signaling grace plus a margin: such a device is a stuck call.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callapi_core::call::{CallState, PrepareConfig, StateReason};
use callapi_core::protocol::CallType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::device::{Device, View};
use crate::Res;

/// Longest wait for the callee to ring (the 15 s call timeout, plus slack).
const RING_WAIT: Duration = Duration::from_secs(20);
/// Longest wait for both sides to be connected after the accept.
const CONNECT_WAIT: Duration = Duration::from_secs(30);
/// Longest wait for an in-call message.
const MESSAGE_WAIT: Duration = Duration::from_secs(20);
/// How long a call survives a signaling outage (`CallConfig::signal_grace`).
pub const GRACE: Duration = Duration::from_secs(30);
/// Slack past the grace: the in-call message lifetime (a hangup is retransmitted that long).
pub const MARGIN: Duration = Duration::from_secs(60);
/// Longest wait for both sides to end once the call is ended by the script.
const END_WAIT: Duration = Duration::from_secs(90);
/// Longest a device takes to come up (connected, prepared), faults included.
const UP_WAIT: Duration = Duration::from_secs(120);

/// What the pairs did.
#[derive(Debug, Default)]
pub struct Tally {
    /// Calls that ended the scripted way, by kind.
    pub completed: Mutex<BTreeMap<&'static str, u64>>,
    /// Calls that did not, by reason.
    pub failed: Mutex<BTreeMap<String, u64>>,
    /// Stuck calls, described.
    pub stuck: Mutex<Vec<String>>,
    stuck_seen: Mutex<HashSet<(String, Option<Instant>)>>,
    /// Calls placed.
    pub placed: AtomicU64,
}

impl Tally {
    fn complete(&self, kind: &'static str) {
        if let Ok(mut m) = self.completed.lock() {
            *m.entry(kind).or_default() += 1;
        }
    }

    fn fail(&self, reason: String) {
        if let Ok(mut m) = self.failed.lock() {
            *m.entry(reason).or_default() += 1;
        }
    }

    /// Records a stuck call once per device and call.
    pub fn stuck(&self, device: &Device, view: View, what: String, seed: u64) {
        let fresh = self
            .stuck_seen
            .lock()
            .map(|mut s| s.insert((device.user.clone(), view.active_since)))
            .unwrap_or(true);
        if fresh {
            let line = format!(
                "STUCK CALL: {} in {:?}: {what} (seed {seed}; rerun with --seed {seed})",
                device.user, view.state
            );
            eprintln!("{line}");
            if let Ok(mut s) = self.stuck.lock() {
                s.push(line);
            }
        }
    }

    /// Completed calls in total.
    pub fn completed_total(&self) -> u64 {
        self.completed.lock().map(|m| m.values().sum()).unwrap_or(0)
    }
}

/// One pair and the bound of the call it is in.
pub struct Pair {
    /// The caller.
    pub caller: Device,
    /// The callee.
    pub callee: Device,
    /// How long the current call may last by its script (ms), grace and margin not included.
    bound_ms: AtomicU64,
}

/// Starts `pairs` pairs on `url`, waits for all to be connected and prepared.
pub async fn bring_up(url: &str, pairs: usize, seed: u64) -> Res<Vec<Arc<Pair>>> {
    let mut all = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let s = seed.wrapping_mul(1_000_003).wrapping_add(2 * i as u64);
        all.push(Arc::new(Pair {
            caller: Device::start(url, &format!("c{i}"), s)?,
            callee: Device::start(url, &format!("e{i}"), s + 1)?,
            bound_ms: AtomicU64::new(0),
        }));
    }
    let mut ready = Vec::with_capacity(pairs);
    for pair in &all {
        let pair = pair.clone();
        ready.push(tokio::spawn(async move {
            for d in [&pair.caller, &pair.callee] {
                callapi_signal_mock::wait_linked(&d.api, UP_WAIT)
                    .await
                    .map_err(|e| format!("{} did not connect: {e}", d.user))?;
                d.api
                    .prepare(PrepareConfig::new(format!("{}-room", d.user)))
                    .await?;
            }
            Ok::<_, crate::BoxError>(())
        }));
    }
    for r in ready {
        r.await??;
    }
    Ok(all)
}

/// The kinds of call.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Answered {
        ring: Duration,
        hold: Duration,
        messages: u32,
        caller_hangs_up: bool,
    },
    Rejected {
        ring: Duration,
    },
    Cancelled {
        ring: Duration,
    },
    Unanswered,
}

impl Kind {
    fn draw(rng: &mut StdRng) -> Self {
        let ring = Duration::from_millis(rng.gen_range(0..3_000));
        match rng.gen_range(0..100) {
            0..=74 => Kind::Answered {
                ring,
                hold: Duration::from_millis(rng.gen_range(1_000..20_000)),
                messages: rng.gen_range(1..=2),
                caller_hangs_up: rng.gen_bool(0.5),
            },
            75..=84 => Kind::Rejected { ring },
            85..=94 => Kind::Cancelled { ring },
            _ => Kind::Unanswered,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Answered { .. } => "answered",
            Kind::Rejected { .. } => "rejected",
            Kind::Cancelled { .. } => "cancelled",
            Kind::Unanswered => "unanswered",
        }
    }

    /// How long the call may take by its script (every wait at its bound).
    fn bound(self) -> Duration {
        match self {
            Kind::Answered {
                ring,
                hold,
                messages,
                ..
            } => RING_WAIT + ring + CONNECT_WAIT + MESSAGE_WAIT * messages + hold,
            Kind::Rejected { ring } | Kind::Cancelled { ring } => RING_WAIT + ring,
            Kind::Unanswered => RING_WAIT,
        }
    }
}

/// The largest bound of any call.
pub fn max_bound() -> Duration {
    RING_WAIT + Duration::from_secs(3) + CONNECT_WAIT + MESSAGE_WAIT * 2 + Duration::from_secs(20)
}

/// Waits until `pred(caller view, callee view)` holds; false if it did not within `within`.
async fn wait_until(
    pair: &Pair,
    within: Duration,
    mut pred: impl FnMut(&View, &View) -> bool,
) -> bool {
    let (mut cw, mut ew) = (pair.caller.watch(), pair.callee.watch());
    let until = async {
        loop {
            let (c, e) = (*cw.borrow_and_update(), *ew.borrow_and_update());
            if pred(&c, &e) {
                return true;
            }
            tokio::select! {
                r = cw.changed() => if r.is_err() { return false },
                r = ew.changed() => if r.is_err() { return false },
            }
        }
    };
    tokio::time::timeout(within, until).await.unwrap_or(false)
}

fn reason(v: &View) -> String {
    v.last_end
        .map(|r| format!("{r:?}"))
        .unwrap_or_else(|| "-".into())
}

/// Which side ended the call early, and why.
fn early_end(pair: &Pair, snap: (View, View)) -> Option<String> {
    let (c, e) = (pair.caller.view(), pair.callee.view());
    if c.ended > snap.0.ended {
        Some(format!("caller ended early: {}", reason(&c)))
    } else if e.ended > snap.1.ended {
        Some(format!("callee ended early: {}", reason(&e)))
    } else {
        None
    }
}

fn any_ended(snap: (View, View)) -> impl FnMut(&View, &View) -> bool {
    move |c, e| c.ended > snap.0.ended || e.ended > snap.1.ended
}

/// Plays one call; `Err` says why it failed (the devices may still be in it).
async fn play(
    pair: &Pair,
    kind: Kind,
    call_type: CallType,
    snap: (View, View),
) -> Result<(), String> {
    let (caller, callee) = (&pair.caller, &pair.callee);
    caller
        .api
        .call(&callee.user, call_type)
        .await
        .map_err(|e| format!("call() refused: {e}"))?;
    let rang = wait_until(pair, RING_WAIT, |c, e| {
        e.state == CallState::Calling || c.ended > snap.0.ended
    })
    .await;
    if let Some(why) = early_end(pair, snap) {
        return Err(why);
    }
    if !rang {
        return Err("callee never rang".into());
    }
    let ring_for = |ring: Duration| async move {
        if wait_until(pair, ring, any_ended(snap)).await {
            return Err(early_end(pair, snap).unwrap_or_default());
        }
        Ok(())
    };
    match kind {
        Kind::Answered {
            ring,
            hold,
            messages,
            caller_hangs_up,
        } => {
            ring_for(ring).await?;
            callee
                .api
                .accept()
                .await
                .map_err(|e| format!("accept() refused: {e}"))?;
            let up = wait_until(pair, CONNECT_WAIT, |c, e| {
                (c.state == CallState::Connected && e.state == CallState::Connected)
                    || c.ended > snap.0.ended
                    || e.ended > snap.1.ended
            })
            .await;
            if let Some(why) = early_end(pair, snap) {
                return Err(why);
            }
            if !up {
                return Err("not connected within 30 s of the accept".into());
            }
            for k in 0..messages {
                let (from, caller_receives) = if k % 2 == 0 {
                    (caller, false)
                } else {
                    (callee, true)
                };
                let before = if caller_receives {
                    caller.view()
                } else {
                    callee.view()
                }
                .messages;
                from.api
                    .send_message(format!("soak message {k}"))
                    .await
                    .map_err(|e| format!("send_message() refused: {e}"))?;
                let got = wait_until(pair, MESSAGE_WAIT, |c, e| {
                    let to = if caller_receives { c } else { e };
                    to.messages > before || c.ended > snap.0.ended || e.ended > snap.1.ended
                })
                .await;
                if let Some(why) = early_end(pair, snap) {
                    return Err(why);
                }
                if !got {
                    return Err("message not received within 20 s".into());
                }
            }
            if wait_until(pair, hold, any_ended(snap)).await {
                return Err(early_end(pair, snap).unwrap_or_default());
            }
            let hanger = if caller_hangs_up { caller } else { callee };
            hanger
                .api
                .hangup(None)
                .await
                .map_err(|e| format!("hangup() refused: {e}"))?;
        }
        Kind::Rejected { ring } => {
            ring_for(ring).await?;
            callee
                .api
                .reject(None)
                .await
                .map_err(|e| format!("reject() refused: {e}"))?;
        }
        Kind::Cancelled { ring } => {
            ring_for(ring).await?;
            caller
                .api
                .cancel()
                .await
                .map_err(|e| format!("cancel() refused: {e}"))?;
        }
        Kind::Unanswered => {}
    }
    Ok(())
}

/// The endings a call of `kind` may have: (caller's, callee's).
fn expected(kind: Kind) -> (&'static [StateReason], &'static [StateReason]) {
    use StateReason::*;
    match kind {
        Kind::Answered {
            caller_hangs_up: true,
            ..
        } => (&[LocalHangup], &[RemoteHangup]),
        Kind::Answered { .. } => (&[RemoteHangup], &[LocalHangup]),
        Kind::Rejected { .. } => (&[RemoteRejected], &[LocalRejected]),
        Kind::Cancelled { .. } => (&[LocalCancelled], &[RemoteCancelled]),
        Kind::Unanswered => (
            &[CallingTimeout],
            &[RemoteCallingTimeout, RemoteCancelled, CallingTimeout],
        ),
    }
}

/// Ends whatever is left of the call on either side.
async fn clean_up(pair: &Pair) {
    for (d, is_caller) in [(&pair.caller, true), (&pair.callee, false)] {
        let _ = match d.view().state {
            CallState::Calling if is_caller => d.api.cancel().await,
            CallState::Calling => d.api.reject(None).await,
            CallState::Connecting | CallState::Connected => d.api.hangup(None).await,
            _ => Ok(()),
        };
    }
}

/// Runs pair `i`'s loop until `stop`; the call in progress then finishes.
pub async fn run_pair(
    pair: Arc<Pair>,
    seed: u64,
    i: usize,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = StdRng::seed_from_u64(seed ^ (0x5eed_0000_0000 + i as u64));
    pair.bound_ms
        .store(max_bound().as_millis() as u64, Ordering::Relaxed);
    while !stop.load(Ordering::Relaxed) {
        // Both out of any call before the next.
        if !wait_until(&pair, END_WAIT, |c, e| {
            !c.state.is_active() && !e.state.is_active()
        })
        .await
        {
            for d in [&pair.caller, &pair.callee] {
                let v = d.view();
                if v.state.is_active() {
                    tally.stuck(
                        d,
                        v,
                        format!("still in a call {END_WAIT:?} after it was ended"),
                        seed,
                    );
                }
            }
            return;
        }
        let kind = Kind::draw(&mut rng);
        let call_type = if rng.gen_bool(0.5) {
            CallType::Audio
        } else {
            CallType::Video
        };
        let idle = Duration::from_millis(rng.gen_range(0..2_000));
        pair.bound_ms
            .store(kind.bound().as_millis() as u64, Ordering::Relaxed);
        let snap = (pair.caller.view(), pair.callee.view());
        tally.placed.fetch_add(1, Ordering::Relaxed);
        let played = play(&pair, kind, call_type, snap).await;
        if played.is_err() {
            clean_up(&pair).await;
        }
        // Both sides' endings (a side that never entered the call has none to wait for).
        let done = |v: &View, s: &View| v.ended > s.ended || !v.state.is_active();
        let ended = wait_until(&pair, END_WAIT, |c, e| done(c, &snap.0) && done(e, &snap.1)).await;
        match played {
            Err(why) => tally.fail(format!("{}: {why}", kind.name())),
            Ok(()) if !ended => {
                tally.fail(format!("{}: not ended within {END_WAIT:?}", kind.name()))
            }
            Ok(()) => {
                let (c, e) = (pair.caller.view(), pair.callee.view());
                let (want_c, want_e) = expected(kind);
                let ok_c =
                    c.ended > snap.0.ended && c.last_end.is_some_and(|r| want_c.contains(&r));
                let ok_e =
                    e.ended > snap.1.ended && e.last_end.is_some_and(|r| want_e.contains(&r));
                match (ok_c, ok_e) {
                    (true, true) => tally.complete(kind.name()),
                    (false, _) => {
                        tally.fail(format!("{}: caller ended {}", kind.name(), reason(&c)))
                    }
                    (true, false) => {
                        tally.fail(format!("{}: callee ended {}", kind.name(), reason(&e)))
                    }
                }
            }
        }
        tokio::time::sleep(idle).await;
    }
}

/// Every second until `stop`: any device in a call longer than its call's bound plus
/// [`GRACE`] plus [`MARGIN`] is a stuck call.
pub async fn watchdog(pairs: Vec<Arc<Pair>>, seed: u64, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let now = Instant::now();
        for pair in &pairs {
            let bound =
                Duration::from_millis(pair.bound_ms.load(Ordering::Relaxed)) + GRACE + MARGIN;
            for d in [&pair.caller, &pair.callee] {
                let v = d.view();
                if let Some(since) = v.active_since {
                    let in_call = now.saturating_duration_since(since);
                    if in_call > bound {
                        tally.stuck(
                            d,
                            v,
                            format!(
                                "in the call for {:.0} s, bound {:.0} s",
                                in_call.as_secs_f64(),
                                bound.as_secs_f64()
                            ),
                            seed,
                        );
                    }
                }
            }
        }
    }
}
