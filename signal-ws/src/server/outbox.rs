//! A socket's outbound queue, bounded in frames and in bytes.
//!
//! Routing puts frames in with [`Outbox::try_send`], which never waits; the socket's task takes
//! them out with [`Inbox::recv`] and reports each one [`written`](Inbox::written) once the
//! socket took it. Bytes count from the moment a frame is queued until it has been handed to
//! the kernel, so what one socket holds in the server's memory for writing never exceeds the
//! budget (`--max-write-buffer-bytes`). A frame that would exceed it marks the socket as a slow
//! consumer: the frame is dropped and the socket's task closes the connection with
//! `4010` ([`Inbox::overflowed`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The queue holds its maximum number of frames; the frame was dropped.
    Full,
    /// The frame would take the socket over its byte budget (or it already went over): the
    /// frame was dropped and the socket is being closed as a slow consumer.
    Overflow,
    /// The frame does not fit the byte budget now; nothing was marked (see
    /// [`Outbox::try_send_within_budget`]).
    NoRoom,
    /// The socket's task is gone.
    Closed,
}

#[derive(Debug)]
struct Budget {
    pending: AtomicUsize,
    max: usize,
    overflowed: AtomicBool,
    notify: Notify,
}

impl Budget {
    /// Reserves `len` bytes; `false` (nothing reserved) when they do not fit.
    fn reserve(&self, len: usize) -> bool {
        let mut cur = self.pending.load(Ordering::Acquire);
        loop {
            let Some(next) = cur.checked_add(len).filter(|n| *n <= self.max) else {
                return false;
            };
            match self
                .pending
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    fn release(&self, len: usize) {
        self.pending.fetch_sub(len, Ordering::AcqRel);
    }
}

/// The routing side of a socket's queue (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Utf8Bytes>,
    budget: Arc<Budget>,
}

/// The socket task's side of the queue.
#[derive(Debug)]
pub(crate) struct Inbox {
    rx: mpsc::Receiver<Utf8Bytes>,
    budget: Arc<Budget>,
}

/// A queue of at most `frames` frames and `max_bytes` bytes.
pub(crate) fn outbox(frames: usize, max_bytes: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(frames.max(1));
    let budget = Arc::new(Budget {
        pending: AtomicUsize::new(0),
        max: max_bytes,
        overflowed: AtomicBool::new(false),
        notify: Notify::new(),
    });
    (
        Outbox {
            tx,
            budget: budget.clone(),
        },
        Inbox { rx, budget },
    )
}

impl Outbox {
    /// Queues a live frame. Over the byte budget the socket becomes a slow consumer.
    pub(crate) fn try_send(&self, text: Utf8Bytes) -> Result<(), Refused> {
        if self.budget.overflowed.load(Ordering::Acquire) {
            return Err(Refused::Overflow);
        }
        match self.send_reserved(text) {
            Err(Refused::NoRoom) => {
                self.budget.overflowed.store(true, Ordering::Release);
                self.budget.notify.notify_waiters();
                Err(Refused::Overflow)
            }
            other => other,
        }
    }

    /// Queues a frame only if it fits the byte budget now, and never marks the socket
    /// otherwise: for the offline queue's envelopes, which stay queued when they do not fit.
    pub(crate) fn try_send_within_budget(&self, text: Utf8Bytes) -> Result<(), Refused> {
        if self.budget.overflowed.load(Ordering::Acquire) {
            return Err(Refused::Overflow);
        }
        self.send_reserved(text)
    }

    fn send_reserved(&self, text: Utf8Bytes) -> Result<(), Refused> {
        let len = text.len();
        if !self.budget.reserve(len) {
            return Err(Refused::NoRoom);
        }
        self.tx.try_send(text).map_err(|e| {
            self.budget.release(len);
            match e {
                mpsc::error::TrySendError::Full(_) => Refused::Full,
                mpsc::error::TrySendError::Closed(_) => Refused::Closed,
            }
        })
    }

    /// Bytes queued or being written.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.budget.pending.load(Ordering::Acquire)
    }
}

