//! Group calls did not change the 1:1 wire (`docs/PROTOCOL.md` §10.8).
//!
//! * Every `json` example of the 1:1 part of PROTOCOL.md (everything before "## 10. Group
//!   calls": §2, §3 and §9) decodes, re-encodes to the same JSON value, and carries none of the
//!   group members (`members`, `group`, `ended`).
//! * A real [`CallMachine`] plays the recorded v1 call of §9 (alice `a1` calls bob on `b1` and
//!   `b2`, `b1` answers, `b2` stops, a message, bob hangs up), once as alice and once as bob's
//!   `b1`, fed with the recorded peer envelopes at the recorded times. Every envelope it sends is
//!   exactly the recorded one (kind, addressee, call id, lifetime, kind-specific members, and no
//!   member the recording lacks); acks are checked for kind, addressee and what they
//!   acknowledge, not for their random ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use callapi_core::call::{
    CallConfig, CallMachine, CallState, Command, Input, Output, PrepareConfig,
};
use callapi_core::media::{MediaEvent, MediaKind};
use callapi_core::protocol::{
    decode_str, encode, Body, CallId, CallType, DeviceId, Envelope, Extension, MessageId, UserId,
};
use serde_json::{json, Value};

/// `ts` of the first envelope of §9; the machines' clocks are anchored on it.
const T0_MS: u64 = 1_732_350_000_000;
/// Members that only group calls put on the wire.
const GROUP_MEMBERS: [&str; 3] = ["members", "group", "ended"];

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// A fenced block opened with exactly "```json": its first line, the heading of the section it
/// is in, and its text.
struct Block {
    line: usize,
    section: String,
    text: String,
}

/// The `json` blocks before "## 10. Group calls".
fn one_to_one_blocks() -> Vec<Block> {
    let md = protocol_md();
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut current: Option<Block> = None;
    let mut reached_groups = false;
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim();
        match &mut current {
            None => {
                if trimmed.starts_with("## ") {
                    if trimmed.starts_with("## 10.") {
                        reached_groups = true;
                        break;
                    }
                    section = trimmed.to_owned();
                }
                if trimmed == "```json" {
                    current = Some(Block {
                        line: i + 1,
                        section: section.clone(),
                        text: String::new(),
                    });
                }
            }
            Some(b) => {
                if trimmed == "```" {
                    blocks.push(current.take().unwrap());
                } else {
                    b.text.push_str(line);
                    b.text.push('\n');
                }
            }
        }
    }
    assert!(
        reached_groups,
        "PROTOCOL.md has no \"## 10. Group calls\" heading"
    );
    assert!(current.is_none(), "unterminated ```json block");
    blocks
}

fn value_of(env: &Envelope) -> Value {
    serde_json::from_slice(&encode(env).expect("encodes")).expect("the encoder writes JSON")
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .expect("an envelope is an object")
        .keys()
        .cloned()
        .collect()
}

fn assert_no_group_member(v: &Value, what: &str) {
    for m in GROUP_MEMBERS {
        assert!(
            v.get(m).is_none(),
            "{what}: carries the group member {m:?}: {v}"
        );
    }
}

