//! Per-subscriber notification streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::call::Notification;

/// The notifications of one subscriber, in order, none dropped. Ends when the `CallApi` shuts down.
#[derive(Debug)]
pub struct NotificationStream {
    rx: mpsc::UnboundedReceiver<Notification>,
}

impl NotificationStream {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Notification>) -> Self {
        Self { rx }
    }

    /// The next notification (`None` after shutdown). Cancel-safe.
    pub async fn recv(&mut self) -> Option<Notification> {
        self.rx.recv().await
    }

    /// A notification that is already waiting, without waiting for one.
    pub fn try_recv(&mut self) -> Option<Notification> {
        self.rx.try_recv().ok()
    }
}

impl Stream for NotificationStream {
    type Item = Notification;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notification>> {
        self.rx.poll_recv(cx)
    }
}
