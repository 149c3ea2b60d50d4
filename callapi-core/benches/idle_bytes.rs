//! Bytes per idle call state (figure 6 of docs/BENCHMARKS.md), counted exactly with a counting
//! global allocator (`stats_alloc`): the heap bytes still allocated after driving prepared
//! machines into a connected call with everything acknowledged and all outputs taken, per
//! machine (each side of a call holds its own state). Also printed: what a prepared machine
//! without a call holds (heap, and `size_of::<CallMachine>()` inline).
//!
//! Run with `cargo bench -p callapi-core --bench idle_bytes`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::alloc::System;
use std::hint::black_box;
use std::time::{Duration, Instant};

use callapi_core::call::CallMachine;
use callapi_core::protocol::UserId;
use common::{machine, one_call};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes a machine keeps for an idle connected call, and for a prepared machine.
fn idle_call_bytes() {
    const N: usize = 1000;
    let t0 = Instant::now();
    // Prepared machines alone.
    let region = Region::new(GLOBAL);
    let prepared: Vec<(CallMachine, CallMachine)> = (0..N)
        .map(|i| {
            (
                machine(&format!("a{i:05}"), 2 * i as u64 + 1, t0),
                machine(&format!("b{i:05}"), 2 * i as u64 + 2, t0),
            )
        })
        .collect();
    let s = region.change();
    let prepared_heap =
        (s.bytes_allocated as i64 - s.bytes_deallocated as i64) as f64 / (2 * N) as f64;
    drop(prepared);

    let mut held: Vec<(CallMachine, CallMachine)> = (0..N)
        .map(|i| {
            (
                machine(&format!("a{i:05}"), 2 * i as u64 + 1, t0),
                machine(&format!("b{i:05}"), 2 * i as u64 + 2, t0),
            )
        })
        .collect();
    let region = Region::new(GLOBAL);
    for (i, (a, b)) in held.iter_mut().enumerate() {
        let bob = UserId::new(format!("b{i:05}")).unwrap();
        one_call(a, b, &bob, t0 + Duration::from_secs(1), false);
    }
    let s = region.change();
    let call_heap = (s.bytes_allocated as i64 - s.bytes_deallocated as i64) as f64 / (2 * N) as f64;
    let inline = std::mem::size_of::<CallMachine>();
    println!(
        "machine/idle_call_bytes: {call_heap:.0} heap bytes per machine for an idle connected call \
         (average over {} machines); a prepared machine without a call holds {prepared_heap:.0} bytes \
         in all (its {inline} inline bytes, size_of::<CallMachine>, included)",
        2 * N
    );
    black_box(held);
}

fn main() {
    // `cargo bench` passes `--bench`. Test runners list targets first (`--list`, as nextest does
    // with `--all-targets`): answer in the libtest format so they see one benchmark and skip it.
    if std::env::args().any(|a| a == "--list") {
        println!("machine/idle_call_bytes: benchmark");
        return;
    }
    idle_call_bytes();
}
