//! Figure 1: call setup (`call()` → caller `Connected`, `NoMedia`, the callee accepts as soon
//! as it rings) against the transport floor (a raw envelope A→B→A over the same transport and
//! server, no call machine), per backend: ws, mqtt (Mosquitto), mock.

use std::time::{Duration, Instant};

use callapi_core::call::{CallConfig, CallState, Notification, PrepareConfig};
use callapi_core::connection::{Identity, LinkEvent, Supervisor, Transport, TransportLink};
use callapi_core::media::NoMedia;
use callapi_core::protocol::{CallType, DeviceId, UserId};
use callapi_core::signal::{SignalClient, SignalEvent};
use callapi_core::{CallApi, NotificationStream};
use callapi_signal_mock::{FaultPlan, MockNetwork};
use callapi_signal_mqtt::{MqttConfig, MqttTransport};
use callapi_signal_ws::{WsSignalClient, WsTransport};

use crate::common::*;
use crate::mosquitto::Mosquitto;
use crate::report::{verdict, Report};
use crate::stats::{round3, us, Samples};

/// Calls (and floor round trips) discarded before measuring.
pub(crate) const WARMUP: usize = 20;

/// Users of the figure (and their MQTT passwords).
pub const MQTT_USERS: &[(&str, &str)] = &[
    ("alice", "pw-alice"),
    ("bob", "pw-bob"),
    ("floora", "pw-floora"),
    ("floorb", "pw-floorb"),
];

/// Runs the figure for every backend.
pub async fn run(report: &mut Report, calls: usize) -> Res<()> {
    // ws: one in-process server for both the floor and the calls.
    {
        let server = start_server().await?;
        let url = server.url();
        let floor = {
            let mut t = WsTransport::new(&url)?;
            let a = t
                .connect(&identity("floora", "a1")?, &token("floora")?)
                .await?;
            let b = t
                .connect(&identity("floorb", "b1")?, &token("floorb")?)
                .await?;
            link_floor(a, b, calls).await?
        };
        let alice = ws_api(&url, "alice", "a1", 1)?;
        let bob = ws_api(&url, "bob", "b1", 2)?;
        let setup = calls_setup(alice, bob, calls, true, None).await?.samples;
        record(report, "ws", &setup, &floor, calls);
        server.shutdown().await;
    }

    // mqtt: one Mosquitto for both.
    {
        let broker = Mosquitto::start(MQTT_USERS)?;
        let cfg = MqttConfig::new("127.0.0.1", broker.port());
        let floor = {
            let mut t = MqttTransport::new(cfg.clone());
            let a = t.connect(&identity("floora", "a1")?, "pw-floora").await?;
            let b = t.connect(&identity("floorb", "b1")?, "pw-floorb").await?;
            link_floor(a, b, calls).await?
        };
        let alice = CallApi::new(
            CallConfig::new(UserId::new("alice")?, DeviceId::new("a1")?).with_seed(1),
            Supervisor::start(
                MqttTransport::new(cfg.clone()),
                supervised(identity("alice", "a1")?, password("pw-alice")),
            ),
            NoMedia,
        );
        let bob = CallApi::new(
            CallConfig::new(UserId::new("bob")?, DeviceId::new("b1")?).with_seed(2),
            Supervisor::start(
                MqttTransport::new(cfg),
                supervised(identity("bob", "b1")?, password("pw-bob")),
            ),
            NoMedia,
        );
        let setup = calls_setup(alice, bob, calls, true, None).await?.samples;
        record(report, "mqtt", &setup, &floor, calls);
        drop(broker);
    }

    // mock: the in-memory network, no faults, no delay, for both. The figure runs on a
    // current-thread runtime (where the mock's users, `#[tokio::test]`s, run), setup and floor
    // alike; the same figure on this multi-thread runtime is reported as context.
    {
        let ct = on_current_thread(move || mock_figure(calls)).await?;
        record(report, "mock", &ct.setup, &ct.floor, calls);
        report.set("setup.mock.runtime", "current_thread");
        report.set(
            "setup.mock.envelopes_per_setup",
            round3(ct.envelopes_per_setup),
        );
        report.set(
            "setup.mock.envelopes_per_call",
            round3(ct.envelopes_per_call),
        );
        eprintln!(
            "  mock: {:.2} envelopes sent per setup (call() to Connected; the floor sends 2), \
             {:.2} per whole call (hangup included)",
            ct.envelopes_per_setup, ct.envelopes_per_call
        );
        let mt = mock_figure(calls).await?;
        let mt_ratio = us(mt.setup.p50()) / us(mt.floor.p50()).max(1e-9);
        report.set("setup.mock.mt_p50_us", round3(us(mt.setup.p50())));
        report.set("setup.mock.mt_p99_us", round3(us(mt.setup.p99())));
        report.set("setup.mock.mt_floor_p50_us", round3(us(mt.floor.p50())));
        report.set("setup.mock.mt_ratio_p50", round3(mt_ratio));
        report.set(
            "setup.mock.task_floor_p50_us",
            round3(us(mt.task_floor.p50())),
        );
        report.set(
            "setup.mock.task_floor_p99_us",
            round3(us(mt.task_floor.p99())),
        );
        report.set(
            "setup.mock.task_ratio_p50",
            round3(us(mt.setup.p50()) / us(mt.task_floor.p50()).max(1e-9)),
        );
        eprintln!(
            "  mock on the multi-thread runtime (context): setup p50 {:.0} µs p99 {:.0} µs; \
             floor p50 {:.0} µs (ratio {mt_ratio:.2}); round trip with the echo on its own \
             task p50 {:.0} µs p99 {:.0} µs",
            us(mt.setup.p50()),
            us(mt.setup.p99()),
            us(mt.floor.p50()),
            us(mt.task_floor.p50()),
            us(mt.task_floor.p99())
        );
    }
    Ok(())
}

