//! A bounded soak: `--pairs` caller/callee pairs (`CallApi`, `NoMedia`, supervised
//! `WsTransport`) call in a loop for `--duration` through `callapi-signal-server` (a child
//! process) behind a seeded TCP fault proxy that cuts, stalls and refuses connections. The
//! server's RSS and open descriptors are sampled every 10 s; the soak fails (exit code 1) when
//! either changed by more than 5 % from minute 2 to the end, when a call got stuck, or when no
//! call completed.
//!
//! ```text
//! nice cargo run --release -p callapi-examples --bin soak -- [--duration 10m] [--pairs 200] [--seed N] [--json PATH]
//! ```
//!
//! All traffic is on loopback; it stops by itself.

mod args;
mod device;
mod pairs;
mod proxy;
mod report;
mod sampler;
mod server;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use tokio::time::Instant;

use args::Args;
use pairs::Tally;
use proxy::{FaultPlan, FaultProxy};
use report::Outcome;

/// Any error of the soak.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The soak's result.
pub type Res<T> = Result<T, BoxError>;

/// Longest a device takes to shut down.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// Takes what a mutex holds (a poisoned one still gives its data).
fn take<T: Default>(m: &Mutex<T>) -> T {
    std::mem::take(&mut *m.lock().unwrap_or_else(|p| p.into_inner()))
}

fn percent(p: f64) -> f64 {
    (p / 100.0).clamp(0.0, 1.0)
}

async fn soak(args: Args) -> Res<bool> {
    let seed = args.seed.unwrap_or_else(rand::random);
    eprintln!(
        "soak: seed {seed} (rerun with --seed {seed}); {} pairs for {:?}",
        args.pairs, args.duration
    );
    // 400 devices, 800 proxied sockets, the server's 400.
    rlimit::increase_nofile_limit(1 << 16)?;
    let load_start = loadavg();

    let server = server::spawn().await?;
    let plan = FaultPlan {
        fault_every: args.fault_every,
        stall_share: percent(args.stall_percent),
        stall: (Duration::from_secs(1), Duration::from_secs(5)),
        refuse: percent(args.refuse_percent),
    };
    let proxy = FaultProxy::start(server.addr, plan, seed).await?;
    let url = format!("ws://{}{}", proxy.addr(), server.path());

    let t_up = Instant::now();
    let pairs = pairs::bring_up(&url, args.pairs, seed).await?;
    let up_s = t_up.elapsed().as_secs_f64();
    eprintln!(
        "soak: {} devices connected and prepared in {up_s:.1} s",
        2 * args.pairs
    );

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let watch_stop = Arc::new(AtomicBool::new(false));
    let watchdog = tokio::spawn(pairs::watchdog(
        pairs.clone(),
        seed,
        tally.clone(),
        watch_stop.clone(),
    ));
    let mut tasks: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            tokio::spawn(pairs::run_pair(
                p.clone(),
                seed,
                i,
                tally.clone(),
                stop.clone(),
            ))
        })
        .collect();

    let start = Instant::now();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let counted = tally.clone();
    let sampled = sampler::run(
        server.pid,
        start,
        args.sample_every,
        args.duration,
        samples.clone(),
        move || counted.completed_total(),
    )
    .await;
    stop.store(true, Ordering::Relaxed);

    // Each pair finishes the call it is in, within its bound.
    let drain_until = Instant::now() + pairs::max_bound() + pairs::GRACE + pairs::MARGIN * 2;
    for (i, task) in tasks.iter_mut().enumerate() {
        if tokio::time::timeout_at(drain_until, &mut *task)
            .await
            .is_err()
        {
            task.abort();
            if let Ok(mut s) = tally.stuck.lock() {
                let line = format!(
                    "STUCK CALL: pair {i} did not finish its last call in time (seed {seed}; rerun with --seed {seed})"
                );
                eprintln!("{line}");
                s.push(line);
            }
        }
    }
    watch_stop.store(true, Ordering::Relaxed);
    let _ = watchdog.await;
    let load_end = loadavg();

    let faults = proxy.counts().snapshot();
    futures::future::join_all(pairs.iter().flat_map(|p| {
        [p.caller.api.clone(), p.callee.api.clone()].map(|api| async move {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, api.shutdown()).await;
        })
    }))
    .await;
    proxy.stop().await;
    let stopped = server.stop(server::START_STOP).await;
    sampled?;
    if let Err(e) = stopped {
        eprintln!("soak: {e}");
    }

    let outcome = Outcome {
        seed,
        pairs: args.pairs,
        duration: args.duration,
        samples: take(&samples),
        placed: tally.placed.load(Ordering::Relaxed),
        completed: take(&tally.completed),
        failed: take(&tally.failed),
        stuck: take(&tally.stuck),
        faults,
        load: (load_start, load_end),
        tolerance: args.tolerance_percent,
        up_s,
    };
    outcome.finish(args.json.as_deref())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = if args.serve_ws {
        runtime.block_on(server::serve()).map(|()| true)
    } else {
        runtime.block_on(soak(args))
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::FAILURE
        }
    }
}
