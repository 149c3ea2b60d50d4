//! The result: minute-2 against last-minute server RSS and descriptors, calls completed and
//! failed by reason, stuck calls, what the fault proxy did; printed and written as JSON.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::sampler::Sample;
use crate::Res;

/// Everything the soak measured.
pub struct Outcome {
    /// The seed.
    pub seed: u64,
    /// Pairs.
    pub pairs: usize,
    /// How long the pairs called.
    pub duration: Duration,
    /// The server samples.
    pub samples: Vec<Sample>,
    /// Calls placed.
    pub placed: u64,
    /// Completed calls by kind.
    pub completed: BTreeMap<&'static str, u64>,
    /// Failed calls by reason.
    pub failed: BTreeMap<String, u64>,
    /// Stuck calls.
    pub stuck: Vec<String>,
    /// Proxy: (accepted, refused, cuts, stalls).
    pub faults: (u64, u64, u64, u64),
    /// Load average (1, 5, 15 min) at the start and at the end.
    pub load: (String, String),
    /// Allowed change of RSS and descriptors, percent.
    pub tolerance: f64,
    /// Seconds the devices took to come up.
    pub up_s: f64,
}

fn change(early: u64, late: u64) -> f64 {
    (late as f64 - early as f64) / (early.max(1) as f64) * 100.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

impl Outcome {
    /// The early sample (nearest to a fifth of the duration: minute 2 of 10) and the last.
    fn early_late(&self) -> Option<(Sample, Sample)> {
        let target = self.duration.as_secs_f64() / 5.0;
        let early = self
            .samples
            .iter()
            .copied()
            .min_by(|a, b| (a.at_s - target).abs().total_cmp(&(b.at_s - target).abs()))?;
        Some((early, *self.samples.last()?))
    }

    /// Prints the result, writes the JSON when asked; whether every criterion was met.
    pub fn finish(&self, json_path: Option<&Path>) -> Res<bool> {
        let (early, late) = self.early_late().ok_or("no samples were taken")?;
        let rss_change = change(early.rss, late.rss);
        let fd_change = change(early.fds, late.fds);
        let rss_ok = rss_change.abs() <= self.tolerance;
        let fd_ok = fd_change.abs() <= self.tolerance;
        let completed: u64 = self.completed.values().sum();
        let failed: u64 = self.failed.values().sum();
        let stuck_ok = self.stuck.is_empty();
        let calls_ok = completed > 0;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        println!(
            "soak: {} pairs, {:.0} s, seed {}; load average {} at start, {} at end",
            self.pairs,
            self.duration.as_secs_f64(),
            self.seed,
            self.load.0,
            self.load.1
        );
        println!(
            "  server RSS    t={:.0} s {:.2} MiB, t={:.0} s {:.2} MiB: {rss_change:+.2} % (within ±{} %: {})",
            early.at_s,
            mib(early.rss),
            late.at_s,
            mib(late.rss),
            self.tolerance,
            verdict(rss_ok)
        );
        println!(
            "  server fds    t={:.0} s {}, t={:.0} s {}: {fd_change:+.2} % (within ±{} %: {})",
            early.at_s,
            early.fds,
            late.at_s,
            late.fds,
            self.tolerance,
            verdict(fd_ok)
        );
        println!(
            "  calls         {} placed, {completed} completed {:?}, {failed} failed",
            self.placed, self.completed
        );
        for (why, n) in &self.failed {
            println!("    failed {n:>6}  {why}");
        }
        println!(
            "  stuck calls   {} ({})",
            self.stuck.len(),
            verdict(stuck_ok)
        );
        for s in &self.stuck {
            println!("    {s}");
        }
        let (accepted, refused, cuts, stalls) = self.faults;
        println!(
            "  faults        {accepted} connections, {refused} refused, {cuts} cut, {stalls} stalled"
        );
        let ok = rss_ok && fd_ok && stuck_ok && calls_ok;
        if let Some(path) = json_path {
            let samples: Vec<_> = self
                .samples
                .iter()
                .map(|s| json!({"at_s": s.at_s, "rss_bytes": s.rss, "fds": s.fds, "completed": s.completed}))
                .collect();
            let doc = json!({
                "seed": self.seed,
                "pairs": self.pairs,
                "duration_s": self.duration.as_secs_f64(),
                "devices_up_s": self.up_s,
                "loadavg_at_start": self.load.0,
                "loadavg_at_end": self.load.1,
                "rss": {"early_at_s": early.at_s, "early_bytes": early.rss, "late_at_s": late.at_s, "late_bytes": late.rss, "change_percent": rss_change, "met": rss_ok},
                "fds": {"early_at_s": early.at_s, "early": early.fds, "late_at_s": late.at_s, "late": late.fds, "change_percent": fd_change, "met": fd_ok},
                "calls": {"placed": self.placed, "completed": completed, "completed_by_kind": self.completed, "failed": failed, "failed_by_reason": self.failed},
                "stuck_calls": self.stuck,
                "faults": {"connections": accepted, "refused": refused, "cuts": cuts, "stalls": stalls},
                "tolerance_percent": self.tolerance,
                "passed": ok,
                "samples": samples,
            });
            std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        }
        if ok {
            println!("soak: PASSED");
        } else {
            println!(
                "soak: FAILED (seed {}; rerun with --seed {})",
                self.seed, self.seed
            );
        }
        Ok(ok)
    }
}