/// A `NoMedia` call API for `user`/`device` (call seed `seed`) on the ws server at `url`,
/// supervised with a token minted for `user`.
pub(crate) fn ws_api(url: &str, user: &str, device: &str, seed: u64) -> Res<CallApi> {
    Ok(CallApi::new(
        CallConfig::new(UserId::new(user)?, DeviceId::new(device)?).with_seed(seed),
        WsSignalClient::start(
            WsTransport::new(url)?,
            supervised(identity(user, device)?, credentials(user)),
        ),
        NoMedia,
    ))
}

/// One run of the mock figure.
struct MockFigure {
    setup: Samples,
    floor: Samples,
    /// The floor with the echo on its own task (context: it pays the wake-ups a call pays).
    task_floor: Samples,
    /// Envelopes the network carried between `call()` and the caller's `Connected`, per call.
    envelopes_per_setup: f64,
    /// Envelopes the network carried per whole call, hangup included (context).
    envelopes_per_call: f64,
}

/// The mock figure on the runtime it is polled on: floor, task floor, then the calls.
async fn mock_figure(calls: usize) -> Res<MockFigure> {
    let net = MockNetwork::new(1, FaultPlan::none());
    let floor = {
        let (fa, fb) = (identity("floora", "a1")?, identity("floorb", "b1")?);
        let a = net.connect(fa.user.clone(), fa.device.clone());
        let b = net.connect(fb.user.clone(), fb.device.clone());
        client_floor(a, b, &fa, &fb, calls).await?
    };
    // Context, not the target's floor: the same round trip with the echo on its own task,
    // so each round trip pays the two task wake-ups a call's envelopes pay at least.
    let task_floor = {
        let (fa, fb) = (identity("floorc", "c1")?, identity("floord", "d1")?);
        let a = net.connect(fa.user.clone(), fa.device.clone());
        let b = net.connect(fb.user.clone(), fb.device.clone());
        task_floor(a, b, &fa, &fb, calls).await?
    };
    let (ua, da) = (UserId::new("alice")?, DeviceId::new("a1")?);
    let (ub, db) = (UserId::new("bob")?, DeviceId::new("b1")?);
    let alice = CallApi::new(
        CallConfig::new(ua.clone(), da.clone()).with_seed(1),
        net.connect(ua, da),
        NoMedia,
    );
    let bob = CallApi::new(
        CallConfig::new(ub.clone(), db.clone()).with_seed(2),
        net.connect(ub, db),
        NoMedia,
    );
    let sent = || net.stats().sent;
    let timed = calls_setup(alice, bob, calls, false, Some(&sent)).await?;
    Ok(MockFigure {
        setup: timed.samples,
        floor,
        task_floor,
        envelopes_per_setup: timed.sent_per_setup,
        envelopes_per_call: timed.sent_per_call,
    })
}

/// Runs `figure` on a new current-thread runtime on its own thread and waits for its result
/// without blocking this runtime.
async fn on_current_thread<T, F>(figure: impl FnOnce() -> F + Send + 'static) -> Res<T>
where
    T: Send + 'static,
    F: std::future::Future<Output = Res<T>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-current-thread".into())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(BoxError::from)
                .and_then(|rt| rt.block_on(figure()));
            let _ = tx.send(result);
        })?;
    rx.await
        .map_err(|_| BoxError::from("the current-thread figure's thread died"))?
}

