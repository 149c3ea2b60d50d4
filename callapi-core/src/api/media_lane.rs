//! The media engine beside the `CallApi` loop, in the same task.
//!
//! A WebRTC join or `set_remote_description` can take seconds; the loop must keep handling
//! acks, timers and envelopes meanwhile. So the loop never awaits the engine: it hands each
//! [`MediaCommand`] to the lane ([`MediaLane::send`]) and goes on. The lane is a future the
//! loop polls alongside its other sources; it owns the engine, runs the commands one after
//! another in the order given (a join completes before the payloads that follow it are handed
//! over), and reads the engine's events whenever no command is running. A command's failure and
//! every engine event come back to the loop as machine [`Input`]s ([`MediaLane::next_input`]).

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;

use crate::call::{Input, MediaCommand};
use crate::media::{MediaEngine, MediaError, MediaEvent, MediaPeer};
use crate::protocol::CallId;

/// What the loop asks of the engine.
#[derive(Debug)]
pub(crate) enum MediaOp {
    /// One of the machine's commands.
    Command(MediaCommand),
    /// A [`MediaEvent::Stats`] of the call.
    Stats(CallId),
}

/// The loop's side of the lane.
pub(crate) struct MediaLane {
    ops: Option<mpsc::UnboundedSender<MediaOp>>,
    inputs: mpsc::UnboundedReceiver<Input>,
    runner: Pin<Box<dyn Future<Output = ()> + Send>>,
    running: bool,
}

impl MediaLane {
    /// A lane that owns `media`.
    pub(crate) fn new<M: MediaEngine>(media: M) -> Self {
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        Self {
            ops: Some(ops_tx),
            inputs: in_rx,
            runner: Box::pin(run(media, ops_rx, in_tx)),
            running: true,
        }
    }

    /// Queues an operation; it runs when the lane is next polled (never waits).
    pub(crate) fn send(&self, op: MediaOp) {
        if let Some(ops) = &self.ops {
            let _ = ops.send(op);
        }
    }

    /// Drives the engine and returns the next input for the machine; `None` once the engine
    /// will never report again (and no failure is left to report). Cancel-safe: the engine's
    /// work lives in the lane, not in this future.
    pub(crate) async fn next_input(&mut self) -> Option<Input> {
        loop {
            if !self.running {
                return self.inputs.recv().await;
            }
            tokio::select! {
                biased;
                input = self.inputs.recv() => return input,
                () = &mut self.runner => self.running = false,
            }
        }
    }

    /// Runs what is queued (a last `Leave`, say) to its end, then stops the engine's lane.
    pub(crate) async fn finish(&mut self) {
        self.ops = None;
        if self.running {
            (&mut self.runner).await;
            self.running = false;
        }
    }
}

/// The lane: commands first, in order; the engine's events while none is queued.
async fn run<M: MediaEngine>(
    mut media: M,
    mut ops: mpsc::UnboundedReceiver<MediaOp>,
    inputs: mpsc::UnboundedSender<Input>,
) {
    let mut events_open = true;
    loop {
        let input = tokio::select! {
            biased;
            op = ops.recv() => match op {
                Some(op) => perform(&mut media, op).await,
                None => return,
            },
            ev = media.next_event(), if events_open => match ev {
                Some(ev) => Some(Input::Media(ev)),
                None => {
                    events_open = false;
                    None
                }
            },
        };
        if let Some(input) = input {
            if inputs.send(input).is_err() {
                return;
            }
        }
    }
}

async fn perform<M: MediaEngine>(media: &mut M, op: MediaOp) -> Option<Input> {
    match op {
        MediaOp::Command(MediaCommand::Join(req)) => {
            let call_id = req.call_id;
            media.join(req).await.err().map(|e| Input::MediaJoinFailed {
                call_id,
                message: e.to_string(),
            })
        }
        MediaOp::Command(MediaCommand::UpdatePlan { call_id, plan }) => media
            .update_plan(call_id, plan)
            .await
            .err()
            .map(|e| failed(call_id, &e)),
        MediaOp::Command(MediaCommand::RemoteSignal { call_id, payload }) => media
            .remote_signal(call_id, payload)
            .await
            .err()
            .map(|e| failed(call_id, &e)),
        MediaOp::Command(MediaCommand::Leave { call_id }) => {
            media.leave(call_id).await;
            None
        }
        MediaOp::Command(MediaCommand::AddPeer {
            call_id,
            peer,
            offerer,
        }) => media
            .add_peer(call_id, peer.clone(), offerer)
            .await
            .err()
            .map(|e| peer_failed(call_id, peer, &e)),
        MediaOp::Command(MediaCommand::RemovePeer { call_id, peer }) => {
            media.remove_peer(call_id, peer).await;
            None
        }
        MediaOp::Command(MediaCommand::PeerSignal {
            call_id,
            peer,
            payload,
        }) => media
            .peer_signal(call_id, peer.clone(), payload)
            .await
            .err()
            .map(|e| peer_failed(call_id, peer, &e)),
        MediaOp::Stats(call_id) => {
            if let Err(err) = media.stats(call_id).await {
                tracing::warn!(%call_id, %err, "media stats unavailable");
            }
            None
        }
    }
}

fn peer_failed(call_id: CallId, peer: MediaPeer, err: &MediaError) -> Input {
    Input::Media(MediaEvent::PeerFailed {
        call_id,
        peer,
        message: err.to_string(),
    })
}

fn failed(call_id: CallId, err: &MediaError) -> Input {
    Input::Media(MediaEvent::Failed {
        call_id,
        message: err.to_string(),
    })
}
