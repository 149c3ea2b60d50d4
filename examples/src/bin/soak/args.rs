//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// A bounded soak: pairs of devices calling in a loop through `callapi-signal-server` (a child
/// process) behind a seeded TCP fault proxy; the server's RSS and open descriptors sampled,
/// stuck calls watched for. Exits non-zero when a criterion fails.
#[derive(Debug, Parser)]
#[command(name = "soak")]
pub struct Args {
    /// How long the pairs keep calling (each then finishes the call it is in).
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Caller/callee pairs.
    #[arg(long, default_value_t = 200)]
    pub pairs: usize,
    /// Seed of the fault proxy and of the pairs' scripts (random when absent; printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Mean time between two faults (a cut or a stall) on one proxied connection.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub fault_every: Duration,
    /// Share of faults that are stalls (the rest are cuts), in percent.
    #[arg(long, default_value_t = 30.0)]
    pub stall_percent: f64,
    /// Share of connection attempts the proxy refuses, in percent.
    #[arg(long, default_value_t = 5.0)]
    pub refuse_percent: f64,
    /// How often the server's RSS and descriptors are sampled.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub sample_every: Duration,
    /// Largest allowed change of RSS and of open descriptors from the early sample (at a fifth
    /// of the duration: minute 2 of 10) to the last, in percent.
    #[arg(long, default_value_t = 5.0)]
    pub tolerance_percent: f64,
    /// Internal: run the signal server and print its URL (the soak's child process).
    #[arg(long, hide = true)]
    pub serve_ws: bool,
}
