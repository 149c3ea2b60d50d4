//! A socket's outbound queue, bounded in frames and in bytes.
//!
//! Routing puts frames in with [`Outbox::try_send`], which never waits; the socket's task takes
//! them out with [`Inbox::recv`] and reports each one [`written`](Inbox::written) once the
//! socket took it. Bytes count from the moment a frame is queued until it has been handed to
//! the kernel, so what one socket holds in the server's memory for writing never exceeds the
//! budget (`--max-write-buffer-bytes`). A frame that would exceed it marks the socket as a slow
//! consumer: the frame is dropped and the socket's task closes the connection with
//! `4010` ([`Inbox::overflowed`]).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
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

/// The frames themselves. The queue allocates only while frames wait, and gives its memory
/// back once the socket has taken them all: an idle connection's queue costs nothing.
#[derive(Debug)]
struct Queue {
    frames: Mutex<VecDeque<Utf8Bytes>>,
    max_frames: usize,
    /// Wakes the socket's task: a frame arrived, or the last [`Outbox`] went.
    wake: Notify,
    /// Live [`Outbox`]es.
    senders: AtomicUsize,
    /// The [`Inbox`] is gone.
    closed: AtomicBool,
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Utf8Bytes>> {
        self.frames
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct Chan {
    queue: Queue,
    budget: Budget,
}

/// The routing side of a socket's queue (cheap to clone).
#[derive(Debug)]
pub(crate) struct Outbox {
    chan: Arc<Chan>,
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.chan.queue.senders.fetch_add(1, Ordering::AcqRel);
        Self {
            chan: self.chan.clone(),
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.chan.queue.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.chan.queue.wake.notify_one();
        }
    }
}

/// The socket task's side of the queue.
#[derive(Debug)]
pub(crate) struct Inbox {
    chan: Arc<Chan>,
}

impl Drop for Inbox {
    fn drop(&mut self) {
        self.chan.queue.closed.store(true, Ordering::Release);
        self.discard();
    }
}

/// A queue of at most `frames` frames and `max_bytes` bytes.
pub(crate) fn outbox(frames: usize, max_bytes: usize) -> (Outbox, Inbox) {
    let chan = Arc::new(Chan {
        queue: Queue {
            frames: Mutex::new(VecDeque::new()),
            max_frames: frames.max(1),
            wake: Notify::new(),
            senders: AtomicUsize::new(1),
            closed: AtomicBool::new(false),
        },
        budget: Budget {
            pending: AtomicUsize::new(0),
            max: max_bytes,
            overflowed: AtomicBool::new(false),
            notify: Notify::new(),
        },
    });
    (Outbox { chan: chan.clone() }, Inbox { chan })
}

impl Outbox {
    /// Queues a live frame. Over the byte budget the socket becomes a slow consumer.
    pub(crate) fn try_send(&self, text: Utf8Bytes) -> Result<(), Refused> {
        let budget = &self.chan.budget;
        if budget.overflowed.load(Ordering::Acquire) {
            return Err(Refused::Overflow);
        }
        match self.send_reserved(text) {
            Err(Refused::NoRoom) => {
                budget.overflowed.store(true, Ordering::Release);
                budget.notify.notify_waiters();
                Err(Refused::Overflow)
            }
            other => other,
        }
    }

    /// Queues a frame only if it fits the byte budget now, and never marks the socket
    /// otherwise: for the offline queue's envelopes, which stay queued when they do not fit.
    pub(crate) fn try_send_within_budget(&self, text: Utf8Bytes) -> Result<(), Refused> {
        if self.chan.budget.overflowed.load(Ordering::Acquire) {
            return Err(Refused::Overflow);
        }
        self.send_reserved(text)
    }

    fn send_reserved(&self, text: Utf8Bytes) -> Result<(), Refused> {
        let Chan { queue, budget } = &*self.chan;
        if queue.closed.load(Ordering::Acquire) {
            return Err(Refused::Closed);
        }
        let len = text.len();
        if !budget.reserve(len) {
            return Err(Refused::NoRoom);
        }
        {
            let mut frames = queue.lock();
            if frames.len() >= queue.max_frames {
                drop(frames);
                budget.release(len);
                return Err(Refused::Full);
            }
            frames.push_back(text);
        }
        queue.wake.notify_one();
        Ok(())
    }

    /// Bytes queued or being written.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.chan.budget.pending.load(Ordering::Acquire)
    }
}

impl Inbox {
    /// The next frame; `None` once every [`Outbox`] is gone (the device was replaced) and
    /// nothing is left. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<Utf8Bytes> {
        let queue = &self.chan.queue;
        loop {
            {
                let mut frames = queue.lock();
                if let Some(text) = frames.pop_front() {
                    if frames.is_empty() {
                        // Give the memory back between bursts.
                        *frames = VecDeque::new();
                    }
                    return Some(text);
                }
            }
            if queue.senders.load(Ordering::Acquire) == 0 {
                return None;
            }
            // `notify_one` keeps a permit when no one waits, so a frame queued between the
            // look above and this wait still wakes it.
            queue.wake.notified().await;
        }
    }

    /// A frame of `len` bytes taken by [`recv`](Self::recv) has reached the socket (or was
    /// given up): its bytes leave the budget.
    pub(crate) fn written(&self, len: usize) {
        self.chan.budget.release(len);
    }

    /// A handle that resolves once the socket went over its byte budget.
    pub(crate) fn overflow_signal(&self) -> OverflowSignal {
        OverflowSignal(self.chan.clone())
    }

    /// Drops every queued frame (the socket is closing) and releases its bytes.
    pub(crate) fn discard(&mut self) {
        let frames = std::mem::take(&mut *self.chan.queue.lock());
        for text in frames {
            self.chan.budget.release(text.len());
        }
    }
}

/// Resolves when its socket went over its byte budget (see [`Inbox::overflow_signal`]).
#[derive(Debug, Clone)]
pub(crate) struct OverflowSignal(Arc<Chan>);

impl OverflowSignal {
    /// Whether the socket went over its budget.
    pub(crate) fn is_set(&self) -> bool {
        self.0.budget.overflowed.load(Ordering::Acquire)
    }

    /// Waits until the socket goes over its budget (at once if it did).
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.0.budget.notify.notified();
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
    async fn the_queue_gives_its_memory_back_once_drained_and_ends_when_the_senders_go() {
        let (out, mut inbox) = outbox(8, 100);
        let second = out.clone();
        assert_eq!(out.try_send(frame(3)), Ok(()));
        assert_eq!(second.try_send(frame(4)), Ok(()));
        assert_eq!(inbox.recv().await.unwrap().len(), 3);
        assert!(inbox.chan.queue.lock().capacity() > 0);
        assert_eq!(inbox.recv().await.unwrap().len(), 4);
        assert_eq!(inbox.chan.queue.lock().capacity(), 0);
        drop(out);
        // One sender is left: a frame queued after a wait began still wakes it.
        let waiter = tokio::spawn(async move {
            let got = inbox.recv().await.map(|t| t.len());
            (got, inbox.recv().await.is_none())
        });
        tokio::task::yield_now().await;
        assert_eq!(second.try_send(frame(5)), Ok(()));
        drop(second);
        assert_eq!(waiter.await.unwrap(), (Some(5), true));
    }

    #[tokio::test]
    async fn a_closed_socket_releases_the_bytes() {
        let (out, inbox) = outbox(8, 100);
        drop(inbox);
        assert_eq!(out.try_send(frame(10)), Err(Refused::Closed));
        assert_eq!(out.pending(), 0);
    }
}
