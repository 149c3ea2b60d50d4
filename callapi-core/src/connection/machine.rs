//! [`ConnectionMachine`]: the connection logic — token fetches, connection attempts on the
//! reconnect schedule, in-band renewal, pause / resume / disconnect, credentials and the link
//! state — as a sans-IO state machine, the same shape as the call machine: inputs with `now`,
//! outputs to perform ([`ConnOutput`]), [`poll_timeout`](ConnectionMachine::poll_timeout).
//!
//! The machine never awaits anything. A shell (the [`Supervisor`](super::Supervisor)) performs
//! the outputs — fetch a token, connect with a token, renew on the live link, close it — and
//! reports how they ended as inputs. Each fetch and each connection attempt is bounded by the
//! schedule's attempt timeout: when it passes, the machine says so
//! ([`ConnOutput::AbandonFetch`], [`ConnOutput::AbandonConnect`]) and moves on; the shell drops
//! the operation, and a late result of an abandoned operation is ignored.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::signal::{LinkState, SignalError};

use super::credentials::Credentials;
use super::schedule::RetrySchedule;
use super::transport::ConnectError;

/// A command of the application (through the `SignalClient` methods).
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnCommand {
    /// Use this token from now on (renew in-band if a link is up).
    Renew(String),
    /// Close the link (the shell decides when: see `CallApi::pause`).
    Pause,
    /// Connect again after a pause or a disconnect.
    Resume,
    /// Close the link and end the session; `clear_saved_data` forgets the token.
    Disconnect {
        /// Forget the token too.
        clear_saved_data: bool,
    },
    /// Stop for good.
    Close,
}

/// What happened to an operation the machine asked for, or on the live link.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnInput {
    /// An application command.
    Command(ConnCommand),
    /// The token fetch asked for by [`ConnOutput::FetchToken`] ended (`None`: it failed).
    TokenFetched(Option<String>),
    /// The connection attempt asked for by [`ConnOutput::Connect`] gave a live link.
    Connected,
    /// The connection attempt failed.
    ConnectFailed(ConnectError),
    /// The live link warned that its token expires soon.
    TokenWillExpire,
    /// The in-band renewal asked for by [`ConnOutput::Renew`] ended.
    Renewed(Result<(), ConnectError>),
    /// The live link closed (`error`: the service's reason, if it gave one).
    LinkClosed {
        /// Why, when the service said so.
        error: Option<ConnectError>,
    },
}

/// What the shell must do. Exhaustive on purpose: a shell that forgets a new output does not
/// compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnOutput {
    /// The link state changed: publish it.
    Link(LinkState),
    /// Start one token fetch from the app's provider; report [`ConnInput::TokenFetched`].
    FetchToken,
    /// Drop the token fetch under way (it exceeded its bound, or the attempt was stopped).
    AbandonFetch,
    /// Start one connection attempt with this token; report [`ConnInput::Connected`] or
    /// [`ConnInput::ConnectFailed`].
    Connect {
        /// The token (or access-link token) to connect with.
        token: String,
    },
    /// Drop the connection attempt under way.
    AbandonConnect,
    /// Renew the live link's token in-band; report [`ConnInput::Renewed`].
    Renew {
        /// The new token.
        token: String,
    },
    /// Close the live link.
    CloseLink,
    /// An access link's token expires soon: tell the application (access links are not
    /// renewed by fetching).
    TokenWillExpire,
}

/// A token fetch series: up to the schedule's attempts, each at its offset from `start`.
#[derive(Debug)]
struct FetchSeries {
    start: Instant,
    offsets: Vec<Duration>,
    /// The attempt to start next (or under way, if `deadline` is set).
    next: usize,
    /// The bound of the attempt under way.
    deadline: Option<Instant>,
}

impl FetchSeries {
    /// A series of attempts at `offsets` from `start`.
    fn new(start: Instant, offsets: Vec<Duration>) -> Self {
        Self {
            start,
            offsets,
            next: 0,
            deadline: None,
        }
    }

    /// Whether an attempt is under way.
    fn in_flight(&self) -> bool {
        self.deadline.is_some()
    }

    /// The attempt under way failed (or was abandoned); whether another one is left.
    fn failed(&mut self) -> bool {
        self.deadline = None;
        self.next += 1;
        self.next_timeout().is_some()
    }

    /// When the next attempt starts, or the one under way is abandoned; `None` when done.
    fn next_timeout(&self) -> Option<Instant> {
        match self.deadline {
            Some(d) => Some(d),
            None => self.offsets.get(self.next).map(|o| self.start + *o),
        }
    }
}

