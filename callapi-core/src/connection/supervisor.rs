//! [`Supervisor`]: turns any [`Transport`] into a [`SignalClient`] with token fetching,
//! reconnection on the schedules of [`schedule`](super::schedule), in-band renewal,
//! pause/resume and link state.
//!
//! The decisions are the [`ConnectionMachine`]'s (sans-IO, unit-tested in virtual time); the
//! supervisor is the shell that performs its outputs: it holds the token fetch, the connection
//! attempt and the closing links the machine asks for as futures, owns the live link, and
//! reports back.
//!
//! It spawns nothing. It does its work inside [`SignalClient::next_event`], which the `CallApi`
//! loop polls beside the call's timers and the app's requests, so a received envelope goes
//! from the link to the call machine, and a sent one from the call machine to the link, in the
//! same task.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::deadline::Deadline;
use crate::protocol::Envelope;
use crate::signal::{LinkState, SignalClient, SignalError, SignalEvent};

use super::credentials::Credentials;
use super::machine::{ConnCommand, ConnConfig, ConnInput, ConnOutput, ConnectionMachine};
use super::schedule::{RetrySchedule, ATTEMPT_TIMEOUT};
use super::transport::{ConnectError, Identity, LinkEvent, Renewal, Transport, TransportLink};

/// Settings of a [`Supervisor`].
#[derive(Debug, Clone)]
pub struct SupervisorConfig {
    /// Who connects.
    pub identity: Identity,
    /// How.
    pub credentials: Credentials,
    /// Seed of the jitter RNG; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Bound of each token fetch and each connection attempt (15 s); it overrides the
    /// schedule's [`attempt_timeout`](RetrySchedule::attempt_timeout).
    pub attempt_timeout: Duration,
    /// When token fetches and reconnects are attempted.
    pub schedule: RetrySchedule,
}

impl SupervisorConfig {
    /// Defaults for `identity` with `credentials`.
    pub fn new(identity: Identity, credentials: Credentials) -> Self {
        Self {
            identity,
            credentials,
            seed: None,
            attempt_timeout: ATTEMPT_TIMEOUT,
            schedule: RetrySchedule::default(),
        }
    }

    /// Sets the jitter seed (tests).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the retry schedule.
    pub fn with_schedule(mut self, schedule: RetrySchedule) -> Self {
        self.attempt_timeout = schedule.attempt_timeout;
        self.schedule = schedule;
        self
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A [`SignalClient`] over a [`Transport`], supervised: it connects at once, fetches tokens with
/// retries (0 s, 1 s, 4 s, each + 0–2 s jitter, each bounded by 15 s), reconnects after drops
/// (0, 3, 9, 27, 60, 120 s, then every 60 s, each + 0–2 s jitter) until `disconnect`, renews
/// tokens in-band on expiry warnings, and stops on permanent errors with `LinkState::Failed`.
///
/// No task of its own: it works while its owner polls [`next_event`](SignalClient::next_event)
/// (a `CallApi` always does).
pub struct Supervisor<T: Transport> {
    machine: ConnectionMachine,
    transport: T,
    identity: Identity,
    /// The token fetch under way.
    fetch: Option<BoxFuture<Option<String>>>,
    /// The connection attempt under way.
    connect: Option<BoxFuture<Result<T::Link, ConnectError>>>,
    /// The live link.
    link: Option<T::Link>,
    /// Links closing politely, beside everything else.
    closing: FuturesUnordered<BoxFuture<()>>,
    /// What to report before polling anything again.
    events: VecDeque<SignalEvent>,
    state: watch::Sender<LinkState>,
    /// The machine's next deadline, kept between polls.
    timer: Deadline,
}

impl<T: Transport> std::fmt::Debug for Supervisor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("identity", &self.identity)
            .field("state", &*self.state.borrow())
            .field("connecting", &self.connect.is_some())
            .field("linked", &self.link.is_some())
            .finish_non_exhaustive()
    }
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// Waits for `slot`'s future, then empties the slot; forever when it is empty.
async fn take_when_done<F: Future + Unpin>(slot: &mut Option<F>) -> F::Output {
    let out = match slot.as_mut() {
        Some(f) => f.await,
        None => std::future::pending().await,
    };
    *slot = None;
    out
}

impl<T: Transport> Supervisor<T> {
    /// Supervises `transport`. The schedule's clock starts now; the work happens while the
    /// supervisor is polled. The first attempt follows the reconnect schedule like every other:
    /// it starts within the 0–2 s jitter (after a token fetch, itself jittered), which spreads
    /// the load when many clients start together (see [`RetrySchedule::first_attempt_jitter`]).
    pub fn start(transport: T, config: SupervisorConfig) -> Self {
        let (state, _) = watch::channel(LinkState::Disconnected);
        let mut schedule = config.schedule;
        schedule.attempt_timeout = config.attempt_timeout;
        let machine = ConnectionMachine::new(
            ConnConfig {
                credentials: config.credentials,
                seed: config.seed.unwrap_or_else(rand::random),
                schedule,
            },
            now(),
        );
        Self {
            machine,
            transport,
            identity: config.identity,
            fetch: None,
            connect: None,
            link: None,
            closing: FuturesUnordered::new(),
            events: VecDeque::new(),
            state,
            timer: Deadline::new(),
        }
    }

    /// A `watch` of the link state.
    pub fn link_state(&self) -> watch::Receiver<LinkState> {
        self.state.subscribe()
    }

