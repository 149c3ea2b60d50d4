//! Shared helpers for the connection-lifecycle tests (`reconnect_schedule`, `token_refresh`,
//! `pause_resume`, `access_link`, `signal_grace`, `link_drop_mid_call`): `CallApi` devices over a
//! supervised `MockTransport`, a scripted token provider that records when it is asked, and the
//! expected attempt instants computed from the supervisor's seeded RNG.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use callapi_core::call::{
    CallConfig, CallEvent, CallState, Notification, PrepareConfig, StateChange, StateReason,
};
use callapi_core::connection::schedule::{reconnect_attempt_at, token_attempt_at};
use callapi_core::connection::{Credentials, Identity, Supervisor, SupervisorConfig, TokenError};
use callapi_core::media::NoMedia;
use callapi_core::protocol::{CallId, DeviceId, UserId};
use callapi_core::signal::{LinkState, SignalClient, SignalEvent};
use callapi_core::{CallApi, NotificationStream};
use callapi_signal_mock::next_matching;
use callapi_signal_mock::{
    FaultPlan, MockMedia, MockMediaBehavior, MockMediaControl, MockNetwork, MockTransport,
    MockTransportControl,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;

/// Longest (virtual) wait for an expected notification, state or event.
pub const WAIT: Duration = Duration::from_secs(1200);

/// Ten minutes: how long tests watch for attempts that must not happen.
pub const TEN_MINUTES: Duration = Duration::from_secs(600);

/// A user id.
pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

/// A device id.
pub fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

/// Who a supervisor connects as.
pub fn identity(u: &str, d: &str) -> Identity {
    Identity {
        user: user(u),
        device: device(d),
    }
}

/// A perfect network with a fixed 10 ms one-way delay.
pub fn network() -> MockNetwork {
    MockNetwork::new(
        17,
        FaultPlan::default().with_delay(Duration::from_millis(10), Duration::from_millis(10)),
    )
}

// ---------------------------------------------------------------- tokens

/// What one call of a [`Tokens`] provider does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Answers with the next token (`{prefix}{n}`, `n` = 1-based number of the call).
    Token,
    /// Fails at once.
    Fail,
    /// Never answers.
    Hang,
}

#[derive(Debug)]
struct TokensInner {
    script: VecDeque<Answer>,
    calls: Vec<Instant>,
}

/// A token provider that answers per a script (then with tokens) and records when it was asked.
#[derive(Debug, Clone)]
pub struct Tokens {
    prefix: String,
    inner: Arc<Mutex<TokensInner>>,
}

impl Tokens {
    /// Answers every call with `{prefix}{n}`.
    pub fn new(prefix: &str) -> Self {
        Self::scripted(prefix, [])
    }

    /// Answers the first calls per `script`, then with tokens.
    pub fn scripted(prefix: &str, script: impl IntoIterator<Item = Answer>) -> Self {
        Self {
            prefix: prefix.to_owned(),
            inner: Arc::new(Mutex::new(TokensInner {
                script: script.into_iter().collect(),
                calls: Vec::new(),
            })),
        }
    }

    /// Token credentials over this provider.
    pub fn credentials(&self) -> Credentials {
        let inner = self.inner.clone();
        let prefix = self.prefix.clone();
        Credentials::token(move || {
            let (n, answer) = {
                let mut inner = inner.lock().unwrap();
                inner.calls.push(Instant::now());
                let answer = inner.script.pop_front().unwrap_or(Answer::Token);
                (inner.calls.len(), answer)
            };
            let token = format!("{prefix}{n}");
            async move {
                match answer {
                    Answer::Token => Ok(token),
                    Answer::Fail => Err(TokenError(format!("backend refused call {n}"))),
                    Answer::Hang => std::future::pending().await,
                }
            }
        })
    }

    /// When the provider was asked, in order.
    pub fn calls(&self) -> Vec<Instant> {
        self.inner.lock().unwrap().calls.clone()
    }
}

// ---------------------------------------------------------------- expected schedules