fn record(report: &mut Report, backend: &str, setup: &Samples, floor: &Samples, calls: usize) {
    let ratio = us(setup.p50()) / us(floor.p50()).max(1e-9);
    // The in-memory floor has no I/O at all, so the mock's target leaves room for the task
    // hand-offs of a call (caller, callee, app) and the envelopes that the floor does not pay.
    let (target, runtime) = if backend == "mock" {
        (3.0, ", current-thread runtime")
    } else {
        (1.2, "")
    };
    eprintln!(
        "  {backend}: setup p50 {:.0} µs p99 {:.0} µs; floor p50 {:.0} µs p99 {:.0} µs",
        us(setup.p50()),
        us(setup.p99()),
        us(floor.p50()),
        us(floor.p99())
    );
    let k = format!("setup.{backend}");
    report.set(&format!("{k}.p50_us"), round3(us(setup.p50())));
    report.set(&format!("{k}.p99_us"), round3(us(setup.p99())));
    report.set(&format!("{k}.floor_p50_us"), round3(us(floor.p50())));
    report.set(&format!("{k}.floor_p99_us"), round3(us(floor.p99())));
    report.set(&format!("{k}.ratio_p50"), round3(ratio));
    report.set(&format!("{k}.calls"), calls as u64);
    report.row(
        format!("1. call setup, {backend} ({calls} calls{runtime})"),
        format!(
            "p50 {:.0} µs, p99 {:.0} µs",
            us(setup.p50()),
            us(setup.p99())
        ),
        format!(
            "round trip p50 {:.0} µs, p99 {:.0} µs",
            us(floor.p50()),
            us(floor.p99())
        ),
        format!(
            "ratio_p50 {ratio:.2} ≤ {target}: {}",
            verdict(ratio <= target)
        ),
    );
}

/// What [`calls_setup`] measured.
struct Timed {
    /// `call()` → alice's `Connected`.
    samples: Samples,
    /// Envelopes sent in that window per call, by the `sent` counter given (0 without one).
    sent_per_setup: f64,
    /// Envelopes sent per whole call (`call()` until both are `Prepared` after the hangup).
    sent_per_call: f64,
}

/// One [`CallPair::time_call_counting`].
struct CallCycle {
    /// `call()` → the caller's `Connected`.
    took: Duration,
    /// Envelopes carried in that window.
    sent_in_setup: u64,
    /// Envelopes carried from `call()` until both are `Prepared` after the hangup.
    sent_in_cycle: u64,
}

/// A caller and a callee that accepts as soon as it rings, both prepared: one
/// [`time_call`](Self::time_call) is one call setup as figure 1 measures it.
pub(crate) struct CallPair {
    caller: CallApi,
    callee: CallApi,
    callee_user: String,
    caller_stream: NotificationStream,
    callee_state: tokio::sync::watch::Receiver<CallState>,
    answering: tokio::task::JoinHandle<()>,
}

impl CallPair {
    /// Waits for both links (when `supervised`), prepares both and starts the callee's
    /// answering task; `callee_user` is whom the caller calls.
    pub(crate) async fn start(
        caller: CallApi,
        callee: CallApi,
        callee_user: &str,
        supervised: bool,
    ) -> Res<Self> {
        let caller_stream = caller.subscribe();
        let mut callee_stream = callee.subscribe();
        if supervised {
            wait_linked(&caller).await?;
            wait_linked(&callee).await?;
        }
        caller.prepare(PrepareConfig::new("caller-room")).await?;
        callee.prepare(PrepareConfig::new("callee-room")).await?;
        // The callee: accept on ringing.
        let answerer = callee.clone();
        let answering = tokio::spawn(async move {
            while let Some(n) = callee_stream.recv().await {
                if matches!(&n, Notification::StateChanged(c) if c.state == CallState::Calling) {
                    let _ = answerer.accept().await;
                }
            }
        });
        let callee_state = callee.state_watch();
        Ok(Self {
            caller,
            callee,
            callee_user: callee_user.to_owned(),
            caller_stream,
            callee_state,
            answering,
        })
    }

    /// One call: `call()` → the caller's `Connected` (the time returned), then hang up and
    /// wait for both to be `Prepared` again (not timed).
    pub(crate) async fn time_call(&mut self) -> Res<Duration> {
        Ok(self.time_call_counting(&|| 0).await?.took)
    }

    /// [`time_call`](Self::time_call), reading `sent` (envelopes carried so far) at `call()`,
    /// at the caller's `Connected` and once both are `Prepared` again.
    async fn time_call_counting(&mut self, sent: &dyn Fn() -> u64) -> Res<CallCycle> {
        let sent_at_call = sent();
        let t0 = Instant::now();
        self.caller
            .call(self.callee_user.as_str(), CallType::Video)
            .await?;
        wait_state(&mut self.caller_stream, CallState::Connected).await?;
        let took = t0.elapsed();
        let sent_at_connected = sent();
        self.caller.hangup(None).await?;
        wait_state(&mut self.caller_stream, CallState::Prepared).await?;
        wait_watch(&mut self.callee_state, CallState::Prepared).await?;
        Ok(CallCycle {
            took,
            sent_in_setup: sent_at_connected - sent_at_call,
            sent_in_cycle: sent() - sent_at_call,
        })
    }

