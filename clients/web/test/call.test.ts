// 1:1 call rules, mirroring callapi-core/tests: basic call, reject, timeout, cancel (cancel.rs),
// busy (busy_auto_reject.rs), glare (glare.rs), expired invites (expired_invite.rs),
// multi-device (multi_device.rs), in-call messages and DTMF, late messages.

import { test } from "node:test";
import assert from "node:assert/strict";
import { InvalidStateError, InvalidArgumentError, ERROR_CODES } from "../src/index.js";
import { World, type Dev } from "./world.js";

function twoParty(seed = 1): { w: World; a: Dev; b: Dev } {
  const w = new World(seed);
  return { w, a: w.add("alice", "a1"), b: w.add("bob", "b1") };
}

const CONNECTED_CALLER = [["calling", "localVideoCall"], ["connecting", "remoteAccepted"], ["connected", "remoteAccepted"]];
const CONNECTED_CALLEE = [["calling", "remoteVideoCall"], ["connecting", "localAccepted"], ["connected", "localAccepted"]];

test("basic call: invite, ringing, accept, confirm, hangup on both sides", async () => {
  const { w, a, b } = twoParty();
  const id = await a.client.call("bob");
  assert.equal(a.callId(), id);
  w.run(1000);
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"]]);
  assert.equal(b.timeOf("calling", "remoteVideoCall"), 10);
  assert.equal(b.callId(), id);
  assert.deepEqual(a.events, ["onCalling", "remoteUserRecvCall"]);
  await b.client.accept();
  w.run(1000);
  assert.deepEqual(a.states, CONNECTED_CALLER);
  assert.deepEqual(b.states, CONNECTED_CALLEE);
  // The callee is connected only once the confirm arrived (one delay after the caller).
  assert.equal(b.timeOf("connected", "localAccepted") - a.timeOf("connected", "remoteAccepted"), 10);
  assert.deepEqual(b.sentKinds(), ["ringing", "accept"]);
  assert.deepEqual(a.sentKinds(), ["invite", "confirm"]);
  assert.equal(a.client.callInfo()?.remoteDevice, "b1");
  await b.client.hangup("bye");
  w.run(1000);
  assert.deepEqual(a.states.at(-1), ["prepared", "remoteHangup"]);
  assert.equal(a.reasons.at(-1), "bye");
  assert.deepEqual(b.states.at(-1), ["prepared", "localHangup"]);
  assert.deepEqual(a.events.at(-1), "remoteHangup");
  assert.ok(w.runUntilQuiet(120_000));
  assert.equal(a.client.machine.pendingMessages(), 0);
  assert.equal(b.client.machine.pendingMessages(), 0);
});

test("reject: the caller ends remoteRejected with the reason", async () => {
  const { w, a, b } = twoParty();
  await a.client.call("bob", { callType: "audio" });
  w.run(1000);
  await b.client.reject("in a meeting");
  w.run(1000);
  assert.deepEqual(a.states, [["calling", "localAudioCall"], ["prepared", "remoteRejected"]]);
  assert.equal(a.reasons.at(-1), "in a meeting");
  assert.deepEqual(b.states, [["calling", "remoteAudioCall"], ["prepared", "localRejected"]]);
  assert.deepEqual(a.events, ["onCalling", "remoteUserRecvCall", "remoteRejected"]);
  assert.deepEqual(b.events, ["localRejected"]);
});

test("timeout: nobody answers; the caller ends callingTimeout at 15 s and the callee stops", async () => {
  const { w, a, b } = twoParty();
  await a.client.call("bob");
  w.run(20_000);
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "callingTimeout"]]);
  assert.equal(a.timeOf("prepared", "callingTimeout"), 15_000);
  assert.deepEqual(a.events, ["onCalling", "remoteUserRecvCall", "callingTimeout"]);
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"], ["prepared", "remoteCallingTimeout"]]);
  assert.deepEqual(b.events, ["remoteCallingTimeout"]);
  const cancels = a.sent().filter((e) => e.body.kind === "cancel");
  assert.equal(cancels.length, 1);
  assert.equal(cancels[0]!.toDevice, "b1");
  assert.ok(cancels[0]!.body.kind === "cancel" && cancels[0]!.body.timeout);
});

