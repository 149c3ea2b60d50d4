//! The app-facing handle.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};

use crate::call::{
    CallConfig, CallInfo, CallMachine, CallPolicy, CallState, CallTimings, Command, CommandError,
    Notification, PrepareConfig,
};
use crate::error::CallApiError;
use crate::media::MediaEngine;
use crate::protocol::{CallId, CallType, Extension, Member, UserId};
use crate::signal::{LinkState, SignalClient};

use super::driver::{Driver, PlaceCall, PlaceGroupCall, Reply, Request, Subscribers};
use super::media_lane::MediaLane;
use super::stream::NotificationStream;

/// One device's call API: a cheap [`Clone`] handle over a tokio task that owns the
/// [`CallMachine`], the [`SignalClient`] and the [`MediaEngine`].
///
/// Every method is `async` and returns a `Result`; notifications arrive on
/// [`subscribe`](Self::subscribe) streams, and the current state is a `watch`
/// ([`state_watch`](Self::state_watch)).
#[derive(Debug, Clone)]
pub struct CallApi {
    requests: mpsc::UnboundedSender<Request>,
    state: watch::Receiver<CallState>,
    link: watch::Receiver<LinkState>,
    subscribers: Subscribers,
    user: UserId,
}

impl CallApi {
    /// Starts a `CallApi` (state `Idle`) on the current tokio runtime.
    pub fn new<S: SignalClient, M: MediaEngine>(config: CallConfig, signal: S, media: M) -> Self {
        Self::with_policy(config, crate::call::DefaultPolicy, signal, media)
    }

    /// Like [`new`](Self::new), and a [`NotificationStream`] subscribed before the task
    /// starts: it has every notification from the first one on, the link's first
    /// `Connected` (or `Failed`) included, which a [`subscribe`](Self::subscribe) right after
    /// `new` can miss on a multi-threaded runtime.
    pub fn new_subscribed<S: SignalClient, M: MediaEngine>(
        config: CallConfig,
        signal: S,
        media: M,
    ) -> (Self, NotificationStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        let api = Self::start(config, crate::call::DefaultPolicy, signal, media, vec![tx]);
        (api, NotificationStream::new(rx))
    }

    /// Like [`new`](Self::new), with app hooks ([`CallPolicy`]).
    pub fn with_policy<S: SignalClient, M: MediaEngine>(
        config: CallConfig,
        policy: impl CallPolicy,
        signal: S,
        media: M,
    ) -> Self {
        Self::start(config, policy, signal, media, Vec::new())
    }

    /// Spawns the task with `subscribers` already listening.
    fn start<S: SignalClient, M: MediaEngine>(
        config: CallConfig,
        policy: impl CallPolicy,
        signal: S,
        media: M,
        subscribers: Vec<mpsc::UnboundedSender<Notification>>,
    ) -> Self {
        let user = config.user_id.clone();
        let now = tokio::time::Instant::now().into_std();
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let mut machine = CallMachine::new(config, now, unix_ms);
        machine.set_reports_frames(media.reports_frames());
        machine.set_room_scope(signal.room_scope());
        machine.set_policy(Box::new(policy));
        let (tx, rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(CallState::Idle);
        let (link_tx, link_rx) = watch::channel(signal.link_state());
        let subscribers: Subscribers = Arc::new(Mutex::new(subscribers));
        let driver = Driver {
            machine,
            signal,
            media: MediaLane::new(media),
            requests: rx,
            state: state_tx,
            link: link_tx,
            subscribers: subscribers.clone(),
            timer: crate::deadline::Deadline::new(),
        };
        tokio::spawn(driver.run());
        Self {
            requests: tx,
            state: state_rx,
            link: link_rx,
            subscribers,
            user,
        }
    }

    /// Sends a request and waits for its answer.
    async fn ask<T>(&self, req: impl FnOnce(Reply<T>) -> Request) -> Result<T, CallApiError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(req(tx))
            .map_err(|_| CallApiError::Shutdown)?;
        rx.await.map_err(|_| CallApiError::Shutdown)?
    }

    /// Sends a request that cannot fail and waits for its answer.
    async fn query<T>(
        &self,
        req: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, CallApiError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(req(tx))
            .map_err(|_| CallApiError::Shutdown)?;
        rx.await.map_err(|_| CallApiError::Shutdown)
    }

    async fn command(&self, cmd: Command) -> Result<(), CallApiError> {
        self.ask(|tx| Request::Command(cmd, tx)).await
    }

