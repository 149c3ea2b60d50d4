//! Figure 2: call throughput. K caller/callee pairs (`CallApi` + `NoMedia` over supervised
//! `WsTransport`s) place and hang up calls through one in-process `callapi-signal-server`, for
//! a fixed window; calls/s and setup p99.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callapi_core::call::{CallConfig, CallState, Notification, PrepareConfig};
use callapi_core::media::NoMedia;
use callapi_core::protocol::{CallType, DeviceId, UserId};
use callapi_core::CallApi;
use callapi_signal_ws::client::ClientOptions;
use callapi_signal_ws::{WsSignalClient, WsTransport};

use crate::common::*;
use crate::report::{verdict, Report};
use crate::stats::{ms, round3, Samples};

fn device(url: &str, user: &str, seed: u64) -> Res<CallApi> {
    let mut options = ClientOptions::default();
    options.ping_interval = Duration::from_secs(60);
    let transport = WsTransport::new(url)?.with_options(options);
    Ok(CallApi::new(
        CallConfig::new(UserId::new(user)?, DeviceId::new("d")?).with_seed(seed),
        WsSignalClient::start(
            transport,
            supervised(identity(user, "d")?, credentials(user)),
        ),
        NoMedia,
    ))
}

/// Runs the figure with `pairs` pairs for `window`.
pub async fn run(report: &mut Report, pairs: usize, window: Duration) -> Res<()> {
    let server = start_server().await?;
    let url = server.url();

    // Bring every device up and prepared (not measured).
    let t_up = Instant::now();
    let mut devices = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let caller = device(&url, &format!("c{i}"), 2 * i as u64 + 1)?;
        let callee = device(&url, &format!("e{i}"), 2 * i as u64 + 2)?;
        let cs = caller.subscribe();
        let es = callee.subscribe();
        devices.push((caller, cs, callee, es));
    }
    let mut ready = Vec::with_capacity(pairs);
    for (i, (caller, cs, callee, es)) in devices.into_iter().enumerate() {
        ready.push(tokio::spawn(async move {
            wait_linked(&caller).await?;
            wait_linked(&callee).await?;
            caller
                .prepare(PrepareConfig::new(format!("c{i}-room")))
                .await?;
            callee
                .prepare(PrepareConfig::new(format!("e{i}-room")))
                .await?;
            Ok::<_, BoxError>((caller, cs, callee, es))
        }));
    }
    let mut devices = Vec::with_capacity(pairs);
    for r in ready {
        devices.push(r.await??);
    }
    let up = t_up.elapsed();

    // The measured window.
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(pairs);
    for (i, (caller, mut cs, callee, mut es)) in devices.into_iter().enumerate() {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let answerer = callee.clone();
            let answering = tokio::spawn(async move {
                while let Some(n) = es.recv().await {
                    if matches!(&n, Notification::StateChanged(c) if c.state == CallState::Calling)
                    {
                        let _ = answerer.accept().await;
                    }
                }
            });
            let mut callee_state = callee.state_watch();
            let callee_name = format!("e{i}");
            let mut samples = Vec::new();
            let mut failures = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let ok = async {
                    caller.call(&callee_name, CallType::Video).await?;
                    wait_state(&mut cs, CallState::Connected).await?;
                    let took = t0.elapsed();
                    caller.hangup(None).await?;
                    wait_state(&mut cs, CallState::Prepared).await?;
                    wait_watch(&mut callee_state, CallState::Prepared).await?;
                    Ok::<_, BoxError>(took)
                }
                .await;
                match ok {
                    Ok(took) => samples.push(took),
                    Err(_) => failures += 1,
                }
            }
            answering.abort();
            let _ = caller.shutdown().await;
            let _ = callee.shutdown().await;
            (samples, failures)
        }));
    }
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (s, f) = t.await?;
        all.extend(s);
        failures += f;
    }
    // Calls finished by the end of the window plus the calls in flight then; the rate counts
    // the calls completed over the whole time the tasks ran.
    let elapsed = start.elapsed();
    server.shutdown().await;
    let completed = all.len();
    let setup = Samples::new(all);
    let rate = completed as f64 / elapsed.as_secs_f64();
    report.set("throughput.ws.calls_per_s", round3(rate));
    report.set("throughput.ws.setup_p99_ms", round3(ms(setup.p99())));
    report.set("throughput.ws.setup_p50_ms", round3(ms(setup.p50())));
    report.set("throughput.ws.pairs", pairs as u64);
    report.set("throughput.ws.calls", completed as u64);
    report.set("throughput.ws.failed_calls", failures);
    report.set("throughput.ws.window_s", round3(elapsed.as_secs_f64()));
    report.row(
        format!("2. throughput, ws, {pairs} pairs, {:.1} s", elapsed.as_secs_f64()),
        format!(
            "{rate:.0} calls/s ({completed} calls, {failures} failed), setup p50 {:.1} ms, p99 {:.1} ms",
            ms(setup.p50()),
            ms(setup.p99())
        ),
        format!("{} devices up and prepared in {:.1} s", 2 * pairs, up.as_secs_f64()),
        format!("≥ 5,000 calls/s: {}", verdict(rate >= 5000.0)),
    );
    Ok(())
}