test("cancel while ringing: device-addressed, the callee stops one delay later with the reason", async () => {
  const { w, a, b } = twoParty();
  const id = await a.client.call("bob");
  w.run(1000);
  await a.client.cancel("wrong number");
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "localCancelled"]]);
  w.run(1000);
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"], ["prepared", "remoteCancelled"]]);
  assert.deepEqual(a.events, ["onCalling", "remoteUserRecvCall", "localCancelled"]);
  assert.deepEqual(b.events, ["remoteCancelled"]);
  assert.equal(b.timeOf("prepared", "remoteCancelled"), 1010);
  assert.equal(a.reasons.at(-1), "wrong number");
  assert.equal(b.reasons.at(-1), "wrong number");
  assert.equal(b.eventReasons.at(-1), "wrong number");
  const cancels = a.sent().filter((e) => e.body.kind === "cancel");
  assert.equal(cancels.length, 1);
  assert.equal(cancels[0]!.toDevice, "b1");
  assert.equal(cancels[0]!.callId, id);
  assert.deepEqual(cancels[0]!.body, { kind: "cancel", reason: "wrong number", timeout: false });
  assert.deepEqual(a.sentKinds(), ["invite", "cancel"]);
  assert.ok(w.runUntilQuiet(120_000));
  assert.equal(a.client.machine.pendingMessages(), 0);
});

test("cancel right after calling is user-addressed and still stops the callee", async () => {
  const { w, a, b } = twoParty();
  await a.client.call("bob");
  await a.client.cancel();
  assert.ok(w.runUntilQuiet(120_000));
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "localCancelled"]]);
  assert.deepEqual(a.events, ["onCalling", "localCancelled"]);
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"], ["prepared", "remoteCancelled"]]);
  assert.deepEqual(b.events, ["remoteCancelled"]);
  assert.equal(a.sent().find((e) => e.body.kind === "cancel")!.toDevice, undefined);
});

test("cancel before ringing reached the caller: a slow callee stops, its late ringing gets a device cancel", async () => {
  const { w, a, b } = twoParty();
  w.net.delay = () => 2000;
  await a.client.call("bob");
  w.run(1000);
  assert.deepEqual(b.states, []);
  await a.client.cancel();
  w.run(1500);
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"]]);
  assert.ok(w.runUntilQuiet(120_000));
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "localCancelled"]]);
  assert.deepEqual(a.events, ["onCalling", "localCancelled"]);
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"], ["prepared", "remoteCancelled"]]);
  assert.equal(b.timeOf("prepared", "remoteCancelled"), 3000);
  const cancels = a.sent().filter((e) => e.body.kind === "cancel");
  assert.equal(cancels.length, 2);
  assert.equal(cancels[0]!.toDevice, undefined);
  assert.equal(cancels[1]!.toDevice, "b1");
  assert.equal(a.client.machine.pendingMessages(), 0);
  assert.equal(b.client.machine.pendingMessages(), 0);
});

test("a cancel that overtakes its invite keeps the invite from ringing (cancel before invite)", async () => {
  const { w, a, b } = twoParty();
  w.net.storeOffline = false;
  b.online(false);
  await a.client.call("bob");
  const invite = a.sent()[0]!;
  assert.equal(invite.body.kind, "invite");
  w.run(200);
  await a.client.cancel();
  w.run(100);
  b.online(true);
  w.run(1000); // the cancel's retransmission reaches bob first
  assert.deepEqual(b.states, []);
  w.net.inject(invite);
  assert.ok(w.runUntilQuiet(120_000));
  assert.ok(b.allSent().some((e) => e.body.kind === "ack" && e.body.ackId === invite.id), "the invite was acknowledged");
  assert.deepEqual(b.states, [], "the invite must never ring");
  assert.deepEqual(b.events, []);
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "localCancelled"]]);
});