    /// Performs the machine's outputs. Nothing here waits on the network: attempts, fetches
    /// and closes become futures polled by [`next_event`](SignalClient::next_event).
    async fn perform(&mut self) {
        while let Some(out) = self.machine.poll_output() {
            match out {
                ConnOutput::Link(state) => {
                    tracing::debug!(?state, user = %self.identity.user, "link state");
                    self.state.send_replace(state.clone());
                    self.events.push_back(SignalEvent::Link(state));
                }
                ConnOutput::FetchToken => {
                    if let Credentials::Token(provider) = self.machine.credentials() {
                        let f = provider.fetch();
                        self.fetch = Some(Box::pin(async move {
                            match f.await {
                                Ok(token) => Some(token),
                                Err(err) => {
                                    tracing::warn!(%err, "token fetch failed");
                                    None
                                }
                            }
                        }));
                    }
                }
                ConnOutput::AbandonFetch => self.fetch = None,
                ConnOutput::Connect { token } => {
                    self.connect = Some(Box::pin(self.transport.connect(&self.identity, &token)));
                }
                ConnOutput::AbandonConnect => self.connect = None,
                ConnOutput::Renew { token } => {
                    let renewal = match self.link.as_mut() {
                        Some(l) => l.renew(&token).await,
                        None => {
                            Renewal::Done(Err(ConnectError::Transient("the link is gone".into())))
                        }
                    };
                    if let Renewal::Done(result) = renewal {
                        self.machine.handle_input(ConnInput::Renewed(result), now());
                    }
                }
                ConnOutput::CloseLink => {
                    if let Some(mut l) = self.link.take() {
                        self.closing.push(Box::pin(async move { l.close().await }));
                    }
                }
                ConnOutput::TokenWillExpire => self.events.push_back(SignalEvent::TokenWillExpire),
            }
        }
    }

    /// What a link event means: an event for the owner, or an input for the machine.
    fn on_link_event(&mut self, event: Option<LinkEvent>) -> Result<SignalEvent, ConnInput> {
        match event {
            Some(LinkEvent::Message(env)) => Ok(SignalEvent::Message(env)),
            Some(LinkEvent::Invalid(err)) => Ok(SignalEvent::Invalid(err)),
            Some(LinkEvent::TokenWillExpire) => Err(ConnInput::TokenWillExpire),
            Some(LinkEvent::Renewed(result)) => Err(ConnInput::Renewed(result)),
            Some(LinkEvent::Closed { error }) => {
                // Already closed: nothing to close politely, never polled again.
                self.link = None;
                Err(ConnInput::LinkClosed { error })
            }
            None => {
                self.link = None;
                Err(ConnInput::LinkClosed { error: None })
            }
        }
    }

    /// Gives the machine `cmd` and performs what it asks.
    async fn command(&mut self, cmd: ConnCommand) {
        self.machine.handle_input(ConnInput::Command(cmd), now());
        self.perform().await;
    }
}

impl<T: Transport> SignalClient for Supervisor<T> {
    async fn send(&mut self, envelope: Envelope) -> Result<(), SignalError> {
        match self.link.as_mut() {
            Some(l) if self.state.borrow().is_connected() => l.send(envelope).await,
            _ => Err(SignalError::NotConnected),
        }
    }

    /// Drives the supervision (token fetches, attempts, timers, the link's I/O) until there is
    /// something to report. Cancel-safe: what is under way lives in the supervisor.
    async fn next_event(&mut self) -> Option<SignalEvent> {
        loop {
            self.perform().await;
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            if self.machine.is_closed() && self.closing.is_empty() {
                return None;
            }
            let Self {
                machine,
                fetch,
                connect,
                link,
                closing,
                timer,
                ..
            } = self;
            let input = tokio::select! {
                ev = async {
                    match link.as_mut() {
                        Some(l) => l.next_event().await,
                        None => std::future::pending().await,
                    }
                } => match self.on_link_event(ev) {
                    Ok(ev) => return Some(ev),
                    Err(input) => Some(input),
                },
                () = timer.wait(machine.poll_timeout()) => {
                    machine.handle_timeout(now());
                    None
                }
                token = take_when_done(fetch) => Some(ConnInput::TokenFetched(token)),
                result = take_when_done(connect) => Some(match result {
                    Ok(l) => {
                        self.link = Some(l);
                        ConnInput::Connected
                    }
                    Err(err) => ConnInput::ConnectFailed(err),
                }),
                Some(()) = closing.next(), if !closing.is_empty() => None,
            };
            if let Some(input) = input {
                self.machine.handle_input(input, now());
            }
        }
    }

    fn link_state(&self) -> LinkState {
        self.state.borrow().clone()
    }

    async fn renew_token(&mut self, token: String) -> Result<(), SignalError> {
        self.command(ConnCommand::Renew(token)).await;
        Ok(())
    }

    /// Closes the link and waits (within the backend's bound) for it to close.
    async fn close(&mut self) {
        self.command(ConnCommand::Close).await;
        while self.closing.next().await.is_some() {}
    }

    async fn pause(&mut self) {
        self.command(ConnCommand::Pause).await;
    }

    async fn resume(&mut self) {
        self.command(ConnCommand::Resume).await;
    }

    async fn disconnect(&mut self, clear_saved_data: bool) {
        self.command(ConnCommand::Disconnect { clear_saved_data })
            .await;
    }

    async fn set_credentials(&mut self, credentials: Credentials) -> Result<(), SignalError> {
        self.machine.set_credentials(credentials)
    }

    fn room_scope(&self) -> Option<String> {
        self.machine.credentials().room_scope().map(str::to_owned)
    }
}
