//! The task that owns a [`CallMachine`] and performs its outputs.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

use super::media_lane::{MediaLane, MediaOp};
use crate::call::{
    CallInfo, CallMachine, CallState, CallTimings, Command, Input, LinkCommand, MediaCommand,
    Notification, Output,
};
use crate::connection::Credentials;
use crate::deadline::Deadline;
use crate::error::CallApiError;
use crate::protocol::CallId;
use crate::signal::{SignalClient, SignalEvent};

/// What a request returns.
#[derive(Debug)]
pub(crate) enum Reply {
    Done,
    CallId(CallId),
    Timings(Option<CallTimings>),
    Info(Option<CallInfo>),
}

/// A request from a handle to the driver task.
#[derive(Debug)]
pub(crate) enum Request {
    Machine(Command),
    Timings,
    Info,
    MediaStats,
    RenewToken(String),
    SetCredentials(Credentials),
    Shutdown,
}

/// Where a request's answer goes.
pub(crate) type ReplyTx = oneshot::Sender<Result<Reply, CallApiError>>;

pub(crate) type Envelope = (Request, ReplyTx);

/// Subscribers of notifications.
pub(crate) type Subscribers = Arc<Mutex<Vec<mpsc::UnboundedSender<Notification>>>>;

pub(crate) struct Driver<S> {
    pub machine: CallMachine,
    pub signal: S,
    /// The media engine, beside the loop: never awaited by it.
    pub media: MediaLane,
    pub requests: mpsc::UnboundedReceiver<Envelope>,
    pub state: watch::Sender<CallState>,
    pub subscribers: Subscribers,
    /// The machine's next deadline.
    pub timer: Deadline,
}

enum Step {
    Request(Option<Envelope>),
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
        let mut shutdown: Option<ReplyTx> = None;
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
            if let Some(info) = self.machine.call_info() {
                span.record("call_id", tracing::field::display(info.call_id));
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
            let _ = reply.send(Ok(Reply::Done));
        }
    }

    /// Handles one step and performs its outputs; returns whether the driver must stop.
    async fn step(
        &mut self,
        step: Step,
        signal_open: &mut bool,
        media_open: &mut bool,
        closing: &mut Option<ReplyTx>,
    ) -> bool {
        match step {
            Step::Request(None) => return true,
            Step::Request(Some((req, reply))) => {
                let shutdown = matches!(req, Request::Shutdown);
                let result = self.on_request(req).await;
                self.flush().await;
                if shutdown {
                    // Answered once the task has closed everything (`run`).
                    *closing = Some(reply);
                    return true;
                }
                let _ = reply.send(result);
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
                    let _ = self.machine.handle_input(input, now());
                }
            }
            Step::Media(None) => *media_open = false,
            Step::Media(Some(input)) => {
                let _ = self.machine.handle_input(input, now());
            }
            Step::Timer => self.machine.handle_timeout(now()),
        }
        self.flush().await;
        false
    }

    async fn on_request(&mut self, req: Request) -> Result<Reply, CallApiError> {
        match req {
            Request::Machine(cmd) => {
                let is_call = matches!(cmd, Command::Call { .. });
                self.machine.handle_input(Input::Command(cmd), now())?;
                match (is_call, self.machine.call_info()) {
                    (true, Some(info)) => Ok(Reply::CallId(info.call_id)),
                    _ => Ok(Reply::Done),
                }
            }
            Request::Timings => Ok(Reply::Timings(self.machine.call_timings())),
            Request::Info => Ok(Reply::Info(self.machine.call_info())),
            Request::MediaStats => match self.machine.call_info() {
                Some(info) => {
                    // The figures arrive as a `MediaEvent::Stats` notification.
                    self.media.send(MediaOp::Stats(info.call_id));
                    Ok(Reply::Done)
                }
                None => Err(CallApiError::InvalidState {
                    action: "get media stats",
                    state: self.machine.state(),
                }),
            },
            Request::RenewToken(token) => {
                self.signal.renew_token(token).await?;
                Ok(Reply::Done)
            }
            Request::SetCredentials(credentials) => {
                self.signal.set_credentials(credentials).await?;
                self.machine.set_room_scope(self.signal.room_scope());
                Ok(Reply::Done)
            }
            Request::Shutdown => {
                if self.machine.call_info().is_some() {
                    let _ = self.machine.handle_input(
                        Input::Command(Command::Hangup {
                            reason: Some("shutdown".into()),
                        }),
                        now(),
                    );
                }
                Ok(Reply::Done)
            }
        }
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
        let mut subs = self
            .subscribers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        subs.retain(|tx| tx.send(n.clone()).is_ok());
    }
}