    /// The local user.
    pub fn user_id(&self) -> &UserId {
        &self.user
    }

    /// A new stream of every notification from now on. (The task runs from the moment the
    /// `CallApi` exists: for a stream that misses nothing, use
    /// [`new_subscribed`](Self::new_subscribed).)
    pub fn subscribe(&self) -> NotificationStream {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(tx);
        NotificationStream::new(rx)
    }

    /// The current state.
    pub fn state(&self) -> CallState {
        *self.state.borrow()
    }

    /// A `watch` of the state.
    pub fn state_watch(&self) -> watch::Receiver<CallState> {
        self.state.clone()
    }

    /// The signaling link's state, as last reported in a [`Notification::Link`](crate::call::Notification::Link).
    ///
    /// The task starts connecting as soon as the `CallApi` is created, so on a multi-threaded
    /// runtime the link can come up before a [`subscribe`](Self::subscribe) stream exists;
    /// this (or [`link_watch`](Self::link_watch)) tells the current state without a race, and
    /// [`new_subscribed`](Self::new_subscribed) gives a stream that has every change.
    pub fn link_state(&self) -> LinkState {
        self.link.borrow().clone()
    }

    /// A `watch` of the link's state: `link_watch().wait_for(LinkState::is_connected)` waits
    /// for the link whether or not it came up already.
    pub fn link_watch(&self) -> watch::Receiver<LinkState> {
        self.link.clone()
    }

    /// Becomes reachable in `Prepared` (or changes the room). Fails with `Busy` during a call.
    pub async fn prepare(&self, config: PrepareConfig) -> Result<(), CallApiError> {
        self.command(Command::Prepare(config)).await
    }

    /// Calls `remote`; returns the new call's id.
    pub async fn call(&self, remote: &str, call_type: CallType) -> Result<CallId, CallApiError> {
        self.call_with_extension(remote, call_type, Extension::new())
            .await
    }

    /// Calls `remote` with extension data (merged over the prepare extension).
    pub async fn call_with_extension(
        &self,
        remote: &str,
        call_type: CallType,
        extension: Extension,
    ) -> Result<CallId, CallApiError> {
        let remote = UserId::new(remote)
            .map_err(|e| CommandError::InvalidArgument(format!("callee: {e}")))?;
        let call = PlaceCall {
            remote,
            call_type,
            extension,
        };
        self.ask(|tx| Request::Call(call, tx)).await
    }

    /// Calls several users at once (a group call, `docs/PROTOCOL.md` §10); returns the new
    /// call's id. At most `CallConfig::max_invitees` users (9 by default). Member changes
    /// arrive as [`Notification::MemberChanged`](crate::call::Notification::MemberChanged).
    pub async fn call_group(
        &self,
        users: &[&str],
        call_type: CallType,
    ) -> Result<CallId, CallApiError> {
        self.call_group_with_extension(users, call_type, Extension::new())
            .await
    }

    /// Like [`call_group`](Self::call_group), with extension data (merged over the prepare
    /// extension).
    pub async fn call_group_with_extension(
        &self,
        users: &[&str],
        call_type: CallType,
        extension: Extension,
    ) -> Result<CallId, CallApiError> {
        let call = PlaceGroupCall {
            users: user_ids(users)?,
            call_type,
            extension,
        };
        self.ask(|tx| Request::CallGroup(call, tx)).await
    }

    /// Invites more users into the group call this device is in.
    pub async fn invite(&self, users: &[&str]) -> Result<(), CallApiError> {
        let users = user_ids(users)?;
        self.command(Command::Invite { users }).await
    }

    /// Withdraws this device's pending invitations of `users` in the group call.
    pub async fn cancel_invites(&self, users: &[&str]) -> Result<(), CallApiError> {
        let users = user_ids(users)?;
        self.command(Command::CancelInvites { users }).await
    }

    /// Leaves the call; in a group call the others stay in it (in a 1:1 call, as `hangup`).
    pub async fn leave(&self, reason: Option<String>) -> Result<(), CallApiError> {
        self.command(Command::Leave { reason }).await
    }

    /// Ends the call for everyone (in a 1:1 call, as `hangup`).
    pub async fn end(&self, reason: Option<String>) -> Result<(), CallApiError> {
        self.command(Command::End { reason }).await
    }

    /// Joins a group call again by its id, after declining, missing or leaving it.
    pub async fn join(&self, call_id: CallId) -> Result<(), CallApiError> {
        self.command(Command::Join { call_id }).await
    }