#[test]
fn one_to_one_examples_reencode_to_the_same_json_without_group_members() {
    let blocks = one_to_one_blocks();
    let sections: BTreeSet<&str> = blocks
        .iter()
        .map(|b| b.section.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    // The examples are in §2, §3 and §9, and there are plenty of them.
    assert_eq!(
        sections,
        ["2.", "3.", "9."].into_iter().collect::<BTreeSet<_>>(),
        "sections with json examples before §10"
    );
    assert!(blocks.len() >= 25, "only {} examples found", blocks.len());
    let mut kinds = BTreeSet::new();
    for b in &blocks {
        let what = format!("example at line {} ({})", b.line, b.section);
        let original: Value = serde_json::from_str(&b.text)
            .unwrap_or_else(|e| panic!("{what} is not JSON: {e}\n{}", b.text));
        let env = decode_str(&b.text).unwrap_or_else(|e| panic!("{what} does not decode: {e}"));
        kinds.insert(env.body.kind());
        let again = value_of(&env);
        assert_eq!(again, original, "{what} re-encodes differently");
        assert_no_group_member(&original, &what);
        assert_no_group_member(&again, &what);
    }
    assert_eq!(
        kinds.len(),
        11,
        "the 1:1 examples cover the eleven 1:1 kinds: {kinds:?}"
    );
    assert!(!kinds.contains("members"));
}

// ------------------------------------------------------------------ the recorded call of §9

/// The 13 envelopes of §9, in order, decoded.
fn recorded_call() -> Vec<Envelope> {
    let blocks: Vec<Block> = one_to_one_blocks()
        .into_iter()
        .filter(|b| b.section.starts_with("## 9."))
        .collect();
    assert_eq!(blocks.len(), 13, "§9 has 13 steps");
    blocks
        .iter()
        .map(|b| decode_str(&b.text).unwrap_or_else(|e| panic!("line {}: {e}", b.line)))
        .collect()
}

fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn device(s: &str) -> DeviceId {
    DeviceId::new(s).unwrap()
}

/// What the machine under test did: every envelope it sent, with the virtual time.
struct Run {
    machine: CallMachine,
    t0: Instant,
    sent: Vec<(u64, Envelope)>,
    states: Vec<CallState>,
}

impl Run {
    fn new(me: &str, dev: &str, seed: u64) -> Self {
        let t0 = Instant::now();
        let cfg = CallConfig::new(user(me), device(dev)).with_seed(seed);
        let mut machine = CallMachine::new(cfg, t0, T0_MS);
        // A media engine that reports frames: the call waits for the first remote frame.
        machine.set_reports_frames(true);
        let mut run = Self {
            machine,
            t0,
            sent: Vec::new(),
            states: Vec::new(),
        };
        let mut prep = PrepareConfig::new(format!("{me}-room"));
        prep.join_media_on_ringing = true;
        let now = run.at(0);
        run.machine
            .handle_command(Command::Prepare(prep), now)
            .unwrap();
        run.drain(0);
        run
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    /// Runs the machine's timers up to `ms` (inclusive), then moves on.
    fn run_to(&mut self, ms: u64) {
        let until = self.at(ms);
        while let Some(t) = self.machine.poll_timeout() {
            if t > until {
                break;
            }
            self.machine.handle_timeout(t);
            let at = u64::try_from((t - self.t0).as_millis()).unwrap();
            self.drain(at);
        }
    }

    fn drain(&mut self, ms: u64) {
        while let Some(out) = self.machine.poll_output() {
            match out {
                Output::Send(env) => self.sent.push((ms, env)),
                Output::Notify(callapi_core::call::Notification::StateChanged(c)) => {
                    self.states.push(c.state)
                }
                _ => {}
            }
        }
    }

    fn envelope(&mut self, ms: u64, env: Envelope) {
        self.run_to(ms);
        let now = self.at(ms);
        self.machine.handle_input(Input::Envelope(env), now);
        self.drain(ms);
    }

    fn media(&mut self, ms: u64, ev: MediaEvent) {
        self.run_to(ms);
        let now = self.at(ms);
        self.machine.handle_input(Input::Media(ev), now);
        self.drain(ms);
    }

    fn command(&mut self, ms: u64, cmd: Command) {
        self.run_to(ms);
        let now = self.at(ms);
        self.machine.handle_command(cmd, now).unwrap();
        self.drain(ms);
    }

    /// The acks a v1 peer device sends for everything the machine sent so far and was not
    /// acknowledged yet (`acked` counts what is done).
    fn ack_new(&mut self, ms: u64, acked: &mut usize, from: &[(&str, &str)]) {
        let todo: Vec<Envelope> = self.sent[*acked..]
            .iter()
            .map(|(_, e)| e.clone())
            .filter(|e| !matches!(e.body, Body::Ack { .. }))
            .collect();
        *acked = self.sent.len();
        for e in todo {
            // A user-addressed envelope (the invite) is acknowledged by each device holding it.
            let acks: Vec<DeviceId> = match &e.to_device {
                Some(d) => vec![d.clone()],
                None => from
                    .iter()
                    .filter(|(u, _)| *u == e.to.as_str())
                    .map(|(_, d)| device(d))
                    .collect(),
            };
            for d in acks {
                let ack = peer_ack(&e, d, ms);
                self.envelope(ms, ack);
            }
        }
    }
}

/// The ack a v1 device sends for `env` (§3.11), with a fresh random id.
fn peer_ack(env: &Envelope, from_device: DeviceId, ms: u64) -> Envelope {
    Envelope {
        v: 1,
        id: MessageId::new_v4(),
        ts: T0_MS + ms,
        from: env.to.clone(),
        from_device,
        to: env.from.clone(),
        to_device: Some(env.from_device.clone()),
        call_id: env.call_id,
        lifetime_ms: 10_000,
        body: Body::Ack { ack_id: env.id },
    }
}

/// `recorded` as the machine must send it: its call id is `call_id` (the machine's own choice
/// when it placed the call), its id is the machine's (random), its `ts` the send time.
fn expected_value(recorded: &Envelope, call_id: CallId, sent: &Envelope) -> Value {
    let mut e = recorded.clone();
    e.call_id = call_id;
    e.id = sent.id;
    e.ts = sent.ts;
    value_of(&e)
}

/// Checks the machine's envelopes against the recording: its non-ack envelopes are exactly
/// `expected` (in order, same JSON but for `id`; `ts` within 20 ms of the recorded one), and
/// its acks are exactly one per envelope in `fed`, to its sender device, with the members of
/// the recorded ack.
fn check_run(
    who: &str,
    run: &Run,
    expected: &[&Envelope],
    fed: &[Envelope],
    call_id: CallId,
    ack_shape: &Envelope,
) {
    let sent: Vec<&(u64, Envelope)> = run
        .sent
        .iter()
        .filter(|(_, e)| !matches!(e.body, Body::Ack { .. }))
        .collect();
    let kinds = |v: &[&Envelope]| v.iter().map(|e| e.body.kind()).collect::<Vec<_>>();
    assert_eq!(
        sent.iter().map(|(_, e)| e.body.kind()).collect::<Vec<_>>(),
        kinds(expected),
        "{who}: the kinds of the envelopes sent"
    );
    for ((ms, got), want) in sent.iter().zip(expected) {
        let got_v = value_of(got);
        let want_v = expected_value(want, call_id, got);
        assert_eq!(
            got_v,
            want_v,
            "{who}: the {} sent at +{ms} ms differs from the recording",
            got.body.kind()
        );
        assert_no_group_member(&got_v, who);
        assert_eq!(got.ts, T0_MS + ms, "{who}: ts is the send time");
        assert!(
            got.ts.abs_diff(want.ts) <= 20,
            "{who}: the {} has ts {} where the recording has {}",
            got.body.kind(),
            got.ts,
            want.ts
        );
    }
    let acks: Vec<&Envelope> = run
        .sent
        .iter()
        .map(|(_, e)| e)
        .filter(|e| matches!(e.body, Body::Ack { .. }))
        .collect();
    let to_ack: Vec<&Envelope> = fed
        .iter()
        .filter(|e| !matches!(e.body, Body::Ack { .. }))
        .collect();
    assert_eq!(
        acks.len(),
        to_ack.len(),
        "{who}: one ack per received envelope"
    );
    let shape = keys(&value_of(ack_shape));
    for (ack, env) in acks.iter().zip(&to_ack) {
        let Body::Ack { ack_id } = ack.body else {
            unreachable!()
        };
        assert_eq!(ack_id, env.id, "{who}: acks in the order received");
        assert_eq!(
            (&ack.to, ack.to_device.as_ref(), ack.call_id),
            (&env.from, Some(&env.from_device), env.call_id),
            "{who}: the ack of the {} goes to its sender device",
            env.body.kind()
        );
        assert_eq!(ack.lifetime_ms, 10_000, "{who}: ack lifetime");
        assert_eq!(
            (&ack.from, &ack.from_device),
            (&ack_shape.from, &ack_shape.from_device),
            "{who}: ack sender"
        );
        let v = value_of(ack);
        assert_eq!(keys(&v), shape, "{who}: the ack's members");
        assert_no_group_member(&v, who);
    }
}

/// The recorded envelope with `call_id` (and, for an ack, the acknowledged id) replaced.
fn with_call(env: &Envelope, call_id: CallId) -> Envelope {
    let mut e = env.clone();
    e.call_id = call_id;
    e
}

#[test]
fn alice_speaks_the_recorded_v1_exchange() {
    let rec = recorded_call();
    let kinds: Vec<&str> = rec.iter().map(|e| e.body.kind()).collect();
    assert_eq!(
        kinds,
        [
            "invite", "ack", "ringing", "ack", "ringing", "media", "media", "accept", "cancel",
            "confirm", "message", "hangup", "ack"
        ]
    );
    let bob_devices = [("bob", "b1"), ("bob", "b2")];
    let mut run = Run::new("alice", "a1", 7);
    let mut fed = Vec::new();

    // 1. a1 invites bob, with the extension of the recording.
    let mut ext = Extension::new();
    ext.insert("display_name".into(), json!("Alice"));
    let now = run.at(0);
    let call_id = run
        .machine
        .call(user("bob"), CallType::Video, ext, now)
        .unwrap();
    run.drain(0);
    assert_eq!(run.machine.state(), CallState::Calling);
    let invite_id = run.sent[0].1.id;
    // 2. b1 and b2 acknowledge the invite (the recorded ack, and b2's own).
    let mut b1_ack = with_call(&rec[1], call_id);
    b1_ack.body = Body::Ack { ack_id: invite_id };
    run.envelope(115, b1_ack);
    let mut acked = run.sent.len();
    let mut b2_ack = peer_ack(&run.sent[0].1, device("b2"), 118);
    b2_ack.ts = T0_MS + 118;
    run.envelope(118, b2_ack);
    run.media(150, MediaEvent::LocalJoined { call_id });
    // 3. b1 rings; 4. a1 acks (checked below).
    let ringing_b1 = with_call(&rec[2], call_id);
    fed.push(ringing_b1.clone());
    run.envelope(160, ringing_b1);
    // 5. b2 rings too.
    let ringing_b2 = with_call(&rec[4], call_id);
    fed.push(ringing_b2.clone());
    run.envelope(165, ringing_b2);
    // 6. a1's media engine offers; b1 rang first, so the offer goes to b1.
    let Body::Media { payload: offer, .. } = rec[5].body.clone() else {
        unreachable!()
    };
    run.media(
        200,
        MediaEvent::Signal {
            call_id,
            payload: offer,
        },
    );
    run.ack_new(260, &mut acked, &bob_devices);
    // 7. b1 answers the offer.
    let answer = with_call(&rec[6], call_id);
    fed.push(answer.clone());
    run.envelope(350, answer);
    // 8. bob answers on b1; 9. a1 stops b2 at once.
    let accept = with_call(&rec[7], call_id);
    fed.push(accept.clone());
    run.envelope(4010, accept);
    run.ack_new(4060, &mut acked, &bob_devices);
    // 10. the first remote frame: a1 is connected and confirms.
    run.media(
        4300,
        MediaEvent::FirstRemoteFrame {
            call_id,
            kind: MediaKind::Video,
        },
    );
    assert_eq!(run.machine.state(), CallState::Connected);
    run.ack_new(4380, &mut acked, &bob_devices);
    // 11. alice's in-call message.
    run.command(
        10_000,
        Command::SendMessage {
            data: "hello".into(),
        },
    );
    run.ack_new(10_070, &mut acked, &bob_devices);
    // 12. bob hangs up; 13. a1 acknowledges and the call is over.
    let hangup = with_call(&rec[11], call_id);
    fed.push(hangup.clone());
    run.envelope(300_080, hangup);
    assert_eq!(run.machine.state(), CallState::Prepared);
    run.run_to(1_000_000);
    assert!(
        run.machine.poll_timeout().is_none(),
        "alice's machine went quiet"
    );
    assert_eq!(run.machine.pending_messages(), 0);

    let expected: Vec<&Envelope> = [0, 5, 8, 9, 10].iter().map(|&i| &rec[i]).collect();
    check_run("alice a1", &run, &expected, &fed, call_id, &rec[3]);
    // The ack ts of the recording line up too (steps 4 and 13).
    let ack_ts: Vec<u64> = run
        .sent
        .iter()
        .filter(|(_, e)| matches!(e.body, Body::Ack { .. }))
        .map(|(_, e)| e.ts)
        .collect();
    assert_eq!(ack_ts.first(), Some(&rec[3].ts));
    assert_eq!(ack_ts.last(), Some(&rec[12].ts));
    assert_eq!(
        run.states,
        [
            CallState::Prepared,
            CallState::Calling,
            CallState::Connecting,
            CallState::Connected,
            CallState::Prepared
        ]
    );
}

#[test]
fn bobs_b1_speaks_the_recorded_v1_exchange() {
    let rec = recorded_call();
    let call_id = rec[0].call_id;
    let alice = [("alice", "a1")];
    let mut run = Run::new("bob", "b1", 11);
    let mut fed = Vec::new();

    // 1. alice's invite reaches b1, which acks (2.), rings and tells a1 (3.).
    fed.push(rec[0].clone());
    run.envelope(120, rec[0].clone());
    assert_eq!(run.machine.state(), CallState::Calling);
    run.media(130, MediaEvent::LocalJoined { call_id });
    // 4. a1's ack of the ringing.
    let ringing_id = run
        .sent
        .iter()
        .find(|(_, e)| matches!(e.body, Body::Ringing { .. }))
        .map(|(_, e)| e.id)
        .unwrap();
    let mut ack = rec[3].clone();
    ack.body = Body::Ack { ack_id: ringing_id };
    run.envelope(160, ack);
    let mut acked = run.sent.len();
    // 6. a1's offer; 7. b1's media engine answers.
    fed.push(rec[5].clone());
    run.envelope(260, rec[5].clone());
    let Body::Media {
        payload: answer, ..
    } = rec[6].body.clone()
    else {
        unreachable!()
    };
    run.media(
        340,
        MediaEvent::Signal {
            call_id,
            payload: answer,
        },
    );
    run.media(
        360,
        MediaEvent::FirstRemoteFrame {
            call_id,
            kind: MediaKind::Video,
        },
    );
    run.ack_new(400, &mut acked, &alice);
    // 8. bob answers.
    run.command(4000, Command::Accept);
    assert_eq!(run.machine.state(), CallState::Connecting);
    run.ack_new(4060, &mut acked, &alice);
    // 10. a1 confirms: the call is up.
    fed.push(rec[9].clone());
    run.envelope(4340, rec[9].clone());
    assert_eq!(run.machine.state(), CallState::Connected);
    // 11. alice's message.
    fed.push(rec[10].clone());
    run.envelope(10_050, rec[10].clone());
    // 12. bob hangs up; 13. a1's ack.
    run.command(300_000, Command::Hangup { reason: None });
    assert_eq!(run.machine.state(), CallState::Prepared);
    let hangup_id = run.sent.last().map(|(_, e)| e.id).unwrap();
    let mut ack = rec[12].clone();
    ack.body = Body::Ack { ack_id: hangup_id };
    run.envelope(300_080, ack);
    run.run_to(1_000_000);
    assert!(
        run.machine.poll_timeout().is_none(),
        "b1's machine went quiet"
    );
    assert_eq!(run.machine.pending_messages(), 0);

    let expected: Vec<&Envelope> = [2, 6, 7, 11].iter().map(|&i| &rec[i]).collect();
    check_run("bob b1", &run, &expected, &fed, call_id, &rec[1]);
    assert_eq!(
        run.states,
        [
            CallState::Prepared,
            CallState::Calling,
            CallState::Connecting,
            CallState::Connected,
            CallState::Prepared
        ]
    );
}