/// An in-band renewal under way.
#[derive(Debug)]
struct Renewing {
    token: String,
    /// Fetched by the machine on an expiry warning (rather than given by the application):
    /// kept even if the renewal fails, and a permanent refusal ends the session.
    fetched: bool,
}

/// Where the machine is.
#[derive(Debug)]
enum Phase {
    /// Not trying to connect (paused, disconnected, failed or closed).
    Idle,
    /// Reconnect attempt `k` of the current series begins at `at`.
    Waiting { k: usize, at: Instant },
    /// Attempt `k` is fetching a token.
    Fetching { k: usize, fetch: FetchSeries },
    /// Attempt `k` is connecting; it is abandoned at `deadline`.
    Connecting { k: usize, deadline: Instant },
    /// A live link; `renewal` is a fetch for an in-band renewal, `renewing` a renewal under way.
    Connected {
        renewal: Option<FetchSeries>,
        renewing: Option<Renewing>,
    },
}

/// Settings of a [`ConnectionMachine`].
#[derive(Debug, Clone)]
pub struct ConnConfig {
    /// How it connects.
    pub credentials: Credentials,
    /// Seed of the jitter RNG.
    pub seed: u64,
    /// The retry schedules and attempt bound.
    pub schedule: RetrySchedule,
}

/// The connection logic of one device (see the module documentation).
#[derive(Debug)]
pub struct ConnectionMachine {
    credentials: Credentials,
    token: Option<String>,
    token_stale: bool,
    /// A session is live from start (or `resume`) until `disconnect` or a permanent failure.
    live: bool,
    /// Whether the machine should be connected (start, resume) rather than idle.
    wanted: bool,
    closed: bool,
    ever_connected: bool,
    phase: Phase,
    /// Start of the current reconnect series.
    series: Instant,
    state: LinkState,
    schedule: RetrySchedule,
    rng: ChaCha8Rng,
    outputs: VecDeque<ConnOutput>,
}

impl ConnectionMachine {
    /// A machine that starts connecting at `now`.
    pub fn new(config: ConnConfig, now: Instant) -> Self {
        let mut m = Self {
            credentials: config.credentials,
            token: None,
            token_stale: false,
            live: true,
            wanted: true,
            closed: false,
            ever_connected: false,
            phase: Phase::Idle,
            series: now,
            state: LinkState::Disconnected,
            schedule: config.schedule,
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            outputs: VecDeque::new(),
        };
        m.start_series(now);
        m
    }

    /// The current link state.
    pub fn link_state(&self) -> &LinkState {
        &self.state
    }

