//! [`Supervisor`]: turns any [`Transport`] into a [`SignalClient`] with token fetching,
//! reconnection on the schedules of [`schedule`](super::schedule), in-band renewal,
//! pause/resume and link state.
//!
//! The decisions are the [`ConnectionMachine`]'s (sans-IO, unit-tested in virtual time); the
//! supervisor is the shell that performs its outputs: it runs the token fetch and the
//! connection attempt the machine asks for, owns the live link, and reports back.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

use crate::protocol::Envelope;
use crate::signal::{LinkState, SignalClient, SignalError, SignalEvent};

use super::credentials::Credentials;
use super::machine::{ConnCommand, ConnConfig, ConnInput, ConnOutput, ConnectionMachine};
use super::schedule::{RetrySchedule, ATTEMPT_TIMEOUT};
use super::transport::{ConnectError, Identity, LinkEvent, Transport, TransportLink};

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

#[derive(Debug)]
enum Cmd {
    Send(Envelope),
    Conn(ConnCommand),
    SetCredentials(Credentials, oneshot::Sender<Result<(), SignalError>>),
}

/// A [`SignalClient`] over a [`Transport`], supervised: it connects at once, fetches tokens with
/// retries (0 s, 1 s, 4 s, each + 0–2 s jitter, each bounded by 15 s), reconnects after drops
/// (0, 3, 9, 27, 60, 120 s, then every 60 s, each + 0–2 s jitter) until `disconnect`, renews
/// tokens in-band on expiry warnings, and stops on permanent errors with `LinkState::Failed`.
#[derive(Debug)]
pub struct Supervisor {
    cmds: mpsc::UnboundedSender<Cmd>,
    events: mpsc::UnboundedReceiver<SignalEvent>,
    state: watch::Receiver<LinkState>,
    scope: Option<String>,
}

impl Supervisor {
    /// Starts supervising `transport` on the current tokio runtime. The first attempt follows
    /// the reconnect schedule like every other: it starts within the 0–2 s jitter (after a token
    /// fetch, itself jittered), which spreads the load when many clients start together.
    pub fn start<T: Transport>(transport: T, config: SupervisorConfig) -> Self {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(LinkState::Disconnected);
        let scope = config.credentials.room_scope().map(str::to_owned);
        let mut schedule = config.schedule;
        schedule.attempt_timeout = config.attempt_timeout;
        let machine_config = ConnConfig {
            credentials: config.credentials,
            seed: config.seed.unwrap_or_else(rand::random),
            schedule,
        };
        let shell = Shell {
            identity: config.identity,
            cmds: cmd_rx,
            events: ev_tx,
            state: state_tx,
        };
        tokio::spawn(shell.run(transport, machine_config));
        Self {
            cmds: cmd_tx,
            events: ev_rx,
            state: state_rx,
            scope,
        }
    }

    /// A `watch` of the link state.
    pub fn link_state(&self) -> watch::Receiver<LinkState> {
        self.state.clone()
    }

    fn command(&self, cmd: Cmd) -> Result<(), SignalError> {
        self.cmds.send(cmd).map_err(|_| SignalError::Closed)
    }
}

impl SignalClient for Supervisor {
    async fn send(&mut self, envelope: Envelope) -> Result<(), SignalError> {
        if !self.state.borrow().is_connected() {
            return Err(SignalError::NotConnected);
        }
        self.command(Cmd::Send(envelope))
    }

    async fn next_event(&mut self) -> Option<SignalEvent> {
        self.events.recv().await
    }

    async fn renew_token(&mut self, token: String) -> Result<(), SignalError> {
        self.command(Cmd::Conn(ConnCommand::Renew(token)))
    }

    async fn close(&mut self) {
        let _ = self.command(Cmd::Conn(ConnCommand::Close));
    }

    async fn pause(&mut self) {
        let _ = self.command(Cmd::Conn(ConnCommand::Pause));
    }

    async fn resume(&mut self) {
        let _ = self.command(Cmd::Conn(ConnCommand::Resume));
    }

    async fn disconnect(&mut self, clear_saved_data: bool) {
        let _ = self.command(Cmd::Conn(ConnCommand::Disconnect { clear_saved_data }));
    }

    async fn set_credentials(&mut self, credentials: Credentials) -> Result<(), SignalError> {
        let scope = credentials.room_scope().map(str::to_owned);
        let (tx, rx) = oneshot::channel();
        self.command(Cmd::SetCredentials(credentials, tx))?;
        rx.await.map_err(|_| SignalError::Closed)??;
        self.scope = scope;
        Ok(())
    }

    fn room_scope(&self) -> Option<String> {
        self.scope.clone()
    }
}

type TokenFetch = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// The task's channels to the [`Supervisor`] handle.
struct Shell {
    identity: Identity,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<SignalEvent>,
    state: watch::Sender<LinkState>,
}

