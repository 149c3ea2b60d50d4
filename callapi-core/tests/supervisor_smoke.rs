//! Smoke test of the supervisor: connect, drop, reconnect.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::time::Duration;

use callapi_core::connection::{Credentials, Identity, Supervisor, SupervisorConfig, TokenError};
use callapi_core::protocol::{DeviceId, UserId};
use callapi_core::signal::{LinkState, SignalClient, SignalEvent};
use callapi_signal_mock::{FaultPlan, MockNetwork, MockTransport};

#[tokio::test(start_paused = true)]
async fn connects_drops_and_reconnects_on_schedule() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let (transport, control) = MockTransport::new(net);
    let id = Identity {
        user: UserId::new("alice").unwrap(),
        device: DeviceId::new("a1").unwrap(),
    };
    let creds = Credentials::token(|| async { Ok::<_, TokenError>("t1".to_owned()) });
    let mut sup = Supervisor::start(transport, SupervisorConfig::new(id, creds).with_seed(3));
    let mut states = Vec::new();
    while let Some(SignalEvent::Link(s)) = sup.next_event().await {
        states.push(s.clone());
        if s == LinkState::Connected {
            break;
        }
    }
    assert_eq!(states.first(), Some(&LinkState::Connecting));
    let t0 = tokio::time::Instant::now();
    assert!(control.drop_link());
    let mut n = 0;
    loop {
        let ev = tokio::time::timeout(Duration::from_secs(30), sup.next_event())
            .await
            .unwrap()
            .unwrap();
        if let SignalEvent::Link(LinkState::Connected) = ev {
            break;
        }
        n += 1;
        assert!(n < 10);
    }
    let attempts = control.attempts();
    assert_eq!(attempts.len(), 2);
    let dt = attempts[1].at - t0;
    assert!(dt < Duration::from_secs(2), "{dt:?}");
    assert_eq!(attempts[1].token, "t1");
}
