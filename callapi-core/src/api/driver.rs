//! The task that owns a [`CallMachine`] and performs its outputs.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::media_lane::{MediaLane, MediaOp};
use crate::call::{
    CallInfo, CallMachine, CallState, CallTimings, Command, CommandError, Input, LinkCommand,
    MediaCommand, Notification, Output,
};
use crate::connection::Credentials;
use crate::deadline::Deadline;
use crate::error::CallApiError;
use crate::protocol::{CallId, CallType, Extension, Member, UserId};
use crate::signal::{LinkState, SignalClient, SignalEvent};

/// Where a request's answer goes.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, CallApiError>>;

/// A call to place (`CallApi::call`).
#[derive(Debug)]
pub(crate) struct PlaceCall {
    pub remote: UserId,
    pub call_type: CallType,
    pub extension: Extension,
}

/// A group call to place (`CallApi::call_group`).
#[derive(Debug)]
pub(crate) struct PlaceGroupCall {
    pub users: Vec<UserId>,
    pub call_type: CallType,
    pub extension: Extension,
}

/// A request from a handle to the driver task, with the channel for its typed answer.
#[derive(Debug)]
pub(crate) enum Request {
    Command(Command, Reply<()>),
    Call(PlaceCall, Reply<CallId>),
    CallGroup(PlaceGroupCall, Reply<CallId>),
    Members(oneshot::Sender<Vec<Member>>),
    Timings(oneshot::Sender<Option<CallTimings>>),
    Info(oneshot::Sender<Option<CallInfo>>),
    MediaStats(Reply<()>),
    RenewToken(String, Reply<()>),
    SetCredentials(Credentials, Reply<()>),
    /// Answered once the task has closed everything.
    Shutdown(oneshot::Sender<()>),
}

/// Subscribers of notifications.
pub(crate) type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Notification>>>>;

pub(crate) struct Driver<S> {
    pub machine: CallMachine,
    pub signal: S,
    /// The media engine, beside the loop: never awaited by it.
    pub media: MediaLane,
    pub requests: mpsc::UnboundedReceiver<Request>,
    pub state: watch::Sender<CallState>,
    /// The link's state as last notified.
    pub link: watch::Sender<LinkState>,
    pub subscribers: Subscribers,
    /// The machine's next deadline.
    pub timer: Deadline,
}

