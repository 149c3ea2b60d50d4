//! [`MockTransport`]: a [`Transport`] over a [`MockNetwork`] whose connection results, link drops
//! and expiry warnings a test scripts, for testing the core's `Supervisor` deterministically.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use callapi_core::connection::{
    ConnectError, Identity, LinkEvent, Renewal, Transport, TransportLink,
};
use callapi_core::protocol::Envelope;
use callapi_core::signal::{SignalClient, SignalError, SignalEvent};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::MockSignalClient;
use crate::network::MockNetwork;

/// What one scripted connection attempt does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ScriptedConnect {
    /// The attempt succeeds.
    Accept,
    /// The attempt fails with this error.
    Fail(ConnectError),
    /// The attempt never answers (the supervisor's 15 s bound must end it).
    Hang,
}

/// One connection attempt as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// When it started (tokio time, so paused-clock tests can assert exact instants).
    pub at: Instant,
    /// The token it carried.
    pub token: String,
}

#[derive(Debug)]
struct Inner {
    script: VecDeque<ScriptedConnect>,
    attempts: Vec<Attempt>,
    renewals: Vec<String>,
    renew_result: Option<ConnectError>,
    link: Option<mpsc::UnboundedSender<LinkEvent>>,
    links_opened: usize,
}

/// Test handle of a [`MockTransport`] (cheap to clone).
#[derive(Debug, Clone)]
pub struct MockTransportControl {
    inner: Arc<Mutex<Inner>>,
}

impl MockTransportControl {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues results for the next attempts; when the queue is empty, attempts succeed.
    pub fn script(&self, results: impl IntoIterator<Item = ScriptedConnect>) {
        self.lock().script.extend(results);
    }

    /// Every attempt so far.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.lock().attempts.clone()
    }

    /// Tokens received by in-band renewals so far.
    pub fn renewals(&self) -> Vec<String> {
        self.lock().renewals.clone()
    }

    /// Makes the next in-band renewals fail with `err` (`None`: succeed).
    pub fn set_renew_result(&self, err: Option<ConnectError>) {
        self.lock().renew_result = err;
    }

    /// How many links were opened.
    pub fn links_opened(&self) -> usize {
        self.lock().links_opened
    }

    /// Whether a link is up.
    pub fn is_linked(&self) -> bool {
        self.lock().link.as_ref().is_some_and(|l| !l.is_closed())
    }

    fn inject(&self, event: Option<LinkEvent>) -> bool {
        let mut inner = self.lock();
        match (&inner.link, event) {
            (Some(link), Some(ev)) => link.send(ev).is_ok(),
            (Some(_), None) => {
                inner.link = None; // dropping the sender ends the link
                true
            }
            (None, _) => false,
        }
    }

    /// Drops the live link (as a network change would). Returns whether one was up.
    pub fn drop_link(&self) -> bool {
        self.inject(None)
    }

    /// The service closes the link with `error`.
    pub fn close_with(&self, error: ConnectError) -> bool {
        self.inject(Some(LinkEvent::Closed { error: Some(error) }))
    }

    /// The service warns that the token expires soon.
    pub fn warn_token_expiry(&self) -> bool {
        self.inject(Some(LinkEvent::TokenWillExpire))
    }
}

/// A [`Transport`] whose links are [`MockNetwork`] connections.
#[derive(Debug)]
pub struct MockTransport {
    network: MockNetwork,
    control: MockTransportControl,
}

impl MockTransport {
    /// A transport onto `network`, and its test handle.
    pub fn new(network: MockNetwork) -> (Self, MockTransportControl) {
        let control = MockTransportControl {
            inner: Arc::new(Mutex::new(Inner {
                script: VecDeque::new(),
                attempts: Vec::new(),
                renewals: Vec::new(),
                renew_result: None,
                link: None,
                links_opened: 0,
            })),
        };
        (
            Self {
                network,
                control: control.clone(),
            },
            control,
        )
    }
}

impl Transport for MockTransport {
    type Link = MockLink;

    fn connect(
        &mut self,
        identity: &Identity,
        token: &str,
    ) -> impl std::future::Future<Output = Result<MockLink, ConnectError>> + Send + 'static {
        // The attempt is recorded when it starts, not when it is first polled.
        let result = {
            let mut inner = self.control.lock();
            inner.attempts.push(Attempt {
                at: Instant::now(),
                token: token.to_owned(),
            });
            inner.script.pop_front().unwrap_or(ScriptedConnect::Accept)
        };
        let network = self.network.clone();
        let control = self.control.clone();
        let identity = identity.clone();
        async move {
            match result {
                ScriptedConnect::Accept => {}
                ScriptedConnect::Fail(err) => return Err(err),
                ScriptedConnect::Hang => std::future::pending::<()>().await,
            }
            let client = network.connect(identity.user, identity.device);
            let (tx, rx) = mpsc::unbounded_channel();
            let mut inner = control.lock();
            inner.link = Some(tx);
            inner.links_opened += 1;
            drop(inner);
            Ok(MockLink {
                client,
                control: rx,
                transport: control,
            })
        }
    }
}

/// A live [`MockTransport`] link.
#[derive(Debug)]
pub struct MockLink {
    client: MockSignalClient,
    control: mpsc::UnboundedReceiver<LinkEvent>,
    transport: MockTransportControl,
}

impl TransportLink for MockLink {
    async fn send(&mut self, envelope: Envelope) -> Result<(), SignalError> {
        self.client.send(envelope).await
    }

    async fn next_event(&mut self) -> Option<LinkEvent> {
        loop {
            tokio::select! {
                ev = self.control.recv() => return ev,
                ev = self.client.next_event() => match ev? {
                    SignalEvent::Message(env) => return Some(LinkEvent::Message(env)),
                    SignalEvent::Invalid(err) => return Some(LinkEvent::Invalid(err)),
                    SignalEvent::TokenWillExpire => return Some(LinkEvent::TokenWillExpire),
                    // The supervisor owns the link state; the network's own reports are noise.
                    _ => {}
                },
            }
        }
    }

    async fn renew(&mut self, token: &str) -> Renewal {
        let mut inner = self.transport.lock();
        inner.renewals.push(token.to_owned());
        Renewal::Done(match inner.renew_result.clone() {
            Some(err) => Err(err),
            None => Ok(()),
        })
    }

    async fn close(&mut self) {
        self.client.close().await;
        self.control.close();
    }
}
