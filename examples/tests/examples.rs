//! Every example in `examples/` runs to completion by itself, quickly. Each example's `main`
//! checks its own scenario (it waits for each state it expects, with a bound where time is real,
//! and returns an error otherwise), so running it here is the test: the files are included as
//! modules and their `main` is called on a thread, bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::sync::mpsc;
use std::time::Duration;

#[path = "../examples/custom_transport.rs"]
mod custom_transport;
#[path = "../examples/mock_call.rs"]
mod mock_call;
#[path = "../examples/mqtt_call.rs"]
mod mqtt_call;

/// Runs `main` on its own thread; panics if it fails or takes longer than `within`.
fn bounded<E: std::fmt::Display + 'static>(
    name: &str,
    within: Duration,
    main: fn() -> Result<(), E>,
) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let result = main().map_err(|e| e.to_string());
        let _ = tx.send(result);
    });
    match rx.recv_timeout(within) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("example {name} failed: {e}"),
        Err(_) => panic!("example {name} did not finish within {within:?}"),
    }
}

#[test]
fn mock_call_runs_to_completion() {
    bounded("mock_call", Duration::from_secs(20), mock_call::main);
}

#[test]
fn custom_transport_runs_to_completion() {
    bounded(
        "custom_transport",
        Duration::from_secs(20),
        custom_transport::main,
    );
}

#[test]
fn mqtt_call_runs_to_completion() {
    bounded("mqtt_call", Duration::from_secs(25), mqtt_call::main);
}
