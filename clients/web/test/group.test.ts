// Group calls, mirroring callapi-core/tests/group_invite_mid_call.rs and the group rules of
// PROTOCOL §10: roster convergence, mid-call invite by any member, refused invites, leave,
// end for everyone, late join, busy, and the media mesh (the lower (user, device) offers).

import { test } from "node:test";
import assert from "node:assert/strict";
import { InvalidArgumentError, InvalidStateError, type MediaCommand, type MediaEngine, type MediaEvent, type MemberState } from "../src/index.js";
import { World, type Dev } from "./world.js";

const IN: MemberState = "accepted";

async function threeInCall(media?: () => MediaEngine): Promise<{ w: World; a: Dev; b: Dev; c: Dev; d: Dev; id: string }> {
  const w = new World(3);
  const mk = (u: string, dv: string): Dev => w.add(u, dv, media !== undefined ? { media: media() } : {});
  const a = mk("alice", "a1");
  const b = mk("bob", "b1");
  const c = mk("carol", "c1");
  const d = mk("dave", "d1");
  const id = await a.client.call(["bob", "carol"]);
  w.run(1000);
  await b.client.accept();
  w.run(1000);
  await c.client.accept();
  w.run(1000);
  for (const x of [a, b, c]) {
    assert.deepEqual(x.roster(), [["alice", IN], ["bob", IN], ["carol", IN]], x.user);
    assert.equal(x.state, "connected", x.user);
  }
  return { w, a, b, c, d, id };
}

test("group call: creator invites two; both ring with the roster; accepts converge everywhere", async () => {
  const w = new World(2);
  const a = w.add("alice", "a1");
  const b = w.add("bob", "b1");
  const c = w.add("carol", "c1");
  const id = await a.client.call(["bob", "carol"], { callType: "audio" });
  const invites = a.sent().filter((e) => e.body.kind === "invite");
  assert.deepEqual(invites.map((e) => [e.to, e.toDevice]), [["bob", undefined], ["carol", undefined]]);
  w.run(1000);
  assert.deepEqual(b.states, [["calling", "remoteAudioCall"]]);
  assert.equal(b.callId(), id);
  assert.deepEqual(a.roster(), [["alice", IN], ["bob", "ringing"], ["carol", "ringing"]]);
  // One "received the call" per invited member, however many devices ring.
  assert.deepEqual(a.events, ["onCalling", "remoteUserRecvCall", "remoteUserRecvCall"]);
  await b.client.accept();
  w.run(1000);
  assert.deepEqual(a.states, [["calling", "localAudioCall"], ["connected", "remoteAccepted"]]);
  assert.deepEqual(b.states, [["calling", "remoteAudioCall"], ["connecting", "localAccepted"], ["connected", "localAccepted"]]);
  assert.deepEqual(b.roster(), [["alice", IN], ["bob", IN], ["carol", "ringing"]]);
  await c.client.accept();
  w.run(1000);
  for (const x of [a, b, c]) assert.deepEqual(x.roster(), [["alice", IN], ["bob", IN], ["carol", IN]], x.user);
  assert.ok(w.runUntilQuiet(120_000));
  for (const x of [a, b, c]) {
    assert.equal(x.client.machine.pendingMessages(), 0, x.user);
    assert.equal(x.state, "connected");
  }
});

test("group: an accepted member invites a user mid-call and everyone converges (group_invite_mid_call.rs)", async () => {
  const { w, a, b, c, d, id } = await threeInCall();
  const before = [a, b, c].map((x) => [...x.states]);
  const aEvents = a.events.length;
  await b.client.invite(["dave"]);
  const inviting: [string, MemberState][] = [["alice", IN], ["bob", IN], ["carol", IN], ["dave", "inviting"]];
  assert.deepEqual(b.roster(), inviting);
  const inv = b.sent().filter((e) => e.to === "dave" && e.body.kind === "invite");
  assert.equal(inv.length, 1);
  assert.ok(inv[0]!.body.kind === "invite");
  assert.deepEqual(inv[0]!.body.kind === "invite" ? inv[0]!.body.members!.map((r) => [r.user, r.state]) : [], inviting);
  w.run(15);
  for (const x of [a, b, c]) assert.deepEqual(x.roster(), inviting, x.user);
  assert.deepEqual(d.states, [["calling", "remoteVideoCall"]]);
  assert.equal(d.callId(), id);
  assert.deepEqual(d.roster(), inviting, "dave rings with bob's roster");
  assert.deepEqual(d.members.map((m) => [m.user, m.previous, m.state]), [["alice", undefined, IN], ["bob", undefined, IN], ["carol", undefined, IN], ["dave", undefined, "inviting"]]);
  w.run(1000);
  for (const x of [a, b, c]) {
    assert.deepEqual(x.roster().at(-1), ["dave", "ringing"], x.user);
    assert.deepEqual(x.changesOf("dave"), [[undefined, "inviting"], ["inviting", "ringing"]], x.user);
  }
  assert.ok(b.events.includes("remoteUserRecvCall"));
  assert.ok(!a.events.slice(aEvents).includes("remoteUserRecvCall"), "only dave's inviter hears his ringing");
  [a, b, c].forEach((x, i) => assert.deepEqual(x.states, before[i], "inviting changed nobody's state"));
  await d.client.accept();
  assert.deepEqual(d.states.at(-1), ["connecting", "localAccepted"]);
  w.run(1000);
  assert.deepEqual(d.states, [["calling", "remoteVideoCall"], ["connecting", "localAccepted"], ["connected", "localAccepted"]]);
  const allIn: [string, MemberState][] = [["alice", IN], ["bob", IN], ["carol", IN], ["dave", IN]];
  for (const x of [a, b, c, d]) {
    assert.deepEqual(x.roster(), allIn, x.user);
    assert.equal(x.state, "connected");
    assert.equal(x.client.roster()!.find((r) => r.user === "dave")!.device, "d1");
  }
  for (const x of [a, b, c]) assert.deepEqual(x.changesOf("dave"), [[undefined, "inviting"], ["inviting", "ringing"], ["ringing", IN]], x.user);
  assert.ok(w.runUntilQuiet(120_000));
  for (const x of [a, b, c, d]) {
    assert.equal(x.client.machine.pendingMessages(), 0, x.user);
    assert.equal(x.state, "connected");
  }
});