    /// A snapshot of the group call's roster (empty outside a group call).
    pub async fn members(&self) -> Result<Vec<Member>, CallApiError> {
        self.query(Request::Members).await
    }

    /// Answers the ringing call.
    pub async fn accept(&self) -> Result<(), CallApiError> {
        self.command(Command::Accept).await
    }

    /// Declines the ringing call.
    pub async fn reject(&self, reason: Option<String>) -> Result<(), CallApiError> {
        self.command(Command::Reject { reason }).await
    }

    /// Withdraws the outgoing call.
    pub async fn cancel(&self) -> Result<(), CallApiError> {
        self.command(Command::Cancel { reason: None }).await
    }

    /// Leaves the call (while calling, this cancels or declines).
    pub async fn hangup(&self, reason: Option<String>) -> Result<(), CallApiError> {
        self.command(Command::Hangup { reason }).await
    }

    /// Sends app data to the peer of the current call (reliably).
    pub async fn send_message(&self, data: impl Into<String>) -> Result<(), CallApiError> {
        self.command(Command::SendMessage { data: data.into() })
            .await
    }

    /// Sends DTMF digits (`0-9 * # A-D`) to the peer of the current call.
    pub async fn send_dtmf(&self, digits: &str) -> Result<(), CallApiError> {
        self.command(Command::SendDtmf {
            digits: digits.to_owned(),
        })
        .await
    }

    /// Timing diagnostics of the current call, or of the last one.
    pub async fn call_timings(&self) -> Result<Option<CallTimings>, CallApiError> {
        self.query(Request::Timings).await
    }

    /// The call in progress, if any.
    pub async fn call_info(&self) -> Result<Option<CallInfo>, CallApiError> {
        self.query(Request::Info).await
    }

    /// Asks the media engine for figures; they arrive as a `MediaStats` notification.
    pub async fn media_stats(&self) -> Result<(), CallApiError> {
        self.ask(Request::MediaStats).await
    }

    /// Hands a fresh token to the signaling backend (renewal on the live link).
    pub async fn renew_token(&self, token: impl Into<String>) -> Result<(), CallApiError> {
        let token = token.into();
        self.ask(|tx| Request::RenewToken(token, tx)).await
    }

    /// Closes the signaling link while the app is in the background. During a call, the link
    /// stays up and closes when the call ends (once the peer has acknowledged the call's last
    /// messages, such as the hangup). [`resume`](Self::resume) reconnects.
    pub async fn pause(&self) -> Result<(), CallApiError> {
        // What a pause means for the link (and for a call in progress) is the machine's
        // decision; it answers with `Output::Link`.
        self.command(Command::Pause).await
    }

    /// Reconnects after [`pause`](Self::pause) or [`disconnect`](Self::disconnect) (and cancels
    /// a pause still waiting for a call to end).
    pub async fn resume(&self) -> Result<(), CallApiError> {
        self.command(Command::Resume).await
    }

    /// Hangs up any call and ends the signaling session; with `clear_saved_data`, also forgets
    /// tokens, pending messages and the memory of past calls.
    pub async fn disconnect(&self, clear_saved_data: bool) -> Result<(), CallApiError> {
        self.command(Command::Disconnect { clear_saved_data }).await
    }

    /// Hangs up any call, goes `Idle`, disconnects and clears all saved data.
    pub async fn reset(&self) -> Result<(), CallApiError> {
        self.command(Command::Reset).await
    }

    /// Replaces the signaling credentials. Switching between token and access-link credentials
    /// on a live session is refused: [`disconnect`](Self::disconnect) first.
    pub async fn set_credentials(
        &self,
        credentials: crate::connection::Credentials,
    ) -> Result<(), CallApiError> {
        self.ask(|tx| Request::SetCredentials(credentials, tx))
            .await
    }

    /// Ends any call and goes back to `Idle` (unreachable until the next `prepare`).
    pub async fn deinitialize(&self) -> Result<(), CallApiError> {
        self.command(Command::Deinitialize).await
    }

    /// Hangs up any call, closes the signaling client and stops the task. Every handle then
    /// returns [`CallApiError::Shutdown`].
    pub async fn shutdown(&self) -> Result<(), CallApiError> {
        self.query(Request::Shutdown).await
    }
}

/// Parses user ids given by the app.
fn user_ids(users: &[&str]) -> Result<Vec<UserId>, CallApiError> {
    users
        .iter()
        .map(|u| {
            UserId::new(*u)
                .map_err(|e| CommandError::InvalidArgument(format!("user {u:?}: {e}")).into())
        })
        .collect()
}