/// What the shell holds for the machine: the token fetch under way, the live link, and the
/// connection attempt to start (or under way, until it is abandoned).
struct Io<L> {
    fetch: Option<TokenFetch>,
    link: Option<L>,
    connect: Option<String>,
    abandon_connect: bool,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

/// The machine's next deadline on tokio's clock (forever when it has none).
async fn machine_timer(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => sleep_until(Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

impl Shell {
    async fn run<T: Transport>(mut self, mut transport: T, config: ConnConfig) {
        let mut machine = ConnectionMachine::new(config, now());
        let mut io: Io<T::Link> = Io {
            fetch: None,
            link: None,
            connect: None,
            abandon_connect: false,
        };
        loop {
            self.perform(&mut machine, &mut io).await;
            if machine.is_closed() {
                break;
            }
            if let Some(token) = io.connect.take() {
                self.connecting(&mut transport, &token, &mut machine, &mut io)
                    .await;
                continue;
            }
            let input = tokio::select! {
                cmd = self.cmds.recv() => self.command(cmd, &mut machine, &mut io).await,
                () = machine_timer(machine.poll_timeout()) => {
                    machine.handle_timeout(now());
                    None
                }
                token = async {
                    match io.fetch.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                } => {
                    io.fetch = None;
                    Some(ConnInput::TokenFetched(token))
                }
                ev = async {
                    match io.link.as_mut() {
                        Some(l) => l.next_event().await,
                        None => std::future::pending().await,
                    }
                } => match ev {
                    Some(LinkEvent::Message(env)) => {
                        let _ = self.events.send(SignalEvent::Message(env));
                        None
                    }
                    Some(LinkEvent::Invalid(err)) => {
                        let _ = self.events.send(SignalEvent::Invalid(err));
                        None
                    }
                    Some(LinkEvent::TokenWillExpire) => Some(ConnInput::TokenWillExpire),
                    Some(LinkEvent::Closed { error }) => Some(ConnInput::LinkClosed { error }),
                    None => Some(ConnInput::LinkClosed { error: None }),
                },
            };
            if let Some(input) = input {
                machine.handle_input(input, now());
            }
        }
        // Closed: whatever is left goes.
        if let Some(mut l) = io.link.take() {
            l.close().await;
        }
    }

    /// One connection attempt, until it ends or the machine abandons it (its bound passed, or
    /// a command stopped it).
    async fn connecting<T: Transport>(
        &mut self,
        transport: &mut T,
        token: &str,
        machine: &mut ConnectionMachine,
        io: &mut Io<T::Link>,
    ) {
        let identity = self.identity.clone();
        let attempt = transport.connect(&identity, token);
        tokio::pin!(attempt);
        io.abandon_connect = false;
        loop {
            let input = tokio::select! {
                result = &mut attempt => {
                    let input = match result {
                        Ok(l) => {
                            io.link = Some(l);
                            ConnInput::Connected
                        }
                        Err(err) => ConnInput::ConnectFailed(err),
                    };
                    machine.handle_input(input, now());
                    return;
                }
                cmd = self.cmds.recv() => self.command(cmd, machine, io).await,
                () = machine_timer(machine.poll_timeout()) => {
                    machine.handle_timeout(now());
                    None
                }
            };
            if let Some(input) = input {
                machine.handle_input(input, now());
            }
            self.perform(machine, io).await;
            if io.abandon_connect {
                return;
            }
        }
    }

    /// Answers a command; what the machine must hear is returned.
    async fn command<L: TransportLink>(
        &mut self,
        cmd: Option<Cmd>,
        machine: &mut ConnectionMachine,
        io: &mut Io<L>,
    ) -> Option<ConnInput> {
        match cmd {
            Some(Cmd::Send(env)) => {
                // No link: dropped (the reliable layer retransmits).
                if let Some(l) = io.link.as_mut() {
                    if let Err(err) = l.send(env).await {
                        tracing::debug!(%err, "link did not take an envelope");
                    }
                }
                None
            }
            Some(Cmd::Conn(c)) => Some(ConnInput::Command(c)),
            Some(Cmd::SetCredentials(c, reply)) => {
                let _ = reply.send(machine.set_credentials(c));
                None
            }
            None => Some(ConnInput::Command(ConnCommand::Close)),
        }
    }

    /// Performs the machine's outputs.
    async fn perform<L: TransportLink>(&mut self, machine: &mut ConnectionMachine, io: &mut Io<L>) {
        while let Some(out) = machine.poll_output() {
            match out {
                ConnOutput::Link(state) => {
                    tracing::debug!(?state, user = %self.identity.user, "link state");
                    self.state.send_replace(state.clone());
                    let _ = self.events.send(SignalEvent::Link(state));
                }
                ConnOutput::FetchToken => {
                    if let Credentials::Token(provider) = machine.credentials() {
                        let f = provider.fetch();
                        io.fetch = Some(Box::pin(async move {
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
                ConnOutput::AbandonFetch => io.fetch = None,
                ConnOutput::Connect { token } => io.connect = Some(token),
                ConnOutput::AbandonConnect => {
                    io.connect = None;
                    io.abandon_connect = true;
                }
                ConnOutput::Renew { token } => {
                    let result = match io.link.as_mut() {
                        Some(l) => l.renew(&token).await,
                        None => Err(ConnectError::Transient("the link is gone".into())),
                    };
                    machine.handle_input(ConnInput::Renewed(result), now());
                }
                ConnOutput::CloseLink => {
                    if let Some(mut l) = io.link.take() {
                        l.close().await;
                    }
                }
                ConnOutput::TokenWillExpire => {
                    let _ = self.events.send(SignalEvent::TokenWillExpire);
                }
            }
        }
    }
}