test("group: a user in the call or ringing cannot be invited again; a refused invite sends nothing", async () => {
  const { w, a, b, c, d } = await threeInCall();
  const sent = (): number[] => [a, b, c, d].map((x) => x.allSent().length);
  const before = sent();
  await assert.rejects(b.client.invite(["carol"]), (e: unknown) => e instanceof InvalidArgumentError && e.message.includes("carol") && e.message.includes("accepted"));
  await assert.rejects(a.client.invite(["bob"]), InvalidArgumentError);
  assert.deepEqual(sent(), before);
  await b.client.invite(["dave"]);
  w.run(1000);
  const before2 = sent();
  await assert.rejects(b.client.invite(["dave"]), (e: unknown) => e instanceof InvalidArgumentError && e.message.includes("ringing"));
  await assert.rejects(a.client.invite(["dave"]), InvalidArgumentError);
  await assert.rejects(c.client.invite(["erin", "dave"]), InvalidArgumentError, "one bad name refuses the whole command");
  assert.deepEqual(sent(), before2);
  assert.deepEqual(d.states, [["calling", "remoteVideoCall"]], "dave rings once");
});

test("group: only a device in a group call can invite", async () => {
  const w = new World(4);
  const a = w.add("alice", "a1");
  const b = w.add("bob", "b1");
  const c = w.add("carol", "c1");
  const d = w.add("dave", "d1");
  await assert.rejects(d.client.invite(["alice"]), InvalidStateError);
  await c.client.call("dave", { callType: "audio" });
  await assert.rejects(c.client.invite(["alice"]), InvalidStateError);
  w.run(1000);
  await d.client.accept();
  w.run(1000);
  await assert.rejects(c.client.invite(["alice"]), InvalidStateError);
  await a.client.call(["bob"], { callType: "audio" });
  w.run(1000);
  const n = b.allSent().length;
  await assert.rejects(b.client.invite(["erin"]), InvalidStateError);
  assert.equal(b.allSent().length, n);
  assert.deepEqual(b.roster(), [["alice", IN], ["bob", "inviting"]], "a refused invite writes nothing");
  await b.client.accept();
  w.run(1000);
  await b.client.invite(["erin"]);
  assert.deepEqual(b.roster(), [["alice", IN], ["bob", IN], ["erin", "inviting"]]);
});

test("group: a member leaves, the others go on; the last two ending leaves nobody (everyoneLeft)", async () => {
  const { w, a, b, c } = await threeInCall();
  await c.client.leave("bye");
  w.run(1000);
  assert.deepEqual(c.states.at(-1), ["prepared", "localHangup"]);
  for (const x of [a, b]) {
    assert.deepEqual(x.roster(), [["alice", IN], ["bob", IN], ["carol", "left"]], x.user);
    assert.equal(x.state, "connected");
  }
  await b.client.hangup();
  w.run(1000);
  assert.deepEqual(b.states.at(-1), ["prepared", "localHangup"]);
  assert.deepEqual(a.states.at(-1), ["prepared", "everyoneLeft"]);
  assert.ok(w.runUntilQuiet(120_000));
});

test("group: ending for everyone ends every member's call (callEnded)", async () => {
  const { w, a, b, c } = await threeInCall();
  await b.client.endForAll();
  w.run(1000);
  assert.deepEqual(b.states.at(-1), ["prepared", "localHangup"]);
  for (const x of [a, c]) {
    assert.deepEqual(x.states.at(-1), ["prepared", "callEnded"], x.user);
    assert.equal(x.eventReasons.at(-1), "ended");
  }
});

