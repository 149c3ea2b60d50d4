//! A `CallMachine` fed an arbitrary sequence of inputs: envelopes built from fuzz data (ids
//! from small sets, calls and acknowledgements matching the machine's own), raw bytes through
//! the decoder, app commands, calls placed, link changes, media events and time passing.
//!
//! After every step: no panic; the outputs drain (bounded); every envelope it sends is from its
//! own identity and encodes to what decodes back to it (a receiver can read it); the state it
//! reports is the last state it notified; a call is in progress exactly when it reports one;
//! and once a timeout is handled, the next one is not in the past.
#![no_main]

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use callapi_core::call::{
    CallConfig, CallMachine, Command, Input, Notification, Output, PrepareConfig,
};
use callapi_core::media::{MediaEvent, MediaKind, MediaPeer};
use callapi_core::protocol::{decode, encode, CallId, CallType, Extension, MessageId};
use callapi_core::signal::LinkState;
use callapi_fuzz::{device, user, ArbEnvelope, SIM_UNIX_MS};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Cmd {
    Prepare(u8),
    Accept,
    Reject,
    Cancel,
    Hangup,
    SendMessage(String),
    SendDtmf(String),
    Deinitialize,
    Pause,
    Resume,
    Disconnect(bool),
    Reset,
    Invite(Vec<u8>),
    CancelInvites(Vec<u8>),
    Leave,
    End,
    Join(u8),
}

#[derive(Debug, Arbitrary)]
enum Media {
    LocalJoined,
    RemoteJoined,
    FirstLocalFramePublished,
    FirstRemoteFrame(bool),
    RemoteLeft,
    CaptureFailed,
    Failed,
    PeerJoined(u8, u8),
    PeerFirstFrame(u8, u8),
    PeerLeft(u8, u8),
    PeerFailed(u8, u8),
    JoinFailed,
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// An envelope to this device (`to` is forced to its user).
    ToMe(ArbEnvelope),
    /// An envelope as built (maybe for another user or device).
    Any(ArbEnvelope),
    /// Bytes from the backend, decoded as a transport decodes them.
    Raw(Vec<u8>),
    Command(Cmd),
    Call { remote: u8, video: bool },
    CallGroup { users: Vec<u8>, video: bool },
    Link(u8),
    Media(Media),
    /// Time passes (in tens of ms), then the due timeouts run.
    Advance(u16),
    /// Jump to the next timeout and run it.
    NextTimeout,
}

#[derive(Debug, Arbitrary)]
struct Script {
    seed: u64,
    steps: Vec<Step>,
}

struct Harness {
    m: CallMachine,
    now: Instant,
    calls: Vec<CallId>,
    /// Ids of the envelopes it sent (each checked once).
    sent: Vec<MessageId>,
    last_state: Option<callapi_core::call::CallState>,
}

impl Harness {
    fn call_id(&self) -> CallId {
        self.m
            .call_info()
            .map(|c| c.call_id)
            .or_else(|| self.calls.last().copied())
            .unwrap_or_else(|| callapi_fuzz::call_id(0))
    }

    fn remember_call(&mut self, id: CallId) {
        if !self.calls.contains(&id) {
            self.calls.push(id);
            if self.calls.len() > 8 {
                self.calls.remove(0);
            }
        }
    }

    /// Drains the outputs and checks them and the state.
    fn check(&mut self) {
        let me = (self.m.user_id().clone(), self.m.device_id().clone());
        let mut n = 0usize;
        while let Some(out) = self.m.poll_output() {
            n += 1;
            assert!(n < 10_000, "outputs do not drain");
            match out {
                Output::Send(env) => {
                    assert_eq!((&env.from, &env.from_device), (&me.0, &me.1), "sent as another");
                    // A retransmission is the envelope checked when first sent.
                    if !self.sent.contains(&env.id) {
                        let bytes = encode(&env).expect("a sent envelope encodes");
                        assert_eq!(decode(&bytes).as_ref(), Ok(&env), "a receiver reads it back");
                        self.sent.push(env.id);
                    }
                    self.remember_call(env.call_id);
                }
                Output::Notify(Notification::StateChanged(c)) => {
                    if let Some(info) = &c.call {
                        self.remember_call(info.call_id);
                    }
                    self.last_state = Some(c.state);
                }
                Output::Notify(_) | Output::Media(_) | Output::Link(_) => {}
            }
        }
        if let Some(s) = self.last_state {
            assert_eq!(self.m.state(), s, "state() is not the last state notified");
        }
        assert_eq!(
            self.m.state().is_active(),
            self.m.call_info().is_some(),
            "state {:?} with call {:?}",
            self.m.state(),
            self.m.call_info()
        );
    }

    fn timeout(&mut self, now: Instant) {
        self.now = now;
        self.m.handle_timeout(now);
        if let Some(next) = self.m.poll_timeout() {
            assert!(next > now, "the next timeout is in the past after handling it");
        }
    }

    fn peer(u: u8, d: u8) -> MediaPeer {
        MediaPeer {
            user: user(u),
            device: device(d),
        }
    }

