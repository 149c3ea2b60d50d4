// Media glue of 1:1 calls with a scripted engine: the caller offers, the callee answers, the
// payloads travel unchanged in `media` envelopes between the caller and its media peer, and the
// call connects on the first remote frame. Plus the payload shapes BrowserMedia shares with
// media-webrtc.

import { test } from "node:test";
import assert from "node:assert/strict";
import { BrowserMedia, type JsonValue, type MediaCommand, type MediaEngine, type MediaEvent, candidatePayload, descriptionPayload, parsePayload } from "../src/index.js";
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

// BrowserMedia on fake WebRTC globals: what it does to its peer connection, in order.

/** A promise with its resolver. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** Lets every queued promise callback and immediate run (no timers, no real time). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

class FakeTrack {
  constructor(readonly kind: string) {}
  stop(): void {}
}

class FakeStream {
  constructor(private readonly tracks: FakeTrack[] = []) {}
  getTracks(): FakeTrack[] {
    return this.tracks;
  }
}

class FakePeerConnection {
  static made: FakePeerConnection[] = [];
  readonly ops: string[] = [];
  onicecandidate: unknown = null;
  ontrack: unknown = null;
  onconnectionstatechange: unknown = null;
  connectionState = "new";
  constructor() {
    FakePeerConnection.made.push(this);
  }
  addTrack(t: FakeTrack): void {
    this.ops.push(`addTrack ${t.kind}`);
  }
  async createOffer(): Promise<RTCSessionDescriptionInit> {
    this.ops.push("createOffer");
    return { type: "offer", sdp: `offer with ${this.ops.filter((o) => o.startsWith("addTrack")).length} tracks` };
  }
  async createAnswer(): Promise<RTCSessionDescriptionInit> {
    this.ops.push("createAnswer");
    return { type: "answer", sdp: `answer with ${this.ops.filter((o) => o.startsWith("addTrack")).length} tracks` };
  }
  async setLocalDescription(d: RTCSessionDescriptionInit): Promise<void> {
    this.ops.push(`setLocalDescription ${d.type}`);
  }
  async setRemoteDescription(d: RTCSessionDescriptionInit): Promise<void> {
    this.ops.push(`setRemoteDescription ${d.type}`);
  }
  async addIceCandidate(c: RTCIceCandidateInit): Promise<void> {
    this.ops.push(`addIceCandidate ${c.candidate}`);
  }
  close(): void {
    this.ops.push("close");
  }
}

/** Installs the fakes; `getUserMedia` resolves when the test says so. */
function fakeWebRtc(): { capture: ReturnType<typeof deferred<FakeStream>> } {
  const capture = deferred<FakeStream>();
  FakePeerConnection.made = [];
  const g = globalThis as Record<string, unknown>;
  g["RTCPeerConnection"] = FakePeerConnection;
  g["MediaStream"] = FakeStream;
  Object.defineProperty(globalThis, "navigator", { value: { mediaDevices: { getUserMedia: () => capture.promise } }, configurable: true, writable: true });
  return { capture };
}

const join = (role: "caller" | "callee"): MediaCommand => ({
  type: "join",
  request: { callId: "c1", roomId: "r", role, callType: "video", localUser: "alice", remoteUser: "bob" },
});

test("BrowserMedia: an offer that arrives while the camera is still opening is answered only after the local tracks are added", async () => {
  const { capture } = fakeWebRtc();
  const media = new BrowserMedia();
  const events: MediaEvent[] = [];
  media.attach((e) => events.push(e));
  media.handle(join("callee"));
  // The remote offer and a candidate arrive before getUserMedia has resolved.
  media.handle({ type: "remoteSignal", callId: "c1", payload: { type: "offer", sdp: "v=0" } });
  media.handle({ type: "remoteSignal", callId: "c1", payload: { candidate: "cand-1", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: null } });
  await settle();
  const pc = FakePeerConnection.made[0]!;
  assert.deepEqual(pc.ops, [], "nothing is answered before the local tracks are in");
  assert.deepEqual(events, []);

  capture.resolve(new FakeStream([new FakeTrack("audio"), new FakeTrack("video")]));
  await settle();
  assert.deepEqual(pc.ops, ["addTrack audio", "addTrack video", "setRemoteDescription offer", "createAnswer", "setLocalDescription answer", "addIceCandidate cand-1"]);
  assert.deepEqual(events, [{ type: "signal", callId: "c1", payload: { type: "answer", sdp: "answer with 2 tracks" } }]);
});

test("BrowserMedia: the caller offers with its tracks, and applies the answer and candidates in arrival order", async () => {
  const { capture } = fakeWebRtc();
  const media = new BrowserMedia();
  const events: MediaEvent[] = [];
  media.attach((e) => events.push(e));
  media.handle(join("caller"));
  capture.resolve(new FakeStream([new FakeTrack("audio"), new FakeTrack("video")]));
  await settle();
  assert.deepEqual(events, [{ type: "signal", callId: "c1", payload: { type: "offer", sdp: "offer with 2 tracks" } }]);
  // A candidate that overtook the answer waits for it.
  media.handle({ type: "remoteSignal", callId: "c1", payload: { candidate: "cand-1", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: null } });
  media.handle({ type: "remoteSignal", callId: "c1", payload: { type: "answer", sdp: "v=0" } });
  media.handle({ type: "remoteSignal", callId: "c1", payload: { candidate: "cand-2", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: null } });
  await settle();
  const pc = FakePeerConnection.made[0]!;
  assert.deepEqual(pc.ops, ["addTrack audio", "addTrack video", "createOffer", "setLocalDescription offer", "setRemoteDescription answer", "addIceCandidate cand-1", "addIceCandidate cand-2"]);
  media.handle({ type: "leave", callId: "c1" });
  assert.equal(pc.ops.at(-1), "close");
});
