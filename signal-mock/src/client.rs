//! [`MockSignalClient`]: one device's [`SignalClient`] on a [`MockNetwork`].

use callapi_core::protocol::{DeviceId, Envelope, UserId};
use callapi_core::signal::{SignalClient, SignalError, SignalEvent};
use tokio::sync::mpsc;

use crate::network::MockNetwork;

/// One device's connection to a [`MockNetwork`], made by [`MockNetwork::connect`].
///
/// * `send` fails with `SignalError::Closed` after `close` (or after the device connected
///   again elsewhere), and with `SignalError::NotConnected` while the device is offline (the
///   envelope is not taken; the reliable layer retransmits after reconnecting). An envelope too
///   large for the wire fails with `SignalError::Rejected`.
/// * `next_event` is cancel-safe (it reads a `tokio::sync::mpsc` channel) and returns `None`
///   once the client is closed or replaced.
/// * `renew_token` records the token (see [`MockNetwork::last_token`]).
/// * `close` (or dropping the client) takes the device off the network; envelopes for it are
///   stored from then on, as for any offline device.
#[derive(Debug)]
pub struct MockSignalClient {
    network: MockNetwork,
    user: UserId,
    device: DeviceId,
    conn: u64,
    rx: mpsc::UnboundedReceiver<SignalEvent>,
    closed: bool,
}

impl MockSignalClient {
    pub(crate) fn new(
        network: MockNetwork,
        user: UserId,
        device: DeviceId,
        conn: u64,
        rx: mpsc::UnboundedReceiver<SignalEvent>,
    ) -> Self {
        Self {
            network,
            user,
            device,
            conn,
            rx,
            closed: false,
        }
    }

    /// The user this client speaks as.
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The device this client speaks as.
    pub fn device(&self) -> &DeviceId {
        &self.device
    }

    /// The network this client is connected to.
    pub fn network(&self) -> &MockNetwork {
        &self.network
    }

    /// An event that is already waiting, without waiting for one.
    pub fn try_next_event(&mut self) -> Option<SignalEvent> {
        if self.closed {
            return None;
        }
        self.rx.try_recv().ok()
    }
}

impl SignalClient for MockSignalClient {
    async fn send(&mut self, envelope: Envelope) -> Result<(), SignalError> {
        if self.closed {
            return Err(SignalError::Closed);
        }
        self.network
            .client_send(self.conn, &self.user, &self.device, envelope)
    }

    async fn next_event(&mut self) -> Option<SignalEvent> {
        if self.closed {
            return None;
        }
        self.rx.recv().await
    }

    async fn renew_token(&mut self, token: String) -> Result<(), SignalError> {
        if self.closed {
            return Err(SignalError::Closed);
        }
        self.network
            .client_renew(self.conn, &self.user, &self.device, token)
    }

    async fn close(&mut self) {
        if !self.closed {
            self.closed = true;
            self.rx.close();
            self.network
                .client_detach(self.conn, &self.user, &self.device);
        }
    }
}

impl Drop for MockSignalClient {
    fn drop(&mut self) {
        if !self.closed {
            self.network
                .client_detach(self.conn, &self.user, &self.device);
        }
    }
}
