//! Two users, alice and bob, place a full video call over `signal-mock`'s in-memory network with
//! `MockMedia`: call → ringing → accept → connected → hang-up. Prints each side's state changes
//! as they happen and the timing diagnostics at the end.
//!
//! Runs on tokio's paused clock, so it is instant and prints the same thing every time.
//!
//! ```text
//! cargo run -p callapi-examples --example mock_call
//! ```

use std::time::Duration;

use callapi_core::call::{
    CallConfig, CallState, CallTimings, CommandError, Notification, PrepareConfig,
};
use callapi_core::protocol::{CallType, DeviceId, UserId};
use callapi_core::{CallApi, CallApiError, NotificationStream};
use callapi_signal_mock::{FaultPlan, MockMedia, MockNetwork};
use tokio::time::Instant;

fn device(net: &MockNetwork, user: &str, dev: &str) -> Result<CallApi, CallApiError> {
    let bad = |e: callapi_core::protocol::IdError| {
        CallApiError::from(CommandError::InvalidArgument(e.to_string()))
    };
    let user = UserId::new(user).map_err(bad)?;
    let dev = DeviceId::new(dev).map_err(bad)?;
    let client = net.connect(user.clone(), dev.clone());
    let (media, _control) = MockMedia::new();
    Ok(CallApi::new(CallConfig::new(user, dev), client, media))
}

/// Prints a side's notifications as they arrive.
fn print_notifications(name: &'static str, start: Instant, mut events: NotificationStream) {
    tokio::spawn(async move {
        while let Some(n) = events.recv().await {
            let t = start.elapsed().as_millis();
            match n {
                Notification::StateChanged(c) => println!(
                    "[{t:>5} ms] {name:<5} {:?} → {:?} ({:?})",
                    c.previous, c.state, c.reason
                ),
                Notification::Event(e) => println!("[{t:>5} ms] {name:<5}   event {:?}", e.event),
                Notification::DtmfReceived { digits, .. } => {
                    println!("[{t:>5} ms] {name:<5}   DTMF {digits}")
                }
                _ => {}
            }
        }
    });
}

/// Waits until `api` is in `state`.
async fn reach(api: &CallApi, state: CallState) -> Result<(), CallApiError> {
    let mut watch = api.state_watch();
    watch
        .wait_for(|s| *s == state)
        .await
        .map(|_| ())
        .map_err(|_| CallApiError::Shutdown)
}

fn print_timings(name: &str, t: Option<CallTimings>) {
    println!("{name}:");
    for (milestone, ms) in t.unwrap_or_default().as_millis() {
        match ms {
            Some(ms) => println!("  {milestone:<28} {ms:>6} ms"),
            None => println!("  {milestone:<28}      -"),
        }
    }
}

/// Runs the example (public so that `tests/examples.rs` can run it too).
#[tokio::main(flavor = "current_thread", start_paused = true)]
pub async fn main() -> Result<(), CallApiError> {
    // 20–60 ms one-way latency, no loss.
    let plan =
        FaultPlan::default().with_delay(Duration::from_millis(20), Duration::from_millis(60));
    let net = MockNetwork::new(2024, plan);
    let alice = device(&net, "alice", "alice-phone")?;
    let bob = device(&net, "bob", "bob-laptop")?;
    let start = Instant::now();
    print_notifications("alice", start, alice.subscribe());
    print_notifications("bob", start, bob.subscribe());

    alice.prepare(PrepareConfig::new("alice-room")).await?;
    bob.prepare(PrepareConfig::new("bob-room")).await?;

    let call_id = alice.call("bob", CallType::Video).await?;
    println!("[    0 ms] alice calls bob (call {call_id})");
    reach(&bob, CallState::Calling).await?;

    tokio::time::sleep(Duration::from_millis(800)).await; // bob looks at the screen
    println!("[{:>5} ms] bob accepts", start.elapsed().as_millis());
    bob.accept().await?;
    reach(&alice, CallState::Connected).await?;
    reach(&bob, CallState::Connected).await?;

    bob.send_dtmf("42#").await?;
    tokio::time::sleep(Duration::from_secs(5)).await; // talk
    println!("[{:>5} ms] alice hangs up", start.elapsed().as_millis());
    alice.hangup(Some("bye".into())).await?;
    reach(&bob, CallState::Prepared).await?;
    tokio::task::yield_now().await; // let the printers catch up

    println!("\ntimings (ms from the call's start: caller call(), callee invite received)");
    print_timings("alice (caller)", alice.call_timings().await?);
    print_timings("bob (callee)", bob.call_timings().await?);
    alice.shutdown().await?;
    bob.shutdown().await?;
    Ok(())
}
