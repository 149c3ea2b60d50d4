//! One soak device: a `CallApi` (NoMedia) over a supervised `WsTransport`, and a view of its
//! call built from its notifications (state, why its last call ended, messages received,
//! since when it is in a call).

use std::time::Duration;

use callapi_core::call::{CallConfig, CallState, Notification, StateReason};
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, SupervisorConfig};
use callapi_core::media::NoMedia;
use callapi_core::protocol::{DeviceId, UserId};
use callapi_core::CallApi;
use callapi_examples::dev_tokens;
use callapi_signal_ws::{WsSignalClient, WsTransport};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::server::SECRET;
use crate::Res;

/// Lifetime of the devices' tokens (longer than any soak).
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// A device's call as its notifications tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// The call state.
    pub state: CallState,
    /// Calls ended so far.
    pub ended: u64,
    /// Why the last one ended.
    pub last_end: Option<StateReason>,
    /// Messages received so far.
    pub messages: u64,
    /// Since when the device is in a call (`None` when it is not).
    pub active_since: Option<Instant>,
}

/// A device and its view.
#[derive(Clone)]
pub struct Device {
    /// The device.
    pub api: CallApi,
    /// Its user name.
    pub user: String,
    view: watch::Receiver<View>,
}

impl Device {
    /// Starts `user`'s device `d` on `url`.
    pub fn start(url: &str, user: &str, seed: u64) -> Res<Self> {
        let identity = Identity {
            user: UserId::new(user)?,
            device: DeviceId::new("d")?,
        };
        let credentials = Credentials::token(dev_tokens(SECRET.to_vec(), user, TOKEN_TTL)?);
        let supervisor = SupervisorConfig::new(identity.clone(), credentials)
            .with_schedule(RetrySchedule::immediate_first_attempt());
        let api = CallApi::new(
            CallConfig::new(identity.user, identity.device).with_seed(seed),
            WsSignalClient::start(WsTransport::new(url)?, supervisor),
            NoMedia,
        );
        let (tx, view) = watch::channel(View {
            state: api.state(),
            ended: 0,
            last_end: None,
            messages: 0,
            active_since: None,
        });
        let mut stream = api.subscribe();
        // Ends when the device shuts down (its stream ends).
        tokio::spawn(async move {
            while let Some(n) = stream.recv().await {
                match n {
                    Notification::StateChanged(c) => tx.send_modify(|v| {
                        v.state = c.state;
                        if c.state.is_active() && v.active_since.is_none() {
                            v.active_since = Some(Instant::now());
                        }
                        if c.previous.is_active() && !c.state.is_active() {
                            v.ended += 1;
                            v.last_end = Some(c.reason);
                            v.active_since = None;
                        }
                    }),
                    Notification::MessageReceived { .. } => tx.send_modify(|v| v.messages += 1),
                    _ => {}
                }
            }
        });
        Ok(Self {
            api,
            user: user.to_owned(),
            view,
        })
    }

    /// The view now.
    pub fn view(&self) -> View {
        *self.view.borrow()
    }

    /// A receiver of the view's changes.
    pub fn watch(&self) -> watch::Receiver<View> {
        self.view.clone()
    }
}
