//! Driving two `CallMachine`s by hand (shared by the benches).
#![allow(dead_code)]

use std::time::Instant;

use callapi_core::call::{
    CallConfig, CallMachine, CallState, Command, Input, Output, PrepareConfig,
};
use callapi_core::protocol::{CallType, DeviceId, UserId};

pub fn relay(from: &mut CallMachine, to: &mut CallMachine, now: Instant) -> u64 {
    let mut n = 0;
    while let Some(out) = from.poll_output() {
        if let Output::Send(env) = out {
            to.handle_input(Input::Envelope(env), now);
            n += 1;
        }
    }
    n
}

pub fn pump(a: &mut CallMachine, b: &mut CallMachine, now: Instant) -> u64 {
    let mut total = 0;
    loop {
        let n = relay(a, b, now) + relay(b, a, now);
        if n == 0 {
            return total;
        }
        total += n;
    }
}

pub fn machine(user: &str, seed: u64, t0: Instant) -> CallMachine {
    let mut m = CallMachine::new(
        CallConfig::new(UserId::new(user).unwrap(), DeviceId::new("d").unwrap()).with_seed(seed),
        t0,
        1_700_000_000_000,
    );
    m.set_reports_frames(false);
    m.handle_command(
        Command::Prepare(PrepareConfig::new(format!("{user}-room"))),
        t0,
    )
    .unwrap();
    while m.poll_output().is_some() {}
    m
}

/// One call to `Connected` (and back with `hang_up`); the inputs both machines handled.
pub fn one_call(
    a: &mut CallMachine,
    b: &mut CallMachine,
    bob: &UserId,
    now: Instant,
    hang_up: bool,
) -> u64 {
    let mut n = 2;
    a.call(bob.clone(), CallType::Video, Default::default(), now)
        .unwrap();
    n += pump(a, b, now);
    b.handle_command(Command::Accept, now).unwrap();
    n += pump(a, b, now);
    assert_eq!(a.state(), CallState::Connected);
    assert_eq!(b.state(), CallState::Connected);
    if hang_up {
        a.handle_command(Command::Hangup { reason: None }, now)
            .unwrap();
        n += 1 + pump(a, b, now);
    }
    a.handle_timeout(now);
    b.handle_timeout(now);
    while a.poll_output().is_some() {}
    while b.poll_output().is_some() {}
    n
}