test("cancel by the callee, without a call, or once connected is refused and sends nothing", async () => {
  const { w, a, b } = twoParty();
  await assert.rejects(a.client.cancel(), (e: unknown) => e instanceof InvalidStateError && e.state === "prepared");
  await a.client.call("bob");
  w.run(1000);
  const sent = b.allSent().length;
  await assert.rejects(b.client.cancel(), (e: unknown) => e instanceof InvalidStateError && e.state === "calling");
  assert.equal(b.allSent().length, sent);
  await b.client.accept();
  w.run(1000);
  await assert.rejects(a.client.cancel(), InvalidStateError);
  assert.deepEqual(a.states.at(-1), ["connected", "remoteAccepted"]);
});

function threeParty(): { w: World; a: Dev; b: Dev; c: Dev } {
  const w = new World(5);
  return { w, a: w.add("alice", "a1"), b: w.add("bob", "b1"), c: w.add("carol", "c1") };
}

async function carolCallsBusy(w: World, c: Dev, target: Dev, user: string): Promise<void> {
  const targetStates = [...target.states];
  const targetEvents = target.events.length;
  const cStates = c.states.length;
  const cEvents = c.events.length;
  const started = w.elapsed();
  const id = await c.client.call(user);
  w.run(2000);
  assert.deepEqual(target.states, targetStates, "the busy device's state does not move");
  assert.deepEqual(target.events.slice(targetEvents), ["busyAutoRejected"]);
  const rejects = target.sent().filter((e) => e.callId === id);
  assert.equal(rejects.length, 1);
  assert.deepEqual(rejects[0]!.body, { kind: "reject", reason: "busy", busy: true });
  assert.equal(rejects[0]!.to, "carol");
  assert.equal(rejects[0]!.toDevice, "c1");
  assert.deepEqual(c.states.slice(cStates), [["calling", "localVideoCall"], ["prepared", "remoteCallBusy"]]);
  assert.deepEqual(c.events.slice(cEvents), ["onCalling", "remoteCallBusy"]);
  // After the grace for other devices to ring (250 ms minimum).
  assert.equal(c.stateTimes.at(-1)! - started, 20 + 250);
  assert.equal(c.reasons.at(-1), "busy");
}

test("busy: a ringing callee declines a second invite; the first call is undisturbed", async () => {
  const { w, a, b, c } = threeParty();
  await a.client.call("bob");
  w.run(1000);
  await carolCallsBusy(w, c, b, "bob");
  await b.client.accept();
  w.run(1000);
  assert.deepEqual(a.states, CONNECTED_CALLER);
  assert.deepEqual(b.states, CONNECTED_CALLEE);
});

test("busy: a caller placing a call declines someone else's invite", async () => {
  const { w, a, c } = threeParty();
  await a.client.call("bob");
  w.run(1000);
  await carolCallsBusy(w, c, a, "alice");
  assert.deepEqual(a.states, [["calling", "localVideoCall"]]);
  assert.deepEqual(a.events, ["onCalling", "remoteUserRecvCall", "busyAutoRejected"]);
});

test("busy: both parties of a connected call decline invites and the call still hangs up normally", async () => {
  const { w, a, b, c } = threeParty();
  await a.client.call("bob");
  w.run(1000);
  await b.client.accept();
  w.run(1000);
  await carolCallsBusy(w, c, a, "alice");
  await carolCallsBusy(w, c, b, "bob");
  assert.deepEqual(b.states, CONNECTED_CALLEE);
  await a.client.hangup();
  w.run(1000);
  assert.deepEqual(b.states.at(-1), ["prepared", "remoteHangup"]);
});

test("busy: a device that is not prepared declines and stays idle", async () => {
  const w = new World(5);
  const d = w.add("dave", "d1", { prepare: false });
  const c = w.add("carol", "c1");
  await carolCallsBusy(w, c, d, "dave");
  assert.equal(d.state, "idle");
  assert.deepEqual(d.states, []);
  assert.deepEqual(d.events, ["busyAutoRejected"]);
});