test("group: late join — a member who left joins again by call id and is welcomed back", async () => {
  const { w, a, b, c, id } = await threeInCall();
  await c.client.leave();
  w.run(1000);
  assert.deepEqual(a.roster().at(-1), ["carol", "left"]);
  await c.client.join(id);
  assert.deepEqual(c.states.at(-1), ["connecting", "localAccepted"]);
  w.run(1000);
  assert.deepEqual(c.states.at(-1), ["connected", "localAccepted"]);
  for (const x of [a, b, c]) assert.deepEqual(x.roster(), [["alice", IN], ["bob", IN], ["carol", IN]], x.user);
  const seq = c.client.roster()!.find((r) => r.user === "carol")!.seq;
  assert.ok(seq >= 5, `the new accepted record supersedes the left one (seq ${seq})`);
});

test("group: a busy invitee replies busy; with every invitee busy the creator ends remoteCallBusy", async () => {
  const w = new World(6);
  const a = w.add("alice", "a1");
  const b = w.add("bob", "b1");
  const c = w.add("carol", "c1");
  const e = w.add("erin", "e1");
  await c.client.call("erin");
  w.run(1000);
  await a.client.call(["carol"]);
  w.run(2000);
  assert.ok(c.events.includes("busyAutoRejected"));
  const rej = c.sent().find((x) => x.body.kind === "reject")!;
  assert.ok(rej.body.kind === "reject" && rej.body.busy && rej.body.seq === 1);
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "remoteCallBusy"]]);
  assert.equal(c.state, "calling");
  assert.equal(e.state, "calling");
  assert.equal(b.state, "prepared");
});

test("group: every invitee declining ends the creator's call remoteRejected; a timeout writes timeout", async () => {
  const w = new World(7);
  const a = w.add("alice", "a1");
  const b = w.add("bob", "b1");
  const c = w.add("carol", "c1");
  await a.client.call(["bob", "carol"]);
  w.run(1000);
  await b.client.reject("no");
  w.run(1000);
  assert.deepEqual(a.roster(), [["alice", IN], ["bob", "rejected"], ["carol", "ringing"]]);
  assert.equal(a.state, "calling");
  w.run(15_000);
  assert.deepEqual(c.states.at(-1), ["prepared", "remoteCallingTimeout"]);
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["prepared", "remoteRejected"]]);
  assert.deepEqual(w.net.log.filter((e) => e.from === "alice" && e.body.kind === "cancel" && e.to === "carol").map((e) => e.body.kind === "cancel" && e.body.timeout), [true]);
});

/** Records media commands and answers offers, so mesh negotiation can be checked. */
class MeshProbe implements MediaEngine {
  readonly reportsFrames = false;
  readonly commands: MediaCommand[] = [];
  private sink: (ev: MediaEvent) => void = () => {};
  attach(sink: (ev: MediaEvent) => void): void {
    this.sink = sink;
  }
  handle(cmd: MediaCommand): void {
    this.commands.push(cmd);
    if (cmd.type === "addPeer" && cmd.offerer) this.sink({ type: "peerSignal", callId: cmd.callId, peer: cmd.peer, payload: { type: "offer", sdp: `offer-to-${cmd.peer.user}` } });
    if (cmd.type === "peerSignal" && typeof cmd.payload === "object" && cmd.payload !== null && !Array.isArray(cmd.payload) && cmd.payload["type"] === "offer") {
      this.sink({ type: "peerSignal", callId: cmd.callId, peer: cmd.peer, payload: { type: "answer", sdp: `answer-to-${cmd.peer.user}` } });
    }
  }
}

test("group media: a full mesh; the lower (user, device) offers; media envelopes carry seq/to_seq", async () => {
  const probes = new Map<string, MeshProbe>();
  let n = 0;
  const order = ["alice", "bob", "carol", "dave"];
  const { w, a, b, c } = await threeInCall(() => {
    const p = new MeshProbe();
    probes.set(order[n++]!, p);
    return p;
  });
  w.run(1000);
  const pa = probes.get("alice")!;
  const pc = probes.get("carol")!;
  const added = (p: MeshProbe): [string, boolean][] => p.commands.filter((x) => x.type === "addPeer").map((x) => (x.type === "addPeer" ? [x.peer.user, x.offerer] : ["", false]));
  assert.deepEqual(added(pa).sort(), [["bob", true], ["carol", true]]);
  assert.deepEqual(added(pc).sort(), [["alice", false], ["bob", false]]);
  // carol received offers from both and answered each.
  const got = pc.commands.filter((x) => x.type === "peerSignal").map((x) => (x.type === "peerSignal" ? `${x.peer.user}:${JSON.stringify(x.payload)}` : ""));
  assert.deepEqual(got.sort(), ['alice:{"type":"offer","sdp":"offer-to-carol"}', 'bob:{"type":"offer","sdp":"offer-to-carol"}']);
  const offer = a.sent().find((e) => e.body.kind === "media" && e.to === "bob")!;
  assert.ok(offer.body.kind === "media");
  assert.equal(offer.body.kind === "media" ? offer.body.seq : -1, 1);
  assert.equal(offer.body.kind === "media" ? offer.body.toSeq : -1, b.client.roster()!.find((r) => r.user === "bob")!.seq);
  // carol leaves: the others close their connection to her.
  await c.client.leave();
  w.run(1000);
  assert.ok(pa.commands.some((x) => x.type === "removePeer" && x.peer.user === "carol"));
  assert.ok(pc.commands.some((x) => x.type === "removePeer"));
});
