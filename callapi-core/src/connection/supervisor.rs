//! [`Supervisor`]: turns any [`Transport`] into a [`SignalClient`] with token fetching,
//! reconnection on the schedules of [`schedule`](super::schedule), in-band renewal, pause/resume and link state.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{sleep_until, timeout, Instant};

use crate::protocol::Envelope;
use crate::signal::{LinkState, SignalClient, SignalError, SignalEvent};

use super::credentials::{Credentials, TokenProvider};
use super::schedule::{reconnect_attempt_at, token_attempt_at, ATTEMPT_TIMEOUT};
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
    /// Bound of each token fetch and each connection attempt (15 s).
    pub attempt_timeout: Duration,
}

impl SupervisorConfig {
    /// Defaults for `identity` with `credentials`.
    pub fn new(identity: Identity, credentials: Credentials) -> Self {
        Self {
            identity,
            credentials,
            seed: None,
            attempt_timeout: ATTEMPT_TIMEOUT,
        }
    }

    /// Sets the jitter seed (tests).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

#[derive(Debug)]
enum Cmd {
    Send(Envelope),
    Renew(String),
    Pause,
    Resume,
    Disconnect { clear_saved_data: bool },
    SetCredentials(Credentials, oneshot::Sender<Result<(), SignalError>>),
    Close,
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
        let seed = config.seed.unwrap_or_else(rand::random);
        let task = Task {
            transport,
            identity: config.identity,
            session: Session {
                credentials: config.credentials,
                token: None,
                token_stale: false,
                live: true,
            },
            attempt_timeout: config.attempt_timeout,
            rng: ChaCha8Rng::seed_from_u64(seed),
            cmds: cmd_rx,
            events: ev_tx,
            state: state_tx,
            wanted: true,
            closed: false,
            ever_connected: false,
        };
        tokio::spawn(task.run());
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
        self.command(Cmd::Renew(token))
    }

    async fn close(&mut self) {
        let _ = self.command(Cmd::Close);
    }

    async fn pause(&mut self) {
        let _ = self.command(Cmd::Pause);
    }

    async fn resume(&mut self) {
        let _ = self.command(Cmd::Resume);
    }