test("glare: the smaller call id wins on both sides; the loser rings for it; both seeds' winners occur", async () => {
  const winners = new Set<string>();
  for (let seed = 0; seed < 12; seed++) {
    const { w, a, b } = twoParty(seed);
    const ida = await a.client.call("bob");
    const idb = await b.client.call("alice");
    const [win, lose, winId] = ida < idb ? [a, b, ida] : [b, a, idb];
    winners.add(win.user);
    w.run(1000);
    const own = (d: Dev): string => (d === a ? "localVideoCall" : "localVideoCall");
    assert.deepEqual(win.states, [["calling", own(win)]], `seed ${seed}`);
    assert.deepEqual(lose.states, [["calling", "localVideoCall"], ["prepared", "glare"], ["calling", "remoteVideoCall"]], `seed ${seed}`);
    assert.ok(lose.events.includes("glare"));
    assert.ok(!win.events.includes("glare"));
    assert.equal(lose.callId(), winId);
    assert.ok(win.events.includes("remoteUserRecvCall"));
    assert.ok(!win.events.includes("remoteCallBusy"));
    assert.ok(!lose.events.includes("busyAutoRejected"));
    await lose.client.accept();
    w.run(1000);
    assert.deepEqual(win.states.at(-1), ["connected", "remoteAccepted"]);
    assert.deepEqual(lose.states.at(-1), ["connected", "localAccepted"]);
  }
  assert.equal(winners.size, 2, "both sides won in some seed");
});

test("glare resolves the same way when the invites cross with different delays", async () => {
  for (let seed = 0; seed < 10; seed++) {
    const { w, a, b } = twoParty(seed);
    let n = 0;
    w.net.delay = () => 5 + ((n++ * 397 + seed * 131) % 900);
    await a.client.call("bob", { callType: "audio" });
    await b.client.call("alice", { callType: "audio" });
    w.run(3000);
    const ia = a.client.callInfo()!;
    const ib = b.client.callInfo()!;
    assert.equal(ia.callId, ib.callId, `seed ${seed}: one call`);
    assert.notEqual(ia.role, ib.role);
    const loser = ia.role === "caller" ? b : a;
    assert.ok(loser.events.includes("glare"));
  }
});

test("glare: the other devices of the winner stop ringing for the dropped call", async () => {
  for (let seed = 0; seed < 6; seed++) {
    const w = new World(seed);
    const a = w.add("alice", "a1");
    const b1 = w.add("bob", "b1");
    const b2 = w.add("bob", "b2");
    await a.client.call("bob");
    await b1.client.call("alice");
    w.run(2000);
    const ia = a.client.callInfo()!;
    assert.equal(ia.callId, b1.client.callInfo()!.callId);
    if (ia.caller === "bob") {
      assert.equal(b2.state, "prepared");
      assert.deepEqual(b2.states.at(-1), ["prepared", "remoteCancelled"]);
    } else assert.equal(b2.state, "calling");
  }
});

function assertCallerMessageFailed(a: Dev): void {
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "messageFailed"]]);
  assert.equal(a.timeOf("prepared", "messageFailed"), 15_000);
  assert.deepEqual(a.events, ["onCalling", "messageFailed"]);
  assert.equal(a.errors.length, 1);
  assert.equal(a.errors[0]!.event, "sendMessageFail");
  assert.equal(a.errors[0]!.code, ERROR_CODES.MESSAGE_UNDELIVERED);
  const cancel = a.sent().find((e) => e.body.kind === "cancel")!;
  assert.equal(cancel.toDevice, undefined);
  assert.ok(cancel.body.kind === "cancel" && cancel.body.timeout);
}

test("expired invite: delivered after its lifetime by a slow network, it never rings", async () => {
  const { w, a, b } = twoParty(9);
  w.net.delay = () => 20_000;
  const id = await a.client.call("bob");
  w.run(19_000);
  assertCallerMessageFailed(a);
  assert.deepEqual(b.states, []);
  assert.ok(w.runUntilQuiet(300_000));
  assert.deepEqual(b.states, [], "an expired invite must never ring");
  assert.equal(b.state, "prepared");
  assert.deepEqual(b.events, ["inviteExpired"]);
  assert.ok(!b.sentKinds().includes("ringing"));
  assertCallerMessageFailed(a);
  assert.equal(id, a.client.machine.ended.at(-1)?.id);
  assert.equal(a.client.machine.pendingMessages(), 0);
  assert.equal(b.client.machine.pendingMessages(), 0);
});

