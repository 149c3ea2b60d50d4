/**
 * {@link BrowserMedia}: a {@link MediaEngine} on the browser's `RTCPeerConnection` and
 * `getUserMedia`. One peer connection per 1:1 call (the caller offers), and for group calls a
 * full mesh: one per other member's device, the lower (user, device) offering (PROTOCOL §10.9).
 * The `media` payloads are the browser's JSON shapes, the same as the Rust crate media-webrtc:
 * an SDP description `{"type":"offer"|"answer","sdp":…}` or an ICE candidate
 * `{"candidate":…,"sdpMid":…,"sdpMLineIndex":…,"usernameFragment":…}`.
 */

import type { JsonObject, JsonValue } from "./json.js";
import type { MediaCommand, MediaEngine, MediaEvent } from "./media-types.js";
import type { MediaPeer } from "./mesh.js";

export type { MediaCommand, MediaEngine, MediaEvent, JoinRequest } from "./media-types.js";
export { NoMedia } from "./media-types.js";

/** Settings of {@link BrowserMedia}. */
export interface BrowserMediaOptions {
  /** ICE servers (STUN/TURN) for every peer connection. */
  readonly iceServers?: RTCIceServer[];
  /** Called when a remote stream arrives (attach it to a `<video>`/`<audio>` element). */
  readonly onRemoteStream?: (callId: string, stream: MediaStream, peer?: MediaPeer) => void;
  /** Called with the local stream once captured. */
  readonly onLocalStream?: (callId: string, stream: MediaStream) => void;
}

/** A session description as a payload. */
export function descriptionPayload(d: RTCSessionDescriptionInit): JsonObject {
  return { type: d.type ?? "offer", sdp: d.sdp ?? "" };
}

/** An ICE candidate as a payload. */
export function candidatePayload(c: RTCIceCandidateInit): JsonObject {
  return { candidate: c.candidate ?? "", sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null, usernameFragment: c.usernameFragment ?? null };
}

/** What a payload is: a description, a candidate, or neither (ignored, as media-webrtc does). */
export function parsePayload(p: JsonValue): { description: RTCSessionDescriptionInit } | { candidate: RTCIceCandidateInit } | undefined {
  if (p === null || typeof p !== "object" || Array.isArray(p)) return undefined;
  const t = p["type"];
  const sdp = p["sdp"];
  if ((t === "offer" || t === "answer") && typeof sdp === "string") return { description: { type: t, sdp } };
  const cand = p["candidate"];
  if (typeof cand === "string") {
    const mid = p["sdpMid"];
    const idx = p["sdpMLineIndex"];
    const uf = p["usernameFragment"];
    return {
      candidate: {
        candidate: cand,
        sdpMid: typeof mid === "string" ? mid : null,
        sdpMLineIndex: typeof idx === "number" ? idx : null,
        ...(typeof uf === "string" ? { usernameFragment: uf } : {}),
      },
    };
  }
  return undefined;
}

interface Conn {
  readonly pc: RTCPeerConnection;
  readonly offerer: boolean;
  remoteSet: boolean;
  pending: RTCIceCandidateInit[];
  framed: boolean;
  /**
   * The connection's work in order: first opening it (capturing the local stream, adding its
   * tracks, the offer), then each remote payload. A remote offer is only answered once the local
   * tracks are in, so the answer sends media too (not receive-only).
   */
  queue: Promise<void>;
}

/** See the file comment. Needs a browser (or any environment with WebRTC globals). */
export class BrowserMedia implements MediaEngine {
  readonly reportsFrames = true;
  private sink: (ev: MediaEvent) => void = () => {};
  private readonly conns = new Map<string, Conn>();
  private readonly local = new Map<string, Promise<MediaStream>>();

  constructor(private readonly opts: BrowserMediaOptions = {}) {}

  attach(sink: (ev: MediaEvent) => void): void {
    this.sink = sink;
  }

  handle(cmd: MediaCommand): void {
    switch (cmd.type) {
      case "join":
        void this.open(cmd.request.callId, cmd.request.callType === "video", cmd.request.role === "caller", undefined);
        return;
      case "addPeer":
        void this.open(cmd.callId, cmd.callType === "video", cmd.offerer, cmd.peer);
        return;
      case "remoteSignal":
        void this.remote(cmd.callId, undefined, cmd.payload);
        return;
      case "peerSignal":
        void this.remote(cmd.callId, cmd.peer, cmd.payload);
        return;
      case "removePeer":
        this.close(this.key(cmd.callId, cmd.peer));
        return;
      case "leave":
        for (const k of [...this.conns.keys()]) if (k.startsWith(`${cmd.callId}\u0000`)) this.close(k);
        void this.local.get(cmd.callId)?.then((s) => s.getTracks().forEach((t) => t.stop()));
        this.local.delete(cmd.callId);
        return;
    }
  }

