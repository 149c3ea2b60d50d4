//! One user's device in the demo: its `CallApi`, the notifications it printed, its media
//! counters, and the waits the scenarios make on it.

use std::collections::BTreeSet;
use std::time::Duration;

use callapi_core::call::{CallState, Notification, PeerMediaEvent, StateChange};
use callapi_core::CallApi;
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::backend::{Backend, LinkWait};
use crate::error::DemoError;
use crate::media::{Counters, MediaCounts, MediaFactory};
use crate::report::Echo;

/// Longest wait for any one step of a call (the call timeout is 15 s).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// One user's device.
pub struct Side {
    pub name: &'static str,
    pub api: CallApi,
    /// Notifications, each passed on once printed.
    pub events: mpsc::UnboundedReceiver<Notification>,
    pub counters: Counters,
}

impl Side {
    /// `name`'s device `device` on `backend` with an engine from `media`, its notifications
    /// printed by `echo`; and the wait for its link.
    pub fn start(
        name: &'static str,
        device: &str,
        backend: &Backend,
        media: &MediaFactory,
        echo: &Echo,
    ) -> Result<(Self, LinkWait), DemoError> {
        let (engine, counters) = media.engine()?;
        let (api, link) = backend.device(name, device, engine)?;
        let events = echo.spawn_printer(name, api.subscribe());
        let side = Side {
            name,
            api,
            events,
            counters,
        };
        Ok((side, link))
    }

    /// Waits for this side's next change to `want`. A call that ends first (back to
    /// `Prepared`, or `Failed`) is an error that names its reason.
    pub async fn until(&mut self, call: u32, want: CallState) -> Result<StateChange, DemoError> {
        self.until_within(call, want, STEP_TIMEOUT).await
    }

    /// [`until`](Self::until), waiting at most `limit` (a person's step takes longer).
    pub async fn until_within(
        &mut self,
        call: u32,
        want: CallState,
        limit: Duration,
    ) -> Result<StateChange, DemoError> {
        let name = self.name;
        let wait = async {
            while let Some(n) = self.events.recv().await {
                if let Notification::StateChanged(c) = n {
                    if c.state == want {
                        return Ok(c);
                    }
                    if matches!(
                        c.state,
                        CallState::Prepared | CallState::Failed | CallState::Idle
                    ) {
                        return Err(DemoError::Call {
                            call,
                            message: format!(
                                "{name}: the call ended ({:?}, {:?}{}) before reaching {want:?}",
                                c.state,
                                c.reason,
                                c.event_reason
                                    .map(|r| format!(", {r:?}"))
                                    .unwrap_or_default()
                            ),
                        });
                    }
                }
            }
            Err(DemoError::Call {
                call,
                message: format!("{name}: the call API stopped"),
            })
        };
        timeout(limit, wait).await.map_err(|_| DemoError::Call {
            call,
            message: format!(
                "{name}: no {want:?} within {}s (state {:?})",
                limit.as_secs(),
                self.api.state()
            ),
        })?
    }

    pub fn counts(&self) -> Option<MediaCounts> {
        self.counters.snapshot()
    }

    /// Waits until this side saw `event` from the device of every user in `from` (media of a
    /// group call); a call that ends first is an error.
    pub async fn until_peers(
        &mut self,
        call: u32,
        from: &[&str],
        event: PeerMediaEvent,
    ) -> Result<(), DemoError> {
        let name = self.name;
        let mut missing: BTreeSet<String> = from.iter().map(|u| u.to_string()).collect();
        let wait = async {
            while !missing.is_empty() {
                match self.events.recv().await {
                    Some(Notification::PeerMedia { peer, event: e, .. }) if e == event => {
                        missing.remove(peer.user.as_str());
                    }
                    Some(Notification::StateChanged(c))
                        if matches!(c.state, CallState::Prepared | CallState::Failed) =>
                    {
                        return Err(DemoError::Call {
                            call,
                            message: format!(
                                "{name}: the call ended ({:?}) before {event:?} from {missing:?}",
                                c.reason
                            ),
                        });
                    }
                    Some(_) => {}
                    None => {
                        return Err(DemoError::Call {
                            call,
                            message: format!("{name}: the call API stopped"),
                        })
                    }
                }
            }
            Ok(())
        };
        match timeout(STEP_TIMEOUT, wait).await {
            Ok(result) => result,
            Err(_) => Err(DemoError::Call {
                call,
                message: format!(
                    "{name}: no {event:?} from {missing:?} within {}s",
                    STEP_TIMEOUT.as_secs()
                ),
            }),
        }
    }
}