    /// Whether the machine stopped for good ([`ConnCommand::Close`]).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The credentials in use.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The next output to perform.
    pub fn poll_output(&mut self) -> Option<ConnOutput> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Idle => None,
            Phase::Waiting { at, .. } => Some(*at),
            Phase::Fetching { fetch, .. } => fetch.next_timeout(),
            Phase::Connecting { deadline, .. } => Some(*deadline),
            Phase::Connected { renewal, .. } => renewal.as_ref().and_then(|f| f.next_timeout()),
        }
    }

    /// Replaces the credentials. Switching between token and access-link credentials on a live
    /// session is refused; disconnect first.
    pub fn set_credentials(&mut self, credentials: Credentials) -> Result<(), SignalError> {
        if self.live && !self.credentials.same_kind(&credentials) {
            return Err(SignalError::Rejected(
                "cannot switch between token and access-link credentials on a live session; \
                 disconnect first"
                    .into(),
            ));
        }
        self.credentials = credentials;
        self.token = None;
        self.token_stale = false;
        Ok(())
    }

    /// Moves time on to `now`: starts due attempts, abandons overdue ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Each step may schedule the next one at once (a fetch series whose next attempt is
        // already due); bounded by the attempts of one series.
        for _ in 0..64 {
            let Some(due) = self.poll_timeout() else {
                return;
            };
            if due > now {
                return;
            }
            self.on_due(now);
        }
    }

    fn on_due(&mut self, now: Instant) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle => {}
            Phase::Waiting { k, .. } => self.attempt(k, now),
            Phase::Fetching { k, mut fetch } => {
                if self.step_fetch(&mut fetch, now) {
                    self.phase = Phase::Fetching { k, fetch };
                } else {
                    self.retry_after(k, now);
                }
            }
            Phase::Connecting { k, .. } => {
                tracing::warn!("connection attempt timed out");
                self.outputs.push_back(ConnOutput::AbandonConnect);
                self.retry_after(k, now);
            }
            Phase::Connected {
                renewal: Some(mut fetch),
                renewing,
            } => {
                let going = self.step_fetch(&mut fetch, now);
                if !going {
                    tracing::warn!("no token to renew with; keeping the link on the old one");
                }
                self.phase = Phase::Connected {
                    renewal: going.then_some(fetch),
                    renewing,
                };
            }
            phase @ Phase::Connected { renewal: None, .. } => self.phase = phase,
        }
    }

    /// `fetch`'s timeout is due: starts its next attempt, or abandons the one under way.
    /// Returns whether the series goes on.
    fn step_fetch(&mut self, fetch: &mut FetchSeries, now: Instant) -> bool {
        if fetch.in_flight() {
            tracing::warn!("token fetch timed out");
            self.outputs.push_back(ConnOutput::AbandonFetch);
            fetch.failed()
        } else {
            fetch.deadline = Some(now + self.schedule.attempt_timeout);
            self.outputs.push_back(ConnOutput::FetchToken);
            true
        }
    }

    /// A fetch series starting at `now`, its offsets drawn now. `first`: the fetch of the
    /// session's very first connection attempt (see [`RetrySchedule::first_attempt_jitter`]).
    fn new_fetch(&mut self, first: bool, now: Instant) -> FetchSeries {
        FetchSeries::new(now, self.schedule.token_offsets(first, &mut self.rng))
    }

    /// Handles one input at `now`.
    pub fn handle_input(&mut self, input: ConnInput, now: Instant) {
        // The input first: an attempt that succeeded just as its bound passed still counts.
        self.on_input(input, now);
        self.handle_timeout(now);
    }

    fn on_input(&mut self, input: ConnInput, now: Instant) {
        match input {
            ConnInput::Command(cmd) => self.on_command(cmd, now),
            ConnInput::TokenFetched(token) => self.on_token(token, now),
            ConnInput::Connected => {
                if let Phase::Connecting { .. } = self.phase {
                    self.ever_connected = true;
                    self.phase = Phase::Connected {
                        renewal: None,
                        renewing: None,
                    };
                    self.publish(LinkState::Connected);
                }
            }
            ConnInput::ConnectFailed(err) => {
                if let Phase::Connecting { k, .. } = self.phase {
                    self.phase = Phase::Idle;
                    match self.on_connect_error(err) {
                        None => self.retry_after(k, now),
                        Some(reason) => self.fail(reason),
                    }
                }
            }
            ConnInput::TokenWillExpire => {
                let Phase::Connected { renewal, .. } = &self.phase else {
                    return;
                };
                match &self.credentials {
                    Credentials::Token(_) if renewal.is_none() => {
                        let fetch = self.new_fetch(false, now);
                        if let Phase::Connected { renewal, .. } = &mut self.phase {
                            *renewal = Some(fetch);
                        }
                    }
                    Credentials::Token(_) => {}
                    Credentials::AccessLink { .. } => {
                        self.outputs.push_back(ConnOutput::TokenWillExpire)
                    }
                }
            }
            ConnInput::Renewed(result) => {
                let Phase::Connected { renewing, .. } = &mut self.phase else {
                    return;
                };
                let Some(Renewing { token, fetched }) = renewing.take() else {
                    return;
                };
                match result {
                    Ok(()) => self.set_token(token),
                    // The application's token: the link keeps its old one.
                    Err(err) if !fetched => tracing::warn!(%err, "in-band renewal failed"),
                    Err(err) => {
                        // A fetched token is kept either way: the next connection can use it.
                        self.set_token(token);
                        tracing::warn!(%err, "in-band renewal failed");
                        if err.is_permanent() {
                            self.phase = Phase::Idle;
                            self.outputs.push_back(ConnOutput::CloseLink);
                            if let Some(reason) = self.on_connect_error(err) {
                                self.fail(reason);
                            }
                        }
                    }
                }
            }
            ConnInput::LinkClosed { error } => {
                if let Phase::Connected { .. } = self.phase {
                    self.phase = Phase::Idle;
                    self.outputs.push_back(ConnOutput::CloseLink);
                    match error.and_then(|e| self.on_connect_error(e)) {
                        None => self.start_series(now),
                        Some(reason) => self.fail(reason),
                    }
                }
            }
        }
    }

    fn on_command(&mut self, cmd: ConnCommand, now: Instant) {
        match cmd {
            ConnCommand::Renew(token) => match &mut self.phase {
                Phase::Connected { renewing, .. } if renewing.is_none() => {
                    *renewing = Some(Renewing {
                        token: token.clone(),
                        fetched: false,
                    });
                    self.outputs.push_back(ConnOutput::Renew { token });
                }
                _ => self.set_token(token),
            },
            ConnCommand::Resume => {
                self.live = true;
                if !self.wanted && !self.closed {
                    self.wanted = true;
                    self.start_series(now);
                }
            }
            ConnCommand::Pause => self.stop(),
            ConnCommand::Disconnect { clear_saved_data } => {
                self.live = false;
                if clear_saved_data {
                    self.token = None;
                }
                self.stop();
            }
            ConnCommand::Close => {
                self.closed = true;
                self.live = false;
                self.stop();
            }
        }
    }

    /// Ends whatever is under way and goes idle (pause, disconnect, close).
    fn stop(&mut self) {
        self.wanted = false;
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle | Phase::Waiting { .. } => {}
            Phase::Fetching { fetch, .. } => {
                if fetch.in_flight() {
                    self.outputs.push_back(ConnOutput::AbandonFetch);
                }
            }
            Phase::Connecting { .. } => self.outputs.push_back(ConnOutput::AbandonConnect),
            Phase::Connected { renewal, .. } => {
                if renewal.is_some_and(|f| f.in_flight()) {
                    self.outputs.push_back(ConnOutput::AbandonFetch);
                }
                self.outputs.push_back(ConnOutput::CloseLink);
            }
        }
        if !matches!(self.state, LinkState::Failed { .. }) || self.closed {
            self.publish(LinkState::Disconnected);
        }
    }

    fn on_token(&mut self, token: Option<String>, now: Instant) {
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Fetching { k, mut fetch } if fetch.in_flight() => match token {
                Some(t) => {
                    self.set_token(t.clone());
                    self.connect(k, t, now);
                }
                None if fetch.failed() => self.phase = Phase::Fetching { k, fetch },
                None => self.retry_after(k, now),
            },
            Phase::Connected {
                renewal: Some(mut fetch),
                renewing,
            } if fetch.in_flight() => match token {
                Some(t) => {
                    let renewing = match renewing {
                        Some(r) => {
                            // A renewal of the application's is under way; keep this one.
                            self.set_token(t);
                            Some(r)
                        }
                        None => {
                            self.outputs
                                .push_back(ConnOutput::Renew { token: t.clone() });
                            Some(Renewing {
                                token: t,
                                fetched: true,
                            })
                        }
                    };
                    self.phase = Phase::Connected {
                        renewal: None,
                        renewing,
                    };
                }
                None => {
                    let going = fetch.failed();
                    if !going {
                        tracing::warn!("no token to renew with; keeping the link on the old one");
                    }
                    self.phase = Phase::Connected {
                        renewal: going.then_some(fetch),
                        renewing,
                    };
                }
            },
            // A result nobody waits for any more.
            phase => self.phase = phase,
        }
    }

    fn set_token(&mut self, token: String) {
        self.token = Some(token);
        self.token_stale = false;
    }

    /// A new reconnect series from `now`: attempt 0 is scheduled.
    fn start_series(&mut self, now: Instant) {
        self.series = now;
        self.schedule_attempt(0, now);
    }

    fn retry_after(&mut self, k: usize, now: Instant) {
        self.schedule_attempt(k + 1, now);
    }

    /// Whether attempt `k` of the current series is the session's very first connection
    /// attempt (no link yet, and the series' first attempt).
    fn is_first(&self, k: usize) -> bool {
        !self.ever_connected && k == 0
    }

    fn schedule_attempt(&mut self, k: usize, now: Instant) {
        let first = self.is_first(k);
        let at = self.series + self.schedule.reconnect_attempt_at(k, first, &mut self.rng);
        if first {
            self.publish(LinkState::Connecting);
        } else {
            let attempt = u32::try_from(k + 1).unwrap_or(u32::MAX);
            self.publish(LinkState::Reconnecting {
                attempt,
                next_in: at.saturating_duration_since(now),
            });
        }
        self.phase = Phase::Waiting { k, at };
    }

    /// Attempt `k` is due: a token if needed, then the connection.
    fn attempt(&mut self, k: usize, now: Instant) {
        let token = match &self.credentials {
            Credentials::AccessLink { token, .. } => Some(token.clone()),
            Credentials::Token(_) => match (&self.token, self.token_stale) {
                (Some(t), false) => Some(t.clone()),
                _ => None,
            },
        };
        match token {
            Some(t) => self.connect(k, t, now),
            None => {
                // Its first attempt starts in the same `handle_timeout` round if it is due.
                let fetch = self.new_fetch(self.is_first(k), now);
                self.phase = Phase::Fetching { k, fetch };
            }
        }
    }

    fn connect(&mut self, k: usize, token: String, now: Instant) {
        self.outputs.push_back(ConnOutput::Connect { token });
        self.phase = Phase::Connecting {
            k,
            deadline: now + self.schedule.attempt_timeout,
        };
    }

    /// What a refusal means: `None` to retry, or the reason of a permanent failure.
    fn on_connect_error(&mut self, err: ConnectError) -> Option<String> {
        tracing::warn!(%err, "connection attempt failed");
        match (err, &self.credentials) {
            (ConnectError::Unauthorized(reason), _) => Some(format!("unauthorized: {reason}")),
            (ConnectError::TokenExpired, Credentials::AccessLink { .. }) => {
                Some("access link expired".into())
            }
            (ConnectError::TokenExpired, _) => {
                self.token_stale = true;
                None
            }
            (ConnectError::Transient(_), _) => None,
        }
    }

    fn fail(&mut self, reason: String) {
        self.wanted = false;
        self.live = false;
        self.phase = Phase::Idle;
        self.publish(LinkState::Failed { reason });
    }

    fn publish(&mut self, state: LinkState) {
        if self.state == state {
            return;
        }
        self.state = state.clone();
        self.outputs.push_back(ConnOutput::Link(state));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::connection::TokenError;

    const SEED: u64 = 7;

    fn tokens() -> Credentials {
        Credentials::token(|| async { Ok::<_, TokenError>("fetched".to_owned()) })
    }

    fn machine(credentials: Credentials, t0: Instant) -> ConnectionMachine {
        ConnectionMachine::new(
            ConnConfig {
                credentials,
                seed: SEED,
                schedule: RetrySchedule::default(),
            },
            t0,
        )
    }

    fn drain(m: &mut ConnectionMachine) -> Vec<ConnOutput> {
        std::iter::from_fn(|| m.poll_output()).collect()
    }

    /// The default schedule's draws for the same seed, in the machine's order.
    fn rng() -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(SEED)
    }

    /// What a machine started at `t0` must do first, drawn in its order from the same seed:
    /// the rest of the draws, the schedule, attempt 0's instant and its token fetch offsets.
    fn expected_start(t0: Instant) -> (ChaCha8Rng, RetrySchedule, Instant, Vec<Duration>) {
        let mut r = rng();
        let schedule = RetrySchedule::default();
        let first = t0 + schedule.reconnect_attempt_at(0, true, &mut r);
        let offsets = schedule.token_offsets(true, &mut r);
        (r, schedule, first, offsets)
    }

    fn reconnecting(attempt: u32, next_in: Duration) -> ConnOutput {
        ConnOutput::Link(LinkState::Reconnecting { attempt, next_in })
    }

    /// Steps `m` from `t0` to a live link; returns the instant it connected.
    fn connect(m: &mut ConnectionMachine, t0: Instant) -> Instant {
        let mut at = m.poll_timeout().unwrap();
        m.handle_timeout(at);
        if !drain(m).contains(&ConnOutput::FetchToken) {
            at = m.poll_timeout().unwrap();
            m.handle_timeout(at);
            assert_eq!(drain(m), vec![ConnOutput::FetchToken]);
        }
        m.handle_input(ConnInput::TokenFetched(Some("fetched".into())), at);
        m.handle_input(ConnInput::Connected, at);
        assert_eq!(m.link_state(), &LinkState::Connected, "from {t0:?}");
        drain(m);
        at
    }

    /// A machine with token credentials, stepped to a live link; and that instant.
    fn live() -> (ConnectionMachine, Instant) {
        let t0 = Instant::now();
        let mut m = machine(tokens(), t0);
        drain(&mut m);
        let t = connect(&mut m, t0);
        (m, t)
    }

    /// Runs `m` until it asks for a token (the fetch series' first attempt may start at once);
    /// returns that instant.
    fn until_fetch(m: &mut ConnectionMachine, now: Instant) -> Instant {
        let mut at = now;
        for _ in 0..3 {
            if drain(m).contains(&ConnOutput::FetchToken) {
                return at;
            }
            at = m.poll_timeout().unwrap();
            m.handle_timeout(at);
        }
        panic!("no token fetch");
    }

    #[test]
    fn the_first_connection_fetches_a_token_then_connects_on_the_jittered_schedule() {
        let t0 = Instant::now();
        let mut m = machine(tokens(), t0);
        let (_, _, first, offsets) = expected_start(t0);
        assert_eq!(drain(&mut m), vec![ConnOutput::Link(LinkState::Connecting)]);
        assert_eq!(m.poll_timeout(), Some(first));
        m.handle_timeout(first - Duration::from_millis(1));
        assert_eq!(drain(&mut m), vec![]);
        m.handle_timeout(first);
        // The fetch series starts at the attempt: its first try after its own jitter.
        let fetch_at = first + offsets[0];
        if offsets[0].is_zero() {
            assert_eq!(drain(&mut m), vec![ConnOutput::FetchToken]);
        } else {
            assert_eq!(drain(&mut m), vec![]);
            assert_eq!(m.poll_timeout(), Some(fetch_at));
            m.handle_timeout(fetch_at);
            assert_eq!(drain(&mut m), vec![ConnOutput::FetchToken]);
        }
        // The fetch is bounded by 15 s.
        assert_eq!(m.poll_timeout(), Some(fetch_at + ATTEMPT));
        m.handle_input(ConnInput::TokenFetched(Some("t1".into())), fetch_at);
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::Connect { token: "t1".into() }]
        );
        assert_eq!(m.poll_timeout(), Some(fetch_at + ATTEMPT));
        m.handle_input(ConnInput::Connected, fetch_at);
        assert_eq!(drain(&mut m), vec![ConnOutput::Link(LinkState::Connected)]);
        assert_eq!(m.poll_timeout(), None);
    }

    const ATTEMPT: Duration = Duration::from_secs(15);

    #[test]
    fn failed_and_hung_token_fetches_follow_the_three_attempts_then_the_reconnect_schedule() {
        let t0 = Instant::now();
        let mut m = machine(tokens(), t0);
        let (mut r, schedule, first, offsets) = expected_start(t0);
        drain(&mut m);
        m.handle_timeout(first);
        m.handle_timeout(first + offsets[0]);
        assert_eq!(drain(&mut m), vec![ConnOutput::FetchToken]);
        // Attempt 1 fails at once; attempt 2 starts at its offset.
        m.handle_input(ConnInput::TokenFetched(None), first + offsets[0]);
        assert_eq!(m.poll_timeout(), Some(first + offsets[1]));
        m.handle_timeout(first + offsets[1]);
        assert_eq!(drain(&mut m), vec![ConnOutput::FetchToken]);
        // Attempt 2 hangs: abandoned after 15 s, and attempt 3 (already due) starts at once.
        let hung = first + offsets[1] + ATTEMPT;
        m.handle_timeout(hung);
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::AbandonFetch, ConnOutput::FetchToken]
        );
        // Attempt 3 fails: reconnect attempt 2 of the series, 3 s (+ jitter) after its start.
        m.handle_input(ConnInput::TokenFetched(None), hung);
        let second = t0 + schedule.reconnect_attempt_at(1, false, &mut r);
        let wait = second.saturating_duration_since(hung);
        assert_eq!(drain(&mut m), vec![reconnecting(2, wait)]);
        // That attempt is overdue (the hung fetch took 15 s), so it started at once: its own
        // token fetch series, with fresh jitter.
        assert!(second <= hung);
        let refetch = schedule.token_offsets(false, &mut r);
        assert!(!refetch[0].is_zero(), "this seed's first fetch is jittered");
        assert_eq!(m.poll_timeout(), Some(hung + refetch[0]));
    }

    #[test]
    fn an_expiry_warning_renews_in_band_without_reconnecting() {
        let (mut m, t) = live();
        m.handle_input(ConnInput::TokenWillExpire, t);
        let due = until_fetch(&mut m, t);
        m.handle_input(ConnInput::TokenFetched(Some("t2".into())), due);
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::Renew { token: "t2".into() }]
        );
        m.handle_input(ConnInput::Renewed(Ok(())), due);
        assert_eq!(drain(&mut m), vec![]);
        assert_eq!(m.link_state(), &LinkState::Connected);
        // A second warning renews again; a transient refusal keeps the link.
        m.handle_input(ConnInput::TokenWillExpire, due);
        let due = until_fetch(&mut m, due);
        m.handle_input(ConnInput::TokenFetched(Some("t3".into())), due);
        drain(&mut m);
        m.handle_input(
            ConnInput::Renewed(Err(ConnectError::Transient("busy".into()))),
            due,
        );
        assert_eq!(drain(&mut m), vec![]);
        assert_eq!(m.link_state(), &LinkState::Connected);
    }

    #[test]
    fn a_permanent_refusal_of_a_fetched_renewal_ends_the_session() {
        let (mut m, t) = live();
        m.handle_input(ConnInput::TokenWillExpire, t);
        let due = until_fetch(&mut m, t);
        m.handle_input(ConnInput::TokenFetched(Some("t2".into())), due);
        drain(&mut m);
        m.handle_input(
            ConnInput::Renewed(Err(ConnectError::Unauthorized("revoked".into()))),
            due,
        );
        assert_eq!(
            drain(&mut m),
            vec![
                ConnOutput::CloseLink,
                ConnOutput::Link(LinkState::Failed {
                    reason: "unauthorized: revoked".into()
                })
            ]
        );
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn pause_closes_the_link_and_resume_reconnects_on_a_new_series() {
        let (mut m, t) = live();
        m.handle_input(ConnInput::Command(ConnCommand::Pause), t);
        assert_eq!(
            drain(&mut m),
            vec![
                ConnOutput::CloseLink,
                ConnOutput::Link(LinkState::Disconnected)
            ]
        );
        assert_eq!(m.poll_timeout(), None);
        // The token is kept: resuming connects without a fetch.
        let later = t + Duration::from_secs(100);
        m.handle_input(ConnInput::Command(ConnCommand::Resume), later);
        let out = drain(&mut m);
        assert!(
            matches!(
                out.as_slice(),
                [ConnOutput::Link(LinkState::Reconnecting { attempt: 1, .. })]
            ),
            "{out:?}"
        );
        let at = m.poll_timeout().unwrap();
        assert!(at >= later && at < later + Duration::from_secs(2), "{at:?}");
        m.handle_timeout(at);
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::Connect {
                token: "fetched".into()
            }]
        );
    }

    #[test]
    fn pause_while_connecting_abandons_the_attempt_and_disconnect_forgets_the_token() {
        let (mut m, t) = live();
        m.handle_input(ConnInput::LinkClosed { error: None }, t);
        drain(&mut m);
        let at = m.poll_timeout().unwrap();
        m.handle_timeout(at);
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::Connect {
                token: "fetched".into()
            }]
        );
        m.handle_input(
            ConnInput::Command(ConnCommand::Disconnect {
                clear_saved_data: true,
            }),
            at,
        );
        assert_eq!(
            drain(&mut m),
            vec![
                ConnOutput::AbandonConnect,
                ConnOutput::Link(LinkState::Disconnected)
            ]
        );
        // A late result of the abandoned attempt changes nothing.
        m.handle_input(ConnInput::Connected, at);
        assert_eq!(drain(&mut m), vec![]);
        // After resume the token must be fetched again.
        m.handle_input(ConnInput::Command(ConnCommand::Resume), at);
        drain(&mut m);
        let due = m.poll_timeout().unwrap();
        m.handle_timeout(due);
        until_fetch(&mut m, due);
    }

    #[test]
    fn a_dropped_link_reconnects_and_an_expired_token_is_fetched_anew() {
        let (mut m, t) = live();
        m.handle_input(
            ConnInput::LinkClosed {
                error: Some(ConnectError::TokenExpired),
            },
            t,
        );
        let out = drain(&mut m);
        assert_eq!(out[0], ConnOutput::CloseLink);
        assert!(
            matches!(
                out[1],
                ConnOutput::Link(LinkState::Reconnecting { attempt: 1, .. })
            ),
            "{out:?}"
        );
        let at = m.poll_timeout().unwrap();
        m.handle_timeout(at);
        until_fetch(&mut m, at);
    }

    #[test]
    fn unauthorized_stops_for_good_until_resumed() {
        let t0 = Instant::now();
        let mut m = machine(Credentials::access_link("link", "room"), t0);
        drain(&mut m);
        let at = m.poll_timeout().unwrap();
        m.handle_timeout(at);
        // An access link connects with its own token, no fetch.
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::Connect {
                token: "link".into()
            }]
        );
        m.handle_input(ConnInput::ConnectFailed(ConnectError::TokenExpired), at);
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::Link(LinkState::Failed {
                reason: "access link expired".into()
            })]
        );
        assert_eq!(m.poll_timeout(), None);
        // Nothing happens by itself, however long.
        m.handle_timeout(at + Duration::from_secs(3600));
        assert_eq!(drain(&mut m), vec![]);
    }

    #[test]
    fn an_access_link_passes_expiry_warnings_to_the_app() {
        let t0 = Instant::now();
        let mut m = machine(Credentials::access_link("link", "room"), t0);
        drain(&mut m);
        let at = m.poll_timeout().unwrap();
        m.handle_timeout(at);
        drain(&mut m);
        m.handle_input(ConnInput::Connected, at);
        drain(&mut m);
        m.handle_input(ConnInput::TokenWillExpire, at);
        assert_eq!(drain(&mut m), vec![ConnOutput::TokenWillExpire]);
        assert_eq!(m.poll_timeout(), None);
    }

    #[test]
    fn a_hung_connection_attempt_is_abandoned_after_its_bound() {
        let t0 = Instant::now();
        let mut m = machine(Credentials::access_link("link", "room"), t0);
        drain(&mut m);
        let at = m.poll_timeout().unwrap();
        m.handle_timeout(at);
        drain(&mut m);
        m.handle_timeout(at + ATTEMPT);
        let out = drain(&mut m);
        assert_eq!(out[0], ConnOutput::AbandonConnect);
        assert!(
            matches!(
                out[1],
                ConnOutput::Link(LinkState::Reconnecting { attempt: 2, .. })
            ),
            "{out:?}"
        );
    }

    #[test]
    fn a_schedule_without_first_jitter_connects_at_once() {
        let t0 = Instant::now();
        let schedule = RetrySchedule {
            first_attempt_jitter: false,
            ..RetrySchedule::default()
        };
        let mut m = ConnectionMachine::new(
            ConnConfig {
                credentials: Credentials::access_link("link", "room"),
                seed: SEED,
                schedule,
            },
            t0,
        );
        assert_eq!(m.poll_timeout(), Some(t0));
        m.handle_timeout(t0);
        assert_eq!(
            drain(&mut m),
            vec![
                ConnOutput::Link(LinkState::Connecting),
                ConnOutput::Connect {
                    token: "link".into()
                }
            ]
        );
    }

    #[test]
    fn without_first_attempt_jitter_the_first_fetch_and_connection_start_at_t0_exactly() {
        let t0 = Instant::now();
        let schedule = RetrySchedule::immediate_first_attempt();
        let mut m = ConnectionMachine::new(
            ConnConfig {
                credentials: tokens(),
                seed: SEED,
                schedule: schedule.clone(),
            },
            t0,
        );
        assert_eq!(drain(&mut m), vec![ConnOutput::Link(LinkState::Connecting)]);
        // The first attempt is due at t0, and so is its token fetch's first try.
        assert_eq!(m.poll_timeout(), Some(t0));
        m.handle_timeout(t0);
        assert_eq!(drain(&mut m), vec![ConnOutput::FetchToken]);
        assert_eq!(m.poll_timeout(), Some(t0 + ATTEMPT));
        m.handle_input(ConnInput::TokenFetched(Some("t1".into())), t0);
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::Connect { token: "t1".into() }]
        );
        m.handle_input(ConnInput::Connected, t0);
        assert_eq!(drain(&mut m), vec![ConnOutput::Link(LinkState::Connected)]);

        // The same seed, in the machine's order: nothing drawn for the first attempt or the
        // first fetch try, then the fetch's two retries (jittered), then the reconnect.
        let mut r = rng();
        let fetch = schedule.token_offsets(true, &mut r);
        assert_eq!(fetch[0], Duration::ZERO);
        // A drop with an expired token, a minute later: the reconnect and its token fetch
        // are jittered.
        let drop = t0 + Duration::from_secs(60);
        m.handle_input(
            ConnInput::LinkClosed {
                error: Some(ConnectError::TokenExpired),
            },
            drop,
        );
        let again = schedule.reconnect_attempt_at(0, false, &mut r);
        assert!(!again.is_zero(), "this seed's reconnect is jittered");
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::CloseLink, reconnecting(1, again)]
        );
        assert_eq!(m.poll_timeout(), Some(drop + again));
        m.handle_timeout(drop + again);
        assert_eq!(drain(&mut m), vec![]);
        let refetch = schedule.token_offsets(false, &mut r);
        assert!(!refetch[0].is_zero(), "this seed's refetch is jittered");
        assert_eq!(m.poll_timeout(), Some(drop + again + refetch[0]));
        m.handle_timeout(drop + again + refetch[0]);
        assert_eq!(drain(&mut m), vec![ConnOutput::FetchToken]);
    }

    #[test]
    fn renewing_with_the_apps_token_keeps_the_old_one_when_refused() {
        let (mut m, t) = live();
        m.handle_input(ConnInput::Command(ConnCommand::Renew("app".into())), t);
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::Renew {
                token: "app".into()
            }]
        );
        m.handle_input(
            ConnInput::Renewed(Err(ConnectError::Unauthorized("no".into()))),
            t,
        );
        // Not a reason to end the session, and the next connection uses the old token.
        assert_eq!(drain(&mut m), vec![]);
        m.handle_input(ConnInput::LinkClosed { error: None }, t);
        drain(&mut m);
        let at = m.poll_timeout().unwrap();
        m.handle_timeout(at);
        assert_eq!(
            drain(&mut m),
            vec![ConnOutput::Connect {
                token: "fetched".into()
            }]
        );
    }
}