/// The supervisor's jitter RNG, replayed: draw from it in the order the supervisor does.
pub struct Replay {
    rng: ChaCha8Rng,
}

impl Replay {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Offset of reconnect attempt `k` (0-based) from the start of its series: one draw.
    pub fn reconnect(&mut self, k: usize) -> Duration {
        reconnect_attempt_at(k, &mut self.rng)
    }

    /// The three offsets of a token fetch series: three draws.
    pub fn token_series(&mut self) -> [Duration; 3] {
        [0, 1, 2].map(|k| token_attempt_at(k, &mut self.rng).unwrap())
    }
}

// ---------------------------------------------------------------- supervisor only

/// A supervisor over a fresh `MockTransport` on `net`.
pub fn supervisor(
    net: &MockNetwork,
    id: Identity,
    credentials: Credentials,
    seed: u64,
) -> (Supervisor<MockTransport>, MockTransportControl) {
    let (transport, control) = MockTransport::new(net.clone());
    let sup = Supervisor::start(
        transport,
        SupervisorConfig::new(id, credentials).with_seed(seed),
    );
    (sup, control)
}

/// Reads supervisor events until `state` is reported; returns the link states seen (the last
/// one included).
pub async fn sup_wait_link(
    sup: &mut Supervisor<MockTransport>,
    state: &LinkState,
) -> Vec<LinkState> {
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            if let SignalEvent::Link(s) = sup.next_event().await.expect("supervisor open") {
                let done = &s == state;
                seen.push(s);
                if done {
                    return;
                }
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("link state {state:?} within {WAIT:?}; saw {seen:?}"));
    seen
}

/// Drives the supervisor (it works only while polled) until `deadline`; returns what it
/// reported meanwhile.
pub async fn sup_run_until(
    sup: &mut Supervisor<MockTransport>,
    deadline: Instant,
) -> Vec<SignalEvent> {
    let mut seen = Vec::new();
    loop {
        tokio::select! {
            ev = sup.next_event() => seen.push(ev.expect("supervisor open")),
            () = tokio::time::sleep_until(deadline) => return seen,
        }
    }
}

/// [`sup_run_until`] for `d` from now.
pub async fn sup_run_for(sup: &mut Supervisor<MockTransport>, d: Duration) -> Vec<SignalEvent> {
    sup_run_until(sup, Instant::now() + d).await
}

/// Reads supervisor events that are already waiting, without waiting.
pub async fn sup_pending_events(sup: &mut Supervisor<MockTransport>) -> Vec<SignalEvent> {
    let mut out = Vec::new();
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::ZERO, sup.next_event()).await {
        out.push(ev);
    }
    out
}

// ---------------------------------------------------------------- CallApi devices

/// The supervisor seed of a device started with `seed`.
pub fn sup_seed(seed: u64) -> u64 {
    seed.wrapping_add(1000)
}

/// Which media engine a device uses.
#[derive(Debug, Clone)]
pub enum Media {
    /// `NoMedia`: `Connected` follows accept.
    None,
    /// `MockMedia` with this behaviour.
    Mock(MockMediaBehavior),
}

/// One `CallApi` device over a supervised `MockTransport`, with its notifications logged.
pub struct Device {
    pub api: CallApi,
    pub transport: MockTransportControl,
    pub media: Option<MockMediaControl>,
    pub tokens: Tokens,
    pub user: UserId,
    pub device: DeviceId,
    /// The seed of the device's supervisor (jitter RNG): [`sup_seed`] of the device's seed.
    pub sup_seed: u64,
    stream: NotificationStream,
    /// Every notification received so far, with the (virtual) instant it was read.
    pub log: Vec<(Instant, Notification)>,
}

impl Device {
    /// A device with token credentials (`{user}-t1`, `{user}-t2`, ...) and default `MockMedia`.
    pub fn start(net: &MockNetwork, u: &str, d: &str, seed: u64) -> Self {
        let tokens = Tokens::new(&format!("{u}-t"));
        let creds = tokens.credentials();
        Self::start_with(
            net,
            u,
            d,
            seed,
            tokens,
            creds,
            Media::Mock(MockMediaBehavior::default()),
        )
    }

