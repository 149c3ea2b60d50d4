// Reliable delivery (PROTOCOL §7): the retransmission schedule, who satisfies an ack, the
// de-duplication window, and end to end: retransmit on loss, process duplicates once.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Reliable, type Envelope } from "../src/index.js";
import { World } from "./world.js";

function env(id: string, to: string, toDevice?: string): Envelope {
  return { v: 1, id, ts: 0, from: "a", fromDevice: "a1", to, ...(toDevice !== undefined ? { toDevice } : {}), callId: "3f2b8c1e-9a4d-4c7b-8e21-5d6f7a8b9c0d", lifetimeMs: 20_000, body: { kind: "hangup" } };
}

test("retransmission: 500 ms, then doubling to a 4 s cap, until the lifetime ends; then reported expired", () => {
  const r = new Reliable();
  r.track(env("1", "b", "b1"), 0, 20_000);
  const sends: number[] = [];
  let expiredAt: number | undefined;
  for (let t = 0; t <= 21_000; t += 10) {
    const due = r.poll(t);
    if (due.retransmit.length > 0) sends.push(t);
    if (due.expired.length > 0) expiredAt = t;
  }
  assert.deepEqual(sends, [500, 1500, 3500, 7500, 11500, 15500, 19500]);
  assert.equal(expiredAt, 20_000);
  assert.equal(r.pendingCount(), 0);
});

test("acks: a device-addressed envelope only by that device; a user-addressed one by any device of the user", () => {
  const r = new Reliable();
  r.track(env("1", "b", "b1"), 0, 1000);
  r.track(env("2", "b"), 0, 1000);
  assert.equal(r.onAck("b", "b2", "1"), undefined, "another device");
  assert.equal(r.onAck("c", "b1", "1"), undefined, "another user");
  assert.equal(r.onAck("b", "b1", "1")?.id, "1");
  assert.equal(r.onAck("b", "b7", "2")?.id, "2", "first ack from any device of the user");
  assert.equal(r.onAck("b", "b1", "2"), undefined, "already satisfied");
  assert.equal(r.pendingCount(), 0);
});

test("de-duplication: a key is remembered for the 10-minute window, per sender device", () => {
  const r = new Reliable();
  const e = env("1", "b");
  assert.equal(r.isDuplicate(e, 0), false);
  assert.equal(r.isDuplicate(e, 599_999), true);
  assert.equal(r.isDuplicate({ ...e, fromDevice: "a2" }, 1000), false, "another device's envelope with the same id");
  assert.equal(r.isDuplicate(e, 600_000), false, "forgotten after the window");
});

test("end to end: lost copies are retransmitted with the same id and ts; the call goes on", async () => {
  const w = new World(1);
  const a = w.add("alice", "a1");
  const b = w.add("bob", "b1");
  let lostInvites = 0;
  w.net.drop = (e) => e.body.kind === "invite" && lostInvites++ < 2;
  await a.client.call("bob");
  w.run(1000);
  assert.deepEqual(b.states, [], "first two copies lost");
  w.run(1000);
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"]]);
  assert.equal(b.timeOf("calling", "remoteVideoCall"), 1510, "the third copy, sent at 1.5 s");
  const copies = a.allSent().filter((e) => e.body.kind === "invite");
  assert.equal(copies.length, 3);
  assert.ok(copies.every((e) => e.id === copies[0]!.id && e.ts === copies[0]!.ts));
  assert.equal(w.net.droppedCount, 2);
  await b.client.accept();
  w.run(1000);
  assert.equal(a.state, "connected");
  assert.equal(b.state, "connected");
});

test("end to end: a lost ack makes the sender retransmit; the receiver acknowledges every copy and processes one", async () => {
  const w = new World(1);
  const a = w.add("alice", "a1");
  const b = w.add("bob", "b1");
  await a.client.call("bob");
  w.run(1000);
  await b.client.accept();
  w.run(1000);
  let lostAcks = 0;
  w.net.drop = (e) => e.body.kind === "ack" && e.from === "alice" && lostAcks++ < 3;
  await b.client.sendMessage("hello");
  w.run(10_000);
  assert.deepEqual(a.messages.map((m) => m.data), ["hello"], "processed once");
  const msgId = b.sent().find((e) => e.body.kind === "message")!.id;
  const acks = a.allSent().filter((e) => e.body.kind === "ack" && e.body.ackId === msgId);
  assert.equal(acks.length, 4, "one ack per copy received");
  assert.equal(b.allSent().filter((e) => e.id === msgId).length, 4);
  assert.equal(b.client.machine.pendingMessages(), 0);
});

test("end to end: a network that duplicates everything changes nothing", async () => {
  const w = new World(2);
  const a = w.add("alice", "a1");
  const b = w.add("bob", "b1");
  const send = w.net.send.bind(w.net);
  w.net.send = (e: Envelope) => {
    send(e);
    w.net.inject(e);
  };
  await a.client.call("bob");
  w.run(1000);
  await b.client.accept();
  w.run(1000);
  await a.client.sendDtmf("5");
  await a.client.hangup();
  assert.ok(w.runUntilQuiet(120_000));
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"], ["connecting", "localAccepted"], ["connected", "localAccepted"], ["prepared", "remoteHangup"]]);
  assert.deepEqual(b.dtmf.map((d) => d.data), ["5"]);
  assert.equal(a.events.filter((e) => e === "remoteUserRecvCall").length, 1);
});

test("a message that is never acknowledged is reported: sendMessageFail and messageFailed", async () => {
  const w = new World(3);
  const a = w.add("alice", "a1");
  const b = w.add("bob", "b1");
  await a.client.call("bob");
  w.run(1000);
  await b.client.accept();
  w.run(1000);
  b.online(false);
  w.net.storeOffline = false;
  await a.client.sendMessage("lost");
  w.run(61_000);
  assert.equal(a.errors.length, 1);
  assert.equal(a.errors[0]!.event, "sendMessageFail");
  assert.ok(a.events.includes("messageFailed"));
  assert.equal(a.eventReasons[a.events.indexOf("messageFailed")], "message");
});