    fn step(&mut self, step: Step) {
        let now = self.now;
        match step {
            Step::ToMe(e) => {
                let mut env = e.build(&self.calls, &self.sent);
                env.to = self.m.user_id().clone();
                if env.to_device.is_some() {
                    env.to_device = Some(self.m.device_id().clone());
                }
                if env.from == env.to && env.from_device == *self.m.device_id() {
                    env.from_device = device(1);
                }
                self.m.handle_input(Input::Envelope(env), now);
            }
            Step::Any(e) => {
                let env = e.build(&self.calls, &self.sent);
                self.m.handle_input(Input::Envelope(env), now);
            }
            Step::Raw(bytes) => {
                let input = match decode(&bytes) {
                    Ok(env) => Input::Envelope(env),
                    Err(err) => Input::InvalidEnvelope(err),
                };
                self.m.handle_input(input, now);
            }
            Step::Command(c) => {
                let users = |v: Vec<u8>| v.into_iter().take(4).map(user).collect::<Vec<_>>();
                let cmd = match c {
                    Cmd::Prepare(r) => Command::Prepare(PrepareConfig::new(format!("room{}", r % 3))),
                    Cmd::Accept => Command::Accept,
                    Cmd::Reject => Command::Reject { reason: None },
                    Cmd::Cancel => Command::Cancel { reason: None },
                    Cmd::Hangup => Command::Hangup { reason: None },
                    Cmd::SendMessage(data) => Command::SendMessage { data },
                    Cmd::SendDtmf(digits) => Command::SendDtmf { digits },
                    Cmd::Deinitialize => Command::Deinitialize,
                    Cmd::Pause => Command::Pause,
                    Cmd::Resume => Command::Resume,
                    Cmd::Disconnect(clear_saved_data) => Command::Disconnect { clear_saved_data },
                    Cmd::Reset => Command::Reset,
                    Cmd::Invite(u) => Command::Invite { users: users(u) },
                    Cmd::CancelInvites(u) => Command::CancelInvites { users: users(u) },
                    Cmd::Leave => Command::Leave { reason: None },
                    Cmd::End => Command::End { reason: None },
                    Cmd::Join(i) => Command::Join {
                        call_id: self.calls.get(usize::from(i) % 8).copied().unwrap_or_else(|| callapi_fuzz::call_id(i)),
                    },
                };
                let before = self.m.state();
                if self.m.handle_command(cmd, now).is_err() {
                    // A refused command changes nothing (timeouts it ran first aside).
                    let _ = before;
                }
            }
            Step::Call { remote, video } => {
                let t = if video { CallType::Video } else { CallType::Audio };
                if let Ok(id) = self.m.call(user(remote), t, Extension::new(), now) {
                    self.remember_call(id);
                }
            }
            Step::CallGroup { users, video } => {
                let t = if video { CallType::Video } else { CallType::Audio };
                let users = users.into_iter().take(4).map(user).collect();
                if let Ok(id) = self.m.call_group(users, t, Extension::new(), now) {
                    self.remember_call(id);
                }
            }
            Step::Link(s) => {
                let state = match s % 4 {
                    0 => LinkState::Connected,
                    1 => LinkState::Disconnected,
                    2 => LinkState::Connecting,
                    _ => LinkState::Reconnecting {
                        attempt: u32::from(s),
                        next_in: Duration::from_secs(3),
                    },
                };
                self.m.handle_input(Input::Link(state), now);
            }
            Step::Media(ev) => {
                let call_id = self.call_id();
                let ev = match ev {
                    Media::LocalJoined => MediaEvent::LocalJoined { call_id },
                    Media::RemoteJoined => MediaEvent::RemoteJoined { call_id },
                    Media::FirstLocalFramePublished => MediaEvent::FirstLocalFramePublished { call_id },
                    Media::FirstRemoteFrame(v) => MediaEvent::FirstRemoteFrame {
                        call_id,
                        kind: if v { MediaKind::Video } else { MediaKind::Audio },
                    },
                    Media::RemoteLeft => MediaEvent::RemoteLeft { call_id },
                    Media::CaptureFailed => MediaEvent::CaptureFailed { call_id, message: "x".into() },
                    Media::Failed => MediaEvent::Failed { call_id, message: "x".into() },
                    Media::PeerJoined(u, d) => MediaEvent::PeerJoined { call_id, peer: Self::peer(u, d) },
                    Media::PeerFirstFrame(u, d) => MediaEvent::PeerFirstFrame {
                        call_id,
                        peer: Self::peer(u, d),
                        kind: MediaKind::Video,
                    },
                    Media::PeerLeft(u, d) => MediaEvent::PeerLeft { call_id, peer: Self::peer(u, d) },
                    Media::PeerFailed(u, d) => MediaEvent::PeerFailed {
                        call_id,
                        peer: Self::peer(u, d),
                        message: "x".into(),
                    },
                    Media::JoinFailed => {
                        self.m.handle_input(
                            Input::MediaJoinFailed { call_id, message: "x".into() },
                            now,
                        );
                        return;
                    }
                };
                self.m.handle_input(Input::Media(ev), now);
            }
            Step::Advance(tens) => self.timeout(now + Duration::from_millis(u64::from(tens) * 10)),
            Step::NextTimeout => {
                if let Some(t) = self.m.poll_timeout() {
                    self.timeout(t.max(now));
                }
            }
        }
    }
}

fuzz_target!(|script: Script| {
    let start = Instant::now();
    let cfg = CallConfig::new(user(1), device(0)).with_seed(script.seed);
    let mut h = Harness {
        m: CallMachine::new(cfg, start, SIM_UNIX_MS),
        now: start,
        calls: Vec::new(),
        sent: Vec::new(),
        last_state: None,
    };
    h.m.set_reports_frames(script.seed & 1 == 0);
    h.m.handle_input(Input::Link(LinkState::Connected), start);
    let _ = h.m.handle_command(Command::Prepare(PrepareConfig::new("room0")), start);
    h.check();
    for step in script.steps.into_iter().take(48) {
        h.step(step);
        h.check();
    }
    // Let every timer run out (bounded): the machine goes quiet.
    for _ in 0..64 {
        let Some(t) = h.m.poll_timeout() else { break };
        let now = t.max(h.now);
        h.timeout(now);
        h.check();
    }
});
