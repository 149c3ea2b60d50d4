//! [`next_matching`]: waiting, with a bound, for a `CallApi` notification, as tests and tools
//! do.

use std::time::Duration;

use callapi_core::call::Notification;
use callapi_core::signal::LinkState;
use callapi_core::{CallApi, NotificationStream};

/// Why [`next_matching`] found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// Nothing matched within the bound.
    #[error("nothing matched within {0:?}")]
    TimedOut(Duration),
    /// The stream ended (the `CallApi` shut down) before anything matched.
    #[error("the notification stream ended")]
    Ended,
}

/// Reads `stream` until a notification satisfies `pred`, for at most `within` (tokio time, so
/// a paused clock applies). Every notification read, the matching one included, is shown to
/// `seen` first, so callers can keep a log to print when the wait fails.
pub async fn next_matching(
    stream: &mut NotificationStream,
    within: Duration,
    mut seen: impl FnMut(&Notification),
    mut pred: impl FnMut(&Notification) -> bool,
) -> Result<Notification, WaitError> {
    let found = tokio::time::timeout(within, async {
        while let Some(n) = stream.recv().await {
            seen(&n);
            if pred(&n) {
                return Ok(n);
            }
        }
        Err(WaitError::Ended)
    })
    .await;
    found.unwrap_or(Err(WaitError::TimedOut(within)))
}

/// Why [`call_through`] stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallFlowError {
    /// A step of the API failed.
    #[error("{stage}: {source}")]
    Api {
        /// The step.
        stage: &'static str,
        /// What the API said.
        source: callapi_core::CallApiError,
    },
    /// An expected notification did not come.
    #[error("{stage}: {source}")]
    Wait {
        /// What was awaited.
        stage: &'static str,
        /// Why it did not come.
        source: WaitError,
    },
    /// Something held that should not have.
    #[error("{stage}: {what}")]
    Unexpected {
        /// The step.
        stage: &'static str,
        /// What was found.
        what: String,
    },
}

/// Runs one whole call between two linked `CallApi`s — both prepare, `caller` calls `callee`'s
/// user, `callee` rings and accepts, `caller` is connected, `callee` hangs up, `caller` is
/// back in `Prepared` — and calls `checkpoint` with the stage's name after each step (a test
/// asserts what must hold throughout, such as its task count). Each wait is bounded by
/// `within`.
pub async fn call_through(
    caller: &callapi_core::CallApi,
    callee: &callapi_core::CallApi,
    within: Duration,
    mut checkpoint: impl FnMut(&'static str),
) -> Result<(), CallFlowError> {
    use callapi_core::call::{CallState, PrepareConfig};
    use callapi_core::protocol::CallType;
    let api = |stage| move |source| CallFlowError::Api { stage, source };
    let (mut a, mut b) = (caller.subscribe(), callee.subscribe());
    caller
        .prepare(PrepareConfig::new(format!("{}-room", caller.user_id())))
        .await
        .map_err(api("caller prepare"))?;
    callee
        .prepare(PrepareConfig::new(format!("{}-room", callee.user_id())))
        .await
        .map_err(api("callee prepare"))?;
    checkpoint("prepared");
    caller
        .call(callee.user_id().as_str(), CallType::Video)
        .await
        .map_err(api("call"))?;
    reach(&mut b, within, "ringing", CallState::Calling).await?;
    checkpoint("ringing");
    callee.accept().await.map_err(api("accept"))?;
    reach(&mut a, within, "connected", CallState::Connected).await?;
    checkpoint("in a call");
    callee.hangup(None).await.map_err(api("hangup"))?;
    reach(&mut a, within, "hung up", CallState::Prepared).await?;
    checkpoint("after the call");
    Ok(())
}

/// Waits for the state change to `state`.
async fn reach(
    stream: &mut NotificationStream,
    within: Duration,
    stage: &'static str,
    state: callapi_core::call::CallState,
) -> Result<(), CallFlowError> {
    next_matching(
        stream,
        within,
        |_| {},
        |n| matches!(n, Notification::StateChanged(c) if c.state == state),
    )
    .await
    .map(|_| ())
    .map_err(|source| CallFlowError::Wait { stage, source })
}

/// Waits (at most `within`) until `api` reports its link connected, whether it came up
/// before this call or after (it reads the link's `watch`, so there is no race with a
/// `subscribe` made after the link came up).
pub async fn wait_linked(api: &CallApi, within: Duration) -> Result<(), WaitError> {
    let mut link = api.link_watch();
    let up = async { link.wait_for(LinkState::is_connected).await.map(|_| ()) };
    match tokio::time::timeout(within, up).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(WaitError::Ended),
        Err(_) => Err(WaitError::TimedOut(within)),
    }
}

/// How many tokio tasks are alive on the current runtime (tokio's runtime metrics): what the
/// one-task tests count.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}