    /// Stops the answering task and shuts both down.
    pub(crate) async fn shutdown(self) {
        self.answering.abort();
        let _ = self.caller.shutdown().await;
        let _ = self.callee.shutdown().await;
    }
}

/// `n` sequential calls alice → bob; bob accepts as soon as it rings. Times `call()` to
/// alice's `Connected`; `sent` (if given) counts the envelopes the network carried so far.
async fn calls_setup(
    alice: CallApi,
    bob: CallApi,
    n: usize,
    supervised: bool,
    sent: Option<&dyn Fn() -> u64>,
) -> Res<Timed> {
    let mut pair = CallPair::start(alice, bob, "bob", supervised).await?;
    let mut samples = Vec::with_capacity(n);
    let (mut sent_in_setup, mut sent_in_cycle) = (0, 0);
    let sent = sent.unwrap_or(&|| 0);
    for i in 0..n + WARMUP {
        let cycle = pair.time_call_counting(sent).await?;
        if i >= WARMUP {
            samples.push(cycle.took);
            sent_in_setup += cycle.sent_in_setup;
            sent_in_cycle += cycle.sent_in_cycle;
        }
    }
    pair.shutdown().await;
    let per_call = |sent: u64| sent as f64 / n.max(1) as f64;
    Ok(Timed {
        samples: Samples::new(samples),
        sent_per_setup: per_call(sent_in_setup),
        sent_per_call: per_call(sent_in_cycle),
    })
}

/// A 300-byte-class `message` envelope for the floor (the size of an `invite`).
fn floor_data() -> String {
    "f".repeat(120)
}

async fn next_message<L: TransportLink>(link: &mut L) -> Res<()> {
    let got = tokio::time::timeout(WAIT, async {
        loop {
            match link.next_event().await {
                Some(LinkEvent::Message(_)) => return Ok(()),
                Some(LinkEvent::Closed { .. }) | None => return Err("link closed"),
                Some(_) => {}
            }
        }
    })
    .await;
    match got {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => Err("floor: no envelope within the wait".into()),
    }
}

/// Round trips A→B→A of a raw envelope over two transport links.
async fn link_floor<L: TransportLink>(mut a: L, mut b: L, n: usize) -> Res<Samples> {
    let (ia, ib) = (identity("floora", "a1")?, identity("floorb", "b1")?);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + WARMUP {
        let t0 = Instant::now();
        a.send(message(&ia, &ib.user, floor_data())).await?;
        next_message(&mut b).await?;
        b.send(message(&ib, &ia.user, floor_data())).await?;
        next_message(&mut a).await?;
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    a.close().await;
    b.close().await;
    Ok(Samples::new(samples))
}

async fn next_client_message<C: SignalClient>(c: &mut C) -> Res<()> {
    let got = tokio::time::timeout(WAIT, async {
        while let Some(ev) = c.next_event().await {
            if matches!(ev, SignalEvent::Message(_)) {
                return true;
            }
        }
        false
    })
    .await;
    match got {
        Ok(true) => Ok(()),
        Ok(false) => Err("client closed".into()),
        Err(_) => Err("floor: no envelope within the wait".into()),
    }
}

/// Round trips A→B→A of a raw envelope between two signal clients, B echoing on its own task.
async fn task_floor<C: SignalClient + Send + 'static>(
    mut a: C,
    mut b: C,
    ia: &Identity,
    ib: &Identity,
    n: usize,
) -> Res<Samples> {
    let (ia2, ib2) = (ia.clone(), ib.clone());
    let echo = tokio::spawn(async move {
        while let Some(ev) = b.next_event().await {
            if matches!(ev, SignalEvent::Message(_))
                && b.send(message(&ib2, &ia2.user, floor_data()))
                    .await
                    .is_err()
            {
                break;
            }
        }
    });
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + WARMUP {
        let t0 = Instant::now();
        a.send(message(ia, &ib.user, floor_data())).await?;
        next_client_message(&mut a).await?;
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    echo.abort();
    Ok(Samples::new(samples))
}

/// Round trips A→B→A of a raw envelope between two signal clients (the mock network).
async fn client_floor<C: SignalClient>(
    mut a: C,
    mut b: C,
    ia: &Identity,
    ib: &Identity,
    n: usize,
) -> Res<Samples> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + WARMUP {
        let t0 = Instant::now();
        a.send(message(ia, &ib.user, floor_data())).await?;
        next_client_message(&mut b).await?;
        b.send(message(ib, &ia.user, floor_data())).await?;
        next_client_message(&mut a).await?;
        if i >= WARMUP {
            samples.push(t0.elapsed());
        }
    }
    Ok(Samples::new(samples))
}
