//! Criterion micro-benchmark of the sans-IO `CallMachine` (figure 6 of docs/BENCHMARKS.md),
//! `machine/call_cycle`: complete calls between two machines (call, invite, ack, ringing,
//! accept, acks, hangup, acks; time moves on a second per call), reported as inputs per second
//! (`handle_input` calls on either machine: one thread, each machine handles its share in turn,
//! so the rate is what one machine sustains). The system allocator, as in an app.
//! The bytes per idle call are measured by the `idle_bytes` bench (a counting allocator).
//!
//! Run with `cargo bench -p callapi-core`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use callapi_core::protocol::UserId;
use common::{machine, one_call};
use criterion::{criterion_group, Criterion, Throughput};

/// Inputs per complete call (the criterion throughput unit).
fn inputs_per_call() -> u64 {
    let t0 = Instant::now();
    let (mut a, mut b) = (machine("alice", 1, t0), machine("bob", 2, t0));
    let bob = UserId::new("bob").unwrap();
    one_call(&mut a, &mut b, &bob, t0 + Duration::from_secs(1), true)
}

fn call_cycle(c: &mut Criterion) {
    let per_call = inputs_per_call();
    let mut g = c.benchmark_group("machine");
    g.throughput(Throughput::Elements(per_call));
    g.bench_function("call_cycle", |bench| {
        let t0 = Instant::now();
        let (mut a, mut b) = (machine("alice", 1, t0), machine("bob", 2, t0));
        let bob = UserId::new("bob").unwrap();
        let mut now = t0;
        bench.iter(|| {
            now += Duration::from_secs(1);
            black_box(one_call(&mut a, &mut b, &bob, now, true))
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = call_cycle
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