impl Inbox {
    /// The next frame; `None` once every [`Outbox`] is gone (the device was replaced).
    pub(crate) async fn recv(&mut self) -> Option<Utf8Bytes> {
        self.rx.recv().await
    }

    /// A frame of `len` bytes taken by [`recv`](Self::recv) has reached the socket (or was
    /// given up): its bytes leave the budget.
    pub(crate) fn written(&self, len: usize) {
        self.budget.release(len);
    }

    /// A handle that resolves once the socket went over its byte budget.
    pub(crate) fn overflow_signal(&self) -> OverflowSignal {
        OverflowSignal(self.budget.clone())
    }

    /// Drops every queued frame (the socket is closing) and releases its bytes.
    pub(crate) fn discard(&mut self) {
        while let Ok(text) = self.rx.try_recv() {
            self.budget.release(text.len());
        }
    }
}

/// Resolves when its socket went over its byte budget (see [`Inbox::overflow_signal`]).
#[derive(Debug, Clone)]
pub(crate) struct OverflowSignal(Arc<Budget>);

impl OverflowSignal {
    /// Whether the socket went over its budget.
    pub(crate) fn is_set(&self) -> bool {
        self.0.overflowed.load(Ordering::Acquire)
    }

    /// Waits until the socket goes over its budget (at once if it did).
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frame(len: usize) -> Utf8Bytes {
        Utf8Bytes::from("x".repeat(len))
    }

    #[tokio::test]
    async fn bytes_count_until_written() {
        let (out, mut inbox) = outbox(8, 100);
        assert_eq!(out.try_send(frame(60)), Ok(()));
        assert_eq!(out.pending(), 60);
        let got = inbox.recv().await.unwrap();
        // Taken out but not yet written: still counted.
        assert_eq!(out.pending(), 60);
        inbox.written(got.len());
        assert_eq!(out.pending(), 0);
        assert!(!inbox.overflow_signal().is_set());
    }

    #[tokio::test]
    async fn going_over_the_budget_marks_a_slow_consumer_and_drops_the_frame() {
        let (out, mut inbox) = outbox(8, 100);
        let signal = inbox.overflow_signal();
        assert_eq!(out.try_send(frame(60)), Ok(()));
        assert_eq!(out.try_send(frame(60)), Err(Refused::Overflow));
        assert!(signal.is_set());
        signal.wait().await;
        // Once marked, nothing more is queued, small or not.
        assert_eq!(out.try_send(frame(1)), Err(Refused::Overflow));
        assert_eq!(out.pending(), 60);
        inbox.discard();
        assert_eq!(out.pending(), 0);
    }

    #[tokio::test]
    async fn the_wait_wakes_when_the_budget_is_exceeded_later() {
        let (out, inbox) = outbox(8, 10);
        let signal = inbox.overflow_signal();
        let waiter = tokio::spawn(async move { signal.wait().await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        assert_eq!(out.try_send(frame(11)), Err(Refused::Overflow));
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn a_full_frame_count_drops_without_marking() {
        let (out, inbox) = outbox(1, 100);
        assert_eq!(out.try_send(frame(1)), Ok(()));
        assert_eq!(out.try_send(frame(1)), Err(Refused::Full));
        assert_eq!(out.pending(), 1);
        assert!(!inbox.overflow_signal().is_set());
    }

    #[tokio::test]
    async fn offline_delivery_that_does_not_fit_marks_nothing() {
        let (out, inbox) = outbox(8, 100);
        assert_eq!(out.try_send_within_budget(frame(80)), Ok(()));
        assert_eq!(out.try_send_within_budget(frame(30)), Err(Refused::NoRoom));
        assert!(!inbox.overflow_signal().is_set());
        assert_eq!(out.try_send_within_budget(frame(20)), Ok(()));
    }

    #[tokio::test]
    async fn a_closed_socket_releases_the_bytes() {
        let (out, inbox) = outbox(8, 100);
        drop(inbox);
        assert_eq!(out.try_send(frame(10)), Err(Refused::Closed));
        assert_eq!(out.pending(), 0);
    }
}
