//! The `CallApi` loop never waits for its media engine: while a join takes 5 s, the callee's
//! ringing acknowledgement goes out at once and a second caller is still declined busy at once
//! (paused clock, a network without delay, so "at once" is exact).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callapi_core::call::{CallConfig, CallEvent, CallState, Notification, PrepareConfig};
use callapi_core::media::{JoinRequest, MediaEngine, MediaError, MediaEvent, MediaPlan, NoMedia};
use callapi_core::protocol::{CallId, CallType, DeviceId, UserId};
use callapi_core::{CallApi, NotificationStream};
use callapi_signal_mock::{FaultPlan, MockNetwork};
use serde_json::Value;
use tokio::time::Instant;

const JOIN_TAKES: Duration = Duration::from_secs(5);

/// A media engine whose join takes [`JOIN_TAKES`].
#[derive(Clone, Default)]
struct SlowJoin {
    joined: Arc<AtomicBool>,
}

impl MediaEngine for SlowJoin {
    async fn join(&mut self, _request: JoinRequest) -> Result<(), MediaError> {
        tokio::time::sleep(JOIN_TAKES).await;
        self.joined.store(true, Ordering::SeqCst);
        Ok(())
    }
    async fn update_plan(&mut self, _call_id: CallId, _plan: MediaPlan) -> Result<(), MediaError> {
        Ok(())
    }
    async fn remote_signal(&mut self, _call_id: CallId, _payload: Value) -> Result<(), MediaError> {
        Ok(())
    }
    async fn leave(&mut self, _call_id: CallId) {}
    async fn next_event(&mut self) -> Option<MediaEvent> {
        std::future::pending().await
    }
}

/// A device whose machine draws its ids from `seed` (distinct seeds: distinct call ids).
fn api<M: MediaEngine>(
    net: &MockNetwork,
    seed: u64,
    user: &str,
    device: &str,
    media: M,
) -> CallApi {
    let (u, d) = (UserId::new(user).unwrap(), DeviceId::new(device).unwrap());
    let client = net.connect(u.clone(), d.clone());
    CallApi::new(CallConfig::new(u, d).with_seed(seed), client, media)
}

async fn wait_event(stream: &mut NotificationStream, event: CallEvent) -> Instant {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Notification::Event(e) = stream.recv().await.expect("stream open") {
                if e.event == event {
                    return Instant::now();
                }
            }
        }
    })
    .await
    .expect("the event within 60 s")
}

#[tokio::test(start_paused = true)]
async fn ringing_and_busy_go_out_at_once_while_a_join_takes_five_seconds() {
    let net = MockNetwork::new(
        1,
        FaultPlan::default().with_delay(Duration::ZERO, Duration::ZERO),
    );
    let media = SlowJoin::default();
    let joined = media.joined.clone();
    let alice = api(&net, 1, "alice", "a1", NoMedia);
    let carol = api(&net, 2, "carol", "c1", NoMedia);
    let bob = api(&net, 3, "bob", "b1", media);
    for (who, room) in [
        (&alice, "alice-room"),
        (&carol, "carol-room"),
        (&bob, "bob-room"),
    ] {
        who.prepare(PrepareConfig::new(room)).await.unwrap();
    }
    let mut a_events = alice.subscribe();
    let mut c_events = carol.subscribe();
    let mut b_events = bob.subscribe();

    // bob joins media on ringing (the default): his join starts with the invite.
    let t0 = Instant::now();
    alice.call("bob", CallType::Video).await.unwrap();
    wait_event(&mut b_events, CallEvent::JoinMediaStart).await;
    let ringing_seen = wait_event(&mut a_events, CallEvent::RemoteUserRecvCall).await;
    assert!(
        ringing_seen - t0 <= Duration::from_millis(1),
        "alice heard bob ring after {:?}",
        ringing_seen - t0
    );
    assert!(!joined.load(Ordering::SeqCst), "the join is still running");
    assert_eq!(bob.state(), CallState::Calling);

    // carol calls bob during that join: bob declines busy at once (carol then waits the
    // 250 ms grace for other devices of bob's before she reports busy).
    let t1 = Instant::now();
    carol.call("bob", CallType::Audio).await.unwrap();
    let declined = wait_event(&mut b_events, CallEvent::BusyAutoRejected).await;
    assert!(
        declined - t1 <= Duration::from_millis(1),
        "bob declined after {:?}",
        declined - t1
    );
    let busy = wait_event(&mut c_events, CallEvent::RemoteCallBusy).await;
    assert_eq!(busy - t1, Duration::from_millis(250));
    assert!(!joined.load(Ordering::SeqCst), "the join is still running");

    // The join does finish, and the call goes on.
    tokio::time::sleep(JOIN_TAKES).await;
    assert!(joined.load(Ordering::SeqCst));
    assert_eq!(bob.state(), CallState::Calling);
    assert_eq!(alice.state(), CallState::Calling);
}
