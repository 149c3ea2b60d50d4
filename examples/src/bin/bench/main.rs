//! The benchmark harness: each figure of `docs/BENCHMARKS.md` against a baseline measured in
//! the same run, printed as a table and optionally written as JSON.
//!
//! ```text
//! cargo run --release -p callapi-examples --bin bench -- [--quick] [--json PATH]
//! ```
//!
//! All traffic is on loopback; every figure is bounded in time and stops by itself.

mod churn;
mod common;
mod core;
mod fleet;
mod group;
mod media;
mod memory;
mod mosquitto;
mod mqtt_wire;
mod relay;
mod report;
mod setup;
mod stats;
mod throughput;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use common::Res;
use report::Report;

/// callapi benchmark harness (see docs/BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Fewer iterations, smaller loads: finishes in under a minute.
    #[arg(long)]
    quick: bool,
    /// Write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Run only these figures (comma-separated: core, setup, throughput, relay, memory, media,
    /// group, churn, fleet).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Internal: run a signal server and print its URL (the memory figure's child process).
    #[arg(long, hide = true)]
    serve_ws: bool,
    /// Internal: run a plain TCP listener that accepts and closes (the churn figure's floor).
    #[arg(long, hide = true)]
    serve_tcp: bool,
}

/// Sizes of one run.
struct Plan {
    setup_calls: usize,
    pairs: usize,
    window: Duration,
    relay_pairs: usize,
    relay_step: Duration,
    connections: usize,
    connections_large: usize,
    churn_connectors: usize,
    churn_window: Duration,
    churn_rounds: usize,
    core_window: Duration,
    idle_machines: usize,
    media_calls: usize,
    group_calls: usize,
    fleet_calls: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                setup_calls: 300,
                pairs: 200,
                window: Duration::from_secs(3),
                relay_pairs: 10,
                relay_step: Duration::from_millis(500),
                connections: 2_000,
                connections_large: 5_000,
                churn_connectors: 16,
                churn_window: Duration::from_secs(1),
                churn_rounds: 1,
                core_window: Duration::from_millis(500),
                idle_machines: 10_000,
                media_calls: 10,
                group_calls: 20,
                fleet_calls: 100,
            }
        } else {
            Self {
                setup_calls: 1_000,
                pairs: 1_000,
                window: Duration::from_secs(15),
                relay_pairs: 50,
                relay_step: Duration::from_secs(2),
                connections: 10_000,
                connections_large: 50_000,
                churn_connectors: 16,
                churn_window: Duration::from_secs(3),
                churn_rounds: 2,
                core_window: Duration::from_secs(3),
                idle_machines: 100_000,
                media_calls: 20,
                group_calls: 100,
                fleet_calls: 1_000,
            }
        }
    }
}

fn main() -> Res<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if args.serve_ws {
        return runtime.block_on(memory::serve());
    }
    if args.serve_tcp {
        return runtime.block_on(churn::serve_tcp());
    }
    // 50,000+ sockets on each side of the memory figure (children inherit the limit).
    let nofile = common::raise_nofile(1 << 20)?;
    let mut plan = Plan::new(args.quick);
    // Each side of the memory figure (the server child, and this process's clients) needs one
    // descriptor per connection: where the limit cannot rise that far, the larger size is the
    // largest whole thousand that fits, reported as `memory.connections_large`.
    let fits = (nofile.saturating_sub(500) / 1_000 * 1_000) as usize;
    if plan.connections_large > fits {
        eprintln!(
            "figure 4: open-file limit {nofile} holds {fits} connections, not {}: the larger size is {fits}",
            plan.connections_large
        );
        plan.connections_large = fits.max(plan.connections + 1_000);
    }
    let wants = |f: &str| args.only.is_empty() || args.only.iter().any(|o| o == f);
    let mut report = Report::default();
    report.set("meta.quick", args.quick);
    report.set("meta.nofile_limit", nofile);
    report.set("meta.machine", machine());
    report.set("meta.loadavg_at_start", loadavg());
    let started = Instant::now();

    if wants("core") {
        eprintln!(
            "[{:6.1} s] figure 6: core ...",
            started.elapsed().as_secs_f64()
        );
        core::run(&mut report, plan.core_window, plan.idle_machines)?;
    }
    runtime.block_on(async {
        if wants("setup") {
            eprintln!(
                "[{:6.1} s] figure 1: call setup vs transport floor ...",
                started.elapsed().as_secs_f64()
            );
            setup::run(&mut report, plan.setup_calls).await?;
        }
        if wants("throughput") {
            eprintln!(
                "[{:6.1} s] figure 2: call throughput ...",
                started.elapsed().as_secs_f64()
            );
            throughput::run(&mut report, plan.pairs, plan.window).await?;
        }
        if wants("relay") {
            eprintln!(
                "[{:6.1} s] figure 3: relay vs Mosquitto ...",
                started.elapsed().as_secs_f64()
            );
            relay::run(&mut report, plan.relay_pairs, plan.relay_step).await?;
        }
        if wants("memory") {
            eprintln!(
                "[{:6.1} s] figure 4: memory per idle connection ...",
                started.elapsed().as_secs_f64()
            );
            memory::run(&mut report, plan.connections, plan.connections_large).await?;
        }
        if wants("media") {
            eprintln!(
                "[{:6.1} s] figure 5: media ...",
                started.elapsed().as_secs_f64()
            );
            media::run(&mut report, plan.media_calls).await?;
        }
        if wants("group") {
            eprintln!(
                "[{:6.1} s] figure 7: group calls ...",
                started.elapsed().as_secs_f64()
            );
            group::run(&mut report, plan.group_calls).await?;
        }
        if wants("churn") {
            eprintln!(
                "[{:6.1} s] figure 8: connection churn vs raw TCP accepts ...",
                started.elapsed().as_secs_f64()
            );
            churn::run(
                &mut report,
                plan.churn_connectors,
                plan.churn_window,
                plan.churn_rounds,
            )
            .await?;
        }
        if wants("fleet") {
            eprintln!(
                "[{:6.1} s] figure 9: call setup across fleet nodes vs within one ...",
                started.elapsed().as_secs_f64()
            );
            fleet::run(&mut report, plan.fleet_calls).await?;
        }
        Ok::<_, common::BoxError>(())
    })?;
    report.set(
        "meta.elapsed_s",
        stats::round3(started.elapsed().as_secs_f64()),
    );

    println!("{}", report.table());
    println!(
        "({} run in {:.1} s on {}; load average {})",
        if args.quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        machine(),
        loadavg()
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report.json())?)?;
        eprintln!("wrote {}", path.display());
    }
    runtime.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}

/// The 1-, 5- and 15-minute load averages (other work on the box skews every figure).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// "N cores, CPU model, kernel".
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_owned(), |m| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or("unknown kernel".to_owned(), |k| k.trim().to_owned());
    format!("{cores} cores, {model}, Linux {kernel}")
}