  private key(callId: string, peer?: MediaPeer): string {
    return `${callId}\u0000${peer === undefined ? "" : `${peer.user}\u0000${peer.device}`}`;
  }

  private stream(callId: string, video: boolean): Promise<MediaStream> {
    let s = this.local.get(callId);
    if (s === undefined) {
      s = navigator.mediaDevices.getUserMedia({ audio: true, video });
      this.local.set(callId, s);
      void s.then((st) => this.opts.onLocalStream?.(callId, st), () => undefined);
    }
    return s;
  }

  private signal(callId: string, peer: MediaPeer | undefined, payload: JsonValue): void {
    this.sink(peer === undefined ? { type: "signal", callId, payload } : { type: "peerSignal", callId, peer, payload });
  }

  private fail(callId: string, peer: MediaPeer | undefined, e: unknown, atJoin: boolean): void {
    this.sink({ type: "failed", callId, message: e instanceof Error ? e.message : String(e), atJoin, ...(peer !== undefined ? { peer } : {}) });
  }

  private open(callId: string, video: boolean, offerer: boolean, peer: MediaPeer | undefined): Promise<void> {
    const k = this.key(callId, peer);
    if (this.conns.has(k)) return Promise.resolve();
    const pc = new RTCPeerConnection({ iceServers: this.opts.iceServers ?? [] });
    const conn: Conn = { pc, offerer, remoteSet: false, pending: [], framed: false, queue: Promise.resolve() };
    this.conns.set(k, conn);
    pc.onicecandidate = (ev) => {
      if (ev.candidate !== null) this.signal(callId, peer, candidatePayload(ev.candidate.toJSON()));
    };
    pc.ontrack = (ev) => {
      const stream = ev.streams[0] ?? new MediaStream([ev.track]);
      this.opts.onRemoteStream?.(callId, stream, peer);
      const kind = ev.track.kind === "video" ? "video" : "audio";
      ev.track.onunmute = () => {
        if (conn.framed && kind !== "video") return;
        conn.framed = true;
        this.sink({ type: "firstRemoteFrame", callId, kind, ...(peer !== undefined ? { peer } : {}) });
      };
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") this.fail(callId, peer, new Error("peer connection failed"), false);
    };
    conn.queue = this.start(k, conn, callId, video, peer);
    return conn.queue;
  }

  /** Captures the local stream, adds its tracks and, as the offerer, sends the offer. */
  private async start(k: string, conn: Conn, callId: string, video: boolean, peer: MediaPeer | undefined): Promise<void> {
    const { pc, offerer } = conn;
    try {
      const local = await this.stream(callId, video);
      if (this.conns.get(k) !== conn) return;
      for (const t of local.getTracks()) pc.addTrack(t, local);
      if (offerer) {
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        this.signal(callId, peer, descriptionPayload(offer));
      }
    } catch (e) {
      this.fail(callId, peer, e, true);
    }
  }

  private remote(callId: string, peer: MediaPeer | undefined, payload: JsonValue): Promise<void> {
    const k = this.key(callId, peer);
    const conn = this.conns.get(k);
    const p = parsePayload(payload);
    if (conn === undefined || p === undefined) return Promise.resolve();
    conn.queue = conn.queue.then(() => (this.conns.get(k) === conn ? this.apply(conn, callId, peer, p) : undefined));
    return conn.queue;
  }

  /** Applies one remote payload to its connection (after everything queued before it). */
  private async apply(conn: Conn, callId: string, peer: MediaPeer | undefined, p: NonNullable<ReturnType<typeof parsePayload>>): Promise<void> {
    try {
      if ("description" in p) {
        const isOffer = p.description.type === "offer";
        if (isOffer === conn.offerer) return; // an unexpected description is ignored
        await conn.pc.setRemoteDescription(p.description);
        conn.remoteSet = true;
        for (const c of conn.pending.splice(0)) await conn.pc.addIceCandidate(c);
        if (isOffer) {
          const answer = await conn.pc.createAnswer();
          await conn.pc.setLocalDescription(answer);
          this.signal(callId, peer, descriptionPayload(answer));
        }
      } else if (conn.remoteSet) await conn.pc.addIceCandidate(p.candidate);
      else conn.pending.push(p.candidate);
    } catch (e) {
      this.fail(callId, peer, e, false);
    }
  }

  private close(k: string): void {
    const c = this.conns.get(k);
    if (c === undefined) return;
    this.conns.delete(k);
    c.pc.close();
  }
}