    /// A device with the given credentials and media; `tokens` is the provider behind `creds`
    /// (if any).
    pub fn start_with(
        net: &MockNetwork,
        u: &str,
        d: &str,
        seed: u64,
        tokens: Tokens,
        creds: Credentials,
        media: Media,
    ) -> Self {
        Self::start_configured(
            net,
            CallConfig::new(user(u), device(d)).with_seed(seed),
            seed,
            tokens,
            creds,
            media,
        )
    }

    /// Like [`start_with`](Self::start_with) with a full call configuration.
    pub fn start_configured(
        net: &MockNetwork,
        config: CallConfig,
        seed: u64,
        tokens: Tokens,
        creds: Credentials,
        media: Media,
    ) -> Self {
        let (u, d) = (config.user_id.clone(), config.device_id.clone());
        let (transport, control) = MockTransport::new(net.clone());
        let id = Identity {
            user: u.clone(),
            device: d.clone(),
        };
        let signal = Supervisor::start(
            transport,
            SupervisorConfig::new(id, creds).with_seed(sup_seed(seed)),
        );
        let (api, media_control) = match media {
            Media::None => (CallApi::new(config, signal, NoMedia), None),
            Media::Mock(behavior) => {
                let (engine, control) = MockMedia::with_behavior(behavior);
                (CallApi::new(config, signal, engine), Some(control))
            }
        };
        // Subscribed before the driver task first runs: nothing is missed.
        let stream = api.subscribe();
        Self {
            api,
            transport: control,
            media: media_control,
            tokens,
            user: u,
            device: d,
            sup_seed: sup_seed(seed),
            stream,
            log: Vec::new(),
        }
    }

    /// Waits for the first new notification matching `pred` (logging everything read).
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl FnMut(&Notification) -> bool,
    ) -> Notification {
        let (stream, log) = (&mut self.stream, &mut self.log);
        let seen = |n: &Notification| log.push((Instant::now(), n.clone()));
        match next_matching(stream, WAIT, seen, pred).await {
            Ok(n) => n,
            Err(err) => panic!(
                "{}: no {what}: {err}; log: {:#?}",
                self.user,
                self.log.iter().map(|(_, n)| n).collect::<Vec<_>>()
            ),
        }
    }

    /// Waits for `Notification::Link(state)`.
    pub async fn wait_link(&mut self, state: &LinkState) {
        let what = format!("link {state:?}");
        self.wait_for(&what, |n| matches!(n, Notification::Link(s) if s == state))
            .await;
    }

    /// Waits for any link notification and returns its state.
    pub async fn next_link(&mut self) -> LinkState {
        match self
            .wait_for("a link notification", |n| {
                matches!(n, Notification::Link(_))
            })
            .await
        {
            Notification::Link(s) => s,
            _ => unreachable!(),
        }
    }

    /// Waits for a state change to `state`.
    pub async fn wait_state(&mut self, state: CallState) -> StateChange {
        let what = format!("state {state:?}");
        match self
            .wait_for(
                &what,
                |n| matches!(n, Notification::StateChanged(c) if c.state == state),
            )
            .await
        {
            Notification::StateChanged(c) => c,
            _ => unreachable!(),
        }
    }

    /// Waits for a state change to `state` for `reason`.
    pub async fn wait_change(&mut self, state: CallState, reason: StateReason) -> StateChange {
        let what = format!("state {state:?}({reason:?})");
        match self
            .wait_for(
                &what,
                |n| matches!(n, Notification::StateChanged(c) if c.state == state && c.reason == reason),
            )
            .await
        {
            Notification::StateChanged(c) => c,
            _ => unreachable!(),
        }
    }

    /// Waits for the event `event`.
    pub async fn wait_event(&mut self, event: CallEvent) {
        let what = format!("event {event:?}");
        self.wait_for(
            &what,
            |n| matches!(n, Notification::Event(e) if e.event == event),
        )
        .await;
    }

    /// Logs the notifications already waiting.
    pub fn drain(&mut self) {
        while let Some(n) = self.stream.try_recv() {
            self.log.push((Instant::now(), n));
        }
    }

    /// Notifications logged so far (after a [`drain`](Self::drain)).
    pub fn notifications(&self) -> Vec<Notification> {
        self.log.iter().map(|(_, n)| n.clone()).collect()
    }

    /// The (state, reason) pairs logged so far.
    pub fn states(&self) -> Vec<(CallState, StateReason)> {
        self.log
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::StateChanged(c) => Some((c.state, c.reason)),
                _ => None,
            })
            .collect()
    }

    /// The events logged so far.
    pub fn events(&self) -> Vec<CallEvent> {
        self.log
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::Event(e) => Some(e.event),
                _ => None,
            })
            .collect()
    }

    /// The link states logged so far.
    pub fn links(&self) -> Vec<LinkState> {
        self.log
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::Link(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// In-call messages received so far.
    pub fn messages(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::MessageReceived { data, .. } => Some(data.clone()),
                _ => None,
            })
            .collect()
    }

    /// Error codes reported so far.
    pub fn error_codes(&self) -> Vec<i32> {
        self.log
            .iter()
            .filter_map(|(_, n)| match n {
                Notification::Error(e) => Some(e.code),
                _ => None,
            })
            .collect()
    }

    /// Prepares in `room` with default settings.
    pub async fn prepare(&self, room: &str) {
        self.api.prepare(PrepareConfig::new(room)).await.unwrap();
    }

    /// The id of the call in progress.
    pub async fn call_id(&self) -> CallId {
        self.api.call_info().await.unwrap().expect("a call").call_id
    }
}

