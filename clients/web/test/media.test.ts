// Media glue of 1:1 calls with a scripted engine: the caller offers, the callee answers, the
// payloads travel unchanged in `media` envelopes between the caller and its media peer, and the
// call connects on the first remote frame. Plus the payload shapes BrowserMedia shares with
// media-webrtc.

import { test } from "node:test";
import assert from "node:assert/strict";
import { type JsonValue, type MediaCommand, type MediaEngine, type MediaEvent, candidatePayload, descriptionPayload, parsePayload } from "../src/index.js";
import { World } from "./world.js";

class Scripted implements MediaEngine {
  readonly reportsFrames = true;
  readonly remote: JsonValue[] = [];
  readonly commands: string[] = [];
  private sink: (ev: MediaEvent) => void = () => {};
  attach(sink: (ev: MediaEvent) => void): void {
    this.sink = sink;
  }
  handle(cmd: MediaCommand): void {
    this.commands.push(cmd.type);
    if (cmd.type === "join" && cmd.request.role === "caller") this.sink({ type: "signal", callId: cmd.request.callId, payload: { type: "offer", sdp: "v=0\r\n" } });
    if (cmd.type === "remoteSignal") {
      this.remote.push(cmd.payload);
      const p = parsePayload(cmd.payload);
      if (p !== undefined && "description" in p && p.description.type === "offer") {
        this.sink({ type: "signal", callId: cmd.callId, payload: { type: "answer", sdp: "v=0\r\n" } });
        this.sink({ type: "firstRemoteFrame", callId: cmd.callId, kind: "video" });
      }
      if (p !== undefined && "description" in p && p.description.type === "answer") this.sink({ type: "firstRemoteFrame", callId: cmd.callId, kind: "video" });
    }
  }
}

test("1:1 media: offer and answer travel to the media peer unchanged; connected on the first remote frame", async () => {
  const w = new World(1);
  const ma = new Scripted();
  const mb = new Scripted();
  const a = w.add("alice", "a1", { media: ma });
  const b = w.add("bob", "b1", { media: mb, joinMediaOnRinging: true });
  await a.client.call("bob");
  w.run(1000);
  // The offer waited for the first ringing device, then went to it.
  const offer = a.sent().find((e) => e.body.kind === "media")!;
  assert.equal(offer.toDevice, "b1");
  assert.deepEqual(mb.remote, [{ type: "offer", sdp: "v=0\r\n" }]);
  assert.deepEqual(ma.remote, [{ type: "answer", sdp: "v=0\r\n" }]);
  await b.client.accept();
  w.run(1000);
  assert.deepEqual(a.states, [["calling", "localVideoCall"], ["connecting", "remoteAccepted"], ["connected", "recvRemoteFirstFrame"]]);
  assert.deepEqual(b.states, [["calling", "remoteVideoCall"], ["connecting", "localAccepted"], ["connected", "recvRemoteFirstFrame"]]);
  await a.client.hangup();
  w.run(1000);
  assert.equal(ma.commands.at(-1), "leave");
  assert.equal(mb.commands.at(-1), "leave");
});

test("payload shapes: descriptions {type, sdp} and candidates {candidate, sdpMid, sdpMLineIndex, usernameFragment}", () => {
  assert.deepEqual(descriptionPayload({ type: "offer", sdp: "v=0" }), { type: "offer", sdp: "v=0" });
  assert.deepEqual(candidatePayload({ candidate: "candidate:1 1 UDP 1 192.0.2.10 5 typ host", sdpMid: "0", sdpMLineIndex: 0 }), {
    candidate: "candidate:1 1 UDP 1 192.0.2.10 5 typ host",
    sdpMid: "0",
    sdpMLineIndex: 0,
    usernameFragment: null,
  });
  assert.deepEqual(parsePayload({ candidate: "c", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" }), { candidate: { candidate: "c", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" } });
  assert.equal(parsePayload({ hello: 1 }), undefined, "neither a description nor a candidate");
  assert.equal(parsePayload(null), undefined);
});