test("expired invite: a stale copy redelivered after its lifetime is dropped with inviteExpired", async () => {
  const { w, a, b } = twoParty();
  w.net.storeOffline = false;
  b.online(false);
  await a.client.call("bob");
  const invite = a.sent()[0]!;
  w.run(16_000);
  b.online(true);
  w.net.inject(invite);
  assert.ok(w.runUntilQuiet(300_000));
  assert.deepEqual(b.states, []);
  assert.deepEqual(b.events, ["inviteExpired"]);
  assertCallerMessageFailed(a);
});

test("an invite kept for an offline device rings when it comes back within the lifetime, once", async () => {
  const { w, a, b } = twoParty();
  b.online(false);
  await a.client.call("bob");
  w.run(5000);
  assert.deepEqual(b.states, []);
  b.online(true);
  w.run(1000);
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"]]);
  assert.equal(b.timeOf("calling", "remoteVideoCall"), 5010);
  assert.deepEqual(a.events, ["onCalling", "remoteUserRecvCall"]);
  await b.client.accept();
  w.run(1000);
  assert.deepEqual(a.states, CONNECTED_CALLER);
  assert.deepEqual(b.states, CONNECTED_CALLEE);
});

test("an invite kept for an offline device rings only for the rest of its lifetime", async () => {
  const { w, a, b } = twoParty();
  b.online(false);
  await a.client.call("bob");
  w.run(10_000);
  b.online(true);
  assert.ok(w.runUntilQuiet(300_000));
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"], ["prepared", "remoteCallingTimeout"]]);
  assert.equal(b.timeOf("calling", "remoteVideoCall"), 10_010);
  const stopped = b.timeOf("prepared", "remoteCallingTimeout");
  assert.ok(stopped >= 15_000 && stopped <= 15_010, String(stopped));
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "callingTimeout"]]);
  assert.deepEqual(a.events, ["onCalling", "remoteUserRecvCall", "callingTimeout"]);
});

function aliceAndTwoBobs(): { w: World; a: Dev; b1: Dev; b2: Dev } {
  const w = new World(11);
  return { w, a: w.add("alice", "a1"), b1: w.add("bob", "b1"), b2: w.add("bob", "b2") };
}

test("multi-device: the invite rings every device and the first accept wins; the other ends answeredElsewhere", async () => {
  const { w, a, b1, b2 } = aliceAndTwoBobs();
  await a.client.call("bob");
  w.run(1000);
  assert.deepEqual(b1.states, [["calling", "remoteVideoCall"]]);
  assert.deepEqual(b2.states, [["calling", "remoteVideoCall"]]);
  assert.equal(a.events.filter((e) => e === "remoteUserRecvCall").length, 1);
  await b2.client.accept();
  w.run(1000);
  assert.deepEqual(a.states.at(-1), ["connected", "remoteAccepted"]);
  assert.equal(a.client.callInfo()!.remoteDevice, "b2");
  assert.deepEqual(b2.states.at(-1), ["connected", "localAccepted"]);
  assert.deepEqual(b1.states, [["calling", "remoteVideoCall"], ["prepared", "answeredElsewhere"]]);
  assert.deepEqual(b1.events, ["answeredElsewhere"]);
});

test("multi-device: two accepts at once, one wins, the other ends answeredElsewhere", async () => {
  const { w, a, b1, b2 } = aliceAndTwoBobs();
  await a.client.call("bob");
  w.run(1000);
  await b1.client.accept();
  await b2.client.accept();
  w.run(2000);
  const winner = a.client.callInfo()!.remoteDevice;
  const [win, lose] = winner === "b1" ? [b1, b2] : [b2, b1];
  assert.deepEqual(a.states.at(-1), ["connected", "remoteAccepted"]);
  assert.deepEqual(win.states, CONNECTED_CALLEE);
  assert.deepEqual(lose.states, [["calling", "remoteVideoCall"], ["connecting", "localAccepted"], ["prepared", "answeredElsewhere"]]);
});

