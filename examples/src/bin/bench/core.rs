//! Figure 6 (in-process): inputs handled per second by one `CallMachine` over a realistic
//! input mix (complete calls between two machines: prepare once, then call, invite, ack,
//! ringing, accept, hangup, acks, timers), and resident bytes per idle call state (the RSS
//! growth of many machines each holding one connected call with everything acknowledged,
//! divided by their number). The criterion bench `cargo bench -p callapi-core` measures the
//! same mix and counts heap bytes exactly.

use std::time::{Duration, Instant};

use callapi_core::call::{
    CallConfig, CallMachine, CallState, Command, Input, Output, PrepareConfig,
};
use callapi_core::protocol::{CallType, DeviceId, UserId};

use crate::common::*;
use crate::report::{verdict, Report};
use crate::stats::round3;

/// Delivers every envelope `from` wants to send to `to`; returns the inputs handled.
fn relay(from: &mut CallMachine, to: &mut CallMachine, now: Instant) -> Res<u64> {
    let mut n = 0;
    while let Some(out) = from.poll_output() {
        if let Output::Send(env) = out {
            to.handle_input(Input::Envelope(env), now);
            n += 1;
        }
    }
    Ok(n)
}

fn pump(a: &mut CallMachine, b: &mut CallMachine, now: Instant) -> Res<u64> {
    let mut total = 0;
    loop {
        let n = relay(a, b, now)? + relay(b, a, now)?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

/// Two prepared machines (`NoMedia`-style: connected at accept).
pub fn pair(i: u64, t0: Instant) -> Res<(CallMachine, CallMachine)> {
    let mut a = CallMachine::new(
        CallConfig::new(UserId::new(format!("a{i}"))?, DeviceId::new("d")?).with_seed(2 * i + 1),
        t0,
        1_700_000_000_000,
    );
    let mut b = CallMachine::new(
        CallConfig::new(UserId::new(format!("b{i}"))?, DeviceId::new("d")?).with_seed(2 * i + 2),
        t0,
        1_700_000_000_000,
    );
    a.set_reports_frames(false);
    b.set_reports_frames(false);
    a.handle_command(
        Command::Prepare(PrepareConfig::new(format!("a{i}-room"))),
        t0,
    )?;
    b.handle_command(
        Command::Prepare(PrepareConfig::new(format!("b{i}-room"))),
        t0,
    )?;
    while a.poll_output().is_some() {}
    while b.poll_output().is_some() {}
    Ok((a, b))
}

/// Drives one call from `Prepared` to `Connected` (and, with `hang_up`, back); returns the
/// inputs handled by both machines.
pub fn one_call(
    a: &mut CallMachine,
    b: &mut CallMachine,
    b_user: &UserId,
    now: Instant,
    hang_up: bool,
) -> Res<u64> {
    let mut n = 3;
    a.call(b_user.clone(), CallType::Video, Default::default(), now)?;
    n += pump(a, b, now)?;
    b.handle_command(Command::Accept, now)?;
    n += pump(a, b, now)?;
    if a.state() != CallState::Connected || b.state() != CallState::Connected {
        return Err("the benchmark call did not connect".into());
    }
    if hang_up {
        a.handle_command(Command::Hangup { reason: None }, now)?;
        n += pump(a, b, now)?;
    } else {
        n -= 1;
    }
    // Let the machines run their timers (nothing is pending; this is the idle check).
    a.handle_timeout(now);
    b.handle_timeout(now);
    while a.poll_output().is_some() {}
    while b.poll_output().is_some() {}
    Ok(n)
}

/// Inputs per second over `window` of complete calls.
pub fn inputs_per_s(window: Duration) -> Res<(f64, u64, u64)> {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(0, t0)?;
    let b_user = UserId::new("b0")?;
    let mut inputs = 0u64;
    let mut calls = 0u64;
    let start = Instant::now();
    let mut now = t0;
    while start.elapsed() < window {
        for _ in 0..64 {
            // Time moves on by a second per call, so old state expires as in a real device.
            now += Duration::from_secs(1);
            inputs += one_call(&mut a, &mut b, &b_user, now, true)?;
            calls += 1;
        }
    }
    Ok((inputs as f64 / start.elapsed().as_secs_f64(), calls, inputs))
}

/// RSS growth per machine when prepared machines each take one connected, idle call (the
/// call state), and RSS per prepared machine without a call.
fn rss_per_idle_call(machines: usize) -> Res<(f64, f64)> {
    let t0 = Instant::now();
    let pid = std::process::id();
    let pairs = machines / 2;
    let start = rss_bytes(pid)?;
    let mut held = Vec::with_capacity(pairs);
    for i in 0..pairs as u64 {
        held.push(pair(i + 1_000_000, t0)?);
    }
    let before = rss_bytes(pid)?;
    for (i, (a, b)) in held.iter_mut().enumerate() {
        let b_user = UserId::new(format!("b{}", i + 1_000_000))?;
        one_call(a, b, &b_user, t0, false)?;
    }
    let after = rss_bytes(pid)?;
    let n = (2 * pairs) as f64;
    let per_call = after.saturating_sub(before) as f64 / n;
    let per_prepared = before.saturating_sub(start) as f64 / n;
    drop(held);
    Ok((per_call, per_prepared))
}

/// Runs the figure.
pub fn run(report: &mut Report, window: Duration, machines: usize) -> Res<()> {
    let (rate, calls, inputs) = inputs_per_s(window)?;
    let (bytes, prepared) = rss_per_idle_call(machines)?;
    report.set("core.inputs_per_s", round3(rate));
    report.set("core.bytes_per_idle_call", round3(bytes));
    report.set("core.calls", calls);
    report.set("core.idle_machines", machines as u64);
    report.set("core.bytes_per_prepared_machine", round3(prepared));
    report.set(
        "core.inputs_per_call",
        round3(inputs as f64 / calls.max(1) as f64),
    );
    report.row(
        "6. core: one CallMachine (in-process; criterion: `cargo bench -p callapi-core`)",
        format!(
            "{:.2} M inputs/s ({calls} calls); {:.0} B RSS growth per machine for an idle connected call ({machines} machines)",
            rate / 1e6,
            bytes
        ),
        format!("a prepared machine without a call: {prepared:.0} B RSS"),
        format!(
            "≥ 1 M inputs/s: {}; ≤ 2 KiB per idle call: {}",
            verdict(rate >= 1e6),
            verdict(bytes <= 2048.0)
        ),
    );
    Ok(())
}