enum Step {
    Request(Option<Request>),
    Signal(Option<SignalEvent>),
    Media(Option<Input>),
    Timer,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl<S: SignalClient> Driver<S> {
    pub(crate) async fn run(mut self) {
        let mut signal_open = true;
        let mut media_open = true;
        // The shutdown request, answered when everything is closed.
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        loop {
            let step = tokio::select! {
                req = self.requests.recv() => Step::Request(req),
                ev = self.signal.next_event(), if signal_open => Step::Signal(ev),
                input = self.media.next_input(), if media_open => Step::Media(input),
                () = self.timer.wait(self.machine.poll_timeout()) => Step::Timer,
            };
            // Everything the step causes is logged under a span carrying the user and the call.
            let span = tracing::info_span!(
                "callapi",
                user = %self.machine.user_id(),
                call_id = tracing::field::Empty
            );
            // Only when someone listens: the call's info is built (strings cloned) to read its id.
            if !span.is_disabled() {
                if let Some(info) = self.machine.call_info() {
                    span.record("call_id", tracing::field::display(info.call_id));
                }
            }
            let stop = self
                .step(step, &mut signal_open, &mut media_open, &mut shutdown)
                .instrument(span)
                .await;
            if stop {
                break;
            }
        }
        self.signal.close().await;
        if let Some(info) = self.machine.call_info() {
            self.media.send(MediaOp::Command(MediaCommand::Leave {
                call_id: info.call_id,
            }));
        }
        self.media.finish().await;
        self.subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        if let Some(reply) = shutdown {
            let _ = reply.send(());
        }
    }

    /// Handles one step and performs its outputs; returns whether the driver must stop.
    async fn step(
        &mut self,
        step: Step,
        signal_open: &mut bool,
        media_open: &mut bool,
        closing: &mut Option<oneshot::Sender<()>>,
    ) -> bool {
        match step {
            Step::Request(None) => return true,
            Step::Request(Some(req)) => {
                if let Some(reply) = self.on_request(req).await {
                    // Answered once the task has closed everything (`run`).
                    *closing = Some(reply);
                    return true;
                }
            }
            Step::Signal(None) => *signal_open = false,
            Step::Signal(Some(ev)) => {
                let input = match ev {
                    SignalEvent::Message(env) => Some(Input::Envelope(env)),
                    SignalEvent::Invalid(err) => Some(Input::InvalidEnvelope(err)),
                    SignalEvent::Link(state) => Some(Input::Link(state)),
                    SignalEvent::TokenWillExpire => {
                        tracing::warn!("token expires soon and this client cannot renew it");
                        None
                    }
                };
                if let Some(input) = input {
                    self.machine.handle_input(input, now());
                }
            }
            Step::Media(None) => *media_open = false,
            Step::Media(Some(input)) => self.machine.handle_input(input, now()),
            Step::Timer => self.machine.handle_timeout(now()),
        }
        self.flush().await;
        false
    }

    /// Handles one request and answers it once the outputs it caused are performed; a shutdown
    /// answers nothing yet and hands its reply back.
    async fn on_request(&mut self, req: Request) -> Option<oneshot::Sender<()>> {
        match req {
            Request::Command(cmd, reply) => {
                let result = self.machine.handle_command(cmd, now());
                self.flush().await;
                let _ = reply.send(result.map_err(CallApiError::from));
            }
            Request::Call(call, reply) => {
                let result = self
                    .machine
                    .call(call.remote, call.call_type, call.extension, now());
                self.flush().await;
                let _ = reply.send(result.map_err(CallApiError::from));
            }
            Request::CallGroup(call, reply) => {
                let result =
                    self.machine
                        .call_group(call.users, call.call_type, call.extension, now());
                self.flush().await;
                let _ = reply.send(result.map_err(CallApiError::from));
            }
            Request::Members(reply) => {
                let members = self
                    .machine
                    .members()
                    .map(|r| r.records().to_vec())
                    .unwrap_or_default();
                let _ = reply.send(members);
            }
            Request::Timings(reply) => {
                let _ = reply.send(self.machine.call_timings());
            }
            Request::Info(reply) => {
                let _ = reply.send(self.machine.call_info());
            }
            Request::MediaStats(reply) => {
                let result = match self.machine.call_info() {
                    Some(info) => {
                        // The figures arrive as a `MediaEvent::Stats` notification.
                        self.media.send(MediaOp::Stats(info.call_id));
                        Ok(())
                    }
                    None => Err(CommandError::InvalidState {
                        action: "get media stats",
                        state: self.machine.state(),
                    }
                    .into()),
                };
                let _ = reply.send(result);
            }
            Request::RenewToken(token, reply) => {
                let result = self.signal.renew_token(token).await;
                let _ = reply.send(result.map_err(CallApiError::from));
            }
            Request::SetCredentials(credentials, reply) => {
                let result = self.signal.set_credentials(credentials).await;
                if result.is_ok() {
                    self.machine.set_room_scope(self.signal.room_scope());
                }
                self.flush().await;
                let _ = reply.send(result.map_err(CallApiError::from));
            }
            Request::Shutdown(reply) => {
                if self.machine.call_info().is_some() {
                    let _ = self.machine.handle_command(
                        Command::Hangup {
                            reason: Some("shutdown".into()),
                        },
                        now(),
                    );
                }
                self.flush().await;
                return Some(reply);
            }
        }
        None
    }

    /// Performs every pending output of the machine.
    async fn flush(&mut self) {
        while let Some(out) = self.machine.poll_output() {
            match out {
                Output::Send(env) => {
                    if let Err(err) = self.signal.send(env).await {
                        // The reliable layer retransmits; nothing else to do here.
                        tracing::debug!(%err, "backend did not take an envelope");
                    }
                }
                // Queued for the media lane: the loop goes on at once.
                Output::Media(cmd) => self.media.send(MediaOp::Command(cmd)),
                Output::Notify(n) => self.publish(n),
                Output::Link(LinkCommand::Pause) => self.signal.pause().await,
                Output::Link(LinkCommand::Resume) => self.signal.resume().await,
                Output::Link(LinkCommand::Disconnect { clear_saved_data }) => {
                    self.signal.disconnect(clear_saved_data).await
                }
            }
        }
    }

    fn publish(&mut self, n: Notification) {
        if let Notification::StateChanged(change) = &n {
            self.state.send_replace(change.state);
        }
        if let Notification::Link(link) = &n {
            self.link.send_replace(link.clone());
        }
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subs.retain(|tx| tx.send(n.clone()).is_ok());
    }
}