test("multi-device: a decline ends the call on every device (rejectedElsewhere)", async () => {
  const { w, a, b1, b2 } = aliceAndTwoBobs();
  await a.client.call("bob", { callType: "audio" });
  w.run(1000);
  await b1.client.reject("in a meeting");
  w.run(1000);
  assert.deepEqual(a.states, [["calling", "localAudioCall"], ["prepared", "remoteRejected"]]);
  assert.equal(a.reasons.at(-1), "in a meeting");
  assert.deepEqual(b1.states, [["calling", "remoteAudioCall"], ["prepared", "localRejected"]]);
  assert.deepEqual(b2.states, [["calling", "remoteAudioCall"], ["prepared", "rejectedElsewhere"]]);
});

test("multi-device: a busy device declines only for itself; the other rings and answers", async () => {
  const w = new World(12);
  const a = w.add("alice", "a1");
  const b1 = w.add("bob", "b1");
  const b2 = w.add("bob", "b2");
  const c = w.add("carol", "c1");
  await c.client.call("bob", { callType: "audio" });
  w.run(100);
  await b1.client.accept();
  w.run(1000);
  assert.equal(b1.state, "connected");
  assert.deepEqual(b2.states.at(-1), ["prepared", "answeredElsewhere"]);
  await a.client.call("bob");
  w.run(1000);
  assert.equal(b1.state, "connected");
  assert.ok(b1.events.includes("busyAutoRejected"));
  assert.ok(b1.sent().some((e) => e.body.kind === "reject" && e.body.busy));
  assert.deepEqual(b2.states.at(-1), ["calling", "remoteVideoCall"]);
  assert.deepEqual(a.states, [["calling", "localVideoCall"]]);
  await b2.client.accept();
  w.run(1000);
  assert.deepEqual(a.states.at(-1), ["connected", "remoteAccepted"]);
  assert.equal(b1.state, "connected", "b1's own call is untouched");
});

test("multi-device: every device busy ends remoteCallBusy", async () => {
  const w = new World(13);
  const a = w.add("alice", "a1");
  w.add("bob", "b1", { prepare: false });
  w.add("bob", "b2", { prepare: false });
  await a.client.call("bob");
  w.run(1000);
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "remoteCallBusy"]]);
  assert.ok(a.events.includes("remoteCallBusy"));
});

test("in-call messages and DTMF reach the other party only once accepted; digits are validated", async () => {
  const { w, a, b } = twoParty();
  await a.client.call("bob");
  w.run(1000);
  await assert.rejects(a.client.sendMessage("too early"), InvalidStateError);
  await b.client.accept();
  w.run(1000);
  await a.client.sendMessage('{"action":"raise-hand"}');
  await b.client.sendDtmf("12#a");
  await assert.rejects(b.client.sendDtmf("12x"), InvalidArgumentError);
  await assert.rejects(b.client.sendDtmf(""), InvalidArgumentError);
  w.run(1000);
  assert.deepEqual(b.messages.map((m) => [m.from, m.fromDevice, m.data]), [["alice", "a1", '{"action":"raise-hand"}']]);
  assert.deepEqual(a.dtmf.map((m) => [m.from, m.data]), [["bob", "12#A"]]);
  assert.deepEqual(a.messages, []);
  assert.deepEqual(b.dtmf, []);
  assert.equal(b.sent().find((e) => e.body.kind === "dtmf")!.toDevice, "a1");
});

test("late messages: an ended caller answers the late ringing and accept with device-addressed cancels", async () => {
  const { w, a, b } = twoParty();
  w.net.delay = () => 1000;
  await a.client.call("bob");
  w.run(1500);
  await b.client.accept(); // the accept is on its way when alice gives up
  await a.client.cancel();
  assert.ok(w.runUntilQuiet(120_000));
  // bob accepted, then got alice's cancel (user-addressed, sent before she knew of b1)...
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"], ["connecting", "localAccepted"], ["prepared", "remoteCancelled"]]);
  // ...and alice answered the late ringing/accept with device-addressed cancels.
  const cancels = a.sent().filter((e) => e.body.kind === "cancel");
  assert.ok(cancels.length >= 2);
  assert.ok(cancels.slice(1).every((e) => e.toDevice === "b1"));
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "localCancelled"]]);
});