    async fn disconnect(&mut self, clear_saved_data: bool) {
        let _ = self.command(Cmd::Disconnect { clear_saved_data });
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

type TokenFut = Pin<Box<dyn Future<Output = Option<String>> + Send>>;

/// Fetches a token with the three-attempt schedule; `offsets` are pre-drawn (with jitter).
fn token_series(
    provider: Arc<dyn TokenProvider>,
    offsets: Vec<Duration>,
    bound: Duration,
) -> TokenFut {
    Box::pin(async move {
        let start = Instant::now();
        for at in offsets {
            sleep_until(start + at).await;
            match timeout(bound, provider.fetch()).await {
                Ok(Ok(token)) => return Some(token),
                Ok(Err(err)) => tracing::warn!(%err, "token fetch failed"),
                Err(_) => tracing::warn!("token fetch timed out"),
            }
        }
        None
    })
}

/// How a phase of the task ended.
enum Ending {
    /// The link dropped or every attempt failed: reconnect.
    Retry,
    /// Paused, disconnected or closed by a command.
    Stopped,
    /// A permanent error.
    Failed(String),
}

/// Credentials and the token they gave, and whether a session is live.
struct Session {
    credentials: Credentials,
    token: Option<String>,
    token_stale: bool,
    /// A session is live from start (or `resume`) until `disconnect` or a permanent failure.
    live: bool,
}

impl Session {
    fn set_token(&mut self, token: String) {
        self.token = Some(token);
        self.token_stale = false;
    }

    fn set_credentials(&mut self, creds: Credentials) -> Result<(), SignalError> {
        if self.live && !self.credentials.same_kind(&creds) {
            return Err(SignalError::Rejected(
                "cannot switch between token and access-link credentials on a live session; \
                 disconnect first"
                    .into(),
            ));
        }
        self.credentials = creds;
        self.token = None;
        self.token_stale = false;
        Ok(())
    }
}

struct Task<T: Transport> {
    transport: T,
    identity: Identity,
    session: Session,
    attempt_timeout: Duration,
    rng: ChaCha8Rng,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<SignalEvent>,
    state: watch::Sender<LinkState>,
    wanted: bool,
    closed: bool,
    ever_connected: bool,
}

impl<T: Transport> Task<T> {
    fn publish(&mut self, state: LinkState) {
        if *self.state.borrow() == state {
            return;
        }
        tracing::debug!(?state, user = %self.identity.user, "link state");
        self.state.send_replace(state.clone());
        let _ = self.events.send(SignalEvent::Link(state));
    }

    fn token_offsets(&mut self) -> Vec<Duration> {
        (0..)
            .map_while(|k| token_attempt_at(k, &mut self.rng))
            .collect()
    }

    /// Handles a command while no link is up. Returns `true` if the current phase must stop.
    fn control(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Send(_) => false, // the link is down: dropped (the reliable layer retransmits)
            Cmd::Renew(token) => {
                self.session.set_token(token);
                false
            }
            Cmd::Resume => {
                self.wanted = true;
                self.session.live = true;
                false
            }
            Cmd::SetCredentials(creds, reply) => {
                let _ = reply.send(self.session.set_credentials(creds));
                false
            }
            Cmd::Pause | Cmd::Disconnect { .. } | Cmd::Close => {
                self.stop(&cmd);
                true
            }
        }
    }

    /// Applies a stopping command (pause, disconnect, close).
    fn stop(&mut self, cmd: &Cmd) {
        self.wanted = false;
        match cmd {
            Cmd::Disconnect { clear_saved_data } => {
                self.session.live = false;
                if *clear_saved_data {
                    self.session.token = None;
                }
            }
            Cmd::Close => {
                self.closed = true;
                self.session.live = false;
            }
            _ => {}
        }
    }

    async fn run(mut self) {
        while !self.closed {
            if !self.wanted {
                if !matches!(*self.state.borrow(), LinkState::Failed { .. }) {
                    self.publish(LinkState::Disconnected);
                }
                match self.cmds.recv().await {
                    Some(cmd) => {
                        self.control(cmd);
                    }
                    None => break,
                }
                continue;
            }
            match self.connect_and_serve().await {
                Ending::Failed(reason) => {
                    self.wanted = false;
                    self.session.live = false;
                    self.publish(LinkState::Failed { reason });
                }
                Ending::Retry | Ending::Stopped => {}
            }
        }
        self.publish(LinkState::Disconnected);
    }

    /// Runs reconnect attempts until one succeeds, then serves the link until it drops.
    async fn connect_and_serve(&mut self) -> Ending {
        let start = Instant::now();
        for k in 0usize.. {
            let at = start + reconnect_attempt_at(k, &mut self.rng);
            let now = Instant::now();
            if !self.ever_connected && k == 0 {
                self.publish(LinkState::Connecting);
            } else {
                let attempt = u32::try_from(k + 1).unwrap_or(u32::MAX);
                self.publish(LinkState::Reconnecting {
                    attempt,
                    next_in: at.saturating_duration_since(now),
                });
            }
            // Wait for the attempt's instant, still obeying commands.
            loop {
                tokio::select! {
                    () = sleep_until(at) => break,
                    cmd = self.cmds.recv() => match cmd {
                        Some(cmd) => if self.control(cmd) { return Ending::Stopped },
                        None => { self.closed = true; return Ending::Stopped }
                    },
                }
            }
            match self.attempt().await {
                Ok(link) => return self.serve(link).await,
                Err(Ending::Retry) => continue,
                Err(other) => return other,
            }
        }
        Ending::Retry
    }

    /// One attempt: a token if needed, then one connection.
    async fn attempt(&mut self) -> Result<T::Link, Ending> {
        let token = match &self.session.credentials {
            Credentials::AccessLink { token, .. } => token.clone(),
            Credentials::Token(provider) => match (&self.session.token, self.session.token_stale) {
                (Some(t), false) => t.clone(),
                _ => {
                    let provider = provider.clone();
                    let offsets = self.token_offsets();
                    let fetch = token_series(provider, offsets, self.attempt_timeout);
                    match self.obeying_commands(fetch).await? {
                        Some(t) => {
                            self.session.set_token(t.clone());
                            t
                        }
                        None => return Err(Ending::Retry),
                    }
                }
            },
        };
        let result = {
            let connect = timeout(
                self.attempt_timeout,
                self.transport.connect(&self.identity, &token),
            );
            tokio::pin!(connect);
            loop {
                tokio::select! {
                    r = &mut connect => break r,
                    cmd = self.cmds.recv() => {
                        let cmd = cmd.unwrap_or(Cmd::Close);
                        // (`control` would borrow all of `self`, which `connect` holds in part.)
                        match cmd {
                            Cmd::Send(_) => {}
                            Cmd::Renew(t) => self.session.set_token(t),
                            Cmd::Resume => self.session.live = true,
                            Cmd::SetCredentials(c, reply) => {
                                let _ = reply.send(self.session.set_credentials(c));
                            }
                            Cmd::Pause | Cmd::Disconnect { .. } | Cmd::Close => {
                                self.wanted = false;
                                match cmd {
                                    Cmd::Disconnect { clear_saved_data } => {
                                        self.session.live = false;
                                        if clear_saved_data { self.session.token = None; }
                                    }
                                    Cmd::Close => { self.closed = true; self.session.live = false; }
                                    _ => {}
                                }
                                return Err(Ending::Stopped);
                            }
                        }
                    }
                }
            }
        };
        match result {
            Ok(Ok(link)) => Ok(link),
            Ok(Err(err)) => Err(self.on_connect_error(err)),
            Err(_) => {
                tracing::warn!("connection attempt timed out");
                Err(Ending::Retry)
            }
        }
    }

    fn on_connect_error(&mut self, err: ConnectError) -> Ending {
        tracing::warn!(%err, user = %self.identity.user, "connection attempt failed");
        match (err, &self.session.credentials) {
            (ConnectError::Unauthorized(reason), _) => {
                Ending::Failed(format!("unauthorized: {reason}"))
            }
            (ConnectError::TokenExpired, Credentials::AccessLink { .. }) => {
                Ending::Failed("access link expired".into())
            }
            (ConnectError::TokenExpired, _) => {
                self.session.token_stale = true;
                Ending::Retry
            }
            (ConnectError::Transient(_), _) => Ending::Retry,
        }
    }

    /// Runs `fut` while answering commands; a stopping command aborts it.
    async fn obeying_commands<F: Future>(&mut self, fut: F) -> Result<F::Output, Ending> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Ok(out),
                cmd = self.cmds.recv() => match cmd {
                    Some(cmd) => if self.control(cmd) { return Err(Ending::Stopped) },
                    None => { self.closed = true; return Err(Ending::Stopped) }
                },
            }
        }
    }

    /// Serves a live link until it drops or a command stops it.
    async fn serve(&mut self, mut link: T::Link) -> Ending {
        self.ever_connected = true;
        self.publish(LinkState::Connected);
        let mut renewal: Option<TokenFut> = None;
        loop {
            tokio::select! {
                ev = link.next_event() => match ev {
                    Some(LinkEvent::Message(env)) => { let _ = self.events.send(SignalEvent::Message(env)); }
                    Some(LinkEvent::Invalid(err)) => { let _ = self.events.send(SignalEvent::Invalid(err)); }
                    Some(LinkEvent::TokenWillExpire) => match &self.session.credentials {
                        Credentials::Token(provider) => {
                            if renewal.is_none() {
                                let provider = provider.clone();
                                let offsets = self.token_offsets();
                                renewal = Some(token_series(provider, offsets, self.attempt_timeout));
                            }
                        }
                        Credentials::AccessLink { .. } => {
                            let _ = self.events.send(SignalEvent::TokenWillExpire);
                        }
                    },
                    Some(LinkEvent::Closed { error }) => {
                        link.close().await;
                        return match error {
                            Some(err) => self.on_connect_error(err),
                            None => Ending::Retry,
                        };
                    }
                    None => return Ending::Retry,
                },
                fetched = async { match renewal.as_mut() { Some(f) => f.await, None => std::future::pending().await } } => {
                    // Done either way: a finished fetch must not be polled again.
                    renewal = None;
                    let Some(token) = fetched else {
                        tracing::warn!("no token to renew with; keeping the link on the old one");
                        continue;
                    };
                    match link.renew(&token).await {
                        Ok(()) => self.session.set_token(token),
                        Err(err) => {
                            tracing::warn!(%err, "in-band renewal failed");
                            self.session.set_token(token);
                            if err.is_permanent() {
                                link.close().await;
                                return self.on_connect_error(err);
                            }
                        }
                    }
                },
                cmd = self.cmds.recv() => match cmd {
                    Some(Cmd::Send(env)) => {
                        if let Err(err) = link.send(env).await {
                            tracing::debug!(%err, "link did not take an envelope");
                        }
                    }
                    Some(Cmd::Renew(token)) => {
                        if link.renew(&token).await.is_ok() {
                            self.session.set_token(token);
                        }
                    }
                    Some(Cmd::Resume) => {}
                    Some(Cmd::SetCredentials(c, reply)) => {
                        let _ = reply.send(self.session.set_credentials(c));
                    }
                    Some(cmd @ (Cmd::Pause | Cmd::Disconnect { .. } | Cmd::Close)) => {
                        self.stop(&cmd);
                        link.close().await;
                        return Ending::Stopped;
                    }
                    None => {
                        self.stop(&Cmd::Close);
                        link.close().await;
                        return Ending::Stopped;
                    }
                },
            }
        }
    }
}