/// Asserts that every event in `events` appears exactly once in `log`.
pub fn assert_each_once(who: &str, log: &[CallEvent], events: &[CallEvent]) {
    for e in events {
        let n = log.iter().filter(|x| *x == e).count();
        assert_eq!(n, 1, "{who}: {e:?} seen {n} times in {log:?}");
    }
}

/// Asserts that no event appears twice in `log`.
pub fn assert_no_duplicate_events(who: &str, log: &[CallEvent]) {
    for e in log {
        let n = log.iter().filter(|x| *x == e).count();
        assert_eq!(n, 1, "{who}: {e:?} seen {n} times in {log:?}");
    }
}

/// Waits until both devices' links are up and prepares them in `{user}-room`.
pub async fn ready(a: &mut Device, b: &mut Device) {
    a.wait_link(&LinkState::Connected).await;
    b.wait_link(&LinkState::Connected).await;
    a.prepare(&format!("{}-room", a.user)).await;
    b.prepare(&format!("{}-room", b.user)).await;
}

/// `caller` calls `callee` (video), `callee` accepts; waits until both are `Connected`.
pub async fn connected_call(caller: &mut Device, callee: &mut Device) -> CallId {
    let id = caller
        .api
        .call(
            callee.user.as_str(),
            callapi_core::protocol::CallType::Video,
        )
        .await
        .unwrap();
    callee.wait_state(CallState::Calling).await;
    callee.api.accept().await.unwrap();
    caller.wait_state(CallState::Connected).await;
    callee.wait_state(CallState::Connected).await;
    id
}

/// Asserts that `log` holds exactly the events of `expected`, each once (in any order).
pub fn assert_events_once(who: &str, log: &[CallEvent], expected: &[CallEvent]) {
    assert_no_duplicate_events(who, log);
    let mut missing: Vec<_> = expected.iter().filter(|e| !log.contains(e)).collect();
    let mut extra: Vec<_> = log.iter().filter(|e| !expected.contains(e)).collect();
    missing.dedup();
    extra.dedup();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{who}: missing {missing:?}, unexpected {extra:?} in {log:?}"
    );
}
