//! Figure 7: group calls with `WebRtcMedia` video as a full mesh (`docs/PROTOCOL.md` §10.9) on
//! loopback over the `signal-mock` network, 3 and 4 members, N sequential calls each: the
//! caller's `call_group()` → every member's device `Connected` with a first complete video
//! frame (`PeerMediaEvent::FirstFrame(Video)`) from every other member; the invitees accept as
//! soon as they ring. Also the process's CPU time over the calls, per member and call.
//! Baseline in the same run: the same group calls with `NoMedia` (every member `Connected`,
//! i.e. at its `confirm`) on the same kind of network.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use callapi_core::call::{CallConfig, CallState, Notification, PeerMediaEvent, PrepareConfig};
use callapi_core::media::{MediaEngine, MediaKind, NoMedia};
use callapi_core::protocol::{CallId, CallType, DeviceId, UserId};
use callapi_core::{CallApi, NotificationStream};
use callapi_media_webrtc::{WebRtcConfig, WebRtcHandle, WebRtcMedia};
use callapi_signal_mock::{FaultPlan, MockNetwork};

use crate::common::*;
use crate::report::{verdict, Report};
use crate::stats::{ms, round3, Samples};

/// The members, in the order they are used: the first one calls the others.
const NAMES: [(&str, &str); 4] = [
    ("alice", "a1"),
    ("bob", "b1"),
    ("carol", "c1"),
    ("dave", "d1"),
];

/// One member's device: its API, a notification stream the measurement reads, its state and
/// (with `WebRtcMedia`) its engine's handle.
struct Device {
    api: CallApi,
    user: UserId,
    stream: NotificationStream,
    state: tokio::sync::watch::Receiver<CallState>,
    media: Option<WebRtcHandle>,
}

impl Device {
    /// Drops the notifications left over from the previous call.
    fn drain(&mut self) {
        while self.stream.try_recv().is_some() {}
    }

