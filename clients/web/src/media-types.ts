/**
 * What passes between the call machine and a media engine: commands out, events in. The
 * payloads are opaque JSON; {@link BrowserMedia} (media.ts) uses the browser's shapes, the same
 * as the Rust crate media-webrtc: `{"type":"offer"|"answer","sdp":…}` and
 * `{"candidate":…,"sdpMid":…,"sdpMLineIndex":…,"usernameFragment":…}`.
 */

import type { CallType } from "./envelope.js";
import type { JsonValue } from "./json.js";
import type { MediaPeer } from "./mesh.js";
import type { Role } from "./state.js";

/** Start the media of a 1:1 call. The caller offers; the callee answers. */
export interface JoinRequest {
  readonly callId: string;
  readonly roomId: string;
  readonly role: Role;
  readonly callType: CallType;
  readonly localUser: string;
  readonly remoteUser: string;
}

/** What the machine asks a media engine to do. */
export type MediaCommand =
  | { readonly type: "join"; readonly request: JoinRequest }
  | { readonly type: "remoteSignal"; readonly callId: string; readonly payload: JsonValue }
  | { readonly type: "leave"; readonly callId: string }
  | { readonly type: "addPeer"; readonly callId: string; readonly callType: CallType; readonly peer: MediaPeer; readonly offerer: boolean }
  | { readonly type: "removePeer"; readonly callId: string; readonly peer: MediaPeer }
  | { readonly type: "peerSignal"; readonly callId: string; readonly peer: MediaPeer; readonly payload: JsonValue };

/** What a media engine reports. */
export type MediaEvent =
  | { readonly type: "signal"; readonly callId: string; readonly payload: JsonValue }
  | { readonly type: "peerSignal"; readonly callId: string; readonly peer: MediaPeer; readonly payload: JsonValue }
  | { readonly type: "firstRemoteFrame"; readonly callId: string; readonly kind: "audio" | "video"; readonly peer?: MediaPeer }
  | { readonly type: "failed"; readonly callId: string; readonly message: string; readonly atJoin: boolean; readonly peer?: MediaPeer };

/**
 * A media stack. The client hands it every {@link MediaCommand} and gives it a sink for its
 * {@link MediaEvent}s. Implementations must not throw from `handle`; report failures as events.
 */
export interface MediaEngine {
  /** Whether the engine reports first remote frames (so the call waits for one to connect). */
  readonly reportsFrames: boolean;
  /** Registers the sink of events (called once by the client). */
  attach(sink: (event: MediaEvent) => void): void;
  /** Performs one command. */
  handle(command: MediaCommand): void;
}

/** No media at all: signaling only (commands go nowhere, calls connect on accept). */
export class NoMedia implements MediaEngine {
  readonly reportsFrames = false;
  attach(): void {}
  handle(): void {}
}
