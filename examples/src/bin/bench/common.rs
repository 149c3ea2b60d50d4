//! Shared pieces: the in-process signal server with benchmark limits, tokens, identities,
//! supervisor settings that connect at once, envelopes and notification waits.

use std::time::Duration;

use callapi_core::call::{CallState, Notification};
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, SupervisorConfig, TokenError};
use callapi_core::protocol::{Body, CallId, DeviceId, Envelope, MessageId, UserId};

use callapi_core::{CallApi, NotificationStream};
use callapi_signal_mock::next_matching;
use callapi_signal_ws::auth::{Claims, TokenAuthority};
use callapi_signal_ws::server::{ServerConfig, ServerHandle, SignalServer};

/// Any error of the harness.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The harness's result.
pub type Res<T> = Result<T, BoxError>;

/// The benchmark servers' token secret.
pub const SECRET: &[u8] = b"callapi-bench-secret-0123456789abcdef";
/// Token lifetime.
pub const HOUR: Duration = Duration::from_secs(3600);
/// Longest wait for one expected thing.
pub const WAIT: Duration = Duration::from_secs(10);

/// Server defaults on 127.0.0.1 port 0, with the per-connection rate limits, the handshake
/// limit and the per-socket write budget raised so the load generators are not throttled or
/// closed as slow consumers under bursts (the limits are a policy, not a cost).
pub fn server_config() -> Res<ServerConfig> {
    let mut c = ServerConfig::new("127.0.0.1:0".parse()?, SECRET.to_vec());
    c.limits.rate_per_sec = 1_000_000;
    c.limits.rate_burst = 1_000_000;
    c.limits.rate_close_after = 1_000_000;
    c.limits.max_pending_handshakes = 20_000;
    c.limits.outbound_queue = 4096;
    c.buffers.max_write_buffer_bytes = 16 * 1024 * 1024;
    Ok(c)
}

/// Starts an in-process server with [`server_config`].
pub async fn start_server() -> Res<ServerHandle> {
    Ok(SignalServer::start(server_config()?).await?)
}

/// A token for `user`, valid for an hour.
pub fn token(user: &str) -> Res<String> {
    Ok(TokenAuthority::new(SECRET)?.mint(&Claims::new(user, HOUR))?)
}

/// Token credentials minting `user`'s token on each fetch.
pub fn credentials(user: &str) -> Credentials {
    let u = user.to_owned();
    Credentials::token(move || {
        let t = token(&u);
        async move { t.map_err(|e| TokenError(e.to_string())) }
    })
}

/// Fixed-password credentials (MQTT).
pub fn password(pw: &str) -> Credentials {
    let pw = pw.to_owned();
    Credentials::token(move || {
        let t = pw.clone();
        async move { Ok::<_, TokenError>(t) }
    })
}

/// `user`/`device` as an identity.
pub fn identity(user: &str, device: &str) -> Res<Identity> {
    Ok(Identity {
        user: UserId::new(user)?,
        device: DeviceId::new(device)?,
    })
}

/// Supervisor settings for `identity` with `credentials` whose first connection starts at once
/// (no start-up jitter, [`RetrySchedule::immediate_first_attempt`]): the devices come up
/// without seconds of jitter; everything after is the default schedule.
pub fn supervised(identity: Identity, credentials: Credentials) -> SupervisorConfig {
    SupervisorConfig::new(identity, credentials)
        .with_schedule(RetrySchedule::immediate_first_attempt())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A `message` envelope from `from` to `to` carrying `data`.
pub fn message(from: &Identity, to: &UserId, data: String) -> Envelope {
    Envelope {
        v: 1,
        id: MessageId::new_v4(),
        ts: now_ms(),
        from: from.user.clone(),
        from_device: from.device.clone(),
        to: to.clone(),
        to_device: None,
        call_id: CallId::new_v4(),
        lifetime_ms: 15_000,
        body: Body::Message { data },
    }
}

/// Waits for the first notification matching `pred`, within [`WAIT`].
pub async fn wait_for(
    stream: &mut NotificationStream,
    what: &str,
    pred: impl FnMut(&Notification) -> bool,
) -> Res<Notification> {
    next_matching(stream, WAIT, |_| {}, pred)
        .await
        .map_err(|err| format!("waiting for {what}: {err}").into())
}

/// Waits for the link to be up (already up counts).
pub async fn wait_linked(api: &CallApi) -> Res<()> {
    callapi_signal_mock::wait_linked(api, WAIT)
        .await
        .map_err(|err| format!("waiting for the link: {err}").into())
}

/// Waits for a state change to `state`.
pub async fn wait_state(stream: &mut NotificationStream, state: CallState) -> Res<()> {
    wait_for(
        stream,
        &format!("state {state:?}"),
        |n| matches!(n, Notification::StateChanged(c) if c.state == state),
    )
    .await
    .map(|_| ())
}

/// Waits until a state watch shows `state`.
pub async fn wait_watch(
    watch: &mut tokio::sync::watch::Receiver<CallState>,
    state: CallState,
) -> Res<()> {
    match tokio::time::timeout(WAIT, watch.wait_for(|s| *s == state)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("state watch closed".into()),
        Err(_) => Err(format!("state {state:?} not reached within {WAIT:?}").into()),
    }
}

/// Resident set size of process `pid` in bytes (from /proc).
pub fn rss_bytes(pid: u32) -> Res<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or("no VmRSS in /proc status")?;
    Ok(kib * 1024)
}