    /// Reads this device's notifications until it is `Connected` in `call_id` and, with
    /// `video`, has a first video frame from each of `others`; fails on the call ending, a
    /// peer's media failing, or an error notification.
    async fn ready(&mut self, call_id: CallId, others: Vec<UserId>, video: bool) -> Res<()> {
        let mut connected = false;
        let mut framed = BTreeSet::new();
        while !(connected && (!video || framed.len() == others.len())) {
            let Some(n) = self.stream.recv().await else {
                return Err(format!("{}: notification stream ended", self.user).into());
            };
            match n {
                // Only this call's changes: those of the previous one may still be arriving.
                Notification::StateChanged(c)
                    if c.call.as_ref().is_some_and(|i| i.call_id == call_id) =>
                {
                    match c.state {
                        CallState::Connected => connected = true,
                        CallState::Prepared => {
                            return Err(
                                format!("{}: the call ended ({:?})", self.user, c.reason).into()
                            );
                        }
                        _ => {}
                    }
                }
                Notification::PeerMedia {
                    call_id: id,
                    peer,
                    event,
                } if id == call_id => match event {
                    PeerMediaEvent::FirstFrame(MediaKind::Video) if others.contains(&peer.user) => {
                        framed.insert(peer.user);
                    }
                    PeerMediaEvent::Failed(why) => {
                        return Err(format!(
                            "{}: media with {} failed: {why}",
                            self.user, peer.user
                        )
                        .into());
                    }
                    _ => {}
                },
                Notification::Error(e) if e.call_id.is_none_or(|id| id == call_id) => {
                    return Err(format!("{}: error {}: {}", self.user, e.code, e.message).into());
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What one series of group calls measured.
struct Series {
    /// `call_group()` → every member ready, of the calls that succeeded.
    samples: Samples,
    /// Calls that failed: not every member ready within [`WAIT`], the call ended on the way,
    /// a peer's media failed or an error was notified.
    failed: usize,
    /// Why the first failed call failed.
    first_failure: Option<String>,
    /// Process CPU time (user + system) over the whole series, teardowns included.
    cpu: Duration,
    /// Wall time of the whole series.
    wall: Duration,
}

impl Series {
    /// CPU ms per member per call.
    fn cpu_ms_per_member(&self, calls: usize, members: usize) -> f64 {
        ms(self.cpu) / (calls * members).max(1) as f64
    }

    /// CPU time over wall time, in per cent of one core.
    fn cpu_share_pct(&self) -> f64 {
        100.0 * self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The caller (`devices[0]`) calls the others; returns when every device is ready.
async fn one_call(devices: &mut [Device], video: bool) -> Res<Duration> {
    let users: Vec<UserId> = devices.iter().map(|d| d.user.clone()).collect();
    let invitees: Vec<&str> = users[1..].iter().map(UserId::as_str).collect();
    let t0 = Instant::now();
    let call_id = devices[0]
        .api
        .call_group(&invitees, CallType::Video)
        .await?;
    let waits = devices.iter_mut().map(|d| {
        let others: Vec<UserId> = users.iter().filter(|u| **u != d.user).cloned().collect();
        d.ready(call_id, others, video)
    });
    match tokio::time::timeout(WAIT, futures::future::try_join_all(waits)).await {
        Ok(Ok(_)) => Ok(t0.elapsed()),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(format!("not every member ready within {WAIT:?}").into()),
    }
}

/// The caller ends the call; waits until every device is `Prepared` and has freed its peer
/// connections.
async fn end_and_wait(devices: &mut [Device]) -> Res<()> {
    // A call that failed early may have nothing left to end: the waits below say if so.
    let _ = devices[0].api.end(None).await;
    for d in devices.iter_mut() {
        wait_watch(&mut d.state, CallState::Prepared)
            .await
            .map_err(|err| format!("{} after end: {err}", d.user))?;
    }
    for d in devices.iter() {
        if let Some(media) = &d.media {
            if !media.wait_live_peer_connections(0, WAIT).await {
                return Err(format!(
                    "{}: {} peer connection(s) still alive {WAIT:?} after the call ended",
                    d.user,
                    media.live_peer_connections()
                )
                .into());
            }
        }
    }
    Ok(())
}

/// `n` sequential group calls of `members` members with the engines `media` makes.
async fn group_calls<M: MediaEngine, F: Fn() -> Res<(M, Option<WebRtcHandle>)>>(
    media: F,
    members: usize,
    n: usize,
    net_seed: u64,
) -> Res<Series> {
    let net = MockNetwork::new(net_seed, FaultPlan::none());
    let mut devices = Vec::with_capacity(members);
    let mut answering = Vec::new();
    for (i, (u, d)) in NAMES.iter().take(members).enumerate() {
        let (user, device) = (UserId::new(*u)?, DeviceId::new(*d)?);
        let (engine, handle) = media()?;
        let api = CallApi::new(
            CallConfig::new(user.clone(), device.clone()),
            net.connect(user.clone(), device),
            engine,
        );
        let stream = api.subscribe();
        if i > 0 {
            // Invitees accept as soon as they ring.
            let mut rings = api.subscribe();
            let callee = api.clone();
            answering.push(tokio::spawn(async move {
                while let Some(n) = rings.recv().await {
                    if matches!(&n, Notification::StateChanged(c) if c.state == CallState::Calling)
                    {
                        let _ = callee.accept().await;
                    }
                }
            }));
        }
        api.prepare(PrepareConfig::new(format!("{u}-room"))).await?;
        let mut state = api.state_watch();
        wait_watch(&mut state, CallState::Prepared).await?;
        devices.push(Device {
            api,
            user,
            stream,
            state,
            media: handle,
        });
    }
    let video = devices.iter().any(|d| d.media.is_some());
    let mut samples = Vec::with_capacity(n);
    let (mut failed, mut first_failure) = (0, None);
    let cpu0 = CpuReading::now()?;
    let wall0 = Instant::now();
    for i in 0..n {
        for d in devices.iter_mut() {
            d.drain();
        }
        match one_call(&mut devices, video).await {
            Ok(t) => samples.push(t),
            Err(err) => {
                failed += 1;
                eprintln!("  group call {i} of {members} members failed: {err}");
                first_failure.get_or_insert_with(|| err.to_string());
            }
        }
        end_and_wait(&mut devices)
            .await
            .map_err(|err| format!("group call {i} of {members} members: {err}"))?;
    }
    let wall = wall0.elapsed();
    let cpu = CpuReading::now()?.since(&cpu0);
    for task in answering {
        task.abort();
    }
    for d in &devices {
        let _ = d.api.shutdown().await;
    }
    Ok(Series {
        samples: Samples::new(samples),
        failed,
        first_failure,
        cpu,
        wall,
    })
}

fn webrtc() -> Res<(WebRtcMedia, Option<WebRtcHandle>)> {
    let media = WebRtcMedia::new(WebRtcConfig::loopback())?;
    let handle = media.handle();
    Ok((media, Some(handle)))
}

fn no_media() -> Res<(NoMedia, Option<WebRtcHandle>)> {
    Ok((NoMedia, None))
}

/// A reading of this process's CPU clock (user + system time of all its threads).
struct CpuReading {
    /// The total from `/proc/self/stat` (fields 14 and 15): exited threads included, but each
    /// field truncated to clock ticks (10 ms).
    total: Duration,
    /// Each live thread's `se.sum_exec_runtime` from `/proc/self/task/<tid>/sched` (ns
    /// resolution; absent if the kernel does not provide it).
    threads: Option<BTreeMap<u32, Duration>>,
}

impl CpuReading {
    fn now() -> Res<Self> {
        Ok(Self {
            total: own_cpu_time()?,
            threads: thread_cpu(),
        })
    }

    /// CPU time consumed since `earlier`: the threads' sum when it agrees with the
    /// `/proc/self/stat` difference within two clock ticks (user and system time are each
    /// truncated to a tick; a thread that exited in between would be missing from the sum),
    /// else that difference.
    fn since(&self, earlier: &Self) -> Duration {
        let coarse = self.total.saturating_sub(earlier.total);
        let tick = Duration::from_secs_f64(1.0 / clock_ticks() as f64);
        let (Some(now), Some(then)) = (&self.threads, &earlier.threads) else {
            return coarse;
        };
        let fine: Duration = now
            .iter()
            .map(|(tid, t)| t.saturating_sub(then.get(tid).copied().unwrap_or_default()))
            .sum();
        if fine + 2 * tick > coarse && fine < coarse + 2 * tick {
            fine
        } else {
            coarse
        }
    }
}

/// Each live thread's CPU time (`se.sum_exec_runtime`, ms with ns decimals, in
/// `/proc/self/task/<tid>/sched`); `None` if any cannot be read.
fn thread_cpu() -> Option<BTreeMap<u32, Duration>> {
    let mut threads = BTreeMap::new();
    for entry in std::fs::read_dir("/proc/self/task").ok()? {
        let path = entry.ok()?.path();
        let tid: u32 = path.file_name()?.to_str()?.parse().ok()?;
        let Ok(sched) = std::fs::read_to_string(path.join("sched")) else {
            continue; // the thread exited meanwhile
        };
        let ms: f64 = sched
            .lines()
            .find(|l| l.starts_with("se.sum_exec_runtime"))?
            .split(':')
            .nth(1)?
            .trim()
            .parse()
            .ok()?;
        threads.insert(tid, Duration::from_secs_f64(ms / 1e3));
    }
    Some(threads)
}

/// Runs the figure with `n` group calls per size and engine.
pub async fn run(report: &mut Report, n: usize) -> Res<()> {
    let mut failed_calls = 0;
    for (members, seed) in [(3, 71), (4, 73)] {
        let rtc = group_calls(webrtc, members, n, seed).await?;
        let base = group_calls(no_media, members, n, seed + 1).await?;
        let key = |k: &str| format!("group.m{members}_{k}");
        report.set(&key("p50_ms"), round3(ms(rtc.samples.p50())));
        report.set(&key("p99_ms"), round3(ms(rtc.samples.p99())));
        report.set(
            &key("cpu_ms_per_member"),
            round3(rtc.cpu_ms_per_member(n, members)),
        );
        report.set(&key("cpu_share_pct"), round3(rtc.cpu_share_pct()));
        report.set(&key("nomedia_p50_ms"), round3(ms(base.samples.p50())));
        report.set(&key("nomedia_p99_ms"), round3(ms(base.samples.p99())));
        report.set(
            &key("nomedia_cpu_ms_per_member"),
            round3(base.cpu_ms_per_member(n, members)),
        );
        report.set(&key("nomedia_cpu_share_pct"), round3(base.cpu_share_pct()));
        failed_calls += rtc.failed + base.failed;
        let met = rtc.failed == 0 && base.failed == 0;
        let failures = match rtc.first_failure.as_ref().or(base.first_failure.as_ref()) {
            None => String::new(),
            Some(why) => format!(" (first: {why})"),
        };
        report.row(
            format!(
                "7. group call, WebRtcMedia video mesh, {members} members, loopback, mock \
                 signaling ({n} calls each)"
            ),
            format!(
                "every member has every other's first video frame: p50 {:.1} ms, p99 {:.1} ms; \
                 CPU {:.1} ms per member per call ({:.0} % of one core); {} failed",
                ms(rtc.samples.p50()),
                ms(rtc.samples.p99()),
                rtc.cpu_ms_per_member(n, members),
                rtc.cpu_share_pct(),
                rtc.failed
            ),
            format!(
                "NoMedia (connected at confirm): p50 {:.2} ms, p99 {:.2} ms; CPU {:.2} ms per \
                 member per call ({:.0} % of one core); {} failed",
                ms(base.samples.p50()),
                ms(base.samples.p99()),
                base.cpu_ms_per_member(n, members),
                base.cpu_share_pct(),
                base.failed
            ),
            format!("0 failed calls: {}{failures}", verdict(met)),
        );
    }
    report.set("group.calls", n as u64);
    report.set("group.failed_calls", failed_calls as u64);
    if failed_calls > 0 {
        eprintln!("  figure 7: {failed_calls} group call(s) failed");
    }
    Ok(())
}
